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

use fulcrum_api::ipvsadm::{AdmCommand, ListTarget, Reply};
use fulcrum_config::{Config, TableService};
use fulcrum_core::{ServiceKey, Table};
use fulcrum_xdp::{Attached, XdpPlane, refuses_dest, refuses_service};

use crate::dataplane::{DataPlane, SyncMetric};
use crate::xdp_sync::{SyncReceiver, SyncSender};
use fulcrum_core::{SyncDaemon, SyncRole};

/// The XDP plane: the loaded program and the interfaces it runs on.
#[derive(Debug)]
pub struct XdpForwarding {
    plane: XdpPlane,
    interfaces: Vec<(String, Attached)>,
    /// When the flow table was last swept.
    swept: Option<std::time::Instant>,
    /// Fulcrum's connection-sync receiver (a backup).
    receiver: Option<SyncReceiver>,
    /// Fulcrum's connection-sync sender (a master).
    sender: Option<SyncSender>,
    /// The program's sync reports while no sender reads them.
    reports: Option<fulcrum_xdp::SyncReports>,
    /// What the receiver's installs did, in all.
    installed: fulcrum_xdp::Installed,
    /// Daemons started by `fulcrum adm --start-daemon`: the file (without
    /// `syncdaemon`) leaves them alone, as the kernel's are.
    by_adm: Vec<SyncRole>,
    /// `auth_key_file`'s key with `syncd_auth = 1`: the daemons seal and
    /// check their messages with it.
    sync_key: Option<Vec<u8>>,
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
            receiver: None,
            sender: None,
            reports: None,
            installed: fulcrum_xdp::Installed::default(),
            by_adm: Vec::new(),
            sync_key: None,
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

impl XdpForwarding {
    /// The daemon of `role` running.
    fn running(&self, role: SyncRole) -> Option<&SyncDaemon> {
        match role {
            SyncRole::Master => self.sender.as_ref().map(|s| &s.daemon),
            SyncRole::Backup => self.receiver.as_ref().map(|s| &s.daemon),
        }
    }

    /// The daemons running.
    fn daemons(&self) -> Vec<SyncDaemon> {
        [SyncRole::Master, SyncRole::Backup]
            .into_iter()
            .filter_map(|r| self.running(r).cloned())
            .collect()
    }

    /// Install what the receiver brought since the last time.
    fn install_received(&mut self) {
        if let Some(s) = self.receiver.as_mut() {
            let flows = s.take();
            if !flows.is_empty() {
                match self.plane.install(&flows) {
                    Ok(d) => self.installed += d,
                    Err(e) => tracing::warn!(error = %e, "cannot install the synced connections"),
                }
            }
        }
    }

    /// Run exactly the daemons `want` (one of each role at most): a role
    /// whose settings change restarts; a role that starts starts before one
    /// that stops, so a backup turning master sends at once, having
    /// installed what it received.
    fn sync_roles(&mut self, want: &[SyncDaemon]) -> Result<(), String> {
        let wanted = |role| want.iter().find(|d| d.role == role);
        let mut result = Ok(());
        if self.running(SyncRole::Master) != wanted(SyncRole::Master) {
            self.stop_sender();
            if let Some(d) = wanted(SyncRole::Master)
                && let Err(e) = self.start_sender(d.clone())
            {
                result = Err(e);
            }
        }
        if self.running(SyncRole::Backup) != wanted(SyncRole::Backup) {
            self.install_received();
            if let Some(old) = self.receiver.take() {
                tracing::info!(iface = %old.daemon.mcast_ifn, "connection sync: receiver stopped");
            }
            if let Some(d) = wanted(SyncRole::Backup) {
                match SyncReceiver::start(d.clone(), self.sync_key.as_deref()) {
                    Ok(r) => self.receiver = Some(r),
                    Err(e) => result = Err(e),
                }
            }
        }
        result
    }

    fn start_sender(&mut self, d: SyncDaemon) -> Result<(), String> {
        let reports = match self.reports.take() {
            Some(r) => r,
            None => self.plane.take_sync_reports().map_err(|e| e.to_string())?,
        };
        match SyncSender::start(d, reports, self.plane.sync_view(), self.sync_key.as_deref()) {
            Ok(s) => {
                self.sender = Some(s);
                self.plane.set_sync_sending(true).map_err(|e| e.to_string())
            }
            Err(failed) => {
                let (e, back) = *failed;
                self.reports = back;
                Err(e)
            }
        }
    }

    fn stop_sender(&mut self) {
        let Some(s) = self.sender.take() else {
            return;
        };
        if let Err(e) = self.plane.set_sync_sending(false) {
            tracing::warn!(error = %e, "cannot stop the program's sync reports");
        }
        let iface = s.daemon.mcast_ifn.clone();
        self.reports = s.stop();
        tracing::info!(%iface, "connection sync: sender stopped");
    }
}

/// Have the kernel resolve the neighbours of next hops the program met
/// without one (a client's gateway, a real server): in the background, on
/// the controller's runtime.
fn resolve_neighbours(hops: Vec<(u32, std::net::IpAddr)>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let nl = match fulcrum_net::addr::AddressManager::new() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the kernel to resolve next hops");
                return;
            }
        };
        for (index, addr) in hops {
            match nl.resolve_neighbour(index, addr).await {
                Ok(()) => {
                    tracing::debug!(%addr, index, "next hop being resolved for the xdp data plane")
                }
                Err(e) => {
                    tracing::warn!(%addr, index, error = %e, "cannot have the next hop resolved")
                }
            }
        }
    });
}

/// Why the XDP plane refuses an ipvsadm command, if it does.
fn xdp_refuses(cmd: &AdmCommand) -> Option<String> {
    match cmd {
        AdmCommand::AddService(a) | AdmCommand::EditService(a) => refuses_service(&a.key),
        AdmCommand::AddDest(k, d) | AdmCommand::EditDest(k, d) => {
            refuses_dest(k, &d.addr, d.port, &d.fwd)
        }
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
        let r = self.plane.publish(table).map_err(|e| {
            tracing::error!(error = %e, "XDP maps not fully updated");
            e.to_string()
        });
        if let Some(s) = &self.sender {
            s.set_view(self.plane.sync_view());
        }
        r
    }

    fn set_timeouts(&mut self, table: &Table) -> Result<(), String> {
        self.plane
            .set_timeouts(table.timeouts())
            .map_err(|e| e.to_string())
    }

    fn answer(&mut self, cmd: &AdmCommand) -> Option<Reply> {
        if let Some(why) = xdp_refuses(cmd) {
            return Some(Reply::failed(format!("{why}\n"), 255));
        }
        match cmd {
            AdmCommand::StartDaemon(d) => {
                if self.running(d.role).is_some() {
                    return Some(Reply::failed("Daemon has already run\n", 255));
                }
                let mut want: Vec<SyncDaemon> = self.daemons();
                want.push(d.clone());
                Some(match self.sync_roles(&want) {
                    Ok(()) => {
                        self.by_adm.push(d.role);
                        Reply::Done
                    }
                    Err(e) => Reply::failed(format!("{e}\n"), 255),
                })
            }
            AdmCommand::StopDaemon(role, _) => Some(if self.running(*role).is_some() {
                self.by_adm.retain(|r| r != role);
                let want: Vec<SyncDaemon> = self
                    .daemons()
                    .into_iter()
                    .filter(|d| d.role != *role)
                    .collect();
                let _ = self.sync_roles(&want);
                Reply::Done
            } else {
                Reply::failed("No daemon is running\n", 255)
            }),
            AdmCommand::List(l) if matches!(l.target, ListTarget::Daemon) => {
                // As the kernel lists its own: every default filled in,
                // the master's size as it sends.
                let running: Vec<SyncDaemon> = self
                    .daemons()
                    .into_iter()
                    .map(|d| SyncDaemon {
                        sync_maxlen: match (&self.sender, d.role) {
                            (Some(s), SyncRole::Master) if d.sync_maxlen == 0 => s.maxlen as u16,
                            _ if d.sync_maxlen == 0 => fulcrum_sync::DEFAULT_MAXLEN as u16,
                            _ => d.sync_maxlen,
                        },
                        mcast_group: Some(fulcrum_sync::receive::group_or_default(d.mcast_group)),
                        mcast_port: fulcrum_sync::port_or_default(d.mcast_port),
                        mcast_ttl: d.mcast_ttl.max(1),
                        ..d
                    })
                    .collect();
                Some(Reply::Daemons { daemons: running })
            }
            AdmCommand::Zero(key) => {
                // The table zeroes its own copies after this.
                if let Err(e) = self.plane.zero(key.as_ref()) {
                    return Some(Reply::failed(format!("{e}\n"), 255));
                }
                None
            }
            AdmCommand::List(l) if matches!(l.target, ListTarget::Connections) => {
                Some(match self.plane.connections() {
                    Ok(conns) => Reply::Connections { conns },
                    Err(e) => Reply::failed(format!("{e}\n"), 255),
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
    fn sync(&mut self, want: &[SyncDaemon]) -> Result<(), String> {
        // Daemons `fulcrum adm` started stay while the file asks for none
        // of their role.
        let file: Vec<SyncRole> = want.iter().map(|d| d.role).collect();
        let running: Vec<SyncRole> = self.daemons().iter().map(|d| d.role).collect();
        self.by_adm
            .retain(|r| !file.contains(r) && running.contains(r));
        let mut want = want.to_vec();
        for role in &self.by_adm {
            if let Some(d) = self.running(*role) {
                want.push(d.clone());
            }
        }
        self.sync_roles(&want)
    }

    fn set_sync_key(&mut self, key: Option<Vec<u8>>) {
        if self.sync_key == key {
            return;
        }
        // Every daemon running starts again, sealing (or not) as now asked.
        let running = self.daemons();
        self.stop_sender();
        self.install_received();
        self.receiver = None;
        self.sync_key = key;
        if let Err(e) = self.sync_roles(&running) {
            tracing::error!(error = %e, "connection sync");
        }
    }

    fn sync_status(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.sender {
            let c = s.counters.read();
            let (_, lost) = self.plane.sync_report_counts().unwrap_or((0, 0));
            out.push(format!(
                "connection sync: master (Fulcrum's sender) on {} (syncid {}): {} messages, {} entries sent, {} lost (reports over the ring's room), {} of real servers gone, {} not sent, lag {:.1} ms",
                s.daemon.mcast_ifn,
                s.daemon.syncid,
                c.messages,
                c.entries,
                lost,
                c.unknown,
                c.errors,
                c.lag_us as f64 / 1000.0,
            ));
        }
        if let Some(s) = &self.receiver {
            let c = s.counters.read();
            let i = &self.installed;
            out.push(format!(
                "connection sync: backup (Fulcrum's receiver) on {} (syncid {}): {} messages, {} entries ({} new flows, {} updated, {} templates, {} of no service or real server here), {} dropped, {} malformed{}",
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
                if self.sync_key.is_some() {
                    format!(
                        "; sealed: {} unauthenticated, {} replayed refused",
                        c.unauthenticated, c.replayed
                    )
                } else {
                    String::new()
                },
            ));
        }
        out
    }

    fn sync_metrics(&self) -> Vec<SyncMetric> {
        let mut out = Vec::new();
        if let Some(s) = &self.sender {
            let c = s.counters.read();
            let (made, lost) = self.plane.sync_report_counts().unwrap_or((0, 0));
            out.extend([
                SyncMetric::counter(
                    "fulcrum_sync_messages_sent_total",
                    "Connection-sync messages sent.",
                    c.messages,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_entries_sent_total",
                    "Connection-sync entries sent (connections and templates).",
                    c.entries,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_reports_total",
                    "Flows the data plane reported for sync.",
                    made,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_reports_lost_total",
                    "Flows not reported for sync: the report ring was full.",
                    lost,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_reports_unknown_total",
                    "Reports of a real server or service no longer published.",
                    c.unknown,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_send_errors_total",
                    "Connection-sync messages the kernel did not send.",
                    c.errors,
                ),
                SyncMetric {
                    name: "fulcrum_sync_send_lag_seconds",
                    kind: "gauge",
                    help: "Age of the oldest report in the last batch sent.",
                    value: c.lag_us as f64 / 1e6,
                },
            ]);
        }
        if let Some(s) = &self.receiver {
            let c = s.counters.read();
            let i = &self.installed;
            out.extend([
                SyncMetric::counter(
                    "fulcrum_sync_messages_received_total",
                    "Connection-sync messages received.",
                    c.messages,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_entries_received_total",
                    "Connection-sync entries received and handed to the data plane.",
                    c.entries,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_flows_added_total",
                    "Synced connections new to the flow table.",
                    i.added,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_flows_updated_total",
                    "Synced connections already in the flow table, brought to the message.",
                    i.updated,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_templates_total",
                    "Synced persistence templates created or refreshed.",
                    i.templates,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_entries_unknown_total",
                    "Synced entries of a service or real server this director does not have.",
                    i.unknown,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_entries_dropped_total",
                    "Synced entries dropped (another sync id, unusable, or over the queue's bound).",
                    c.dropped,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_malformed_total",
                    "Datagrams on the sync port that were no sync message.",
                    c.malformed,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_unauthenticated_total",
                    "Sync messages refused with syncd_auth: not sealed with this director's key.",
                    c.unauthenticated,
                ),
                SyncMetric::counter(
                    "fulcrum_sync_replayed_total",
                    "Sealed sync messages refused as replays (seen before, or too old).",
                    c.replayed,
                ),
            ]);
        }
        out
    }

    fn refresh(&mut self, table: &mut Table) {
        self.install_received();
        let now = std::time::Instant::now();
        let due = self
            .swept
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_millis(900));
        if due {
            self.swept = Some(now);
            if let Err(e) = self.plane.sweep() {
                tracing::warn!(error = %e, "cannot sweep the XDP flow table");
            }
            match self.plane.take_unresolved() {
                Ok(hops) if !hops.is_empty() => resolve_neighbours(hops),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the XDP program's unresolved next hops")
                }
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
