//! The XDP director run in the kernel on crafted frames
//! (`BPF_PROG_TEST_RUN`, inside a network namespace of the test's own):
//! NAT rewrites both ways with every checksum right, direct routing leaves
//! the packet alone, the TCP states and the connection counts follow the
//! packets, the sweeper expires flows, and a deleted real server keeps its
//! flows. Runs with FULCRUM_NETNS_TESTS=1.

mod common;

use common::*;
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{Forwarding, Protocol, ServiceKey, ServiceSpec, Table};
use fulcrum_xdp::{Exception, XDP_PASS, XDP_REDIRECT, XdpPlane};

/// A path towards tunnelled real servers 10.0.0.1 and 2001:db8:1::1 (their
/// neighbours known) with an MTU of 1300.
const TUNNEL_PATH: &str = "sysctl -qw net.ipv4.ip_forward=1; sysctl -qw net.ipv6.conf.all.forwarding=1; ip link set lo up; \
     ip link add rs0 address 02:00:00:00:00:aa mtu 1300 type veth peer name rs1; ip link set rs0 up; ip link set rs1 up; \
     ip addr add 10.0.0.254/24 dev rs0; ip addr add 2001:db8:1::fe/64 dev rs0 nodad; \
     ip neigh add 10.0.0.1 lladdr 02:00:00:00:00:01 dev rs0 nud permanent; \
     ip neigh add 2001:db8:1::1 lladdr 02:00:00:00:00:01 dev rs0 nud permanent";

/// An IPv4 frame with DF set (as TCP sends), its header checksum right.
fn with_df(mut f: Vec<u8>) -> Vec<u8> {
    f[14 + 6] = 0x40;
    let sum: u32 = f[14..34]
        .chunks(2)
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, c)| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let c = !(((sum & 0xffff) + (sum >> 16)) as u16);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn conns(p: &XdpPlane, t: &Table, key: &ServiceKey, addr: &str) -> (u32, u32) {
    let c = dest_counts(p, t, key, addr);
    (c.active, c.inactive)
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn nat_rewrites_both_ways_with_checksums_right_and_counts_follow_the_states() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 80, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 8080, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();

        // The SYN: to the first real server in list order (the newest),
        // destination and port rewritten, checksums right; the kernel
        // forwards it (no route in this namespace).
        let syn = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
        let (v, out) = p.test_run(&syn).unwrap();
        assert_eq!(v, XDP_PASS);
        assert_eq!(
            endpoints(&out).1,
            ("10.0.0.1".parse().unwrap(), 8080),
            "rewritten to the real server"
        );
        assert_eq!(endpoints(&out).0, ("198.51.100.7".parse().unwrap(), 40000));
        assert!(checksums_ok(&out), "checksums after DNAT");
        assert_eq!(count(&p, Exception::ToKernel), 1);
        assert_eq!(
            conns(&p, &t, &web, "10.0.0.1"),
            (0, 1),
            "SYN_RECV is inactive"
        );

        // The real server's SYN-ACK comes back with the virtual address.
        let synack = tcp(("10.0.0.1", 8080), ("198.51.100.7", 40000), SYN | ACK);
        let (_, out) = p.test_run(&synack).unwrap();
        assert_eq!(endpoints(&out).0, ("192.0.2.1".parse().unwrap(), 80));
        assert_eq!(endpoints(&out).1, ("198.51.100.7".parse().unwrap(), 40000));
        assert!(checksums_ok(&out), "checksums after SNAT");

        // The client's ACK: ESTABLISHED, counted active.
        let ack = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), ACK);
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(endpoints(&out).1, ("10.0.0.1".parse().unwrap(), 8080));
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (1, 0));
        let flows = p.flows().unwrap();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].state, 1, "ESTABLISHED");

        // A second client goes to the other real server (rr), port kept.
        let (_, out) = p
            .test_run(&tcp(("198.51.100.8", 40001), ("192.0.2.1", 80), SYN))
            .unwrap();
        assert_eq!(endpoints(&out).1, ("10.0.0.2".parse().unwrap(), 80));
        assert!(checksums_ok(&out));

        // Replies are found by their client and must come from the flow's
        // real server, address and port: the other real server, or the
        // right one from another port, is nobody's reply.
        for (from, port) in [("10.0.0.2", 80), ("10.0.0.1", 80), ("10.0.0.1", 8081)] {
            let fake = tcp((from, port), ("198.51.100.7", 40000), ACK);
            let (v, out) = p.test_run(&fake).unwrap();
            assert_eq!(
                (v, &out),
                (XDP_PASS, &fake),
                "{from}:{port} is not the real server"
            );
        }

        // The same client address and port to a second virtual service:
        // two flows, each reply back from its own virtual address.
        let web2 = svc(Protocol::Tcp, "192.0.2.2", 80);
        t.add_service(ServiceSpec::new(web2, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web2, dest("10.0.0.5", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let (_, out) = p
            .test_run(&tcp(("198.51.100.7", 40000), ("192.0.2.2", 80), SYN))
            .unwrap();
        assert_eq!(endpoints(&out).1, ("10.0.0.5".parse().unwrap(), 80));
        let replies = [
            ("10.0.0.5", 80, SYN | ACK, "192.0.2.2"),
            ("10.0.0.1", 8080, ACK, "192.0.2.1"),
        ];
        for (rs, rport, flags, vip) in replies {
            let r = tcp((rs, rport), ("198.51.100.7", 40000), flags);
            let (_, out) = p.test_run(&r).unwrap();
            assert_eq!(
                endpoints(&out).0,
                (vip.parse().unwrap(), 80),
                "{rs}'s reply"
            );
        }
        assert_eq!(p.flows().unwrap().len(), 3);
        t.delete_service(&web2).unwrap();
        p.publish(&t).unwrap();

        // A segment of no flow that is not a SYN is left to the kernel.
        let stray = tcp(("198.51.100.9", 1), ("192.0.2.1", 80), ACK);
        let (v, out) = p.test_run(&stray).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &stray));
        assert_eq!(count(&p, Exception::NotSyn), 1);

        // Counters: the service saw 3 packets in, 2 out, 2 connections.
        let c = p.service_counters(&web).unwrap().unwrap();
        assert_eq!((c.conns, c.inpkts, c.outpkts), (2, 3, 2));
        assert_eq!(c.inbytes, 3 * 40);

        // FIN from the client: CLOSE_WAIT, inactive again.
        let fin = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), FIN | ACK);
        p.test_run(&fin).unwrap();
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (0, 1));

        // Time passes beyond CLOSE_WAIT (60 s) and SYN_RECV (60 s): the
        // sweeper removes both flows and their counts.
        p.set_clock_offset(61_000_000_000).unwrap();
        let s = p.sweep().unwrap();
        assert_eq!((s.seen, s.expired), (3, 3));
        assert!(p.flows().unwrap().is_empty());
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (0, 0));
        assert_eq!(conns(&p, &t, &web, "10.0.0.2"), (0, 0));
        // The reply of a swept flow is nobody's any more.
        let (v, out) = p.test_run(&synack).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &synack));
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_new_connection_on_the_ports_of_an_ended_one_is_scheduled_anew() {
    // IPVS's default conn_reuse_mode: a client that reuses its port while
    // the director still holds the old connection in TIME_WAIT or CLOSE
    // gets a new connection, scheduled and counted, not the old one's real
    // server. (Found as a wrr spread of 201/97/102 over 400 requests in the
    // VM, 18 of them never scheduled.)
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 80, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let client = ("198.51.100.7", 40000);
        let to_vip = |flags| tcp(client, ("192.0.2.1", 80), flags);
        let from = |rs, flags| tcp((rs, 80), client, flags);
        let real_server = |p: &mut XdpPlane, flags| {
            let (_, out) = p.test_run(&to_vip(flags)).unwrap();
            endpoints(&out).1.0.to_string()
        };
        let state = |p: &XdpPlane| {
            let f = p.flows().unwrap();
            assert_eq!(f.len(), 1);
            f[0].state
        };

        // A whole connection to 10.0.0.1, the real server closing first:
        // TIME_WAIT.
        assert_eq!(real_server(&mut p, SYN), "10.0.0.1");
        p.test_run(&from("10.0.0.1", SYN | ACK)).unwrap();
        p.test_run(&to_vip(ACK)).unwrap();
        p.test_run(&from("10.0.0.1", FIN | ACK)).unwrap();
        p.test_run(&to_vip(FIN | ACK)).unwrap();
        assert_eq!(state(&p), 5, "TIME_WAIT");
        // Not a SYN: still the old connection's.
        assert_eq!(real_server(&mut p, ACK), "10.0.0.1");
        assert_eq!(state(&p), 5);

        // The client's next connection from the same port: rr's next pick.
        assert_eq!(real_server(&mut p, SYN), "10.0.0.2");
        assert_eq!(state(&p), 3, "SYN_RECV: a new connection");
        assert_eq!(
            conns(&p, &t, &web, "10.0.0.1"),
            (0, 0),
            "the old one is gone"
        );
        assert_eq!(conns(&p, &t, &web, "10.0.0.2"), (0, 1));
        // A SYN on a live connection (a retransmission) stays on it.
        assert_eq!(real_server(&mut p, SYN), "10.0.0.2");
        p.test_run(&from("10.0.0.2", SYN | ACK)).unwrap();
        p.test_run(&to_vip(ACK)).unwrap();
        assert_eq!(real_server(&mut p, SYN), "10.0.0.2");
        assert_eq!(state(&p), 1, "ESTABLISHED");

        // Reset by the client: CLOSE; a SYN after it is scheduled anew too.
        p.test_run(&to_vip(RST | ACK)).unwrap();
        assert_eq!(state(&p), 6, "CLOSE");
        assert_eq!(real_server(&mut p, SYN), "10.0.0.1");
        let c = p.service_counters(&web).unwrap().unwrap();
        assert_eq!(c.conns, 3, "three connections scheduled");

        // A persistent service's connection is its template's: a SYN on an
        // ended one goes to the template's real server without a new
        // connection being counted, as the kernel keeps controlled entries.
        let mut sticky = ServiceSpec::new(web, SchedulerKind::Rr);
        sticky.persistent = Some(300);
        t.edit_service(sticky).unwrap();
        p.publish(&t).unwrap();
        p.test_run(&from("10.0.0.1", SYN | ACK)).unwrap();
        p.test_run(&to_vip(ACK)).unwrap();
        p.test_run(&to_vip(RST | ACK)).unwrap();
        assert_eq!(state(&p), 6, "CLOSE");
        let before = p.service_counters(&web).unwrap().unwrap().conns;
        assert_eq!(real_server(&mut p, SYN), "10.0.0.1");
        assert_eq!(p.service_counters(&web).unwrap().unwrap().conns, before);
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn udp_and_ipv6_nat_keep_checksums_right() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let dns = svc(Protocol::Udp, "192.0.2.1", 53);
        let web6 = svc(Protocol::Tcp, "2001:db8::1", 443);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(dns, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&dns, dest("10.0.0.3", 5353, Forwarding::Masq, 1))
            .unwrap();
        t.add_service(ServiceSpec::new(web6, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&web6, dest("2001:db8:1::3", 8443, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        for payload in [0, 1, 37, 512] {
            let q = frame(
                ("198.51.100.7", 1000 + payload as u16),
                ("192.0.2.1", 53),
                None,
                payload,
            );
            let (_, out) = p.test_run(&q).unwrap();
            assert_eq!(endpoints(&out).1, ("10.0.0.3".parse().unwrap(), 5353));
            assert!(checksums_ok(&out), "UDP/IPv4 with {payload} bytes");
            let r = frame(
                ("10.0.0.3", 5353),
                ("198.51.100.7", 1000 + payload as u16),
                None,
                payload,
            );
            let (_, out) = p.test_run(&r).unwrap();
            assert_eq!(endpoints(&out).0, ("192.0.2.1".parse().unwrap(), 53));
            assert!(checksums_ok(&out), "UDP/IPv4 reply with {payload} bytes");
        }
        // A datagram without a checksum keeps none.
        let mut q = frame(("198.51.100.7", 999), ("192.0.2.1", 53), None, 4);
        q[40..42].copy_from_slice(&[0, 0]);
        let (_, out) = p.test_run(&q).unwrap();
        assert_eq!(&out[40..42], &[0, 0]);
        assert_eq!(
            conns(&p, &t, &dns, "10.0.0.3"),
            (0, 5),
            "UDP flows count inactive"
        );

        let syn = tcp(("2001:db8:2::7", 40000), ("2001:db8::1", 443), SYN);
        let (_, out) = p.test_run(&syn).unwrap();
        assert_eq!(endpoints(&out).1, ("2001:db8:1::3".parse().unwrap(), 8443));
        assert!(checksums_ok(&out), "TCP/IPv6");
        let back = tcp(("2001:db8:1::3", 8443), ("2001:db8:2::7", 40000), SYN | ACK);
        let (_, out) = p.test_run(&back).unwrap();
        assert_eq!(endpoints(&out).0, ("2001:db8::1".parse().unwrap(), 443));
        assert!(checksums_ok(&out), "TCP/IPv6 reply");
        // Another address of the real server's network is nobody's reply.
        let fake = tcp(("2001:db8:1::4", 8443), ("2001:db8:2::7", 40000), ACK);
        let (v, out) = p.test_run(&fake).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &fake));
        // The IPv6 flow is listed with the IPv4 ones.
        let flows = p.flows().unwrap();
        assert_eq!(flows.len(), 6);
        let f6: Vec<_> = flows.iter().filter(|f| f.client.0.is_ipv6()).collect();
        assert_eq!(f6.len(), 1);
        assert_eq!(f6[0].client, ("2001:db8:2::7".parse().unwrap(), 40000));
        assert_eq!(f6[0].virt, ("2001:db8::1".parse().unwrap(), 443));
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn direct_routing_changes_only_the_macs_and_goes_out_of_the_fib_interface() {
    // A namespace that routes: the real server's network on a dummy
    // interface, its MAC known.
    let setup = "sysctl -qw net.ipv4.ip_forward=1; ip link set lo up; \
                 ip link add rs0 address 02:00:00:00:00:aa type veth peer name rs1; ip link set rs0 up; ip link set rs1 up; \
                 ip addr add 10.0.0.254/24 dev rs0; \
                 ip neigh add 10.0.0.1 lladdr 02:00:00:00:00:01 dev rs0 nud permanent";
    in_netns(setup, || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Route, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let syn = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
        let (v, out) = p.test_run(&syn).unwrap();
        assert_eq!(v, XDP_REDIRECT, "out of rs0");
        assert_eq!(&out[..6], &[2, 0, 0, 0, 0, 1], "to the real server's MAC");
        assert_eq!(&out[6..12], &[2, 0, 0, 0, 0, 0xaa], "from the director's");
        assert_eq!(&out[12..], &syn[12..], "the IP packet untouched");
        // Direct routing never sees replies: INPUT_ONLY states.
        let ack = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), ACK);
        p.test_run(&ack).unwrap();
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (1, 0));

        // NAT through the same route decrements the TTL, checksum right.
        let nat = svc(Protocol::Tcp, "192.0.2.1", 8080);
        t.add_service(ServiceSpec::new(nat, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&nat, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let syn = tcp(("198.51.100.7", 40001), ("192.0.2.1", 8080), SYN);
        let (v, out) = p.test_run(&syn).unwrap();
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(out[22], 63, "TTL");
        assert!(checksums_ok(&out));
        // TTL 1: the kernel answers (time exceeded).
        let mut syn = tcp(("198.51.100.7", 40002), ("192.0.2.1", 8080), SYN);
        syn[22] = 1;
        let (v, _) = p.test_run(&syn).unwrap();
        assert_eq!(v, XDP_PASS);
        assert_eq!(count(&p, Exception::Ttl), 1);
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_deleted_real_server_keeps_its_flows_and_quiesced_ones_get_no_new() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 80, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let a = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
        let (_, out) = p.test_run(&a).unwrap();
        assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.1");
        // Quiesce 10.0.0.1: new clients avoid it, its flow goes on.
        t.edit_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 0))
            .unwrap();
        p.publish(&t).unwrap();
        for port in 1..5 {
            let (_, out) = p
                .test_run(&tcp(("198.51.100.8", port), ("192.0.2.1", 80), SYN))
                .unwrap();
            assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.2");
        }
        let ack = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), ACK);
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.1");
        // Delete it: the established flow still reaches it.
        t.delete_dest(&web, &"10.0.0.1".parse().unwrap(), 80)
            .unwrap();
        p.publish(&t).unwrap();
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.1");
        // The service goes: no new flows, old ones go on.
        t.delete_service(&web).unwrap();
        p.publish(&t).unwrap();
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.1");
        let new = tcp(("198.51.100.9", 1), ("192.0.2.1", 80), SYN);
        let (v, out) = p.test_run(&new).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &new));
        assert_eq!(count(&p, Exception::NoService), 1);
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn tunnelling_wraps_the_packet_whole_and_drops_what_cannot_go_yet() {
    in_netns(TUNNEL_PATH, || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let web6 = svc(Protocol::Tcp, "2001:db8::1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::TUNNEL, 1))
            .unwrap();
        t.add_service(ServiceSpec::new(web6, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web6, dest("2001:db8:1::1", 80, Forwarding::TUNNEL, 1))
            .unwrap();
        p.publish(&t).unwrap();

        let syn = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
        let (v, out) = p.test_run(&syn).unwrap();
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(&out[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        let outer = &out[14..34];
        assert_eq!(outer[0], 0x45);
        assert_eq!(outer[9], 4, "IP-in-IP");
        assert_eq!(
            usize::from(u16::from_be_bytes([outer[2], outer[3]])),
            syn.len() - 14 + 20
        );
        assert_eq!(
            &outer[12..16],
            &[10, 0, 0, 254],
            "from the director's address"
        );
        assert_eq!(&outer[16..20], &[10, 0, 0, 1], "to the real server");
        let sum: u32 = outer
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "outer checksum");
        assert_eq!(&out[34..], &syn[14..], "the client's packet, whole");

        let syn6 = tcp(("2001:db8:2::7", 40000), ("2001:db8::1", 80), SYN);
        let (v, out) = p.test_run(&syn6).unwrap();
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        assert_eq!(out[14 + 6], 41, "IPv6-in-IPv6");
        assert_eq!(
            usize::from(u16::from_be_bytes([out[18], out[19]])),
            syn6.len() - 14
        );
        assert_eq!(&out[54..], &syn6[14..]);

        // A segment bigger than the tunnel's path allows (DF set, as the
        // builder sends): answered, counted (the answer: the next test).
        let big = frame(("198.51.100.7", 40000), ("192.0.2.1", 80), Some(ACK), 1250);
        let (v, _) = p.test_run(&big).unwrap();
        assert_eq!(v, fulcrum_xdp::XDP_TX);
        assert_eq!(count(&p, Exception::TooBig), 1);
        // IPv6: "packet too big" from the VIP, IPv6's least MTU (1300 less
        // the tunnel's 40 bytes is below it), quoting header and 8 bytes.
        let big6 = frame(
            ("2001:db8:2::7", 40000),
            ("2001:db8::1", 80),
            Some(ACK),
            1250,
        );
        let (v, out) = p.test_run(&big6).unwrap();
        assert_eq!(v, fulcrum_xdp::XDP_TX);
        assert_eq!(count(&p, Exception::TooBig), 2);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        assert_eq!(out[20], 58, "ICMPv6");
        assert_eq!(&out[22..38], &big6[38..54], "from the VIP");
        assert_eq!(&out[38..54], &big6[22..38], "to the client");
        assert_eq!(&out[54..56], &[2, 0], "packet too big");
        assert_eq!(
            u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
            1280
        );
        assert_eq!(&out[62..], &big6[14..62], "the quote: header and 8 bytes");
        assert!(icmp6_ok(&out), "checksum");

        // A real server whose next hop is not resolved: dropped, counted,
        // and the plane has the kernel resolve it.
        t.delete_dest(&web, &"10.0.0.1".parse().unwrap(), 80)
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 80, Forwarding::Route, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let (v, _) = p
            .test_run(&tcp(("198.51.100.9", 1), ("192.0.2.1", 80), SYN))
            .unwrap();
        assert_eq!(v, fulcrum_xdp::XDP_DROP);
        assert_eq!(count(&p, Exception::NoNeighbour), 1);
        // Its next hop is the plane's to have resolved, once.
        let hops = p.take_unresolved().unwrap();
        assert_eq!(hops.len(), 1, "{hops:?}");
        assert_eq!(hops[0].1, "10.0.0.2".parse::<std::net::IpAddr>().unwrap());
        assert!(p.take_unresolved().unwrap().is_empty(), "taken");
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn persistence_templates_are_listed_outlive_their_flows_and_expire() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 0);
        let mut t = Table::new();
        let mut s = ServiceSpec::new(web, SchedulerKind::Rr);
        s.persistent = Some(300);
        t.add_service(s).unwrap();
        t.add_dest(&web, dest("10.0.0.2", 0, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 0, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        // A port-zero service takes every port; one client, one real
        // server, whatever the port.
        for port in [80, 443, 8080] {
            let (_, out) = p
                .test_run(&tcp(
                    ("198.51.100.7", 40000 + port),
                    ("192.0.2.1", port),
                    SYN,
                ))
                .unwrap();
            assert_eq!(endpoints(&out).1, ("10.0.0.1".parse().unwrap(), port));
        }
        let (_, out) = p
            .test_run(&tcp(("198.51.100.8", 1), ("192.0.2.1", 80), SYN))
            .unwrap();
        assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.2");
        let c = p.connections().unwrap();
        let templates: Vec<_> = c.iter().filter(|e| e.cport == 0).collect();
        assert_eq!(templates.len(), 2, "{c:?}");
        assert!(
            templates
                .iter()
                .all(|e| e.state == "NONE" && e.vport == 0 && e.expires > 290)
        );
        let s = t.service(&web).unwrap();
        let d1 = s.dest(&"10.0.0.1".parse().unwrap(), 0).unwrap().id;
        assert_eq!(p.dest_conns(&web, d1).unwrap().unwrap().persist, 1);
        // 61 s on: the SYN_RECV flows are gone, the templates stay.
        p.set_clock_offset(61_000_000_000).unwrap();
        assert_eq!(p.sweep().unwrap().expired, 4);
        assert_eq!(p.dest_conns(&web, d1).unwrap().unwrap().persist, 1);
        // 301 s on: the templates go too.
        p.set_clock_offset(301_000_000_000).unwrap();
        p.sweep().unwrap();
        assert_eq!(p.dest_conns(&web, d1).unwrap().unwrap().persist, 0);
        assert!(p.connections().unwrap().is_empty());
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn icmp_errors_of_a_flow_reach_its_real_server_or_its_client() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 8080, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        p.test_run(&tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN))
            .unwrap();
        // A router towards the client cannot pass the director's reply:
        // "fragmentation needed" for the VIP goes on to the real server,
        // the quote now naming the real server's own address and port.
        let reply = tcp(("192.0.2.1", 80), ("198.51.100.7", 40000), ACK);
        let frag = icmp4_error("203.0.113.1", "192.0.2.1", 3, 4, [0, 0, 0x05, 0xdc], &reply);
        let (v, out) = p.test_run(&frag).unwrap();
        assert_eq!(v, XDP_PASS, "the kernel routes it (no route here)");
        assert_eq!(&out[30..34], &[10, 0, 0, 1], "to the real server");
        let q = 14 + 20 + 8;
        assert_eq!(&out[q + 12..q + 16], &[10, 0, 0, 1], "quoted source");
        assert_eq!(&out[q + 20..q + 22], &8080u16.to_be_bytes(), "quoted port");
        assert_eq!(&out[q + 16..q + 20], &[198, 51, 100, 7]);
        assert!(icmp4_ok(&out), "checksums");
        assert_eq!(count(&p, Exception::IcmpForwarded), 1);
        // Between the director and the real server a router cannot pass
        // the client's packet: the client hears it from the VIP.
        let fwd = tcp(("198.51.100.7", 40000), ("10.0.0.1", 8080), ACK);
        let unreach = icmp4_error("10.0.0.254", "198.51.100.7", 3, 1, [0; 4], &fwd);
        let (_, out) = p.test_run(&unreach).unwrap();
        assert_eq!(&out[26..30], &[192, 0, 2, 1], "from the VIP");
        assert_eq!(&out[q + 16..q + 20], &[192, 0, 2, 1], "quoted destination");
        assert_eq!(&out[q + 22..q + 24], &80u16.to_be_bytes());
        assert!(icmp4_ok(&out), "checksums");
        // An error about nobody's flow is the kernel's, untouched.
        let other = tcp(("192.0.2.1", 80), ("198.51.100.99", 1), ACK);
        let stray = icmp4_error("203.0.113.1", "192.0.2.1", 3, 4, [0; 4], &other);
        let (v, out) = p.test_run(&stray).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &stray));
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn gue_wraps_the_packet_in_udp_to_the_real_servers_port() {
    in_netns(TUNNEL_PATH, || {
        let Some(mut p) = load() else { return };
        let gue = Forwarding::Tunnel {
            kind: fulcrum_core::TunnelType::Gue,
            port: 6080,
            csum: fulcrum_core::TunnelCsum::NoCsum,
        };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let web6 = svc(Protocol::Tcp, "2001:db8::1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, gue, 1)).unwrap();
        t.add_service(ServiceSpec::new(web6, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web6, dest("2001:db8:1::1", 80, gue, 1))
            .unwrap();
        p.publish(&t).unwrap();

        // IPv4: IP, UDP to port 6080 without a checksum, GUE version 0
        // carrying IP-in-IP (4), the client's packet whole.
        let syn = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN);
        let (v, out) = p.test_run(&syn).unwrap();
        assert_eq!(v, XDP_REDIRECT);
        let inner = syn.len() - 14;
        let outer = &out[14..34];
        assert_eq!(outer[9], 17, "UDP");
        assert_eq!(
            usize::from(u16::from_be_bytes([outer[2], outer[3]])),
            inner + 32
        );
        assert_eq!(&outer[12..16], &[10, 0, 0, 254]);
        assert_eq!(&outer[16..20], &[10, 0, 0, 1]);
        let sum: u32 = outer
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "outer checksum");
        let udp = &out[34..42];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        assert!((32768..=60999).contains(&sport), "source port {sport}");
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6080);
        assert_eq!(
            usize::from(u16::from_be_bytes([udp[4], udp[5]])),
            inner + 12
        );
        assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum");
        assert_eq!(&out[42..46], &[0, 4, 0, 0], "GUE: version 0, IPv4 inside");
        assert_eq!(&out[46..], &syn[14..], "the client's packet, whole");
        // The flow's next packet leaves from the same source port; another
        // flow's (most likely) from another.
        let ack = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), ACK);
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(u16::from_be_bytes([out[34], out[35]]), sport);
        let ports: std::collections::HashSet<u16> = (0..8)
            .map(|i| {
                let syn = tcp(("198.51.100.8", 41000 + i), ("192.0.2.1", 80), SYN);
                let (_, out) = p.test_run(&syn).unwrap();
                u16::from_be_bytes([out[34], out[35]])
            })
            .collect();
        assert!(ports.len() > 4, "flows spread over source ports: {ports:?}");

        // IPv6: GUE carrying IPv6 (41).
        let syn6 = tcp(("2001:db8:2::7", 40000), ("2001:db8::1", 80), SYN);
        let (v, out) = p.test_run(&syn6).unwrap();
        assert_eq!(v, XDP_REDIRECT);
        let inner6 = syn6.len() - 14;
        assert_eq!(out[14 + 6], 17, "UDP");
        assert_eq!(
            usize::from(u16::from_be_bytes([out[18], out[19]])),
            inner6 + 12
        );
        assert_eq!(u16::from_be_bytes([out[56], out[57]]), 6080);
        assert_eq!(
            usize::from(u16::from_be_bytes([out[58], out[59]])),
            inner6 + 12
        );
        assert_eq!(&out[62..66], &[0, 41, 0, 0], "GUE: IPv6 inside");
        assert_eq!(&out[66..], &syn6[14..]);

        // Too big for the path with GUE's 32 bytes more: the client learns
        // the MTU less 32.
        let big = with_df(frame(
            ("198.51.100.7", 40000),
            ("192.0.2.1", 80),
            Some(ACK),
            1240,
        ));
        let (v, out) = p.test_run(&big).unwrap();
        assert_eq!(v, fulcrum_xdp::XDP_TX);
        assert_eq!(&out[34..36], &[3, 4], "fragmentation needed");
        assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1300 - 32);
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn too_big_for_the_tunnel_answers_fragmentation_needed_less_the_tunnel() {
    let setup = "sysctl -qw net.ipv4.ip_forward=1; ip link set lo up; \
                 ip link add rs0 address 02:00:00:00:00:aa mtu 1300 type veth peer name rs1; ip link set rs0 up; ip link set rs1 up; \
                 ip addr add 10.0.0.254/24 dev rs0; \
                 ip neigh add 10.0.0.1 lladdr 02:00:00:00:00:01 dev rs0 nud permanent";
    in_netns(setup, || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::TUNNEL, 1))
            .unwrap();
        p.publish(&t).unwrap();
        p.test_run(&tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN))
            .unwrap();
        let big = with_df(frame(
            ("198.51.100.7", 40000),
            ("192.0.2.1", 80),
            Some(ACK),
            1250,
        ));
        let (v, out) = p.test_run(&big).unwrap();
        assert_eq!(v, fulcrum_xdp::XDP_TX, "answered on the way it came");
        assert_eq!(&out[..6], &MAC[6..12], "to the sender's MAC");
        assert_eq!(out[14 + 9], 1, "ICMP");
        assert_eq!(&out[26..30], &[192, 0, 2, 1], "from the VIP");
        assert_eq!(&out[30..34], &[198, 51, 100, 7], "to the client");
        assert_eq!(&out[34..36], &[3, 4], "fragmentation needed");
        assert_eq!(
            u16::from_be_bytes([out[40], out[41]]),
            1280,
            "the path's MTU less the tunnel's 20 bytes"
        );
        assert_eq!(out.len(), 14 + 20 + 8 + 28, "the quote: header and 8 bytes");
        assert_eq!(&out[42..70], &big[14..42]);
        assert!(icmp4_ok(&out), "checksums");
    });
}

/// An SCTP packet with one chunk of `kind` (CRC left zero: the program
/// never reads or changes it).
fn sctp(src: (&str, u16), dst: (&str, u16), kind: u8) -> Vec<u8> {
    let s: std::net::Ipv4Addr = src.0.parse().unwrap();
    let d: std::net::Ipv4Addr = dst.0.parse().unwrap();
    let mut l4 = Vec::new();
    l4.extend_from_slice(&src.1.to_be_bytes());
    l4.extend_from_slice(&dst.1.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 0]);
    l4.extend_from_slice(&[kind, 0, 0, 4]);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 132, 0, 0]);
    ip.extend_from_slice(&s.octets());
    ip.extend_from_slice(&d.octets());
    let sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let c = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn sctp_associations_begin_with_init_and_go_by_nat() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let sip = svc(Protocol::Sctp, "192.0.2.1", 5060);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(sip, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&sip, dest("10.0.0.1", 5060, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        // Not an INIT: no association to schedule.
        let data = sctp(("198.51.100.7", 5000), ("192.0.2.1", 5060), 0);
        let (v, out) = p.test_run(&data).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &data));
        assert_eq!(count(&p, Exception::NotSyn), 1);
        let init = sctp(("198.51.100.7", 5000), ("192.0.2.1", 5060), 1);
        let (_, out) = p.test_run(&init).unwrap();
        assert_eq!(&out[30..34], &[10, 0, 0, 1], "to the real server");
        assert_eq!(
            &out[34..],
            &init[34..],
            "the SCTP packet and its CRC untouched"
        );
        assert_eq!(conns(&p, &t, &sip, "10.0.0.1"), (0, 1));
        let back = sctp(("10.0.0.1", 5060), ("198.51.100.7", 5000), 2);
        let (_, out) = p.test_run(&back).unwrap();
        assert_eq!(&out[26..30], &[192, 0, 2, 1], "replies from the VIP");
        p.test_run(&sctp(("198.51.100.7", 5000), ("192.0.2.1", 5060), 10))
            .unwrap();
        p.test_run(&sctp(("10.0.0.1", 5060), ("198.51.100.7", 5000), 11))
            .unwrap();
        assert_eq!(conns(&p, &t, &sip, "10.0.0.1"), (1, 0), "established");
        let (_, out) = p.test_run(&data).unwrap();
        assert_eq!(&out[30..34], &[10, 0, 0, 1]);
        p.test_run(&sctp(("198.51.100.7", 5000), ("192.0.2.1", 5060), 6))
            .unwrap();
        assert_eq!(conns(&p, &t, &sip, "10.0.0.1"), (0, 1), "aborted: CLOSE");
        // Another port at the real server would need the CRC recomputed.
        t.add_dest(&sip, dest("10.0.0.2", 5061, Forwarding::Masq, 1))
            .unwrap();
        let e = p.publish(&t).unwrap_err().to_string();
        assert!(e.contains("does not recompute SCTP's CRC"), "{e}");
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn icmpv6_errors_of_a_flow_reach_its_real_server_or_its_client() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "2001:db8::1", 443);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("2001:db8:1::3", 8443, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        p.test_run(&tcp(("2001:db8:2::7", 40000), ("2001:db8::1", 443), SYN))
            .unwrap();
        // "Packet too big" for the VIP about its reply: to the real server.
        let reply = tcp(("2001:db8::1", 443), ("2001:db8:2::7", 40000), ACK);
        let ptb = icmp6_error("2001:db8:ff::1", "2001:db8::1", 2, 0, [0, 0, 5, 0], &reply);
        let (_, out) = p.test_run(&ptb).unwrap();
        let rs: std::net::Ipv6Addr = "2001:db8:1::3".parse().unwrap();
        assert_eq!(&out[38..54], &rs.octets(), "to the real server");
        assert_eq!(&out[62 + 8..62 + 24], &rs.octets(), "quoted source");
        assert_eq!(
            &out[62 + 40..62 + 42],
            &8443u16.to_be_bytes(),
            "quoted port"
        );
        assert!(icmp6_ok(&out), "checksum");
        // Unreachable towards the real server: to the client, from the VIP.
        let fwd = tcp(("2001:db8:2::7", 40000), ("2001:db8:1::3", 8443), ACK);
        let unreach = icmp6_error("2001:db8:1::fe", "2001:db8:2::7", 1, 3, [0; 4], &fwd);
        let (_, out) = p.test_run(&unreach).unwrap();
        let vip: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(&out[22..38], &vip.octets(), "from the VIP");
        assert_eq!(&out[62 + 24..62 + 40], &vip.octets(), "quoted destination");
        assert_eq!(&out[62 + 42..62 + 44], &443u16.to_be_bytes());
        assert!(icmp6_ok(&out), "checksum");
        assert_eq!(count(&p, Exception::IcmpForwarded), 2);
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_nat_reply_to_a_client_of_no_known_neighbour_waits_for_it() {
    // The client's network is on-link behind rs0, its MAC not known yet:
    // the kernel would take the rewritten reply (from the director's own
    // VIP) for a martian, so the program drops it and names the next hop.
    let setup = "sysctl -qw net.ipv4.ip_forward=1; ip link set lo up; \
                 ip link add rs0 address 02:00:00:00:00:aa type veth peer name rs1; ip link set rs0 up; ip link set rs1 up; \
                 ip addr add 10.0.0.254/24 dev rs0; ip route add 198.51.100.0/24 dev rs0; \
                 ip neigh add 10.0.0.1 lladdr 02:00:00:00:00:01 dev rs0 nud permanent";
    in_netns(setup, || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let (v, _) = p
            .test_run(&tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), SYN))
            .unwrap();
        assert_eq!(v, XDP_REDIRECT, "in: to the real server");
        let synack = tcp(("10.0.0.1", 80), ("198.51.100.7", 40000), SYN | ACK);
        let (v, _) = p.test_run(&synack).unwrap();
        assert_eq!(v, fulcrum_xdp::XDP_DROP, "out: no neighbour yet");
        assert_eq!(count(&p, Exception::NoNeighbour), 1);
        assert_eq!(
            count(&p, Exception::ToKernel),
            0,
            "not handed to the kernel"
        );
        let hops = p.take_unresolved().unwrap();
        // (A child process shares this thread's namespace; sysfs does not.)
        let ifindex: u32 = fulcrum_testbed::sh("ip -o link show rs0")
            .split(':')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(hops, vec![(ifindex, "198.51.100.7".parse().unwrap())]);
        // Resolved (as the kernel does when asked): the retransmitted
        // reply goes out, from the VIP.
        fulcrum_testbed::sh("ip neigh add 198.51.100.7 lladdr 02:00:00:00:00:07 dev rs0");
        let (v, out) = p.test_run(&synack).unwrap();
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(&out[..6], &[2, 0, 0, 0, 0, 7]);
        assert_eq!(endpoints(&out).0, ("192.0.2.1".parse().unwrap(), 80));
    });
}
