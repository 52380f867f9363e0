//! ipvsadm's command-line validation: every rule's message and exit code,
//! and the sequences real callers (ldirectord) send.

use std::time::Duration;

use fulcrum_api::ipvsadm::{AdmCommand, Invocation, NumericResolver, Outcome, parse_args, run};
use fulcrum_core::{
    Family, Forwarding, Netmask, Protocol, ServiceKey, Table, TunnelCsum, TunnelType,
};

fn adm(t: &mut Table, line: &str) -> Outcome {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    run("ipvsadm", &args, "", t, &NumericResolver, Duration::ZERO)
}

fn err(line: &str) -> (i32, String) {
    let o = adm(&mut Table::new(), line);
    (o.exit_code, o.stderr)
}

#[test]
fn messages_and_exit_codes() {
    let cases: &[(&str, i32, &str)] = &[
        (
            "-t 1.2.3.4:80",
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
        ),
        (
            "foo",
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
        ),
        ("-A -t 1.2.3.4:80 --bogus", 255, "--bogus: unknown option\n"),
        ("-A -t", 255, "-t: missing argument\n"),
        ("-A -D -t 1.2.3.4:80", 2, "invalid option `-D'\n"),
        (
            "-A -t 1.2.3.4:80 -t 1.2.3.5:80",
            2,
            "multiple 'service-address' options specified\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -m -g",
            2,
            "multiple 'forwarding-method' options specified\n",
        ),
        (
            "-A -t 1.2.3.400:80",
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            "-A -t 80",
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            "-A -t 1.2.3.4:http",
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            "-A -t 1.2.3.4",
            2,
            "Zero port specified for non-persistent service\n",
        ),
        (
            "-A -t 1.2.3.4:80 -o",
            2,
            "One-Packet Scheduling is only for UDP virtual services\n",
        ),
        (
            "-A -t 1.2.3.4:80 -p 0",
            2,
            "invalid timeout value `0' specified\n",
        ),
        (
            "-A -t 1.2.3.4:80 -p 2678401",
            2,
            "invalid timeout value `2678401' specified\n",
        ),
        ("-A -f 0", 2, "invalid fwmark value `0' specified\n"),
        ("-A -t 1.2.3.4:80 -6", 2, "-6 used before -f\n\n"),
        (
            "-A -t 1.2.3.4:80 -M nomask",
            2,
            "illegal virtual server persistent mask specified\n",
        ),
        (
            "-A -t [2001:db8::1]:80 -M 129",
            2,
            "illegal ipv6 netmask specified\n",
        ),
        (
            "-A -t 1.2.3.4:80 -b sh-port",
            2,
            "incompatible scheduler flag `sh-port'\n",
        ),
        (
            "-A -t 1.2.3.4:80 -s sh -b sh-port,bogus",
            2,
            "invalid scheduler flag `bogus'\n",
        ),
        (
            "-A -t 1.2.3.4:80 -w 1",
            2,
            "Illegal 'weight' option with the 'add-service' command\n",
        ),
        (
            "-A",
            2,
            "You need to supply the 'service-address' option for the 'add-service' command\n",
        ),
        (
            "-a -t 1.2.3.4:80",
            2,
            "You need to supply the 'real-server' option for the 'add-server' command\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -w 2147483648",
            2,
            "illegal weight specified\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -x -1",
            2,
            "illegal u_threshold specified\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -y x",
            2,
            "illegal l_threshold specified\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 2001:db8::1 -m",
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -m --tun-type gue",
            2,
            "Tunnel options conflict with forward method\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue",
            2,
            "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type ipip --tun-port 5",
            2,
            "Illegal 'tun-port' option with the 'ipip' tunnel type\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 5 --tun-csum --tun-nocsum",
            2,
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type vxlan",
            2,
            "illegal tunnel type specified\n",
        ),
        (
            "-L -c -t 1.2.3.4:80",
            2,
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n",
        ),
        (
            "-L -c --stats",
            2,
            "options conflicts in the list command\n",
        ),
        (
            "-L --timeout --persistent-conn",
            2,
            "options conflicts in the list command\n",
        ),
        (
            "-L -s rr",
            2,
            "Illegal 'scheduler' option with the 'list' command\n",
        ),
        (
            "-S -c",
            2,
            "Illegal 'connection' option with the 'save' command\n",
        ),
        ("--set 1 2", 2, "--set option requires 3 timeout values\n"),
        ("--set 1 2 x", 2, "invalid timeout value `x' specified\n"),
        ("-C extra", 2, "unexpected argument extra\n"),
        (
            "--start-daemon primary",
            2,
            "illegal start-daemon parameter specified\n",
        ),
        (
            "--start-daemon master --mcast-group 10.0.0.1",
            2,
            "invalid IPv4 mcast-group `10.0.0.1'\n",
        ),
        (
            "--start-daemon master --syncid 256",
            2,
            "illegal syncid specified\n",
        ),
        (
            "--stop-daemon master --mcast-port 5",
            2,
            "Illegal 'mcast-port' option with the 'stop-daemon' command\n",
        ),
        ("-L -t 1.2.3.4:80", 1, "No such service\n"),
        ("-D -t 1.2.3.4:80", 255, "No such service\n"),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1", 255, "Service not defined\n"),
        (
            "-A -t 1.2.3.4:80 -s bogus",
            255,
            "Scheduler or persistence engine not found\n",
        ),
    ];
    for (line, code, msg) in cases {
        assert_eq!(err(line), (*code, msg.to_string()), "ipvsadm {line}");
    }
}

#[test]
fn kernel_errors_after_valid_commands() {
    let mut t = Table::new();
    assert_eq!(adm(&mut t, "-A -t 1.2.3.4:80").exit_code, 0);
    let o = adm(&mut t, "-A -t 1.2.3.4:80");
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (255, "Service already exists\n")
    );
    assert_eq!(adm(&mut t, "-a -t 1.2.3.4:80 -r 10.0.0.1 -m").exit_code, 0);
    let o = adm(&mut t, "-a -t 1.2.3.4:80 -r 10.0.0.1 -m");
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (255, "Destination already exists\n")
    );
    let o = adm(&mut t, "-e -t 1.2.3.4:80 -r 10.0.0.2 -m");
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (255, "No such destination\n")
    );
    let o = adm(&mut t, "-e -t 1.2.3.4:80 -r 10.0.0.1 -m -x 1 -y 2");
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (255, "Numerical result out of range\n")
    );
}

#[test]
fn popt_syntax() {
    let p = |s: &str| {
        parse_args(
            "ipvsadm",
            &s.split_whitespace().map(String::from).collect::<Vec<_>>(),
            &NumericResolver,
        )
    };
    // Clusters and attached arguments.
    assert_eq!(p("-Ln"), p("-L -n"));
    assert_eq!(p("-At1.2.3.4:80 -srr"), p("-A -t 1.2.3.4:80 -s rr"));
    assert_eq!(
        p("--add-service --tcp-service=1.2.3.4:80 --scheduler=rr"),
        p("-A -t 1.2.3.4:80 -s rr")
    );
    // -p takes a value only if the next word is not an option.
    let Ok(Invocation::Command(AdmCommand::AddService(a))) = p("-A -t 1.2.3.4:80 -p -s rr") else {
        panic!()
    };
    assert_eq!((a.persistent, a.scheduler.as_str()), (Some(360), "rr"));
    let Ok(Invocation::Command(AdmCommand::AddService(a))) = p("-A -t 1.2.3.4:80 -p 60") else {
        panic!()
    };
    assert_eq!(a.persistent, Some(60));
    // Options may follow positional arguments; -- ends options.
    assert_eq!(p("--set 1 2 3"), p("--set -- 1 2 3"));
    assert_eq!(p("-h"), Ok(Invocation::Help));
    assert_eq!(p("--version"), Ok(Invocation::Version));
    // inet_aton's short forms, and the service port copied to the dest.
    let Ok(Invocation::Command(AdmCommand::AddDest(k, d))) = p("-a -t 10.1:8080 -r 10.0.0.2 -m")
    else {
        panic!()
    };
    assert_eq!(
        k,
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 8080
        }
    );
    assert_eq!((d.port, d.fwd, d.weight), (8080, Forwarding::Masq, 1));
    // DR forces the service port even when another is given.
    let Ok(Invocation::Command(AdmCommand::AddDest(_, d))) =
        p("-a -t 10.0.0.1:80 -r 10.0.0.2:8080")
    else {
        panic!()
    };
    assert_eq!((d.port, d.fwd), (80, Forwarding::Route));
    let Ok(Invocation::Command(AdmCommand::AddDest(_, d))) =
        p("-a -f 1 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum")
    else {
        panic!()
    };
    assert_eq!(
        d.fwd,
        Forwarding::Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            csum: TunnelCsum::RemCsum
        }
    );
    let Ok(Invocation::Command(AdmCommand::AddService(a))) = p("-A -f 9 -6 -p -M 48") else {
        panic!()
    };
    assert_eq!(
        (a.key, a.netmask),
        (
            ServiceKey::Fwmark {
                mark: 9,
                family: Family::V6
            },
            Netmask::V6(48)
        )
    );
}

#[test]
fn help_and_version_go_to_stdout() {
    let o = adm(&mut Table::new(), "-h");
    assert_eq!(o.exit_code, 0);
    assert!(o.stdout.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E virtual-service"));
    assert!(
        o.stdout
            .ends_with("  --mcast-ttl ttl                     Multicast TTL (default=1)\n")
    );
    assert_eq!(
        adm(&mut Table::new(), "-v").stdout,
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
}

/// The calls ldirectord makes (reference/platform.md §6), in order; it reads
/// `-L -n` back after each change, so the listing must follow the changes.
#[test]
fn ldirectord_sequence() {
    let mut t = Table::new();
    let empty = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    assert_eq!(adm(&mut t, "-L -n").stdout, empty);
    assert_eq!(adm(&mut t, "-L -n --thresholds").exit_code, 0);
    assert_eq!(adm(&mut t, "-A -t 10.200.0.100:80 -s rr").exit_code, 0);
    assert_eq!(
        adm(
            &mut t,
            "-a -t 10.200.0.100:80 -x 0 -y 0 -r 10.200.0.12:80 -m -w 1"
        )
        .exit_code,
        0
    );
    assert_eq!(
        adm(&mut t, "-L -n").stdout,
        format!(
            "{empty}TCP  10.200.0.100:80 rr\n  -> 10.200.0.12:80               Masq    1      0          0         \n"
        )
    );
    assert_eq!(
        adm(&mut t, "-L -n --thresholds").stdout,
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\nTCP  10.200.0.100:80 rr\n  -> 10.200.0.12:80               0          0          0          0         \n"
    );
    let o = adm(&mut t, "-d -t 10.200.0.100:80 -r 10.200.0.11:80");
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (255, "No such destination\n")
    );
    assert_eq!(
        adm(&mut t, "-d -t 10.200.0.100:80 -r 10.200.0.12:80").exit_code,
        0
    );
    assert_eq!(adm(&mut t, "-D -t 10.200.0.100:80").exit_code, 0);
    assert_eq!(adm(&mut t, "-L -n").stdout, empty);
}

#[test]
fn restore_stops_at_validation_errors_and_continues_after_kernel_errors() {
    let mut t = Table::new();
    let input = "-A -t 1.2.3.4:80 -s rr\n-A -t 1.2.3.4:80 -s rr\n-a -t 1.2.3.4:80 -r 10.0.0.1 -m\n";
    let o = run(
        "ipvsadm",
        &["-R".into()],
        input,
        &mut t,
        &NumericResolver,
        Duration::ZERO,
    );
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (0, "Service already exists\n"),
        "last line decides"
    );
    assert_eq!(t.services()[0].dests.len(), 1);
    let mut t = Table::new();
    let input = "-A -t 1.2.3.4:80\n-a -t 1.2.3.4:80 -r 10.0.0.1 -w 2147483648\n-A -t 1.2.3.5:80\n";
    let o = run(
        "ipvsadm",
        &["-R".into()],
        input,
        &mut t,
        &NumericResolver,
        Duration::ZERO,
    );
    assert_eq!(
        (o.exit_code, o.stderr.as_str()),
        (2, "illegal weight specified\n")
    );
    assert_eq!(t.services().len(), 1, "nothing after the bad line");
}

#[test]
fn zero_and_timeouts() {
    let mut t = Table::new();
    assert_eq!(
        adm(&mut t, "-L --timeout").stdout,
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(adm(&mut t, "--set 0 30 0").exit_code, 0);
    assert_eq!(
        adm(&mut t, "-L --timeout").stdout,
        "Timeout (tcp tcpfin udp): 900 30 300\n"
    );
    assert_eq!(adm(&mut t, "-Z").exit_code, 0);
    assert_eq!(adm(&mut t, "-Z -t 1.2.3.4:80").stderr, "No such service\n");
}

/// Whatever the command line accepts, the director's check of a typed
/// command accepts too, and it crosses the socket unchanged: a client and
/// director of one version never disagree.
mod typed {
    use fulcrum_api::control::{Request, decode, encode};
    use fulcrum_api::ipvsadm::{
        AdmCommand, DestArgs, Invocation, NumericResolver, Reply, SvcArgs, answer, parse_args,
        validate,
    };
    use fulcrum_core::{Forwarding, Netmask, Protocol, SchedFlags, ServiceKey, Table};
    use proptest::prelude::*;

    /// Options with their values, as a person would give them.
    const PHRASES: &[&str] = &[
        "-s wrr",
        "-s sh",
        "-s mh",
        "-s rr",
        "-p",
        "-p 300",
        "-p 2678400",
        "-M 255.255.255.0",
        "-M 64",
        "-M 128",
        "-r 10.0.0.2",
        "-r 10.0.0.3:8080",
        "-r [2001:db8::2]:8080",
        "-r 2001:db8::3",
        "-m",
        "-i",
        "-g",
        "-w 0",
        "-w 7",
        "-w 2147483647",
        "-x 100",
        "-y 10",
        "-x 2147483647",
        "--pe sip",
        "-b sh-port",
        "-b sh-fallback,sh-port",
        "-o",
        "-n",
        "--stats",
        "--rate",
        "--exact",
        "--thresholds",
        "--persistent-conn",
        "--tun-type gue",
        "--tun-type ipip",
        "--tun-port 6080",
        "--tun-csum",
        "--tun-nocsum",
        "--tun-info",
        "--sort",
        "-6",
    ];
    const COMMANDS: &[&str] = &["-A", "-E", "-D", "-a", "-e", "-d", "-L", "-l", "-Z"];
    const SERVICES: &[&str] = &[
        "-t 10.0.0.1:80",
        "-u [2001:db8::1]:53",
        "-f 7",
        "-f 7 -6",
        "-t 10.0.0.1:0 -p",
        "--sctp-service 10.0.0.1:9",
    ];
    const WHOLE: &[&str] = &[
        "-C",
        "-S",
        "-S -n",
        "-L -c",
        "-L --timeout",
        "-L --daemon",
        "--set 900 120 300",
        "--set 0 0 2678400",
        "--start-daemon master",
        "--start-daemon backup --mcast-interface eth1 --syncid 9 --mcast-group 224.0.0.90 --mcast-port 8850 --mcast-ttl 2 --sync-maxlen 1400",
        "--stop-daemon master",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn what_the_command_line_gives_the_director_takes(
            cmd in proptest::sample::select(COMMANDS),
            service in proptest::sample::select(SERVICES),
            phrases in proptest::collection::vec(proptest::sample::select(PHRASES), 0..6),
            whole in proptest::option::weighted(0.2, proptest::sample::select(WHOLE)),
        ) {
            let line = match whole {
                Some(w) => w.to_string(),
                None => format!("{cmd} {service} {}", phrases.join(" ")),
            };
            let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if let Ok(Invocation::Command(c)) = parse_args("ipvsadm", &args, &NumericResolver) {
                if c != AdmCommand::Restore {
                    prop_assert!(validate(&c).is_ok(), "{args:?} → {c:?}: {:?}", validate(&c));
                }
                let req = Request::Adm { commands: vec![c] };
                prop_assert_eq!(decode::<Request>(encode(&req).trim_end()).unwrap(), req);
            }
        }

        /// Any line at all decodes to a request or an error; never a panic.
        #[test]
        fn any_line_decodes_or_is_refused(line in ".{0,200}") {
            let _ = decode::<Request>(&line);
        }
    }

    fn any_addr() -> impl Strategy<Value = std::net::IpAddr> {
        prop_oneof![
            (0u8..4).prop_map(|i| std::net::IpAddr::from([10, 0, 0, i])),
            (0u16..4).prop_map(|i| std::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i])),
        ]
    }

    fn any_key() -> impl Strategy<Value = ServiceKey> {
        prop_oneof![
            (
                prop_oneof![
                    Just(Protocol::Tcp),
                    Just(Protocol::Udp),
                    Just(Protocol::Sctp)
                ],
                any_addr(),
                prop_oneof![Just(0u16), Just(80), any::<u16>()],
            )
                .prop_map(|(proto, addr, port)| ServiceKey::Addr { proto, addr, port }),
            (
                any::<u32>(),
                prop_oneof![
                    Just(fulcrum_core::Family::V4),
                    Just(fulcrum_core::Family::V6)
                ]
            )
                .prop_map(|(mark, family)| ServiceKey::Fwmark { mark, family }),
        ]
    }

    fn any_command() -> impl Strategy<Value = AdmCommand> {
        let netmask = prop_oneof![
            any::<u32>().prop_map(Netmask::V4),
            any::<u8>().prop_map(Netmask::V6)
        ];
        let fwd = prop_oneof![
            Just(Forwarding::Masq),
            Just(Forwarding::Route),
            Just(Forwarding::Local),
            Just(Forwarding::TUNNEL)
        ];
        let svc = (
            any_key(),
            prop_oneof![
                Just("wrr".to_string()),
                Just("sh".into()),
                Just("lblcr".into()),
                "[a-z]{0,20}"
            ],
            proptest::option::of(any::<u32>()),
            netmask,
            any::<bool>(),
        )
            .prop_map(
                |(key, scheduler, persistent, netmask, one_packet)| SvcArgs {
                    key,
                    scheduler,
                    flags: SchedFlags::default(),
                    persistent,
                    netmask,
                    one_packet,
                    pe_name: None,
                },
            )
            .boxed();
        let dest = (
            any_addr(),
            any::<u16>(),
            fwd,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(addr, port, fwd, weight, u_threshold, l_threshold)| DestArgs {
                    addr,
                    port,
                    fwd,
                    weight,
                    u_threshold,
                    l_threshold,
                },
            )
            .boxed();
        prop_oneof![
            svc.clone().prop_map(AdmCommand::AddService),
            svc.prop_map(AdmCommand::EditService),
            any_key().prop_map(AdmCommand::DeleteService),
            (any_key(), dest.clone()).prop_map(|(k, d)| AdmCommand::AddDest(k, d)),
            (any_key(), dest).prop_map(|(k, d)| AdmCommand::EditDest(k, d)),
            (any_key(), any_addr(), any::<u16>())
                .prop_map(|(k, a, p)| AdmCommand::DeleteDest(k, a, p)),
            proptest::option::of(any_key()).prop_map(AdmCommand::Zero),
            (any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(a, b, c)| AdmCommand::SetTimeout(a, b, c)),
            Just(AdmCommand::Clear),
            Just(AdmCommand::Save { numeric: true }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever typed commands a program sends the director, each is
        /// answered — taken or refused — and the table never panics; what
        /// it holds afterwards still lists and still schedules.
        #[test]
        fn any_typed_commands_are_answered_without_a_panic(
            cmds in proptest::collection::vec(any_command(), 1..30)
        ) {
            let mut table = Table::new();
            let replies = answer(&cmds, &mut table, std::time::Duration::ZERO, &|_, _| None);
            prop_assert_eq!(replies.len(), cmds.len());
            let listing = fulcrum_api::ipvsadm::execute(
                &AdmCommand::Save { numeric: true },
                &mut table,
                std::time::Duration::ZERO,
            )
            .render(&AdmCommand::Save { numeric: true }, &NumericResolver);
            prop_assert_eq!(listing.exit_code, 0);
            let keys: Vec<ServiceKey> = table.services().iter().map(|s| s.key).collect();
            for (i, key) in keys.iter().enumerate() {
                let flow = fulcrum_core::sched::Flow {
                    saddr: std::net::IpAddr::from([192, 0, 2, i as u8]),
                    sport: 40000,
                    daddr: std::net::IpAddr::from([10, 0, 0, 1]),
                    dport: 80,
                };
                let _ = table.schedule(key, Protocol::Tcp, &flow, std::time::Duration::from_secs(1));
            }
            let _ = table.expire(std::time::Duration::from_secs(100_000));
        }
    }

    fn svc() -> SvcArgs {
        SvcArgs {
            key: ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: "10.0.0.1".parse().unwrap(),
                port: 80,
            },
            scheduler: "wrr".into(),
            flags: SchedFlags::default(),
            persistent: None,
            netmask: Netmask::V4(u32::MAX),
            one_packet: false,
            pe_name: None,
        }
    }

    /// Commands no ipvsadm command line gives, sent straight to the socket,
    /// are refused with what is wrong, and the table is left as it was.
    #[test]
    fn forged_commands_are_refused_and_change_nothing() {
        let dest = |weight| DestArgs {
            addr: "10.1.0.1".parse().unwrap(),
            port: 80,
            fwd: Forwarding::Masq,
            weight,
            u_threshold: 0,
            l_threshold: 0,
        };
        let forged = [
            (
                AdmCommand::AddService(SvcArgs {
                    netmask: Netmask::V6(0),
                    ..svc()
                }),
                "IPv6 prefix length 0",
            ),
            (
                AdmCommand::AddService(SvcArgs {
                    netmask: Netmask::V6(200),
                    ..svc()
                }),
                "IPv6 prefix length 200",
            ),
            (
                AdmCommand::AddService(SvcArgs {
                    scheduler: "x".repeat(4096),
                    ..svc()
                }),
                "scheduler name",
            ),
            (
                AdmCommand::AddService(SvcArgs {
                    persistent: Some(0),
                    ..svc()
                }),
                "persistence timeout 0",
            ),
            (
                AdmCommand::AddDest(svc().key, dest(u32::MAX)),
                "weight 4294967295",
            ),
            (AdmCommand::SetTimeout(1, u32::MAX, 1), "timeout 4294967295"),
            (
                AdmCommand::DeleteService(ServiceKey::Fwmark {
                    mark: 0,
                    family: fulcrum_core::Family::V4,
                }),
                "firewall mark 0",
            ),
            (AdmCommand::Restore, "`-R`"),
        ];
        let mut table = Table::new();
        let ok = answer(
            &[AdmCommand::AddService(svc())],
            &mut table,
            std::time::Duration::ZERO,
            &|_, _| None,
        );
        assert_eq!(ok, vec![Reply::Done]);
        let cmds: Vec<AdmCommand> = forged.iter().map(|(c, _)| c.clone()).collect();
        let replies = answer(&cmds, &mut table, std::time::Duration::ZERO, &|_, _| None);
        for ((c, want), reply) in forged.iter().zip(&replies) {
            match reply {
                Reply::Failed { message, exit_code } => {
                    assert_eq!(*exit_code, 2, "{c:?}");
                    assert!(message.contains(want), "{c:?}: {message}");
                    assert!(
                        message.contains("no ipvsadm command line gives"),
                        "{message}"
                    );
                }
                other => panic!("{c:?} was taken: {other:?}"),
            }
        }
        let t = table.timeouts().triple();
        assert_eq!(table.services().len(), 1);
        assert!(table.services()[0].dests.is_empty());
        assert_eq!(t.1.as_secs(), 120, "timeouts unchanged");
    }
}
