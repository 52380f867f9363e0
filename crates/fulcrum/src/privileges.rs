//! Least privilege: `fulcrum run` keeps only the capabilities its
//! configuration needs, and sets `no_new_privs`.
//!
//! Capabilities belong to threads, so the drop happens on the director's
//! main thread before any other thread exists; every thread started later
//! (data-plane workers, tokio's blocking pool, child processes) inherits
//! the reduced sets. What is kept:
//!
//! - `CAP_NET_BIND_SERVICE`: listeners on ports below 1024, also on reload;
//! - `CAP_NET_ADMIN`: floating addresses (rtnetlink) and failover;
//! - `CAP_NET_RAW`: VRRP adverts, gratuitous ARP, ICMP checks and ipfail.
//!
//! The others go from the effective, permitted, inheritable and bounding
//! sets, so neither the director nor a program it runs (checks, notify
//! scripts) can get them back; `no_new_privs` keeps setuid and file
//! capabilities from granting more to those programs.

use fulcrum_config::{CheckType, Config};
use rustix::thread::CapabilitySet;

/// The capabilities a configuration needs.
pub fn needed(cfg: &Config) -> CapabilitySet {
    let mut keep = CapabilitySet::NET_BIND_SERVICE;
    let floating = cfg
        .floating_addresses()
        .iter()
        .any(|f| !f.addr.is_loopback());
    if floating || cfg.global.failover() {
        keep |= CapabilitySet::NET_ADMIN | CapabilitySet::NET_RAW;
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

/// Reduce the calling thread (and what it starts) to `keep`, and set
/// `no_new_privs`. Returns the capabilities left.
///
/// # Errors
/// A message naming the step that failed.
pub fn drop_to(keep: CapabilitySet) -> Result<CapabilitySet, String> {
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
