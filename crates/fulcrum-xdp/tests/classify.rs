//! The XDP program's parser run in the kernel on crafted frames
//! (`BPF_PROG_TEST_RUN`: no interface needed, but root): what it does not
//! forward passes to the kernel counted by why, and no frame — short,
//! truncated, lying about its lengths, random — gets anything but
//! `XDP_PASS` with its bytes unchanged. Runs with FULCRUM_NETNS_TESTS=1.

mod common;

use common::{count, load};
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{Protocol, ServiceKey, ServiceSpec, Table};
use fulcrum_xdp::{Exception, XDP_PASS, XdpError, XdpPlane};

/// A table of services without real servers.
fn table(keys: &[ServiceKey]) -> Table {
    let mut t = Table::new();
    for k in keys {
        t.add_service(ServiceSpec::new(*k, SchedulerKind::Wlc))
            .unwrap();
    }
    t
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

const MAC: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

/// Ethernet + IPv4 (with `options` words of options) + a 20-byte L4 header.
fn ipv4(proto: u8, dst: [u8; 4], dport: u16, flags_frag: u16, options: u8) -> Vec<u8> {
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x08, 0x00]);
    let ihl = 5 + options;
    let total = u16::from(ihl) * 4 + 20;
    f.push(0x40 | ihl);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&flags_frag.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f.extend_from_slice(&dst);
    f.extend(std::iter::repeat_n(1u8, usize::from(options) * 4));
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0; 16]);
    f
}

fn ipv6(next: u8, dst: &str, dport: u16) -> Vec<u8> {
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, next, 64]);
    f.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    f.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0; 16]);
    f
}

fn with_vlan(f: &[u8]) -> Vec<u8> {
    let mut v = f[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    v.extend_from_slice(&f[12..]);
    v
}

/// Run a frame: it must pass, unchanged.
fn pass(c: &XdpPlane, f: &[u8]) {
    let (verdict, out) = c.test_run(f).unwrap();
    assert_eq!(verdict, XDP_PASS);
    assert_eq!(out, f, "the frame left changed");
}

fn exceptions(c: &XdpPlane) -> Vec<(Exception, u64)> {
    c.exceptions().unwrap()
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn what_is_not_forwarded_passes_counted_by_why() {
    let Some(mut c) = load() else { return };
    let refused = c
        .publish(&table(&[
            tcp("10.0.0.100", 80),
            tcp("2001:db8::100", 443),
            ServiceKey::Fwmark {
                mark: 5,
                family: fulcrum_core::Family::V4,
            },
        ]))
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("firewall-mark services need the ipvs data plane"),
        "{refused}"
    );
    // TCP segments to the services without SYN: no flow, not new.
    let web = ipv4(6, [10, 0, 0, 100], 80, 0x4000, 0);
    pass(&c, &web);
    pass(&c, &with_vlan(&web));
    let opts = ipv4(6, [10, 0, 0, 100], 80, 0, 2);
    pass(&c, &opts);
    pass(&c, &ipv6(6, "2001:db8::100", 443));
    assert_eq!(count(&c, Exception::NotSyn), 4);
    // A SYN: the service has no real server.
    let mut syn = web.clone();
    syn[14 + 20 + 13] = 0x02;
    pass(&c, &syn);
    assert_eq!(count(&c, Exception::NoDestination), 1);

    pass(&c, &ipv4(17, [10, 0, 0, 100], 80, 0, 0)); // UDP: not the TCP service
    pass(&c, &ipv4(6, [10, 0, 0, 100], 81, 0, 0));
    assert_eq!(count(&c, Exception::NoService), 2);
    pass(&c, &ipv4(6, [10, 0, 0, 100], 80, 0x2000, 0)); // more fragments
    pass(&c, &ipv4(6, [10, 0, 0, 100], 80, 0x0010, 0)); // an offset
    assert_eq!(count(&c, Exception::Fragment), 2);
    pass(&c, &ipv4(1, [10, 0, 0, 100], 80, 0, 0));
    assert_eq!(count(&c, Exception::OtherProtocol), 1);
    pass(&c, &ipv6(0, "2001:db8::100", 443)); // hop-by-hop options
    assert_eq!(count(&c, Exception::Ipv6Extension), 1);
    let mut arp = MAC.to_vec();
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    pass(&c, &arp);
    assert_eq!(count(&c, Exception::NotIp), 1);
    let mut bad_ihl = web.clone();
    bad_ihl[14] = 0x44;
    pass(&c, &bad_ihl);
    let mut long_ihl = web.clone();
    long_ihl[14] = 0x4f; // 60 bytes of header in a 40-byte packet
    pass(&c, &long_ihl);
    assert_eq!(count(&c, Exception::Malformed), 2);
    assert!(c.flows().unwrap().is_empty());

    // The table changes: the service is gone.
    c.publish(&table(&[tcp("2001:db8::100", 443)])).unwrap();
    pass(&c, &web);
    assert_eq!(count(&c, Exception::NoService), 3);
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn truncated_and_random_frames_pass_unchanged() {
    let Some(mut c) = load() else { return };
    c.publish(&table(&[tcp("10.0.0.100", 80), tcp("2001:db8::100", 443)]))
        .unwrap();
    // Every cut of valid frames (the kernel runs XDP on 14 bytes or more).
    for f in [
        ipv4(6, [10, 0, 0, 100], 80, 0, 0),
        with_vlan(&ipv4(6, [10, 0, 0, 100], 80, 0, 1)),
        ipv6(6, "2001:db8::100", 443),
    ] {
        for n in 14..f.len() {
            pass(&c, &f[..n]);
        }
    }
    // Cut anywhere: short of a whole transport header, never a service's.
    assert_eq!(count(&c, Exception::NotSyn), 0);
    // Random frames, with IP-looking heads.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..2000 {
        let len = 14 + (next() % 120) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match i % 3 {
            0 => f[12..14].copy_from_slice(&[0x08, 0x00]),
            1 => f[12..14].copy_from_slice(&[0x86, 0xdd]),
            _ => {}
        }
        pass(&c, &f);
    }
    let total: u64 = exceptions(&c).iter().map(|(_, n)| n).sum();
    assert!(total >= 2000, "every frame counted somewhere: {total}");
}

/// Delete the namespaces when the test ends, passed or not.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network namespaces and BPF: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn attached_to_a_veth_it_counts_real_traffic_and_refuses_bad_names() {
    if XdpPlane::load(1024).is_err_and(|e| matches!(e, XdpError::NotBuilt(_))) {
        fulcrum_testbed::missing_peer("the XDP attach test", "clang (and libbpf-dev)");
        return;
    }
    let (a, b) = (
        format!("fxa{}", std::process::id()),
        format!("fxb{}", std::process::id()),
    );
    let _ns = Namespaces(vec![a.clone(), b.clone()]);
    fulcrum_testbed::sh(&format!(
        "ip netns add {a} && ip netns add {b} && \
         ip -n {a} link add eth0 type veth peer name eth0 netns {b} && \
         ip -n {a} addr add 10.9.0.1/24 dev eth0 && ip -n {b} addr add 10.9.0.2/24 dev eth0 && \
         ip -n {a} link set eth0 up && ip -n {b} link set eth0 up && \
         ip -n {a} link set lo up && ip -n {b} link set lo up"
    ));
    // The classifier lives in a thread inside namespace b.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (back, got) = std::sync::mpsc::channel();
    let bn = b.clone();
    let t = std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{bn}")).unwrap();
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        let mut c = XdpPlane::load(1024).unwrap();
        c.publish(&table(&[ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: "10.9.0.2".parse().unwrap(),
            port: 5353,
        }]))
        .unwrap();
        let bad: Vec<String> = ["", "eth0/x", "a\0b", "a-name-much-too-long"]
            .iter()
            .map(|n| c.attach(n).unwrap_err().to_string())
            .collect();
        let missing = c.attach("nosuch0").unwrap_err().to_string();
        let mode = c.attach("eth0").unwrap();
        back.send((bad, missing, mode)).unwrap();
        rx.recv().unwrap(); // traffic sent
        back.send((
            vec![format!(
                "{} {}",
                count(&c, Exception::NoDestination),
                count(&c, Exception::NoService)
            )],
            String::new(),
            mode,
        ))
        .unwrap();
    });
    let (bad, missing, mode) = got.recv().unwrap();
    assert!(
        bad.iter().all(|e| e.contains("is not an interface name")),
        "{bad:?}"
    );
    assert!(missing.contains("nosuch0"), "{missing}");
    assert_eq!(mode, fulcrum_xdp::Attached::Native, "veth takes native XDP");
    // Ten datagrams of 100 bytes to the service, five elsewhere.
    fulcrum_testbed::sh(&format!(
        "ip netns exec {a} bash -c 'for i in $(seq 10); do head -c 100 /dev/zero > /dev/udp/10.9.0.2/5353; done; \
         for i in $(seq 5); do head -c 100 /dev/zero > /dev/udp/10.9.0.2/5354; done'"
    ));
    tx.send(()).unwrap();
    let (counters, _, _) = got.recv().unwrap();
    t.join().unwrap();
    // The service has no real server yet: its ten datagrams, and the five
    // to no service, went on to the kernel, each counted.
    assert_eq!(counters[0], "10 5");
}
