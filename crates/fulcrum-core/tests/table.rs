//! Table behaviour: rules for changes, connection accounting as IPVS counts
//! it, overload thresholds, persistence templates and expiry.

use std::net::IpAddr;
use std::time::Duration;

use fulcrum_core::sched::{Flow, SchedulerKind};
use fulcrum_core::state::{ConnState, Direction, TcpFlags};
use fulcrum_core::{
    DestSpec, Family, Forwarding, Netmask, Protocol, ServiceKey, ServiceSpec, Table, TableError,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("192.0.2.1"),
        port: 80,
    }
}

fn flow(client: &str, sport: u16) -> Flow {
    Flow {
        saddr: ip(client),
        sport,
        daddr: ip("192.0.2.1"),
        dport: 80,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn table(sched: SchedulerKind, weights: &[u32]) -> Table {
    let mut t = Table::new();
    t.add_service(ServiceSpec::new(vip(), sched)).unwrap();
    // Added in reverse so that list order (newest first) is rs1, rs2, ...
    for (i, w) in weights.iter().enumerate().rev() {
        let mut d = DestSpec::new(IpAddr::from([10, 0, 0, i as u8 + 1]), 80, Forwarding::Masq);
        d.weight = *w;
        t.add_dest(&vip(), d).unwrap();
    }
    t
}

fn counts(t: &Table) -> Vec<(u32, u32, u32)> {
    let s = t.service(&vip()).unwrap();
    let mut v: Vec<_> = s
        .dests
        .iter()
        .map(|d| (d.addr, (d.activeconns, d.inactconns, d.persistconns)))
        .collect();
    v.sort_by_key(|(a, _)| *a);
    v.into_iter().map(|(_, c)| c).collect()
}

#[test]
fn kernel_errors_for_table_changes() {
    let mut t = table(SchedulerKind::Wlc, &[1]);
    assert_eq!(
        t.add_service(ServiceSpec::new(vip(), SchedulerKind::Rr)),
        Err(TableError::ServiceExists)
    );
    let other = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("192.0.2.1"),
        port: 80,
    };
    assert_eq!(
        t.edit_service(ServiceSpec::new(other, SchedulerKind::Rr)),
        Err(TableError::NoSuchService)
    );
    assert_eq!(t.delete_service(&other), Err(TableError::NoSuchService));
    let d = DestSpec::new(ip("10.0.0.1"), 80, Forwarding::Masq);
    assert_eq!(
        t.add_dest(&other, d.clone()),
        Err(TableError::ServiceNotDefined)
    );
    assert_eq!(t.add_dest(&vip(), d.clone()), Err(TableError::DestExists));
    assert_eq!(
        t.delete_dest(&vip(), &ip("10.0.0.9"), 80),
        Err(TableError::NoSuchDest)
    );
    let mut bad = d.clone();
    bad.l_threshold = 5;
    assert_eq!(t.edit_dest(&vip(), bad), Err(TableError::ThresholdOrder));
    let v6 = DestSpec::new(ip("2001:db8::1"), 80, Forwarding::Masq);
    assert_eq!(t.add_dest(&vip(), v6), Err(TableError::FamilyMismatch));
    let tun6 = DestSpec::new(ip("2001:db8::1"), 80, Forwarding::TUNNEL);
    assert!(
        t.add_dest(&vip(), tun6).is_ok(),
        "tunnels may cross families"
    );
    let zero = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("192.0.2.2"),
        port: 0,
    };
    assert_eq!(
        t.add_service(ServiceSpec::new(zero, SchedulerKind::Rr)),
        Err(TableError::PortZeroNotPersistent)
    );
    let mut ops = ServiceSpec::new(
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: ip("192.0.2.3"),
            port: 1,
        },
        SchedulerKind::Rr,
    );
    ops.one_packet = true;
    assert_eq!(t.add_service(ops), Err(TableError::OnePacketNotUdp));
    let mut pe = ServiceSpec::new(
        ServiceKey::Fwmark {
            mark: 1,
            family: Family::V4,
        },
        SchedulerKind::Rr,
    );
    pe.pe_name = Some("foo".into());
    assert_eq!(t.add_service(pe), Err(TableError::UnknownPersistenceEngine));
}

#[test]
fn newest_dest_is_first_in_list_order() {
    let t = table(SchedulerKind::Rr, &[1, 1, 1]);
    let order: Vec<IpAddr> = t
        .service(&vip())
        .unwrap()
        .dests
        .iter()
        .map(|d| d.addr)
        .collect();
    assert_eq!(order, vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
}

#[test]
fn tcp_connections_are_active_only_while_established() {
    let mut t = table(SchedulerKind::Wlc, &[1]);
    let s = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", 4000), secs(0))
        .unwrap();
    let id = s.conn.unwrap();
    assert_eq!(
        counts(&t),
        vec![(0, 1, 0)],
        "a new connection starts inactive"
    );
    t.packet(id, Direction::Input, Some(TcpFlags::SYN), 60, secs(0));
    t.packet(id, Direction::Output, Some(TcpFlags::SYN_ACK), 60, secs(0));
    t.packet(id, Direction::Input, Some(TcpFlags::ACK), 52, secs(0));
    assert_eq!(t.conns().get(id).unwrap().state, ConnState::Established);
    assert_eq!(counts(&t), vec![(1, 0, 0)]);
    assert_eq!(t.conns().get(id).unwrap().expires(), secs(900));
    t.packet(id, Direction::Input, Some(TcpFlags::FIN_ACK), 52, secs(10));
    assert_eq!(t.conns().get(id).unwrap().state, ConnState::CloseWait);
    assert_eq!(counts(&t), vec![(0, 1, 0)]);
    let st = &t.service(&vip()).unwrap().stats.counters;
    assert_eq!(
        (st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes),
        (1, 3, 1, 164, 60)
    );
    // CLOSE_WAIT times out after 60 s.
    assert!(t.expire(secs(69)).is_empty());
    assert_eq!(t.expire(secs(70)), vec![id]);
    assert_eq!(counts(&t), vec![(0, 0, 0)]);
    assert!(t.conns().is_empty());
}

#[test]
fn udp_connections_are_always_inactive() {
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("192.0.2.1"),
        port: 53,
    };
    let mut t = Table::new();
    t.add_service(ServiceSpec::new(key, SchedulerKind::Rr))
        .unwrap();
    t.add_dest(&key, DestSpec::new(ip("10.0.0.1"), 53, Forwarding::Masq))
        .unwrap();
    let f = Flow {
        saddr: ip("198.51.100.1"),
        sport: 5353,
        daddr: ip("192.0.2.1"),
        dport: 53,
    };
    let id = t
        .schedule(&key, Protocol::Udp, &f, secs(0))
        .unwrap()
        .conn
        .unwrap();
    t.packet(id, Direction::Input, None, 40, secs(1));
    let d = &t.service(&key).unwrap().dests[0];
    assert_eq!((d.activeconns, d.inactconns), (0, 1));
    assert_eq!(t.conns().get(id).unwrap().state.name(), "UDP");
    assert_eq!(t.conns().get(id).unwrap().expires(), secs(301));
}

#[test]
fn one_packet_scheduling_keeps_no_entry() {
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("192.0.2.1"),
        port: 53,
    };
    let mut t = Table::new();
    let mut spec = ServiceSpec::new(key, SchedulerKind::Rr);
    spec.one_packet = true;
    t.add_service(spec).unwrap();
    t.add_dest(&key, DestSpec::new(ip("10.0.0.1"), 53, Forwarding::Masq))
        .unwrap();
    t.add_dest(&key, DestSpec::new(ip("10.0.0.2"), 53, Forwarding::Masq))
        .unwrap();
    let f = Flow {
        saddr: ip("198.51.100.1"),
        sport: 5353,
        daddr: ip("192.0.2.1"),
        dport: 53,
    };
    let a = t.schedule(&key, Protocol::Udp, &f, secs(0)).unwrap();
    let b = t.schedule(&key, Protocol::Udp, &f, secs(0)).unwrap();
    assert!(a.conn.is_none() && b.conn.is_none());
    assert_ne!(a.daddr, b.daddr, "each datagram is scheduled on its own");
    assert!(t.conns().is_empty());
    assert_eq!(t.service(&key).unwrap().stats.counters.conns, 2);
}

#[test]
fn upper_threshold_sets_overload_and_three_quarters_clears_it() {
    let mut t = table(SchedulerKind::Wlc, &[1, 1]);
    let mut rs1 = DestSpec::new(ip("10.0.0.1"), 80, Forwarding::Masq);
    rs1.u_threshold = 4;
    t.edit_dest(&vip(), rs1).unwrap();
    let mut ids = Vec::new();
    for p in 0..8 {
        let s = t
            .schedule(
                &vip(),
                Protocol::Tcp,
                &flow("198.51.100.1", 1000 + p),
                secs(0),
            )
            .unwrap();
        ids.push((s.daddr, s.conn.unwrap()));
    }
    let svc = t.service(&vip()).unwrap();
    let d1 = svc.dest(&ip("10.0.0.1"), 80).unwrap();
    assert!(d1.overload);
    assert_eq!(d1.totalconns(), 4, "no more than u_threshold");
    assert_eq!(svc.dest(&ip("10.0.0.2"), 80).unwrap().totalconns(), 4);
    // Close rs1's connections at 0, 1, 2, 3 s (CLOSE lasts 10 s) and watch
    // the flag as they expire: 3*4 < 4*3 is false, 2*4 < 12 clears it.
    let on_rs1: Vec<_> = ids
        .iter()
        .filter(|(a, _)| *a == ip("10.0.0.1"))
        .map(|(_, c)| *c)
        .collect();
    for (k, id) in on_rs1.iter().enumerate() {
        t.set_state(*id, ConnState::Close, secs(k as u64));
    }
    let overload = |t: &Table| {
        t.service(&vip())
            .unwrap()
            .dest(&ip("10.0.0.1"), 80)
            .unwrap()
            .overload
    };
    t.expire(secs(10));
    assert!(overload(&t), "3 left");
    t.expire(secs(11));
    assert!(!overload(&t), "2 left: below 3/4 of 4");
}

#[test]
fn lower_threshold_clears_overload() {
    let mut t = table(SchedulerKind::Wlc, &[1]);
    let mut rs1 = DestSpec::new(ip("10.0.0.1"), 80, Forwarding::Masq);
    rs1.u_threshold = 3;
    rs1.l_threshold = 1;
    t.edit_dest(&vip(), rs1).unwrap();
    let mut conns = Vec::new();
    for p in 0..3 {
        conns.push(
            t.schedule(
                &vip(),
                Protocol::Tcp,
                &flow("198.51.100.1", p),
                secs(p.into()),
            )
            .unwrap()
            .conn
            .unwrap(),
        );
    }
    assert!(
        t.schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", 9), secs(0))
            .is_none()
    );
    // NONE lasts 2 s: conns made at 0, 1, 2 expire at 2, 3, 4.
    t.expire(secs(2));
    assert!(t.service(&vip()).unwrap().dests[0].overload, "2 is not < 1");
    t.expire(secs(3));
    assert!(t.service(&vip()).unwrap().dests[0].overload, "1 is not < 1");
    t.expire(secs(4));
    assert!(!t.service(&vip()).unwrap().dests[0].overload);
}

#[test]
fn edit_raising_upper_threshold_clears_overload() {
    let mut t = table(SchedulerKind::Wlc, &[1]);
    let mut rs1 = DestSpec::new(ip("10.0.0.1"), 80, Forwarding::Masq);
    rs1.u_threshold = 1;
    t.edit_dest(&vip(), rs1.clone()).unwrap();
    t.schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", 1), secs(0))
        .unwrap();
    assert!(
        t.schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", 2), secs(0))
            .is_none()
    );
    rs1.u_threshold = 5;
    t.edit_dest(&vip(), rs1).unwrap();
    assert!(
        t.schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", 2), secs(0))
            .is_some()
    );
}

#[test]
fn weight_zero_quiesces_new_connections_only() {
    let mut t = table(SchedulerKind::Rr, &[1, 1]);
    let a = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", 1), secs(0))
        .unwrap();
    let mut q = DestSpec::new(a.daddr, 80, Forwarding::Masq);
    q.weight = 0;
    t.edit_dest(&vip(), q).unwrap();
    for p in 2..6 {
        let s = t
            .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", p), secs(0))
            .unwrap();
        assert_ne!(s.daddr, a.daddr);
    }
    let id = a.conn.unwrap();
    t.packet(id, Direction::Input, Some(TcpFlags::ACK), 100, secs(1));
    assert_eq!(
        t.conns().get(id).unwrap().state,
        ConnState::Established,
        "the open one still flows"
    );
}

#[test]
fn persistence_keeps_a_client_network_on_one_dest() {
    let mut t = table(SchedulerKind::Rr, &[1, 1, 1]);
    let mut spec = ServiceSpec::new(vip(), SchedulerKind::Rr);
    spec.persistent = Some(300);
    spec.netmask = Netmask::V4(0xffff_ff00);
    t.edit_service(spec).unwrap();
    let first = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.7", 1000), secs(0))
        .unwrap();
    for (client, port) in [
        ("198.51.100.7", 1001),
        ("198.51.100.99", 2000),
        ("198.51.100.7", 1002),
    ] {
        let s = t
            .schedule(&vip(), Protocol::Tcp, &flow(client, port), secs(1))
            .unwrap();
        assert_eq!(s.daddr, first.daddr, "{client} shares the /24's template");
    }
    let other = t
        .schedule(&vip(), Protocol::Tcp, &flow("203.0.113.5", 1), secs(1))
        .unwrap();
    assert_ne!(
        other.daddr, first.daddr,
        "another network is scheduled afresh"
    );
    let d = t.service(&vip()).unwrap().dest(&first.daddr, 80).unwrap();
    assert_eq!(d.persistconns, 1);
    assert_eq!(d.inactconns, 4);
    // The template is listed with client port 0 and the masked network.
    let tpl = t
        .conns()
        .iter()
        .find(|(_, c)| c.template && c.daddr == first.daddr)
        .unwrap()
        .1;
    assert_eq!(
        (tpl.caddr, tpl.cport, tpl.vport, tpl.dport),
        (ip("198.51.100.0"), 0, 80, 80)
    );
}

#[test]
fn template_outlives_its_timeout_while_it_controls_connections() {
    let mut t = table(SchedulerKind::Rr, &[1, 1]);
    let mut spec = ServiceSpec::new(vip(), SchedulerKind::Rr);
    spec.persistent = Some(10);
    t.edit_service(spec).unwrap();
    let s = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.7", 1000), secs(0))
        .unwrap();
    let id = s.conn.unwrap();
    t.packet(id, Direction::Input, Some(TcpFlags::SYN), 0, secs(0));
    t.packet(id, Direction::Output, Some(TcpFlags::SYN_ACK), 0, secs(0));
    t.packet(id, Direction::Input, Some(TcpFlags::ACK), 0, secs(0));
    // At 20 s the template is overdue but still controls an ESTABLISHED
    // connection: it is re-armed, not removed.
    assert!(t.expire(secs(20)).is_empty());
    assert_eq!(t.conns().len(), 2);
    let again = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.7", 1001), secs(21))
        .unwrap();
    assert_eq!(again.daddr, s.daddr);
    // Close everything; after the connections go, the template follows.
    t.set_state(id, ConnState::Close, secs(22));
    t.set_state(again.conn.unwrap(), ConnState::Close, secs(22));
    t.expire(secs(32));
    assert_eq!(t.conns().len(), 1, "only the template is left");
    t.expire(secs(45));
    assert!(t.conns().is_empty());
    assert_eq!(
        t.service(&vip())
            .unwrap()
            .dest(&s.daddr, 80)
            .unwrap()
            .persistconns,
        0
    );
}

#[test]
fn template_to_a_removed_dest_is_replaced() {
    let mut t = table(SchedulerKind::Rr, &[1, 1]);
    let mut spec = ServiceSpec::new(vip(), SchedulerKind::Rr);
    spec.persistent = Some(360);
    t.edit_service(spec).unwrap();
    let s = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.7", 1000), secs(0))
        .unwrap();
    t.delete_dest(&vip(), &s.daddr, 80).unwrap();
    let s2 = t
        .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.7", 1001), secs(1))
        .unwrap();
    assert_ne!(s2.daddr, s.daddr);
}

#[test]
fn fwmark_and_ftp_templates_ignore_ports() {
    let fwm = ServiceKey::Fwmark {
        mark: 7,
        family: Family::V4,
    };
    let mut t = Table::new();
    let mut spec = ServiceSpec::new(fwm, SchedulerKind::Rr);
    spec.persistent = Some(60);
    t.add_service(spec).unwrap();
    t.add_dest(&fwm, DestSpec::new(ip("10.0.0.1"), 0, Forwarding::Route))
        .unwrap();
    t.add_dest(&fwm, DestSpec::new(ip("10.0.0.2"), 0, Forwarding::Route))
        .unwrap();
    let a = t
        .schedule(&fwm, Protocol::Tcp, &flow("198.51.100.7", 1), secs(0))
        .unwrap();
    let mut f443 = flow("198.51.100.7", 2);
    f443.dport = 443;
    let b = t.schedule(&fwm, Protocol::Tcp, &f443, secs(0)).unwrap();
    assert_eq!(
        a.daddr, b.daddr,
        "one template for every port under the mark"
    );
    assert_eq!(b.dport, 443, "port-0 dests keep the packet's port");
    let tpl = t.conns().iter().find(|(_, c)| c.template).unwrap().1;
    assert_eq!(
        (tpl.proto.name(), tpl.vaddr, tpl.vport),
        ("IP", ip("0.0.0.7"), 0)
    );

    let ftp = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("192.0.2.1"),
        port: 21,
    };
    let mut spec = ServiceSpec::new(ftp, SchedulerKind::Rr);
    spec.persistent = Some(60);
    t.add_service(spec).unwrap();
    t.add_dest(&ftp, DestSpec::new(ip("10.0.0.1"), 21, Forwarding::Masq))
        .unwrap();
    let mut f = flow("198.51.100.8", 3);
    f.dport = 21;
    t.schedule(&ftp, Protocol::Tcp, &f, secs(0)).unwrap();
    let tpl = t
        .conns()
        .iter()
        .filter(|(_, c)| c.template)
        .last()
        .unwrap()
        .1;
    assert_eq!(
        (tpl.vport, tpl.dport),
        (0, 0),
        "FTP templates are <caddr,0,vaddr,0,daddr,0>"
    );
}

#[test]
fn zero_and_estimators() {
    let mut t = table(SchedulerKind::Rr, &[1]);
    for p in 0..100 {
        let s = t
            .schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", p), secs(0))
            .unwrap();
        t.account(s.conn.unwrap(), 2, 200, 1, 1000);
    }
    for _ in 0..30 {
        t.tick_estimators();
    }
    // One burst of 100 conns, then 29 quiet ticks: the rate has decayed.
    let r = t.service(&vip()).unwrap().stats.est.rates();
    assert_eq!(r.cps, 0);
    t.zero(Some(&vip())).unwrap();
    assert_eq!(t.service(&vip()).unwrap().stats.counters.conns, 0);
    assert_eq!(
        t.service(&vip()).unwrap().dests[0].stats.counters.inbytes,
        0
    );
}

#[test]
fn edit_service_keeps_or_replaces_the_scheduler() {
    let mut t = table(SchedulerKind::Rr, &[1, 1, 1]);
    let pick = |t: &mut Table, p| {
        t.schedule(&vip(), Protocol::Tcp, &flow("198.51.100.1", p), secs(0))
            .unwrap()
            .daddr
    };
    assert_eq!(pick(&mut t, 1), ip("10.0.0.1"));
    t.edit_service(ServiceSpec::new(vip(), SchedulerKind::Rr))
        .unwrap();
    assert_eq!(
        pick(&mut t, 2),
        ip("10.0.0.2"),
        "same scheduler: cursor kept"
    );
    t.edit_service(ServiceSpec::new(vip(), SchedulerKind::Lc))
        .unwrap();
    assert_eq!(
        t.service(&vip()).unwrap().scheduler.kind(),
        SchedulerKind::Lc
    );
    assert_eq!(
        pick(&mut t, 3),
        ip("10.0.0.3"),
        "lc: the dest with no connections"
    );
}

#[test]
fn mh_refuses_more_dests_than_slots() {
    let mut t = Table::with_options(fulcrum_core::sched::SchedOptions {
        mh_tab_index: 8,
        ..Default::default()
    });
    t.add_service(ServiceSpec::new(vip(), SchedulerKind::Mh))
        .unwrap();
    for i in 0..251u32 {
        t.add_dest(
            &vip(),
            DestSpec::new(IpAddr::V4((0x0a00_0000 + i).into()), 80, Forwarding::Masq),
        )
        .unwrap();
    }
    let more = DestSpec::new(ip("10.1.0.0"), 80, Forwarding::Masq);
    assert_eq!(t.add_dest(&vip(), more), Err(TableError::TooManyDests(251)));
}

/// A burst of connections leaves no lasting memory: once their entries have
/// expired, the connection table gives its room back.
#[test]
fn the_table_shrinks_after_a_burst_expires() {
    let mut t = table(SchedulerKind::Rr, &[1, 1]);
    let n = 40_000u32;
    for i in 0..n {
        let f = flow(
            &format!("10.9.{}.{}", i / 250, i % 250 + 1),
            1024 + (i % 60_000) as u16,
        );
        t.schedule(&vip(), Protocol::Tcp, &f, secs(0)).unwrap();
    }
    let burst = t.conns().capacity();
    assert!(burst >= n as usize, "{burst}");
    // A few stay (their timers run later).
    for i in 0..10u16 {
        t.schedule(
            &vip(),
            Protocol::Tcp,
            &flow("10.8.0.1", 2000 + i),
            secs(1000),
        )
        .unwrap();
    }
    let removed = t.expire(secs(400));
    assert_eq!(removed.len(), n as usize);
    assert_eq!(t.conns().len(), 10);
    let after = t.conns().capacity();
    assert!(after < burst / 8, "capacity {burst} → {after}");
    // The survivors are intact.
    assert_eq!(t.expire(secs(999)).len(), 0);
    assert_eq!(t.expire(secs(2000)).len(), 10);
}
