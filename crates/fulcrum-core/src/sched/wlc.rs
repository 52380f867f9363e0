//! wlc — weighted least connection (`ip_vs_wlc.c`), the default scheduler.

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind, weighted_least};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Weighted least connection: minimise `(active*256 + inactive) / weight`.
#[derive(Debug, Default)]
pub struct WeightedLeastConn;

impl Scheduler for WeightedLeastConn {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        weighted_least(dests, Dest::conn_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn ties_keep_the_first() {
        let d = dests(&[2, 1, 1]);
        assert_eq!(picks(&mut WeightedLeastConn, &d, 1), vec![1]);
    }

    #[test]
    fn follows_overhead_per_weight() {
        let mut d = dests(&[2, 1, 1]);
        d[0].activeconns = 2; // 512/2 = 256
        d[1].activeconns = 1; // 256/1 = 256
        assert_eq!(picks(&mut WeightedLeastConn, &d, 1), vec![3]);
        d[2].activeconns = 1;
        // All equal at 256 per unit: the first stays.
        assert_eq!(picks(&mut WeightedLeastConn, &d, 1), vec![1]);
        d[0].inactconns = 1; // 513/2 > 256
        assert_eq!(picks(&mut WeightedLeastConn, &d, 1), vec![2]);
    }

    #[test]
    fn weight_zero_never_wins_and_overload_is_skipped() {
        let mut d = dests(&[0, 1, 1]);
        d[1].activeconns = 50;
        d[2].overload = true;
        assert_eq!(picks(&mut WeightedLeastConn, &d, 1), vec![2]);
    }
}
