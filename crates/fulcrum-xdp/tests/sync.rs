//! Connections another director synced, installed in the program's flow
//! table: bound to this director's real server of the same address, with
//! the message's state and timeout; forwarded there (a client's segment
//! that is no SYN too, replies back from the VIP), moved when the message
//! says so, counted; templates honoured; unknown services dropped.
//! Runs with FULCRUM_NETNS_TESTS=1.

mod common;

use common::*;
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::state::ConnState;
use fulcrum_core::{Forwarding, Protocol, ServiceKey, ServiceSpec, Table};
use fulcrum_xdp::{Installed, SyncedFlow, XDP_PASS, XdpPlane};

fn synced(
    client: (&str, u16),
    virt: (&str, u16),
    dest: (&str, u16),
    state: ConnState,
) -> SyncedFlow {
    SyncedFlow {
        proto: Protocol::Tcp,
        virt: (virt.0.parse().unwrap(), virt.1),
        client: (client.0.parse().unwrap(), client.1),
        dest: (dest.0.parse().unwrap(), dest.1),
        state,
        template: false,
        timeout: 900,
    }
}

fn conns(p: &XdpPlane, t: &Table, key: &ServiceKey, addr: &str) -> (u32, u32, u32) {
    let c = dest_counts(p, t, key, addr);
    (c.active, c.inactive, c.persist)
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn synced_flows_are_bound_forwarded_moved_and_counted() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 8080, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();

        // An established connection on 10.0.0.2, as the active director
        // had it; and two of nothing this director knows.
        let est = synced(
            ("198.51.100.7", 40000),
            ("192.0.2.1", 80),
            ("10.0.0.2", 8080),
            ConnState::Established,
        );
        let unknown_svc = synced(
            ("198.51.100.7", 40001),
            ("192.0.2.99", 80),
            ("10.0.0.2", 8080),
            ConnState::Established,
        );
        let unknown_dest = synced(
            ("198.51.100.7", 40002),
            ("192.0.2.1", 80),
            ("10.0.0.9", 80),
            ConnState::Established,
        );
        let done = p
            .install(&[est.clone(), unknown_svc, unknown_dest])
            .unwrap();
        assert_eq!(
            done,
            Installed {
                added: 1,
                updated: 0,
                templates: 0,
                unknown: 2
            }
        );
        assert_eq!(conns(&p, &t, &web, "10.0.0.2"), (1, 0, 0), "active");
        let flows = p.flows().unwrap();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].state, ConnState::Established as u8);

        // The client's next segment (no SYN: a fresh director would leave
        // it to the kernel) goes to the synced real server, and the reply
        // comes back from the VIP.
        let ack = tcp(("198.51.100.7", 40000), ("192.0.2.1", 80), ACK);
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(endpoints(&out).1, ("10.0.0.2".parse().unwrap(), 8080));
        assert!(checksums_ok(&out));
        let reply = tcp(("10.0.0.2", 8080), ("198.51.100.7", 40000), ACK);
        let (_, out) = p.test_run(&reply).unwrap();
        assert_eq!(endpoints(&out).0, ("192.0.2.1".parse().unwrap(), 80));

        // A later message: TIME_WAIT (inactive), then another real server.
        let tw = SyncedFlow {
            state: ConnState::TimeWait,
            timeout: 120,
            ..est.clone()
        };
        let done = p.install(&[tw]).unwrap();
        assert_eq!((done.added, done.updated), (0, 1));
        assert_eq!(conns(&p, &t, &web, "10.0.0.2"), (0, 1, 0));
        let moved = SyncedFlow {
            dest: ("10.0.0.1".parse().unwrap(), 80),
            ..est.clone()
        };
        p.install(&[moved]).unwrap();
        assert_eq!(conns(&p, &t, &web, "10.0.0.2"), (0, 0, 0));
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (1, 0, 0));
        let (_, out) = p.test_run(&ack).unwrap();
        assert_eq!(endpoints(&out).1, ("10.0.0.1".parse().unwrap(), 80));

        // The synced timeout holds: gone with the sweeper after 900 s.
        p.set_clock_offset(901_000_000_000).unwrap();
        let s = p.sweep().unwrap();
        assert_eq!(s.expired, 1);
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (0, 0, 0));
        let (v, out) = p.test_run(&ack).unwrap();
        assert_eq!((v, &out), (XDP_PASS, &ack), "nobody's flow now");

        // IPv6 too.
        let web6 = svc(Protocol::Tcp, "2001:db8::1", 443);
        t.add_service(ServiceSpec::new(web6, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&web6, dest("2001:db8:1::3", 443, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let e6 = synced(
            ("2001:db8:2::7", 40000),
            ("2001:db8::1", 443),
            ("2001:db8:1::3", 443),
            ConnState::Established,
        );
        assert_eq!(p.install(&[e6]).unwrap().added, 1);
        let ack6 = tcp(("2001:db8:2::7", 40000), ("2001:db8::1", 443), ACK);
        let (_, out) = p.test_run(&ack6).unwrap();
        assert_eq!(endpoints(&out).1, ("2001:db8:1::3".parse().unwrap(), 443));
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_synced_template_keeps_its_client_network_on_its_real_server() {
    in_netns("", || {
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let mut t = Table::new();
        let mut s = ServiceSpec::new(web, SchedulerKind::Rr);
        s.persistent = Some(300);
        t.add_service(s).unwrap();
        t.add_dest(&web, dest("10.0.0.1", 80, Forwarding::Masq, 1))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 80, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        // rr would start at the list's first (10.0.0.2, the newest); the
        // template says 10.0.0.1 for 198.51.100.0/32's... network: the
        // default netmask is /32, so the template is the client's own.
        let tmpl = SyncedFlow {
            proto: Protocol::Tcp,
            virt: ("192.0.2.1".parse().unwrap(), 80),
            client: ("198.51.100.7".parse().unwrap(), 0),
            dest: ("10.0.0.1".parse().unwrap(), 80),
            state: ConnState::None,
            template: true,
            timeout: 300,
        };
        let done = p.install(std::slice::from_ref(&tmpl)).unwrap();
        assert_eq!(done.templates, 1);
        assert_eq!(conns(&p, &t, &web, "10.0.0.1"), (0, 0, 1), "persistconn");
        for port in [41000, 41001, 41002] {
            let (_, out) = p
                .test_run(&tcp(("198.51.100.7", port), ("192.0.2.1", 80), SYN))
                .unwrap();
            assert_eq!(endpoints(&out).1.0.to_string(), "10.0.0.1");
        }
        // Refreshed, not counted twice.
        p.install(&[tmpl]).unwrap();
        assert_eq!(conns(&p, &t, &web, "10.0.0.1").2, 1);
    });
}
