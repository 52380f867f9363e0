//! sh — source hashing (`ip_vs_sh.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::addr::{addr_fold, hash_32};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// `CONFIG_IP_VS_SH_TAB_BITS`.
pub(crate) const SH_TAB_BITS: u32 = 8;
const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = (SH_TAB_SIZE as u32) - 1;

/// Source hashing over a 256-bucket table in which each dest takes `weight`
/// consecutive buckets. Flags: `sh-fallback` (SCHED1) walks on to the next
/// available bucket, `sh-port` (SCHED2) hashes the source port too.
///
/// The hash is the current kernels' `hash_32` form.
#[derive(Debug)]
pub struct SourceHash {
    buckets: Box<[Option<u32>; SH_TAB_SIZE]>,
}

impl Default for SourceHash {
    fn default() -> Self {
        SourceHash {
            buckets: Box::new([None; SH_TAB_SIZE]),
        }
    }
}

/// `ip_vs_sh_hashkey`.
fn hashkey(flow: &Flow, port: u16, offset: u32) -> usize {
    let v = u32::from(port).wrapping_add(addr_fold(&flow.saddr));
    (offset.wrapping_add(hash_32(v, SH_TAB_BITS)) & SH_TAB_MASK) as usize
}

impl Scheduler for SourceHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    /// `ip_vs_sh_reassign`: walk the list cyclically, each dest filling
    /// `weight` buckets (at least one, so weight 0 still takes one).
    fn buckets(&self) -> Option<&[Option<u32>]> {
        Some(&self.buckets[..])
    }

    fn update(&mut self, dests: &[Dest], _: DestChange) {
        if dests.is_empty() {
            self.buckets.fill(None);
            return;
        }
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            *b = Some(p as u32);
            count += 1;
            if count >= dests[p].weight {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    fn schedule(
        &mut self,
        dests: &[Dest],
        flow: &Flow,
        flags: SchedFlags,
        _: Duration,
    ) -> Option<usize> {
        let port = if flags.sched2 { flow.sport } else { 0 };
        let at = |h: usize| self.buckets[h].map(|i| i as usize);
        let ihash = hashkey(flow, port, 0);
        let first = at(ihash)?;
        if dests[first].available() {
            return Some(first);
        }
        if !flags.sched1 {
            return None;
        }
        for offset in 0..SH_TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % SH_TAB_SIZE as u32;
            let d = at(hashkey(flow, port, roffset))?;
            if dests[d].available() {
                return Some(d);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn buckets_follow_weights() {
        let d = dests(&[2, 1, 0]);
        let mut s = SourceHash::default();
        s.update(&d, DestChange::Reset);
        // 2, 1, then weight 0 still takes one bucket, cycling.
        let got: Vec<u32> = s.buckets[..8].iter().map(|b| b.unwrap()).collect();
        assert_eq!(got, vec![0, 0, 1, 2, 0, 0, 1, 2]);
        let per: Vec<usize> = (0..3)
            .map(|i| s.buckets.iter().filter(|b| **b == Some(i)).count())
            .collect();
        assert_eq!(per, vec![128, 64, 64]);
    }

    #[test]
    fn weights_beyond_256_starve_late_dests() {
        let d = dests(&[300, 1]);
        let mut s = SourceHash::default();
        s.update(&d, DestChange::Reset);
        assert!(s.buckets.iter().all(|b| *b == Some(0)));
    }

    #[test]
    fn same_source_same_dest_and_fallback() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = SourceHash::default();
        s.update(&d, DestChange::Reset);
        let f = flow([203, 0, 113, 9], 5555);
        let none = SchedFlags::default();
        let a = s.schedule(&d, &f, none, Duration::ZERO).unwrap();
        let f2 = flow([203, 0, 113, 9], 6666);
        assert_eq!(
            s.schedule(&d, &f2, none, Duration::ZERO),
            Some(a),
            "port ignored"
        );
        // Bucket is hash_32(fold, 8): check the arithmetic once by hand.
        let fold = 0xCB00_7109u32;
        let h = (fold.wrapping_mul(0x61C8_8647) >> 24) as usize;
        assert_eq!(a, h % 4);
        d[a].weight = 0;
        assert_eq!(s.schedule(&d, &f, none, Duration::ZERO), None);
        let fb = SchedFlags {
            sched1: true,
            ..none
        };
        let b = s.schedule(&d, &f, fb, Duration::ZERO).unwrap();
        assert_ne!(a, b);
        assert!(d[b].available());
    }
}
