//! Connection limits: how many connections (and UDP flows) the director,
//! and each virtual service, serve at once.
//!
//! The limits are checked before accepting: while one is full, its
//! listeners stop accepting, so new connections wait in the kernel's
//! backlog — served as soon as a connection closes, like HAProxy's
//! `maxconn` queue — and those still waiting after [`QUEUE_WAIT`] are reset,
//! as IPVS's "no destination" looks to a client. A refused connection thus
//! costs the director nothing while it waits, and one accept and close when
//! it is refused. Refusals are counted and logged at most once per interval
//! per limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// At most one "limit reached" line per limit in this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a connection may wait in the backlog for a place under a full
/// limit before it is reset.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// One limit and its count of open connections.
#[derive(Debug)]
pub struct ConnLimit {
    what: String,
    max: AtomicUsize,
    open: AtomicUsize,
    refused: AtomicU64,
    born: Instant,
    /// Milliseconds after `born` of the last log line, plus one (0: never).
    logged_ms: AtomicU64,
    /// Told when a full limit has room again.
    freed: Notify,
}

impl ConnLimit {
    /// A limit of `max` open connections, named `what` in log lines.
    pub fn new(what: impl Into<String>, max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            what: what.into(),
            max: AtomicUsize::new(max),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            born: Instant::now(),
            logged_ms: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    /// Whether one more connection fits.
    pub fn has_room(&self) -> bool {
        self.open.load(Relaxed) < self.max.load(Relaxed)
    }

    /// Change the limit; open connections above it carry on.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Relaxed);
        self.freed.notify_waiters();
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Connections refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let max = self.max.load(Relaxed);
        self.open
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self.clone()))
    }

    pub(crate) fn refuse(&self) {
        let n = self.refused.fetch_add(1, Relaxed) + 1;
        let now = self.born.elapsed().as_millis() as u64 + 1;
        let last = self.logged_ms.load(Relaxed);
        if (last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64)
            && self
                .logged_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                limit = %self.what,
                max = self.max(),
                refused_total = n,
                "connection limit reached: new connections are refused until some close (max_connections in lvs.cf)"
            );
        }
    }
}

/// A place under a limit, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<ConnLimit>);

impl Drop for Slot {
    fn drop(&mut self) {
        let before = self.0.open.fetch_sub(1, Relaxed);
        if before >= self.0.max.load(Relaxed) {
            // It was full: listeners waiting for room may accept again.
            self.0.freed.notify_waiters();
        }
    }
}

/// Wait until both limits have room, at most `within`; whether they do.
pub(crate) async fn wait_for_room(
    director: &ConnLimit,
    service: &ConnLimit,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let d = director.freed.notified();
        let s = service.freed.notified();
        tokio::pin!(d, s);
        d.as_mut().enable();
        s.as_mut().enable();
        if director.has_room() && service.has_room() {
            return true;
        }
        tokio::select! {
            () = &mut d => {}
            () = &mut s => {}
            () = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// The limit to count a refusal against: the service's when it is full.
pub(crate) fn full_one<'a>(director: &'a ConnLimit, service: &'a ConnLimit) -> &'a ConnLimit {
    if service.has_room() {
        director
    } else {
        service
    }
}

/// A connection's places under the director's limit and its service's.
#[derive(Debug)]
pub struct Admitted {
    _director: Slot,
    _service: Slot,
}

/// Take a place under both limits, or count a refusal against the one that
/// is full.
pub fn admit(director: &Arc<ConnLimit>, service: &Arc<ConnLimit>) -> Option<Admitted> {
    let Some(s) = service.try_take() else {
        service.refuse();
        return None;
    };
    let Some(d) = director.try_take() else {
        director.refuse();
        return None;
    };
    Some(Admitted {
        _director: d,
        _service: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back() {
        let d = ConnLimit::new("director", 3);
        let a = ConnLimit::new("a", 2);
        let b = ConnLimit::new("b", 10);
        let a1 = admit(&d, &a).unwrap();
        let _a2 = admit(&d, &a).unwrap();
        assert!(admit(&d, &a).is_none(), "service a is full");
        assert_eq!((a.refused(), d.refused()), (1, 0));
        let _b1 = admit(&d, &b).unwrap();
        assert!(admit(&d, &b).is_none(), "the director is full");
        assert_eq!((d.open(), d.refused(), b.open()), (3, 1, 1));
        drop(a1);
        assert_eq!((d.open(), a.open()), (2, 1));
        assert!(admit(&d, &b).is_some());
        d.set_max(1);
        assert!(admit(&d, &a).is_none(), "a lower limit applies at once");
    }
}
