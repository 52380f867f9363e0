//! rr — round robin (`ip_vs_rr.c`).

use std::time::Duration;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::dest::{Dest, DestId};
use crate::service::SchedFlags;

/// Round robin: walk the list from the dest chosen last and take the next
/// available one. Weights matter only as zero / non-zero.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// The dest chosen last; `None` is the list head.
    last: Option<DestId>,
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) {
        match change {
            DestChange::Reset => self.last = None,
            // ip_vs_rr_del_dest: the cursor moves to the node before the one
            // unlinked (p->next->prev).
            DestChange::Removed { id, index } if self.last == Some(id) => {
                self.last = index.checked_sub(1).map(|i| dests[i].id);
            }
            _ => {}
        }
    }

    fn schedule(&mut self, dests: &[Dest], _: &Flow, _: SchedFlags, _: Duration) -> Option<usize> {
        let n = dests.len();
        let start = match self.last {
            Some(id) => dests.iter().position(|d| d.id == id).map_or(0, |p| p + 1),
            None => 0,
        };
        // From the head one pass covers the list; from a dest, the walk goes
        // to the end, past the head and round to the dest itself.
        let found = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| dests[i].available())?;
        self.last = Some(dests[found].id);
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn cycles_and_skips_weight_zero() {
        let d = dests(&[1, 0, 5]);
        let mut s = RoundRobin::default();
        assert_eq!(picks(&mut s, &d, 5), vec![1, 3, 1, 3, 1]);
    }

    #[test]
    fn removal_moves_cursor_back() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = RoundRobin::default();
        assert_eq!(picks(&mut s, &d, 2), vec![1, 2]);
        // Remove dest 2 (the cursor): the next pick continues with dest 3.
        let removed = d.remove(1);
        s.update(
            &d,
            DestChange::Removed {
                id: removed.id,
                index: 1,
            },
        );
        let next = s.schedule(
            &d,
            &flow([1, 1, 1, 1], 1),
            SchedFlags::default(),
            Duration::ZERO,
        );
        assert_eq!(d[next.unwrap()].id, DestId(3));
    }

    #[test]
    fn none_when_all_quiesced_or_overloaded() {
        let mut d = dests(&[0, 1]);
        d[1].overload = true;
        let mut s = RoundRobin::default();
        assert_eq!(picks(&mut s, &d, 1), vec![0]);
        assert_eq!(picks(&mut s, &[], 1), vec![0]);
    }
}
