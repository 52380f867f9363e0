//! The director in the seed's five-node network (network namespaces; root).
//! Runs when built with FULCRUM_NETNS_TESTS=1; otherwise reported as ignored.

use fulcrum_testbed::{Bg, CLIENT, FiveNode, NAT_ROUTER, RS, Scratch as Dir, VIP, sh, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

fn seed_config(sched: &str, weights: [u32; 3]) -> String {
    let mut s = format!(
        "primary = 10.200.1.2\nnetwork = nat\nnat_router = {NAT_ROUTER} eth1:1\nvirtual server vs1 {{\n address = {VIP} eth0:1\n active = 1\n port = 80\n scheduler = {sched}\n"
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

fn start_realservers(net: &mut FiveNode) {
    net.start_realservers(BIN);
}

/// `fulcrum run` in the director's namespace, once its control socket is up.
fn start_director(net: &FiveNode, cf: &str, control: &str) -> Bg {
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

fn adm(control: &str, args: &str) -> String {
    sh(&format!("{BIN} adm --control {control} {args}"))
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_network_addresses_announcements_and_wrr() {
    let mut net = FiveNode::new("a");
    start_realservers(&mut net);
    // Let the client take gratuitous ARPs, so the announcement is visible.
    net.exec("cli", "sysctl -qw net.ipv4.conf.eth0.arp_accept=1");
    let tmp = Dir::new("five");
    let cf = tmp.file("lvs.cf");
    std::fs::write(&cf, seed_config("wrr", [2000, 1000, 1000])).unwrap();
    let control = tmp.file("control.sock");
    let mut director: Bg = net.spawn(
        "dir",
        BIN,
        &["run", "--config", &cf, "--control", &control],
        &[],
    );
    wait_for("the virtual address", 10, || {
        net.addrs("dir", "eth0").contains(&format!("{VIP}/32"))
    });
    let eth0 = net.addrs("dir", "eth0");
    assert!(
        eth0.contains(&format!("inet {VIP}/32 scope global eth0:1")),
        "{eth0}"
    );
    let eth1 = net.addrs("dir", "eth1");
    assert!(
        eth1.contains(&format!("inet {NAT_ROUTER}/32 scope global eth1:1")),
        "{eth1}"
    );
    // The gratuitous ARP reached the client before it sent anything.
    let cli = net.ns("cli");
    wait_for("the client's neighbour entry for the VIP", 5, || {
        sh(&format!("ip -n {cli} neigh show {VIP}")).contains("lladdr")
    });
    // The real servers reach the outside through the NAT router address.
    net.exec("rs1", &format!("ping -c1 -W2 {NAT_ROUTER}"));

    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in $(seq 400); do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    let count = |n: &str| out.lines().filter(|l| *l == n).count();
    assert_eq!(
        (count("rs1"), count("rs2"), count("rs3")),
        (200, 100, 100),
        "{}",
        &out[..out.len().min(300)]
    );
    let listing = adm(&control, "-L -n");
    assert_eq!(
        listing,
        format!(
            "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  {VIP}:80 wrr\n  -> {}:80                Masq    2000   0          200       \n  -> {}:80                Masq    1000   0          100       \n  -> {}:80                Masq    1000   0          100       \n",
            RS[0], RS[1], RS[2]
        )
    );
    let conns = adm(&control, "-L -n -c");
    assert!(
        conns
            .lines()
            .skip(2)
            .all(|l| l.contains(&format!(" {CLIENT}:"))),
        "connections come from the client"
    );

    // SIGTERM: exactly the added addresses go, and the director exits 0.
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
    assert!(!net.addrs("dir", "eth0").contains(VIP));
    assert!(!net.addrs("dir", "eth1").contains(NAT_ROUTER));
    assert!(
        !std::path::Path::new(&control).exists(),
        "the control socket is removed"
    );
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn an_address_the_host_already_has_is_left_alone() {
    let mut net = FiveNode::new("b");
    start_realservers(&mut net);
    let dir_ns = net.ns("dir");
    sh(&format!("ip -n {dir_ns} addr add {VIP}/24 dev eth0"));
    let tmp = Dir::new("present");
    let cf = tmp.file("lvs.cf");
    std::fs::write(&cf, seed_config("rr", [1, 1, 1])).unwrap();
    let control = tmp.file("control.sock");
    let mut director = start_director(&net, &cf, &control);
    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in 1 2 3; do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    // rr starts at the head of the list, where IPVS put the newest dest.
    assert_eq!(out, "rs3\nrs2\nrs1\n");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
    assert!(
        net.addrs("dir", "eth0").contains(&format!("{VIP}/24")),
        "an address the director did not add stays"
    );
    assert!(
        !net.addrs("dir", "eth1").contains(NAT_ROUTER),
        "the one it added goes"
    );
}

/// A director killed with SIGKILL leaves its addresses; restarted, it
/// knows them as its own from its state file: it announces them again (a
/// client whose neighbour entry went stale learns the director's MAC) and
/// removes them when it stops.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_restart_after_kill_takes_its_addresses_back_and_removes_them_on_exit() {
    let mut net = FiveNode::new("k");
    start_realservers(&mut net);
    net.exec("cli", "sysctl -qw net.ipv4.conf.eth0.arp_accept=1");
    let tmp = Dir::new("killed");
    let cf = tmp.file("lvs.cf");
    std::fs::write(&cf, seed_config("rr", [1, 1, 1])).unwrap();
    let control = tmp.file("control.sock");
    let state = tmp.file("control.addresses");
    let mut first = start_director(&net, &cf, &control);
    wait_for("the virtual address", 10, || {
        net.addrs("dir", "eth0").contains(&format!("{VIP}/32"))
    });
    let recorded = std::fs::read_to_string(&state).unwrap();
    assert!(
        recorded.contains(VIP) && recorded.contains(NAT_ROUTER),
        "{recorded}"
    );
    first.signal_and_wait("KILL");
    assert!(net.addrs("dir", "eth0").contains(&format!("{VIP}/32")));
    // The client's entry for the VIP goes stale and wrong meanwhile.
    let cli = net.ns("cli");
    sh(&format!(
        "ip -n {cli} neigh replace {VIP} lladdr 02:00:00:00:00:01 dev eth0 nud stale"
    ));
    let mac = net.exec("dir", "cat /sys/class/net/eth0/address");
    let mac = mac.trim();
    let mut second = start_director(&net, &cf, &control);
    wait_for("the client to learn the director's MAC again", 5, || {
        sh(&format!("ip -n {cli} neigh show {VIP}")).contains(mac)
    });
    assert_eq!(
        net.exec("cli", &format!("curl -s --max-time 3 http://{VIP}/"))
            .trim()
            .len(),
        3,
        "served"
    );
    assert_eq!(second.signal_and_wait("TERM"), Some(0));
    assert!(
        !net.addrs("dir", "eth0").contains(VIP),
        "the VIP is removed"
    );
    assert!(!net.addrs("dir", "eth1").contains(NAT_ROUTER));
    assert!(
        !std::path::Path::new(&state).exists(),
        "nothing held, nothing recorded"
    );
}

/// The real ldirectord manages a virtual service through Fulcrum answering
/// as ipvsadm (reference/platform.md §6): it adds the service and its real
/// servers, reads them back with -L -n, and removes a real server whose
/// check fails.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn ldirectord_drives_fulcrum_as_ipvsadm() {
    if !std::path::Path::new("/usr/sbin/ldirectord").exists() {
        panic!("ldirectord is not installed: .ci/run installs it (apt-get install ldirectord)");
    }
    let mut net = FiveNode::new("c");
    start_realservers(&mut net);
    let dir_ns = net.ns("dir");
    // The VIP is heartbeat's business in an ldirectord setup: put it up by hand.
    sh(&format!("ip -n {dir_ns} addr add {VIP}/24 dev eth0"));
    let tmp = Dir::new("ldirectord");
    let cf = tmp.file("empty.cf");
    std::fs::write(&cf, "# the table comes from ldirectord\n").unwrap();
    let control = tmp.file("control.sock");
    let d = start_director(&net, &cf, &control);
    net.procs.push(d);

    let ld_cf = tmp.file(&format!("ld{}.cf", std::process::id()));
    std::fs::write(
        &ld_cf,
        format!(
            "checktimeout=2\ncheckinterval=1\nautoreload=no\nquiescent=no\nlogfile=\"{}\"\nvirtual={VIP}:80\n\treal={}:80 masq\n\treal={}:80 masq\n\tservice=http\n\trequest=\"/\"\n\treceive=\"rs\"\n\tscheduler=rr\n\tprotocol=tcp\n\tchecktype=negotiate\n",
            tmp.file("ld.log"),
            RS[0],
            RS[1]
        ),
    )
    .unwrap();
    let script = format!(
        "mount --bind {BIN} /usr/sbin/ipvsadm && exec env FULCRUM_CONTROL={control} ldirectord -d {ld_cf} start"
    );
    let mut ld = net.spawn(
        "dir",
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &script],
        &[],
    );

    let listing = || sh(&format!("{BIN} adm --control {control} -L -n"));
    wait_for(
        "ldirectord to add the service and both real servers",
        20,
        || {
            let l = listing();
            l.contains(&format!("TCP  {VIP}:80 rr"))
                && l.contains(&format!("{}:80", RS[0]))
                && l.contains(&format!("{}:80", RS[1]))
        },
    );
    let l = listing();
    assert!(
        l.contains(&format!("  -> {}:80                Masq    1      ", RS[0])),
        "{l}"
    );
    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in 1 2 3 4; do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(
        names,
        vec!["rs1", "rs1", "rs2", "rs2"],
        "rr over what ldirectord added: {out}"
    );

    // rs2 dies: ldirectord's check fails and it deletes rs2 through us.
    net.procs.remove(1);
    wait_for("ldirectord to remove rs2", 20, || {
        !listing().contains(&format!("{}:80", RS[1]))
    });
    let out = net.exec(
        "cli",
        &format!("sh -c 'for i in 1 2 3; do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    assert_eq!(out, "rs1\nrs1\nrs1\n");
    let _ = ld.signal_and_wait("TERM");
}

/// wlc under concurrent connections, quiesce, a SIGHUP reload that drops a
/// real server under open connections, and a UDP service — all in the
/// five-node network.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_wlc_quiesce_sighup_reload_and_udp() {
    let mut net = FiveNode::new("d");
    start_realservers(&mut net);
    for (i, addr) in RS.iter().enumerate() {
        let name = format!("u{}", i + 1);
        let listen = format!("{addr}:5353");
        let p = net.spawn(
            &format!("rs{}", i + 1),
            BIN,
            &["realserver", "--udp", "--listen", &listen, "--name", &name],
            &[],
        );
        net.procs.push(p);
    }
    let tmp = Dir::new("wlc");
    let cf = tmp.file("lvs.cf");
    let udp = format!(
        "virtual dns {{\n address = {VIP}\n active = 1\n protocol = udp\n port = 53\n scheduler = rr\n server u1 {{\n  address = {}\n  port = 5353\n  active = 1\n }}\n server u2 {{\n  address = {}\n  port = 5353\n  active = 1\n }}\n}}\n",
        RS[0], RS[1]
    );
    std::fs::write(&cf, format!("{}{udp}", seed_config("wlc", [2, 1, 1]))).unwrap();
    let control = tmp.file("control.sock");
    let mut director = start_director(&net, &cf, &control);

    // 40 kept-alive connections, held until a file appears, then used again.
    let go = tmp.file("go");
    let holder_py = tmp.file("hold.py");
    std::fs::write(
        &holder_py,
        format!(
            r#"import os, socket, sys, time
def ask(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf or not buf.endswith(b"\n"):
        d = s.recv(4096)
        if not d: return "CLOSED"
        buf += d
    return buf.split(b"\r\n\r\n", 1)[1].decode().strip()
# One at a time, each established and used before the next arrives (a burst
# of SYNs would be scheduled on inactive counts, as IPVS does).
conns, names = [], []
for _ in range(40):
    s = socket.create_connection(("{VIP}", 80), timeout=5)
    names.append(ask(s))
    conns.append(s)
print(" ".join(names), flush=True)
for _ in range(300):
    if os.path.exists("{go}"): break
    time.sleep(0.1)
print(" ".join(ask(s) for s in conns), flush=True)
"#
        ),
    )
    .unwrap();
    let mut holder = std::process::Command::new("ip")
        .args(["netns", "exec", &net.ns("cli"), "python3", &holder_py])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    let before: Vec<&str> = first.split_whitespace().collect();
    let count = |v: &[&str], n: &str| v.iter().filter(|x| **x == n).count();
    assert_eq!(
        (
            count(&before, "rs1"),
            count(&before, "rs2"),
            count(&before, "rs3")
        ),
        (20, 10, 10),
        "{first}"
    );
    let l = adm(&control, "-L -n");
    assert!(
        l.contains(&format!(
            "  -> {}:80                Masq    2      20         0         \n",
            RS[0]
        )),
        "{l}"
    );

    // Quiesce rs1: no new connections to it.
    adm(&control, &format!("-e -t {VIP}:80 -r {}:80 -m -w 0", RS[0]));
    let fresh = net.exec(
        "cli",
        &format!("sh -c 'for i in 1 2 3 4 5 6; do curl -s --max-time 3 http://{VIP}/; done'"),
    );
    assert!(!fresh.contains("rs1"), "{fresh}");

    // SIGHUP with rs3 gone from the file: the table follows (and rs1 is back
    // to its configured weight), the 40 open connections carry on.
    std::fs::write(
        &cf,
        format!(
            "{}{udp}",
            seed_config("wlc", [2, 1, 1]).replace(
                &format!(
                    " server rs3 {{\n  address = {}\n  active = 1\n  weight = 1\n }}\n",
                    RS[2]
                ),
                ""
            )
        ),
    )
    .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &director.0.id().to_string()])
        .status();
    wait_for("the reload", 10, || {
        !adm(&control, "-L -n").contains(&format!("{}:80", RS[2]))
    });
    assert!(
        adm(&control, "-L -n")
            .contains(&format!("  -> {}:80                Masq    2      ", RS[0]))
    );
    std::fs::write(&go, "").unwrap();
    let mut second = String::new();
    std::io::BufRead::read_line(&mut out, &mut second).unwrap();
    assert_eq!(
        second, first,
        "every open connection still answers from its real server"
    );
    let _ = holder.wait();

    // UDP: flows from four client sockets, round robin, replies from the VIP.
    let udp_py = format!(
        r#"import socket
names = []
for _ in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(b"q", ("{VIP}", 53)); d, a = s.recvfrom(64)
    assert a == ("{VIP}", 53), a
    names.append(d.decode().strip())
print(" ".join(names))
"#
    );
    let names = net.exec(
        "cli",
        &format!("python3 -c '{}'", udp_py.replace('\'', "\"")),
    );
    let names: Vec<&str> = names.split_whitespace().collect();
    assert_eq!(
        (count(&names, "u1"), count(&names, "u2")),
        (2, 2),
        "{names:?}"
    );
    // "%-33s" then "%9llu" conns: four flows.
    let stats = adm(&control, "-L -n --stats");
    assert!(
        stats.contains(&format!("{:<33}{:>9}", format!("UDP  {VIP}:53"), 4)),
        "{stats}"
    );
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

/// The seed's nanny in the five-node network: a stopped real server leaves
/// the table within `timeout` plus one check interval while requests keep
/// succeeding; started again it returns after `reentry`; with
/// `quiesce_server` it stays at weight 0; with none alive the sorry server
/// answers.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_health_checks_remove_and_restore_real_servers() {
    let mut net = FiveNode::new("e");
    start_realservers(&mut net);
    // The sorry server runs on the director's private address.
    let sorry = net.spawn(
        "dir",
        BIN,
        &[
            "realserver",
            "--listen",
            "10.200.2.1:8080",
            "--name",
            "sorry",
        ],
        &[],
    );
    net.procs.push(sorry);
    let tmp = Dir::new("health");
    let cf = tmp.file("lvs.cf");
    let cfg = |quiesce: u8| {
        seed_config("rr", [1, 1, 1]).replace(
            " scheduler = rr\n",
            &format!(" scheduler = rr\n check_interval = 0.2\n timeout = 1\n reentry = 1\n quiesce_server = {quiesce}\n sorry_server = 10.200.2.1:8080\n"),
        )
    };
    std::fs::write(&cf, cfg(0)).unwrap();
    let control = tmp.file("control.sock");
    let mut director = start_director(&net, &cf, &control);
    let listing = || adm(&control, "-L -n");
    let has = |rs: &str| listing().contains(&format!("{rs}:80"));
    assert!(
        RS.iter().all(|r| has(r)),
        "all three pass the first checks: {}",
        listing()
    );
    let sorry_in = || listing().contains("  -> 10.200.2.1:8080 ");
    assert!(!sorry_in(), "no sorry server while real servers are alive");
    let cli = net.ns("cli");
    let get = |n: usize| {
        sh(&format!(
            "ip netns exec {cli} sh -c 'for i in $(seq {n}); do curl -s --max-time 3 http://{VIP}/; done'"
        ))
    };

    // Stop rs2: out within timeout (1 s) + one interval (0.2 s), plus slack.
    let t = std::time::Instant::now();
    net.procs.remove(1);
    wait_for("rs2 to leave the table", 5, || !has(RS[1]));
    let gone = t.elapsed();
    assert!(
        gone < std::time::Duration::from_millis(2500),
        "rs2 left after {gone:?}"
    );
    let out = get(9);
    assert_eq!(out.lines().count(), 9, "every request succeeds: {out}");
    assert!(!out.contains("rs2"));
    let status = sh(&format!("{BIN} status --control {control}"));
    assert!(
        status.contains("dead") && status.contains("Connection refused"),
        "{status}"
    );

    // Start it again: back after reentry (1 s of good checks).
    let t = std::time::Instant::now();
    let p = net.spawn(
        "rs2",
        BIN,
        &[
            "realserver",
            "--listen",
            &format!("{}:80", RS[1]),
            "--name",
            "rs2",
        ],
        &[],
    );
    net.procs.insert(1, p);
    wait_for("rs2 to return", 10, || has(RS[1]));
    let back = t.elapsed();
    assert!(
        back >= std::time::Duration::from_millis(900),
        "returned after only {back:?}"
    );
    assert!(get(6).contains("rs2"));

    // Quiesce mode: a dead server stays listed at weight 0.
    std::fs::write(&cf, cfg(1)).unwrap();
    sh(&format!("{BIN} reload --control {control}"));
    net.procs.remove(2); // rs3
    let rs3_zero = format!("  -> {}:80                Masq    0      ", RS[2]);
    wait_for("rs3 at weight 0", 5, || listing().contains(&rs3_zero));
    assert!(!get(6).contains("rs3"));

    // All stopped: the sorry server answers; one back, it goes away again.
    net.procs.remove(0); // rs1
    net.procs.remove(0); // rs2
    wait_for("the sorry server", 5, sorry_in);
    assert!(
        sh(&format!("{BIN} status --control {control}"))
            .contains("sorry server 10.200.2.1:8080 in: no real server is alive")
    );
    assert_eq!(get(2), "sorry\nsorry\n");
    let p = net.spawn(
        "rs1",
        BIN,
        &[
            "realserver",
            "--listen",
            &format!("{}:80", RS[0]),
            "--name",
            "rs1",
        ],
        &[],
    );
    net.procs.push(p);
    wait_for("rs1 back and the sorry server gone", 10, || {
        !sorry_in() && listing().contains(&format!("  -> {}:80                Masq    1 ", RS[0]))
    });
    assert_eq!(get(2), "rs1\nrs1\n");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_ping_checks_follow_the_hosts() {
    let mut net = FiveNode::new("p");
    start_realservers(&mut net);
    let tmp = Dir::new("ping");
    let cf = tmp.file("lvs.cf");
    // ICMP from a fresh namespace: raw sockets (datagram ICMP is refused
    // there, platform.md §4.2).
    std::fs::write(
        &cf,
        seed_config("rr", [1, 1, 1]).replace(
            " scheduler = rr\n",
            " scheduler = rr\n checktype = ping\n check_interval = 0.2\n timeout = 1\n reentry = 0\n",
        ),
    )
    .unwrap();
    let control = tmp.file("control.sock");
    let mut director = start_director(&net, &cf, &control);
    let has = |rs: &str| adm(&control, "-L -n").contains(&format!("{rs}:80"));
    wait_for("all three hosts answering pings", 5, || {
        RS.iter().all(|r| has(r))
    });
    // rs3's service stops but the host still answers: ping keeps it in.
    net.procs.remove(2);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(has(RS[2]), "ping checks the host, not the service");
    // rs2's link goes down: no echo replies, out within timeout + interval.
    let rs2 = net.ns("rs2");
    sh(&format!("ip -n {rs2} link set eth0 down"));
    wait_for("rs2 to leave the table", 5, || !has(RS[1]));
    let status = sh(&format!("{BIN} status --control {control}"));
    assert!(status.contains("no echo reply"), "{status}");
    sh(&format!("ip -n {rs2} link set eth0 up"));
    wait_for("rs2 to return", 10, || has(RS[1]));
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn five_node_dynamic_weights_follow_the_agents() {
    let mut net = FiveNode::new("w");
    start_realservers(&mut net);
    let tmp = Dir::new("agents");
    // `fulcrum agent` on every real server, each with a state file.
    for (i, addr) in RS.iter().enumerate() {
        let state = tmp.file(&format!("rs{}", i + 1));
        std::fs::write(&state, "up 100%\n").unwrap();
        let listen = format!("{addr}:9777");
        let p = net.spawn(
            &format!("rs{}", i + 1),
            BIN,
            &["agent", "--listen", &listen, "--state-file", &state],
            &[],
        );
        net.procs.push(p);
    }
    let cf = tmp.file("lvs.cf");
    std::fs::write(
        &cf,
        seed_config("wrr", [100, 100, 100]).replace(
            " scheduler = wrr\n",
            " scheduler = wrr\n load_monitor = agent\n check_interval = 0.2\n",
        ),
    )
    .unwrap();
    let control = tmp.file("control.sock");
    let mut director = start_director(&net, &cf, &control);
    let weight = |rs: &str| {
        adm(&control, "-L -n").lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"->") && f.get(1) == Some(&format!("{rs}:80").as_str()))
                .then(|| f[3].parse::<u32>().unwrap())
        })
    };
    wait_for("full weights", 5, || {
        RS.iter().all(|r| weight(r) == Some(100))
    });
    // rs1 reports load: a quarter of its weight; rs3 drains.
    std::fs::write(tmp.file("rs1"), "up 25%\n").unwrap();
    std::fs::write(tmp.file("rs3"), "drain # rolling upgrade\n").unwrap();
    let t = std::time::Instant::now();
    while !(weight(RS[0]) == Some(25) && weight(RS[2]) == Some(0)) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "the weights did not follow the agents:\n{}",
            sh(&format!("{BIN} status --control {control}"))
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Traffic follows: 25:100 between rs1 and rs2, nothing to rs3.
    let cli = net.ns("cli");
    let out = sh(&format!(
        "ip netns exec {cli} sh -c 'for i in $(seq 25); do curl -s --max-time 3 http://{VIP}/; done'"
    ));
    let count = |n: &str| out.lines().filter(|l| *l == n).count();
    assert_eq!(
        (count("rs1"), count("rs2"), count("rs3")),
        (5, 20, 0),
        "{out}"
    );
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

/// `transparent = 1` in the seed's NAT topology: the real servers see the
/// client's own address and port, as behind LVS-NAT, because the director
/// connects from it and the rules it installs bring the replies back to
/// its socket; the rules go when it stops. Without the key they see the
/// director.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn transparent_mode_shows_real_servers_the_client() {
    let mut net = FiveNode::new("t");
    start_realservers(&mut net);
    let tmp = Dir::new("transparent");
    let cf = tmp.file("lvs.cf");
    let control = tmp.file("control.sock");
    let config = seed_config("rr", [1, 1, 1]);
    std::fs::write(
        &cf,
        config.replace(" scheduler = rr\n", " scheduler = rr\n transparent = 1\n"),
    )
    .unwrap();
    let mut director = start_director(&net, &cf, &control);
    let cli = net.ns("cli");
    let get = |port: u16| {
        sh(&format!(
            "ip netns exec {cli} curl -s -i --max-time 3 --local-port {port} http://{VIP}/"
        ))
    };
    wait_for("the virtual server", 10, || {
        try_get(&cli).contains("200 OK")
    });
    for (i, port) in [40001u16, 40002, 40003].into_iter().enumerate() {
        let r = get(port);
        assert!(
            r.to_lowercase()
                .contains(&format!("x-client: {CLIENT}:{port}\r\n")),
            "request {i}: {r}"
        );
    }
    let rules = net.exec("dir", "ip rule show");
    for rs in RS {
        assert!(
            rules.contains(&format!(
                "7345:\tfrom {rs} ipproto tcp sport 80 lookup 7345"
            )),
            "{rules}"
        );
    }
    assert!(
        net.exec("dir", "ip route show table 7345")
            .contains("local default dev lo")
    );
    // The listing counts them as any other connection.
    let l = adm(&control, "-L -n");
    assert!(l.contains("Masq    1      0          1"), "{l}");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
    let rules = net.exec("dir", "ip rule show");
    assert!(!rules.contains("7345"), "rules left behind: {rules}");
    // Without `transparent`, the real servers see the director.
    std::fs::write(&cf, &config).unwrap();
    let mut director = start_director(&net, &cf, &control);
    wait_for("the virtual server", 10, || {
        try_get(&cli).contains("200 OK")
    });
    let r = get(40004).to_lowercase();
    assert!(r.contains("x-client: 10.200.2.1:"), "{r}");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}

fn try_get(cli: &str) -> String {
    String::from_utf8_lossy(
        &fulcrum_testbed::try_sh(&format!(
            "ip netns exec {cli} curl -s -i --max-time 1 http://{VIP}/"
        ))
        .stdout,
    )
    .into_owned()
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_slow_name_server_holds_up_only_the_listing_that_asked() {
    // Director and client both have a name server that never answers
    // (10.200.1.99 is nobody on the public side), each in a mount namespace
    // of its own so the host's resolv.conf is untouched.
    let mut net = FiveNode::new("n");
    start_realservers(&mut net);
    let tmp = Dir::new("slowdns");
    let resolv = tmp.file("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.200.1.99\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let cf = tmp.file("lvs.cf");
    std::fs::write(&cf, seed_config("rr", [1, 1, 1])).unwrap();
    let control = tmp.file("control.sock");
    let behind_slow_dns = |cmd: String| {
        vec![
            "-m".to_string(),
            "sh".into(),
            "-c".into(),
            format!("mount --bind {resolv} /etc/resolv.conf && exec {cmd}"),
        ]
    };
    let args = behind_slow_dns(format!("{BIN} run --config {cf} --control {control}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut director = net.spawn("dir", "unshare", &args, &[]);
    wait_for("the director", 10, || {
        std::path::Path::new(&control).exists()
    });
    let cli = net.ns("cli");
    wait_for("the virtual server", 10, || {
        try_get(&cli).contains("200 OK")
    });
    // `-L` without -n: every address is looked up, and none answers.
    let slow = std::process::Command::new("ip")
        .args(["netns", "exec", &cli, "unshare"])
        .args(behind_slow_dns(format!("{BIN} adm --control {control} -L")))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Meanwhile the director answers another listing and serves.
    let fast = adm(&control, "-L -n");
    assert!(fast.contains("TCP  10.200.1.100:80 rr"), "{fast}");
    for i in 0..10 {
        assert!(
            try_get(&cli).contains("200 OK"),
            "request {i} while the listing waits"
        );
    }
    let mut slow = slow;
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the slow listing ended before the others: its name lookups were meant to take seconds"
    );
    let out = slow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unanswered names print as numbers; ports take their names from
    // /etc/services.
    assert!(text.contains("TCP  10.200.1.100:http rr"), "{text}");
    assert!(text.contains("-> 10.200.2.3:http"), "{text}");
    assert_eq!(director.signal_and_wait("TERM"), Some(0));
}
