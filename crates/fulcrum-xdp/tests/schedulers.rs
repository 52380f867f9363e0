//! The differential test: the same sequence of new connections, segments
//! and real-server changes goes through the XDP program (in the kernel,
//! `BPF_PROG_TEST_RUN`) and through fulcrum-core's table, and every pick —
//! and every real server's connection counts after every step — must be
//! the same. Runs with FULCRUM_NETNS_TESTS=1.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use fulcrum_core::conn::ConnId;
use fulcrum_core::sched::{Flow, SchedulerKind};
use fulcrum_core::state::{Direction, TcpFlags};
use fulcrum_core::{DestSpec, Forwarding, Protocol, SchedFlags, ServiceKey, ServiceSpec, Table};
use fulcrum_xdp::{XDP_PASS, XdpPlane};

const VIP: &str = "192.0.2.1";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: VIP.parse().unwrap(),
        port: 80,
    }
}

fn spec(host: u8, weight: u32, upper: u32, lower: u32) -> DestSpec {
    let mut d = DestSpec::new(IpAddr::from([10, 0, 0, host]), 80, Forwarding::Masq);
    d.weight = weight;
    d.u_threshold = upper;
    d.l_threshold = lower;
    d
}

/// A live connection: the client's address and port, its core id.
struct Live {
    client: (String, u16),
    id: ConnId,
}

/// Drive `steps` steps of one scheduler; panics at the first difference.
fn run(kind: SchedulerKind, flags: SchedFlags, seed: u64, steps: usize, persistent: bool) {
    let mut p = XdpPlane::load(65536).unwrap();
    let mut t = Table::new();
    let mut s = ServiceSpec::new(key(), kind);
    s.flags = flags;
    if persistent {
        // Clients grouped by /24: three networks below.
        s.persistent = Some(300);
        s.netmask = fulcrum_core::Netmask::V4(0xffff_ff00);
    }
    t.add_service(s).unwrap();
    let mut rng = Rng(seed);
    // A start with unequal weights, a quiesced one, one with thresholds.
    let mut next_host = 1u8;
    for (w, u, l) in [(3, 0, 0), (1, 0, 0), (0, 0, 0), (5, 4, 2), (2, 0, 0)] {
        t.add_dest(&key(), spec(next_host, w, u, l)).unwrap();
        next_host += 1;
    }
    p.publish(&t).unwrap();
    let mut live: Vec<Live> = Vec::new();
    let now = Duration::ZERO;
    for step in 0..steps {
        let what = rng.below(20);
        let ctx = |why: &str| format!("{kind} step {step}: {why}");
        if what < 11 {
            // A new connection from a client among a few hundred, so sh
            // and its fallback see repeats.
            let client = (
                format!("198.51.{}.{}", rng.below(3), 1 + rng.below(200)),
                1024 + rng.below(60000) as u16,
            );
            if live.iter().any(|l| l.client == client) {
                continue;
            }
            let flow = Flow {
                saddr: client.0.parse().unwrap(),
                sport: client.1,
                daddr: VIP.parse().unwrap(),
                dport: 80,
            };
            let core = t.schedule(&key(), Protocol::Tcp, &flow, now);
            let syn = tcp((&client.0, client.1), (VIP, 80), SYN);
            let (v, out) = p.test_run(&syn).unwrap();
            match core {
                None => assert_eq!(
                    (v, &out),
                    (XDP_PASS, &syn),
                    "{}",
                    ctx("core found no real server")
                ),
                Some(sc) => {
                    assert_eq!(
                        endpoints(&out).1.0,
                        sc.daddr,
                        "{}",
                        ctx("a different real server")
                    );
                    let id = sc.conn.unwrap();
                    t.transition(id, Direction::Input, Some(TcpFlags::SYN), now);
                    live.push(Live { client, id });
                }
            }
        } else if what < 16 && !live.is_empty() {
            // A segment of a live connection: its ACK (established), or a
            // FIN from either side.
            let i = rng.below(live.len() as u64) as usize;
            let l = &live[i];
            let (flags, core_flags) = match rng.below(4) {
                0 => (FIN | ACK, TcpFlags::FIN_ACK),
                _ => (ACK, TcpFlags::ACK),
            };
            let seg = tcp((&l.client.0, l.client.1), (VIP, 80), flags);
            p.test_run(&seg).unwrap();
            t.transition(l.id, Direction::Input, Some(core_flags), now);
        } else {
            // The table changes: a weight (0 quiesces), thresholds, a new
            // real server at the head of the list, or one deleted.
            let dests: Vec<(IpAddr, u32)> = t
                .service(&key())
                .unwrap()
                .dests
                .iter()
                .map(|d| (d.addr, d.weight))
                .collect();
            match rng.below(5) {
                0 | 1 if !dests.is_empty() => {
                    let (addr, _) = dests[rng.below(dests.len() as u64) as usize];
                    let IpAddr::V4(a) = addr else { unreachable!() };
                    let w = [0, 1, 2, 3, 7, 10][rng.below(6) as usize];
                    let (u, l) = [(0, 0), (3, 0), (6, 2)][rng.below(3) as usize];
                    let d = t.service(&key()).unwrap().dest(&addr, 80).unwrap();
                    if (d.weight, d.u_threshold, d.l_threshold) == (w, u, l) {
                        // An edit that changes nothing: the kernel's wrr
                        // restarts its walk, the XDP plane does not see it
                        // (documented in docs/adm.md).
                        continue;
                    }
                    t.edit_dest(&key(), spec(a.octets()[3], w, u, l)).unwrap();
                }
                2 if dests.len() > 2 => {
                    let (addr, _) = dests[rng.below(dests.len() as u64) as usize];
                    t.delete_dest(&key(), &addr, 80).unwrap();
                    // Its connections live on in both (IPVS forwards them
                    // to the deleted real server until they end).
                }
                _ if next_host < 60 => {
                    let w = 1 + rng.below(6) as u32;
                    t.add_dest(&key(), spec(next_host, w, 0, 0)).unwrap();
                    next_host += 1;
                }
                _ => {}
            }
            p.publish(&t).unwrap();
        }
        // The counts agree for every real server in the list.
        for d in &t.service(&key()).unwrap().dests {
            let c = p.dest_conns(&key(), d.id).unwrap().unwrap();
            assert_eq!(
                (c.active, c.inactive, c.persist),
                (d.activeconns, d.inactconns, d.persistconns),
                "{}",
                ctx(&format!("counts of {}", d.addr))
            );
            assert_eq!(
                p.overloaded(&key(), d.id).unwrap(),
                d.overload,
                "{}",
                ctx(&format!("overload of {}", d.addr))
            );
        }
    }
}

fn each(kinds: &[SchedulerKind], flags: SchedFlags) {
    each_with(kinds, flags, false);
}

fn each_with(kinds: &[SchedulerKind], flags: SchedFlags, persistent: bool) {
    let kinds = kinds.to_vec();
    in_netns("", move || {
        if load().is_none() {
            return;
        }
        for (i, kind) in kinds.into_iter().enumerate() {
            for seed in [0x9e37_79b9_7f4a_7c15u64, 0x1234_5678_9abc_def1] {
                run(kind, flags, seed ^ i as u64, 600, persistent);
            }
        }
    });
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn every_pick_is_fulcrum_cores_pick() {
    each(
        &[
            SchedulerKind::Rr,
            SchedulerKind::Wrr,
            SchedulerKind::Lc,
            SchedulerKind::Wlc,
            SchedulerKind::Sed,
            SchedulerKind::Nq,
            SchedulerKind::Fo,
            SchedulerKind::Ovf,
            SchedulerKind::Twos,
            SchedulerKind::Dh,
            SchedulerKind::Sh,
            SchedulerKind::Mh,
            SchedulerKind::Lblc,
            SchedulerKind::Lblcr,
        ],
        SchedFlags::default(),
    );
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn sh_and_mh_with_fallback_and_port_pick_as_fulcrum_core() {
    each(
        &[SchedulerKind::Sh, SchedulerKind::Mh],
        SchedFlags {
            sched1: true,
            sched2: true,
            sched3: false,
        },
    );
    each(
        &[SchedulerKind::Sh, SchedulerKind::Mh],
        SchedFlags {
            sched1: true,
            sched2: false,
            sched3: false,
        },
    );
}

#[cfg_attr(
    not(netns_tests),
    ignore = "loads a BPF program in a network namespace: needs root; run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn persistent_services_keep_client_networks_as_fulcrum_core() {
    // Templates per /24, their real servers deleted and quiesced on the
    // way: every pick and every PersistConn compared.
    each_with(
        &[SchedulerKind::Wlc, SchedulerKind::Rr, SchedulerKind::Sh],
        SchedFlags::default(),
        true,
    );
}
