//! Whole clusters on kernel IPVS, in the VM (`../shared/tools/ipvs-vm`):
//! each scenario is a shell script in `tests/vm/` (after the helpers of
//! `tests/vm/lib.sh`) that builds its network of namespaces, runs `fulcrum
//! run` as the director and real clients and servers (busybox httpd and
//! wget), and prints sections the test reads. Root and the VM: runs with
//! FULCRUM_NETNS_TESTS=1 (.ci/run does).

use fulcrum_testbed::{section, vm_scenario};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

/// Run `tests/vm/NAME.sh` in the VM with the fulcrum binary and the
/// programs in `add`, each also given to the script as a variable.
/// One VM at a time: the emulated machines share two vCPUs, and a
/// scenario timing requests (wrr's spread) loses some beside another.
fn scenario(name: &str, add: &[(&str, &str)]) -> String {
    static ONE_VM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_VM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm");
    vm_scenario(&dir, name, BIN, add, 240)
}

/// tests/vm/pass.bpf.c compiled (an XDP program that passes every frame:
/// a veth takes frames sent back out of its peer with XDP_TX only when it
/// runs one), or `None`, said as missing for `test`, without clang.
fn pass_program(test: &str) -> Option<std::path::PathBuf> {
    let Some(clang) = program(&["/usr/bin/clang"]) else {
        fulcrum_testbed::missing_peer(test, "clang");
        return None;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm");
    let pass = std::env::temp_dir().join(format!(
        "fulcrum-pass-{}-{}.o",
        std::process::id(),
        test.len()
    ));
    let built = std::process::Command::new(clang)
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(dir.join("pass.bpf.c"))
        .arg(format!(
            "-I/usr/include/{}-linux-gnu",
            std::env::consts::ARCH
        ))
        .arg("-o")
        .arg(&pass)
        .status()
        .expect("clang runs");
    assert!(built.success(), "tests/vm/pass.bpf.c compiles");
    Some(pass)
}

/// The first of `paths` that exists.
fn program(paths: &[&'static str]) -> Option<&'static str> {
    paths
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists())
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_nat_cluster_on_kernel_ipvs() {
    let Some(vsftpd) = program(&["/usr/sbin/vsftpd"]) else {
        return fulcrum_testbed::missing_peer("five_node_nat_cluster_on_kernel_ipvs", "vsftpd");
    };
    let out = scenario("nat", &[("VSFTPD", vsftpd)]);
    // A Piranha file without `dataplane`: auto takes the kernel's IPVS.
    assert!(
        section(&out, "status").contains("kernel IPVS data plane (auto: the kernel has IPVS)"),
        "{out}"
    );
    // wrr 2000/1000/1000 over 400 requests, and each real server sees the
    // client's own address (NAT keeps it).
    assert_eq!(
        section(&out, "spread"),
        "200 rs1 [::ffff:10.0.0.2]\n100 rs2 [::ffff:10.0.0.2]\n100 rs3 [::ffff:10.0.0.2]\n",
        "{out}"
    );
    // fulcrum status counts what the kernel counted.
    let counts = section(&out, "status counts");
    assert!(
        counts.contains("(in the kernel) — 3 real servers, 0 active / ")
            && counts.contains(" inactive connections, 400 total"),
        "{out}"
    );
    // fulcrum adm answers from the kernel, byte for byte as ipvsadm.
    let oracle = section(&out, "oracle");
    assert!(!oracle.contains("DIFFERENT"), "{out}");
    assert_eq!(oracle.matches("same: ").count(), 12, "{out}");
    assert!(
        oracle.contains("Daemon has already run\nexit 255\nNo daemon is running\nexit 255\n"),
        "{out}"
    );
    assert_eq!(section(&out, "daemons after"), "", "{out}");
    assert!(
        section(&out, "zeroed").lines().all(|l| l.trim() == "0"),
        "-Z zeroes the kernel's counters: {out}"
    );
    // Passive FTP through NAT: Fulcrum loaded ip_vs_ftp, which rewrote the
    // server's address and made the data connection's entry.
    // Four sessions over two real servers: every one completes, and the
    // data connections went two to each (with their control connections).
    assert_eq!(
        section(&out, "ftp"),
        "hello over ftp\nexit 0\nhello over ftp\nexit 0\nhello over ftp\nexit 0\nhello over ftp\nexit 0\n\
         2 192.168.1.2\n2 192.168.1.3\nip_vs_ftp loaded\n",
        "{out}"
    );
    // nanny: a dead web server leaves the kernel table, and comes back.
    assert!(
        !section(&out, "rs2 out").contains("192.168.1.2:80"),
        "{out}"
    );
    assert!(section(&out, "rs2 out").contains("192.168.1.1:80"), "{out}");
    assert!(
        section(&out, "rs2 back").contains("192.168.1.2:80"),
        "{out}"
    );
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn direct_routing_tunnelling_and_a_persistent_fwmark_service() {
    let Some(tc) = program(&["/usr/sbin/tc", "/sbin/tc"]) else {
        return fulcrum_testbed::missing_peer(
            "direct_routing_tunnelling_and_a_persistent_fwmark_service",
            "tc (iproute2)",
        );
    };
    let out = scenario("dr", &[("TC", tc)]);
    assert_eq!(
        section(&out, "rs check"),
        "this host is ready as a real server\nexit 0\n",
        "{out}"
    );
    assert_eq!(
        section(&out, "table"),
        "-A -t 10.1.0.100:80 -s rr\n\
         -a -t 10.1.0.100:80 -r 10.1.0.1:80 -g -w 1\n\
         -a -t 10.1.0.100:80 -r 10.1.0.2:80 -g -w 1\n\
         -A -t 10.1.0.101:80 -s rr\n\
         -a -t 10.1.0.101:80 -r 10.2.0.3:80 -i -w 1 --tun-type ipip\n\
         -A -f 5 -s rr -p 60\n\
         -a -f 5 -r 10.1.0.1:0 -g -w 1\n\
         -a -f 5 -r 10.1.0.2:0 -g -w 1\n",
        "{out}"
    );
    // Direct routing: both real servers answer, seeing the client itself.
    assert_eq!(
        section(&out, "direct"),
        "10 rs1 [::ffff:10.1.0.10]\n10 rs2 [::ffff:10.1.0.10]\n",
        "{out}"
    );
    // Tunnelling: the real server behind the router answers.
    assert_eq!(
        section(&out, "tunnel"),
        "6 rs3 [::ffff:10.1.0.10]\n",
        "{out}"
    );
    // fwmark 5 gathers ports 80 and 443; persistence keeps the client on
    // one real server for both.
    let marked = section(&out, "marked");
    assert!(
        marked == "10 rs1 [::ffff:10.1.0.10]\n" || marked == "10 rs2 [::ffff:10.1.0.10]\n",
        "{out}"
    );
    // Replies bypass the director: no packet out through it, for any
    // service.
    let stats = section(&out, "stats");
    let services: Vec<&str> = stats
        .lines()
        .filter(|l| l.starts_with("TCP ") || l.starts_with("FWM "))
        .collect();
    assert_eq!(services.len(), 3, "{out}");
    for l in services {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert_ne!(cols[3], "0", "InPkts: {out}");
        assert_eq!(cols[4], "0", "OutPkts: {out}");
    }
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn failover_with_kernel_connection_sync_keeps_a_long_lived_connection() {
    let out = scenario("sync", &[]);
    // Both directors keep the table in their kernels.
    let tables = section(&out, "tables");
    let (d1, d2) = tables.split_once("--\n").expect("two tables");
    assert_eq!(d1, d2, "{out}");
    assert!(
        d1.contains("-a -t 10.1.0.100:7 -r 10.1.0.1:7 -g -w 1"),
        "{out}"
    );
    // The active director sends, the other receives.
    assert_eq!(
        section(&out, "daemons"),
        "master sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n--\n\
         backup sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
        "{out}"
    );
    assert!(
        section(&out, "status d1").contains("connection sync: master daemon on eth0 (syncid 9)"),
        "{out}"
    );
    // The client's connection reached the backup's kernel by sync.
    assert_eq!(section(&out, "synced").trim(), "1", "{out}");
    // (The shell may report the killed director after the count.)
    let before: u32 = section(&out, "before")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("a line count: {out}"));
    assert!(before < 80, "the connection was still going: {out}");
    // The active director dies; the backup takes the VIP and sends.
    section(&out, "d2 took the VIP");
    section(&out, "d2 sends");
    // Every line came back over the same connection.
    assert!(section(&out, "after").starts_with("80\nline 80\n"), "{out}");
    // Through the synced entry: the backup scheduled no new connection.
    let conns = section(&out, "d2 conns");
    let svc: Vec<&str> = conns.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(svc[2], "0", "no connection scheduled by d2: {out}");
    assert_ne!(svc[3], "0", "packets went through d2: {out}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn upgrades_keep_forwarding_changes_behind_its_back_are_undone_and_kernel_refusals_said() {
    let out = scenario("restart", &[]);
    // `--keep-forwarding`: the table, its record and the VIP stay, and the
    // kernel serves on with no director.
    assert!(out.contains("exit 0\n=== left"), "{out}");
    assert_eq!(
        section(&out, "left"),
        "-A -t 10.0.0.100:80 -s rr\n\
         -a -t 10.0.0.100:80 -r 192.168.1.1:80 -m -w 1\n\
         -a -t 10.0.0.100:80 -r 192.168.1.2:80 -m -w 1\n\
         -t 10.0.0.100:80\n1\n",
        "{out}"
    );
    assert!(section(&out, "served meanwhile").starts_with("rs"), "{out}");
    // The next director adopts the service: not re-created (its counters
    // go on), and said in the log.
    let adopted = section(&out, "adopted");
    let line = adopted.lines().next().unwrap();
    let n: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(n[2].trim_end_matches(','), n[4], "{out}");
    assert_ne!(n[4], "0", "{out}");
    assert_eq!(adopted.lines().nth(1), Some("1"), "{out}");
    // The kernel's own table size in the listing, as ipvsadm prints it.
    assert_eq!(
        section(&out, "header"),
        "IP Virtual Server version 1.2.1 (size=1024)\nsame\n",
        "{out}"
    );
    // Behind Fulcrum's back: both changes noticed and reported...
    let drift = section(&out, "drift");
    assert!(
        drift.contains("kernel table: 2 difference(s) from Fulcrum's"),
        "{out}"
    );
    assert!(
        drift.contains("real server 192.168.1.9:80 of tcp 10.0.0.100:80 not Fulcrum's")
            && drift.contains("real server 192.168.1.2:80 of tcp 10.0.0.100:80 changed"),
        "{out}"
    );
    // ...and a reload puts the file's table back.
    assert_eq!(
        section(&out, "reloaded"),
        "-A -t 10.0.0.100:80 -s rr\n\
         -a -t 10.0.0.100:80 -r 192.168.1.1:80 -m -w 1\n\
         -a -t 10.0.0.100:80 -r 192.168.1.2:80 -m -w 1\n",
        "{out}"
    );
    // A reload the kernel half refuses: what it refused and why, exit 1,
    // and the rest applied.
    let half = section(&out, "half");
    assert!(
        half.contains("adding service tcp 10.0.0.100:81: this kernel has no `sed` scheduler (module ip_vs_sed); choose another"),
        "{out}"
    );
    assert!(half.contains("exit 1\n"), "{out}");
    assert!(
        half.contains("-A -t 10.0.0.100:82 -s rr\n-a -t 10.0.0.100:82 -r 192.168.1.1:82 -m -w 1\n"),
        "{out}"
    );
    // A plain exit removes what the director installed (adopted services
    // too), its record, and the VIP.
    assert_eq!(section(&out, "stopped"), "0\n", "{out}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_nat_cluster_on_the_xdp_plane_on_another_kernel() {
    // The XDP plane on the VM's kernel (6.1) for kernel-version coverage.
    if fulcrum_xdp::program().is_err() {
        return fulcrum_testbed::missing_peer("the XDP plane in the VM", "clang (and libbpf-dev)");
    }
    let Some(ethtool) = program(&["/usr/sbin/ethtool", "/sbin/ethtool"]) else {
        return fulcrum_testbed::missing_peer("the XDP plane in the VM", "ethtool");
    };
    let out = scenario("xdp", &[("ETHTOOL", ethtool)]);
    assert!(
        section(&out, "status")
            .starts_with("Fulcrum director: xdp data plane (`dataplane = xdp` on dc ("),
        "{out}"
    );
    assert!(section(&out, "kernel").starts_with("6.1."), "{out}");
    // wrr 2000/1000/1000 over 400 requests, each answered, the client's own
    // address at the real servers, from the director's first connections on
    // (the early ones once went nearly round robin: clients reusing the
    // ports of the requests that found the VIP up, whose flows were in
    // TIME_WAIT, followed them unscheduled). The emulated VM is slow when the
    // host is busy: a request that times out shifts the sequence by one.
    let spread: Vec<(usize, String)> = section(&out, "spread")
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            Some((n.parse().ok()?, rest.to_string()))
        })
        .collect();
    let names: Vec<&str> = spread.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "rs1 [::ffff:10.0.0.2]",
            "rs2 [::ffff:10.0.0.2]",
            "rs3 [::ffff:10.0.0.2]"
        ],
        "{out}"
    );
    // A real server that left during the spread would shift it: none may.
    assert_eq!(
        section(&out, "downs"),
        "0\n",
        "a real server went down during the spread: {out}"
    );
    let near = |got: usize, want: usize| got.abs_diff(want) <= 2;
    assert!(
        near(spread[0].0, 200) && near(spread[1].0, 100) && near(spread[2].0, 100),
        "{out}"
    );
    let answered: usize = spread.iter().map(|(n, _)| n).sum();
    assert!(answered >= 398, "{out}");
    let scheduled: usize = section(&out, "scheduled").trim().parse().unwrap_or(0);
    assert!(
        (answered..=400).contains(&scheduled),
        "{answered} answered but {scheduled} connections scheduled: {out}"
    );
    let table = section(&out, "table");
    assert!(
        table.contains("  -> 192.168.1.1:80               Masq    2000   0"),
        "{out}"
    );
    // The flows in TIME_WAIT (2 minutes; a slow run loses the first few,
    // seen as low as 376 of 400): the spread's 400 and the few requests
    // that found the virtual server up before it.
    let conns: usize = section(&out, "conns").trim().parse().unwrap_or(0);
    assert!((370..=410).contains(&conns), "{out}");
    let nanny = section(&out, "nanny");
    assert!(nanny.starts_with("rs2 out\n"), "{out}");
    assert!(!nanny.contains("rs2\n"), "{out}");
    assert_eq!(section(&out, "stop"), "detached\n", "{out}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn gue_tunnels_from_kernel_ipvs_and_xdp_reach_fou_and_the_decapsulation_program() {
    if fulcrum_xdp::program().is_err() {
        return fulcrum_testbed::missing_peer("GUE in the VM", "clang (and libbpf-dev)");
    }
    let Some(ethtool) = program(&["/usr/sbin/ethtool", "/sbin/ethtool"]) else {
        return fulcrum_testbed::missing_peer("GUE in the VM", "ethtool");
    };
    let Some(pass) = pass_program("GUE in the VM") else {
        return;
    };
    let out = scenario(
        "gue",
        &[("ETHTOOL", ethtool), ("PASS", pass.to_str().unwrap())],
    );
    let _ = std::fs::remove_file(&pass);
    assert!(
        section(&out, "rs2 setup").contains("(GUE on UDP port 6080)"),
        "{out}"
    );
    // The table as the kernel's own ipvsadm shows it, tunnel column and
    // all (the counters left out: they move between the two listings).
    let cut = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                l.chars()
                    .take(52)
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    };
    let ours = section(&out, "ipvs tun-info");
    assert_eq!(cut(ours), cut(section(&out, "ipvsadm tun-info")), "{out}");
    assert_eq!(ours.matches("Tunnel  gue:6080:-c").count(), 2, "{out}");
    assert_eq!(
        section(&out, "xdp tun-info")
            .matches("Tunnel  gue:6080:-c")
            .count(),
        2,
        "{out}"
    );
    // Through kernel IPVS, then through the XDP program: both real servers
    // (the kernel's fou, Fulcrum's program) answer, in turn, and see the
    // client's own address. The emulated VM may lose a request when the
    // host is busy.
    for plane in ["ipvs", "xdp"] {
        let spread: Vec<(usize, String)> = section(&out, plane)
            .lines()
            .filter_map(|l| {
                let (n, rest) = l.split_once(' ')?;
                Some((n.parse().ok()?, rest.to_string()))
            })
            .collect();
        let names: Vec<&str> = spread.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            names,
            ["rs1 [::ffff:10.3.0.10]", "rs2 [::ffff:10.3.0.10]"],
            "{plane}: {out}"
        );
        assert!(
            spread.iter().all(|(n, _)| (9..=11).contains(n)),
            "{plane}: {out}"
        );
    }
    assert_eq!(section(&out, "decap counted").trim(), "1", "{out}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn connection_sync_between_kernel_ipvs_and_the_xdp_plane_both_ways() {
    if fulcrum_xdp::program().is_err() {
        return fulcrum_testbed::missing_peer(
            "sync to the XDP plane in the VM",
            "clang (and libbpf-dev)",
        );
    }
    let Some(ethtool) = program(&["/usr/sbin/ethtool", "/sbin/ethtool"]) else {
        return fulcrum_testbed::missing_peer("sync with the XDP plane in the VM", "ethtool");
    };
    let Some(pass) = pass_program("sync with the XDP plane in the VM") else {
        return;
    };
    let out = scenario(
        "sync_xdp",
        &[("ETHTOOL", ethtool), ("PASS", pass.to_str().unwrap())],
    );
    let _ = std::fs::remove_file(&pass);
    // The kernel master's connections, each on d2 with the same client,
    // state and real server.
    let d1 = section(&out, "d1 conns");
    let d2 = section(&out, "d2 conns");
    assert_eq!(d1.lines().count(), 4, "{out}");
    assert!(
        d1.lines().all(|l| l.starts_with("ESTABLISHED 10.1.0.10:")),
        "{out}"
    );
    assert_eq!(d1, d2, "{out}");
    let status = section(&out, "d2 status");
    assert!(
        status.starts_with("connection sync: backup (Fulcrum's receiver) on eth0 (syncid 9): "),
        "{out}"
    );
    assert!(!status.contains(": 0 messages"), "{out}");
    assert_eq!(section(&out, "echoed").trim(), "160", "{out}");

    // And back: the XDP master's flows in the kernel backup's table, as
    // the real ipvsadm lists them.
    let flows = section(&out, "d2 flows");
    let synced = section(&out, "d1 synced");
    assert_eq!(flows.lines().count(), 4, "{out}");
    assert!(
        flows
            .lines()
            .all(|l| l.starts_with("ESTABLISHED 10.1.0.10:")),
        "{out}"
    );
    assert_eq!(flows, synced, "{out}");
    assert!(
        section(&out, "d1 daemon").starts_with("backup sync daemon (mcast=eth0, syncid=9"),
        "{out}"
    );
    let sender = section(&out, "d2 sender");
    assert!(
        sender.starts_with("connection sync: master (Fulcrum's sender) on eth0 (syncid 9): "),
        "{out}"
    );
    assert!(!sender.contains(": 0 messages"), "{out}");
    assert_eq!(section(&out, "echoed back").trim(), "320", "{out}");
}
