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

/// What the reports of a run become, as a master would send them.
fn sent(p: &XdpPlane, r: &mut fulcrum_xdp::SyncReports) -> Vec<fulcrum_sync::Conn> {
    let mut reports = Vec::new();
    r.drain(usize::MAX, &mut reports);
    let view = p.sync_view();
    let mut out = Vec::new();
    for rep in &reports {
        assert!(
            view.entries(rep, &mut out),
            "{rep:?} of a known real server"
        );
    }
    out
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_master_reports_flows_when_ipvs_would_sync_them() {
    in_netns("", || {
        use fulcrum_sync::flags;
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 80);
        let dns = svc(Protocol::Udp, "192.0.2.1", 53);
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(web, SchedulerKind::Wlc))
            .unwrap();
        t.add_dest(&web, dest("10.0.0.2", 8080, Forwarding::Masq, 1))
            .unwrap();
        t.add_service(ServiceSpec::new(dns, SchedulerKind::Rr))
            .unwrap();
        t.add_dest(&dns, dest("10.0.0.3", 53, Forwarding::Route, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let mut reports = p.take_sync_reports().unwrap();
        assert!(p.take_sync_reports().is_err(), "one reader");

        // Not sending: nothing reported.
        let c = ("198.51.100.7", 40000);
        let run = |f: &[u8]| p.test_run(f).unwrap();
        run(&tcp(c, ("192.0.2.1", 80), SYN));
        for _ in 0..5 {
            run(&tcp(c, ("192.0.2.1", 80), ACK));
        }
        assert!(sent(&p, &mut reports).is_empty());

        p.set_sync_sending(true).unwrap();
        let c = ("198.51.100.7", 40001);
        let run = |f: &[u8]| p.test_run(f).unwrap();
        // SYN (SYN_RECV) and the handshake's ACK (into ESTABLISHED, the
        // second packet) report nothing; the third packet reports.
        run(&tcp(c, ("192.0.2.1", 80), SYN));
        run(&tcp(c, ("192.0.2.1", 80), ACK));
        assert!(
            sent(&p, &mut reports).is_empty(),
            "not before the third packet"
        );
        run(&tcp(c, ("192.0.2.1", 80), ACK));
        let got = sent(&p, &mut reports);
        assert_eq!(
            got,
            vec![fulcrum_sync::Conn {
                protocol: 6,
                flags: 0, // masquerading, active
                state: ConnState::Established as u16,
                client: ("198.51.100.7".parse().unwrap(), 40001),
                virt: ("192.0.2.1".parse().unwrap(), 80),
                dest: ("10.0.0.2".parse().unwrap(), 8080),
                fwmark: 0,
                timeout: Some(900),
                seq: None,
                pe: None,
            }]
        );
        // Then every 50 packets: the 53rd, the 103rd.
        for _ in 4..=53 {
            run(&tcp(c, ("192.0.2.1", 80), ACK));
        }
        assert_eq!(sent(&p, &mut reports).len(), 1, "the 53rd packet");
        for _ in 54..=103 {
            run(&tcp(c, ("192.0.2.1", 80), ACK));
        }
        assert_eq!(sent(&p, &mut reports).len(), 1, "the 103rd packet");
        // A change into a closing state reports at once: the client's FIN
        // (ESTABLISHED to CLOSE_WAIT in IPVS's input table), inactive now.
        run(&tcp(c, ("192.0.2.1", 80), FIN | ACK));
        let got = sent(&p, &mut reports);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].state, got[0].flags),
            (ConnState::CloseWait as u16, flags::INACTIVE)
        );
        assert_eq!(got[0].timeout, Some(60));

        // SYNs sent again (the reply lost): established only at the fourth
        // packet, reported then (IPVS would wait for the 53rd).
        let c = ("198.51.100.7", 40002);
        let run = |f: &[u8]| p.test_run(f).unwrap();
        for _ in 0..3 {
            run(&tcp(c, ("192.0.2.1", 80), SYN));
        }
        assert!(
            sent(&p, &mut reports).is_empty(),
            "SYN_RECV is never synced"
        );
        run(&tcp(c, ("192.0.2.1", 80), ACK));
        let got = sent(&p, &mut reports);
        assert_eq!(got.len(), 1, "established late: reported at once");
        assert_eq!(got[0].state, ConnState::Established as u16);
        run(&tcp(c, ("192.0.2.1", 80), ACK));
        assert!(sent(&p, &mut reports).is_empty(), "once");

        // UDP by its packets alone: the third; direct routing's flag.
        let u = ("198.51.100.8", 5353);
        let dgram = frame(u, ("192.0.2.1", 53), None, 8);
        for _ in 0..2 {
            p.test_run(&dgram).unwrap();
        }
        assert!(sent(&p, &mut reports).is_empty());
        p.test_run(&dgram).unwrap();
        let got = sent(&p, &mut reports);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].protocol,
                got[0].state,
                got[0].flags & flags::FWD_MASK,
                got[0].timeout
            ),
            (17, 0, 3, Some(300))
        );
        assert_eq!(got[0].dest, ("10.0.0.3".parse().unwrap(), 53));
        let (made, lost) = p.sync_report_counts().unwrap();
        assert_eq!((made, lost), (6, 0));

        // Every report goes on the wire: Wireshark-compatible messages.
        let msgs = fulcrum_sync::encode(0, &got, fulcrum_sync::DEFAULT_MAXLEN).unwrap();
        assert_eq!(fulcrum_sync::decode(&msgs[0]).unwrap().conns, got);

        // A full ring (4 MiB: 65,536 reports of 56 bytes, each with the
        // ring's 8-byte header) loses reports,
        // counted, and the packets still go through.
        let v = p.test_run_repeat(&dgram, 50 * 80_000).unwrap();
        assert_ne!(v, XDP_PASS, "forwarded");
        let (made, lost) = p.sync_report_counts().unwrap();
        assert!(
            lost > 0 && made + lost == 6 + 80_000,
            "{made} made, {lost} lost"
        );
        let mut all = Vec::new();
        assert_eq!(reports.drain(usize::MAX, &mut all) as u64, made - 6);

        // Stopped: nothing more.
        p.set_sync_sending(false).unwrap();
        p.test_run_repeat(&dgram, 200).unwrap();
        assert_eq!(p.sync_report_counts().unwrap().0, made);
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_persistent_flow_is_sent_with_its_template() {
    in_netns("", || {
        use fulcrum_sync::flags;
        let Some(mut p) = load() else { return };
        let web = svc(Protocol::Tcp, "192.0.2.1", 443);
        let mut t = Table::new();
        let mut s = ServiceSpec::new(web, SchedulerKind::Rr);
        s.persistent = Some(600);
        s.netmask = fulcrum_core::Netmask::V4(0xffff_ff00);
        t.add_service(s).unwrap();
        t.add_dest(&web, dest("10.0.0.1", 443, Forwarding::Masq, 1))
            .unwrap();
        p.publish(&t).unwrap();
        let mut reports = p.take_sync_reports().unwrap();
        p.set_sync_sending(true).unwrap();
        let c = ("198.51.100.77", 40000);
        for f in [SYN, ACK, ACK] {
            p.test_run(&tcp(c, ("192.0.2.1", 443), f)).unwrap();
        }
        let got = sent(&p, &mut reports);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].client, ("198.51.100.77".parse().unwrap(), 40000));
        let tmpl = &got[1];
        assert!(tmpl.is_template());
        assert_eq!(tmpl.flags, flags::TEMPLATE | flags::INACTIVE);
        assert_eq!(tmpl.client, ("198.51.100.0".parse().unwrap(), 0));
        assert_eq!(tmpl.virt, ("192.0.2.1".parse().unwrap(), 443));
        assert_eq!(tmpl.dest, ("10.0.0.1".parse().unwrap(), 443));
        assert_eq!((tmpl.state, tmpl.timeout), (0, Some(600)));
    });
}
