//! The seam between the controller and the data planes.
//!
//! The controller is the only owner of the table (services, real servers,
//! weights as nanny leaves them, timeouts). After every change — the start,
//! a reload, a `fulcrum adm` command, a health decision — it publishes the
//! table, and the plane in use makes its forwarding what the table says:
//!
//! - the proxy plane ([`ProxyForwarding`]) listens on each service's address
//!   and asks the controller to schedule each connection;
//! - the kernel plane ([`crate::kernel::KernelPlane`]) brings the kernel's
//!   IPVS table to it by difference, and the kernel forwards;
//! - the XDP plane ([`crate::xdp::XdpForwarding`]) publishes it into its
//!   BPF program's maps, and the program schedules and forwards.
//!
//! A plane also answers the ipvsadm commands only it can (the kernel's
//! counters and connections, its sync daemons) or refuses what it cannot
//! forward (the proxy's NAT-only rule), and on exit removes what it set up
//! — or, for the kernel, may leave it for the next director.

use std::collections::HashMap;

use fulcrum_api::ipvsadm::{AdmCommand, Reply};
use fulcrum_config::TableService;
use fulcrum_core::{Forwarding, Protocol, ServiceKey, Table};
use fulcrum_proxy::ProxyPlane;

use crate::kernel::KernelPlane;

/// One sample of Fulcrum's own sync daemons for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncMetric {
    /// The metric's name.
    pub name: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Its value.
    pub value: f64,
}

impl SyncMetric {
    /// A counter.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> SyncMetric {
        SyncMetric {
            name,
            kind: "counter",
            help,
            value: value as f64,
        }
    }
}

/// What the controller asks of a data plane.
pub trait DataPlane: Send {
    /// For people: `proxy`, `kernel IPVS`.
    fn kind(&self) -> &'static str;

    /// Before the table changes to `desired`: get ready for it, all or
    /// nothing (the proxy binds the listeners of new services, so an
    /// address it cannot listen on changes nothing).
    ///
    /// # Errors
    /// What cannot be done, naming the virtual server.
    fn prepare(&mut self, _desired: &[TableService]) -> Result<(), String> {
        Ok(())
    }

    /// After every change: make forwarding what `table` says. A service
    /// the plane cannot forward at all may be taken out of the table.
    ///
    /// # Errors
    /// What was not done, and why; the rest is.
    fn publish(&mut self, table: &mut Table) -> Result<(), String>;

    /// The table's timeouts changed (or may have).
    ///
    /// # Errors
    /// The plane refusing them.
    fn set_timeouts(&mut self, table: &Table) -> Result<(), String>;

    /// An ipvsadm command this plane answers itself (listings of what only
    /// it knows, its sync daemons) or refuses (what it cannot forward);
    /// `None` lets the controller's table take it.
    fn answer(&mut self, cmd: &AdmCommand) -> Option<Reply>;

    /// Whether the service is being forwarded.
    fn forwards(&self, key: &ServiceKey) -> bool;

    /// Every few seconds (the kernel plane looks for changes made behind
    /// the director's back).
    fn upkeep(&mut self, _table: &Table) {}

    /// Every second and before every answer: a plane that keeps the flows
    /// and counts itself (XDP) expires flows and brings the table's
    /// counts and counters up to date.
    fn refresh(&mut self, _table: &mut Table) {}

    /// The director stops: remove what the plane set up, or with `keep`
    /// leave it forwarding for the next director where the plane can.
    fn stop(&mut self, keep: bool);

    /// Stop accepting new connections, letting open ones finish (a drain
    /// before stopping); how many are open. Planes that do not hold
    /// connections themselves have none to drain.
    fn stop_accepting(&mut self) -> usize {
        0
    }

    /// Connections still open while draining.
    fn open_connections(&self) -> usize {
        0
    }

    /// The proxy plane's listeners and limits, on the proxy plane.
    fn proxy(&self) -> Option<&ProxyPlane> {
        None
    }

    /// Run the connection-sync daemons `want` (at most one of each role;
    /// none: stop them).
    ///
    /// # Errors
    /// What cannot run, and why.
    fn sync(&mut self, want: &[fulcrum_core::SyncDaemon]) -> Result<(), String> {
        if want.is_empty() {
            Ok(())
        } else {
            Err("connection sync needs a packet-level data plane".into())
        }
    }

    /// The key the sync daemons seal and check their messages with
    /// (`syncd_auth = 1`), or none; daemons running start again with it.
    fn set_sync_key(&mut self, _key: Option<Vec<u8>>) {}

    /// The status lines of the connection-sync daemons running.
    fn sync_status(&self) -> Vec<String> {
        Vec::new()
    }

    /// Counters of Fulcrum's own sync daemons, for `/metrics`.
    fn sync_metrics(&self) -> Vec<SyncMetric> {
        Vec::new()
    }

    /// The kernel plane, for what only it has (sync daemons, drift).
    fn kernel(&mut self) -> Option<&mut KernelPlane> {
        None
    }

    /// The kernel plane, read-only.
    fn kernel_ref(&self) -> Option<&KernelPlane> {
        None
    }
}

/// The proxy plane behind the seam: a listener per service.
#[derive(Debug)]
pub struct ProxyForwarding {
    plane: ProxyPlane,
    /// Services listened on, with their one-packet flag.
    served: HashMap<ServiceKey, bool>,
}

impl ProxyForwarding {
    /// Forward through `plane`.
    pub fn new(plane: ProxyPlane) -> ProxyForwarding {
        ProxyForwarding {
            plane,
            served: HashMap::new(),
        }
    }

    fn stop_serving(&mut self, key: &ServiceKey) {
        self.plane.remove_service(key);
        self.served.remove(key);
    }
}

/// Why the proxy plane refuses a service or real server, if it does.
fn proxy_refuses(cmd: &AdmCommand) -> Option<&'static str> {
    let key = match cmd {
        AdmCommand::AddService(a) | AdmCommand::EditService(a) => Some(a.key),
        _ => None,
    };
    match key {
        Some(ServiceKey::Fwmark { .. }) => {
            return Some(
                "fwmark services need the ipvs data plane (`dataplane = ipvs`); the proxy data plane sees no packet marks",
            );
        }
        Some(ServiceKey::Addr {
            proto: Protocol::Sctp,
            ..
        }) => return Some("SCTP services need the ipvs data plane (`dataplane = ipvs`)"),
        _ => {}
    }
    match cmd {
        AdmCommand::AddDest(_, d) | AdmCommand::EditDest(_, d) if d.fwd != Forwarding::Masq => {
            Some(
                "the proxy data plane forwards by NAT only: add -m (masquerading); direct routing (-g, ipvsadm's default) and tunnelling (-i) need the ipvs data plane (`dataplane = ipvs`)",
            )
        }
        _ => None,
    }
}

impl DataPlane for ProxyForwarding {
    fn kind(&self) -> &'static str {
        "proxy"
    }

    fn prepare(&mut self, desired: &[TableService]) -> Result<(), String> {
        // Listeners for services new to the plane (or whose one-packet mode
        // changes); undo them all if one fails.
        let mut started = Vec::new();
        for s in desired {
            let key = s.spec.key;
            match self.served.get(&key) {
                Some(op) if *op == s.spec.one_packet => continue,
                Some(_) => self.plane.remove_service(&key),
                None => {}
            }
            if let Err(e) = self.plane.add_service(key, s.spec.one_packet) {
                for k in started {
                    self.stop_serving(&k);
                }
                return Err(format!("virtual server `{}`: {e}", s.name));
            }
            self.served.insert(key, s.spec.one_packet);
            started.push(key);
        }
        Ok(())
    }

    /// Start listeners for services the table gained and stop those it
    /// lost; a service whose listener cannot be bound is taken out of the
    /// table.
    fn publish(&mut self, table: &mut Table) -> Result<(), String> {
        let want: HashMap<ServiceKey, bool> = table
            .services()
            .iter()
            .map(|s| (s.key, s.one_packet))
            .collect();
        let gone: Vec<ServiceKey> = self
            .served
            .keys()
            .filter(|k| want.get(k) != self.served.get(k))
            .copied()
            .collect();
        for k in gone {
            self.stop_serving(&k);
        }
        let mut err = Ok(());
        for (k, op) in want {
            if self.served.contains_key(&k) {
                continue;
            }
            match self.plane.add_service(k, op) {
                Ok(()) => {
                    self.served.insert(k, op);
                }
                Err(e) => {
                    let _ = table.delete_service(&k);
                    err = Err(e.to_string());
                }
            }
        }
        self.plane.publish_table(table);
        err
    }

    fn set_timeouts(&mut self, table: &Table) -> Result<(), String> {
        self.plane.set_timeouts(table.timeouts().triple());
        Ok(())
    }

    fn answer(&mut self, cmd: &AdmCommand) -> Option<Reply> {
        proxy_refuses(cmd).map(|why| Reply::failed(format!("{why}\n"), 255))
    }

    fn forwards(&self, key: &ServiceKey) -> bool {
        self.served.contains_key(key)
    }

    fn stop(&mut self, _keep: bool) {
        // Stop accepting; the plane's listeners go with it.
        let keys: Vec<ServiceKey> = self.served.keys().copied().collect();
        for k in keys {
            self.stop_serving(&k);
        }
    }

    fn stop_accepting(&mut self) -> usize {
        let keys: Vec<ServiceKey> = self.served.keys().copied().collect();
        for k in keys {
            self.stop_serving(&k);
        }
        self.plane.director_limit().open()
    }

    fn open_connections(&self) -> usize {
        self.plane.director_limit().open()
    }

    fn proxy(&self) -> Option<&ProxyPlane> {
        Some(&self.plane)
    }
}

impl DataPlane for KernelPlane {
    fn kind(&self) -> &'static str {
        "kernel IPVS"
    }

    /// FTP through NAT needs the kernel's helper before the service exists.
    fn prepare(&mut self, desired: &[TableService]) -> Result<(), String> {
        match crate::kernel::ftp_nat_service(desired) {
            Some(name) => crate::kernel::load_ftp_helper()
                .map_err(|e| format!("virtual server `{name}`: {e}")),
            None => Ok(()),
        }
    }

    fn publish(&mut self, table: &mut Table) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        match self.mirror(table) {
            Ok(0) => Ok(()),
            Ok(n) => {
                tracing::info!(
                    changes = n,
                    us = t0.elapsed().as_micros(),
                    "kernel IPVS table updated"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "kernel IPVS table not fully updated");
                Err(e)
            }
        }
    }

    fn set_timeouts(&mut self, table: &Table) -> Result<(), String> {
        let (t, f, u) = table.timeouts().triple();
        let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        KernelPlane::set_timeouts(self, secs(t), secs(f), secs(u))
    }

    fn answer(&mut self, cmd: &AdmCommand) -> Option<Reply> {
        if let AdmCommand::Zero(key) = cmd {
            // The controller's table zeroes its own counters after this.
            if let Err(e) = self.zero(key.as_ref()) {
                return Some(Reply::failed(format!("{e}\n"), 255));
            }
            return None;
        }
        KernelPlane::answer(self, cmd)
    }

    fn forwards(&self, _key: &ServiceKey) -> bool {
        true
    }

    fn upkeep(&mut self, table: &Table) {
        match self.drift(table) {
            None => {}
            Some(d) if d.is_empty() => {
                tracing::info!("the kernel's IPVS table is Fulcrum's again");
            }
            Some(d) => tracing::warn!(
                differences = d.len(),
                what = %d.join("; "),
                "the kernel's IPVS table was changed behind Fulcrum's back; the next change to the table (`fulcrum reload`) puts Fulcrum's back"
            ),
        }
    }

    fn stop(&mut self, keep: bool) {
        if keep {
            self.leave();
        } else {
            self.remove_all();
        }
    }

    fn kernel(&mut self) -> Option<&mut KernelPlane> {
        Some(self)
    }

    fn sync(&mut self, want: &[fulcrum_core::SyncDaemon]) -> Result<(), String> {
        self.set_sync(want)
    }

    fn sync_status(&self) -> Vec<String> {
        self.sync_running()
            .iter()
            .map(|d| {
                format!(
                    "connection sync: {} daemon on {} (syncid {})",
                    d.role.name(),
                    d.mcast_ifn,
                    d.syncid
                )
            })
            .collect()
    }

    fn kernel_ref(&self) -> Option<&KernelPlane> {
        Some(self)
    }
}
