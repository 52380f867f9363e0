//! `dataplane = xdp` in the seed's five-node network (network namespaces on
//! the host kernel, which has no IPVS): Fulcrum's XDP program forwards by
//! NAT, the real servers see the client's own address, wrr keeps its
//! ratios, `fulcrum adm` lists the program's counts and flows, nanny's
//! decisions reach the program, and a reload under load loses no flow.
//! Runs when built with FULCRUM_NETNS_TESTS=1; otherwise reported as
//! ignored.

use fulcrum_testbed::{Bg, CLIENT, FiveNode, NAT_ROUTER, RS, Scratch as Dir, VIP, sh, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

fn config(sched: &str, weights: [u32; 3], extra: &str) -> String {
    let mut s = format!(
        "primary = 10.200.1.2\nnetwork = nat\ndataplane = xdp\nnat_router = {NAT_ROUTER} eth1:1\nvirtual server vs1 {{\n address = {VIP} eth0:1\n active = 1\n port = 80\n scheduler = {sched}\n{extra}"
    );
    for (i, w) in weights.iter().enumerate() {
        s.push_str(&format!(
            " server rs{} {{\n  address = {}\n  active = 1\n  weight = {w}\n }}\n",
            i + 1,
            RS[i]
        ));
    }
    s.push_str("}\n");
    s
}

/// XDP_REDIRECT into a veth needs GRO (or a program) on the peer that
/// receives: the client's side and the private bridge's port. And senders
/// on veths hand over TCP/UDP checksums half done (checksum offload), which
/// a redirected frame cannot finish: the client and the real servers
/// compute theirs in full, as real NICs deliver them.
fn receivers_take_redirects(net: &FiveNode) {
    net.exec("cli", "ethtool -K eth0 gro on tx off");
    net.exec("lan", "ethtool -K p-dir gro on");
    for rs in ["rs1", "rs2", "rs3"] {
        net.exec(rs, "ethtool -K eth0 tx off");
    }
}

fn adm(control: &str, args: &str) -> String {
    sh(&format!("{BIN} adm --control {control} {args}"))
}

/// Whether this build has the XDP program (clang at build time).
fn built_with_xdp() -> bool {
    if fulcrum_xdp::program().is_err() {
        fulcrum_testbed::missing_peer("the XDP plane scenarios", "clang (and libbpf-dev)");
        return false;
    }
    true
}

fn start(net: &FiveNode, cf: &str, control: &str) -> Bg {
    let d = net.spawn(
        "dir",
        BIN,
        &["run", "--config", cf, "--control", control],
        &[],
    );
    wait_for("the director", 10, || {
        std::path::Path::new(control).exists()
    });
    d
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_nat_in_xdp_keeps_wrr_ratios_and_the_clients_address() {
    if !built_with_xdp() {
        return;
    }
    let mut net = FiveNode::new("x");
    net.start_realservers(BIN);
    receivers_take_redirects(&net);
    let tmp = Dir::new("xdp-nat");
    let cf = tmp.file("lvs.cf");
    std::fs::write(&cf, config("wrr", [200, 100, 100], "")).unwrap();
    let control = tmp.file("control.sock");
    let mut director = start(&net, &cf, &control);
    let dir = net.ns("dir");
    let links = sh(&format!("ip -n {dir} link show"));
    assert!(
        links.matches("prog/xdp").count() >= 2,
        "the program runs on eth0 and eth1: {links}"
    );
    let status = sh(&format!("{BIN} status --control {control}"));
    assert!(
        status.starts_with(
            "Fulcrum director: xdp data plane (`dataplane = xdp` on eth0 (native), eth1 (native))"
        ),
        "{status}"
    );

    // The real server sees the client's own address (NAT, not a proxy).
    let head = net.exec("cli", &format!("curl -si --max-time 3 http://{VIP}/"));
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-client: {CLIENT}:")),
        "{head}"
    );
    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in $(seq 399); do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    let count = |n: &str| out.lines().filter(|l| *l == n).count();
    let got = (count("rs1"), count("rs2"), count("rs3"));
    // 400 connections in all, the first one above included.
    assert_eq!(
        got.0 + got.1 + got.2,
        399,
        "every request answered: {}",
        &out[..out.len().min(300)]
    );
    assert!(
        got.0 >= 199 && got.1 >= 99 && got.2 >= 99,
        "wrr 200/100/100 over 400 connections: {got:?}"
    );
    // The listing shows what the program counted: 400 connections, all
    // closed (TIME_WAIT, inactive), in ipvsadm's format.
    let listing = adm(&control, "-L -n");
    assert_eq!(
        listing,
        format!(
            "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  {VIP}:80 wrr\n  -> {}:80                Masq    200    0          200       \n  -> {}:80                Masq    100    0          100       \n  -> {}:80                Masq    100    0          100       \n",
            RS[0], RS[1], RS[2]
        )
    );
    let stats = adm(&control, "-L -n --stats");
    let svc_line = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap()
        .to_string();
    assert!(
        svc_line.split_whitespace().nth(2) == Some("400"),
        "400 connections counted: {stats}"
    );
    let conns = adm(&control, "-L -n -c");
    let lines: Vec<&str> = conns.lines().skip(2).collect();
    assert_eq!(lines.len(), 400, "{conns}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!(" {CLIENT}:")) && l.contains("TIME_WAIT")),
        "{}",
        lines[0]
    );

    assert_eq!(director.signal_and_wait("TERM"), Some(0));
    let links = sh(&format!("ip -n {dir} link show"));
    assert!(!links.contains("prog/xdp"), "detached on exit: {links}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn in_xdp_nanny_removes_a_dead_real_server_and_a_reload_under_load_loses_nothing() {
    if !built_with_xdp() {
        return;
    }
    let mut net = FiveNode::new("y");
    net.start_realservers(BIN);
    receivers_take_redirects(&net);
    let tmp = Dir::new("xdp-reload");
    let cf = tmp.file("lvs.cf");
    let checks = " check_interval = 0.3\n timeout = 1\n reentry = 1\n";
    std::fs::write(&cf, config("wlc", [1, 1, 1], checks)).unwrap();
    let control = tmp.file("control.sock");
    let mut director = start(&net, &cf, &control);

    // Load: a client fetching in a loop, counting failures, while the
    // table is reloaded with new weights and a new scheduler.
    let loader = net.spawn(
        "cli",
        "sh",
        &[
            "-c",
            &format!(
                "ok=0; bad=0; for i in $(seq 300); do if curl -s --max-time 3 http://{VIP}/ >/dev/null; then ok=$((ok+1)); else bad=$((bad+1)); fi; done; echo $ok $bad > {}",
                tmp.file("result")
            ),
        ],
        &[],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    for (i, sched) in ["wrr", "rr", "wlc"].iter().enumerate() {
        std::fs::write(
            &cf,
            config(sched, [3 + i as u32, 1, 2], checks).replace(
                "primary = 10.200.1.2\n",
                &format!("primary = 10.200.1.2\nserial_no = {}\n", i + 2),
            ),
        )
        .unwrap();
        sh(&format!("{BIN} reload --control {control}"));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    wait_for("the load to finish", 60, || {
        std::path::Path::new(&tmp.file("result")).exists()
    });
    drop(loader);
    let result = std::fs::read_to_string(tmp.file("result")).unwrap();
    assert_eq!(
        result.trim(),
        "300 0",
        "no request lost across three reloads"
    );
    let listing = adm(&control, "-L -n");
    assert!(listing.contains(&format!("TCP  {VIP}:80 wlc")), "{listing}");

    // rs2 dies: nanny takes it out, new connections go to the others.
    net.exec("rs2", "ip link set eth0 down");
    wait_for("nanny to remove rs2", 10, || {
        !adm(&control, "-L -n").contains(RS[1])
    });
    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in $(seq 20); do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    assert_eq!(out.lines().count(), 20, "{out}");
    assert!(!out.contains("rs2"), "{out}");
    // It comes back and re-enters.
    net.exec("rs2", "ip link set eth0 up");
    net.exec("rs2", &format!("ip route add default via {NAT_ROUTER}"));
    wait_for("nanny to restore rs2", 15, || {
        adm(&control, "-L -n").contains(RS[1])
    });
    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in $(seq 30); do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    assert!(out.contains("rs2"), "{out}");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

/// Namespaces deleted when the test ends, passed or not.
struct Nets(Vec<String>);

impl Drop for Nets {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = fulcrum_testbed::try_sh(&format!("ip netns del {n}"));
        }
    }
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn direct_routing_and_tunnelling_in_xdp_to_real_servers_without_ipip() {
    if !built_with_xdp() {
        return;
    }
    // client -- pub bridge -- director (eth0 | eth1) -- lan bridge -- rs1, rs2;
    // a router on both bridges is the real servers' gateway, so their
    // replies (from the virtual addresses) go to the client without the
    // director, as with LVS-DR and LVS-TUN.
    let p = format!("xt{}", std::process::id() % 100_000);
    let n = |s: &str| format!("{p}-{s}");
    let nets = Nets(
        ["cli", "pub", "dir", "rt", "lan", "rs1", "rs2"]
            .iter()
            .map(|s| n(s))
            .collect(),
    );
    for ns in &nets.0 {
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    }
    let (cli, pubn, dir, rt, lan) = (n("cli"), n("pub"), n("dir"), n("rt"), n("lan"));
    for (br, ns) in [("br0", &pubn), ("br0", &lan)] {
        sh(&format!(
            "ip -n {ns} link add {br} type bridge && ip -n {ns} link set {br} up"
        ));
    }
    let plug = |host: &str, dev: &str, bridge_ns: &str, port: &str, addr: &str| {
        sh(&format!(
            "ip link add {port} netns {bridge_ns} type veth peer name {dev} netns {host} && \
             ip -n {bridge_ns} link set {port} master br0 up && \
             ip -n {host} addr add {addr} dev {dev} && ip -n {host} link set {dev} up"
        ));
    };
    plug(&cli, "eth0", &pubn, "p-cli", "10.210.1.10/24");
    plug(&dir, "eth0", &pubn, "p-dir", "10.210.1.2/24");
    plug(&rt, "eth0", &pubn, "p-rt", "10.210.1.254/24");
    plug(&dir, "eth1", &lan, "p-dir", "10.210.2.1/24");
    plug(&rt, "eth1", &lan, "p-rt", "10.210.2.254/24");
    sh(&format!(
        "ip netns exec {rt} sysctl -qw net.ipv4.ip_forward=1"
    ));
    // Redirects into eth1 land on the bridge's port: GRO there. The
    // client's checksums in full (see receivers_take_redirects).
    sh(&format!(
        "ip netns exec {lan} ethtool -K p-dir gro on >/dev/null"
    ));
    sh(&format!(
        "ip netns exec {cli} ethtool -K eth0 tx off >/dev/null"
    ));
    let tmp = Dir::new("xdp-drtun");
    let mut procs = Vec::new();
    for (i, rs) in ["rs1", "rs2"].iter().enumerate() {
        let ns = n(rs);
        plug(
            &ns,
            "eth0",
            &lan,
            &format!("p-{rs}"),
            &format!("10.210.2.{}/24", 3 + i),
        );
        sh(&format!("ip -n {ns} route add default via 10.210.2.254"));
        let state = tmp.file(&format!("{rs}.state"));
        sh(&format!(
            "ip netns exec {ns} {BIN} realserver-setup --mode direct --vip 10.210.1.100 --state {state}"
        ));
        let out = sh(&format!(
            "ip netns exec {ns} {BIN} realserver-setup --mode tunnel --decap xdp --gue-port 6080 --vip 10.210.1.101 --vip 10.210.1.102 --state {state}"
        ));
        assert!(
            out.contains(
                "done: attach the XDP decapsulation program to eth0 (GUE on UDP port 6080)"
            ),
            "{out}"
        );
        let mut c = std::process::Command::new("ip");
        c.args([
            "netns",
            "exec",
            &ns,
            BIN,
            "realserver",
            "--listen",
            "0.0.0.0:80",
            "--name",
            rs,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        procs.push(Bg(c.spawn().unwrap()));
    }
    assert!(
        !std::path::Path::new("/sys/class/net/tunl0").exists()
            || sh(&format!("ip -n {} link show", n("rs1"))).contains("prog/xdp"),
        "the program, not ipip, decapsulates"
    );
    let cf = tmp.file("lvs.cf");
    std::fs::write(
        &cf,
        "primary = 10.210.1.2\nnetwork = direct\ndataplane = xdp\nnat_router = 10.210.2.250 eth1:1\n\
         virtual dr {\n address = 10.210.1.100 eth0:1\n active = 1\n port = 80\n scheduler = rr\n check_interval = 0.3\n\
          server rs1 {\n  address = 10.210.2.3\n  active = 1\n }\n server rs2 {\n  address = 10.210.2.4\n  active = 1\n }\n}\n\
         virtual tun {\n address = 10.210.1.101 eth0:2\n active = 1\n port = 80\n scheduler = rr\n check_interval = 0.3\n\
          server rs1 {\n  address = 10.210.2.3\n  active = 1\n  forwarding = tunnel\n }\n server rs2 {\n  address = 10.210.2.4\n  active = 1\n  forwarding = tunnel\n }\n}\n\
         virtual gue {\n address = 10.210.1.102 eth0:3\n active = 1\n port = 80\n scheduler = rr\n check_interval = 0.3\n\
          forwarding = tunnel\n tunnel_type = gue\n tunnel_port = 6080\n\
          server rs1 {\n  address = 10.210.2.3\n  active = 1\n }\n server rs2 {\n  address = 10.210.2.4\n  active = 1\n }\n}\n",
    )
    .unwrap();
    let control = tmp.file("control.sock");
    let mut c = std::process::Command::new("ip");
    c.args([
        "netns",
        "exec",
        &dir,
        BIN,
        "run",
        "--config",
        &cf,
        "--control",
        &control,
    ]);
    if std::env::var_os("FULCRUM_TEST_VERBOSE").is_none() {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    let mut director = Bg(c.spawn().unwrap());
    wait_for("the director", 10, || {
        std::path::Path::new(&control).exists()
    });
    wait_for("both real servers up in every service", 10, || {
        adm(&control, "-L -n").matches("Route").count() == 2
            && adm(&control, "-L -n").matches("Tunnel").count() == 4
    });
    // The tunnels, as ipvsadm's --tun-info shows them.
    let tun = adm(&control, "-L -n --tun-info");
    assert_eq!(tun.matches("Tunnel  gue:6080:-c   1 ").count(), 2, "{tun}");
    for vip in ["10.210.1.100", "10.210.1.101", "10.210.1.102"] {
        let out = sh(&format!(
            "ip netns exec {cli} sh -c 'for i in $(seq 20); do curl -si --max-time 3 http://{vip}/; done'"
        ));
        let lower = out.to_ascii_lowercase();
        assert_eq!(
            lower.matches("x-client: 10.210.1.10:").count(),
            20,
            "{vip}: {out}"
        );
        assert_eq!(
            out.lines().filter(|l| *l == "rs1").count(),
            10,
            "{vip}: {out}"
        );
        assert_eq!(
            out.lines().filter(|l| *l == "rs2").count(),
            10,
            "{vip}: {out}"
        );
    }
    let listing = adm(&control, "-L -n --stats");
    assert!(listing.contains("TCP  10.210.1.101:80"), "{listing}");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
    drop(procs);
    for rs in ["rs1", "rs2"] {
        let ns = n(rs);
        let state = tmp.file(&format!("{rs}.state"));
        let out = sh(&format!(
            "ip netns exec {ns} {BIN} realserver-setup --undo --state {state}"
        ));
        assert!(
            out.contains("undone: attach the XDP decapsulation program to eth0"),
            "{out}"
        );
        assert!(
            !sh(&format!("ip -n {ns} link show eth0")).contains("prog/xdp"),
            "detached"
        );
    }
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn failover_moves_the_addresses_and_the_backups_program_forwards() {
    if !built_with_xdp() {
        return;
    }
    use fulcrum_testbed::DIRECTOR_PUBLIC;
    let mut net = FiveNode::with_directors("w", 2);
    net.start_realservers(BIN);
    net.xdp_ready(2);
    let tmp = Dir::new("xdp-ha");
    let cf = tmp.file("lvs.cf");
    std::fs::write(
        &cf,
        config("rr", [1, 1, 1], "").replace(
            "primary = 10.200.1.2\n",
            &format!(
                "primary = {}\nbackup = {}\nbackup_active = 1\nheartbeat = 1\nkeepalive = 0.1\ndeadtime = 0.5\n",
                DIRECTOR_PUBLIC[0], DIRECTOR_PUBLIC[1]
            ),
        ),
    )
    .unwrap();
    let controls: Vec<String> = (0..2).map(|i| tmp.file(&format!("d{i}.sock"))).collect();
    let mut ds = net.start_directors(BIN, &cf, &controls);
    let holds = |i: usize| net.holds_vip(i);
    wait_for("the primary to hold the VIP", 5, || holds(0) && !holds(1));
    let cli = net.ns("cli");
    let get = |n: usize| {
        let o = fulcrum_testbed::try_sh(&format!(
            "ip netns exec {cli} sh -c 'for i in $(seq {n}); do curl -s --max-time 2 http://{VIP}/; done'"
        ));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(get(9).lines().count(), 9, "served by the primary's program");
    // The primary dies as a machine does: kill -9 and its links gone (a
    // killed process leaves its addresses, which a live kernel would go on
    // answering ARP for). The backup takes the addresses; its program
    // forwards.
    ds[0].signal_and_wait("KILL");
    net.exec("dir", "ip link set eth0 down");
    net.exec("dir", "ip link set eth1 down");
    wait_for("the backup to take over", 5, || holds(1));
    // The real servers' neighbour entries for the NAT router address
    // still name the dead director's MAC until the backup's gratuitous
    // ARPs are taken (the kernel ignores them within `locktime` of the
    // last update): the first replies may be lost, as with kernel IPVS.
    wait_for("the backup to serve every real server", 30, || {
        get(3).lines().count() == 3
    });
    let out = get(9);
    assert_eq!(
        out.lines().count(),
        9,
        "served by the backup's program: {out}"
    );
    let status = sh(&format!("{BIN} status --control {}", controls[1]));
    assert!(status.contains("xdp data plane"), "{status}");
    assert!(status.contains("failover: MASTER"), "{status}");
    let listing = adm(&controls[1], "-L -n");
    assert!(listing.matches("Masq    1").count() == 3, "{listing}");
    assert_eq!(ds[1].signal_and_wait("TERM"), Some(0));
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network namespaces: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn the_sync_receiver_installs_what_it_may_and_shrugs_off_garbage() {
    if !built_with_xdp() {
        return;
    }
    use fulcrum_sync::{Conn, DEFAULT_MAXLEN, encode};
    let net = FiveNode::new("xs");
    receivers_take_redirects(&net);
    let tmp = Dir::new("xdp-sync");
    let cf = tmp.file("lvs.cf");
    std::fs::write(
        &cf,
        config(
            "wlc",
            [1, 1, 1],
            " checktype = off\n",
        )
        .replace(
            "dataplane = xdp\n",
            "dataplane = xdp\nsyncdaemon = 1\nsyncd_role = backup\nsyncd_iface = eth1\nsyncd_id = 9\n",
        ),
    )
    .unwrap();
    let control = tmp.file("control.sock");
    let mut director = net.spawn(
        "dir",
        BIN,
        &[
            "run",
            "--config",
            &cf,
            "--control",
            &control,
            "--metrics",
            "127.0.0.1:9109",
        ],
        &[],
    );
    wait_for("the director", 10, || {
        std::path::Path::new(&control).exists()
    });
    wait_for("the receiver", 10, || {
        sh(&format!("{BIN} status --control {control}")).contains("connection sync: backup")
    });

    let conn = |cport: u16, dest: &str| Conn {
        protocol: 6,
        flags: 0,
        state: 1,
        client: ("198.51.100.7".parse().unwrap(), cport),
        virt: (VIP.parse().unwrap(), 80),
        dest: (dest.parse().unwrap(), 80),
        fwmark: 0,
        timeout: Some(900),
        seq: None,
        pe: None,
    };
    // Garbage first (random lengths and bytes, a message cut short), one
    // message of another sync id, then the real one: two connections on
    // real servers this director has, one on a real server it has not.
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 1400) as usize;
        datagrams.push((0..len).map(|i| (x >> (i % 56)) as u8).collect());
    }
    let good = encode(
        9,
        &[
            conn(40000, RS[0]),
            conn(40001, RS[1]),
            conn(40002, "10.200.2.99"),
        ],
        DEFAULT_MAXLEN,
    )
    .unwrap()
    .remove(0);
    let mut cut = good.clone();
    cut.truncate(50);
    datagrams.push(cut);
    datagrams.push(
        encode(8, &[conn(40003, RS[2])], DEFAULT_MAXLEN)
            .unwrap()
            .remove(0),
    );
    datagrams.push(good);
    let file = tmp.file("datagrams");
    let mut blob = Vec::new();
    for d in &datagrams {
        blob.extend_from_slice(&(d.len() as u32).to_be_bytes());
        blob.extend_from_slice(d);
    }
    std::fs::write(&file, blob).unwrap();
    // Sent from a real server's namespace onto the private LAN, to the
    // group, as a master on the LAN would; a pause after the garbage, so
    // that a busy machine's receiver has drained it before the real ones.
    let py = format!(
        "import socket,struct,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton('{}'))\n\
         b=open('{file}','rb').read()\n\
         i=0\n\
         k=0\n\
         while i<len(b):\n\
         \x20 n=struct.unpack('>I',b[i:i+4])[0]; s.sendto(b[i+4:i+4+n],('224.0.0.81',8848)); i+=4+n; k+=1\n\
         \x20 if k=={garbage}: time.sleep(1)\n",
        RS[0],
        garbage = 500
    );
    let script = tmp.file("send.py");
    std::fs::write(&script, py).unwrap();
    net.exec("rs1", &format!("python3 {script}"));
    wait_for("the synced flows listed", 10, || {
        adm(&control, "-L -n -c")
            .matches("198.51.100.7:4000")
            .count()
            == 2
    });
    let listing = adm(&control, "-L -n -c");
    for (port, rs) in [(40000, RS[0]), (40001, RS[1])] {
        let line = listing
            .lines()
            .find(|l| l.contains(&format!("198.51.100.7:{port}")))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(line.contains("ESTABLISHED"), "{listing}");
        assert!(line.trim_end().ends_with(&format!("{rs}:80")), "{listing}");
    }
    assert!(!listing.contains("198.51.100.7:40002"), "{listing}");
    assert!(
        !listing.contains("198.51.100.7:40003"),
        "another sync id: {listing}"
    );
    // Counted: the status line says what came and what went.
    let status = sh(&format!("{BIN} status --control {control}"));
    let line = status
        .lines()
        .find(|l| {
            l.starts_with("connection sync: backup (Fulcrum's receiver) on eth1 (syncid 9): ")
        })
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.contains("(2 new flows, 0 updated, 0 templates, 1 of no service or real server here)"),
        "{line}"
    );
    assert!(!line.contains(" 0 malformed"), "{line}");
    // ActiveConn counts the synced flows.
    let table = adm(&control, "-L -n");
    assert!(
        table.contains(&format!("  -> {}:80", RS[0])) && table.contains("Masq    1      1"),
        "{table}"
    );
    // And in /metrics.
    let metrics = net.exec("dir", "curl -s http://127.0.0.1:9109/metrics");
    assert!(
        metrics.contains("fulcrum_sync_flows_added_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fulcrum_sync_entries_unknown_total 1\n"),
        "{metrics}"
    );
    // ipvsadm's daemon commands: listed as the kernel lists its backup
    // daemon, stopped, started again; a master beside it.
    assert_eq!(
        adm(&control, "-L --daemon"),
        "backup sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    adm(&control, "--stop-daemon backup");
    assert_eq!(adm(&control, "-L --daemon"), "");
    adm(
        &control,
        "--start-daemon backup --mcast-interface eth1 --syncid 9",
    );
    assert!(adm(&control, "-L --daemon").starts_with("backup sync daemon (mcast=eth1, syncid=9"));
    // A master beside it (peer to peer), its size from the link's MTU;
    // a second of a role is refused as the kernel refuses it.
    adm(&control, "--start-daemon master --mcast-interface eth1");
    assert_eq!(
        adm(&control, "-L --daemon"),
        "master sync daemon (mcast=eth1, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    let out = std::process::Command::new(BIN)
        .args([
            "adm",
            "--control",
            &control,
            "--start-daemon",
            "master",
            "--mcast-interface",
            "eth1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Daemon has already run\n"
    );
    adm(&control, "--stop-daemon master");
    assert!(adm(&control, "-L --daemon").starts_with("backup sync daemon"));
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network namespaces: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn with_syncd_auth_the_receiver_takes_only_what_the_key_sealed_once_and_in_time() {
    use fulcrum::xdp_sync::{AUTH_WINDOW_US, SyncAuth};
    use fulcrum_sync::{Conn, DEFAULT_MAXLEN, encode};
    if !built_with_xdp() {
        return;
    }
    let net = FiveNode::new("xa");
    let tmp = Dir::new("xdp-sync-auth");
    let key = tmp.file("sync.key");
    std::fs::write(&key, "a shared secret of 32 characters\n").unwrap();
    sh(&format!("chmod 600 {key}"));
    let cf = tmp.file("lvs.cf");
    std::fs::write(
        &cf,
        config("wlc", [1, 1, 1], " checktype = off\n").replace(
            "dataplane = xdp\n",
            &format!(
                "dataplane = xdp\nauth_key_file = {key}\nsyncdaemon = 1\nsyncd_role = backup\nsyncd_iface = eth1\nsyncd_auth = 1\n"
            ),
        ),
    )
    .unwrap();
    let control = tmp.file("control.sock");
    let mut director = start(&net, &cf, &control);
    wait_for("the receiver", 10, || {
        sh(&format!("{BIN} status --control {control}")).contains("connection sync: backup")
    });
    let msg = |cport: u16| {
        let c = Conn {
            protocol: 6,
            flags: 0,
            state: 1,
            client: ("198.51.100.7".parse().unwrap(), cport),
            virt: (VIP.parse().unwrap(), 80),
            dest: (RS[0].parse().unwrap(), 80),
            fwmark: 0,
            timeout: Some(900),
            seq: None,
            pe: None,
        };
        encode(0, &[c], DEFAULT_MAXLEN).unwrap().remove(0)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let (from, group): (std::net::IpAddr, std::net::IpAddr) =
        (RS[0].parse().unwrap(), "224.0.0.81".parse().unwrap());
    let mut right = SyncAuth::new(b"a shared secret of 32 characters");
    let sealed = right.seal(from, group, &msg(40012), now);
    let datagrams = [
        msg(40010),                                                                 // not sealed
        SyncAuth::new(b"someone else's key!!").seal(from, group, &msg(40011), now), // another key
        sealed.clone(),                                                             // good
        sealed,                                                                     // replayed
        // A recording from before the window, by a sender that numbered it then.
        SyncAuth::new(b"a shared secret of 32 characters").seal(
            from,
            group,
            &msg(40013),
            now - AUTH_WINDOW_US - 1_000_000,
        ),
    ];
    // From a real server's namespace onto the private LAN, as a master there.
    net.run_in("rs1", || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_multicast_if_v4(&RS[0].parse().unwrap()).unwrap();
        let to: std::net::SocketAddr = "224.0.0.81:8848".parse().unwrap();
        for d in &datagrams {
            s.send_to(d, &to.into()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    wait_for("the sealed flow listed", 10, || {
        adm(&control, "-L -n -c").contains("198.51.100.7:40012")
    });
    let listing = adm(&control, "-L -n -c");
    for refused in [40010, 40011, 40013] {
        assert!(
            !listing.contains(&format!("198.51.100.7:{refused}")),
            "{listing}"
        );
    }
    wait_for("the refusals counted", 5, || {
        sh(&format!("{BIN} status --control {control}"))
            .contains("; sealed: 2 unauthenticated, 2 replayed refused")
    });
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network namespaces: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn peer_to_peer_sync_sends_our_flows_and_takes_the_others() {
    use fulcrum_sync::{Conn, DEFAULT_MAXLEN, encode};
    use std::io::{Read, Write};
    if !built_with_xdp() {
        return;
    }
    // `syncd_role = both`: this director sends the connections it
    // forwards and installs those another director (here, the test on the
    // private LAN) sends.
    let mut net = FiveNode::new("xp");
    net.start_realservers(BIN);
    receivers_take_redirects(&net);
    let tmp = Dir::new("xdp-sync-both");
    let cf = tmp.file("lvs.cf");
    std::fs::write(
        &cf,
        config("rr", [1, 1, 1], " checktype = off\n").replace(
            "dataplane = xdp\n",
            "dataplane = xdp\nsyncdaemon = 1\nsyncd_role = both\nsyncd_iface = eth1\nsyncd_id = 3\n",
        ),
    )
    .unwrap();
    let control = tmp.file("control.sock");
    let mut director = start(&net, &cf, &control);
    wait_for("both daemons", 10, || {
        let s = sh(&format!("{BIN} status --control {control}"));
        s.contains("connection sync: master") && s.contains("connection sync: backup")
    });
    // Listening on the LAN as another director would.
    let listener = net.run_in("rs1", || {
        let s = fulcrum_sync::receive::open("224.0.0.81".parse().unwrap(), 8848, "eth0").unwrap();
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    });
    // A kept-alive connection through the director: its third packet
    // (the second request) makes it synced.
    let mut conn = net.run_in("cli", || {
        std::net::TcpStream::connect_timeout(
            &format!("{VIP}:80").parse().unwrap(),
            std::time::Duration::from_secs(5),
        )
        .unwrap()
    });
    let local = conn.local_addr().unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    for _ in 0..2 {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: v\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        assert!(conn.read(&mut buf).unwrap() > 0);
    }
    let mut buf = [0u8; 2048];
    let synced = loop {
        let n = listener.recv(&mut buf).expect("a sync message on the LAN");
        let d = fulcrum_sync::decode(&buf[..n]).unwrap();
        assert_eq!(d.syncid, 3);
        if let Some(c) = d
            .conns
            .into_iter()
            .find(|c| c.client == (local.ip(), local.port()))
        {
            break c;
        }
    };
    assert_eq!(synced.virt, (VIP.parse().unwrap(), 80));
    assert_eq!(synced.state, 1, "ESTABLISHED");
    assert!(
        RS.iter().any(|r| synced.dest == (r.parse().unwrap(), 80)),
        "{synced:?}"
    );
    // Another director's connection arrives and is installed; this
    // director's own messages are not looped back into it.
    let theirs = Conn {
        protocol: 6,
        flags: 0,
        state: 1,
        client: ("198.51.100.9".parse().unwrap(), 41000),
        virt: (VIP.parse().unwrap(), 80),
        dest: (RS[2].parse().unwrap(), 80),
        fwmark: 0,
        timeout: Some(900),
        seq: None,
        pe: None,
    };
    let msg = encode(3, &[theirs], DEFAULT_MAXLEN).unwrap().remove(0);
    net.run_in("rs1", || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_multicast_if_v4(&RS[0].parse().unwrap()).unwrap();
        let to: std::net::SocketAddr = "224.0.0.81:8848".parse().unwrap();
        s.send_to(&msg, &to.into()).unwrap();
    });
    wait_for("the other director's connection", 10, || {
        adm(&control, "-L -n -c").contains("198.51.100.9:41000")
    });
    let status = sh(&format!("{BIN} status --control {control}"));
    let backup = status
        .lines()
        .find(|l| l.starts_with("connection sync: backup"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        backup.contains(": 1 messages, 1 entries (1 new flows"),
        "{backup}"
    );
    drop(conn);
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}
