//! lblcr — locality-based least connection with replication (`ip_vs_lblcr.c`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::lblc::{collect_cache, locality_overloaded};
use super::{DestChange, Flow, Scheduler, SchedulerKind, weighted_better, weighted_least};
use crate::dest::{Dest, DestId};
use crate::service::SchedFlags;

#[derive(Debug, Clone)]
struct DestSet {
    /// Members, most recently inserted first (`list_add_rcu`).
    members: Vec<DestId>,
    lastmod: Duration,
    lastuse: Duration,
}

impl DestSet {
    /// `ip_vs_dest_set_min`: weighted least overhead among available members.
    fn min(&self, dests: &[Dest]) -> Option<usize> {
        let mut least: Option<(usize, i64)> = None;
        for id in &self.members {
            let Some(i) = dests.iter().position(|d| d.id == *id) else {
                continue; // not AVAILABLE any more
            };
            let d = &dests[i];
            if d.overload {
                continue;
            }
            match least {
                None if d.weight > 0 => least = Some((i, d.conn_overhead())),
                None => {}
                Some((l, loh)) => {
                    let doh = d.conn_overhead();
                    if weighted_better(loh, dests[l].weight, doh, d.weight) {
                        least = Some((i, doh));
                    }
                }
            }
        }
        least.map(|(i, _)| i)
    }

    /// `ip_vs_dest_set_max`: the member with the most overhead per weight.
    fn max(&self, dests: &[Dest]) -> Option<DestId> {
        let mut most: Option<(usize, i64)> = None;
        for id in &self.members {
            let Some(i) = dests.iter().position(|d| d.id == *id) else {
                continue;
            };
            let d = &dests[i];
            match most {
                None if d.weight > 0 => most = Some((i, d.conn_overhead())),
                None => {}
                Some((m, moh)) => {
                    let doh = d.conn_overhead();
                    if moh * i64::from(d.weight) < doh * i64::from(dests[m].weight) && d.weight > 0
                    {
                        most = Some((i, doh));
                    }
                }
            }
        }
        most.map(|(i, _)| dests[i].id)
    }

    fn insert(&mut self, id: DestId, now: Duration) {
        if !self.members.contains(&id) {
            self.members.insert(0, id);
            self.lastmod = now;
        }
    }

    fn erase(&mut self, id: DestId, now: Duration) {
        if let Some(p) = self.members.iter().position(|m| *m == id) {
            self.members.remove(p);
            self.lastmod = now;
        }
    }
}

/// Locality-based least connection with replication: each destination address
/// maps to a set of dests; the least loaded member serves, a new member is
/// added when all are overloaded, and the busiest is dropped from a set that
/// has not changed for the expiration time.
#[derive(Debug)]
pub struct LocalityLeastConnReplicated {
    cache: HashMap<IpAddr, DestSet>,
    expiration: Duration,
    rover: u32,
}

impl LocalityLeastConnReplicated {
    /// A scheduler using `expiration` (the `lblcr_expiration` sysctl).
    pub fn new(expiration: Duration) -> LocalityLeastConnReplicated {
        LocalityLeastConnReplicated {
            cache: HashMap::new(),
            expiration,
            rover: 0,
        }
    }

    /// The set cached for a destination address, most recent member first.
    pub fn members(&self, daddr: &IpAddr) -> Vec<DestId> {
        self.cache
            .get(daddr)
            .map(|s| s.members.clone())
            .unwrap_or_default()
    }
}

impl Scheduler for LocalityLeastConnReplicated {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblcr
    }

    fn update(&mut self, _: &[Dest], change: DestChange) {
        if change == DestChange::Reset {
            self.cache.clear();
        }
    }

    fn schedule(
        &mut self,
        dests: &[Dest],
        flow: &Flow,
        _: SchedFlags,
        now: Duration,
    ) -> Option<usize> {
        if let Some(set) = self.cache.get_mut(&flow.daddr) {
            set.lastuse = now;
            let dest = set.min(dests);
            if set.members.len() > 1
                && now > set.lastmod + self.expiration
                && let Some(m) = set.max(dests)
            {
                set.erase(m, now);
            }
            if let Some(i) = dest
                && !locality_overloaded(&dests[i], dests)
            {
                return Some(i);
            }
            let i = weighted_least(dests, Dest::conn_overhead)?;
            set.insert(dests[i].id, now);
            return Some(i);
        }
        let i = weighted_least(dests, Dest::conn_overhead)?;
        self.cache.insert(
            flow.daddr,
            DestSet {
                members: vec![dests[i].id],
                lastmod: now,
                lastuse: now,
            },
        );
        Some(i)
    }

    fn collect_garbage(&mut self, _: &[Dest], now: Duration) {
        collect_cache(
            &mut self.cache,
            |s| s.lastuse,
            &mut self.rover,
            self.expiration,
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn replicates_when_overloaded_and_shrinks_after_expiration() {
        let mut d = dests(&[2, 2, 10]);
        d[2].activeconns = 1; // keep wlc on dests 1/2 first
        let exp = Duration::from_secs(60);
        let mut s = LocalityLeastConnReplicated::new(exp);
        let f = flow_to([192, 0, 2, 10]);
        let none = SchedFlags::default();
        let t = Duration::from_secs;
        assert_eq!(s.schedule(&d, &f, none, t(0)), Some(0));
        // dest 1 overloaded for locality (3 > 2, and dest 3 has 1*2 < 10)
        d[0].activeconns = 3;
        let second = s.schedule(&d, &f, none, t(1)).unwrap();
        assert_eq!(second, 1, "wlc picks dest 2 (0 conns)");
        assert_eq!(s.members(&f.daddr), vec![DestId(2), DestId(1)]);
        // Set min is now dest 2 (0 overhead), served without change.
        assert_eq!(s.schedule(&d, &f, none, t(2)), Some(1));
        // After the expiration the busiest member (dest 1) is dropped.
        assert_eq!(s.schedule(&d, &f, none, t(1 + 61)), Some(1));
        assert_eq!(s.members(&f.daddr), vec![DestId(2)]);
    }
}
