//! nq — never queue (`ip_vs_nq.c`).

use std::time::Duration;

use super::sed::sed_overhead;
use super::{DestChange, Flow, Scheduler, SchedulerKind, weighted_better};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Never queue: the first idle dest (no active connections) in list order,
/// else shortest expected delay.
#[derive(Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Nq
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        let mut least: Option<(usize, i64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let doh = sed_overhead(d);
            if d.activeconns == 0 {
                return Some(i);
            }
            if least.is_none_or(|(l, loh)| weighted_better(loh, dests[l].weight, doh, d.weight)) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn returns_first_idle() {
        let mut d = dests(&[10, 1, 1]);
        d[0].activeconns = 1;
        d[1].inactconns = 99; // idle: only active counts
        assert_eq!(picks(&mut NeverQueue, &d, 1), vec![2]);
    }

    #[test]
    fn falls_back_to_sed() {
        let mut d = dests(&[10, 1, 1]);
        d[0].activeconns = 5; // 6/10
        d[1].activeconns = 1; // 2/1
        d[2].activeconns = 1;
        assert_eq!(picks(&mut NeverQueue, &d, 1), vec![1]);
        d[0].activeconns = 19; // 20/10 == 2/1: first wins
        assert_eq!(picks(&mut NeverQueue, &d, 1), vec![1]);
        d[0].activeconns = 20;
        assert_eq!(picks(&mut NeverQueue, &d, 1), vec![2]);
    }
}
