//! The IPVS schedulers, one file each, each following its `ip_vs_<name>.c`.
//!
//! Dests are kept in the kernel's list order: a new dest is inserted at the
//! head (`list_add_rcu`), so the most recently added dest comes first. Every
//! "first" and every tie-break below refers to that order.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::dest::{Dest, DestId};
use crate::service::SchedFlags;

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

pub use dh::DestinationHash;
pub use fo::WeightedFailover;
pub use lblc::LocalityLeastConn;
pub use lblcr::LocalityLeastConnReplicated;
pub use lc::LeastConn;
pub use mh::{MH_PRIMES, MaglevHash};
pub use nq::NeverQueue;
pub use ovf::WeightedOverflow;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::SourceHash;
pub use twos::PowerOfTwo;
pub use wlc::WeightedLeastConn;
pub use wrr::WeightedRoundRobin;

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Client address.
    pub saddr: IpAddr,
    /// Client port.
    pub sport: u16,
    /// Virtual service address the packet was sent to.
    pub daddr: IpAddr,
    /// Virtual service port.
    pub dport: u16,
}

/// What changed in a service's dest list, so stateful schedulers can react as
/// the kernel's `add_dest` / `del_dest` / `upd_dest` hooks do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestChange {
    /// The scheduler was just bound to the service (`init_service`).
    Reset,
    /// A dest was inserted at the head of the list.
    Added(DestId),
    /// A dest's weight, thresholds or forwarding changed.
    Updated(DestId),
    /// A dest was unlinked; `index` is where it stood in the list.
    Removed {
        /// The removed dest.
        id: DestId,
        /// Its former position.
        index: usize,
    },
}

/// The scheduler names IPVS knows, in ipvsadm's help order plus `twos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (the default).
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted fail-over.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Power of two choices.
    Twos,
}

impl SchedulerKind {
    /// All 14, in ipvsadm's order.
    pub const ALL: [SchedulerKind; 14] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Mh,
        SchedulerKind::Twos,
    ];

    /// The scheduler's IPVS name.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Twos => "twos",
        }
    }

    /// Every name, for did-you-mean suggestions.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|k| k.name())
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scheduler name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler `{0}`")]
pub struct UnknownScheduler(pub String);

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

/// Tunables that the kernel takes from Kconfig or sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedOptions {
    /// `CONFIG_IP_VS_MH_TAB_INDEX` (8..=17): mh's table size is
    /// `MH_PRIMES[index - 8]`. Default 12 (M = 4093).
    pub mh_tab_index: u8,
    /// `lblc_expiration` / `lblcr_expiration` sysctls. Default 24 h.
    pub lblc_expiration: Duration,
    /// Seed for twos' random draws (the kernel uses `get_random_u32`).
    pub seed: u64,
}

impl Default for SchedOptions {
    fn default() -> Self {
        SchedOptions {
            mh_tab_index: 12,
            lblc_expiration: Duration::from_secs(24 * 60 * 60),
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// A dest list change the scheduler refuses, as the kernel does with `-EINVAL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// mh cannot hold more dests than its table has slots.
    #[error("the mh table has {slots} slots, fewer than the {dests} real servers")]
    TooManyDests {
        /// Dests requested.
        dests: usize,
        /// Table size.
        slots: usize,
    },
}

/// One scheduling algorithm bound to one virtual service.
pub trait Scheduler: fmt::Debug + Send + Sync {
    /// Which algorithm this is.
    fn kind(&self) -> SchedulerKind;

    /// Tell the scheduler the dest list changed. `dests` is the list after the
    /// change. Call with [`DestChange::Reset`] once when binding.
    fn update(&mut self, dests: &[Dest], change: DestChange);

    /// The most dests this scheduler accepts (mh: its table size).
    fn capacity(&self) -> Option<usize> {
        None
    }

    /// Pick a dest for a new connection; the index into `dests`, or `None`
    /// for "no destination available".
    fn schedule(
        &mut self,
        dests: &[Dest],
        flow: &Flow,
        flags: SchedFlags,
        now: Duration,
    ) -> Option<usize>;

    /// The lookup table of a table-driven scheduler (sh and dh: 256
    /// buckets; mh: its prime-sized table), each bucket the index of a dest
    /// in the list; `None` for schedulers without one. Data planes that
    /// schedule elsewhere (XDP) publish it as it is.
    fn buckets(&self) -> Option<&[Option<u32>]> {
        None
    }

    /// Periodic housekeeping (lblc/lblcr's cache garbage collector, every 60 s
    /// in the kernel). The default does nothing.
    fn collect_garbage(&mut self, _dests: &[Dest], _now: Duration) {}
}

/// A service's scheduler, shared by the table that owns the service and
/// the data planes that schedule from a published snapshot of it (the
/// proxy plane's workers), so there is one scheduling sequence per service
/// wherever a connection is scheduled. The lock is held only for one
/// decision or one update, never across an await, as the kernel holds a
/// scheduler's own lock.
#[derive(Debug, Clone)]
pub struct SharedScheduler(std::sync::Arc<std::sync::Mutex<Box<dyn Scheduler>>>);

impl SharedScheduler {
    /// Share `s`.
    pub fn new(s: Box<dyn Scheduler>) -> SharedScheduler {
        SharedScheduler(std::sync::Arc::new(std::sync::Mutex::new(s)))
    }

    /// The scheduler, for one decision or update. A panic in another
    /// holder does not make it unusable: scheduler state is valid after any
    /// step.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Scheduler>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which algorithm it is.
    pub fn kind(&self) -> SchedulerKind {
        self.lock().kind()
    }

    /// Replace the algorithm; every holder sees the new one.
    pub fn replace(&self, s: Box<dyn Scheduler>) {
        *self.lock() = s;
    }
}

/// Build a scheduler of the given kind, already bound to `dests`.
pub fn new_scheduler(
    kind: SchedulerKind,
    dests: &[Dest],
    opts: &SchedOptions,
) -> Box<dyn Scheduler> {
    let mut s: Box<dyn Scheduler> = match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::default()),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::default()),
        SchedulerKind::Lc => Box::new(LeastConn),
        SchedulerKind::Wlc => Box::new(WeightedLeastConn),
        SchedulerKind::Lblc => Box::new(LocalityLeastConn::new(opts.lblc_expiration)),
        SchedulerKind::Lblcr => Box::new(LocalityLeastConnReplicated::new(opts.lblc_expiration)),
        SchedulerKind::Dh => Box::new(DestinationHash::default()),
        SchedulerKind::Sh => Box::new(SourceHash::default()),
        SchedulerKind::Sed => Box::new(ShortestExpectedDelay),
        SchedulerKind::Nq => Box::new(NeverQueue),
        SchedulerKind::Fo => Box::new(WeightedFailover),
        SchedulerKind::Ovf => Box::new(WeightedOverflow),
        SchedulerKind::Mh => Box::new(MaglevHash::with_tab_index(opts.mh_tab_index)),
        SchedulerKind::Twos => Box::new(PowerOfTwo::new(opts.seed)),
    };
    s.update(dests, DestChange::Reset);
    s
}

/// The weighted comparison shared by wlc, sed, nq, lblc and lblcr: is
/// `cand` (overhead `doh`, weight `dw`) strictly better than `least`
/// (overhead `loh`, weight `lw`)? `loh * dw > doh * lw`, in 64 bits.
pub(crate) fn weighted_better(loh: i64, lw: u32, doh: i64, dw: u32) -> bool {
    loh * i64::from(dw) > doh * i64::from(lw)
}

/// The wlc loop over `dests` with a given overhead function: the first
/// available dest, then strictly better ones, skipping only overloaded dests
/// in the second stage (`ip_vs_wlc.c`, `ip_vs_sed.c`).
pub(crate) fn weighted_least(dests: &[Dest], overhead: impl Fn(&Dest) -> i64) -> Option<usize> {
    let mut it = dests.iter().enumerate();
    let (mut least, mut loh, mut lw) = loop {
        let (i, d) = it.next()?;
        if d.available() {
            break (i, overhead(d), i64::from(d.weight));
        }
    };
    for (i, d) in it {
        if d.overload {
            continue;
        }
        let doh = overhead(d);
        let dw = i64::from(d.weight);
        // weighted_better(), with the current least's weight kept in a local.
        if loh * dw > doh * lw {
            (least, loh, lw) = new_least(i, doh, dw);
        }
    }
    Some(least)
}

/// A new minimum is rare (about ln n times per scan). Keeping the update out
/// of line makes the compiler branch instead of chaining conditional moves
/// through the multiplications, which halves the scan time.
#[cold]
#[inline(never)]
fn new_least(i: usize, oh: i64, w: i64) -> (usize, i64, i64) {
    (i, oh, w)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::dest::Forwarding;

    /// Dests named by their last IPv4 octet, in list order, with weights.
    pub(crate) fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let addr = IpAddr::from([10, 0, 0, (i + 1) as u8]);
                Dest::new(DestId(i as u64 + 1), addr, 80, Forwarding::Masq, *w)
            })
            .collect()
    }

    pub(crate) fn flow(src: [u8; 4], sport: u16) -> Flow {
        Flow {
            saddr: IpAddr::from(src),
            sport,
            daddr: IpAddr::from([192, 0, 2, 1]),
            dport: 80,
        }
    }

    pub(crate) fn flow_to(dst: [u8; 4]) -> Flow {
        Flow {
            saddr: IpAddr::from([198, 51, 100, 1]),
            sport: 40000,
            daddr: IpAddr::from(dst),
            dport: 80,
        }
    }

    /// Run `n` picks without changing connection counts; returns dest numbers
    /// (1-based positions).
    pub(crate) fn picks(s: &mut dyn Scheduler, d: &[Dest], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| {
                s.schedule(
                    d,
                    &flow([198, 51, 100, 7], 1000),
                    SchedFlags::default(),
                    Duration::ZERO,
                )
                .map_or(0, |i| i + 1)
            })
            .collect()
    }
}
