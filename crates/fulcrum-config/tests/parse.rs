//! lvs.cf parsing: the seed's examples, golden diagnostics, every key, and the
//! writer round trip.

use std::net::IpAddr;
use std::time::Duration;

use fulcrum_config::*;
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{Forwarding, Netmask, Protocol, ServiceKey};

fn root(rel: &str) -> String {
    format!("{}/../../{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn ok(src: &str) -> Config {
    let p = parse(src);
    assert!(!p.has_errors(), "{}", p.render("test.cf", src));
    p.config
}

fn errors(src: &str) -> Vec<String> {
    parse(src)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}:{}: {}", d.span.line, d.span.col, d.message))
        .collect()
}

#[test]
fn seed_examples_validate_and_describe_the_five_node_cluster() {
    for file in ["examples/lvs.cf", "examples/piranha.cf"] {
        let src = std::fs::read_to_string(root(file)).unwrap();
        let cfg = ok(&src);
        assert_eq!(cfg.global.effective_network(), Routing::Nat, "{file}");
        assert_eq!(
            cfg.global.nat_router.as_ref().unwrap().addr,
            "192.168.1.254".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            cfg.global.nat_router.as_ref().unwrap().device(),
            Some("eth1")
        );
        let t = cfg.table();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "vs1");
        assert_eq!(
            t[0].spec.key,
            ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: "1.2.3.1".parse().unwrap(),
                port: 80
            }
        );
        assert_eq!(t[0].spec.scheduler, SchedulerKind::Wlc);
        let w: Vec<(String, u32, Forwarding)> = t[0]
            .dests
            .iter()
            .map(|(n, d)| (n.clone(), d.weight, d.fwd))
            .collect();
        assert_eq!(
            w,
            vec![
                ("rs1".into(), 2000, Forwarding::Masq),
                ("rs2".into(), 1000, Forwarding::Masq),
                ("rs3".into(), 1000, Forwarding::Masq)
            ]
        );
        // No warnings: every key the seed uses is served.
        assert_eq!(parse(&src).diagnostics.len(), 0, "{file}");
    }
    let hand = ok(&std::fs::read_to_string(root("examples/lvs.cf")).unwrap());
    assert_eq!(hand.global.heartbeat_port, Some(1050));
    assert_eq!(hand.global.deadtime, Some(Seconds::from_secs(10)));
    assert_eq!(hand.virtuals[0].reentry, Some(Seconds::from_secs(180)));
}

#[test]
fn broken_file_reports_every_problem_with_line_and_column() {
    let src = std::fs::read_to_string(format!(
        "{}/tests/data/broken.cf",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let want = std::fs::read_to_string(format!(
        "{}/tests/data/broken.expected",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let got = parse(&src).render("tests/data/broken.cf", &src);
    assert_eq!(
        got, want,
        "golden diagnostics changed; review and update tests/data/broken.expected"
    );
}

#[test]
fn both_virtual_spellings_and_address_forms() {
    let cfg = ok(
        "virtual server a {\n address = 10.0.0.1\n active = 1\n}\nvirtual b {\n address = 2001:db8::1 eth0:2\n active = 1\n port = https\n}\nvirtual c {\n address = [2001:db8::2]\n active = 1\n port = ftp\n}\n",
    );
    assert_eq!(cfg.virtuals[0].name, "a");
    assert_eq!(
        cfg.virtuals[1].address.as_ref().unwrap().dev.as_deref(),
        Some("eth0:2")
    );
    assert_eq!(cfg.virtuals[1].effective_port(), 443);
    assert_eq!(cfg.virtuals[2].effective_port(), 21);
}

#[test]
fn quoted_send_expect_with_escapes() {
    let cfg = ok(
        "virtual v {\n address = 10.0.0.1\n active = 1\n send = \"GET / HTTP/1.0\\r\\n\\r\\n\"\n expect = \"HTTP\"\n use_regex = 0\n}\n",
    );
    assert_eq!(
        cfg.virtuals[0].send.as_deref(),
        Some("GET / HTTP/1.0\r\n\r\n")
    );
    assert_eq!(cfg.virtuals[0].expect.as_deref(), Some("HTTP"));
}

#[test]
fn extensions() {
    let src = "dataplane = ipvs\nkeepalive = 0.1\ndeadtime = 0.35\ntcp_timeout = 3600\nvirtual dns {\n address = 10.0.0.53\n active = 1\n protocol = udp\n port = 53\n scheduler = mh\n sched_flags = mh-fallback, mh-port\n one_packet = 1\n persistent = 60\n pmask = 255.255.255.0\n forwarding = nat\n timeout = 2.5\n server a {\n  address = 10.1.0.1\n  active = 1\n  uthreshold = 100\n  lthreshold = 50\n  port = 5353\n }\n}\nvirtual fw {\n address = 2001:db8::1\n fwmark = 7\n active = 1\n persistent = 300\n pmask = 64\n forwarding = direct\n server t {\n  address = 192.0.2.9\n  active = 1\n  forwarding = tunnel\n }\n}\n";
    let cfg = ok(src);
    assert_eq!(
        cfg.global.keepalive,
        Some(Seconds(Duration::from_millis(100)))
    );
    let t = cfg.table();
    let dns = &t[0].spec;
    assert!(dns.flags.sched1 && dns.flags.sched2 && dns.one_packet);
    assert_eq!(dns.persistent, Some(60));
    assert_eq!(dns.netmask, Netmask::V4(0xffff_ff00));
    assert_eq!(t[0].dests[0].1.port, 5353);
    assert_eq!(
        (t[0].dests[0].1.u_threshold, t[0].dests[0].1.l_threshold),
        (100, 50)
    );
    let fw = &t[1];
    assert_eq!(fw.spec.netmask, Netmask::V6(64));
    assert_eq!(
        fw.dests[0].1.fwd,
        Forwarding::TUNNEL,
        "per-server forwarding overrides, v4 via tunnel is allowed"
    );
    assert_eq!(fw.dests[0].1.port, 0);
}

#[test]
fn agent_checks_and_load_monitor() {
    let src = "virtual web {\n address = 10.0.0.1\n active = 1\n port = 8080\n load_monitor = agent\n agent_port = 4000\n server a {\n  address = 10.1.0.1\n  active = 1\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  checktype = agent\n }\n}\nvirtual plain {\n address = 10.0.0.2\n active = 1\n port = 8080\n server c {\n  address = 10.1.0.3\n  active = 1\n  checktype = agent\n }\n}\n";
    let p = parse(src);
    assert!(
        p.diagnostics.is_empty(),
        "load_monitor = agent draws no warning"
    );
    let checks = p.config.checks();
    let got: Vec<_> = checks
        .iter()
        .map(|c| {
            (
                c.server_name.as_str(),
                c.kind,
                c.agent.map(|a| a.to_string()),
                c.agent_weights,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", CheckType::Connect, Some("10.1.0.1:4000".into()), true),
            ("b", CheckType::Agent, Some("10.1.0.2:4000".into()), true),
            ("c", CheckType::Agent, Some("10.1.0.3:9777".into()), true),
        ]
    );
    assert_eq!(
        errors("virtual v {\n address = 10.0.0.1\n agent_port = 0\n}\n").len(),
        1,
        "port 0 is refused"
    );
}

#[test]
fn send_program_makes_external_checks() {
    let src = "virtual web {\n address = 10.0.0.1\n active = 1\n port = 80\n send_program = \"/bin/check %h %p\"\n misc_dynamic = 1\n server a {\n  address = 10.1.0.1\n  active = 1\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  checktype = connect\n }\n}\n";
    let p = parse(src);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let c = p.config.checks();
    assert_eq!(
        (c[0].kind, c[0].send.as_slice(), c[0].misc_dynamic),
        (CheckType::External, b"/bin/check %h %p".as_slice(), true),
        "send_program is the check, even on port 80"
    );
    assert_eq!(c[1].kind, CheckType::Connect, "a server may choose its own");
    let e = errors(
        "virtual web {\n address = 10.0.0.1\n active = 1\n server a {\n  address = 10.1.0.1\n  active = 1\n  checktype = external\n }\n}\n",
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("no `send_program`"), "{e:?}");
}

#[test]
fn http_check_keys() {
    let src = "virtual web {\n address = 10.0.0.1\n active = 1\n port = 443\n checktype = https_get\n request = /health?full=1\n digest = B0DE18193E2244FAADBB22B1CC770490\n status_code = 200-299, 301\n virtualhost = www.example.com\n tls_ca = /etc/fulcrum/ca.pem\n receive = \"^ok\"\n server a {\n  address = 10.1.0.1\n  active = 1\n }\n}\n";
    let p = parse(src);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let h = &p.config.checks()[0].http;
    assert_eq!(
        (
            h.path.as_str(),
            h.digest.as_deref(),
            h.status.to_string(),
            h.virtualhost.as_deref()
        ),
        (
            "/health?full=1",
            Some("b0de18193e2244faadbb22b1cc770490"),
            "200-299,301".into(),
            Some("www.example.com")
        )
    );
    assert!(h.status.accepts(301) && !h.status.accepts(302));
    let bad = |key: &str| {
        errors(&format!(
            "virtual web {{\n address = 10.0.0.1\n checktype = http_get\n {key}\n}}\n"
        ))
    };
    assert!(bad("digest = 1234")[0].contains("32 hexadecimal digits"));
    assert!(bad("status_code = 200-99")[0].contains("invalid status codes"));
    assert!(bad("status_code = 700")[0].contains("invalid status codes"));
    assert!(bad("request = health")[0].contains("a path starting with `/`"));
    assert!(bad("tls_ca = ca.pem")[0].contains("absolute path"));
    assert!(bad("protocol = udp")[0].contains("cannot have HTTP, SMTP"));
    let dns = |extra: &str| {
        errors(&format!(
            "virtual ns {{\n address = 10.0.0.1\n protocol = udp\n port = 53\n checktype = dns\n {extra}\n}}\n"
        ))
    };
    assert!(dns("")[0].contains("DNS checks but no `request`"));
    assert!(dns("request = /health")[0].contains("a name to resolve"));
    assert!(dns("request = www.example.com.\n receive = 10.0.0.7").is_empty());
    assert!(
        errors("virtual m {\n address = 10.0.0.1\n protocol = udp\n server a {\n  address = 10.1.0.1\n  checktype = smtp\n }\n}\n")[0]
            .contains("is not TCP")
    );
    let w = parse(
        "virtual web {\n address = 10.0.0.1\n digest = b0de18193e2244faadbb22b1cc770490\n}\n",
    );
    assert!(!w.has_errors());
    assert!(
        w.diagnostics
            .iter()
            .any(|d| d.message.contains("used only by HTTP")),
        "{:?}",
        w.diagnostics
    );
}

#[test]
fn inactive_servers_and_virtuals_are_left_out_of_the_table() {
    let cfg = ok(
        "virtual a {\n address = 10.0.0.1\n active = 0\n}\nvirtual b {\n address = 10.0.0.2\n active = 1\n server x {\n  address = 10.1.0.1\n  active = 0\n }\n server y {\n  address = 10.1.0.2\n  active = 1\n }\n}\n",
    );
    let t = cfg.table();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].dests.len(), 1);
    assert_eq!(t[0].dests[0].0, "y");
}

#[test]
fn validation_rules() {
    let e = errors("virtual a {\n address = 10.0.0.1\n active = 1\n port = 0\n}\n");
    assert_eq!(
        e,
        vec!["4:2: virtual server `a` listens on port 0 without persistence"]
    );
    let e = errors("virtual a {\n address = 10.0.0.1\n active = 1\n one_packet = 1\n}\n");
    assert_eq!(
        e,
        vec!["4:2: one-packet scheduling is only for UDP and fwmark services"]
    );
    let e = errors(
        "virtual a {\n address = 10.0.0.1\n active = 1\n server s {\n  address = 2001:db8::1\n  active = 1\n }\n}\n",
    );
    assert_eq!(
        e,
        vec!["5:3: real server `s` is IPv6 but virtual server `a` is IPv4"]
    );
    let e = errors("virtual a {\n address = 10.0.0.1\n active = 1\n pmask = 64\n}\n");
    assert_eq!(
        e,
        vec!["4:2: an IPv6 prefix length cannot be the persistence mask of an IPv4 service"]
    );
    let marked = "virtual a {\n address = 10.0.0.1\n active = 1\n fwmark = 3\n server s {\n  address = 10.1.0.1\n  active = 1\n  forwarding = direct\n }\n}\n";
    let e = errors(&format!("dataplane = proxy\n{marked}"));
    assert_eq!(
        e,
        vec![
            "5:2: fwmark services need the `ipvs` data plane: the `proxy` data plane sees no packet marks",
            "9:3: real server `s` uses direct routing, which the `proxy` data plane cannot do"
        ]
    );
    // The default plane, `auto`, decides on the host: the file is valid,
    // and says what only the kernel can forward.
    assert!(errors(marked).is_empty());
    let parsed = fulcrum_config::parse(marked);
    assert_eq!(
        parsed.config.global.effective_dataplane(),
        fulcrum_config::Dataplane::Auto
    );
    assert_eq!(
        parsed.config.kernel_only().as_deref(),
        Some("virtual server `a` is a fwmark service")
    );
    let e = errors(
        "virtual a {\n address = 10.0.0.1\n active = 1\n protocol = udp\n server s {\n  address = 10.1.0.1\n  active = 1\n  proxy_protocol = v2\n }\n}\n",
    );
    assert_eq!(
        e,
        vec!["8:3: real server `s` asks for the PROXY protocol, which is for TCP services"]
    );
    let e = errors("virtual a {\n address = 10.0.0.1\n active = 1\n weight = 3\n}\n");
    assert_eq!(
        e,
        vec!["4:2: unknown keyword `weight` in virtual server `a`"]
    );
    let e = errors("virtual a {\n address = 10.0.0.1\n port = 80\n port = 81\n}\n");
    assert_eq!(e, vec!["4:2: `port` is set twice in virtual server `a`"]);
    let e = errors("}\nvirtual a\n address\n");
    assert_eq!(
        e,
        vec![
            "1:1: this `}` closes no block",
            "2:1: expected `key = value`, or a block header ending in `{`",
            "3:2: `address` is missing `= value`"
        ]
    );
    let e = errors("virtual a {\n address = 10.0.0.1 eth0:1 extra\n send = \"unterminated\n}\n");
    assert_eq!(e.len(), 2, "{e:?}");
    let e = errors("virtual a {\n address = 10.0.0.1\n active = yes\n}\n");
    assert_eq!(e, vec!["3:11: `active` must be 0 or 1, not `yes`"]);
}

#[test]
fn failover_keys() {
    let c = ok(
        "primary = 10.0.0.1\nbackup = 10.0.0.2\nbackup_active = 1\nkeepalive = 0.1\ndeadtime = 0.35\n\
                priority = 120\nnice_failback = 1\npreempt_delay = 2.5\nvrrp_version = 3\nvirtual_router_id = 7\n\
                peer = 10.0.0.3\npeer = 10.0.0.4\nauth_key_file = /etc/fulcrum/key\nnotify_script = /usr/local/bin/n\n\
                garp_count = 2\ngarp_delay = 0\nping_node = 10.0.9.1\nping_node = 10.0.9.2\n\
                notify_email = ops@example.test\nnotify_email = oncall@example.test\nsmtp_server = 127.0.0.1:2525\n",
    );
    let g = &c.global;
    assert!(g.failover());
    assert_eq!(g.priority, Some(120));
    assert!(
        !g.effective_preempt(),
        "nice_failback = 1 turns preemption off"
    );
    assert_eq!(g.preempt_delay, Some(Seconds(Duration::from_millis(2500))));
    assert_eq!(g.vrrp_version, Some(VrrpVersion::V3));
    assert_eq!(g.virtual_router_id, Some(7));
    let ips: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(g.directors(), ips);
    assert_eq!(g.effective_garp_count(), 2);
    assert_eq!(g.ping_node.len(), 2);
    assert_eq!(
        g.notify_email,
        vec!["ops@example.test", "oncall@example.test"]
    );
    assert_eq!(g.smtp_server.map(|h| h.port), Some(Some(2525)));
    assert!(g.effective_garp_delay().0.is_zero());
    // Piranha's rule by default: the primary takes the active role back.
    assert!(ok("primary = 10.0.0.1\n").global.effective_preempt());
    assert!(!ok("primary = 10.0.0.1\n").global.failover());

    let base = "primary = 10.0.0.1\nbackup = 10.0.0.2\nbackup_active = 1\n";
    let e = errors(&format!("{base}vrrp_version = 2\nkeepalive = 0.5\n"));
    assert!(
        e[0].contains("`keepalive` (0.5) cannot be carried by VRRP version 2"),
        "{e:?}"
    );
    let e = errors(&format!("{base}keepalive = 0.005\n"));
    assert!(
        e[0].contains("cannot be carried by VRRP version 3"),
        "{e:?}"
    );
    let e = errors(&format!("{base}notify_email = ops@example.test\n"));
    assert!(e[0].contains("no `smtp_server`"), "{e:?}");
    let e = errors(&format!(
        "{base}notify_email = not-an-address\nsmtp_server = 127.0.0.1\n"
    ));
    assert!(e[0].contains("invalid mail address"), "{e:?}");
    let e = errors(&format!("{base}sync = 1\n"));
    assert!(e[0].contains("needs `auth_key_file`"), "{e:?}");
    let e = errors(&format!("{base}preempt = 1\nnice_failback = 1\n"));
    assert!(e[0].contains("contradict"), "{e:?}");
    let e = errors("backup_active = 1\nprimary = 10.0.0.1\n");
    assert!(e[0].contains("no `backup` or `peer`"), "{e:?}");
    let e = errors(&format!(
        "{base}priority = 0\nvirtual_router_id = 256\npeer = nowhere\npreempt_delay = 1001\n"
    ));
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].contains("invalid priority `0`"), "{e:?}");
    assert!(e[2].contains("invalid IP address `nowhere`"), "{e:?}");
    assert!(e[3].contains("the limit is 1000"), "{e:?}");
}

#[test]
fn the_failover_example_validates() {
    let g = ok(&std::fs::read_to_string(root("examples/failover.cf")).unwrap()).global;
    assert!(g.failover() && g.effective_preempt() && g.sync == Some(true));
    assert_eq!(g.ping_node.len(), 2);
    assert_eq!(g.notify_email, vec!["ops@example.com"]);
}

#[test]
fn a_brace_after_multibyte_text_is_reported_not_a_panic() {
    // Found by the lvs_cf_parse fuzz target: the message sliced the line by
    // a character column as if it were a byte offset.
    let e = errors("z=}}=}}\u{791},,, G\u{791},}\"}}}0}G");
    assert!(
        e.iter()
            .any(|m| m.contains("unexpected `}` in the value of `z`")),
        "{e:?}"
    );
    let e = errors("name = caf\u{e9} }\n");
    assert_eq!(e, vec!["1:13: unexpected `}` in the value of `name`"]);
}

#[test]
fn warnings_do_not_fail() {
    let p = parse(
        "virtual a {\n address = 10.0.0.1\n load_monitor = rup\n server s {\n  address = 10.1.0.1\n }\n}\n",
    );
    assert!(!p.has_errors());
    let w: Vec<&str> = p.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("no `active` key"));
    assert!(w[1].contains("real server `s` has no `active` key"));
}

mod roundtrip {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn secs() -> impl Strategy<Value = Seconds> {
        (0u64..100_000, 0u32..1_000_000)
            .prop_map(|(s, us)| Seconds(Duration::from_secs(s) + Duration::from_micros(us.into())))
    }

    fn pos_secs() -> impl Strategy<Value = Seconds> {
        secs().prop_filter("positive", |s| !s.0.is_zero())
    }

    fn text() -> impl Strategy<Value = String> {
        // Anything the lexer can express, including quotes, escapes and #.
        "[ -~\t\r\n]{1,40}".prop_filter("not blank-edged", |s| s.trim() == s && !s.is_empty())
    }

    fn routing() -> impl Strategy<Value = Routing> {
        prop_oneof![
            Just(Routing::Nat),
            Just(Routing::Direct),
            Just(Routing::Tunnel)
        ]
    }

    prop_compose! {
        fn global()(
            serial in proptest::option::of(any::<u64>()),
            primary in proptest::option::of(prop_oneof![
                any::<u32>().prop_map(|a| Host::Addr(Ipv4Addr::from(a).into())),
                "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,5}){0,2}".prop_map(Host::Name),
            ]),
            backup_active in proptest::option::of(Just(false)), // true needs backup and a carried keepalive,
            hb_port in proptest::option::of(1u16..),
            keepalive in proptest::option::of(pos_secs()),
            network in proptest::option::of(routing()),
            nat in proptest::option::of((any::<u32>(), proptest::option::of("eth[0-9]:[0-9]"))),
            debug in proptest::option::of(text()),
            active_cmd in proptest::option::of(text()),
            syncd_id in proptest::option::of(any::<u8>()),
            tcp in proptest::option::of(0u32..=2_678_400),
            dataplane in proptest::option::of(prop_oneof![Just(Dataplane::Auto), Just(Dataplane::Ipvs), Just(Dataplane::Proxy), Just(Dataplane::Xdp)]),
            syncd in proptest::option::of((
                prop_oneof![
                    Just(SyncdRole::Auto),
                    Just(SyncdRole::Master),
                    Just(SyncdRole::Backup),
                    Just(SyncdRole::Both)
                ],
                1u16..=65507,
                any::<u8>(),
                1u16..,
                1u8..,
            )),
            ha in (
                proptest::option::of(1u8..),
                proptest::option::of(any::<bool>()),
                proptest::option::of(0u64..=1000),
                proptest::collection::vec(any::<u32>(), 0..3),
                proptest::option::of(text()),
                proptest::option::of(1u32..=100),
            ),
        ) -> Global {
            let (priority, preempt, preempt_delay, peers, notify, garp) = ha;
            let peers_mail: Vec<String> = peers.iter().map(|p| format!("ops{p}@example.test")).collect();
            Global {
                serial_no: serial,
                primary,
                backup_active,
                heartbeat_port: hb_port,
                keepalive,
                // deadtime must exceed keepalive
                deadtime: keepalive.map(|k| Seconds(k.0 * 3)),
                network,
                nat_router: nat.map(|(a, d)| AddrDev { addr: Ipv4Addr::from(a).into(), dev: d }),
                debug_level: debug,
                active_cmd,
                syncd_id,
                syncdaemon: syncd.map(|_| true),
                syncd_role: syncd.map(|s| s.0),
                syncd_maxlen: syncd.map(|s| s.1),
                syncd_group: syncd.map(|s| std::net::Ipv4Addr::new(239, 0, 0, s.2).into()),
                syncd_port: syncd.map(|s| s.3),
                syncd_ttl: syncd.map(|s| s.4),
                tcp_timeout: tcp,
                // Connection sync needs the kernel.
                dataplane: dataplane.filter(|d| syncd.is_none() || *d != Dataplane::Proxy),
                priority,
                preempt,
                preempt_delay: preempt_delay.map(Seconds::from_secs),
                vrrp_version: preempt.map(|_| VrrpVersion::V3),
                ping_node: peers.iter().rev().map(|a| Ipv4Addr::from(*a).into()).collect(),
                peer: peers.into_iter().map(|a| Ipv4Addr::from(a).into()).collect(),
                notify_email: peers_mail,
                vrrp_multicast: preempt.map(|p| !p),
                notify_script: notify,
                garp_count: garp,
                ..Default::default()
            }
        }
    }

    prop_compose! {
        fn server(i: usize, v6: bool, vport: u16, fw: bool)(
            active in proptest::option::of(any::<bool>()),
            weight in proptest::option::of(0u32..=65535),
            remap in proptest::option::of(1u16..),
            u in proptest::option::of(0u32..1000),
            pp in proptest::option::of(prop_oneof![Just(ProxyProtocolVersion::V1), Just(ProxyProtocolVersion::V2)]),
            ct in proptest::option::of(prop_oneof![Just(CheckType::Connect), Just(CheckType::Negotiate), Just(CheckType::Agent), Just(CheckType::Off)]),
        ) -> RealServer {
            let address: IpAddr = if v6 { Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128).into() } else { Ipv4Addr::from(0x0a01_0000 + i as u32).into() };
            RealServer {
                name: format!("rs{i}"),
                address: Some(address),
                active: Some(active.unwrap_or(true)),
                weight,
                // NAT only here, so remapping is always allowed.
                port: if fw { None } else { remap.or(Some(vport)) },
                forwarding: Some(Routing::Nat),
                tunnel: TunnelKeys::default(),
                uthreshold: u,
                lthreshold: u.map(|u| u / 2),
                proxy_protocol: pp,
                checktype: ct,
            }
        }
    }

    fn virtual_server(i: usize) -> impl Strategy<Value = VirtualServer> {
        (
            any::<bool>(),
            1u16..,
            any::<bool>(),
            proptest::option::of(1u32..),
            0usize..4,
        )
            .prop_flat_map(move |(v6, port, udp, fwmark, n)| {
                let servers: Vec<_> = (0..n)
                    .map(|k| server(i * 10 + k, v6, port, fwmark.is_some()))
                    .collect();
                (
                    Just((v6, port, udp, fwmark)),
                    servers,
                    proptest::option::of(prop_oneof![
                        Just(SchedulerKind::Wlc),
                        Just(SchedulerKind::Sh),
                        Just(SchedulerKind::Twos)
                    ]),
                    proptest::option::of(pos_secs()),
                    proptest::option::of(text()),
                    proptest::option::of(0u32..=2_678_400),
                )
            })
            .prop_map(
                move |(
                    (v6, port, udp, fwmark),
                    mut servers,
                    scheduler,
                    timeout,
                    send,
                    persistent,
                )| {
                    if udp {
                        servers.iter_mut().for_each(|s| s.proxy_protocol = None);
                    }
                    let addr: IpAddr = if v6 {
                        Ipv6Addr::from(0xfd00_u128 << 112 | i as u128).into()
                    } else {
                        Ipv4Addr::from(0xc000_0200 + i as u32).into()
                    };
                    VirtualServer {
                        name: format!("vs{i}"),
                        active: Some(true),
                        address: Some(AddrDev {
                            addr,
                            dev: Some("eth0:1".into()),
                        }),
                        fwmark,
                        protocol: Some(if udp { Protocol::Udp } else { Protocol::Tcp }),
                        port: Some(port),
                        sched_flags: if scheduler == Some(SchedulerKind::Sh) {
                            vec![SchedFlag::ShPort]
                        } else {
                            vec![]
                        },
                        scheduler,
                        persistent,
                        pmask: persistent.map(|_| {
                            if v6 {
                                Pmask::V6(64)
                            } else {
                                Pmask::V4(Ipv4Addr::new(255, 255, 255, 0))
                            }
                        }),
                        timeout,
                        send,
                        load_monitor: Some(LoadMonitor::None),
                        agent_port: Some(9000 + i as u16),
                        misc_dynamic: Some(i.is_multiple_of(2)),
                        servers,
                        ..Default::default()
                    }
                },
            )
    }

    fn config() -> impl Strategy<Value = Config> {
        (global(), 0usize..4).prop_flat_map(|(g, n)| {
            let vs: Vec<_> = (0..n).map(virtual_server).collect();
            (Just(g), vs).prop_map(|(mut global, virtuals)| {
                // fwmark services exist only on the packet-level planes;
                // the xdp plane has its own rules (tested on their own).
                if virtuals.iter().any(|v| v.fwmark.is_some())
                    || global.dataplane == Some(Dataplane::Xdp)
                {
                    global.dataplane = Some(Dataplane::Ipvs);
                }
                Config { global, virtuals }
            })
        })
    }

    proptest! {
        #[test]
        fn parse_of_write_is_identity(c in config()) {
            let text = write(&c);
            let p = parse(&text);
            prop_assert!(!p.has_errors(), "{}\n{}", text, p.render("w.cf", &text));
            prop_assert_eq!(p.config, c, "{}", text);
        }
    }
}

#[test]
fn connection_sync_keys() {
    let c = ok(
        "syncdaemon = 1\nsyncd_iface = eth1\nsyncd_id = 7\nsyncd_role = backup\nsyncd_maxlen = 1400\nsyncd_group = 239.1.1.1\nsyncd_port = 9000\nsyncd_ttl = 2\n",
    );
    assert_eq!(
        c.global.syncd(),
        Some(SyncdSettings {
            iface: "eth1".into(),
            id: 7,
            role: SyncdRole::Backup,
            maxlen: 1400,
            group: Some("239.1.1.1".parse().unwrap()),
            port: 9000,
            ttl: 2,
            auth: false,
        })
    );
    // Piranha's defaults: eth0, id 0; the role follows the election.
    let c = ok("syncdaemon = 1\n");
    let s = c.global.syncd().unwrap();
    assert_eq!(
        (s.iface.as_str(), s.id, s.role),
        ("eth0", 0, SyncdRole::Auto)
    );
    assert_eq!(
        c.kernel_only().as_deref(),
        Some("connection synchronisation (`syncdaemon = 1`) is the kernel's")
    );
    assert_eq!(ok("syncdaemon = 0\n").global.syncd(), None);
    assert_eq!(
        errors(
            "syncdaemon = 1\nsyncd_group = 10.0.0.1\nsyncd_iface = a/b\nsyncd_role = primary\nsyncd_ttl = 0\n"
        ),
        vec![
            "2:1: `10.0.0.1` is not a multicast address",
            "3:1: `a/b` is not an interface name",
            "4:14: unknown sync daemon role `primary`",
            "5:13: invalid TTL `0` for `syncd_ttl`",
        ]
    );
    assert_eq!(
        errors("dataplane = proxy\nsyncdaemon = 1\n"),
        vec![
            "2:1: connection synchronisation is for the packet planes: the `proxy` data plane's connections end at the director and cannot move to another"
        ]
    );
    let p = parse("syncd_id = 3\n");
    assert!(!p.has_errors());
    assert_eq!(
        p.diagnostics[0].message,
        "`syncd_id` has no effect without `syncdaemon = 1`"
    );
}

#[test]
fn ftp_by_direct_routing_is_warned_about() {
    let p = parse(
        "virtual f {\n address = 10.0.0.1\n active = 1\n port = ftp\n server s {\n  address = 10.1.0.1\n  active = 1\n  forwarding = direct\n }\n}\n",
    );
    assert!(!p.has_errors());
    assert_eq!(
        p.diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.span.line, d.span.col, d.message))
            .collect::<Vec<_>>(),
        vec![
            "8:3: FTP by direct routing: real server `s` will get the control connection (port 21) but not the data connections, which go to other ports"
        ]
    );
    // Through NAT the kernel's helper follows it.
    assert!(parse("virtual f {\n address = 10.0.0.1\n active = 1\n port = 21\n server s {\n  address = 10.1.0.1\n  active = 1\n }\n}\n").diagnostics.is_empty());
}

#[test]
fn the_xdp_plane_refuses_what_it_cannot_forward_yet_with_places() {
    // Fulcrum's sync daemons run on it, in every role.
    for role in ["backup", "master", "auto", "both"] {
        ok(&format!(
            "dataplane = xdp\nsyncdaemon = 1\nsyncd_role = {role}\nsyncd_iface = eth1\nvirtual web {{\n address = 192.0.2.10 eth0:1\n active = 1\n server a {{\n  address = 10.1.0.1\n  active = 1\n }}\n}}\n"
        ));
    }
    let good = "dataplane = xdp\nnat_router = 10.1.0.254 eth1:1\nvirtual web {\n address = 192.0.2.10 eth0:1\n active = 1\n scheduler = wrr\n server a {\n  address = 10.1.0.1\n  active = 1\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  forwarding = direct\n }\n server c {\n  address = 10.1.0.3\n  active = 1\n  forwarding = tunnel\n }\n}\n";
    ok(good);
    let bad = "dataplane = xdp\nsyncdaemon = 1\nvirtual web {\n address = 192.0.2.10\n active = 1\n scheduler = lblc\n persistent = 60\n server a {\n  address = 2001:db8::1\n  active = 1\n  forwarding = tunnel\n }\n}\nvirtual marked {\n address = 192.0.2.11 eth0\n fwmark = 3\n active = 1\n}\nvirtual sip {\n address = 192.0.2.12 eth0\n protocol = sctp\n port = 5060\n forwarding = nat\n active = 1\n server s {\n  address = 10.1.0.5\n  port = 5061\n  active = 1\n }\n}\n";
    assert_eq!(
        errors(bad),
        [
            "4:2: the `xdp` data plane runs on the interface of the virtual server's address: name it",
            "9:3: real server `a` is tunnelled across address families, which the `xdp` data plane does not do yet",
            "16:2: fwmark services need the `ipvs` data plane: XDP runs before anything marks a packet",
            "27:3: real server `s` remaps SCTP port 5060 to 5061, which the `xdp` data plane cannot do (it does not recompute SCTP's CRC)",
        ]
    );
}

#[test]
fn tunnel_keys_choose_the_tunnel_and_follow_ipvsadms_rules() {
    use fulcrum_core::{Forwarding, TunnelCsum, TunnelType};
    let good = "dataplane = ipvs\nvirtual web {\n address = 192.0.2.10 eth0:1\n active = 1\n forwarding = tunnel\n tunnel_type = gue\n tunnel_port = 6080\n server a {\n  address = 10.1.0.1\n  active = 1\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  tunnel_type = gre\n  tunnel_checksum = csum\n }\n server c {\n  address = 10.1.0.3\n  active = 1\n  tunnel_type = ipip\n }\n}\n";
    let c = ok(good);
    let t = c.table();
    let fwd: Vec<Forwarding> = t[0].dests.iter().map(|(_, d)| d.fwd).collect();
    let tunnel = |kind, port, csum| Forwarding::Tunnel { kind, port, csum };
    assert_eq!(
        fwd,
        [
            tunnel(TunnelType::Gue, 6080, TunnelCsum::NoCsum),
            tunnel(TunnelType::Gre, 0, TunnelCsum::Csum),
            Forwarding::TUNNEL,
        ],
        "a server's own tunnel keys replace its virtual server's"
    );
    // Written back, read the same.
    assert_eq!(ok(&write(&c)), c);

    let bad = "virtual v {\n address = 192.0.2.10 eth0:1\n active = 1\n forwarding = tunnel\n server a {\n  address = 10.1.0.1\n  active = 1\n  tunnel_type = gue\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  tunnel_port = 6080\n }\n server c {\n  address = 10.1.0.3\n  active = 1\n  tunnel_checksum = csum\n }\n server d {\n  address = 10.1.0.4\n  active = 1\n  tunnel_type = gre\n  tunnel_checksum = remcsum\n }\n server e {\n  address = 10.1.0.5\n  active = 1\n  forwarding = nat\n  tunnel_type = gue\n }\n server f {\n  address = 10.1.0.6\n  active = 1\n  tunnel_type = vxlan\n }\n}\n";
    let errs = errors(bad);
    for want in [
        "8:3: real server `a` is tunnelled by gue without a `tunnel_port`",
        "13:3: real server `b` is tunnelled by ipip, which has no port",
        "18:3: real server `c` is tunnelled by ipip, which has no checksum",
        "24:3: real server `d` is tunnelled by gre, which has no remote checksum",
        "30:3: real server `e` sets `tunnel_type` but uses nat routing",
    ] {
        assert!(errs.iter().any(|e| e == want), "{want}\n{errs:#?}");
    }
    assert!(
        errs.iter()
            .any(|e| e.starts_with("35:") && e.contains("vxlan")),
        "{errs:#?}"
    );

    // The xdp plane sends ipip and gue without a checksum.
    let xdp = "dataplane = xdp\nvirtual v {\n address = 192.0.2.10 eth0:1\n active = 1\n forwarding = tunnel\n server a {\n  address = 10.1.0.1\n  active = 1\n  tunnel_type = gue\n  tunnel_port = 6080\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  tunnel_type = gre\n }\n server c {\n  address = 10.1.0.3\n  active = 1\n  tunnel_type = gue\n  tunnel_port = 6080\n  tunnel_checksum = csum\n }\n}\n";
    assert_eq!(
        errors(xdp),
        [
            "15:3: real server `b` is tunnelled by gre, which the `xdp` data plane does not do",
            "22:3: real server `c` asks for a GUE checksum, which the `xdp` data plane does not compute",
        ]
    );
}

#[test]
fn syncd_auth_needs_the_key_and_fulcrums_own_daemons() {
    let cf = ok(
        "dataplane = xdp\nauth_key_file = /etc/fulcrum/ha.key\nsyncdaemon = 1\nsyncd_auth = 1\n",
    );
    assert!(cf.global.syncd().is_some_and(|s| s.auth));
    assert!(
        !ok("syncdaemon = 1\n").global.syncd().unwrap().auth,
        "off by default"
    );
    assert_eq!(
        errors("dataplane = ipvs\nsyncdaemon = 1\nsyncd_auth = 1\n"),
        [
            "3:1: `syncd_auth = 1` seals the sync messages with `auth_key_file`, which is not set",
            "3:1: the kernel's sync daemons neither seal nor check messages: `syncd_auth` is for Fulcrum's own (the `xdp` data plane)",
        ]
    );
}

#[test]
fn console_keys_and_their_mistakes() {
    let cf = ok(
        "console = 10.0.0.1:8090\nconsole_users = /etc/fulcrum/u\nconsole_tls_cert = /c.pem\nconsole_tls_key = /k.pem\n",
    );
    let c = cf.global.console.unwrap();
    assert_eq!(
        (c.addr.to_string(), c.port),
        ("10.0.0.1".into(), Some(8090))
    );
    assert_eq!(cf.global.console_users.as_deref(), Some("/etc/fulcrum/u"));
    // The writer keeps them.
    let back = fulcrum_config::parse(&fulcrum_config::write(&cf));
    assert_eq!(back.config, cf);
    assert_eq!(
        errors("console = 10.0.0.1\n"),
        ["1:1: `console` needs a port"]
    );
    assert_eq!(
        errors("console = 10.0.0.1:8090\nconsole_tls_cert = /c.pem\n"),
        ["2:1: `console_tls_cert` is set but not `console_tls_key`: the console's TLS needs both"]
    );
    let p = fulcrum_config::parse("console_users = /u\n");
    assert!(!p.has_errors());
    assert!(p.diagnostics[0].message.contains("no `console` address"));
}

mod editing {
    use fulcrum_config::edit::{Edit, Scope, apply, written};
    use proptest::prelude::*;

    const BASE: &str = "# top\nserial_no = 1\nvirtual web { # the site\n  active = 1\n  address = 10.0.0.1\n  port = 80\n  server rs1 {\n    address = 10.0.1.1\n    active = 1\n  }\n}\n";

    proptest! {
        /// Any text at all: the editor answers (Ok or a message), never
        /// panics, and a line it cannot make it refuses whole.
        #[test]
        fn any_text_and_value_never_panics(
            src in "[ -~\t\n{}#=\"\\\\]{0,200}",
            value in "[ -~]{0,30}",
            key in "[a-z_]{1,12}",
        ) {
            for scope in [Scope::Global, Scope::Virtual("web".into()), Scope::Server("web".into(), "rs1".into())] {
                let _ = apply(&src, &[Edit::Set { scope: scope.clone(), key: key.clone(), nth: 0, value: value.clone() }]);
                let _ = apply(&src, &[Edit::Unset { scope: scope.clone(), key: key.clone(), nth: 1 }]);
                let _ = apply(&src, &[Edit::AddBlock(scope.clone()), Edit::RemoveBlock(scope)]);
            }
            let _ = written(&src);
        }

        /// A value set is read back as written, and every other line stays.
        #[test]
        fn a_set_value_reads_back_and_nothing_else_moves(
            value in "[0-9a-z.:]{1,20}",
            key in prop_oneof![Just("weight"), Just("address"), Just("port"), Just("uthreshold")],
            server in any::<bool>(),
        ) {
            let scope = if server { Scope::Server("web".into(), "rs1".into()) } else { Scope::Virtual("web".into()) };
            let out = apply(BASE, &[Edit::Set { scope: scope.clone(), key: key.into(), nth: 0, value: value.clone() }]).unwrap();
            let w = written(&out);
            prop_assert!(w.iter().any(|x| x.scope == scope && x.key == key && x.value == value));
            let kept = |t: &str| t.lines().filter(|l| !l.trim_start().starts_with(&format!("{key} ="))).map(str::to_string).collect::<Vec<_>>();
            prop_assert_eq!(kept(&out), kept(BASE));
        }
    }
}

mod importing {
    use fulcrum_config::import::{keepalived, ldirectord};
    use proptest::prelude::*;

    proptest! {
        /// Hostile or broken files: the importers answer, never panic, and
        /// what they write is lvs.cf the parser reads.
        #[test]
        fn any_text_imports_without_panicking(
            src in "([ -~\t]{0,40}\n){0,12}",
            braces in "[{}a-z_0-9 .:\n\"!#=-]{0,120}",
        ) {
            for text in [&src, &braces] {
                let k = keepalived(text);
                let _ = fulcrum_config::parse(&k.text);
                let l = ldirectord(text);
                let _ = fulcrum_config::parse(&l.text);
            }
        }
    }

    #[test]
    fn keepalived_ranges_groups_and_broken_braces() {
        let k = keepalived(
            "virtual_server_group G {\n 10.0.0.1-3 80\n}\nvirtual_server group G {\n lb_algo wlc\n real_server 10.0.1.1 80 {\n  weight 3\n }\n}\n}\nvrrp_instance X {\n",
        );
        assert_eq!(k.text.matches("\nvirtual vs").count(), 3, "{}", k.text);
        assert!(k.text.contains("address = 10.0.0.3\n"), "{}", k.text);
        let p = fulcrum_config::parse(&k.text);
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        let notes: Vec<String> = k
            .notes
            .iter()
            .map(|n| format!("{}: {}", n.line, n.message))
            .collect();
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("10: a `}` that closes no block")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("11: this `{` is never closed")),
            "{notes:?}"
        );
        assert_eq!(
            notes
                .iter()
                .filter(|n| n.contains("one lvs.cf virtual server per member"))
                .count(),
            1,
            "said once: {notes:?}"
        );
    }

    #[test]
    fn ldirectord_forwarding_weights_and_unknown_keys() {
        let l = ldirectord(
            "quiescent=yes\nbogus=1\nvirtual=10.0.0.1:25\n\treal=10.0.1.1:25 masq 5\n\treal=10.0.1.2:25 ipip\n\tservice=smtp\n\tlogin=x\n",
        );
        let t = &l.text;
        assert!(t.contains("\t\tforwarding = nat\n\t\tweight = 5\n"), "{t}");
        assert!(t.contains("\t\tforwarding = tunnel\n"), "{t}");
        assert!(
            t.contains("\tchecktype = smtp\n\tquiesce_server = 1\n"),
            "{t}"
        );
        let notes: Vec<usize> = l.notes.iter().map(|n| n.line).collect();
        assert_eq!(notes, [2, 7]);
    }
}

#[test]
fn check_patterns_that_would_stop_the_director_are_errors_at_their_line() {
    assert_eq!(
        errors(
            "virtual web {\n address = 10.0.0.1\n port = 80\n active = 1\n checktype = http_get\n receive = \"(unclosed\"\n}\n"
        ),
        ["6:2: `receive` is not a valid regular expression: unclosed group"]
    );
    assert_eq!(
        errors(
            "virtual web {\n address = 10.0.0.1\n port = 25\n active = 1\n send = \"x\"\n expect = \"[a-\"\n use_regex = 1\n}\n"
        ),
        ["6:2: `expect` is not a valid regular expression: unclosed character class"]
    );
    // Literal text is not a pattern; a DNS check's `receive` is text.
    ok(
        "virtual web {\n address = 10.0.0.1\n port = 25\n active = 1\n send = \"x\"\n expect = \"[a-\"\n}\n",
    );
    ok(
        "virtual dns {\n address = 10.0.0.1\n port = 53\n protocol = udp\n active = 1\n checktype = dns\n request = example.com\n receive = \"(10.0\"\n}\n",
    );
}

#[test]
fn transparent_is_for_tcp_and_wants_the_director_as_router() {
    let e = errors(
        "virtual a {\n address = 10.0.0.1\n active = 1\n protocol = udp\n transparent = 1\n server s {\n  address = 10.1.0.1\n  active = 1\n }\n}\n",
    );
    assert_eq!(e, vec!["5:2: transparent proxying is for TCP services"]);
    let plain = "dataplane = proxy\nvirtual a {\n address = 10.0.0.1\n active = 1\n transparent = 1\n server s {\n  address = 10.1.0.1\n  active = 1\n }\n}\n";
    let p = parse(plain);
    assert!(!p.has_errors());
    let w: Vec<String> = p
        .diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}", d.span.line, d.span.col, d.message))
        .collect();
    assert_eq!(
        w,
        vec![
            "5:2: with `transparent = 1` the real servers see the client's address and must send their replies through this director"
        ]
    );
    let routed = format!("nat_router = 10.1.0.254 eth1:1\n{plain}");
    let p = parse(&routed);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let dests = p.config.transparent_dests();
    assert_eq!(dests.len(), 1);
    assert_eq!(
        (dests[0].1.to_string(), dests[0].2),
        ("10.1.0.1".into(), 80)
    );
}
