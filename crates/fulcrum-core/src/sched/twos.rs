//! twos — power of two choices (`ip_vs_twos.c`, kernel >= 6.2).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Power of two choices: draw two dests with probability proportional to
/// weight and keep the one with less overhead per unit of weight.
///
/// The kernel draws with `get_random_u32`; here a seeded SplitMix64 stands in
/// so the scheduler stays deterministic under test.
#[derive(Debug)]
pub struct PowerOfTwo {
    state: u64,
}

impl PowerOfTwo {
    /// A scheduler whose draws follow from `seed`.
    pub fn new(seed: u64) -> PowerOfTwo {
        PowerOfTwo { state: seed }
    }

    fn next_u32(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

impl Scheduler for PowerOfTwo {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        let mut total: i64 = 0;
        let mut choice1 = None;
        for (i, d) in dests.iter().enumerate() {
            if d.available() {
                total += i64::from(d.weight);
                choice1 = Some(i);
            }
        }
        let mut choice1 = choice1?;
        // +1 so that the draws are inclusive of the total.
        total += 1;
        let mut r1 = i64::from(self.next_u32()) % total;
        let mut r2 = i64::from(self.next_u32()) % total;
        let mut c1: Option<(usize, i64)> = None;
        let mut c2: Option<(usize, i64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            r1 -= i64::from(d.weight);
            r2 -= i64::from(d.weight);
            if r1 <= 0 && c1.is_none() {
                c1 = Some((i, d.conn_overhead()));
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some((i, d.conn_overhead()));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        if let Some((i, _)) = c1 {
            choice1 = i;
        }
        if let (Some((i1, oh1)), Some((i2, oh2))) = (c1, c2) {
            let (w1, w2) = (i64::from(dests[i1].weight), i64::from(dests[i2].weight));
            if w2 * oh1 > w1 * oh2 {
                return Some(i2);
            }
        }
        Some(choice1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn draws_in_proportion_to_weight_when_idle() {
        let d = dests(&[3, 1, 0]);
        let mut s = PowerOfTwo::new(7);
        let p = picks(&mut s, &d, 4000);
        let a = p.iter().filter(|&&x| x == 1).count();
        let b = p.iter().filter(|&&x| x == 2).count();
        assert_eq!(a + b, 4000, "weight 0 is never drawn");
        // With no load choice1 wins the tie. Draws are `r % (3 + 1 + 1)`:
        // r in 0..=3 lands on dest 1 (r - 3 <= 0), r = 4 on dest 2, so dest 1
        // gets 4/5 of the picks, not 3/4: the kernel's `total += 1` shows.
        assert!((3050..3350).contains(&a), "{a}");
    }

    #[test]
    fn prefers_the_less_loaded_of_two() {
        let mut d = dests(&[1, 1]);
        d[0].activeconns = 100;
        let mut s = PowerOfTwo::new(1);
        let p = picks(&mut s, &d, 1000);
        // Each draw lands on dest 1 with p = 2/3 (r in 0..=1 of 0..=2).
        // Whenever the two draws differ the idle dest 2 wins, so dest 1 is
        // picked only when both land on it: 4/9, not the 2/3 of one draw.
        let ones = p.iter().filter(|&&x| x == 1).count();
        assert!((380..510).contains(&ones), "{ones}");
    }
}
