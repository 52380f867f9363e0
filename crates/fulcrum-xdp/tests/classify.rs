//! The XDP classifier run in the kernel on crafted frames
//! (`BPF_PROG_TEST_RUN`: no interface needed, but root): services are
//! counted, everything else passes counted by why, and no frame — short,
//! truncated, lying about its lengths, random — gets anything but
//! `XDP_PASS` with its bytes unchanged. Runs with FULCRUM_NETNS_TESTS=1.

use fulcrum_core::{Protocol, ServiceKey};
use fulcrum_xdp::{Classifier, Exception, XDP_PASS, XdpError};

fn load() -> Option<Classifier> {
    match Classifier::load() {
        Ok(c) => Some(c),
        Err(XdpError::NotBuilt(_)) => {
            fulcrum_testbed::missing_peer("the XDP classifier tests", "clang (and libbpf-dev)");
            None
        }
        Err(e) => panic!("{e}"),
    }
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
fn pass(c: &Classifier, f: &[u8]) {
    let (verdict, out) = c.test_run(f).unwrap();
    assert_eq!(verdict, XDP_PASS);
    assert_eq!(out, f, "the frame left changed");
}

fn exceptions(c: &Classifier) -> Vec<(Exception, u64)> {
    c.exceptions().unwrap()
}

fn count(c: &Classifier, e: Exception) -> u64 {
    exceptions(c).into_iter().find(|(x, _)| *x == e).unwrap().1
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn services_are_counted_and_everything_else_passes_counted_by_why() {
    let Some(mut c) = load() else { return };
    c.set_services(&[
        (tcp("10.0.0.100", 80), 0),
        (tcp("2001:db8::100", 443), 1),
        (
            ServiceKey::Fwmark {
                mark: 5,
                family: fulcrum_core::Family::V4,
            },
            2,
        ),
    ])
    .unwrap();
    let web = ipv4(6, [10, 0, 0, 100], 80, 0x4000, 0);
    pass(&c, &web);
    pass(&c, &with_vlan(&web));
    let opts = ipv4(6, [10, 0, 0, 100], 80, 0, 2);
    pass(&c, &opts);
    // IPVS counts the IP packet: 40 bytes, 48 with options.
    assert_eq!(c.service_counters(0).unwrap(), (3, 40 + 40 + 48));
    pass(&c, &ipv6(6, "2001:db8::100", 443));
    assert_eq!(c.service_counters(1).unwrap(), (1, 60));

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
    // Nothing else was counted as the service's.
    assert_eq!(c.service_counters(0).unwrap().0, 3);

    // The table changes: the service is gone, its counters stay readable.
    c.set_services(&[(tcp("2001:db8::100", 443), 1)]).unwrap();
    pass(&c, &web);
    assert_eq!(c.service_counters(0).unwrap().0, 3);
    assert_eq!(count(&c, Exception::NoService), 3);
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn truncated_and_random_frames_pass_unchanged() {
    let Some(mut c) = load() else { return };
    c.set_services(&[(tcp("10.0.0.100", 80), 0), (tcp("2001:db8::100", 443), 1)])
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
    assert_eq!(c.service_counters(0).unwrap().0, 0);
    assert_eq!(c.service_counters(1).unwrap().0, 0);
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
