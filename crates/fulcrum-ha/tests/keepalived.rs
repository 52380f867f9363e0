//! Wire compatibility with a running keepalived: its adverts, captured in a
//! network namespace, decode to what its configuration says. Root and
//! FULCRUM_NETNS_TESTS=1; otherwise reported as ignored.

use std::net::{IpAddr, Ipv4Addr};

use fulcrum_ha::vrrp::{Advert, Auth, Version};
use fulcrum_testbed::{sh, try_sh};

/// Two namespaces joined by a veth pair: keepalived in A (10.211.0.1)
/// advertises by unicast to B (10.211.0.2).
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let id = std::process::id();
        let (a, b) = (format!("fh{tag}a{id}"), format!("fh{tag}b{id}"));
        sh(&format!("ip netns add {a} && ip netns add {b}"));
        sh(&format!(
            "ip link add eth0 netns {a} type veth peer name eth0 netns {b} && \
             ip -n {a} addr add 10.211.0.1/24 dev eth0 && ip -n {b} addr add 10.211.0.2/24 dev eth0 && \
             ip -n {a} link set eth0 up && ip -n {b} link set eth0 up && ip -n {a} link set lo up"
        ));
        Pair { a, b }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = try_sh(&format!("ip netns pids {} | xargs -r kill", self.a));
        let _ = try_sh(&format!("ip netns del {}; ip netns del {}", self.a, self.b));
    }
}

/// Run keepalived in A with `instance_extra`, capture one VRRP packet in B
/// and decode it.
fn capture(tag: &str, version: u8, instance_extra: &str) -> Advert {
    let net = Pair::new(tag);
    let dir = std::env::temp_dir().join(format!("fulcrum-ha-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keepalived.conf"),
        format!(
            "global_defs {{\n router_id fulcrum_test\n vrrp_version {version}\n}}\n\
             vrrp_instance VI_1 {{\n state MASTER\n interface eth0\n virtual_router_id 51\n priority 150\n{instance_extra}\n\
             unicast_src_ip 10.211.0.1\n unicast_peer {{\n  10.211.0.2\n }}\n virtual_ipaddress {{\n  10.211.0.100/24\n  10.211.0.101/24\n }}\n}}\n"
        ),
    )
    .unwrap();
    // In the foreground, so that it can be stopped (SIGTERM: it stops its
    // VRRP child too) and waited for.
    let mut keepalived = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.a,
            "keepalived",
            "-n",
            "-D",
            "-P",
            "-f",
        ])
        .arg(dir.join("keepalived.conf"))
        .arg("-p")
        .arg(dir.join("k.pid"))
        .arg("-r")
        .arg(dir.join("v.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A raw socket for protocol 112 in B returns the IP header and the advert.
    let hex = sh(&format!(
        "ip netns exec {b} timeout 10 python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112); print(s.recv(512).hex())\"",
        b = net.b
    ));
    let _ = try_sh(&format!("kill -TERM {}", keepalived.id()));
    let _ = keepalived.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let bytes: Vec<u8> = (0..hex.trim().len() / 2)
        .map(|i| u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let ihl = usize::from(bytes[0] & 0x0f) * 4;
    let ip = |o: usize| {
        IpAddr::V4(Ipv4Addr::new(
            bytes[o],
            bytes[o + 1],
            bytes[o + 2],
            bytes[o + 3],
        ))
    };
    Advert::decode(&bytes[ihl..], ip(12), ip(16)).unwrap()
}

fn vips() -> Vec<IpAddr> {
    vec![
        "10.211.0.100".parse().unwrap(),
        "10.211.0.101".parse().unwrap(),
    ]
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn keepalived_v3_adverts_decode() {
    let a = capture("3", 3, " advert_int 0.25");
    assert_eq!(
        a,
        Advert {
            version: Version::V3,
            vrid: 51,
            priority: 150,
            interval_cs: 25,
            addrs: vips(),
            auth: Auth::None,
        }
    );
    // And what we would send is what keepalived sent.
    let src: IpAddr = "10.211.0.1".parse().unwrap();
    let dst: IpAddr = "10.211.0.2".parse().unwrap();
    let again = Advert::decode(&a.encode(src, dst).unwrap(), src, dst).unwrap();
    assert_eq!(again, a);
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn keepalived_v2_adverts_with_a_password_decode() {
    let a = capture(
        "2",
        2,
        " advert_int 2\n authentication {\n  auth_type PASS\n  auth_pass hunter2\n }",
    );
    assert_eq!(
        a,
        Advert {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            interval_cs: 200,
            addrs: vips(),
            auth: Auth::Password(*b"hunter2\0"),
        }
    );
}
