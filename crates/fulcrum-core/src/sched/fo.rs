//! fo — weighted fail-over (`ip_vs_fo.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Weighted fail-over: the highest weight among dests that are not
/// overloaded; the first of equal weights wins; weight 0 never wins.
#[derive(Debug, Default)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Fo
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut hw = 0;
        for (i, d) in dests.iter().enumerate() {
            if !d.overload && d.weight > hw {
                best = Some(i);
                hw = d.weight;
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
    fn highest_weight_first_of_equals() {
        let mut d = dests(&[5, 9, 9, 1]);
        d[1].activeconns = 1000;
        assert_eq!(picks(&mut WeightedFailover, &d, 2), vec![2, 2]);
        d[1].overload = true;
        assert_eq!(picks(&mut WeightedFailover, &d, 1), vec![3]);
    }
}
