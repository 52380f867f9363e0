//! The descriptor budget behind `max_connections`.
//!
//! A proxied TCP connection holds two descriptors (client and real server),
//! a UDP flow one. The director keeps a reserve beyond its connections for
//! what must keep working when clients take all they can: the control
//! socket, metrics, health checks, failover and logs. At start the soft
//! `RLIMIT_NOFILE` is raised to the hard one; without `max_connections` the
//! director serves as many connections as the limit leaves after the
//! reserve; with it, the limit must allow them, or the director says so.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors per connection counted in the budget.
pub const PER_CONNECTION: u64 = 2;
/// Descriptors kept for everything but connections.
pub const RESERVE: u64 = 1024;

/// The soft and hard descriptor limits (`u64::MAX` for none).
fn nofile() -> (u64, u64) {
    let l = getrlimit(Resource::Nofile);
    (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
}

/// Set the soft limit to `want` (at most the hard limit unless privileged).
fn set_soft(want: u64, hard: u64) -> bool {
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: Some(hard.max(want)),
        },
    )
    .is_ok()
}

/// The reserve when the whole limit is small: half of it.
fn reserve_of(limit: u64) -> u64 {
    RESERVE.min(limit / 2)
}

/// The director-wide connection limit for a configured `max_connections`
/// (or none), raising the descriptor limit as far as that needs.
///
/// # Errors
/// When the descriptor limit cannot be raised far enough: what is needed,
/// what there is, and what to do.
pub fn director_max(configured: Option<u32>) -> Result<usize, String> {
    let (soft, hard) = nofile();
    if soft < hard {
        set_soft(hard, hard);
    }
    let (soft, hard) = nofile();
    let Some(n) = configured else {
        let max = soft.saturating_sub(reserve_of(soft)) / PER_CONNECTION;
        return Ok(usize::try_from(max.max(1)).unwrap_or(usize::MAX));
    };
    let need = u64::from(n) * PER_CONNECTION + RESERVE;
    if need > soft && !set_soft(need, hard) {
        return Err(format!(
            "max_connections = {n} needs {need} open files ({PER_CONNECTION} per connection and {RESERVE} for the director itself), but the limit is {soft} and cannot be raised; raise it (`ulimit -n {need}`, LimitNOFILE={need} in a systemd unit) or lower max_connections"
        ));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_the_reserve() {
        assert_eq!(reserve_of(20_000), 1024);
        assert_eq!(reserve_of(256), 128);
        let (soft, _) = nofile();
        let max = director_max(None).unwrap() as u64;
        let (after, _) = nofile();
        assert!(after >= soft);
        assert_eq!(max, (after - reserve_of(after)) / 2);
    }

    #[test]
    fn more_than_the_hard_limit_allows_is_refused_with_what_to_do() {
        // 2 × 10⁹ descriptors: beyond fs.nr_open, even for root.
        let e = director_max(Some(1_000_000_000)).unwrap_err();
        assert!(e.contains("cannot be raised; raise it (`ulimit -n"), "{e}");
    }
}
