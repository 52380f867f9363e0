//! Connection sync on the XDP plane, proved the way clients would notice:
//! two directors (heartbeat failover, `syncdaemon = 1`, `syncd_role`
//! following the election) in the five-node network; 50 long-lived HTTP
//! connections through the active one, spread by wlc; the active director
//! is killed (-9, links down). Every connection goes on, answered by the
//! same real server, none reset — the backup's program forwards them from
//! the flows the master sent it. With persistence, clients' new connections
//! after the take-over go to their real servers too (templates synced),
//! and the sync messages are sealed with `auth_key_file` (`syncd_auth`).
//! Without sync the backup would hand the connections' next segments to its
//! kernel, which resets them. Runs with FULCRUM_NETNS_TESTS=1.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use fulcrum_testbed::{
    DIRECTOR_PUBLIC, FiveNode, NAT_ROUTER, RS, Scratch, VIP, director_name, sh, wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

/// Connections held open through the failover.
const CONNS: usize = 50;

/// Client addresses (the persistence scenario's clients).
const CLIENTS: [&str; 10] = [
    "10.200.1.20",
    "10.200.1.21",
    "10.200.1.22",
    "10.200.1.23",
    "10.200.1.24",
    "10.200.1.25",
    "10.200.1.26",
    "10.200.1.27",
    "10.200.1.28",
    "10.200.1.29",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Routing {
    Nat,
    Direct,
}

fn built_with_xdp() -> bool {
    if fulcrum_xdp::program().is_err() {
        fulcrum_testbed::missing_peer("the sync failover scenarios", "clang (and libbpf-dev)");
        return false;
    }
    true
}

/// One HTTP/1.1 request on a kept-alive connection: the body (the real
/// server's name), or what went wrong.
fn ask(s: &mut TcpStream) -> Result<String, String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("no content-length in {head:?}"))?;
            if buf.len() >= end + 4 + len {
                return Ok(String::from_utf8_lossy(&buf[end + 4..end + 4 + len])
                    .trim()
                    .to_string());
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed by the other end".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A connection to the VIP from `from`.
fn connect(from: IpAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(from, 0).into()).unwrap();
    let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
    s.connect_timeout(&vip.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting from {from}: {e}"));
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Ask on every connection at once: each one's answer.
fn ask_all(conns: &mut [TcpStream]) -> Vec<Result<String, String>> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = conns.iter_mut().map(|s| sc.spawn(move || ask(s))).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    })
}

fn adm(control: &str, args: &str) -> String {
    sh(&format!("{BIN} adm --control {control} {args}"))
}

fn status(control: &str) -> String {
    let o = fulcrum_testbed::try_sh(&format!("{BIN} status --control {control}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The scenario: `routing`, with persistence or without (persistence
/// also seals the sync messages: `syncd_auth`).
fn failover_keeps_every_connection(tag: &str, routing: Routing, persistent: bool) {
    if !built_with_xdp() {
        return;
    }
    let mut net = FiveNode::with_directors(tag, 2);
    net.xdp_ready(2);
    for c in CLIENTS {
        net.exec("cli", &format!("ip addr add {c}/24 dev eth0"));
    }
    let tmp = Scratch::new(tag);
    if routing == Routing::Direct {
        // The real servers answer from the VIP (on their loopback, ARP
        // kept quiet) through their gateway, the floating router address
        // on the active director, whose kernel takes packets from its own
        // VIP (accept_local) and routes them to the client.
        for (i, rs) in ["rs1", "rs2", "rs3"].iter().enumerate() {
            let state = tmp.file(&format!("rs{i}.state"));
            net.exec(
                rs,
                &format!("{BIN} realserver-setup --mode direct --vip {VIP} --state {state}"),
            );
        }
        for i in 0..2 {
            net.exec(
                &director_name(i),
                "sh -c 'sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.eth1.accept_local=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0'",
            );
        }
    }
    net.start_realservers(BIN);
    if routing == Routing::Direct {
        // Direct routing delivers to the VIP: the real servers answer there
        // too (the health checks keep to their own addresses).
        for i in 0..3 {
            let name = format!("rs{}", i + 1);
            let p = net.spawn(
                &name,
                BIN,
                &[
                    "realserver",
                    "--listen",
                    &format!("{VIP}:80"),
                    "--name",
                    &name,
                ],
                &[],
            );
            net.procs.push(p);
            wait_for("a real server on the VIP", 10, || {
                net.exec(&name, "ss -Hltn").contains(&format!("{VIP}:80"))
            });
        }
    }

    let mut cf = format!(
        "primary = {}\nbackup = {}\nbackup_active = 1\nheartbeat = 1\nkeepalive = 0.1\ndeadtime = 0.5\n\
         network = {}\ndataplane = xdp\nnat_router = {NAT_ROUTER} eth1:1\n\
         syncdaemon = 1\nsyncd_iface = eth1\nsyncd_id = 7\n\
         virtual server web {{\n address = {VIP} eth0:1\n active = 1\n port = 80\n scheduler = wlc\n",
        DIRECTOR_PUBLIC[0],
        DIRECTOR_PUBLIC[1],
        if routing == Routing::Nat {
            "nat"
        } else {
            "direct"
        },
    );
    if persistent {
        cf.push_str(" persistent = 300\n");
        let key = tmp.file("sync.key");
        std::fs::write(&key, "a shared secret of 32 characters\n").unwrap();
        sh(&format!("chmod 600 {key}"));
        cf = cf.replace(
            "syncdaemon = 1\n",
            &format!("syncdaemon = 1\nsyncd_auth = 1\nauth_key_file = {key}\n"),
        );
    }
    for (i, w) in [1, 2, 3].iter().enumerate() {
        cf.push_str(&format!(
            " server rs{} {{\n  address = {}\n  active = 1\n  weight = {w}\n }}\n",
            i + 1,
            RS[i]
        ));
    }
    cf.push_str("}\n");
    let cfp = tmp.file("lvs.cf");
    std::fs::write(&cfp, cf).unwrap();
    let controls: Vec<String> = (0..2).map(|i| tmp.file(&format!("d{i}.sock"))).collect();
    let mut ds = net.start_directors(BIN, &cfp, &controls);
    let holds = |i: usize| net.holds_vip(i);
    wait_for("the primary to hold the VIP", 10, || holds(0) && !holds(1));
    // The roles follow the election: the active director sends, the
    // backup receives.
    wait_for("the primary to send and the backup to receive", 10, || {
        status(&controls[0]).contains("connection sync: master")
            && status(&controls[1]).contains("connection sync: backup")
    });

    // 50 connections, each asked twice (its third packet makes it synced).
    let sources: Vec<IpAddr> = (0..CONNS)
        .map(|i| CLIENTS[i % CLIENTS.len()].parse().unwrap())
        .collect();
    let mut conns: Vec<TcpStream> =
        net.run_in("cli", || sources.iter().map(|s| connect(*s)).collect());
    let before: Vec<String> = ask_all(&mut conns)
        .into_iter()
        .map(|r| r.expect("served by the primary"))
        .collect();
    for (i, r) in ask_all(&mut conns).into_iter().enumerate() {
        assert_eq!(r.as_deref(), Ok(before[i].as_str()), "connection {i} stays");
    }
    let spread: std::collections::BTreeSet<&String> = before.iter().collect();
    assert!(
        spread.len() > 1 || persistent,
        "wlc spreads the connections: {before:?}"
    );
    if persistent {
        for (i, rs) in before.iter().enumerate() {
            let first = &before[i % CLIENTS.len()];
            assert_eq!(rs, first, "one real server per client (persistence)");
        }
    }
    // The backup holds every connection, on the same real server as the
    // primary (`-L -n -c` on both).
    let listed = |i: usize| -> Vec<String> {
        let mut v: Vec<String> = adm(&controls[i], "-L -n -c")
            .lines()
            .filter(|l| l.starts_with("TCP") && l.contains("ESTABLISHED"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", f[3], f[4], f[5])
            })
            .collect();
        v.sort();
        v
    };
    let t = std::time::Instant::now();
    while listed(1).len() != CONNS {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the backup holds {} of the {CONNS} connections:\n{}\n{}\n{}",
            listed(1).len(),
            status(&controls[0]),
            status(&controls[1]),
            adm(&controls[1], "-L -n -c")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        listed(0),
        listed(1),
        "the same flows, the same real servers"
    );
    if persistent {
        let st = status(&controls[1]);
        assert!(
            st.contains("; sealed: 0 unauthenticated, 0 replayed refused"),
            "every sealed message opened: {st}"
        );
    }
    let st = status(&controls[0]);
    assert!(
        st.contains("connection sync: master (Fulcrum's sender) on eth1 (syncid 7)"),
        "{st}"
    );

    // The primary dies as a machine does.
    ds[0].signal_and_wait("KILL");
    net.exec("dir", "ip link set eth0 down");
    net.exec("dir", "ip link set eth1 down");
    wait_for("the backup to take over", 10, || holds(1));
    wait_for("the new active director to send", 10, || {
        status(&controls[1]).contains("connection sync: master")
    });

    // Every connection goes on, on its real server; none is reset.
    let after = ask_all(&mut conns);
    let broken: Vec<String> = after
        .iter()
        .enumerate()
        .filter(|(i, r)| r.as_deref() != Ok(before[*i].as_str()))
        .map(|(i, r)| format!("connection {i}: {r:?}, was {}", before[i]))
        .collect();
    assert!(
        broken.is_empty(),
        "{} of {CONNS} connections did not survive the failover:\n{}",
        broken.len(),
        broken.join("\n")
    );
    // And again, now that the real servers know the new director.
    for (i, r) in ask_all(&mut conns).into_iter().enumerate() {
        assert_eq!(r.as_deref(), Ok(before[i].as_str()), "connection {i}");
    }
    if persistent {
        // Clients' new connections go to their real servers: the
        // templates came over with the connections.
        let mut fresh: Vec<TcpStream> = net.run_in("cli", || {
            CLIENTS
                .iter()
                .map(|c| connect(c.parse().unwrap()))
                .collect()
        });
        for (i, r) in ask_all(&mut fresh).into_iter().enumerate() {
            assert_eq!(
                r.as_deref(),
                Ok(before[i].as_str()),
                "client {} keeps its real server",
                CLIENTS[i]
            );
        }
    }
    drop(conns);
    assert_eq!(ds[1].signal_and_wait("TERM"), Some(0));
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_failover_resets_no_nat_connection() {
    failover_keeps_every_connection("sn", Routing::Nat, false);
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_failover_resets_no_direct_routing_connection() {
    failover_keeps_every_connection("sd", Routing::Direct, false);
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn persistent_clients_keep_their_real_servers_across_a_failover() {
    failover_keeps_every_connection("sp", Routing::Nat, true);
}
