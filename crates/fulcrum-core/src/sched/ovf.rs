//! ovf — weighted overflow (`ip_vs_ovf.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Weighted overflow: the highest-weight dest whose active connections do not
/// exceed its weight; when the top one is full, traffic overflows to the next.
#[derive(Debug, Default)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ovf
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.overload || d.activeconns > d.weight || d.weight == 0 {
                continue;
            }
            if best.is_none_or(|b| d.weight > dests[b].weight) {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn overflows_when_full() {
        let mut d = dests(&[2, 3, 1]);
        assert_eq!(picks(&mut WeightedOverflow, &d, 1), vec![2]);
        d[1].activeconns = 3; // not more than its weight yet
        assert_eq!(picks(&mut WeightedOverflow, &d, 1), vec![2]);
        d[1].activeconns = 4;
        assert_eq!(picks(&mut WeightedOverflow, &d, 1), vec![1]);
        d[0].activeconns = 3;
        assert_eq!(picks(&mut WeightedOverflow, &d, 1), vec![3]);
        d[2].activeconns = 2;
        assert_eq!(picks(&mut WeightedOverflow, &d, 1), vec![0]);
    }
}
