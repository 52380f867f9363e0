//! wrr — weighted round robin (`ip_vs_wrr.c`, the modern version with
//! `mw = max_weight - (di - 1)` and the last-pass guard).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Weighted round robin.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Current position; `None` is the list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Max weight minus (gcd - 1).
    mw: i64,
    /// gcd of the positive weights (1 if none).
    di: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WeightedRoundRobin {
    fn recompute(&mut self, dests: &[Dest]) {
        let g = dests
            .iter()
            .map(|d| i64::from(d.weight))
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g == 0 { w } else { gcd(w, g) });
        self.di = if g == 0 { 1 } else { g };
        let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
        self.mw = max - (self.di - 1);
        self.cl = None;
    }
}

impl Scheduler for WeightedRoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) {
        self.recompute(dests);
        if change == DestChange::Reset || self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cl;
        let mut pos = self.cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = pos.map_or(0, |p| p + 1);
            for (i, d) in dests.iter().enumerate().skip(from) {
                if !d.overload && i64::from(d.weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            pos = None; // back at the head
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Stop if the last pass already ran, or if we started at the
                // head so one traversal at weight >= 1 covered every dest.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The traversal at weight >= 1 covered only the dests after
                // `last`; now cover those up to it.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn weights_4_3_2_give_the_reference_cycle() {
        let d = dests(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d, DestChange::Reset);
        // A A B A B C A B C, twice.
        assert_eq!(
            picks(&mut s, &d, 18),
            vec![1, 1, 2, 1, 2, 3, 1, 2, 3, 1, 1, 2, 1, 2, 3, 1, 2, 3]
        );
    }

    #[test]
    fn gcd_shortens_the_cycle() {
        let d = dests(&[2000, 1000, 1000]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d, DestChange::Reset);
        // di = 1000, mw = 2000 - 999 = 1001: passes at cw 1001 and 1.
        assert_eq!(picks(&mut s, &d, 8), vec![1, 1, 2, 3, 1, 1, 2, 3]);
    }

    #[test]
    fn all_zero_weights_schedule_nothing() {
        let d = dests(&[0, 0]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d, DestChange::Reset);
        assert_eq!(picks(&mut s, &d, 2), vec![0, 0]);
    }

    #[test]
    fn all_overloaded_schedule_nothing_and_recover() {
        let mut d = dests(&[3, 1]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d, DestChange::Reset);
        assert_eq!(picks(&mut s, &d, 1), vec![1]);
        d[0].overload = true;
        d[1].overload = true;
        assert_eq!(picks(&mut s, &d, 1), vec![0]);
        d[1].overload = false;
        assert_eq!(picks(&mut s, &d, 3), vec![2, 2, 2]);
    }
}
