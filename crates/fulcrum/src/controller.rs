//! The controller: the one owner of the IPVS table. The data plane asks it
//! to schedule connections and reports what happens to them; the control
//! socket sends it commands; a reload sends it a new configuration. It never
//! awaits while holding the table: every message is handled to completion.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_api::control::{Request, Response};
use fulcrum_api::ipvsadm::{self, AdmCommand};
use fulcrum_api::state::{
    Connections, DirectorState, Failover, Health, PeerView, RealState, Sample, ServerAction,
    VirtualState,
};
use fulcrum_config::{Config, Dataplane, TableService};
use fulcrum_core::state::{Direction, TcpFlags};
use fulcrum_core::{DestSpec, Protocol, Service, ServiceKey, ServiceSpec, Table};
use fulcrum_proxy::{DestOptions, PlaneEvent, ProxyPlane, ProxyProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::addresses::AddrMsg;
use crate::dataplane::DataPlane;
use fulcrum_ha::runtime::{HaSettings, HaStatus};
use fulcrum_health::nanny::{Admin, HealthResult, Monitor, TableOp};

use fulcrum_api::control::ControlMsg;

/// Connections expiring in one sweep past which the heap's free memory is
/// handed back to the kernel.
const BIG_SWEEP: usize = 4096;

#[derive(Debug, Default)]
struct NoDest {
    total: u64,
    since_log: u64,
    last_log: Option<Instant>,
}

/// A configuration applied: what changed, and what the data plane refused
/// of it (the kernel plane tries that again at the next change).
#[derive(Debug)]
pub struct Applied {
    /// For people: services added, removed, changed.
    pub summary: String,
    /// What the plane refused, and why.
    pub refused: Option<String>,
}

/// The failover task as the controller sees it.
struct FailoverLink {
    status: tokio::sync::watch::Receiver<HaStatus>,
    settings_tx: mpsc::UnboundedSender<HaSettings>,
    /// The settings in force (what a reload is compared with).
    now: HaSettings,
}

/// The director's state.
pub struct Controller {
    table: Table,
    /// The data plane the table is published to.
    plane: Box<dyn DataPlane>,
    names: HashMap<ServiceKey, String>,
    /// The real servers' names in lvs.cf, by service, address and port.
    dest_names: HashMap<(ServiceKey, std::net::IpAddr, u16), String>,
    config_path: Option<PathBuf>,
    origin: String,
    serial: Option<u64>,
    started: Instant,
    nodest: HashMap<ServiceKey, NoDest>,
    unreachable: u64,
    addresses: Option<mpsc::UnboundedSender<AddrMsg>>,
    /// The failover task, when `backup_active = 1`.
    failover: Option<FailoverLink>,
    /// Plane options of real servers, from the configuration.
    dest_options: HashMap<(ServiceKey, std::net::IpAddr, u16), DestOptions>,
    /// The health checks (nanny).
    monitor: Monitor,
    health_tx: mpsc::Sender<HealthResult>,
    health_rx: Option<mpsc::Receiver<HealthResult>>,
    /// What the director runs with (uid, capabilities), for status.
    pub privileges: String,
    /// The `user` it became at start: a reload cannot change it.
    pub user: Option<String>,
    /// Why this plane runs (`dataplane = …`, or what `auto` found).
    pub plane_why: String,
    /// The kernel sync daemon the file asks for (`syncdaemon = 1`).
    syncd: Option<fulcrum_config::SyncdSettings>,
    /// Whether the director runs (sync daemons start then, once the
    /// failover election has a state to follow).
    running: bool,
    /// On exit, leave the kernel's table and sync daemon in place for the
    /// next director (`fulcrum run --keep-forwarding`).
    pub keep_forwarding: bool,
    /// Each service's rates over the last [`HISTORY`] samples.
    history: HashMap<ServiceKey, std::collections::VecDeque<Sample>>,
    /// The console's settings the director started with (a reload cannot
    /// change them).
    console: Option<ConsoleKeys>,
    /// How long open connections may finish at a stop (`drain_timeout`).
    drain: Duration,
    /// Real servers whose replies the kernel delivers to this host's
    /// transparent connections, as last asked; one change at a time.
    replies: (Vec<SocketAddr>, Arc<tokio::sync::Mutex<()>>),
    /// Where `fulcrum restart` goes: the director's main task, which owns
    /// the other listeners.
    pub restart: Option<mpsc::Sender<RestartMsg>>,
    handed_over: Arc<std::sync::atomic::AtomicBool>,
}

/// `drain_timeout`'s default.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// `console`, `console_users`, `console_tls_cert`, `console_tls_key`.
type ConsoleKeys = (
    Option<fulcrum_config::HostPort>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn console_keys(cfg: &Config) -> ConsoleKeys {
    let g = &cfg.global;
    (
        g.console,
        g.console_users.clone(),
        g.console_tls_cert.clone(),
        g.console_tls_key.clone(),
    )
}

/// Rates kept per service for the console's charts: ten minutes at one
/// sample every [`SAMPLE_EVERY`].
pub const HISTORY: usize = 120;
/// How often the rates are sampled for the charts.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("services", &self.table.services().len())
            .finish()
    }
}

fn differs(svc: &Service, spec: &ServiceSpec) -> bool {
    svc.scheduler.kind() != spec.scheduler
        || svc.flags != spec.flags
        || svc.persistent != spec.persistent
        || svc.netmask != spec.netmask
        || svc.one_packet != spec.one_packet
        || svc.pe_name != spec.pe_name
}

impl Controller {
    /// A controller with an empty table, serving through `plane`. `origin`
    /// says where a configuration without a file came from (for status).
    pub fn new(
        plane: Box<dyn DataPlane>,
        config_path: Option<PathBuf>,
        origin: &str,
    ) -> Controller {
        let (health_tx, health_rx) = mpsc::channel(4096);
        // One clock with the plane's workers, which schedule from snapshots.
        let started = plane.proxy().map_or_else(Instant::now, ProxyPlane::epoch);
        Controller {
            table: Table::new(),
            plane,
            names: HashMap::new(),
            dest_names: HashMap::new(),
            config_path,
            origin: origin.to_string(),
            serial: None,
            started,
            nodest: HashMap::new(),
            unreachable: 0,
            addresses: None,
            failover: None,
            dest_options: HashMap::new(),
            monitor: Monitor::default(),
            health_tx,
            health_rx: Some(health_rx),
            privileges: String::new(),
            user: None,
            plane_why: String::new(),
            syncd: None,
            running: false,
            keep_forwarding: false,
            history: HashMap::new(),
            console: None,
            drain: DEFAULT_DRAIN,
            replies: Default::default(),
            restart: None,
            handed_over: Default::default(),
        }
    }

    /// Have the kernel deliver the replies of `transparent` virtual servers'
    /// real servers to this host (proxy plane only; see
    /// `fulcrum_net::transparent`).
    fn route_replies(&mut self, dests: &[(ServiceKey, std::net::IpAddr, u16)]) {
        if self.plane.proxy().is_none() {
            return;
        }
        let mut want: Vec<SocketAddr> = dests
            .iter()
            .map(|(_, a, p)| SocketAddr::new(*a, *p))
            .collect();
        want.sort();
        want.dedup();
        if want == self.replies.0 {
            return;
        }
        self.replies.0 = want.clone();
        let one = self.replies.1.clone();
        tokio::spawn(async move {
            let _one = one.lock().await;
            match fulcrum_net::transparent::route_replies(&want).await {
                Ok(()) if !want.is_empty() => tracing::info!(
                    real_servers = want.len(),
                    table = fulcrum_net::transparent::TABLE,
                    "replies to transparent connections are delivered to this host"
                ),
                Ok(()) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "cannot route the real servers' replies to transparent connections, which will fail: Fulcrum needs CAP_NET_ADMIN for `transparent = 1`"
                ),
            }
        });
    }

    /// `fulcrum restart`: pass the proxy plane's listening sockets to the
    /// director's main task, which starts the successor and answers.
    fn restart(&mut self, reply: oneshot::Sender<Response>) {
        let refuse = |reply: oneshot::Sender<Response>, why: String| {
            let _ = reply.send(Response {
                stderr: format!("{why}\n"),
                exit_code: 1,
                ..Default::default()
            });
        };
        let Some(p) = self.plane.proxy() else {
            return refuse(
                reply,
                format!(
                    "fulcrum restart hands over the proxy plane's sockets; on the {} plane the kernel forwards across a restart: stop this director with --keep-forwarding given at its start, and start the new one",
                    self.plane.kind()
                ),
            );
        };
        let sockets = match p.listening_sockets() {
            Ok(s) => s
                .into_iter()
                .map(|(k, fd)| (crate::restart::Slot::Service(k), fd))
                .collect(),
            Err(e) => return refuse(reply, format!("cannot copy the listening sockets: {e}")),
        };
        match &self.restart {
            Some(tx) => {
                let msg = RestartMsg {
                    sockets,
                    reply,
                    handed_over: self.handed_over.clone(),
                };
                if let Err(e) = tx.try_send(msg) {
                    let (mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) =
                        e;
                    refuse(m.reply, "a restart is under way already".into());
                }
            }
            None => refuse(reply, "this director cannot restart itself".into()),
        }
    }

    /// Close the inherited sockets no virtual server claimed (after the
    /// configuration is applied); how many, on the proxy plane.
    pub fn drop_unclaimed_sockets(&self) -> Option<usize> {
        self.plane.proxy().map(ProxyPlane::drop_unclaimed)
    }

    /// Let the plane's workers see the table's connection counts.
    fn store_counts(&self) {
        if let Some(p) = self.plane.proxy() {
            p.store_counts(&self.table);
        }
    }

    /// Publish the table to the data plane.
    fn publish(&mut self) -> Result<(), String> {
        self.plane.publish(&mut self.table)
    }

    /// Run the kernel sync daemon the file asks for, in the role the
    /// failover election gives (`syncd_role = auto`: the active director
    /// sends, the others receive).
    fn follow_sync(&mut self) {
        if !self.running {
            return;
        }
        let want: Vec<fulcrum_core::SyncDaemon> = match self.syncd.as_ref() {
            None => Vec::new(),
            Some(s) => {
                use fulcrum_core::SyncRole;
                let roles: &[SyncRole] = match s.role {
                    fulcrum_config::SyncdRole::Master => &[SyncRole::Master],
                    fulcrum_config::SyncdRole::Backup => &[SyncRole::Backup],
                    fulcrum_config::SyncdRole::Both => &[SyncRole::Master, SyncRole::Backup],
                    fulcrum_config::SyncdRole::Auto => match &self.failover {
                        Some(f) if f.status.borrow().state != "MASTER" => &[SyncRole::Backup],
                        _ => &[SyncRole::Master],
                    },
                };
                roles
                    .iter()
                    .map(|r| crate::kernel::sync_daemon_for(s, *r))
                    .collect()
            }
        };
        if let Err(e) = self.plane.sync(&want) {
            tracing::error!(error = %e, "connection sync");
        }
    }

    /// ` (NAME)` of a real server lvs.cf names, for status lines; empty for
    /// one added by `fulcrum adm`.
    fn dest_name(&self, key: &ServiceKey, addr: std::net::IpAddr, port: u16) -> String {
        self.dest_names
            .get(&(*key, addr, port))
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    }

    /// Keep the floating addresses in step with every applied configuration.
    pub fn follow_addresses(&mut self, tx: mpsc::UnboundedSender<AddrMsg>) {
        self.addresses = Some(tx);
    }

    /// Show failover's state in status and metrics, and send it new
    /// settings on reload.
    pub fn follow_failover(
        &mut self,
        status: tokio::sync::watch::Receiver<HaStatus>,
        settings_tx: mpsc::UnboundedSender<HaSettings>,
        now: HaSettings,
    ) {
        self.failover = Some(FailoverLink {
            status,
            settings_tx,
            now,
        });
    }

    /// The failover settings a reload would bring, checked against the
    /// running ones (see [`HaSettings::needs_restart`]).
    fn failover_settings(&self, cfg: &Config) -> Result<Option<HaSettings>, String> {
        let new = HaSettings::from_config(cfg)?;
        match (&self.failover, &new) {
            (None, None) => Ok(None),
            (Some(_), None) => Err("the new file turns failover off (`backup_active`); that needs a restart of the director".into()),
            (None, Some(_)) => Err("the new file turns failover on (`backup_active = 1`); that needs a restart of the director".into()),
            (Some(f), Some(n)) => match f.now.needs_restart(n) {
                Some(why) => Err(why),
                None => Ok(new),
            },
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Make the table what `cfg` describes, changing only what differs:
    /// connections, counters and untouched services survive. Listeners for
    /// new services are bound first, so a failure changes nothing.
    ///
    /// # Errors
    /// A message naming what could not be applied.
    pub fn apply_config(&mut self, cfg: &Config) -> Result<Applied, String> {
        if self.console.is_none() {
            self.console = Some(console_keys(cfg));
        }
        let on_kernel = self.plane.kernel_ref().is_some();
        let on_xdp = self.plane.kind() == "xdp";
        let on_proxy = !on_kernel && !on_xdp;
        let changes = match cfg.global.effective_dataplane() {
            Dataplane::Xdp => !on_xdp,
            Dataplane::Ipvs => !on_kernel,
            Dataplane::Proxy => !on_proxy,
            Dataplane::Auto => on_xdp,
        };
        if changes {
            return Err(
                "the new file changes `dataplane`; that needs a restart of the director".into(),
            );
        }
        if !on_proxy
            && (cfg.global.max_connections.is_some()
                || cfg.virtuals.iter().any(|v| v.max_connections.is_some()))
        {
            tracing::warn!(
                "`max_connections` limits the proxy plane only; on the kernel IPVS and XDP planes use the real servers' `uthreshold`"
            );
        }
        if on_proxy && let Some(what) = cfg.kernel_only() {
            return Err(format!(
                "{what}, which only the kernel's IPVS forwards; this director runs the proxy data plane ({})",
                self.plane_why
            ));
        }
        // The descriptor budget first: a limit the process cannot honour
        // changes nothing.
        let max_connections = crate::limits::director_max(cfg.global.max_connections)?;
        let checks = cfg.checks();
        let sorry = cfg.sorry_servers();
        // A check that cannot be built fails the whole apply, before any
        // change.
        Monitor::validate(&checks)?;
        let desired: Vec<TableService> = cfg.table();
        let want: HashMap<ServiceKey, &TableService> =
            desired.iter().map(|s| (s.spec.key, s)).collect();

        // The sync daemons' key, read before anything changes.
        let sync_key = match cfg.global.syncd() {
            Some(s) if s.auth => Some(fulcrum_ha::runtime::read_key(
                cfg.global.auth_key_file.as_deref().unwrap_or_default(),
            )?),
            _ => None,
        };

        // 1. The plane gets ready (the proxy binds new listeners); if it
        // cannot, nothing changes.
        self.plane.prepare(&desired)?;

        // 2. The checks: unchanged ones keep their state.
        self.monitor.set_checks(checks, sorry, self.now())?;

        // 3. The table.
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        let current: Vec<ServiceKey> = self.table.services().iter().map(|s| s.key).collect();
        for key in current {
            if !want.contains_key(&key) {
                let _ = self.table.delete_service(&key);
                removed += 1;
            }
        }
        for s in &desired {
            let key = s.spec.key;
            match self.table.service(&key) {
                None => {
                    self.table
                        .add_service(s.spec.clone())
                        .map_err(|e| format!("virtual server `{}`: {e}", s.name))?;
                    added += 1;
                }
                Some(svc) if differs(svc, &s.spec) => {
                    self.table
                        .edit_service(s.spec.clone())
                        .map_err(|e| format!("virtual server `{}`: {e}", s.name))?;
                    changed += 1;
                }
                Some(_) => {}
            }
            self.sync_dests(s)?;
        }
        let g = &cfg.global;
        let secs = |v: Option<u32>| Duration::from_secs(u64::from(v.unwrap_or(0)));
        self.table.set_timeouts(
            secs(g.tcp_timeout),
            secs(g.tcpfin_timeout),
            secs(g.udp_timeout),
        );
        self.plane.set_timeouts(&self.table)?;
        // The file is applied; what the plane refused is said (and the
        // kernel plane tries it again at the next change).
        let refused = self.publish().err();
        if let Some(p) = self.plane.proxy() {
            p.set_max_connections(max_connections);
            for s in &desired {
                p.set_service_max(&s.spec.key, s.max_connections.map(|n| n as usize));
            }
        }
        self.names = desired
            .iter()
            .map(|s| (s.spec.key, s.name.clone()))
            .collect();
        self.dest_names = desired
            .iter()
            .flat_map(|s| {
                s.dests
                    .iter()
                    .map(move |(n, d)| ((s.spec.key, d.addr, d.port), n.clone()))
            })
            .collect();
        self.serial = g.serial_no;
        self.drain = g.drain_timeout.map_or(DEFAULT_DRAIN, |s| s.0);
        self.syncd = g.syncd();
        self.plane.set_sync_key(sync_key);
        self.follow_sync();
        let mut options: HashMap<(ServiceKey, std::net::IpAddr, u16), DestOptions> = HashMap::new();
        for (k, a, p, v) in cfg.proxy_protocol_dests() {
            options.entry((k, a, p)).or_default().proxy_protocol = Some(match v {
                fulcrum_config::ProxyProtocolVersion::V1 => ProxyProtocol::V1,
                fulcrum_config::ProxyProtocolVersion::V2 => ProxyProtocol::V2,
            });
        }
        let transparent = cfg.transparent_dests();
        for &(k, a, p) in &transparent {
            options.entry((k, a, p)).or_default().transparent = true;
        }
        self.dest_options = options;
        self.route_replies(&transparent);
        if let Some(p) = self.plane.proxy() {
            p.set_dest_options(self.dest_options.clone());
        }
        if let Some(tx) = &self.addresses {
            let _ = tx.send(AddrMsg::Want(
                cfg.floating_addresses(),
                crate::addresses::Announce::from_config(&cfg.global),
            ));
        }
        Ok(Applied {
            summary: format!(
                "virtual servers: {added} added, {removed} removed, {changed} changed"
            ),
            refused,
        })
    }

    /// Make a service's real servers in the table those of the
    /// configuration that are in service (per their checks), plus its sorry
    /// server when it is in.
    fn sync_dests(&mut self, s: &TableService) -> Result<(), String> {
        let key = s.spec.key;
        let mut wanted: Vec<(String, DestSpec)> = s
            .dests
            .iter()
            .filter_map(|(n, d)| self.monitor.desired(&key, d).map(|d| (n.clone(), d)))
            .collect();
        if let Some(d) = self.monitor.sorry_desired(&key) {
            wanted.push(("sorry_server".into(), DestSpec { weight: 1, ..d }));
        }
        let want: HashMap<(std::net::IpAddr, u16), &DestSpec> =
            wanted.iter().map(|(_, d)| ((d.addr, d.port), d)).collect();
        let have: Vec<(std::net::IpAddr, u16)> = self
            .table
            .service(&key)
            .map(|svc| svc.dests.iter().map(|d| (d.addr, d.port)).collect())
            .unwrap_or_default();
        for (addr, port) in &have {
            if !want.contains_key(&(*addr, *port)) {
                let _ = self.table.delete_dest(&key, addr, *port);
            }
        }
        for (name, d) in &wanted {
            self.put_dest(&key, d)
                .map_err(|e| format!("real server `{name}` of virtual server `{}`: {e}", s.name))?;
        }
        Ok(())
    }

    /// Add a real server, or make an existing one match `d`.
    fn put_dest(&mut self, key: &ServiceKey, d: &DestSpec) -> Result<(), fulcrum_core::TableError> {
        let existing = self
            .table
            .service(key)
            .and_then(|svc| svc.dest(&d.addr, d.port))
            .map(|x| {
                (x.weight, x.fwd, x.u_threshold, x.l_threshold)
                    != (d.weight, d.fwd, d.u_threshold, d.l_threshold)
            });
        match existing {
            None => self.table.add_dest(key, d.clone()).map(|_| ()),
            Some(true) => self.table.edit_dest(key, d.clone()),
            Some(false) => Ok(()),
        }
    }

    /// Apply the monitor's decisions to the table and log its transitions.
    fn apply_health(&mut self) {
        let (ops, logs) = self.monitor.collect();
        for l in logs {
            let t = &l.transition;
            let (from, to) = (
                format!("{:?}", t.from).to_lowercase(),
                format!("{:?}", t.to).to_lowercase(),
            );
            if to == "dead" {
                tracing::warn!(virtual_server = %l.service, real_server = %l.server, addr = %l.addr, %from, %to, reason = %t.reason, "real server down");
            } else {
                tracing::info!(virtual_server = %l.service, real_server = %l.server, addr = %l.addr, %from, %to, reason = %t.reason, "real server up");
            }
        }
        self.apply_ops(ops);
    }

    /// Apply table changes the monitor decided, and publish.
    fn apply_ops(&mut self, ops: Vec<TableOp>) {
        let changed = !ops.is_empty();
        for op in ops {
            let r = match &op {
                TableOp::Put(k, d) => self.put_dest(k, d),
                TableOp::Remove(k, a, p) => match self.table.delete_dest(k, a, *p) {
                    Err(fulcrum_core::TableError::NoSuchDest) => Ok(()),
                    r => r,
                },
            };
            if let Err(e) = r {
                tracing::warn!(?op, error = %e, "health change not applied");
            }
        }
        if changed {
            let _ = self.publish();
        }
    }

    /// When the checks next need attention, on a 10 ms grid so that the
    /// probes of many real servers falling due together start in one tick.
    fn health_deadline(&self) -> Option<tokio::time::Instant> {
        const GRID: u128 = 10_000_000; // ns
        let d = self.monitor.next_deadline()?;
        let ns = d.as_nanos().div_ceil(GRID) * GRID;
        let d = Duration::from_nanos(u64::try_from(ns).ok()?);
        self.started
            .checked_add(d)
            .map(tokio::time::Instant::from_std)
    }

    /// Start the probes that are due and apply what timed out.
    fn health_tick(&mut self) {
        let now = self.now();
        for due in self.monitor.due(now) {
            let tx = self.health_tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(HealthResult::of(due).await).await;
            });
        }
        self.apply_health();
    }

    /// Run the first round of checks and wait for it, so a director starts
    /// serving with the real servers that answer (bounded by the probes'
    /// timeouts).
    pub async fn initial_checks(&mut self) {
        let now = self.now();
        let mut set = tokio::task::JoinSet::new();
        for due in self.monitor.due(now) {
            set.spawn(HealthResult::of(due));
        }
        while let Some(Ok(r)) = set.join_next().await {
            let now = self.now();
            self.monitor.on_result(r, now);
        }
        self.apply_health();
    }

    /// Re-read the configuration file and apply it. An invalid file changes
    /// nothing.
    pub fn reload(&mut self) -> Response {
        let Some(path) = self.config_path.clone() else {
            return Response {
                stderr: "this director runs without a configuration file; nothing to reload\n"
                    .into(),
                exit_code: 1,
                ..Default::default()
            };
        };
        let name = path.display().to_string();
        let src = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(config = %name, error = %e, "reload failed: cannot read the configuration; nothing changed");
                return Response {
                    stderr: format!("cannot read {name}: {e}; nothing changed\n"),
                    exit_code: 1,
                    ..Default::default()
                };
            }
        };
        let parsed = fulcrum_config::parse(&src);
        let diags = parsed.render(&name, &src);
        if parsed.has_errors() {
            tracing::error!(config = %name, errors = parsed.error_count(), "reload refused: the configuration has errors; nothing changed");
            return Response {
                stderr: format!(
                    "{diags}{name}: {} errors; nothing changed\n",
                    parsed.error_count()
                ),
                exit_code: 1,
                ..Default::default()
            };
        }
        if parsed.config.global.user != self.user {
            let e = "`user` changed; the director changes its user only at start: restart it";
            tracing::error!(config = %name, error = %e, "reload refused; nothing changed");
            return Response {
                stderr: format!("{diags}{name}: {e}; nothing changed\n"),
                exit_code: 1,
                ..Default::default()
            };
        }
        let failover = match self.failover_settings(&parsed.config) {
            Ok(f) => f.map(|mut f| {
                f.source = Some((path.clone(), src.as_str().into()));
                f
            }),
            Err(e) => {
                tracing::error!(config = %name, error = %e, "reload refused; nothing changed");
                return Response {
                    stderr: format!("{diags}{name}: {e}; nothing changed\n"),
                    exit_code: 1,
                    ..Default::default()
                };
            }
        };
        let keys = console_keys(&parsed.config);
        let console_note = match &self.console {
            Some(k) if *k != keys => format!(
                "{name}: the console's settings (`console`, `console_users`, `console_tls_cert`, `console_tls_key`) changed: they apply when the director next starts\n"
            ),
            _ => String::new(),
        };
        let diags = format!("{diags}{console_note}");
        match self.apply_config(&parsed.config) {
            Ok(Applied { summary, refused }) => {
                if let (Some(new), Some(f)) = (failover, &mut self.failover) {
                    f.now = new.clone();
                    let _ = f.settings_tx.send(new);
                }
                tracing::info!(config = %name, %summary, "reloaded");
                match refused {
                    None => Response {
                        stdout: format!("{name}: reloaded: {summary}\n"),
                        stderr: diags,
                        ..Default::default()
                    },
                    Some(e) => Response {
                        stdout: format!("{name}: reloaded: {summary}\n"),
                        stderr: format!("{diags}{name}: {e}\n"),
                        exit_code: 1,
                        ..Default::default()
                    },
                }
            }
            Err(e) => {
                tracing::error!(config = %name, error = %e, "reload failed; nothing changed");
                Response {
                    stderr: format!("{diags}{name}: {e}; nothing changed\n"),
                    exit_code: 1,
                    ..Default::default()
                }
            }
        }
    }

    /// Apply ipvsadm commands, parsed by the client, to the live table
    /// (the plane answering what only it knows, and refusing what it cannot
    /// forward), then publish the table. The answers are data: the client
    /// renders them, resolving names itself.
    pub fn adm(&mut self, commands: &[AdmCommand]) -> Response {
        self.plane.refresh(&mut self.table);
        let now = self.now();
        let plane = std::cell::RefCell::new(&mut self.plane);
        let veto = |c: &AdmCommand, _: &Table| plane.borrow_mut().answer(c);
        let replies = ipvsadm::answer(commands, &mut self.table, now, &veto);
        let mut out = Response {
            replies,
            ..Default::default()
        };
        let published = self
            .plane
            .set_timeouts(&self.table)
            .and_then(|()| self.plane.publish(&mut self.table));
        if let Err(e) = published {
            out.stderr.push_str(&format!("{e}\n"));
            out.exit_code = 255;
        }
        out
    }

    fn on_plane(&mut self, ev: PlaneEvent) {
        let now = self.now();
        match ev {
            PlaneEvent::Batch(events) => events.into_iter().for_each(|ev| self.on_plane(ev)),
            PlaneEvent::Opened {
                key,
                proto,
                flow,
                dest,
                conn,
            } => {
                let adopted = self.table.adopt(&key, proto, &flow, dest, conn, now);
                // For TCP the connection's first report is the client's SYN.
                if adopted.is_some() && proto == Protocol::Tcp {
                    self.table
                        .transition(conn, Direction::Input, Some(TcpFlags::SYN), now);
                }
                if let Some(p) = self.plane.proxy() {
                    p.settle(&key, dest, &self.table);
                }
            }
            PlaneEvent::Schedule {
                key,
                proto,
                flow,
                reply,
            } => {
                let answer = self.table.schedule(&key, proto, &flow, now).map(|s| {
                    // For TCP the request is the client's SYN.
                    if let (Protocol::Tcp, Some(c)) = (proto, s.conn) {
                        self.table
                            .transition(c, Direction::Input, Some(TcpFlags::SYN), now);
                    }
                    let opts = self
                        .dest_options
                        .get(&(key, s.daddr, s.dport))
                        .copied()
                        .unwrap_or_default();
                    (s, opts)
                });
                let _ = reply.send(answer);
            }
            PlaneEvent::Segment { conn, dir, flags } => {
                self.table.transition(conn, dir, flags, now)
            }
            PlaneEvent::Segments { conn, segs } => {
                for (dir, flags) in segs {
                    self.table.transition(conn, dir, Some(flags), now);
                }
            }
            PlaneEvent::Last {
                conn,
                dir,
                flags,
                traffic: [inbytes, outbytes, inpkts, outpkts],
            } => {
                self.table.account(conn, inpkts, inbytes, outpkts, outbytes);
                self.table.transition(conn, dir, Some(flags), now);
            }
            PlaneEvent::Traffic {
                conn,
                inpkts,
                inbytes,
                outpkts,
                outbytes,
            } => {
                self.table.account(conn, inpkts, inbytes, outpkts, outbytes);
                // Traffic re-arms the entry's timer, as every packet does in
                // IPVS: the table forgets a connection when the plane's
                // socket idles out, not while data moves.
                self.table.transition(conn, Direction::Input, None, now);
            }
            PlaneEvent::NoDest { key, client } => {
                let n = self.nodest.entry(key).or_default();
                n.total += 1;
                n.since_log += 1;
                // At most one line per service per second.
                if n.last_log
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    tracing::warn!(service = %key, %client, refused = n.since_log, "no destination available");
                    n.since_log = 0;
                    n.last_log = Some(Instant::now());
                }
            }
            PlaneEvent::Unreachable { conn, dest, error } => {
                self.unreachable += 1;
                tracing::warn!(conn = conn.0, %dest, %error, "real server unreachable; client reset");
            }
        }
    }

    /// Counters, weights and health in the Prometheus text format.
    pub fn metrics(&mut self) -> String {
        let live = self.live();
        use crate::metrics::Exposition;
        let mut m = Exposition::default();
        let svc_name = |k: &ServiceKey| self.names.get(k).cloned().unwrap_or_default();
        m.family(
            "fulcrum_up_seconds",
            "gauge",
            "Seconds since the director started.",
        );
        m.sample("fulcrum_up_seconds", &[], self.started.elapsed().as_secs());
        m.family(
            "fulcrum_connection_entries",
            "gauge",
            "Entries in the connection table.",
        );
        m.sample("fulcrum_connection_entries", &[], self.table.conns().len());
        for s in self.plane.sync_metrics() {
            m.family(s.name, s.kind, s.help);
            m.sample(s.name, &[], s.value);
        }
        if let Some(p) = self.plane.proxy() {
            let limit = p.director_limit();
            m.family(
                "fulcrum_open_connections",
                "gauge",
                "Connections and UDP flows the data plane holds open.",
            );
            m.sample("fulcrum_open_connections", &[], limit.open());
            m.family(
                "fulcrum_max_connections",
                "gauge",
                "The director-wide limit on open connections (max_connections).",
            );
            m.sample("fulcrum_max_connections", &[], limit.max());
            m.family(
                "fulcrum_limit_refused_total",
                "counter",
                "Connections refused because a max_connections limit was reached.",
            );
            m.sample(
                "fulcrum_limit_refused_total",
                &[("limit", "director")],
                limit.refused(),
            );
            for s in self.table.services() {
                if let Some(l) = p.service_limit(&s.key) {
                    let k = s.key.to_string();
                    m.sample(
                        "fulcrum_limit_refused_total",
                        &[("limit", "service"), ("service", &k)],
                        l.refused(),
                    );
                }
            }
        }
        let services = &live;
        type Get = fn(&fulcrum_core::estimator::Counters) -> u64;
        let counters: [(&str, &str, Get); 3] = [
            ("connections_total", "Connections scheduled.", |c| c.conns),
            (
                "in_bytes_total",
                "Bytes from clients to real servers.",
                |c| c.inbytes,
            ),
            (
                "out_bytes_total",
                "Bytes from real servers to clients.",
                |c| c.outbytes,
            ),
        ];
        for (suffix, help, get) in counters {
            let name = format!("fulcrum_service_{suffix}");
            m.family(&name, "counter", help);
            for s in services {
                let (k, n) = (s.key.to_string(), svc_name(&s.key));
                m.sample(
                    &name,
                    &[("service", &k), ("virtual_server", &n)],
                    get(&s.counters),
                );
            }
        }
        m.family(
            "fulcrum_service_refused_total",
            "counter",
            "Connections refused: no real server available.",
        );
        for s in services {
            let (k, n) = (s.key.to_string(), svc_name(&s.key));
            let refused = self.nodest.get(&s.key).map_or(0, |n| n.total);
            m.sample(
                "fulcrum_service_refused_total",
                &[("service", &k), ("virtual_server", &n)],
                refused,
            );
        }
        type DestGet = fn(&ipvsadm::DestEntry) -> u64;
        let dest_metrics: [(&str, &str, &str, DestGet); 5] = [
            (
                "weight",
                "gauge",
                "The real server's weight in the table.",
                |d| u64::from(d.weight),
            ),
            (
                "active_connections",
                "gauge",
                "Established connections.",
                |d| u64::from(d.activeconns),
            ),
            (
                "inactive_connections",
                "gauge",
                "Connections in other states.",
                |d| u64::from(d.inactconns),
            ),
            (
                "connections_total",
                "counter",
                "Connections scheduled to it.",
                |d| d.counters.conns,
            ),
            (
                "in_bytes_total",
                "counter",
                "Bytes from clients to it.",
                |d| d.counters.inbytes,
            ),
        ];
        for (suffix, kind, help, get) in dest_metrics {
            let name = format!("fulcrum_real_server_{suffix}");
            m.family(&name, kind, help);
            for s in services {
                let (k, n) = (s.key.to_string(), svc_name(&s.key));
                for d in &s.dests {
                    let rs = format!("{}", std::net::SocketAddr::new(d.addr, d.port));
                    m.sample(
                        &name,
                        &[
                            ("service", &k),
                            ("virtual_server", &n),
                            ("real_server", &rs),
                        ],
                        get(d),
                    );
                }
            }
        }
        let rows = self.monitor.health_rows();
        type RowGet = fn(&fulcrum_health::nanny::HealthRow) -> u64;
        let health: [(&str, &str, &str, RowGet); 5] = [
            (
                "fulcrum_real_server_alive",
                "gauge",
                "1 when the real server's checks keep it in service.",
                |r| u64::from(r.alive),
            ),
            (
                "fulcrum_health_checks_passed_total",
                "counter",
                "Health checks that passed.",
                |r| r.counts.checks_ok,
            ),
            (
                "fulcrum_health_checks_failed_total",
                "counter",
                "Health checks that failed.",
                |r| r.counts.checks_failed,
            ),
            (
                "fulcrum_real_server_up_transitions_total",
                "counter",
                "Times the real server entered service.",
                |r| r.counts.ups,
            ),
            (
                "fulcrum_real_server_down_transitions_total",
                "counter",
                "Times the real server left service.",
                |r| r.counts.downs,
            ),
        ];
        for (name, kind, help, get) in health {
            m.family(name, kind, help);
            for r in &rows {
                let k = r.dest.0.to_string();
                let rs = format!("{}", std::net::SocketAddr::new(r.dest.1, r.dest.2));
                m.sample(
                    name,
                    &[
                        ("service", &k),
                        ("virtual_server", &r.service),
                        ("real_server", &rs),
                        ("name", &r.server),
                    ],
                    get(r),
                );
            }
        }
        if let Some(f) = &self.failover {
            let f = f.status.borrow();
            let vrid = f.vrid.to_string();
            let labels = [("virtual_router", vrid.as_str())];
            m.family(
                "fulcrum_failover_master",
                "gauge",
                "1 while this director is the active one (VRRP master).",
            );
            m.sample(
                "fulcrum_failover_master",
                &labels,
                u8::from(f.state == "MASTER"),
            );
            m.family(
                "fulcrum_failover_priority",
                "gauge",
                "This director's VRRP priority.",
            );
            m.sample("fulcrum_failover_priority", &labels, f.priority);
            m.family(
                "fulcrum_failover_transitions_total",
                "counter",
                "Failover state changes.",
            );
            m.sample("fulcrum_failover_transitions_total", &labels, f.transitions);
            m.family(
                "fulcrum_failover_adverts_refused_total",
                "counter",
                "Adverts dropped: unknown sender, wrong TTL, malformed or failed authentication.",
            );
            m.sample("fulcrum_failover_adverts_refused_total", &labels, f.refused);
        }
        m.finish()
    }

    /// The services as the data plane counts them: the kernel's counters
    /// and connections on the kernel plane, the table's on the proxy plane
    /// (where the table tracks every connection).
    fn live(&mut self) -> Vec<ipvsadm::ServiceEntry> {
        self.plane.refresh(&mut self.table);
        match self.plane.kernel() {
            Some(k) => k.listing().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the kernel's IPVS counters");
                Vec::new()
            }),
            None => ipvsadm::entries(&self.table),
        }
    }

    /// The other directors as their hellos last described them.
    fn peer_views(f: &HaStatus) -> Vec<PeerView> {
        f.peers
            .iter()
            .map(|p| {
                let h = f.heard.iter().find(|(a, _, _)| a == p);
                PeerView {
                    address: p.to_string(),
                    state: h.map(|(_, h, _)| {
                        use fulcrum_ha::cluster::PeerState;
                        match h.state {
                            PeerState::Init => "INIT",
                            PeerState::Backup => "BACKUP",
                            PeerState::Master => "MASTER",
                            PeerState::Fault => "FAULT",
                        }
                        .to_string()
                    }),
                    priority: h.map(|(_, h, _)| h.priority),
                    serial: h.map(|(_, h, _)| h.serial),
                    heard_secs_ago: h.map(|(_, _, t)| t.elapsed().as_secs_f64()),
                }
            })
            .collect()
    }

    /// Whether this director forwards: a backup of the failover election
    /// does not (its services stand by).
    fn forwarding(&self) -> bool {
        self.failover
            .as_ref()
            .is_none_or(|f| f.status.borrow().state == "MASTER")
    }

    /// How a service is served, in a word or three.
    fn serving(&self, key: &ServiceKey) -> &'static str {
        if !self.forwarding() {
            "standing by: this director is a backup"
        } else if self.plane.kernel_ref().is_some() {
            "in the kernel"
        } else if self.plane.kind() == "xdp" {
            "in XDP"
        } else if self.plane.forwards(key) {
            "serving"
        } else {
            "NOT SERVING"
        }
    }

    /// The state of a real server in the table, in a word.
    fn dest_state(d: &fulcrum_core::Dest) -> &'static str {
        if d.weight == 0 {
            "quiesced"
        } else if d.overload {
            "overloaded"
        } else {
            "available"
        }
    }

    /// ` drained by the operator` and the like, for status lines.
    fn admin_note(&self, key: &ServiceKey, addr: std::net::IpAddr, port: u16) -> String {
        self.monitor
            .admin(&(*key, addr, port))
            .map(|a| format!("  {} by the operator", a.word()))
            .unwrap_or_default()
    }

    /// Record each service's rates for the charts.
    fn sample(&mut self) {
        let t = self.now().as_secs();
        let live = self.live();
        self.history.retain(|k, _| live.iter().any(|e| e.key == *k));
        for e in live {
            let h = self.history.entry(e.key).or_default();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(Sample {
                t,
                cps: e.rates.cps,
                inbps: e.rates.inbps,
                outbps: e.rates.outbps,
                active: e.dests.iter().map(|d| u64::from(d.activeconns)).sum(),
            });
        }
    }

    /// The director's state as data (the console and the JSON API).
    pub fn state(&mut self) -> DirectorState {
        let live: HashMap<ServiceKey, ipvsadm::ServiceEntry> =
            self.live().into_iter().map(|e| (e.key, e)).collect();
        let now = self.now();
        let failover = self.failover.as_ref().map(|f| {
            let f = f.status.borrow();
            Failover {
                state: f.state.to_string(),
                since_secs: f.since.elapsed().as_secs(),
                reason: f.reason.clone(),
                priority: f.priority,
                vrid: f.vrid,
                local: f.local.to_string(),
                peers: f.peers.iter().map(ToString::to_string).collect(),
                refused: f.refused,
                directors: Self::peer_views(&f),
            }
        });
        let connections = self.plane.proxy().map(|p| {
            let l = p.director_limit();
            Connections {
                open: l.open() as u64,
                max: l.max() as u64,
                refused: l.refused(),
            }
        });
        let health = |m: &Monitor, key: &ServiceKey, addr, port| {
            m.describe(key, &addr, port, now).map(|text| Health {
                state: m.word(key, &addr, port).to_string(),
                text,
            })
        };
        let mut services = Vec::new();
        for s in self.table.services() {
            let e = live.get(&s.key);
            let mut servers: Vec<RealState> = Vec::new();
            let mut dests: Vec<_> = s.dests.iter().collect();
            dests.sort_by_key(|d| (d.addr, d.port));
            for d in dests {
                let ld = e.and_then(|e| {
                    e.dests
                        .iter()
                        .find(|x| (x.addr, x.port) == (d.addr, d.port))
                });
                servers.push(RealState {
                    name: self.dest_names.get(&(s.key, d.addr, d.port)).cloned(),
                    address: SocketAddr::new(d.addr, d.port).to_string(),
                    in_service: true,
                    weight: d.weight,
                    state: Self::dest_state(d).into(),
                    admin: self
                        .monitor
                        .admin(&(s.key, d.addr, d.port))
                        .map(|a| a.word().into()),
                    health: health(&self.monitor, &s.key, d.addr, d.port),
                    active: ld.map_or(d.activeconns, |l| l.activeconns),
                    inactive: ld.map_or(d.inactconns, |l| l.inactconns),
                    conns: ld.map_or(d.stats.counters.conns, |l| l.counters.conns),
                    cps: ld.map_or(0, |l| l.rates.cps),
                });
            }
            for (addr, port) in self.monitor.dests_of(&s.key) {
                if s.dest(&addr, port).is_none() {
                    servers.push(RealState {
                        name: self.dest_names.get(&(s.key, addr, port)).cloned(),
                        address: SocketAddr::new(addr, port).to_string(),
                        in_service: false,
                        state: "out of service".into(),
                        admin: self
                            .monitor
                            .admin(&(s.key, addr, port))
                            .map(|a| a.word().into()),
                        health: health(&self.monitor, &s.key, addr, port),
                        ..Default::default()
                    });
                }
            }
            services.push(VirtualState {
                name: self.names.get(&s.key).cloned(),
                service: s.key.to_string(),
                scheduler: s.scheduler.kind().to_string(),
                persistent: s.persistent,
                serving: self.serving(&s.key).into(),
                conns: e.map_or(0, |e| e.counters.conns),
                active: e.map_or(0, |e| {
                    e.dests.iter().map(|d| u64::from(d.activeconns)).sum()
                }),
                inactive: e.map_or(0, |e| e.dests.iter().map(|d| u64::from(d.inactconns)).sum()),
                cps: e.map_or(0, |e| e.rates.cps),
                inbps: e.map_or(0, |e| e.rates.inbps),
                outbps: e.map_or(0, |e| e.rates.outbps),
                refused_no_server: self.nodest.get(&s.key).map_or(0, |n| n.total),
                sorry_server: self.monitor.sorry_serving(&s.key).map(|a| a.to_string()),
                servers,
                history: self
                    .history
                    .get(&s.key)
                    .map(|h| h.iter().copied().collect())
                    .unwrap_or_default(),
            });
        }
        DirectorState {
            plane: self.plane.kind().into(),
            plane_why: self.plane_why.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            config: self
                .config_path
                .as_ref()
                .map_or_else(|| self.origin.clone(), |p| p.display().to_string()),
            serial: self.serial,
            failover,
            forwarding: self.forwarding(),
            connections,
            services,
            sync: self.plane.sync_status(),
        }
    }

    /// Drain, disable or enable a real server named in the configuration.
    pub fn server_action(&mut self, vs: &str, rs: &str, action: ServerAction) -> Response {
        let found = self.dest_names.iter().find_map(|((k, a, p), n)| {
            (n == rs && self.names.get(k).is_some_and(|v| v == vs)).then_some((*k, *a, *p))
        });
        let Some(dest) = found else {
            let known = self.names.values().any(|v| v == vs);
            return Response {
                stderr: if known {
                    format!(
                        "virtual server `{vs}` has no active real server `{rs}` (see `fulcrum status`)\n"
                    )
                } else {
                    format!("there is no active virtual server `{vs}` (see `fulcrum status`)\n")
                },
                exit_code: 1,
                ..Default::default()
            };
        };
        let admin = match action {
            ServerAction::Drain => Some(Admin::Drain),
            ServerAction::Disable => Some(Admin::Disable),
            ServerAction::Enable => None,
        };
        let before = self.monitor.admin(&dest);
        match self.monitor.set_admin(&dest, admin) {
            Ok(ops) => {
                self.apply_ops(ops);
                let what = match action {
                    ServerAction::Drain => {
                        "drained: it gets no new connections, its open ones go on"
                    }
                    ServerAction::Disable => "disabled: out of the table until enabled",
                    ServerAction::Enable => "enabled: its checks decide again",
                };
                if before != admin {
                    tracing::info!(virtual_server = %vs, real_server = %rs, addr = %SocketAddr::new(dest.1, dest.2), action = ?action, "real server {what}");
                }
                Response {
                    stdout: format!("real server `{rs}` of `{vs}` {what}\n"),
                    ..Default::default()
                }
            }
            Err(e) => Response {
                stderr: format!("{e}\n"),
                exit_code: 1,
                ..Default::default()
            },
        }
    }

    /// The director's state, for people.
    pub fn status(&mut self) -> String {
        let live: HashMap<ServiceKey, ipvsadm::ServiceEntry> =
            self.live().into_iter().map(|e| (e.key, e)).collect();
        let mut o = String::new();
        let up = self.started.elapsed().as_secs();
        let _ = writeln!(
            o,
            "Fulcrum director: {} data plane ({}), up {}h{:02}m{:02}s",
            self.plane.kind(),
            self.plane_why,
            up / 3600,
            (up / 60) % 60,
            up % 60
        );
        if !self.privileges.is_empty() {
            let _ = writeln!(o, "privileges: {}", self.privileges);
        }
        match (&self.config_path, self.serial) {
            (Some(p), Some(s)) => _ = writeln!(o, "configuration: {} (serial {s})", p.display()),
            (Some(p), None) => _ = writeln!(o, "configuration: {}", p.display()),
            (None, _) => _ = writeln!(o, "configuration: {}", self.origin),
        }
        if let Some(n) = self
            .plane
            .kernel_ref()
            .map(|k| k.drift_count())
            .filter(|n| *n > 0)
        {
            let _ = writeln!(
                o,
                "kernel table: {n} difference(s) from Fulcrum's, made behind its back (see the log; `fulcrum reload` puts Fulcrum's back)"
            );
        }
        for line in self.plane.sync_status() {
            let _ = writeln!(o, "{line}");
        }
        if let Some(f) = &self.failover {
            let f = f.status.borrow();
            let peers: Vec<String> = f.peers.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                o,
                "failover: {} for {}s ({}); priority {}, virtual router {}, {} with {}{}",
                f.state,
                f.since.elapsed().as_secs(),
                f.reason,
                f.priority,
                f.vrid,
                f.local,
                peers.join(", "),
                if f.refused > 0 {
                    format!("; {} adverts refused (see the log)", f.refused)
                } else {
                    String::new()
                }
            );
            for p in Self::peer_views(&f) {
                let _ = match (&p.state, p.priority, p.serial, p.heard_secs_ago) {
                    (Some(st), Some(pr), Some(se), Some(ago)) => writeln!(
                        o,
                        "  director {}: {st}, priority {pr}, serial {se} (hello {ago:.1}s ago)",
                        p.address
                    ),
                    _ => writeln!(
                        o,
                        "  director {}: no hello heard (a keepalived director sends none; else it is down or unreachable)",
                        p.address
                    ),
                };
            }
        }
        if let Some(p) = self.plane.proxy() {
            let limit = p.director_limit();
            let _ = writeln!(
                o,
                "connections: {} open, max_connections {}{}",
                limit.open(),
                limit.max(),
                match limit.refused() {
                    0 => String::new(),
                    n => format!("; {n} refused at the limit"),
                }
            );
        }
        let (t, f, u) = self.table.timeouts().triple();
        let _ = writeln!(
            o,
            "timeouts: tcp {}s, tcpfin {}s, udp {}s; {} connection entries",
            t.as_secs(),
            f.as_secs(),
            u.as_secs(),
            self.table.conns().len()
        );
        if self.table.services().is_empty() {
            let _ = writeln!(o, "\nno virtual services");
        }
        for s in self.table.services() {
            let name = self
                .names
                .get(&s.key)
                .map_or(String::new(), |n| format!("{n}: "));
            // What the plane counts: the kernel's counters on the kernel plane.
            let (r, conns, active, inactive) = match live.get(&s.key) {
                Some(e) => (
                    e.rates,
                    e.counters.conns,
                    e.dests.iter().map(|d| d.activeconns).sum::<u32>(),
                    e.dests.iter().map(|d| d.inactconns).sum::<u32>(),
                ),
                None => (Default::default(), 0, 0, 0),
            };
            let listening = self.serving(&s.key);
            let _ = writeln!(
                o,
                "\n{name}{} {} ({listening}) — {} real servers, {active} active / {inactive} inactive connections, {} total, {} conn/s",
                s.key,
                s.scheduler.kind(),
                s.dests.len(),
                conns,
                r.cps
            );
            if let Some(p) = s.persistent {
                let _ = writeln!(o, "  persistent {p}s");
            }
            if let Some(n) = self.nodest.get(&s.key) {
                let _ = writeln!(o, "  refused (no destination available): {}", n.total);
            }
            if let Some(l) = self.plane.proxy().and_then(|p| p.service_limit(&s.key))
                && (l.max() != usize::MAX || l.refused() > 0)
            {
                let _ = writeln!(
                    o,
                    "  max_connections {}: {} open, {} refused at the limit",
                    l.max(),
                    l.open(),
                    l.refused()
                );
            }
            let mut dests: Vec<_> = s.dests.iter().collect();
            dests.sort_by_key(|d| (d.addr, d.port));
            for d in dests {
                let _ = writeln!(
                    o,
                    "  -> {}{}  weight {}  {}{}  active {}  inactive {}  conns {}",
                    SocketAddr::new(d.addr, d.port),
                    self.dest_name(&s.key, d.addr, d.port),
                    d.weight,
                    Self::dest_state(d),
                    self.admin_note(&s.key, d.addr, d.port),
                    d.activeconns,
                    d.inactconns,
                    d.stats.counters.conns
                );
                if let Some(h) = self.monitor.describe(&s.key, &d.addr, d.port, self.now()) {
                    let _ = writeln!(o, "     health: {h}");
                }
            }
            for (addr, port) in self.monitor.dests_of(&s.key) {
                if s.dest(&addr, port).is_none()
                    && let Some(h) = self.monitor.describe(&s.key, &addr, port, self.now())
                {
                    let _ = writeln!(
                        o,
                        "  -- {}{}  out of service{}: {h}",
                        SocketAddr::new(addr, port),
                        self.dest_name(&s.key, addr, port),
                        self.admin_note(&s.key, addr, port)
                    );
                }
            }
            if let Some(a) = self.monitor.sorry_serving(&s.key) {
                let _ = writeln!(o, "  sorry server {a} in: no real server is alive");
            }
        }
        if self.unreachable > 0 {
            let _ = writeln!(
                o,
                "\nconnections reset because a real server was unreachable: {}",
                self.unreachable
            );
        }
        o
    }

    /// Serve plane events and control requests until `shutdown` fires; with
    /// `true` the open connections may finish first (up to
    /// `drain_timeout`), with `false` (the addresses have gone to a backup)
    /// they cannot and the controller stops at once.
    pub async fn run(
        mut self,
        mut plane: mpsc::Receiver<PlaneEvent>,
        mut control: mpsc::Receiver<ControlMsg>,
        mut shutdown: oneshot::Receiver<bool>,
    ) {
        let mut est = tokio::time::interval(fulcrum_core::estimator::ESTIMATOR_PERIOD);
        let mut expire = tokio::time::interval(Duration::from_secs(1));
        let mut gc = tokio::time::interval(Duration::from_secs(60));
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        let mut sample = tokio::time::interval(SAMPLE_EVERY);
        est.tick().await;
        gc.tick().await;
        let Some(mut health) = self.health_rx.take() else {
            return;
        };
        self.running = true;
        self.follow_sync();
        let mut election = self.failover.as_ref().map(|f| f.status.clone());
        let mut role = election.as_ref().map(|e| e.borrow().state);
        // The checks' next deadline changes only when the monitor does: it
        // is recomputed after health work and control requests, never per
        // data-plane event.
        let mut deadline = self.health_deadline();
        // Stopping: when open connections may still finish.
        let mut draining: Option<tokio::time::Instant> = None;
        let mut drain_tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            let sleep = tokio::time::sleep_until(
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                Some(ev) = plane.recv() => {
                    self.on_plane(ev);
                    self.store_counts();
                }
                Some(r) = health.recv() => {
                    let now = self.now();
                    self.monitor.on_result(r, now);
                    // Take every result already waiting, then decide once.
                    while let Ok(r) = health.try_recv() {
                        self.monitor.on_result(r, now);
                    }
                    self.apply_health();
                    deadline = self.health_deadline();
                }
                _ = sleep, if deadline.is_some() => {
                    self.health_tick();
                    deadline = self.health_deadline();
                }
                Some(msg) = control.recv() => {
                    let resp = match msg.request {
                        Request::Restart => {
                            self.restart(msg.reply);
                            continue;
                        }
                        Request::Adm { commands } => self.adm(&commands),
                        Request::Status => Response { stdout: self.status(), ..Default::default() },
                        Request::Reload => self.reload(),
                        Request::Metrics => Response { stdout: self.metrics(), ..Default::default() },
                        Request::State => Response {
                            stdout: serde_json::to_string(&self.state()).unwrap_or_default(),
                            ..Default::default()
                        },
                        Request::Server { virtual_server, server, action } => {
                            self.server_action(&virtual_server, &server, action)
                        }
                    };
                    let _ = msg.reply.send(resp);
                    deadline = self.health_deadline();
                }
                _ = est.tick() => self.table.tick_estimators(),
                _ = expire.tick() => {
                    // After a burst has gone, give its memory back.
                    if self.table.expire(self.now()).len() >= BIG_SWEEP {
                        fulcrum_net::release_free_memory();
                    }
                    self.store_counts();
                    self.plane.refresh(&mut self.table);
                }
                _ = gc.tick() => self.table.collect_garbage(self.now()),
                _ = upkeep.tick() => self.plane.upkeep(&self.table),
                _ = sample.tick() => self.sample(),
                Ok(()) = async {
                    match election.as_mut() {
                        Some(e) => e.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = election.as_ref().map(|e| e.borrow().state);
                    if now != role {
                        role = now;
                        self.follow_sync();
                    }
                }
                drain = &mut shutdown, if draining.is_none() => {
                    let open = self.plane.stop_accepting();
                    if open == 0 || self.drain.is_zero() {
                        break;
                    }
                    if drain == Ok(false) {
                        tracing::info!(open, "stopping: the addresses went to the backup with the hand-over, so the open connections cannot go on here; not waiting for them");
                        break;
                    }
                    tracing::info!(open, drain_timeout = ?self.drain, "stopping: no new connections; the open ones may finish for up to drain_timeout");
                    draining = Some(tokio::time::Instant::now() + self.drain);
                }
                _ = drain_tick.tick(), if draining.is_some() => {
                    let open = self.plane.open_connections();
                    if open == 0 {
                        tracing::info!("stopping: every open connection finished");
                        break;
                    }
                    if draining.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        let what = if open == 1 { "connection" } else { "connections" };
                        tracing::warn!(open, "stopping: drain_timeout is over, {open} {what} cut");
                        break;
                    }
                }
            }
        }
        self.plane.stop(self.keep_forwarding);
        if !self.replies.0.is_empty()
            && !self.handed_over.load(std::sync::atomic::Ordering::Relaxed)
        {
            let _one = self.replies.1.lock().await;
            if let Err(e) = fulcrum_net::transparent::route_replies(&[]).await {
                tracing::warn!(error = %e, table = fulcrum_net::transparent::TABLE, "cannot remove the rules for transparent connections' replies; remove them with `ip rule del priority 7345`");
            }
        }
    }
}

/// `fulcrum restart`, on its way to the director's main task: the proxy
/// plane's sockets, and where the answer goes.
#[derive(Debug)]
pub struct RestartMsg {
    /// The virtual services' sockets.
    pub sockets: Vec<(crate::restart::Slot, std::os::fd::OwnedFd)>,
    /// Set when the successor took over: what the controller set up for
    /// the data plane (transparent proxying's rules) stays for it.
    pub handed_over: Arc<std::sync::atomic::AtomicBool>,
    /// The answer to `fulcrum restart`.
    pub reply: oneshot::Sender<Response>,
}

/// A proxy plane with `workers` worker threads, and its event channel.
pub fn plane(udp_timeout: Duration, workers: usize) -> (ProxyPlane, mpsc::Receiver<PlaneEvent>) {
    let (tx, rx) = mpsc::channel(65_536);
    (ProxyPlane::new(tx, udp_timeout, workers), rx)
}

/// The default number of workers: one per available CPU.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
