//! lc — least connection (`ip_vs_lc.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::dest::Dest;
use crate::service::SchedFlags;

/// Least connection: the smallest `active*256 + inactive`; weights count only
/// as zero / non-zero; the first minimum in list order wins.
#[derive(Debug, Default)]
pub struct LeastConn;

impl Scheduler for LeastConn {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lc
    }

    fn update(&mut self, _: &[Dest], _: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        let mut least: Option<(usize, i64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let doh = d.conn_overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
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
    fn ignores_weights_and_keeps_first_on_ties() {
        let mut d = dests(&[1, 100, 1]);
        d[0].activeconns = 1;
        d[1].activeconns = 1;
        d[2].inactconns = 200; // 200 < 1*256
        assert_eq!(picks(&mut LeastConn, &d, 1), vec![3]);
        d[2].inactconns = 256; // tie with 1 active: first wins
        assert_eq!(picks(&mut LeastConn, &d, 1), vec![1]);
        d[0].weight = 0;
        assert_eq!(picks(&mut LeastConn, &d, 1), vec![2]);
    }
}
