//! Least privilege: `fulcrum run` keeps only the capabilities its
//! configuration needs, and sets `no_new_privs`.
//!
//! Capabilities belong to threads, so the drop happens on the director's
//! main thread before any other thread exists; every thread started later
//! (data-plane workers, tokio's blocking pool, child processes) inherits
//! the reduced sets. What is kept:
//!
//! - `CAP_NET_BIND_SERVICE`: listeners on ports below 1024, also on reload;
//! - `CAP_NET_ADMIN`: floating addresses (rtnetlink) and failover, and
//!   transparent proxying (`IP_TRANSPARENT` and its routing rules);
//! - `CAP_NET_RAW`: VRRP adverts, gratuitous ARP, ICMP checks and ipfail;
//! - `CAP_BPF` (with `CAP_NET_ADMIN`): the XDP plane's maps, which the
//!   controller keeps writing and reading.
//!
//! The others go from the effective, permitted, inheritable and bounding
//! sets, so neither the director nor a program it runs (checks, notify
//! scripts) can get them back; `no_new_privs` keeps setuid and file
//! capabilities from granting more to those programs. With `user`, the
//! director becomes that user (and its group, without supplementary
//! groups) at the same moment, keeping the same capabilities.

use fulcrum_config::{CheckType, Config};
use rustix::thread::CapabilitySet;

/// The capabilities a configuration needs on the chosen data plane.
pub fn needed(cfg: &Config, plane: &crate::kernel::Chosen) -> CapabilitySet {
    let kernel = matches!(plane, crate::kernel::Chosen::Kernel(_));
    let mut keep = CapabilitySet::NET_BIND_SERVICE;
    let floating = cfg
        .floating_addresses()
        .iter()
        .any(|f| !f.addr.is_loopback());
    if floating || cfg.global.failover() {
        keep |= CapabilitySet::NET_ADMIN | CapabilitySet::NET_RAW;
    }
    // Connecting from the client's address, and the rules for the replies.
    if !cfg.transparent_dests().is_empty() {
        keep |= CapabilitySet::NET_ADMIN;
    }
    // Programming the kernel's IPVS table.
    if kernel {
        keep |= CapabilitySet::NET_ADMIN;
    }
    // The XDP program's maps (bpf() needs CAP_BPF where unprivileged BPF
    // is off, as on Debian) and interfaces.
    if matches!(plane, crate::kernel::Chosen::Xdp(_)) {
        keep |= CapabilitySet::NET_ADMIN | CapabilitySet::BPF;
    }
    if !cfg.global.ping_node.is_empty() || cfg.checks().iter().any(|c| c.kind == CheckType::Ping) {
        keep |= CapabilitySet::NET_RAW;
    }
    keep
}

/// Capability names, as `capsh` prints them.
pub fn names(set: CapabilitySet) -> String {
    let known = [
        (CapabilitySet::NET_ADMIN, "cap_net_admin"),
        (CapabilitySet::NET_RAW, "cap_net_raw"),
        (CapabilitySet::NET_BIND_SERVICE, "cap_net_bind_service"),
        (CapabilitySet::BPF, "cap_bpf"),
    ];
    let mut out: Vec<String> = known
        .iter()
        .filter(|(c, _)| set.contains(*c))
        .map(|(_, n)| (*n).to_string())
        .collect();
    let other = set
        - known
            .iter()
            .fold(CapabilitySet::empty(), |a, (c, _)| a | *c);
    if !other.is_empty() {
        out.push(format!("{:#x}", other.bits()));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

/// The user the director runs as (`user` in lvs.cf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

/// `user = NAME`, `user = UID` or `user = UID:GID`; a name is looked up in
/// `passwd` (the file given, `/etc/passwd` in use).
///
/// # Errors
/// A message saying what is wrong and what to do.
pub fn resolve_user(user: &str, passwd: &str) -> Result<RunAs, String> {
    let numeric = |s: &str| s.parse::<u32>().ok();
    if let Some(uid) = numeric(user) {
        return Ok(RunAs { uid, gid: uid });
    }
    if let Some((u, g)) = user.split_once(':')
        && let (Some(uid), Some(gid)) = (numeric(u), numeric(g))
    {
        return Ok(RunAs { uid, gid });
    }
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == user).then(|| (numeric(f[2]), numeric(f[3])))
        })
        .find_map(|(u, g)| Some(RunAs { uid: u?, gid: g? }))
        .ok_or_else(|| {
            format!("user `{user}` is not in /etc/passwd; create it, or give `user = UID:GID`")
        })
}

/// How many threads this process has (from `/proc`).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count)
}

/// Become `who`, keeping the permitted capabilities (`PR_SET_KEEPCAPS`):
/// supplementary groups dropped, then the group, then the user.
fn switch_user(who: RunAs) -> Result<(), String> {
    use rustix::process::{Gid, Uid};
    // These calls change the calling thread only: there must be no other.
    let n = threads();
    if n != 1 {
        return Err(format!(
            "cannot change user with {n} threads running; this is a bug in Fulcrum"
        ));
    }
    let uid = Uid::from_raw(who.uid);
    let gid = Gid::from_raw(who.gid);
    rustix::thread::set_keep_capabilities(true)
        .and_then(|()| rustix::thread::set_thread_groups(&[]))
        .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
        .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid))
        .and_then(|()| rustix::thread::set_keep_capabilities(false))
        .map_err(|e| {
            format!(
                "cannot become uid {} gid {}: {e} (only root can change its user)",
                who.uid, who.gid
            )
        })
}

/// Reduce the calling thread (and what it starts) to `keep`, run as
/// `user` when given, and set `no_new_privs`. Returns the capabilities
/// left.
///
/// # Errors
/// A message naming the step that failed.
pub fn drop_to(keep: CapabilitySet, user: Option<RunAs>) -> Result<CapabilitySet, String> {
    let now = rustix::thread::capabilities(None)
        .map_err(|e| format!("cannot read the capabilities: {e}"))?;
    // The bounding set first, while CAP_SETPCAP is still effective.
    if now.effective.contains(CapabilitySet::SETPCAP) {
        for bit in 0..64u32 {
            let cap = CapabilitySet::from_bits_retain(1 << bit);
            if keep.contains(cap) {
                continue;
            }
            // Beyond the kernel's last capability the read fails: skip.
            if let Ok(true) = rustix::thread::capability_is_in_bounding_set(cap) {
                rustix::thread::remove_capability_from_bounding_set(cap).map_err(|e| {
                    format!("cannot drop capability {bit} from the bounding set: {e}")
                })?;
            }
        }
    }
    if let Some(who) = user {
        switch_user(who)?;
    }
    let left = now.permitted & keep;
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: left,
            permitted: left,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| format!("cannot drop capabilities: {e}"))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("cannot set no_new_privs: {e}"))?;
    Ok(left)
}

/// What `fulcrum run` does before its first thread: raise the descriptor
/// limit while privileges allow it, become the configured `user` (handing
/// it the control socket's directory), and keep only the capabilities the
/// configuration needs. Says what the director runs with.
///
/// # Errors
/// What could not be done.
pub fn reduce(
    config: Option<&Config>,
    plane: &crate::kernel::Chosen,
    control: &std::path::Path,
) -> Result<String, String> {
    if let Some(cfg) = config {
        crate::limits::director_max(cfg.global.max_connections)?;
    }
    let keep = config.map_or(CapabilitySet::NET_BIND_SERVICE, |c| needed(c, plane));
    let run_as = match config.and_then(|c| c.global.user.as_deref()) {
        None => None,
        Some(u) => Some(resolve_user(
            u,
            &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
        )?),
    };
    if let Some(who) = run_as {
        crate::paths::hand_socket_dir_to(control, who.uid, who.gid);
    }
    let left = drop_to(keep, run_as)?;
    Ok(format!(
        "uid {}, capabilities {}, no_new_privs",
        rustix::process::geteuid().as_raw(),
        names(left)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_by_name_number_or_pair() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbroken:x:zz\n";
        assert_eq!(
            resolve_user("nobody", passwd),
            Ok(RunAs {
                uid: 65534,
                gid: 65534
            })
        );
        assert_eq!(
            resolve_user("1000", passwd),
            Ok(RunAs {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(
            resolve_user("1000:50", passwd),
            Ok(RunAs { uid: 1000, gid: 50 })
        );
        let e = resolve_user("fulcrum", passwd).unwrap_err();
        assert!(e.contains("user `fulcrum` is not in /etc/passwd"), "{e}");
        assert!(resolve_user("broken", passwd).is_err());
    }
}
