//! The kernel IPVS data plane (`dataplane = ipvs`) as the controller drives
//! it: after every change to the controller's table — start, reload, `fulcrum
//! adm`, a health decision — the kernel's table is brought to it by
//! difference (`fulcrum_ipvs::reconcile`): unchanged services and real
//! servers are never touched, so their connections carry on, and services
//! someone else installed are left alone. On exit Fulcrum removes what it
//! installed and nothing else.

use std::collections::HashSet;

use fulcrum_api::ipvsadm::{
    AdmCommand, ConnEntry, DestEntry, Header, ListTarget, Reply, ServiceEntry,
};
use fulcrum_config::{Config, Dataplane};
use fulcrum_core::estimator::{Counters, Rates};
use fulcrum_core::{DestSpec, ServiceKey, ServiceSpec, Table};
use fulcrum_core::{SyncDaemon, SyncRole};
use fulcrum_ipvs::driver::Ipvs;
use fulcrum_ipvs::msg::KernelStats;
use fulcrum_ipvs::reconcile::{self, Entry};

/// The kernel's IPVS and the services Fulcrum installed there.
#[derive(Debug)]
pub struct KernelPlane {
    ipvs: Ipvs,
    owned: HashSet<ServiceKey>,
    /// The sync daemons Fulcrum runs (`syncdaemon = 1`), as they were
    /// started: at most one of each role.
    sync: Vec<SyncDaemon>,
    /// Where the services Fulcrum installed are recorded, so a director
    /// started after it (an upgrade, a restart after kill -9) adopts them.
    state: Option<std::path::PathBuf>,
    /// The differences between the kernel and Fulcrum's table last
    /// reported (changes made behind Fulcrum's back).
    drift: Vec<reconcile::Change>,
    /// The kernel's table as the last mirror left it, so the next one
    /// plans without reading it back; `None` after a refusal or a drift.
    known: Option<Vec<Entry>>,
    /// The kernel's IPVS version and connection table size, for the
    /// listings' first line.
    header: Header,
    /// The timeouts sent last.
    timeouts: Option<(u32, u32, u32)>,
}

/// The table as the kernel takes it.
fn desired(table: &Table) -> Vec<Entry> {
    table
        .services()
        .iter()
        .map(|s| {
            let spec = ServiceSpec {
                key: s.key,
                scheduler: s.scheduler.kind(),
                flags: s.flags,
                persistent: s.persistent,
                netmask: s.netmask,
                one_packet: s.one_packet,
                pe_name: s.pe_name.clone(),
            };
            let dests = s
                .dests
                .iter()
                .map(|d| DestSpec {
                    addr: d.addr,
                    port: d.port,
                    fwd: d.fwd,
                    weight: d.weight,
                    u_threshold: d.u_threshold,
                    l_threshold: d.l_threshold,
                })
                .collect();
            (spec, dests)
        })
        .collect()
}

/// The data plane chosen for a director.
#[derive(Debug)]
pub enum Chosen {
    /// Fulcrum's proxy.
    Proxy,
    /// The kernel's IPVS.
    Kernel(KernelPlane),
    /// Fulcrum's XDP program, loaded and attached.
    Xdp(Box<crate::xdp::XdpForwarding>),
}

impl Chosen {
    /// The plane's name in the log and in `fulcrum status`.
    pub fn name(&self) -> &'static str {
        match self {
            Chosen::Proxy => "proxy",
            Chosen::Kernel(_) => "ipvs",
            Chosen::Xdp(_) => "xdp",
        }
    }
}

/// The data plane a director runs, and why, said for people (`fulcrum
/// status`, the log).
///
/// `dataplane = auto` (the default) takes IPVS when this process may
/// program it (CAP_NET_ADMIN) and the kernel has it (`ip_vs` loads), the
/// proxy otherwise; `ipvs`, `xdp` and `proxy` are taken as said (the XDP
/// program is loaded and attached here, while the process is privileged).
///
/// # Errors
/// `dataplane = ipvs` on a host without IPVS, or a file that needs the
/// kernel (direct routing, tunnelling, fwmark, SCTP) where `auto` found
/// none; the message says what to do.
pub fn choose(cfg: Option<&Config>) -> Result<(Chosen, String), String> {
    let asked = cfg.map_or(Dataplane::Auto, |c| c.global.effective_dataplane());
    if let (Dataplane::Xdp, Some(cfg)) = (asked, cfg) {
        let x =
            crate::xdp::XdpForwarding::start(cfg).map_err(|e| format!("`dataplane = xdp`: {e}"))?;
        let why = format!("`dataplane = xdp` on {}", x.attached());
        return Ok((Chosen::Xdp(Box::new(x)), why));
    }
    let (kernel, why) = match asked {
        Dataplane::Proxy | Dataplane::Xdp => (None, "`dataplane = proxy`".to_string()),
        Dataplane::Ipvs => {
            let k = KernelPlane::open().map_err(|e| format!("`dataplane = ipvs`: {e}"))?;
            (Some(k), "`dataplane = ipvs`".to_string())
        }
        Dataplane::Auto if !may_program() => (
            None,
            "auto: this process may not program the kernel's IPVS (it needs CAP_NET_ADMIN: run as root)"
                .to_string(),
        ),
        Dataplane::Auto => match KernelPlane::open() {
            Ok(k) => (Some(k), "auto: the kernel has IPVS".to_string()),
            Err(e) => (None, format!("auto: {e}")),
        },
    };
    if let (Some(_), Some(cfg)) = (&kernel, cfg)
        && let Some(name) = ftp_nat_service(&cfg.table())
    {
        // Now, while the director may still load modules.
        load_ftp_helper().map_err(|e| format!("virtual server `{name}`: {e}"))?;
    }
    if kernel.is_none()
        && asked == Dataplane::Auto
        && let Some(what) = cfg.and_then(Config::kernel_only)
    {
        return Err(format!(
            "{what}, which only the kernel's IPVS forwards, and this director would run the proxy data plane ({why}); \
             run it where the kernel has IPVS (and as root), or use NAT (`forwarding = nat`) with address-and-port services"
        ));
    }
    Ok((kernel.map_or(Chosen::Proxy, Chosen::Kernel), why))
}

/// The first active FTP service (TCP port 21) with a real server reached
/// by NAT: the kernel rewrites its passive and active data addresses only
/// with the `ip_vs_ftp` helper loaded.
pub fn ftp_nat_service(desired: &[fulcrum_config::TableService]) -> Option<&str> {
    desired
        .iter()
        .find(|s| {
            matches!(
                s.spec.key,
                ServiceKey::Addr {
                    proto: fulcrum_core::Protocol::Tcp,
                    port: 21,
                    ..
                }
            ) && s
                .dests
                .iter()
                .any(|(_, d)| d.fwd == fulcrum_core::Forwarding::Masq)
        })
        .map(|s| s.name.as_str())
}

/// Make sure the kernel's FTP helper for IPVS (`ip_vs_ftp`) is loaded.
///
/// # Errors
/// It is not, and `modprobe` cannot load it (no such module, or no
/// privilege to load modules any more).
pub fn load_ftp_helper() -> Result<(), String> {
    let loaded = || std::path::Path::new("/sys/module/ip_vs_ftp").exists();
    if loaded() {
        return Ok(());
    }
    let out = std::process::Command::new("modprobe")
        .arg("ip_vs_ftp")
        .output();
    if loaded() {
        tracing::info!("ip_vs_ftp loaded: FTP through NAT");
        return Ok(());
    }
    let why = match out {
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    Err(format!(
        "FTP through NAT needs the kernel's ip_vs_ftp module, which is not loaded and cannot be loaded here ({}); \
         run `modprobe ip_vs_ftp` as root (a running director gave up the privilege to load modules at start), then reload",
        if why.is_empty() {
            "modprobe failed".to_string()
        } else {
            why
        }
    ))
}

/// Whether this process holds CAP_NET_ADMIN (needed for every IPVS
/// command, listings included).
fn may_program() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::NET_ADMIN)
    })
}

impl KernelPlane {
    /// Connect to the kernel's IPVS.
    ///
    /// # Errors
    /// A message saying why (no IPVS in this kernel, no privileges).
    pub fn open() -> Result<KernelPlane, String> {
        let mut ipvs = Ipvs::open().map_err(|e| e.to_string())?;
        let (version, size) = ipvs.info().map_err(|e| e.to_string())?;
        tracing::info!(
            version = format!(
                "{}.{}.{}",
                version >> 16,
                (version >> 8) & 0xff,
                version & 0xff
            ),
            conn_table = size,
            "kernel IPVS data plane"
        );
        Ok(KernelPlane {
            ipvs,
            owned: HashSet::new(),
            sync: Vec::new(),
            state: None,
            drift: Vec::new(),
            known: None,
            header: Header { version, size },
            timeouts: None,
        })
    }

    /// Record the services Fulcrum installs at `path`, and adopt those an
    /// earlier director recorded there that the kernel still has: they are
    /// Fulcrum's to change and remove from now on.
    pub fn keep_state(&mut self, path: std::path::PathBuf) {
        let recorded = fulcrum_net::files::read_own(&path, 4 << 20)
            .map(|t| parse_owned(&t))
            .unwrap_or_default();
        if !recorded.is_empty() {
            let present: HashSet<ServiceKey> = match self.ipvs.services() {
                Ok(v) => v.into_iter().map(|s| s.spec.key).collect(),
                Err(_) => HashSet::new(),
            };
            self.owned = recorded.intersection(&present).copied().collect();
            tracing::info!(state = %path.display(), services = self.owned.len(), "kernel IPVS services of an earlier run adopted");
        }
        self.state = Some(path);
    }

    fn save_state(&self) {
        let Some(path) = &self.state else {
            return;
        };
        let mut keys: Vec<String> = self.owned.iter().map(key_args).collect();
        keys.sort();
        let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
        if let Err(e) = fulcrum_net::files::write_atomic(path, text.as_bytes(), 0o600) {
            tracing::warn!(state = %path.display(), error = %e, "cannot record the kernel services Fulcrum installed");
        }
    }

    /// Bring the kernel's table to `table` by difference; the number of
    /// changes made. A change the kernel refuses does not stop the others.
    ///
    /// # Errors
    /// The changes the kernel refused, and why; the rest are made, and the
    /// refused ones are tried again at the next change.
    pub fn mirror(&mut self, table: &Table) -> Result<usize, String> {
        let want = desired(table);
        // Plan against what the last mirror left, when it all went through;
        // if the kernel refuses something (it may have been changed behind
        // Fulcrum's back meanwhile), read it and plan again.
        let (mut changes, mut refused, mut kernel) = (Vec::new(), Vec::new(), Vec::new());
        for cached in [true, false] {
            kernel = match (cached, self.known.take()) {
                (true, Some(k)) => k,
                (true, None) => continue,
                (false, _) => reconcile::read(&mut self.ipvs).map_err(|e| e.to_string())?,
            };
            changes = reconcile::plan(&kernel, &want, &self.owned);
            refused = reconcile::apply(&mut self.ipvs, &changes);
            if refused.is_empty() {
                break;
            }
        }
        let n = changes.len();
        // What Fulcrum installed is now what it wants, whatever failed.
        let owned: HashSet<ServiceKey> = want.iter().map(|e| e.0.key).collect();
        if refused.is_empty() {
            // The kernel now holds the others' services as they were, and
            // Fulcrum's as wanted.
            let mut now: Vec<Entry> = kernel
                .into_iter()
                .filter(|e| !owned.contains(&e.0.key) && !self.owned.contains(&e.0.key))
                .collect();
            now.extend(want);
            self.known = Some(now);
        }
        if owned != self.owned {
            self.owned = owned;
            self.save_state();
        }
        self.drift.clear();
        if refused.is_empty() {
            return Ok(n);
        }
        let said: Vec<String> = refused.iter().map(|(c, e)| refusal(c, e)).collect();
        Err(format!(
            "the kernel refused {} of {n} change(s) to its IPVS table ({}); the others are made, and the director tries again at each change",
            refused.len(),
            said.join("; ")
        ))
    }

    /// Compare the kernel's table with `table`: the differences made behind
    /// Fulcrum's back (by ipvsadm, say) to the services it installed, said
    /// for people, when they are new since the last look; they stay until
    /// the next change to the table (a reload) puts the file's table back.
    pub fn drift(&mut self, table: &Table) -> Option<Vec<String>> {
        let kernel = reconcile::read(&mut self.ipvs).ok()?;
        let changes = reconcile::plan(&kernel, &desired(table), &self.owned);
        if !changes.is_empty() {
            // The next mirror must see the kernel as it is.
            self.known = None;
        }
        if changes == self.drift {
            return None;
        }
        self.drift = changes;
        Some(self.drift.iter().map(describe).collect())
    }

    /// The differences found by [`Self::drift`] and not yet undone.
    pub fn drift_count(&self) -> usize {
        self.drift.len()
    }

    /// Leave the table, the sync daemon and the record of what Fulcrum
    /// installed in place (`--keep-forwarding`): the kernel forwards on,
    /// and the next director adopts them.
    pub fn leave(&mut self) {
        self.save_state();
        tracing::info!(
            services = self.owned.len(),
            sync = ?self.sync.iter().map(|d| d.role.name()).collect::<Vec<_>>(),
            "kernel IPVS table left in place for the next director"
        );
    }

    /// The timeouts (`--set`), 0 leaving one unchanged.
    ///
    /// # Errors
    /// The kernel refusing.
    /// Sent only when they differ from those sent last.
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), String> {
        if self.timeouts == Some((tcp, tcpfin, udp)) {
            return Ok(());
        }
        self.ipvs
            .set_timeouts(tcp, tcpfin, udp)
            .map_err(|e| e.to_string())?;
        self.timeouts = Some((tcp, tcpfin, udp));
        Ok(())
    }

    /// Answer an ipvsadm command that reads or acts on what only the
    /// kernel has — listings with its counters, rates and connections, the
    /// timeouts, zeroing, the sync daemons — or `None` for a table change,
    /// which goes through the controller's table and [`Self::mirror`].
    pub fn answer(&mut self, cmd: &AdmCommand) -> Option<Reply> {
        let failed = |e: fulcrum_ipvs::driver::IpvsError| {
            Reply::failed(format!("{}\n", kernel_strerror(cmd, &e)), 255)
        };
        let services = |header, listing: Result<Vec<ServiceEntry>, _>| match listing {
            Ok(services) => Reply::Services { header, services },
            Err(e) => failed(e),
        };
        Some(match cmd {
            AdmCommand::List(l) => match l.target {
                ListTarget::All => services(Some(self.header), self.listing()),
                ListTarget::Service(k) => match self.listing() {
                    Ok(v) => match v.into_iter().find(|e| e.key == k) {
                        Some(e) => Reply::Services {
                            header: None,
                            services: vec![e],
                        },
                        None => Reply::failed("No such service\n", 1),
                    },
                    Err(e) => failed(e),
                },
                ListTarget::Connections => Reply::Connections {
                    conns: kernel_conns(),
                },
                ListTarget::Timeout => match self.ipvs.timeouts() {
                    Ok((t, f, u)) => Reply::Timeout {
                        tcp: t.into(),
                        tcpfin: f.into(),
                        udp: u.into(),
                    },
                    Err(e) => failed(e),
                },
                ListTarget::Daemon => match self.ipvs.daemons() {
                    Ok(daemons) => Reply::Daemons { daemons },
                    Err(e) => failed(e),
                },
            },
            AdmCommand::Save { .. } => services(None, self.listing()),
            AdmCommand::StartDaemon(a) => match self.ipvs.start_daemon(a) {
                Ok(()) => Reply::Done,
                Err(e) => failed(e),
            },
            AdmCommand::StopDaemon(role, _) => match self.ipvs.stop_daemon(*role) {
                Ok(()) => Reply::Done,
                Err(e) => failed(e),
            },
            _ => return None,
        })
    }

    /// Zero the kernel's counters (`-Z`), after the controller's table.
    ///
    /// # Errors
    /// The kernel refusing.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), String> {
        self.ipvs.zero(key).map_err(|e| e.to_string())
    }

    /// The kernel's table with its counters, as listings see it.
    ///
    /// # Errors
    /// The kernel refusing, or a reply that does not decode.
    pub fn listing(&mut self) -> Result<Vec<ServiceEntry>, fulcrum_ipvs::driver::IpvsError> {
        let services = self.ipvs.services()?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let dests = self.ipvs.dests(&s.spec.key)?;
            let (counters, rates) = split(&s.stats);
            out.push(ServiceEntry {
                key: s.spec.key,
                scheduler: s.spec.scheduler.name().to_string(),
                flags: s.spec.flags,
                persistent: s.spec.persistent,
                netmask: s.spec.netmask,
                one_packet: s.spec.one_packet,
                pe_name: s.spec.pe_name,
                counters,
                rates,
                dests: dests
                    .into_iter()
                    .map(|d| {
                        let (counters, rates) = split(&d.stats);
                        DestEntry {
                            addr: d.spec.addr,
                            port: d.spec.port,
                            fwd: d.spec.fwd,
                            weight: d.spec.weight,
                            u_threshold: d.spec.u_threshold,
                            l_threshold: d.spec.l_threshold,
                            activeconns: d.active,
                            inactconns: d.inactive,
                            persistconns: d.persistent,
                            counters,
                            rates,
                        }
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Run the sync daemons `want` (at most one of each role; none: stop
    /// Fulcrum's). A daemon of the same role already running with the same
    /// settings — left by an earlier Fulcrum — is adopted; one with other
    /// settings is replaced, with a warning, as the file decides what runs.
    /// A role that changes starts before the other stops (a backup turning
    /// master sends at once).
    ///
    /// # Errors
    /// The kernel refusing (no such interface, say); what ran before in
    /// that role is stopped.
    pub fn set_sync(&mut self, want: &[SyncDaemon]) -> Result<(), String> {
        if self.sync == want {
            return Ok(());
        }
        let mut result = Ok(());
        for d in want {
            if self.sync.contains(d) {
                continue;
            }
            self.stop_sync(d.role);
            if let Err(e) = self.start_sync(d) {
                result = Err(e);
            }
        }
        for role in [SyncRole::Master, SyncRole::Backup] {
            if !want.iter().any(|d| d.role == role) {
                self.stop_sync(role);
            }
        }
        result
    }

    /// Stop Fulcrum's daemon of `role`, if it runs one.
    fn stop_sync(&mut self, role: SyncRole) {
        let Some(at) = self.sync.iter().position(|d| d.role == role) else {
            return;
        };
        let old = self.sync.remove(at);
        match self.ipvs.stop_daemon(old.role) {
            Ok(()) => tracing::info!(role = old.role.name(), "connection sync daemon stopped"),
            Err(e) => {
                tracing::warn!(role = old.role.name(), error = %e, "cannot stop the connection sync daemon")
            }
        }
    }

    fn start_sync(&mut self, want: &SyncDaemon) -> Result<(), String> {
        let running = self.ipvs.daemons().map_err(|e| e.to_string())?;
        match running.iter().find(|d| d.role == want.role) {
            Some(d) if same_daemon(d, want) => {
                tracing::info!(role = want.role.name(), iface = %want.mcast_ifn, syncid = want.syncid, "connection sync daemon already running: adopted");
                self.sync.push(want.clone());
                return Ok(());
            }
            Some(d) => {
                tracing::warn!(role = d.role.name(), iface = %d.mcast_ifn, syncid = d.syncid, "a connection sync daemon with other settings runs: replaced by the file's");
                self.ipvs.stop_daemon(d.role).map_err(|e| e.to_string())?;
            }
            None => {}
        }
        self.ipvs.start_daemon(want).map_err(|e| {
            format!(
                "cannot start the {} connection sync daemon on {} (syncid {}): {e}",
                want.role.name(),
                want.mcast_ifn,
                want.syncid
            )
        })?;
        tracing::info!(role = want.role.name(), iface = %want.mcast_ifn, syncid = want.syncid, "connection sync daemon started");
        self.sync.push(want.clone());
        Ok(())
    }

    /// The sync daemons Fulcrum runs.
    pub fn sync_running(&self) -> &[SyncDaemon] {
        &self.sync
    }

    /// Remove the services Fulcrum installed, and nothing else.
    pub fn remove_all(&mut self) {
        let _ = self.set_sync(&[]);
        let owned = std::mem::take(&mut self.owned);
        self.save_state();
        for key in owned {
            match self.ipvs.delete_service(&key) {
                Ok(()) => tracing::info!(service = %key, "removed from the kernel"),
                Err(e) => {
                    tracing::warn!(service = %key, error = %e, "cannot remove from the kernel")
                }
            }
        }
    }
}

/// A service key as ipvsadm writes it (`-t 10.0.0.1:80`, `-f 5 -6`).
fn key_args(k: &ServiceKey) -> String {
    use fulcrum_core::{Family, Protocol};
    match *k {
        ServiceKey::Addr { proto, addr, port } => {
            let opt = match proto {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            match addr {
                std::net::IpAddr::V6(a) => format!("{opt} [{a}]:{port}"),
                std::net::IpAddr::V4(a) => format!("{opt} {a}:{port}"),
            }
        }
        ServiceKey::Fwmark {
            mark,
            family: Family::V4,
        } => format!("-f {mark}"),
        ServiceKey::Fwmark {
            mark,
            family: Family::V6,
        } => format!("-f {mark} -6"),
    }
}

/// The service keys of a state file written by [`KernelPlane::keep_state`];
/// lines that do not read are skipped.
fn parse_owned(text: &str) -> HashSet<ServiceKey> {
    text.lines()
        .filter_map(|l| {
            let mut args = vec!["-D".to_string()];
            args.extend(l.split_whitespace().map(str::to_string));
            match fulcrum_api::ipvsadm::parse_args(
                "ipvsadm",
                &args,
                &fulcrum_api::ipvsadm::NumericResolver,
            ) {
                Ok(fulcrum_api::ipvsadm::Invocation::Command(AdmCommand::DeleteService(k))) => {
                    Some(k)
                }
                _ => None,
            }
        })
        .collect()
}

/// One change to the kernel's table, said for people.
fn describe(c: &reconcile::Change) -> String {
    use reconcile::Change;
    match c {
        Change::AddService(s) => format!("service {} missing", s.key),
        Change::EditService(s) => format!("service {} changed", s.key),
        Change::DeleteService(k) => format!("service {k} not in the file"),
        Change::AddDest(k, d) => {
            format!("real server {} of {k} missing", addr_port(d.addr, d.port))
        }
        Change::EditDest(k, d) => {
            format!("real server {} of {k} changed", addr_port(d.addr, d.port))
        }
        Change::DeleteDest(k, a, p) => {
            format!("real server {} of {k} not Fulcrum's", addr_port(*a, *p))
        }
    }
}

/// A change the kernel refused, and why, said for people.
fn refusal(c: &reconcile::Change, e: &fulcrum_ipvs::driver::IpvsError) -> String {
    use reconcile::Change;
    let what = match c {
        Change::AddService(s) => format!("adding service {}", s.key),
        Change::EditService(s) => format!("changing service {}", s.key),
        Change::DeleteService(k) => format!("removing service {k}"),
        Change::AddDest(k, d) => format!("adding real server {} to {k}", addr_port(d.addr, d.port)),
        Change::EditDest(k, d) => {
            format!("changing real server {} of {k}", addr_port(d.addr, d.port))
        }
        Change::DeleteDest(k, a, p) => format!("removing real server {} of {k}", addr_port(*a, *p)),
    };
    match (c, e.errno()) {
        (Change::AddService(s) | Change::EditService(s), Some(libc_errno::ENOENT)) => format!(
            "{what}: this kernel has no `{}` scheduler (module ip_vs_{}); choose another",
            s.scheduler.name(),
            s.scheduler.name()
        ),
        _ => format!("{what}: {e}"),
    }
}

fn addr_port(a: std::net::IpAddr, p: u16) -> String {
    std::net::SocketAddr::new(a, p).to_string()
}

/// Whether the kernel's daemon `running` is `want`: the kernel fills in
/// its defaults (group, port, TTL, size) where `want` leaves them open.
fn same_daemon(running: &SyncDaemon, want: &SyncDaemon) -> bool {
    running.role == want.role
        && running.mcast_ifn == want.mcast_ifn
        && running.syncid == want.syncid
        && (want.sync_maxlen == 0 || running.sync_maxlen == want.sync_maxlen)
        && (want.mcast_group.is_none() || running.mcast_group == want.mcast_group)
        && (want.mcast_port == 0 || running.mcast_port == want.mcast_port)
        && (want.mcast_ttl == 0 || running.mcast_ttl == want.mcast_ttl)
}

/// The sync daemon for `settings` in `role`.
pub fn sync_daemon_for(settings: &fulcrum_config::SyncdSettings, role: SyncRole) -> SyncDaemon {
    SyncDaemon {
        role,
        mcast_ifn: settings.iface.clone(),
        syncid: settings.id,
        sync_maxlen: settings.maxlen,
        mcast_group: settings.group,
        mcast_port: settings.port,
        mcast_ttl: settings.ttl,
    }
}

/// The kernel's counters and rates in the listings' terms.
fn split(s: &KernelStats) -> (Counters, Rates) {
    (
        Counters {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
        },
        Rates {
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        },
    )
}

/// The kernel's connections (of this network namespace), as `-c` lists
/// them; none when the file cannot be read.
fn kernel_conns() -> Vec<ConnEntry> {
    let text = std::fs::read_to_string(fulcrum_ipvs::conns::PROC_PATH).unwrap_or_default();
    fulcrum_ipvs::conns::parse(&text)
}

/// What ipvsadm says for a kernel error (`ipvs_strerror`), falling back to
/// the kernel's own words.
fn kernel_strerror(cmd: &AdmCommand, e: &fulcrum_ipvs::driver::IpvsError) -> String {
    let errno = e.errno();
    match (cmd, errno) {
        (AdmCommand::StartDaemon(_), Some(libc_errno::EEXIST)) => "Daemon has already run".into(),
        (AdmCommand::StopDaemon(..), Some(libc_errno::ESRCH)) => "No daemon is running".into(),
        (AdmCommand::StartDaemon(_), Some(libc_errno::ENODEV)) => "No such device".into(),
        (AdmCommand::List(_), Some(libc_errno::ESRCH)) => "No such service".into(),
        _ => e.to_string(),
    }
}

/// The errno values ipvsadm names.
mod libc_errno {
    pub(super) const ENOENT: i32 = 2;
    pub(super) const ESRCH: i32 = 3;
    pub(super) const ENODEV: i32 = 19;
    pub(super) const EEXIST: i32 = 17;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_services_read_back() {
        let keys: Vec<ServiceKey> = [
            "tcp 10.0.0.1 80",
            "udp 2001:db8::1 53",
            "sctp 10.0.0.2 5060",
            "fwmark 5 v4",
            "fwmark 6 v6",
        ]
        .iter()
        .map(|s| {
            let w: Vec<&str> = s.split(' ').collect();
            match w[0] {
                "fwmark" => ServiceKey::Fwmark {
                    mark: w[1].parse().unwrap(),
                    family: if w[2] == "v4" {
                        fulcrum_core::Family::V4
                    } else {
                        fulcrum_core::Family::V6
                    },
                },
                p => ServiceKey::Addr {
                    proto: match p {
                        "tcp" => fulcrum_core::Protocol::Tcp,
                        "udp" => fulcrum_core::Protocol::Udp,
                        _ => fulcrum_core::Protocol::Sctp,
                    },
                    addr: w[1].parse().unwrap(),
                    port: w[2].parse().unwrap(),
                },
            }
        })
        .collect();
        let text: String = keys.iter().map(|k| format!("{}\n", key_args(k))).collect();
        let back = parse_owned(&format!("{text}garbage here\n-t\n\n"));
        assert_eq!(back, keys.into_iter().collect::<HashSet<_>>());
    }
}
