//! Hostile input for the XDP programs, run in the kernel
//! (`BPF_PROG_TEST_RUN`, in a network namespace of the test's own): with a
//! table full of services, real servers of every forwarding and live
//! flows, every cut of every kind of frame the program rewrites — client
//! packets, NAT replies, ICMP errors quoting flows, SCTP, IPv6 — and
//! random frames get a verdict and never more than they carry; a SYN flood
//! larger than the flow table leaves the table bounded and the connection
//! counts equal to the flows it holds; the decapsulation program takes
//! only whole tunnelled packets. Runs with FULCRUM_NETNS_TESTS=1.

mod common;

use common::*;
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{Forwarding, Protocol, ServiceSpec, Table};
use fulcrum_xdp::decap::DecapProgram;
use fulcrum_xdp::{XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, XdpError, XdpPlane};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A verdict XDP allows, and a frame no longer than one that may have
/// grown by a tunnel header or shrunk to an ICMP answer.
fn sane(v: u32, input: &[u8], out: &[u8]) {
    assert!(
        [XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT].contains(&v),
        "verdict {v}"
    );
    assert!(
        out.len() <= input.len() + 48,
        "{} -> {}",
        input.len(),
        out.len()
    );
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn every_cut_of_every_frame_it_rewrites_and_random_frames_are_safe() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let mut t = Table::new();
        let nat = svc(Protocol::Tcp, "192.0.2.1", 80);
        let dr = svc(Protocol::Udp, "192.0.2.2", 53);
        let tun6 = svc(Protocol::Tcp, "2001:db8::1", 443);
        let sip = svc(Protocol::Sctp, "192.0.2.3", 5060);
        let mut persistent =
            ServiceSpec::new(svc(Protocol::Tcp, "192.0.2.4", 0), SchedulerKind::Sh);
        persistent.persistent = Some(60);
        t.add_service(ServiceSpec::new(nat, SchedulerKind::Wrr))
            .unwrap();
        t.add_dest(&nat, dest("10.0.0.1", 8080, Forwarding::Masq, 1))
            .unwrap();
        t.add_service(ServiceSpec::new(dr, SchedulerKind::Mh))
            .unwrap();
        t.add_dest(&dr, dest("10.0.0.2", 53, Forwarding::Route, 1))
            .unwrap();
        t.add_service(ServiceSpec::new(tun6, SchedulerKind::Lblcr))
            .unwrap();
        t.add_dest(&tun6, dest("2001:db8:1::3", 443, Forwarding::TUNNEL, 1))
            .unwrap();
        t.add_service(ServiceSpec::new(sip, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&sip, dest("10.0.0.3", 5060, Forwarding::Masq, 1))
            .unwrap();
        t.add_service(persistent).unwrap();
        t.add_dest(
            &svc(Protocol::Tcp, "192.0.2.4", 0),
            dest("10.0.0.4", 0, Forwarding::Masq, 1),
        )
        .unwrap();
        // The tunnel has no route here: refused, the rest published.
        let _ = p.publish(&t);

        // Flows to quote and to reply to.
        let syn = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
        p.test_run(&syn).unwrap();
        let frames = vec![
            syn.clone(),
            tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), ACK),
            tcp(("10.0.0.1", 8080), ("198.51.100.7", 40000), SYN | ACK),
            frame(("198.51.100.8", 5353), ("192.0.2.2", 53), None, 12),
            tcp(("2001:db8:2::7", 1), ("2001:db8::1", 443), SYN),
            tcp(("198.51.100.9", 7), ("192.0.2.4", 22), SYN),
            icmp4_error(
                "203.0.113.1",
                "192.0.2.1",
                3,
                4,
                [0, 0, 5, 0xdc],
                &tcp(("192.0.2.1", 80), ("198.51.100.7", 40000), ACK),
            ),
            icmp4_error(
                "10.0.0.254",
                "198.51.100.7",
                3,
                1,
                [0; 4],
                &tcp(("198.51.100.7", 40000), ("10.0.0.1", 8080), ACK),
            ),
            icmp6_error(
                "2001:db8:ff::1",
                "2001:db8::1",
                2,
                0,
                [0, 0, 5, 0],
                &tcp(("2001:db8::1", 443), ("2001:db8:2::7", 1), ACK),
            ),
        ];
        for f in &frames {
            for n in 14..=f.len() {
                let cut = &f[..n];
                let (v, out) = p.test_run(cut).unwrap();
                sane(v, cut, &out);
            }
        }
        // Quotes cut short (the outer header claims more than there is)
        // are nobody's: they pass untouched.
        let e = &frames[6];
        for n in 14 + 20 + 8..14 + 20 + 8 + 28 {
            let (v, out) = p.test_run(&e[..n]).unwrap();
            assert_eq!((v, out.as_slice()), (XDP_PASS, &e[..n]), "quote cut at {n}");
        }
        // Random frames with IP-looking heads, towards the services.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for i in 0..3000 {
            let len = 14 + (rng.next() % 200) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match i % 4 {
                0 => {
                    f[12..14].copy_from_slice(&[0x08, 0x00]);
                    if len > 34 {
                        f[14] = 0x45;
                        f[20] = 0;
                        f[21] = 0;
                        f[23] = [1, 6, 17, 132][(i / 4) % 4];
                        f[30..34].copy_from_slice(&[192, 0, 2, 1 + (i % 4) as u8]);
                    }
                }
                1 => f[12..14].copy_from_slice(&[0x86, 0xdd]),
                2 => f[12..14].copy_from_slice(&[0x81, 0x00]),
                _ => {}
            }
            let (v, out) = p.test_run(&f).unwrap();
            sane(v, &f, &out);
        }
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_syn_flood_larger_than_the_table_keeps_it_bounded_and_counts_true() {
    in_netns("", || {
        // The smallest table: 2,048 IPv4 slots.
        let mut p = match XdpPlane::load(1024) {
            Ok(p) => p,
            Err(XdpError::NotBuilt(_)) => return,
            Err(e) => panic!("{e}"),
        };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let mut rng = Rng(7);
        for _ in 0..20_000 {
            let r = rng.next();
            let src = format!(
                "198.{}.{}.{}",
                18 + (r % 2),
                (r >> 8) as u8,
                (r >> 16) as u8
            );
            let port = 1024 + ((r >> 24) % 60_000) as u16;
            let (v, _) = p
                .test_run(&tcp((&src, port), ("192.0.2.1", 80), SYN))
                .unwrap();
            assert_eq!(v, XDP_PASS, "forwarded (to the kernel: no route here)");
        }
        let flows = p.flows().unwrap();
        assert!(flows.len() <= 2048, "bounded: {}", flows.len());
        assert!(flows.len() > 500, "the table is used: {}", flows.len());
        // Every evicted flow was taken off its real server's count.
        let s = t.service(&web).unwrap();
        let counted: u32 = s
            .dests
            .iter()
            .map(|d| {
                let c = p.dest_conns(&web, d.id).unwrap().unwrap();
                c.active + c.inactive
            })
            .sum();
        assert_eq!(counted as usize, flows.len());
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn the_decapsulation_program_takes_only_whole_tunnelled_packets() {
    let prog = match DecapProgram::load(Some(6080)) {
        Ok(p) => p,
        Err(XdpError::NotBuilt(_)) => {
            fulcrum_testbed::missing_peer("the decapsulation tests", "clang (and libbpf-dev)");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    // IP-in-IP: outer header, then the client's packet.
    let inner = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 4, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 254, 10, 0, 0, 1]);
    f.extend_from_slice(&inner[14..]);
    let (v, out) = prog.test_run(&f).unwrap();
    assert_eq!(
        (v, out.as_slice()),
        (XDP_PASS, inner.as_slice()),
        "stripped"
    );
    // GUE to port 6080: version 0 naming IPv4 (with one word of options),
    // version 1 (the packet right after UDP), and IPv6 in GUE over IPv6.
    let gue4 = |gue: &[u8], port: u16| {
        let mut g = MAC.to_vec();
        let tot = (20 + 8 + gue.len() + inner.len() - 14) as u16;
        g.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        g.extend_from_slice(&tot.to_be_bytes());
        g.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 254, 10, 0, 0, 1]);
        g.extend_from_slice(&40000u16.to_be_bytes());
        g.extend_from_slice(&port.to_be_bytes());
        g.extend_from_slice(&(tot - 20).to_be_bytes());
        g.extend_from_slice(&[0, 0]);
        g.extend_from_slice(gue);
        g.extend_from_slice(&inner[14..]);
        g
    };
    let v0 = gue4(&[0, 4, 0, 0], 6080);
    let v0_options = gue4(&[1, 4, 0, 0, 0xde, 0xad, 0xbe, 0xef], 6080);
    let v1 = gue4(&[], 6080);
    for (what, g) in [
        ("GUE 0", &v0),
        ("GUE 0 with options", &v0_options),
        ("GUE 1", &v1),
    ] {
        let (v, out) = prog.test_run(g).unwrap();
        assert_eq!(
            (v, out.as_slice()),
            (XDP_PASS, inner.as_slice()),
            "{what} stripped"
        );
    }
    let inner6 = tcp(("2001:db8:2::7", 40000), ("2001:db8::1", 80), SYN);
    let mut g6 = MAC.to_vec();
    let plen = (8 + 4 + inner6.len() - 14) as u16;
    g6.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    g6.extend_from_slice(&plen.to_be_bytes());
    g6.extend_from_slice(&[17, 64]);
    g6.extend_from_slice(&inner6[22..54]);
    g6.extend_from_slice(&40000u16.to_be_bytes());
    g6.extend_from_slice(&6080u16.to_be_bytes());
    g6.extend_from_slice(&plen.to_be_bytes());
    g6.extend_from_slice(&[0, 0, 0, 41, 0, 0]);
    g6.extend_from_slice(&inner6[14..]);
    let (v, out) = prog.test_run(&g6).unwrap();
    assert_eq!(
        (v, out.as_slice()),
        (XDP_PASS, inner6.as_slice()),
        "GUE over IPv6 stripped"
    );
    // Not ours: another port, a control message, an inner packet that is
    // not what GUE names; and without a GUE port, GUE at all.
    for (what, g) in [
        ("another port", gue4(&[0, 4, 0, 0], 6081)),
        ("a control message", gue4(&[0x20, 4, 0, 0], 6080)),
        ("IPv6 named, IPv4 inside", gue4(&[0, 41, 0, 0], 6080)),
        ("GUE version 2", gue4(&[0x80, 4, 0, 0], 6080)),
    ] {
        let (v, out) = prog.test_run(&g).unwrap();
        assert_eq!(
            (v, out.as_slice()),
            (XDP_PASS, g.as_slice()),
            "{what} passes untouched"
        );
    }
    let plain = DecapProgram::load(None).unwrap();
    let (v, out) = plain.test_run(&v0).unwrap();
    assert_eq!(
        (v, out.as_slice()),
        (XDP_PASS, v0.as_slice()),
        "GUE needs a port"
    );
    let (_, out) = plain.test_run(&f).unwrap();
    assert_eq!(out, inner, "IP-in-IP without a GUE port");
    // Every cut of each, and random frames: passed, never grown.
    for g in [&f, &v0, &v0_options, &v1, &g6] {
        for n in 14..g.len() {
            let (v, out) = prog.test_run(&g[..n]).unwrap();
            assert_eq!(v, XDP_PASS);
            assert!(out.len() <= n);
        }
    }
    let mut rng = Rng(99);
    for i in 0..2000 {
        let len = 14 + (rng.next() % 120) as usize;
        let mut g: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 {
            g[12..14].copy_from_slice(&[0x08, 0x00]);
            if len > 34 {
                g[14] = 0x45;
                g[23] = 4;
            }
        } else if i % 3 == 1 {
            // UDP to the GUE port, whatever follows.
            g[12..14].copy_from_slice(&[0x08, 0x00]);
            if len > 40 {
                g[14] = 0x45;
                g[20..22].copy_from_slice(&[0, 0]);
                g[23] = 17;
                g[36..38].copy_from_slice(&6080u16.to_be_bytes());
            }
        } else {
            g[12..14].copy_from_slice(&[0x86, 0xdd]);
            if len > 20 {
                g[20] = 41;
            }
        }
        let (v, out) = prog.test_run(&g).unwrap();
        assert_eq!(v, XDP_PASS);
        assert!(out.len() <= g.len());
    }
}
