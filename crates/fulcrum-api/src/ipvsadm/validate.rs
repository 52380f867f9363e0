//! The director's check of a typed command from a client: the ranges
//! ipvsadm's command line guarantees, which a command sent over the control
//! socket by anything else need not keep.

use fulcrum_core::table::MAX_WEIGHT;
use fulcrum_core::{Netmask, ServiceKey};

use super::parse::{AdmCommand, AdmError, DestArgs, ListTarget, SvcArgs};

/// `MAX_TIMEOUT` (31 days), as the command line takes it.
const MAX_TIMEOUT: u32 = super::parse::MAX_TIMEOUT as u32;
/// The longest scheduler name (`IP_VS_SCHEDNAME_MAXLEN` less its NUL).
const MAX_SCHED: usize = 15;
/// The longest persistence engine name ipvsadm passes on.
const MAX_PE: usize = 16;
/// The longest interface name (`IFNAMSIZ` less its NUL).
const MAX_IFNAME: usize = 15;

fn refuse(what: String) -> AdmError {
    AdmError {
        message: format!(
            "the director refuses a command no ipvsadm command line gives: {what}; use `fulcrum adm` or `ipvsadm` of the director's version\n"
        ),
        exit_code: 2,
    }
}

fn key(k: &ServiceKey) -> Result<(), AdmError> {
    match k {
        ServiceKey::Fwmark { mark: 0, .. } => Err(refuse("firewall mark 0".into())),
        _ => Ok(()),
    }
}

fn service(a: &SvcArgs) -> Result<(), AdmError> {
    key(&a.key)?;
    if a.scheduler.is_empty() || a.scheduler.chars().count() > MAX_SCHED {
        return Err(refuse(format!(
            "scheduler name `{}' is empty or over {MAX_SCHED} characters",
            a.scheduler.escape_debug()
        )));
    }
    if let Some(p) = a.persistent
        && !(1..=MAX_TIMEOUT).contains(&p)
    {
        return Err(refuse(format!(
            "persistence timeout {p} is outside 1..{MAX_TIMEOUT}"
        )));
    }
    if let Netmask::V6(n) = a.netmask
        && !(1..=128).contains(&n)
    {
        return Err(refuse(format!("IPv6 prefix length {n} is outside 1..128")));
    }
    if let Some(pe) = &a.pe_name
        && pe.chars().count() > MAX_PE
    {
        return Err(refuse(format!(
            "persistence engine name `{}' is over {MAX_PE} characters",
            pe.escape_debug()
        )));
    }
    Ok(())
}

fn dest(k: &ServiceKey, d: &DestArgs) -> Result<(), AdmError> {
    key(k)?;
    for (what, v) in [
        ("weight", d.weight),
        ("upper threshold", d.u_threshold),
        ("lower threshold", d.l_threshold),
    ] {
        if v > MAX_WEIGHT {
            return Err(refuse(format!("{what} {v} is over {MAX_WEIGHT}")));
        }
    }
    Ok(())
}

/// Check a command the director received typed: what ipvsadm's parser
/// would have refused is refused here, with exit status 2, before the
/// command reaches the table.
///
/// # Errors
/// The first range the command leaves, said for the person who sent it.
pub fn validate(cmd: &AdmCommand) -> Result<(), AdmError> {
    match cmd {
        AdmCommand::AddService(a) | AdmCommand::EditService(a) => service(a),
        AdmCommand::DeleteService(k) => key(k),
        AdmCommand::AddDest(k, d) | AdmCommand::EditDest(k, d) => dest(k, d),
        AdmCommand::DeleteDest(k, ..) => key(k),
        AdmCommand::Zero(k) => k.as_ref().map_or(Ok(()), key),
        AdmCommand::List(l) => match &l.target {
            ListTarget::Service(k) => key(k),
            _ => Ok(()),
        },
        AdmCommand::SetTimeout(t, f, u) => {
            match [t, f, u].into_iter().find(|v| **v > MAX_TIMEOUT) {
                Some(v) => Err(refuse(format!("timeout {v} is over {MAX_TIMEOUT}"))),
                None => Ok(()),
            }
        }
        AdmCommand::StartDaemon(d) => {
            if d.mcast_ifn.is_empty() || d.mcast_ifn.chars().count() > MAX_IFNAME {
                return Err(refuse(format!(
                    "interface name `{}' is empty or over {MAX_IFNAME} characters",
                    d.mcast_ifn.escape_debug()
                )));
            }
            Ok(())
        }
        // A restore's lines are commands of their own: `-R` itself never
        // reaches the director.
        AdmCommand::Restore => Err(refuse("`-R` (send the commands it reads instead)".into())),
        AdmCommand::Clear | AdmCommand::Save { .. } | AdmCommand::StopDaemon(..) => Ok(()),
    }
}
