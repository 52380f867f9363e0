//! The XDP data plane behind the seam: Fulcrum's own BPF program
//! (`fulcrum-xdp`) forwards in the driver, before the kernel allocates
//! anything. The controller's table is published into the program's maps
//! by difference; the program schedules and keeps the flows, the
//! connection counts and the counters, which flow back into the table
//! every second for listings, status, rates and metrics.
//!
//! `dataplane = xdp` is explicit (`auto` never takes it). The program is
//! attached to every interface lvs.cf names (the virtual servers'
//! `address = VIP eth0:1`, `nat_router = ADDR eth1:1`), natively, or in
//! the kernel's generic path where the driver refuses (with a warning).

use fulcrum_api::ipvsadm::{AdmCommand, ListTarget, Outcome, render_conns};
use fulcrum_config::{Config, TableService};
use fulcrum_core::{ServiceKey, Table};
use fulcrum_xdp::{Attached, XdpPlane, refuses_dest, refuses_service};

use crate::dataplane::DataPlane;

/// The XDP plane: the loaded program and the interfaces it runs on.
#[derive(Debug)]
pub struct XdpForwarding {
    plane: XdpPlane,
    interfaces: Vec<(String, Attached)>,
    /// When the flow table was last swept.
    swept: Option<std::time::Instant>,
    /// Fulcrum's connection-sync receiver (`syncd_role = backup`).
    sync: Option<crate::xdp_sync::SyncReceiver>,
    /// What its installs did, in all.
    installed: fulcrum_xdp::Installed,
    /// The receiver was started by `fulcrum adm --start-daemon`: the file
    /// (without `syncdaemon`) leaves it alone, as the kernel's are.
    sync_by_adm: bool,
}

/// The interfaces lvs.cf names for the director's addresses (aliases
/// stripped, each once).
pub fn interfaces(cfg: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in cfg.floating_addresses() {
        if let Some(d) = f.device
            && !out.contains(&d)
        {
            out.push(d);
        }
    }
    out
}

/// Turn IP forwarding on: the kernel forwards what the program hands it
/// (the first packets to a real server whose neighbour is not known yet),
/// and the FIB lookups the program makes refuse to route without it.
fn enable_forwarding(v6: bool) -> Result<(), String> {
    let mut paths = vec!["/proc/sys/net/ipv4/ip_forward"];
    if v6 {
        paths.push("/proc/sys/net/ipv6/conf/all/forwarding");
    }
    for p in paths {
        let on = std::fs::read_to_string(p).is_ok_and(|s| s.trim() == "1");
        if !on {
            std::fs::write(p, "1").map_err(|e| {
                format!("cannot turn on IP forwarding ({p}: {e}); the xdp data plane needs it")
            })?;
            tracing::info!(path = p, "IP forwarding turned on for the xdp data plane");
        }
    }
    Ok(())
}

impl XdpForwarding {
    /// Load the program and attach it to the configuration's interfaces.
    /// Runs before privileges are dropped.
    ///
    /// # Errors
    /// No program in this build (what to install), the kernel refusing it,
    /// no interface named, or one that cannot take the program.
    pub fn start(cfg: &Config) -> Result<XdpForwarding, String> {
        let names = interfaces(cfg);
        if names.is_empty() {
            return Err("the xdp data plane runs on the interfaces lvs.cf names: give the virtual servers' addresses their device (`address = 192.0.2.10 eth0:1`) and, for NAT, `nat_router = 10.0.0.254 eth1:1`".into());
        }
        let v6 = cfg
            .table()
            .iter()
            .any(|s| s.spec.key.family() == fulcrum_core::Family::V6);
        enable_forwarding(v6)?;
        let mut plane = XdpPlane::load(fulcrum_xdp::DEFAULT_FLOWS).map_err(|e| e.to_string())?;
        let mut interfaces = Vec::new();
        for n in names {
            let mode = plane
                .attach(&n)
                .map_err(|e| format!("the xdp data plane on {n}: {e}"))?;
            if mode == Attached::Generic {
                tracing::warn!(
                    interface = %n,
                    "the driver refused native XDP; the program runs in the kernel's generic path (slower)"
                );
            }
            interfaces.push((n, mode));
        }
        Ok(XdpForwarding {
            plane,
            interfaces,
            swept: None,
            sync: None,
            installed: fulcrum_xdp::Installed::default(),
            sync_by_adm: false,
        })
    }

    /// The interfaces and how the program runs on each, for people.
    pub fn attached(&self) -> String {
        self.interfaces
            .iter()
            .map(|(n, m)| {
                format!(
                    "{n} ({})",
                    match m {
                        Attached::Native => "native",
                        Attached::Generic => "generic",
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why the XDP plane refuses an ipvsadm command, if it does.
fn xdp_refuses(cmd: &AdmCommand) -> Option<String> {
    match cmd {
        AdmCommand::AddService(a) | AdmCommand::EditService(a) => refuses_service(&a.key),
        AdmCommand::AddDest(k, d) | AdmCommand::EditDest(k, d) => {
            refuses_dest(k, &d.addr, d.port, &d.fwd)
        }
        AdmCommand::StartDaemon(d) if d.role == fulcrum_core::SyncRole::Master => Some(
            "the xdp data plane's own sync daemon receives only for now: start a backup daemon, or use `dataplane = ipvs` for the kernel's master".into(),
        ),
        _ => None,
    }
}

impl DataPlane for XdpForwarding {
    fn kind(&self) -> &'static str {
        "xdp"
    }

    /// All or nothing: a service the program cannot forward refuses the
    /// whole configuration, naming it.
    fn prepare(&mut self, desired: &[TableService]) -> Result<(), String> {
        for s in desired {
            if let Some(why) = refuses_service(&s.spec.key) {
                return Err(format!("virtual server `{}`: {why}", s.name));
            }
            if s.dests.len() > fulcrum_xdp::MAX_SVC_DESTS {
                return Err(format!(
                    "virtual server `{}`: {} real servers; the xdp data plane holds at most {} per virtual server",
                    s.name,
                    s.dests.len(),
                    fulcrum_xdp::MAX_SVC_DESTS
                ));
            }
            for (name, d) in &s.dests {
                if let Some(why) = refuses_dest(&s.spec.key, &d.addr, d.port, &d.fwd) {
                    return Err(format!(
                        "virtual server `{}`, real server `{name}`: {why}",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn publish(&mut self, table: &mut Table) -> Result<(), String> {
        self.plane.publish(table).map_err(|e| {
            tracing::error!(error = %e, "XDP maps not fully updated");
            e.to_string()
        })
    }

    fn set_timeouts(&mut self, table: &Table) -> Result<(), String> {
        self.plane
            .set_timeouts(table.timeouts())
            .map_err(|e| e.to_string())
    }

    fn answer(&mut self, cmd: &AdmCommand) -> Option<Outcome> {
        if let Some(why) = xdp_refuses(cmd) {
            return Some(Outcome::err(format!("{why}\n"), 255));
        }
        match cmd {
            AdmCommand::StartDaemon(d) => {
                if self.sync.is_some() {
                    return Some(Outcome::err("Daemon has already run\n", 255));
                }
                Some(match self.sync(Some(d.clone())) {
                    Ok(()) => {
                        self.sync_by_adm = true;
                        Outcome::default()
                    }
                    Err(e) => Outcome::err(format!("{e}\n"), 255),
                })
            }
            AdmCommand::StopDaemon(role, _) => Some(
                if *role == fulcrum_core::SyncRole::Backup && self.sync.is_some() {
                    self.sync_by_adm = false;
                    let _ = self.sync(None);
                    Outcome::default()
                } else {
                    Outcome::err("No daemon is running\n", 255)
                },
            ),
            AdmCommand::List(l) if matches!(l.target, ListTarget::Daemon) => {
                // As the kernel lists its own: every default filled in.
                let running: Vec<fulcrum_core::SyncDaemon> = self
                    .sync
                    .iter()
                    .map(|s| {
                        let d = &s.daemon;
                        fulcrum_core::SyncDaemon {
                            sync_maxlen: if d.sync_maxlen == 0 {
                                fulcrum_sync::DEFAULT_MAXLEN as u16
                            } else {
                                d.sync_maxlen
                            },
                            mcast_group: Some(fulcrum_sync::receive::group_or_default(
                                d.mcast_group,
                            )),
                            mcast_port: if d.mcast_port == 0 {
                                fulcrum_sync::PORT
                            } else {
                                d.mcast_port
                            },
                            mcast_ttl: d.mcast_ttl.max(1),
                            ..d.clone()
                        }
                    })
                    .collect();
                Some(Outcome {
                    stdout: fulcrum_api::ipvsadm::render_daemons(&running),
                    ..Default::default()
                })
            }
            AdmCommand::Zero(key) => {
                // The table zeroes its own copies after this.
                if let Err(e) = self.plane.zero(key.as_ref()) {
                    return Some(Outcome::err(format!("{e}\n"), 255));
                }
                None
            }
            AdmCommand::List(l) if matches!(l.target, ListTarget::Connections) => {
                Some(match self.plane.connections() {
                    Ok(c) => Outcome {
                        stdout: render_conns(&c, &l.format, &crate::resolver::SystemResolver),
                        ..Default::default()
                    },
                    Err(e) => Outcome::err(format!("{e}\n"), 255),
                })
            }
            _ => None,
        }
    }

    fn forwards(&self, _key: &ServiceKey) -> bool {
        true
    }

    /// Every second: expired flows go, and the table learns the counts.
    /// A request in between only learns the counts (the sweep walks the
    /// whole flow table, once a second is enough).
    fn sync(&mut self, want: Option<fulcrum_core::SyncDaemon>) -> Result<(), String> {
        if self.sync.as_ref().map(|s| &s.daemon) == want.as_ref()
            || (want.is_none() && self.sync_by_adm)
        {
            return Ok(());
        }
        self.sync_by_adm = false;
        if let Some(old) = self.sync.take() {
            tracing::info!(iface = %old.daemon.mcast_ifn, "connection sync: receiver stopped");
        }
        match want {
            None => Ok(()),
            Some(d) if d.role == fulcrum_core::SyncRole::Backup => {
                self.sync = Some(crate::xdp_sync::SyncReceiver::start(d)?);
                Ok(())
            }
            Some(_) => Err(
                "the xdp data plane's own sync daemon receives only for now (`syncd_role = backup`); this director sends nothing".into(),
            ),
        }
    }

    fn sync_status(&self) -> Option<String> {
        let s = self.sync.as_ref()?;
        let c = s.counters.read();
        let i = &self.installed;
        Some(format!(
            "connection sync: backup (Fulcrum's receiver) on {} (syncid {}): {} messages, {} entries ({} new flows, {} updated, {} templates, {} of no service or real server here), {} dropped, {} malformed",
            s.daemon.mcast_ifn,
            s.daemon.syncid,
            c.messages,
            c.entries,
            i.added,
            i.updated,
            i.templates,
            i.unknown,
            c.dropped,
            c.malformed,
        ))
    }

    fn sync_metrics(&self) -> Vec<(&'static str, &'static str, u64)> {
        let Some(s) = self.sync.as_ref() else {
            return Vec::new();
        };
        let c = s.counters.read();
        let i = &self.installed;
        vec![
            (
                "fulcrum_sync_messages_received_total",
                "Connection-sync messages received.",
                c.messages,
            ),
            (
                "fulcrum_sync_entries_received_total",
                "Connection-sync entries received and handed to the data plane.",
                c.entries,
            ),
            (
                "fulcrum_sync_flows_added_total",
                "Synced connections new to the flow table.",
                i.added,
            ),
            (
                "fulcrum_sync_flows_updated_total",
                "Synced connections already in the flow table, brought to the message.",
                i.updated,
            ),
            (
                "fulcrum_sync_templates_total",
                "Synced persistence templates created or refreshed.",
                i.templates,
            ),
            (
                "fulcrum_sync_entries_unknown_total",
                "Synced entries of a service or real server this director does not have.",
                i.unknown,
            ),
            (
                "fulcrum_sync_entries_dropped_total",
                "Synced entries dropped (another sync id, unusable, or over the queue's bound).",
                c.dropped,
            ),
            (
                "fulcrum_sync_malformed_total",
                "Datagrams on the sync port that were no sync message.",
                c.malformed,
            ),
        ]
    }

    fn refresh(&mut self, table: &mut Table) {
        if let Some(s) = self.sync.as_mut() {
            let flows = s.take();
            if !flows.is_empty() {
                match self.plane.install(&flows) {
                    Ok(d) => self.installed += d,
                    Err(e) => tracing::warn!(error = %e, "cannot install the synced connections"),
                }
            }
        }
        let now = std::time::Instant::now();
        let due = self
            .swept
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_millis(900));
        if due {
            self.swept = Some(now);
            if let Err(e) = self.plane.sweep() {
                tracing::warn!(error = %e, "cannot sweep the XDP flow table");
            }
            match self.plane.resolve_next_hops() {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    real_servers = n,
                    "packets for direct routing or tunnelling waited for a next hop; the kernel resolves it"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot read the XDP counters"),
            }
        }
        if let Err(e) = self.plane.observe(table) {
            tracing::warn!(error = %e, "cannot read the XDP counters");
        }
    }

    /// Dropping the program detaches it; with `keep` it would have to
    /// outlive the process (pinned), which this plane does not do yet.
    fn stop(&mut self, keep: bool) {
        if keep {
            tracing::warn!(
                "the xdp data plane stops forwarding with the director (`--keep-forwarding` is for the ipvs plane)"
            );
        }
    }
}
