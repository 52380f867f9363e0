//! Accept loops that survive running out of descriptors or memory.
//!
//! `accept(2)` fails with `EMFILE`/`ENFILE` while the process or the system
//! has no descriptor left, and with `ENOBUFS`/`ENOMEM` under memory
//! pressure. The pending connection stays queued, so retrying at once spins
//! a core; waiting a little, longer while it lasts, lets the connections
//! that hold descriptors finish. One warning per interval says how many
//! accepts failed, instead of one line each.

use std::io;
use std::time::{Duration, Instant};

/// The first and the longest wait after a resource error.
const FIRST: Duration = Duration::from_millis(10);
const LONGEST: Duration = Duration::from_millis(500);
/// At most one warning per listener in this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether an error means the process or host ran out of something (as
/// opposed to a connection that went away before it was accepted).
pub fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Counts events and says when one may be logged: at most once per
/// [`LOG_EVERY`], with how many happened since the last line.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    /// Count one; whether to log now.
    pub(crate) fn due(&mut self) -> bool {
        self.count += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }

    /// How many were counted since the last line (and start again).
    pub(crate) fn take(&mut self) -> u64 {
        std::mem::take(&mut self.count)
    }
}

/// The state of one accept loop's back-off.
#[derive(Debug)]
pub struct AcceptBackoff {
    what: String,
    delay: Duration,
    last_failure: Option<Instant>,
    log: RateLimited,
}

impl AcceptBackoff {
    /// Back-off for the listener named `what` (in log lines).
    pub fn new(what: impl Into<String>) -> AcceptBackoff {
        AcceptBackoff {
            what: what.into(),
            delay: FIRST,
            last_failure: None,
            log: RateLimited::default(),
        }
    }

    /// An accept failed with `e`: log (rate-limited) and wait before the
    /// next try.
    pub async fn failed(&mut self, e: &io::Error) {
        if !is_resource_error(e) {
            // ECONNABORTED and the like: the next connection is fine.
            tracing::debug!(listener = %self.what, error = %e, "accept failed");
            return;
        }
        let now = Instant::now();
        // A calm second since the last failure starts the back-off over.
        if self
            .last_failure
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(1))
        {
            self.delay = FIRST;
        }
        self.last_failure = Some(now);
        if self.log.due() {
            tracing::warn!(
                listener = %self.what,
                error = %e,
                failed = self.log.take(),
                "cannot accept connections: out of resources; waiting for connections to close (raise `ulimit -n` or lower max_connections)"
            );
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(LONGEST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exhaustion_counts_as_a_resource_error() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_resource_error(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_resource_error(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        assert!(!is_resource_error(&io::Error::other("x")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_doubles_while_failures_last() {
        let mut b = AcceptBackoff::new("test");
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        let t = tokio::time::Instant::now();
        for _ in 0..8 {
            b.failed(&e).await;
        }
        // 10 + 20 + 40 + 80 + 160 + 320 + 500 + 500 ms
        assert_eq!(t.elapsed(), Duration::from_millis(1630));
        let t = tokio::time::Instant::now();
        b.failed(&io::Error::from_raw_os_error(libc::ECONNABORTED))
            .await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
