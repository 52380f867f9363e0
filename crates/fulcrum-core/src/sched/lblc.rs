//! lblc — locality-based least connection (`ip_vs_lblc.c`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind, weighted_least};
use crate::dest::{Dest, DestId};
use crate::service::SchedFlags;

/// `max_size` of the cache before the periodic collector trims it.
pub(crate) const LBLC_MAX_SIZE: usize = 1024 * 16;
/// Entries idle longer than this are trimmed when the cache is over size.
pub(crate) const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// Every this many collector runs, a full sweep with the expiration sysctl.
pub(crate) const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// lblc's test for "this dest is overloaded for locality": more active
/// connections than its weight while some dest is under half its weight.
pub(crate) fn locality_overloaded(dest: &Dest, dests: &[Dest]) -> bool {
    dest.activeconns > dest.weight
        && dests
            .iter()
            .any(|d| u64::from(d.activeconns) * 2 < u64::from(d.weight))
}

/// `ip_vs_lblc_check_expire` / `ip_vs_lblcr_check_expire`, run every 60 s:
/// every [`COUNT_FOR_FULL_EXPIRATION`]th run drops entries idle longer than
/// `expiration`; otherwise, if the cache is over [`LBLC_MAX_SIZE`], drop up to
/// `min((len - max) * 4/3, max/2)` entries idle for [`ENTRY_TIMEOUT`].
pub(crate) fn collect_cache<T>(
    cache: &mut HashMap<IpAddr, T>,
    lastuse: impl Fn(&T) -> Duration,
    rover: &mut u32,
    expiration: Duration,
    now: Duration,
) {
    *rover += 1;
    if *rover >= COUNT_FOR_FULL_EXPIRATION {
        *rover = 0;
        cache.retain(|_, e| now.saturating_sub(lastuse(e)) <= expiration);
        return;
    }
    let len = cache.len();
    if len <= LBLC_MAX_SIZE {
        return;
    }
    let mut goal = ((len - LBLC_MAX_SIZE) * 4 / 3).min(LBLC_MAX_SIZE / 2);
    cache.retain(|_, e| {
        if goal > 0 && now.saturating_sub(lastuse(e)) >= ENTRY_TIMEOUT {
            goal -= 1;
            false
        } else {
            true
        }
    });
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    dest: DestId,
    lastuse: Duration,
}

/// Locality-based least connection: remember which dest served each
/// destination address and keep using it unless it is unavailable or
/// overloaded for locality; otherwise pick by wlc and remember that.
#[derive(Debug)]
pub struct LocalityLeastConn {
    cache: HashMap<IpAddr, Entry>,
    expiration: Duration,
    rover: u32,
}

impl LocalityLeastConn {
    /// A scheduler whose full sweep drops entries idle longer than
    /// `expiration` (the `lblc_expiration` sysctl).
    pub fn new(expiration: Duration) -> LocalityLeastConn {
        LocalityLeastConn {
            cache: HashMap::new(),
            expiration,
            rover: 0,
        }
    }

    /// Cached destination addresses.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

impl Scheduler for LocalityLeastConn {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
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
        if let Some(en) = self.cache.get_mut(&flow.daddr) {
            en.lastuse = now;
            // A dest that left the service is no longer AVAILABLE.
            if let Some(i) = dests.iter().position(|d| d.id == en.dest) {
                let d = &dests[i];
                if d.weight > 0 && !locality_overloaded(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = weighted_least(dests, Dest::conn_overhead)?;
        self.cache.insert(
            flow.daddr,
            Entry {
                dest: dests[i].id,
                lastuse: now,
            },
        );
        Some(i)
    }

    fn collect_garbage(&mut self, _: &[Dest], now: Duration) {
        collect_cache(
            &mut self.cache,
            |e| e.lastuse,
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
    fn sticks_to_cached_dest_until_overloaded() {
        let mut d = dests(&[4, 4]);
        let mut s = LocalityLeastConn::new(Duration::from_secs(60));
        let f = flow_to([192, 0, 2, 10]);
        let none = SchedFlags::default();
        assert_eq!(s.schedule(&d, &f, none, Duration::ZERO), Some(0));
        d[0].activeconns = 4; // equal to weight: still fine
        d[1].activeconns = 3;
        assert_eq!(s.schedule(&d, &f, none, Duration::ZERO), Some(0));
        d[0].activeconns = 5; // > weight, but nobody is under half: keep
        assert_eq!(s.schedule(&d, &f, none, Duration::ZERO), Some(0));
        d[1].activeconns = 1; // 1*2 < 4: now dest 1 is overloaded for locality
        assert_eq!(s.schedule(&d, &f, none, Duration::ZERO), Some(1));
        assert_eq!(
            s.schedule(&d, &f, none, Duration::ZERO),
            Some(1),
            "re-cached"
        );
        assert_eq!(s.cache_len(), 1);
    }

    #[test]
    fn full_sweep_expires_idle_entries() {
        let d = dests(&[1]);
        let mut s = LocalityLeastConn::new(Duration::from_secs(100));
        let none = SchedFlags::default();
        s.schedule(&d, &flow_to([192, 0, 2, 1]), none, Duration::ZERO);
        s.schedule(&d, &flow_to([192, 0, 2, 2]), none, Duration::from_secs(150));
        for k in 1..=COUNT_FOR_FULL_EXPIRATION {
            s.collect_garbage(&d, Duration::from_secs(200));
            let want = if k < COUNT_FOR_FULL_EXPIRATION { 2 } else { 1 };
            assert_eq!(s.cache_len(), want);
        }
    }
}
