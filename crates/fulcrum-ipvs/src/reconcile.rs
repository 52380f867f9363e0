//! Bringing the kernel's table to a desired one by difference: what is
//! unchanged is never touched (its connections and counters carry on), and
//! only services Fulcrum installed are ever changed or removed — a service
//! someone added with ipvsadm stays (and is reported).
//!
//! [`plan`] is pure: the kernel's table and the desired one in, the
//! changes out. [`apply`] carries them out through the driver.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use fulcrum_core::{DestSpec, ServiceKey, ServiceSpec};

use crate::driver::{Ipvs, IpvsError};

/// A service with its real servers.
pub type Entry = (ServiceSpec, Vec<DestSpec>);

/// One change to the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add a service.
    AddService(ServiceSpec),
    /// Change a service's scheduler, flags or persistence.
    EditService(ServiceSpec),
    /// Delete a service (and its real servers).
    DeleteService(ServiceKey),
    /// Add a real server.
    AddDest(ServiceKey, DestSpec),
    /// Change a real server's forwarding, weight or thresholds.
    EditDest(ServiceKey, DestSpec),
    /// Delete a real server.
    DeleteDest(ServiceKey, IpAddr, u16),
}

/// The changes that make `kernel` what `desired` says, for the services in
/// `owned` (those Fulcrum installed) and the new ones. A desired service
/// the kernel has but Fulcrum did not install is taken over (it is in
/// `desired`); one it has that is neither desired nor owned is left alone.
pub fn plan(kernel: &[Entry], desired: &[Entry], owned: &HashSet<ServiceKey>) -> Vec<Change> {
    let have: HashMap<ServiceKey, &Entry> = kernel.iter().map(|e| (e.0.key, e)).collect();
    let want: HashMap<ServiceKey, &Entry> = desired.iter().map(|e| (e.0.key, e)).collect();
    let mut out = Vec::new();
    for (key, _) in kernel.iter().map(|e| (e.0.key, e)) {
        if owned.contains(&key) && !want.contains_key(&key) {
            out.push(Change::DeleteService(key));
        }
    }
    for (spec, dests) in desired {
        let key = spec.key;
        match have.get(&key) {
            None => {
                out.push(Change::AddService(spec.clone()));
                // The kernel puts each new real server first: add them last
                // to first, so its list is in the file's order.
                for d in dests.iter().rev() {
                    out.push(Change::AddDest(key, d.clone()));
                }
            }
            Some((kspec, kdests)) => {
                if kspec != spec {
                    out.push(Change::EditService(spec.clone()));
                }
                let wanted: HashMap<(IpAddr, u16), &DestSpec> =
                    dests.iter().map(|d| ((d.addr, d.port), d)).collect();
                for kd in kdests {
                    if !wanted.contains_key(&(kd.addr, kd.port)) {
                        out.push(Change::DeleteDest(key, kd.addr, kd.port));
                    }
                }
                let had: HashMap<(IpAddr, u16), &DestSpec> =
                    kdests.iter().map(|d| ((d.addr, d.port), d)).collect();
                for d in dests.iter().rev() {
                    match had.get(&(d.addr, d.port)) {
                        None => out.push(Change::AddDest(key, d.clone())),
                        Some(kd) if *kd != d => out.push(Change::EditDest(key, d.clone())),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    out
}

/// The kernel's table as [`Entry`]s.
///
/// # Errors
/// The kernel refusing, or a reply that does not decode.
pub fn read(ipvs: &mut Ipvs) -> Result<Vec<Entry>, IpvsError> {
    let mut out = Vec::new();
    for s in ipvs.services()? {
        let dests = ipvs.dests(&s.spec.key)?;
        out.push((s.spec, dests.into_iter().map(|d| d.spec).collect()));
    }
    Ok(out)
}

/// Carry out `changes`; one the kernel refuses does not stop the others
/// (the real servers of a service it refused to add are not tried).
///
/// Returns the changes refused, each with why.
pub fn apply(ipvs: &mut Ipvs, changes: &[Change]) -> Vec<(Change, IpvsError)> {
    let mut refused = Vec::new();
    let mut missing: HashSet<ServiceKey> = HashSet::new();
    for c in changes {
        // The real servers of a service the kernel did not take need not
        // be tried: its refusal says it.
        if let Change::AddDest(k, _) | Change::EditDest(k, _) = c
            && missing.contains(k)
        {
            continue;
        }
        let r = match c {
            Change::AddService(s) => ipvs.add_service(s),
            Change::EditService(s) => ipvs.edit_service(s),
            Change::DeleteService(k) => ipvs.delete_service(k),
            Change::AddDest(k, d) => ipvs.add_dest(k, d),
            Change::EditDest(k, d) => ipvs.edit_dest(k, d),
            Change::DeleteDest(k, a, p) => ipvs.delete_dest(k, *a, *p),
        };
        if let Err(e) = r {
            if let Change::AddService(s) = c {
                missing.insert(s.key);
            }
            refused.push((c.clone(), e));
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_core::sched::SchedulerKind;
    use fulcrum_core::{Forwarding, Protocol};

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port,
        }
    }

    fn svc(port: u16, s: SchedulerKind) -> ServiceSpec {
        ServiceSpec::new(key(port), s)
    }

    fn rs(last: u8, weight: u32) -> DestSpec {
        let mut d = DestSpec::new(IpAddr::from([10, 0, 1, last]), 80, Forwarding::Masq);
        d.weight = weight;
        d
    }

    #[test]
    fn only_what_differs_changes_and_foreign_services_stay() {
        let kernel = vec![
            (svc(80, SchedulerKind::Wrr), vec![rs(2, 1), rs(1, 1)]),
            (svc(81, SchedulerKind::Rr), vec![rs(1, 1)]), // ours, gone from the file
            (svc(99, SchedulerKind::Rr), vec![]),         // added by hand
        ];
        let owned: HashSet<ServiceKey> = [key(80), key(81)].into();
        let desired = vec![
            // rs1 reweighted, rs2 gone, rs3 new; the service unchanged.
            (svc(80, SchedulerKind::Wrr), vec![rs(1, 5), rs(3, 1)]),
            (svc(82, SchedulerKind::Wlc), vec![rs(1, 1), rs(2, 1)]),
        ];
        assert_eq!(
            plan(&kernel, &desired, &owned),
            vec![
                Change::DeleteService(key(81)),
                Change::DeleteDest(key(80), IpAddr::from([10, 0, 1, 2]), 80),
                Change::AddDest(key(80), rs(3, 1)),
                Change::EditDest(key(80), rs(1, 5)),
                Change::AddService(svc(82, SchedulerKind::Wlc)),
                Change::AddDest(key(82), rs(2, 1)),
                Change::AddDest(key(82), rs(1, 1)),
            ]
        );
        // Once applied, nothing.
        let after = vec![
            (svc(80, SchedulerKind::Wrr), vec![rs(1, 5), rs(3, 1)]),
            (svc(82, SchedulerKind::Wlc), vec![rs(1, 1), rs(2, 1)]),
            (svc(99, SchedulerKind::Rr), vec![]),
        ];
        let owned: HashSet<ServiceKey> = [key(80), key(82)].into();
        assert_eq!(plan(&after, &desired, &owned), vec![]);
        // A scheduler change edits the service, nothing else.
        let mut d2 = desired.clone();
        d2[0].0.scheduler = SchedulerKind::Wlc;
        assert_eq!(
            plan(&after, &d2, &owned),
            vec![Change::EditService(svc(80, SchedulerKind::Wlc))]
        );
    }
}
