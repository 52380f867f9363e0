//! What a data plane needs to schedule new connections itself, without
//! asking the table's owner: a read-only copy of each service's real
//! servers, the service's own scheduler (shared, so there is one scheduling
//! sequence per service), and per-real-server counters as atomics.
//!
//! The owner of the [`Table`] builds a [`Snapshot`] after every change and
//! publishes it; after the table's counts move (connections opened,
//! established, closed or expired) it stores them with
//! [`Snapshot::store_counts`]. A data plane schedules with
//! [`ServiceSnapshot::schedule`], which counts the new connection at once as
//! *pending*, and tells the owner, which makes the entry with
//! [`Table::adopt`] and then [`Snapshot::settle`]s the pending count. A
//! scheduler therefore sees every connection either in the table's count or
//! as pending, never twice and never not at all; what it does not see at
//! once is a state change (a connection becoming ESTABLISHED moves from the
//! inactive to the active count when the owner has handled it).
//!
//! Services with persistence or one-packet scheduling are not scheduled
//! from a snapshot ([`ServiceSnapshot::local`] is false): persistence
//! templates live in the table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::Duration;

use crate::conn::ConnId;
use crate::dest::{Dest, DestId};
use crate::sched::{Flow, SharedScheduler};
use crate::service::{SchedFlags, ServiceKey};
use crate::table::Table;

/// A real server's connection counts, shared by the table's owner (which
/// stores them) and the data plane (which reads them, and adds pending
/// connections).
#[derive(Debug, Default)]
pub struct DestCounts {
    active: AtomicU32,
    inactive: AtomicU32,
    persistent: AtomicU32,
    overload: AtomicBool,
    /// Connections scheduled by the plane that the table has not adopted
    /// yet (counted inactive, as a new entry is).
    pending: AtomicU32,
}

impl DestCounts {
    /// Active, inactive (with pending) and persistent counts, and the
    /// overload flag, as a scheduler would read them now.
    pub fn read(&self) -> (u32, u32, u32, bool) {
        (
            self.active.load(Relaxed),
            self.inactive
                .load(Relaxed)
                .saturating_add(self.pending.load(Relaxed)),
            self.persistent.load(Relaxed),
            self.overload.load(Relaxed),
        )
    }

    fn store(&self, d: &Dest) {
        self.active.store(d.activeconns, Relaxed);
        self.inactive.store(d.inactconns, Relaxed);
        self.persistent.store(d.persistconns, Relaxed);
        self.overload.store(d.overload, Relaxed);
    }

    fn settle(&self) {
        let _ = self
            .pending
            .fetch_update(Relaxed, Relaxed, |p| Some(p.saturating_sub(1)));
    }
}

/// One real server in a snapshot.
#[derive(Debug)]
pub struct DestSnapshot {
    /// Its identity in the table.
    pub id: DestId,
    /// Address.
    pub addr: IpAddr,
    /// Port (0: the virtual service's).
    pub port: u16,
    /// Its live counts.
    pub counts: Arc<DestCounts>,
}

/// One virtual service in a snapshot.
#[derive(Debug)]
pub struct ServiceSnapshot {
    /// Its key.
    pub key: ServiceKey,
    flags: SchedFlags,
    local: bool,
    scheduler: SharedScheduler,
    /// The real servers in the table's list order.
    pub dests: Vec<DestSnapshot>,
    /// The table's view of them (weights, thresholds), into which the live
    /// counts are copied for each decision. Only used under the scheduler's
    /// lock; a mutex of its own keeps the snapshot shareable.
    scratch: Mutex<Vec<Dest>>,
    ids: Arc<AtomicU64>,
}

/// A connection a data plane scheduled from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked {
    /// The id its entry will have; tell the table's owner with it.
    pub conn: ConnId,
    /// The real server.
    pub dest: DestId,
    /// Its address.
    pub daddr: IpAddr,
    /// The port to connect to.
    pub dport: u16,
}

impl ServiceSnapshot {
    /// Whether new connections of this service may be scheduled from the
    /// snapshot (no persistence, no one-packet scheduling).
    pub fn local(&self) -> bool {
        self.local
    }

    /// Pick a real server for a new connection, as [`Table::schedule`]
    /// would with the counts as they are now, and count it pending. `None`:
    /// no destination available (or the service is not [`local`](Self::local)).
    pub fn schedule(&self, flow: &Flow, now: Duration) -> Option<Picked> {
        if !self.local {
            return None;
        }
        let mut sched = self.scheduler.lock();
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (d, s) in scratch.iter_mut().zip(&self.dests) {
            let (active, inactive, persistent, overload) = s.counts.read();
            d.activeconns = active;
            d.inactconns = inactive;
            d.persistconns = persistent;
            // The upper threshold as binding would apply it to the pending
            // connections the table has not counted yet.
            d.overload = overload || (d.u_threshold != 0 && d.totalconns() >= d.u_threshold);
        }
        let i = sched.schedule(&scratch, flow, self.flags, now)?;
        let (d, s) = (scratch.get(i)?, self.dests.get(i)?);
        s.counts.pending.fetch_add(1, Relaxed);
        Some(Picked {
            conn: ConnId(self.ids.fetch_add(1, Relaxed) + 1),
            dest: s.id,
            daddr: d.addr,
            dport: if d.port != 0 { d.port } else { flow.dport },
        })
    }
}

/// Every service of a table, ready for a data plane to schedule from.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    services: HashMap<ServiceKey, Arc<ServiceSnapshot>>,
}

impl Snapshot {
    /// A snapshot of `table`. Counts of real servers that were in
    /// `previous` carry over (with their pending connections).
    pub fn of(table: &Table, previous: Option<&Snapshot>) -> Snapshot {
        let ids = table.conn_ids();
        let services = table
            .services()
            .iter()
            .map(|svc| {
                let old = previous.and_then(|p| p.services.get(&svc.key));
                let dests = svc
                    .dests
                    .iter()
                    .map(|d| {
                        let counts = old
                            .and_then(|o| o.dests.iter().find(|x| x.id == d.id))
                            .map_or_else(Arc::default, |x| x.counts.clone());
                        counts.store(d);
                        DestSnapshot {
                            id: d.id,
                            addr: d.addr,
                            port: d.port,
                            counts,
                        }
                    })
                    .collect();
                let view = ServiceSnapshot {
                    key: svc.key,
                    flags: svc.flags,
                    local: svc.persistent.is_none() && !svc.one_packet,
                    scheduler: svc.scheduler.clone(),
                    dests,
                    scratch: Mutex::new(svc.dests.clone()),
                    ids: ids.clone(),
                };
                (svc.key, Arc::new(view))
            })
            .collect();
        Snapshot { services }
    }

    /// A service.
    pub fn service(&self, key: &ServiceKey) -> Option<&Arc<ServiceSnapshot>> {
        self.services.get(key)
    }

    /// Store the table's counts for every real server.
    pub fn store_counts(&self, table: &Table) {
        for svc in table.services() {
            let Some(view) = self.services.get(&svc.key) else {
                continue;
            };
            for (d, s) in svc.dests.iter().zip(&view.dests) {
                if d.id == s.id {
                    s.counts.store(d);
                }
            }
        }
    }

    /// The table adopted (or refused) a connection the plane scheduled to
    /// `dest`: it is no longer pending. Store the table's counts first.
    pub fn settle(&self, key: &ServiceKey, dest: DestId, table: &Table) {
        let Some(view) = self.services.get(key) else {
            return;
        };
        let Some(s) = view.dests.iter().find(|s| s.id == dest) else {
            return;
        };
        if let Some(d) = table.service(key).and_then(|svc| svc.dest_by_id(dest)) {
            s.counts.store(d);
        }
        s.counts.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::SchedulerKind;
    use crate::service::Protocol;
    use crate::state::{Direction, TcpFlags};
    use crate::{DestSpec, Forwarding, ServiceSpec};

    fn key() -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: [10, 0, 0, 1].into(),
            port: 80,
        }
    }

    fn flow(n: u16) -> Flow {
        Flow {
            saddr: [192, 0, 2, 1].into(),
            sport: 1000 + n,
            daddr: [10, 0, 0, 1].into(),
            dport: 80,
        }
    }

    fn table(kind: SchedulerKind, weights: &[u32]) -> Table {
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(key(), kind)).unwrap();
        for (i, w) in weights.iter().enumerate() {
            let mut d = DestSpec::new([10, 0, 1, i as u8 + 1].into(), 80, Forwarding::Masq);
            d.weight = *w;
            t.add_dest(&key(), d).unwrap();
        }
        t
    }

    fn addr_of(t: &Table, id: DestId) -> IpAddr {
        t.service(&key()).unwrap().dest_by_id(id).unwrap().addr
    }

    /// wrr from the snapshot, with the table adopting every pick, gives the
    /// sequence the table gives alone.
    #[test]
    fn the_snapshot_follows_the_tables_sequence() {
        let mut alone = table(SchedulerKind::Wrr, &[3, 2, 1]);
        let want: Vec<IpAddr> = (0..12)
            .map(|n| {
                let s = alone
                    .schedule(&key(), Protocol::Tcp, &flow(n), Duration::ZERO)
                    .unwrap();
                s.daddr
            })
            .collect();
        let mut t = table(SchedulerKind::Wrr, &[3, 2, 1]);
        let snap = Snapshot::of(&t, None);
        let view = snap.service(&key()).unwrap();
        let got: Vec<IpAddr> = (0..12)
            .map(|n| {
                let p = view.schedule(&flow(n), Duration::ZERO).unwrap();
                let s = t
                    .adopt(
                        &key(),
                        Protocol::Tcp,
                        &flow(n),
                        p.dest,
                        p.conn,
                        Duration::ZERO,
                    )
                    .unwrap();
                assert_eq!(s.conn, Some(p.conn));
                snap.settle(&key(), p.dest, &t);
                p.daddr
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(t.conns().len(), 12);
        // Ids from the table and from the snapshot never collide.
        let own = t
            .schedule(&key(), Protocol::Tcp, &flow(99), Duration::ZERO)
            .unwrap();
        assert_eq!(own.conn, Some(ConnId(13)));
    }

    /// wlc counts a connection the moment it is scheduled (pending), then
    /// through the table once adopted: never twice, never missing.
    #[test]
    fn pending_connections_count_until_adopted() {
        let mut t = table(SchedulerKind::Wlc, &[1, 1]);
        let snap = Snapshot::of(&t, None);
        let view = snap.service(&key()).unwrap();
        let a = view.schedule(&flow(1), Duration::ZERO).unwrap();
        let b = view.schedule(&flow(2), Duration::ZERO).unwrap();
        assert_ne!(a.dest, b.dest, "the first pick counted before the second");
        let c = view.schedule(&flow(3), Duration::ZERO).unwrap();
        for (n, p) in [(1, a), (2, b), (3, c)] {
            t.adopt(
                &key(),
                Protocol::Tcp,
                &flow(n),
                p.dest,
                p.conn,
                Duration::ZERO,
            )
            .unwrap();
            snap.settle(&key(), p.dest, &t);
        }
        let counts: Vec<(u32, u32, u32, bool)> =
            view.dests.iter().map(|d| d.counts.read()).collect();
        let total: u32 = counts.iter().map(|c| c.1).sum();
        assert_eq!(total, 3, "{counts:?}");
        // The table's own state changes reach the scheduler when stored:
        // an established connection weighs 256 inactive ones.
        t.transition(
            a.conn,
            Direction::Input,
            Some(TcpFlags::SYN),
            Duration::ZERO,
        );
        t.transition(
            a.conn,
            Direction::Output,
            Some(TcpFlags::SYN_ACK),
            Duration::ZERO,
        );
        t.transition(
            a.conn,
            Direction::Input,
            Some(TcpFlags::ACK),
            Duration::ZERO,
        );
        snap.store_counts(&t);
        let d = view.schedule(&flow(4), Duration::ZERO).unwrap();
        assert_ne!(addr_of(&t, d.dest), addr_of(&t, a.dest));
    }

    /// The upper threshold applies to pending connections too.
    #[test]
    fn the_upper_threshold_counts_pending_connections() {
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(key(), SchedulerKind::Rr))
            .unwrap();
        let mut d = DestSpec::new([10, 0, 1, 1].into(), 80, Forwarding::Masq);
        d.u_threshold = 2;
        t.add_dest(&key(), d).unwrap();
        let snap = Snapshot::of(&t, None);
        let view = snap.service(&key()).unwrap();
        assert!(view.schedule(&flow(1), Duration::ZERO).is_some());
        assert!(view.schedule(&flow(2), Duration::ZERO).is_some());
        assert_eq!(view.schedule(&flow(3), Duration::ZERO), None);
    }

    /// Counts and pending connections survive a new snapshot; persistent
    /// services are left to the table; a dest gone meanwhile is refused.
    #[test]
    fn rebuilding_keeps_counts_and_persistence_stays_in_the_table() {
        let mut t = table(SchedulerKind::Rr, &[1]);
        let snap = Snapshot::of(&t, None);
        let p = snap
            .service(&key())
            .unwrap()
            .schedule(&flow(1), Duration::ZERO)
            .unwrap();
        let again = Snapshot::of(&t, Some(&snap));
        assert_eq!(again.service(&key()).unwrap().dests[0].counts.read().1, 1);
        t.delete_dest(&key(), &addr_of(&t, p.dest), 80).unwrap();
        assert_eq!(
            t.adopt(
                &key(),
                Protocol::Tcp,
                &flow(1),
                p.dest,
                p.conn,
                Duration::ZERO
            ),
            None
        );
        let mut spec = ServiceSpec::new(key(), SchedulerKind::Rr);
        spec.persistent = Some(300);
        t.edit_service(spec).unwrap();
        let snap = Snapshot::of(&t, None);
        assert!(!snap.service(&key()).unwrap().local());
    }
}
