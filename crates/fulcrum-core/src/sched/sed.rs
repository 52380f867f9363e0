//! sed — shortest expected delay (`ip_vs_sed.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind, weighted_least};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// `ip_vs_sed_dest_overhead`: active connections plus the incoming one.
pub(crate) fn sed_overhead(d: &Dest) -> i64 {
    i64::from(d.activeconns) + 1
}

/// Shortest expected delay: minimise `(active + 1) / weight`; inactive
/// connections are ignored.
#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sed
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        weighted_least(dests, sed_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn expected_delay_prefers_heavier_weight() {
        let mut d = dests(&[1, 3]);
        d[1].activeconns = 1; // (1+1)/3 < (0+1)/1
        d[0].inactconns = 1000; // ignored
        assert_eq!(picks(&mut ShortestExpectedDelay, &d, 1), vec![2]);
        d[1].activeconns = 2; // 3/3 == 1/1: first wins
        assert_eq!(picks(&mut ShortestExpectedDelay, &d, 1), vec![1]);
    }
}
