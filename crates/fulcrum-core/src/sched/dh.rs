//! dh — destination hashing (`ip_vs_dh.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::addr::{addr_fold, hash_32};
use crate::dest::Dest;
use crate::service::SchedFlags;

const DH_TAB_BITS: u32 = 8;
const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;

/// Destination hashing: 256 buckets filled round-robin (weights ignored),
/// keyed by the packet's destination address.
#[derive(Debug)]
pub struct DestinationHash {
    buckets: Box<[Option<u32>; DH_TAB_SIZE]>,
}

impl Default for DestinationHash {
    fn default() -> Self {
        DestinationHash {
            buckets: Box::new([None; DH_TAB_SIZE]),
        }
    }
}

impl Scheduler for DestinationHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Dh
    }

    fn buckets(&self) -> Option<&[Option<u32>]> {
        Some(&self.buckets[..])
    }

    fn update(&mut self, dests: &[Dest], _: DestChange) {
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = (!dests.is_empty()).then(|| (i % dests.len()) as u32);
        }
    }

    fn schedule(
        &mut self,
        dests: &[Dest],
        flow: &Flow,
        _: SchedFlags,
        _: Duration,
    ) -> Option<usize> {
        let h = hash_32(addr_fold(&flow.daddr), DH_TAB_BITS) as usize;
        let d = self.buckets[h]? as usize;
        dests[d].available().then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn round_robin_fill_and_sticky_by_destination() {
        let mut d = dests(&[5, 1, 1]);
        let mut s = DestinationHash::default();
        s.update(&d, DestChange::Reset);
        let per: Vec<usize> = (0..3)
            .map(|i| s.buckets.iter().filter(|b| **b == Some(i)).count())
            .collect();
        assert_eq!(per, vec![86, 85, 85], "weights are ignored");
        let f = flow_to([192, 0, 2, 77]);
        let a = s
            .schedule(&d, &f, SchedFlags::default(), Duration::ZERO)
            .unwrap();
        let mut g = f;
        g.saddr = [9, 9, 9, 9].into();
        assert_eq!(
            s.schedule(&d, &g, SchedFlags::default(), Duration::ZERO),
            Some(a)
        );
        d[a].overload = true;
        assert_eq!(
            s.schedule(&d, &f, SchedFlags::default(), Duration::ZERO),
            None
        );
    }
}
