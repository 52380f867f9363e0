//! Golden tests: every ipvsadm listing mode, byte for byte, on a table built
//! through the ipvsadm command line. Set `UPDATE_GOLDEN=1` to rewrite the
//! files after a deliberate change, and review the diff.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fulcrum_api::ipvsadm::{Outcome, Resolver, run};
use fulcrum_core::sched::Flow;
use fulcrum_core::state::{Direction, TcpFlags};
use fulcrum_core::{Protocol, ServiceKey, Table};

/// A resolver with a few fixed names, standing in for /etc/hosts and
/// /etc/services.
struct Names {
    hosts: HashMap<IpAddr, &'static str>,
}

impl Names {
    fn new() -> Names {
        let mut hosts = HashMap::new();
        hosts.insert("10.0.0.1".parse().unwrap(), "rs1.example");
        hosts.insert("192.168.0.1".parse().unwrap(), "www.example");
        hosts.insert(
            "10.0.0.5".parse().unwrap(),
            "a-very-long-real-server-name.example.org",
        );
        Names { hosts }
    }
}

impl Resolver for Names {
    fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts
            .iter()
            .find(|(_, n)| **n == name)
            .and_then(|(a, _)| match a {
                IpAddr::V4(v) => Some(*v),
                IpAddr::V6(_) => None,
            })
    }
    fn service_to_port(&self, name: &str, _: Protocol) -> Option<u16> {
        match name {
            "http" => Some(80),
            "https" => Some(443),
            "domain" => Some(53),
            _ => None,
        }
    }
    fn addr_to_host(&self, addr: &IpAddr) -> Option<String> {
        self.hosts.get(addr).map(|s| s.to_string())
    }
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String> {
        match (port, proto) {
            (80, Protocol::Tcp) => Some("http".into()),
            (443, Protocol::Tcp) => Some("https".into()),
            (53, Protocol::Udp) => Some("domain".into()),
            _ => None,
        }
    }
}

fn adm(t: &mut Table, line: &str) -> Outcome {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    run(
        "ipvsadm",
        &args,
        "",
        t,
        &Names::new(),
        Duration::from_secs(100),
    )
}

fn ok(t: &mut Table, line: &str) {
    let o = adm(t, line);
    assert_eq!((o.exit_code, o.stderr.as_str()), (0, ""), "{line}");
}

/// The table every golden listing shows.
fn scenario() -> Table {
    scenario_with(true)
}

fn scenario_with(traffic: bool) -> Table {
    let mut t = Table::new();
    for line in [
        "-A -t 192.168.0.1:80 -s wlc",
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -m -w 2",
        "-a -t 192.168.0.1:80 -r 10.0.0.1:8080 -m -w 1",
        "-A -t 10.0.0.100:https -s rr -p -M 255.255.255.0",
        "-a -t 10.0.0.100:443 -r 10.0.0.1 -g -w 0",
        "-A -u 10.0.0.100:53 -s sh -b sh-fallback,sh-port -o",
        "-a -u 10.0.0.100:53 -r 10.0.0.5:53 -m -x 100 -y 50",
        "-A -f 7 -s mh -b mh-port",
        "-a -f 7 -r 10.0.0.9 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum",
        "-a -f 7 -r 10.0.0.8 -i --tun-type gre --tun-csum",
        "-a -f 7 -r 10.0.0.7 -i",
        "-A -t [2001:db8::1]:80 -s wlc",
        "-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -m",
        "-A -f 8 -6 -s wlc -p 60 -M 64 --pe sip",
        "-a -f 8 -6 -r 2001:db8::20 -g -w 5",
        "--set 3600 60 120",
    ] {
        ok(&mut t, line);
    }
    if !traffic {
        return t;
    }
    // Traffic: connections, packets and bytes, and the estimator's rates.
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "192.168.0.1".parse().unwrap(),
        port: 80,
    };
    let mut now = Duration::from_secs(0);
    for tick in 0..20u32 {
        for c in 0..50u16 {
            let flow = Flow {
                saddr: IpAddr::from([198, 51, 100, (tick % 200) as u8 + 1]),
                sport: 10_000 + c + (tick as u16) * 50,
                daddr: key_addr(&key),
                dport: 80,
            };
            let s = t.schedule(&key, Protocol::Tcp, &flow, now).unwrap();
            let id = s.conn.unwrap();
            t.packet(id, Direction::Input, Some(TcpFlags::SYN), 60, now);
            t.packet(id, Direction::Output, Some(TcpFlags::SYN_ACK), 60, now);
            t.packet(id, Direction::Input, Some(TcpFlags::ACK), 52, now);
            t.account(id, 10, 15_000_000, 20, 150_000_000);
        }
        now += Duration::from_secs(2);
        t.tick_estimators();
        t.expire(now);
    }
    t
}

fn key_addr(k: &ServiceKey) -> IpAddr {
    match k {
        ServiceKey::Addr { addr, .. } => *addr,
        ServiceKey::Fwmark { .. } => unreachable!(),
    }
}

/// A small table for the connection listing, with a template.
fn conn_scenario() -> Table {
    let mut t = Table::new();
    ok(&mut t, "-A -t 192.168.0.1:80 -s rr -p 300");
    ok(&mut t, "-a -t 192.168.0.1:80 -r 10.0.0.1 -m");
    ok(&mut t, "-A -u 10.0.0.100:53 -s rr");
    ok(&mut t, "-a -u 10.0.0.100:53 -r 10.0.0.5 -m");
    let tcp = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "192.168.0.1".parse().unwrap(),
        port: 80,
    };
    let udp = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: "10.0.0.100".parse().unwrap(),
        port: 53,
    };
    let f = Flow {
        saddr: "198.51.100.7".parse().unwrap(),
        sport: 40001,
        daddr: "192.168.0.1".parse().unwrap(),
        dport: 80,
    };
    let id = t
        .schedule(&tcp, Protocol::Tcp, &f, Duration::from_secs(10))
        .unwrap()
        .conn
        .unwrap();
    t.packet(
        id,
        Direction::Input,
        Some(TcpFlags::SYN),
        60,
        Duration::from_secs(10),
    );
    t.packet(
        id,
        Direction::Output,
        Some(TcpFlags::SYN_ACK),
        60,
        Duration::from_secs(10),
    );
    t.packet(
        id,
        Direction::Input,
        Some(TcpFlags::ACK),
        52,
        Duration::from_secs(10),
    );
    let g = Flow {
        saddr: "198.51.100.8".parse().unwrap(),
        sport: 5353,
        daddr: "10.0.0.100".parse().unwrap(),
        dport: 53,
    };
    t.schedule(&udp, Protocol::Udp, &g, Duration::from_secs(90))
        .unwrap();
    t
}

fn check(name: &str, got: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {path}; run with UPDATE_GOLDEN=1"));
    assert_eq!(got, want, "{name} differs from its golden file");
}

#[test]
fn golden_listings() {
    let mut t = scenario();
    let modes = [
        ("list.txt", "-L"),
        ("list-n.txt", "-L -n"),
        ("list-l-n.txt", "-ln"),
        ("list-nosort.txt", "-L -n --nosort"),
        ("stats.txt", "-L -n --stats"),
        ("stats-exact.txt", "-L -n --stats --exact"),
        ("rate.txt", "-L -n --rate"),
        ("rate-exact.txt", "-L -n --rate -X"),
        ("thresholds.txt", "-L -n --thresholds"),
        ("persistent-conn.txt", "-L -n --persistent-conn"),
        ("tun-info.txt", "-L -n --tun-info"),
        ("service.txt", "-L -n -t 192.168.0.1:80"),
        ("service-fwm6.txt", "-L -n -f 8 -6"),
        ("timeout.txt", "-L --timeout"),
        ("daemon.txt", "-L --daemon"),
        ("save-n.txt", "-S -n"),
        ("save.txt", "-S"),
    ];
    for (file, line) in modes {
        let o = adm(&mut t, line);
        assert_eq!((o.exit_code, o.stderr.as_str()), (0, ""), "{line}");
        check(file, &o.stdout);
    }
    let mut c = conn_scenario();
    for (file, line) in [
        ("conns.txt", "-L -n -c"),
        ("conns-names.txt", "-L -c"),
        ("conns-pc.txt", "-L -n -c --persistent-conn"),
    ] {
        let o = adm(&mut c, line);
        assert_eq!(o.exit_code, 0, "{line}");
        check(file, &o.stdout);
    }
    // No arguments lists, as ipvsadm does.
    let o = run("ipvsadm", &[], "", &mut t, &Names::new(), Duration::ZERO);
    check("list.txt", &o.stdout);
}

#[test]
fn save_then_restore_reproduces_the_table() {
    let mut t = scenario_with(false);
    let saved = adm(&mut t, "-S -n").stdout;
    let mut fresh = Table::new();
    let o = run(
        "ipvsadm",
        &["-R".to_string()],
        &saved,
        &mut fresh,
        &Names::new(),
        Duration::ZERO,
    );
    assert_eq!((o.exit_code, o.stderr.as_str()), (0, ""));
    assert_eq!(adm(&mut fresh, "-S -n").stdout, saved);
    assert_eq!(
        adm(&mut fresh, "-L -n --tun-info").stdout,
        adm(&mut t, "-L -n --tun-info").stdout
    );
}
