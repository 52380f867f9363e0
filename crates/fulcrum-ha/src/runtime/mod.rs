//! Director failover (`backup_active = 1`): this director's VRRP virtual
//! router, spoken over raw IP protocol 112 unicast to the other directors
//! named in lvs.cf (`primary`, `backup`, `peer`). The election itself is
//! [`crate::election`]; this task owns the socket, the clock and the
//! consequences: the floating addresses (through the address task), the
//! `active_cmd` / `inactive_cmd` / `notify_script` commands, link
//! monitoring, and the status shown by `fulcrum status` and the metrics.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fulcrum_api::control::ControlMsg;
use fulcrum_config::{Config, Host, VrrpVersion};
use fulcrum_net::raw::{VRRP_GROUP, is_local, link_up, vrrp_group_socket, vrrp_socket};
use tokio::net::UdpSocket;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::auth::Authenticator;
use crate::cluster::{Hello, Ipfail, PeerState, PingNodes, SyncPush, Verdict};
use crate::election::{Output, Router, RouterConfig, State};
use crate::vrrp::{self, Advert, Auth, Version, split_ipv4};

mod mail;
mod sync;

pub use mail::MailSettings;
use mail::{host_name, mailer};
use sync::{receive_config, send_config};

/// The virtual router id when `virtual_router_id` is not given.
pub const DEFAULT_VRID: u8 = 51;
/// Role priorities when `priority` is not given: the primary wins.
pub const PRIMARY_PRIORITY: u8 = 200;
/// The backup's and every peer's default priority.
pub const BACKUP_PRIORITY: u8 = 100;
/// How often links are looked at with `monitor_links = 1`.
const LINK_POLL: Duration = Duration::from_millis(100);
/// How long a command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// At most one warning per sender in this time, for refused adverts.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How often each ping node is pinged, and how long a reply may take.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Missed pings in a row before a ping node counts as lost.
const PING_LOSE_AFTER: u32 = 3;
/// How soon the same serial is sent to the same peer again.
const SYNC_RETRY: Duration = Duration::from_secs(5);
/// The priority a yielding director advertises.
const YIELD_PRIORITY: u8 = 1;

/// Whoever holds the floating addresses (the director's address task):
/// what failover asks of it.
pub trait FloatingAddresses: Send {
    /// Bring the addresses up (`true`: this director is active) or take
    /// them down; the receiver answers once done (`None`: nobody holds
    /// them any more).
    fn set_active(&self, on: bool) -> Option<oneshot::Receiver<()>>;
    /// Announce every address again (a healed partition).
    fn reannounce(&self);
}

/// What `fulcrum status` and the metrics show.
#[derive(Debug, Clone)]
pub struct HaStatus {
    /// `MASTER`, `BACKUP`, `FAULT` (a monitored link is down) or `INIT`.
    pub state: &'static str,
    /// Our priority.
    pub priority: u8,
    /// The virtual router id.
    pub vrid: u8,
    /// Our heartbeat address.
    pub local: Ipv4Addr,
    /// The other directors.
    pub peers: Vec<Ipv4Addr>,
    /// When the state last changed.
    pub since: Instant,
    /// Why.
    pub reason: String,
    /// State changes so far.
    pub transitions: u64,
    /// Adverts refused (bad TTL, unknown sender, malformed, failed
    /// authentication).
    pub refused: u64,
    /// What the other directors last said of themselves in their hellos
    /// (Fulcrum directors only: keepalived sends none), and when.
    pub heard: Vec<(Ipv4Addr, Hello, Instant)>,
}

/// Failover as lvs.cf describes it, resolved for this host.
#[derive(Debug, Clone)]
pub struct HaSettings {
    /// The election's settings.
    pub router: RouterConfig,
    /// Our heartbeat address.
    pub local: Ipv4Addr,
    /// The other directors' addresses.
    pub peers: Vec<Ipv4Addr>,
    /// The `auth_key_file` secret.
    pub key: Option<Vec<u8>>,
    /// Devices whose link state decides whether we may be active.
    pub links: Vec<String>,
    /// `active_cmd`.
    pub active_cmd: Option<String>,
    /// `inactive_cmd`.
    pub inactive_cmd: Option<String>,
    /// `notify_script`.
    pub notify_script: Option<String>,
    /// `ping_node`s (ipfail).
    pub ping_nodes: Vec<IpAddr>,
    /// `heartbeat_port`: the cluster channel (hellos, sync).
    pub heartbeat_port: u16,
    /// `serial_no` of the configuration (0 when none).
    pub serial: u64,
    /// `keepalive`: how often hellos go.
    pub keepalive: Duration,
    /// `deadtime`: how long a silent peer still counts.
    pub deadtime: Duration,
    /// `sync = 1`: the active director sends its lvs.cf to peers behind
    /// its serial.
    pub sync: bool,
    /// The file this configuration came from, and its text (for sync).
    pub source: Option<(PathBuf, Arc<str>)>,
    /// Where the last accepted sequence numbers of authenticated adverts
    /// and hellos are kept across restarts (beside the control socket).
    pub replay_state: Option<PathBuf>,
    /// Mail on every transition (`notify_email`, `smtp_server`).
    pub mail: Option<MailSettings>,
    /// `vrrp_multicast = 1`: adverts go to 224.0.0.18 instead of to each
    /// peer.
    pub multicast: bool,
    /// Piranha's second heartbeat path (`primary_private`,
    /// `backup_private`).
    pub private: Option<PrivatePath>,
}

/// The private heartbeat path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivatePath {
    /// Our private address.
    pub local: Ipv4Addr,
    /// Each peer's private address, with the (public) address it stands
    /// for in the election.
    pub peers: Vec<(Ipv4Addr, Ipv4Addr)>,
}

fn resolve(h: &Host) -> Result<IpAddr, String> {
    match h {
        Host::Addr(a) => Ok(*a),
        Host::Name(n) => (n.as_str(), 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next())
            .map(|s| s.ip())
            .ok_or_else(|| format!("cannot resolve director `{n}`; write its address instead")),
    }
}

fn centiseconds(d: Duration) -> u16 {
    u16::try_from(d.as_millis() / 10).unwrap_or(u16::MAX)
}

/// Read `auth_key_file`: at least 16 bytes of secret, surrounding
/// whitespace ignored.
pub fn read_key(path: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!("auth_key_file {path}: {e}; create it with e.g. `head -c 32 /dev/urandom | base64 > {path}` and copy it to every director")
    })?;
    let key = bytes.trim_ascii().to_vec();
    if key.len() < 16 {
        return Err(format!(
            "auth_key_file {path}: the key is {} bytes; use at least 16 (e.g. `head -c 32 /dev/urandom | base64 > {path}`)",
            key.len()
        ));
    }
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = path,
                "auth_key_file is readable by other users; chmod 600 it"
            );
        }
    }
    Ok(key)
}

impl HaSettings {
    /// Why moving from these settings to `new` cannot happen on a reload:
    /// a change of this director's address, of `heartbeat_port`, or
    /// turning sync on or off.
    pub fn needs_restart(&self, new: &HaSettings) -> Option<String> {
        if self.local != new.local {
            return Some(format!(
                "this director's heartbeat address would change from {} to {}; that needs a restart of the director",
                self.local, new.local
            ));
        }
        if self.heartbeat_port != new.heartbeat_port {
            return Some(format!(
                "`heartbeat_port` would change from {} to {}; that needs a restart of every director",
                self.heartbeat_port, new.heartbeat_port
            ));
        }
        let syncs = |h: &HaSettings| h.sync && h.key.is_some();
        (syncs(self) != syncs(new)).then(|| {
            "the new file turns configuration sync on or off; that needs a restart of the director"
                .into()
        })
    }

    /// `None` without `backup_active = 1`.
    ///
    /// # Errors
    /// A director cannot be resolved, none or several of them are on this
    /// host, or the key file cannot be read.
    pub fn from_config(cfg: &Config) -> Result<Option<HaSettings>, String> {
        let g = &cfg.global;
        if !g.failover() {
            return Ok(None);
        }
        let primary = g.primary.as_ref().map(resolve).transpose()?;
        let backup = g.backup.as_ref().map(resolve).transpose()?;
        let mut all: Vec<(IpAddr, u8)> = Vec::new();
        for (a, prio) in primary
            .map(|a| (a, PRIMARY_PRIORITY))
            .into_iter()
            .chain(backup.map(|a| (a, BACKUP_PRIORITY)))
            .chain(g.peer.iter().map(|a| (*a, BACKUP_PRIORITY)))
        {
            if !all.iter().any(|(b, _)| *b == a) {
                all.push((a, prio));
            }
        }
        let mut v4 = Vec::new();
        for (a, p) in &all {
            match a {
                IpAddr::V4(a) => v4.push((*a, *p)),
                IpAddr::V6(a) => {
                    return Err(format!(
                        "director {a}: failover runs over IPv4 in this version; give `primary`, `backup` and `peer` IPv4 addresses"
                    ));
                }
            }
        }
        let listed = || {
            v4.iter()
                .map(|(a, _)| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let locals: Vec<(Ipv4Addr, u8)> = v4
            .iter()
            .copied()
            .filter(|(a, _)| is_local((*a).into()))
            .collect();
        let (local, role_priority) = match locals.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "none of the directors ({}) is an address of this host; put this director's heartbeat address on an interface, or list it as `primary`, `backup` or `peer`",
                    listed()
                ));
            }
            _ => {
                return Err(format!(
                    "several directors ({}) are addresses of this host; each director must have its own heartbeat address",
                    locals
                        .iter()
                        .map(|(a, _)| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        };
        let peers: Vec<Ipv4Addr> = v4.iter().map(|(a, _)| *a).filter(|a| *a != local).collect();
        let private = private_path(g, primary, backup, local)?;
        let version = match g.vrrp_version.unwrap_or_default() {
            VrrpVersion::V2 => Version::V2,
            VrrpVersion::V3 => Version::V3,
        };
        let interval = g.effective_keepalive().0;
        let interval_cs = match version {
            Version::V2 => u16::try_from(interval.as_secs()).unwrap_or(255) * 100,
            Version::V3 => centiseconds(interval),
        };
        let addrs: Vec<IpAddr> = cfg
            .floating_addresses()
            .iter()
            .map(|f| f.addr)
            .filter(|a| a.is_ipv4() && !a.is_loopback())
            .collect();
        let key = g.auth_key_file.as_deref().map(read_key).transpose()?;
        let mut links: Vec<String> = Vec::new();
        if g.monitor_links == Some(true) {
            for f in cfg.floating_addresses() {
                if let Some(d) = f.device
                    && !links.contains(&d)
                {
                    links.push(d);
                }
            }
        }
        Ok(Some(HaSettings {
            router: RouterConfig {
                version,
                vrid: g.virtual_router_id.unwrap_or(DEFAULT_VRID),
                priority: g.priority.unwrap_or(role_priority),
                interval_cs,
                preempt: g.effective_preempt(),
                addrs,
                local: local.into(),
                auth: Auth::None,
                deadtime: Some(g.effective_deadtime().0),
                preempt_delay: g.preempt_delay.map_or(Duration::ZERO, |s| s.0),
            },
            local,
            peers,
            key,
            links,
            active_cmd: g.active_cmd.clone(),
            inactive_cmd: g.inactive_cmd.clone(),
            notify_script: g.notify_script.clone(),
            ping_nodes: g.ping_node.clone(),
            heartbeat_port: g.effective_heartbeat_port(),
            serial: g.serial_no.unwrap_or(0),
            keepalive: interval,
            deadtime: g.effective_deadtime().0,
            sync: g.sync == Some(true),
            source: None,
            replay_state: None,
            multicast: g.vrrp_multicast == Some(true),
            private,
            mail: match (&g.smtp_server, g.notify_email.is_empty()) {
                (Some(hp), false) => Some(MailSettings {
                    server: std::net::SocketAddr::new(hp.addr, hp.port.unwrap_or(25)),
                    from: g
                        .notify_email_from
                        .clone()
                        .unwrap_or_else(|| format!("fulcrum@{}", host_name())),
                    to: g.notify_email.clone(),
                }),
                _ => None,
            },
        }))
    }
}

/// The private heartbeat path, when both `primary_private` and
/// `backup_private` are given (IPv4) and this director is the primary or
/// the backup.
fn private_path(
    g: &fulcrum_config::Global,
    primary: Option<IpAddr>,
    backup: Option<IpAddr>,
    local: Ipv4Addr,
) -> Result<Option<PrivatePath>, String> {
    let (Some(pp), Some(bp)) = (&g.primary_private, &g.backup_private) else {
        return Ok(None);
    };
    let v4 = |h: &Host| match resolve(h)? {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(format!(
            "private heartbeat address {a}: failover runs over IPv4 in this version"
        )),
    };
    let (pp, bp) = (v4(pp)?, v4(bp)?);
    let me = IpAddr::V4(local);
    Ok(match (primary, backup) {
        (Some(p), Some(IpAddr::V4(b))) if p == me => Some(PrivatePath {
            local: pp,
            peers: vec![(bp, b)],
        }),
        (Some(IpAddr::V4(p)), Some(b)) if b == me => Some(PrivatePath {
            local: bp,
            peers: vec![(pp, p)],
        }),
        _ => None,
    })
}

/// Sequence numbers start at the wall-clock time in microseconds, so a
/// restarted director keeps counting upwards.
fn new_authenticator(key: &[u8]) -> Authenticator {
    new_authenticator_after(key, 0)
}

/// The same, and above `sent` (what an earlier run sent: a clock set back
/// must not make a restarted director's adverts look like replays).
fn new_authenticator_after(key: &[u8], sent: u64) -> Authenticator {
    let micros = crate::auth::wall_clock_us();
    Authenticator::new(key, micros.max(sent.saturating_add(1)))
}

/// The largest replay state file read.
const MAX_REPLAY_STATE: u64 = 64 * 1024;

/// What an earlier run recorded of the authenticated channels: per channel
/// (`advert`, `hello`), the last sequence accepted from each sender and the
/// last one sent. Lines `advert ADDR SEQ`, `sent advert SEQ`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ReplayState {
    accepted: Vec<(String, IpAddr, u64)>,
    sent: Vec<(String, u64)>,
}

impl ReplayState {
    fn parse(text: &str) -> ReplayState {
        let mut st = ReplayState::default();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["sent", ch, seq] => {
                    if let Ok(seq) = seq.parse() {
                        st.sent.push(((*ch).to_string(), seq));
                    }
                }
                [ch, addr, seq] => {
                    if let (Ok(a), Ok(seq)) = (addr.parse(), seq.parse()) {
                        st.accepted.push(((*ch).to_string(), a, seq));
                    }
                }
                _ => {}
            }
        }
        st
    }

    fn sent(&self, channel: &str) -> u64 {
        self.sent
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0)
    }

    /// Give `auth` what was accepted on `channel` before.
    fn restore(&self, channel: &str, auth: &mut Authenticator) {
        for (c, a, seq) in &self.accepted {
            if c == channel {
                auth.remember(*a, *seq);
            }
        }
    }

    fn render(channels: &[(&str, &Authenticator)]) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (ch, auth) in channels {
            let _ = writeln!(out, "sent {ch} {}", auth.next_seq().saturating_sub(1));
            for (a, seq) in auth.accepted() {
                let _ = writeln!(out, "{ch} {a} {seq}");
            }
        }
        out
    }
}

/// Which socket an advert goes out on or came in from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The heartbeat address (unicast, or sending to the group).
    Main,
    /// The group socket (`vrrp_multicast = 1`).
    Group,
    /// The private heartbeat path.
    Private,
}

/// The running failover task.
pub struct Ha {
    settings: HaSettings,
    router: Router,
    sock: UdpSocket,
    /// With `vrrp_multicast = 1`: the group's adverts.
    group_sock: Option<UdpSocket>,
    /// The private heartbeat path's socket.
    priv_sock: Option<UdpSocket>,
    auth: Option<Authenticator>,
    addresses: Box<dyn FloatingAddresses>,
    commands: mpsc::UnboundedSender<String>,
    status: watch::Sender<HaStatus>,
    epoch: Instant,
    /// A monitored link is down.
    fault: Option<String>,
    warned: HashMap<IpAddr, Instant>,
    /// The cluster channel (hellos) on `heartbeat_port`.
    hello_sock: UdpSocket,
    hello_auth: Option<Authenticator>,
    pings: PingNodes,
    ping_tx: mpsc::UnboundedSender<(usize, bool)>,
    ping_rx: mpsc::UnboundedReceiver<(usize, bool)>,
    ping_tasks: Vec<tokio::task::JoinHandle<()>>,
    ipfail: Ipfail,
    /// ipfail made us yield: we advertise priority 1.
    yielding: bool,
    /// The last hello heard from each peer.
    peer_hellos: HashMap<IpAddr, Hello>,
    /// Configuration sync, with `sync = 1`.
    sync: Option<SyncLink>,
    /// Alerts to the mail task, and the settings it runs with.
    mail: Option<(MailSettings, mpsc::UnboundedSender<(String, String)>)>,
    /// Whether a failure to record sequence numbers was logged.
    replay_warned: bool,
}

/// Configuration sync's side of the cluster channel.
struct SyncLink {
    listener: TcpListener,
    auth: Arc<Mutex<Authenticator>>,
    /// The serial last sent to each peer, and when.
    pushed: HashMap<IpAddr, (u64, Instant)>,
    control: mpsc::Sender<ControlMsg>,
}

impl std::fmt::Debug for Ha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ha")
            .field("local", &self.settings.local)
            .field("state", &self.router.state())
            .finish()
    }
}

/// Run commands one after another, in the order of the transitions.
async fn command_runner(mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(cmd) = rx.recv().await {
        match fulcrum_health::probe::run_program(&cmd, COMMAND_TIMEOUT).await {
            Ok((_, st)) if st.success() => tracing::info!(command = %cmd, "command done"),
            Ok((_, st)) => tracing::warn!(command = %cmd, status = %st, "command failed"),
            Err(e) => tracing::warn!(command = %cmd, error = %e, "command did not run"),
        }
    }
}

impl Ha {
    /// Open the socket and get ready; nothing is sent before
    /// [`run`](Self::run).
    ///
    /// # Errors
    /// The raw socket cannot be opened.
    pub fn new(
        settings: HaSettings,
        addresses: Box<dyn FloatingAddresses>,
        control: mpsc::Sender<ControlMsg>,
    ) -> Result<(Ha, watch::Receiver<HaStatus>), String> {
        let sock = vrrp_socket(settings.local, settings.multicast)?;
        let priv_sock = match &settings.private {
            Some(p) => Some(vrrp_socket(p.local, false)?),
            None => None,
        };
        let group_sock = if settings.multicast {
            Some(vrrp_group_socket(settings.local)?)
        } else {
            None
        };
        // Replays of what came before a restart stay refused after it.
        let replay = settings
            .replay_state
            .as_deref()
            .and_then(|p| fulcrum_net::files::read_own(p, MAX_REPLAY_STATE))
            .map(|t| ReplayState::parse(&t))
            .unwrap_or_default();
        let restored = |channel: &str, key: &[u8]| {
            let mut a = new_authenticator_after(key, replay.sent(channel));
            replay.restore(channel, &mut a);
            a
        };
        let auth = settings.key.as_deref().map(|k| restored("advert", k));
        let hello_auth = settings.key.as_deref().map(|k| restored("hello", k));
        let hello_at = SocketAddrV4::new(settings.local, settings.heartbeat_port);
        let hello_sock = std::net::UdpSocket::bind(hello_at)
            .and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            })
            .map_err(|e| {
                format!("cannot bind the cluster channel on {hello_at} (UDP, `heartbeat_port`): {e}; choose a free heartbeat_port, the same on every director")
            })?;
        let (ping_tx, ping_rx) = mpsc::unbounded_channel();
        let sync = match (&settings.key, settings.sync) {
            (Some(key), true) => {
                let l = std::net::TcpListener::bind(hello_at)
                    .and_then(|l| {
                        l.set_nonblocking(true)?;
                        TcpListener::from_std(l)
                    })
                    .map_err(|e| format!("cannot listen for configuration sync on {hello_at} (TCP, `heartbeat_port`): {e}"))?;
                Some(SyncLink {
                    listener: l,
                    auth: Arc::new(Mutex::new(new_authenticator(key))),
                    pushed: HashMap::new(),
                    control,
                })
            }
            _ => None,
        };
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(command_runner(rx));
        let (status, status_rx) = watch::channel(HaStatus {
            state: "INIT",
            priority: settings.router.priority,
            vrid: settings.router.vrid,
            local: settings.local,
            peers: settings.peers.clone(),
            since: Instant::now(),
            reason: "starting".into(),
            transitions: 0,
            refused: 0,
            heard: Vec::new(),
        });
        Ok((
            Ha {
                router: Router::new(settings.router.clone()),
                settings,
                sock,
                group_sock,
                priv_sock,
                auth,
                addresses,
                commands,
                status,
                epoch: Instant::now(),
                fault: None,
                warned: HashMap::new(),
                hello_sock,
                hello_auth,
                pings: PingNodes::new(0, PING_LOSE_AFTER),
                ping_tx,
                ping_rx,
                ping_tasks: Vec::new(),
                ipfail: Ipfail::new(Duration::ZERO, Duration::ZERO),
                yielding: false,
                peer_hellos: HashMap::new(),
                sync,
                mail: None,
                replay_warned: false,
            },
            status_rx,
        ))
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn send(&mut self, a: &Advert) {
        let to = if self.settings.multicast {
            vec![VRRP_GROUP]
        } else {
            self.settings.peers.clone()
        };
        self.send_on(Path::Main, self.settings.local, &to, a);
        if let Some(p) = self.settings.private.clone() {
            let to: Vec<Ipv4Addr> = p.peers.iter().map(|(a, _)| *a).collect();
            self.send_on(Path::Private, p.local, &to, a);
        }
    }

    fn send_on(&mut self, path: Path, local: Ipv4Addr, to: &[Ipv4Addr], a: &Advert) {
        let src = IpAddr::V4(local);
        let sock = match path {
            Path::Private => self.priv_sock.as_ref(),
            _ => Some(&self.sock),
        };
        let Some(sock) = sock else { return };
        for &peer in to {
            let dst = IpAddr::V4(peer);
            let bytes = match a.encode(src, dst) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode an advert");
                    return;
                }
            };
            let bytes = match &mut self.auth {
                Some(auth) => auth.seal(src, dst, &bytes),
                None => bytes,
            };
            if let Err(e) = sock.try_send_to(&bytes, SocketAddrV4::new(peer, 0).into()) {
                tracing::debug!(%peer, error = %e, "advert not sent");
            }
        }
    }

    /// Record the last accepted sequence numbers (and ours), so that a
    /// restarted director refuses replays of what it accepted before.
    fn save_replay(&mut self) {
        let Some(path) = &self.settings.replay_state else {
            return;
        };
        let mut channels = Vec::new();
        if let Some(a) = &self.auth {
            channels.push(("advert", a));
        }
        if let Some(a) = &self.hello_auth {
            channels.push(("hello", a));
        }
        if channels.is_empty() {
            return;
        }
        let text = ReplayState::render(&channels);
        if let Err(e) = fulcrum_net::files::write_atomic(path, text.as_bytes(), 0o600)
            && !self.replay_warned
        {
            tracing::warn!(state = %path.display(), error = %e, "cannot record the adverts' sequence numbers: after a restart, adverts recorded before it would be accepted");
            self.replay_warned = true;
        }
    }

    fn refuse(&mut self, from: IpAddr, why: &str) {
        self.status.send_modify(|s| s.refused += 1);
        let now = Instant::now();
        let due = self
            .warned
            .get(&from)
            .is_none_or(|t| now.duration_since(*t) >= WARN_EVERY);
        if due {
            self.warned.insert(from, now);
            tracing::warn!(%from, "advert refused: {why}");
        }
    }

    /// Start, restart or stop the mail task to match the settings.
    fn follow_mail(&mut self) {
        if self.mail.as_ref().map(|(m, _)| m) == self.settings.mail.as_ref() {
            return;
        }
        self.mail = self.settings.mail.clone().map(|m| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(mailer(m.clone(), rx));
            (m, tx)
        });
    }

    fn notify(&self, state: &str, reason: &str) {
        if let Some((_, tx)) = &self.mail {
            let host = host_name();
            let subject = format!(
                "[{host}] Fulcrum director {} is now {state} (virtual router {})",
                self.settings.local, self.settings.router.vrid
            );
            let peers: Vec<String> = self
                .settings
                .peers
                .iter()
                .map(ToString::to_string)
                .collect();
            let body = format!(
                "Director {} ({host}) is now {state}.\nReason: {reason}\nPriority: {}\nOther directors: {}\n",
                self.settings.local,
                self.settings.router.priority,
                peers.join(", ")
            );
            let _ = tx.send((subject, body));
        }
        if let Some(s) = &self.settings.notify_script {
            let _ = self.commands.send(format!(
                "{s} INSTANCE fulcrum_{} {state} {}",
                self.settings.router.vrid, self.settings.router.priority
            ));
        }
    }

    async fn set_active(&self, on: bool) {
        if let Some(done) = self.addresses.set_active(on) {
            let _ = done.await;
        }
    }

    /// Do what the election asks.
    async fn flush(&mut self) {
        while let Some(o) = self.router.poll_output() {
            match o {
                Output::Send(a) => self.send(&a),
                Output::Reannounce => {
                    tracing::warn!("another master was heard: announcing the addresses again");
                    self.addresses.reannounce();
                }
                Output::StateChanged { from, to, reason } => {
                    let name = match (to, &self.fault) {
                        (State::Master, _) => "MASTER",
                        (State::Backup, _) => "BACKUP",
                        (State::Initialize, Some(_)) => "FAULT",
                        (State::Initialize, None) => "STOP",
                    };
                    let reason = match (&self.fault, to) {
                        (Some(f), State::Initialize) => f.clone(),
                        _ => reason,
                    };
                    tracing::info!(state = name, priority = self.settings.router.priority, %reason, "failover: now {name}");
                    if to == State::Master {
                        self.set_active(true).await;
                        if let Some(c) = &self.settings.active_cmd {
                            let _ = self.commands.send(c.clone());
                        }
                    } else if from == State::Master {
                        self.set_active(false).await;
                        if let Some(c) = &self.settings.inactive_cmd {
                            let _ = self.commands.send(c.clone());
                        }
                    }
                    self.notify(name, &reason);
                    self.status.send_modify(|s| {
                        s.state = if name == "STOP" { "INIT" } else { name };
                        s.since = Instant::now();
                        s.reason = reason;
                        s.transitions += 1;
                    });
                }
            }
        }
    }

    /// Read what one of the sockets holds.
    fn receive(&mut self, path: Path) {
        let mut buf = [0u8; 2048];
        loop {
            let sock = match path {
                Path::Main => Some(&self.sock),
                Path::Group => self.group_sock.as_ref(),
                Path::Private => self.priv_sock.as_ref(),
            };
            let Some(sock) = sock else { return };
            let n = match sock.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "VRRP socket read");
                    return;
                }
            };
            let Some((src, dst, ttl, payload)) = split_ipv4(&buf[..n]) else {
                continue;
            };
            let from = IpAddr::V4(src);
            // On the private path a peer speaks from its private address;
            // the election knows it by its public one.
            let who = match (&path, &self.settings.private) {
                (Path::Private, Some(p)) => p
                    .peers
                    .iter()
                    .find(|(p, _)| *p == src)
                    .map_or(src, |(_, public)| *public),
                _ => src,
            };
            if src == self.settings.local {
                continue;
            }
            if !self.settings.peers.contains(&who) {
                self.refuse(
                    from,
                    "not a director of this file (`primary`, `backup` or `peer`)",
                );
                continue;
            }
            if ttl != 255 {
                self.refuse(from, &format!("TTL {ttl}, not 255: it crossed a router"));
                continue;
            }
            let opened = match &mut self.auth {
                Some(auth) => auth
                    .open(from, dst.into(), payload)
                    .map_err(|e| e.to_string()),
                None => Ok(payload),
            };
            let body = match opened {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    self.refuse(from, &e);
                    continue;
                }
            };
            if self.auth.is_some() {
                self.save_replay();
            }
            match vrrp::Advert::decode(&body, from, dst.into()) {
                Ok(a) if a.vrid != self.settings.router.vrid => {}
                Ok(a) if a.version != self.settings.router.version => self.refuse(
                    from,
                    &format!(
                        "VRRP version {} on virtual router {}; set the same `vrrp_version` on every director",
                        if a.version == Version::V2 { 2 } else { 3 },
                        a.vrid
                    ),
                ),
                Ok(a) => {
                    let now = self.now();
                    self.router.handle_advert(now, IpAddr::V4(who), &a);
                }
                Err(e) => self.refuse(from, &format!("malformed: {e}")),
            }
        }
    }

    fn links_fault(&self) -> Option<String> {
        self.settings
            .links
            .iter()
            .find(|d| !link_up(d))
            .map(|d| format!("link {d} is down"))
    }

    /// Ping every ping node every second, reporting to the loop; ipfail
    /// compares reach with the peers' hellos.
    fn start_pings(&mut self) {
        for t in self.ping_tasks.drain(..) {
            t.abort();
        }
        self.pings = PingNodes::new(self.settings.ping_nodes.len(), PING_LOSE_AFTER);
        // A peer must be better for two intervals (ipfail's delay_giveup)
        // and counts as live for deadtime after its last hello.
        self.ipfail = Ipfail::new(self.settings.deadtime, self.settings.keepalive * 2);
        for (i, node) in self.settings.ping_nodes.clone().into_iter().enumerate() {
            let tx = self.ping_tx.clone();
            self.ping_tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(PING_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let ok = fulcrum_health::probe::ping(node, PING_EVERY.mul_f32(0.9))
                        .await
                        .is_ok();
                    if tx.send((i, ok)).is_err() {
                        return;
                    }
                }
            }));
        }
    }

    /// Give the election the configured settings, with priority 1 while
    /// ipfail makes us yield, and show that priority.
    fn apply_router(&mut self) {
        let mut r = self.settings.router.clone();
        if self.yielding {
            r.priority = YIELD_PRIORITY;
        }
        let p = r.priority;
        self.router.reconfigure(r);
        self.status.send_modify(|s| s.priority = p);
    }

    fn hello_state(&self) -> PeerState {
        match (self.router.state(), &self.fault) {
            (_, Some(_)) => PeerState::Fault,
            (State::Master, None) => PeerState::Master,
            (State::Backup, None) => PeerState::Backup,
            (State::Initialize, None) => PeerState::Init,
        }
    }

    /// Say what we see to every peer.
    fn send_hellos(&mut self) {
        let hello = Hello {
            state: self.hello_state(),
            priority: self.settings.router.priority,
            reach: self.pings.reach(),
            nodes: self.pings.nodes(),
            serial: self.settings.serial,
        }
        .encode();
        let src = IpAddr::V4(self.settings.local);
        for peer in self.settings.peers.clone() {
            let bytes = match &mut self.hello_auth {
                Some(a) => a.seal(src, peer.into(), &hello),
                None => hello.to_vec(),
            };
            let to = SocketAddrV4::new(peer, self.settings.heartbeat_port);
            if let Err(e) = self.hello_sock.try_send_to(&bytes, to.into()) {
                tracing::debug!(%peer, error = %e, "hello not sent");
            }
        }
    }

    fn receive_hellos(&mut self) {
        let mut buf = [0u8; 512];
        loop {
            let (n, from) = match self.hello_sock.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster channel read");
                    return;
                }
            };
            let from_ip = from.ip();
            let known = matches!(from_ip, IpAddr::V4(a) if self.settings.peers.contains(&a));
            if !known {
                self.refuse(
                    from_ip,
                    "hello from an address that is not a director of this file",
                );
                continue;
            }
            let local = IpAddr::V4(self.settings.local);
            let opened = match &mut self.hello_auth {
                Some(a) => a
                    .open(from_ip, local, &buf[..n])
                    .map(<[u8]>::to_vec)
                    .map_err(|e| e.to_string()),
                None => Ok(buf[..n].to_vec()),
            };
            if opened.is_ok() && self.hello_auth.is_some() {
                self.save_replay();
            }
            match opened.and_then(|b| Hello::decode(&b).map_err(|e| e.to_string())) {
                Ok(h) => {
                    let now = self.now();
                    self.ipfail.heard(now, from_ip, h.reach);
                    self.peer_hellos.insert(from_ip, h);
                    if let IpAddr::V4(a) = from_ip {
                        let at = Instant::now();
                        self.status.send_modify(|s| {
                            s.heard.retain(|(p, _, _)| *p != a);
                            s.heard.push((a, h, at));
                            s.heard.sort_by_key(|(p, _, _)| *p);
                        });
                    }
                }
                Err(e) => self.refuse(from_ip, &format!("hello: {e}")),
            }
        }
    }

    /// The active director sends its lvs.cf to every peer whose hello shows
    /// an older serial (again after a while if it is still behind).
    fn push_config(&mut self) {
        let (Some(sync), Some((_, text))) = (&mut self.sync, &self.settings.source) else {
            return;
        };
        if self.router.state() != State::Master {
            return;
        }
        let serial = self.settings.serial;
        for (peer, h) in &self.peer_hellos {
            if h.serial >= serial {
                continue;
            }
            let recent = sync
                .pushed
                .get(peer)
                .is_some_and(|(s, at)| *s == serial && at.elapsed() < SYNC_RETRY);
            if recent {
                continue;
            }
            let IpAddr::V4(to) = *peer else { continue };
            sync.pushed.insert(*peer, (serial, Instant::now()));
            tracing::info!(%peer, serial, theirs = h.serial, "configuration sync: sending lvs.cf");
            tokio::spawn(send_config(
                self.settings.local,
                to,
                self.settings.heartbeat_port,
                sync.auth.clone(),
                SyncPush {
                    serial,
                    text: text.to_string(),
                },
            ));
        }
    }

    fn accept_config(&mut self, stream: TcpStream, from: std::net::SocketAddr) {
        let Some(sync) = &self.sync else { return };
        let known = matches!(from.ip(), IpAddr::V4(a) if self.settings.peers.contains(&a));
        if !known {
            self.refuse(
                from.ip(),
                "configuration sync from an address that is not a director of this file",
            );
            return;
        }
        let Some((path, _)) = &self.settings.source else {
            tracing::warn!(from = %from.ip(), "configuration sync: this director runs without a configuration file; refused");
            return;
        };
        tokio::spawn(receive_config(
            stream,
            from.ip(),
            IpAddr::V4(self.settings.local),
            sync.auth.clone(),
            self.settings.serial,
            path.clone(),
            sync.control.clone(),
        ));
    }

    /// ipfail: yield to a peer that reaches more ping nodes; stop yielding
    /// when none does.
    fn judge_ping_nodes(&mut self) {
        if self.settings.ping_nodes.is_empty() {
            return;
        }
        let now = self.now();
        let ours = self.pings.reach();
        match (self.ipfail.judge(now, ours), self.yielding) {
            (Verdict::Yield { peer, theirs, ours }, false) => {
                let reason = format!(
                    "ipfail: {peer} reaches {theirs} of {} ping nodes, this director {ours}",
                    self.pings.nodes()
                );
                tracing::warn!(%reason, "failover: yielding");
                self.yielding = true;
                self.router.step_down(now, reason);
                self.apply_router();
            }
            (Verdict::Fine, true) => {
                tracing::info!(
                    reach = ours,
                    of = self.pings.nodes(),
                    "ipfail: no peer reaches more ping nodes; back to the configured priority"
                );
                self.yielding = false;
                self.apply_router();
            }
            _ => {}
        }
    }

    /// New settings from a reload (same heartbeat address).
    fn reconfigure(&mut self, mut new: HaSettings) {
        // Where the state lives is the director's, not the file's.
        if new.replay_state.is_none() {
            new.replay_state.clone_from(&self.settings.replay_state);
        }
        if new.key != self.settings.key {
            self.auth = new.key.as_deref().map(new_authenticator);
            self.hello_auth = new.key.as_deref().map(new_authenticator);
            if let (Some(sync), Some(key)) = (&mut self.sync, new.key.as_deref()) {
                sync.auth = Arc::new(Mutex::new(new_authenticator(key)));
            }
        }
        let pings_changed = new.ping_nodes != self.settings.ping_nodes;
        self.status.send_modify(|s| {
            s.vrid = new.router.vrid;
            s.peers.clone_from(&new.peers);
        });
        tracing::info!(priority = new.router.priority, peers = ?new.peers, vrid = new.router.vrid, "failover: settings reloaded");
        self.settings = new;
        self.follow_mail();
        if pings_changed {
            self.yielding = false;
            self.start_pings();
        }
        self.apply_router();
    }

    /// Take part in the election until `stop` fires; then hand over at
    /// once (a priority-0 advert) and give the addresses up. Settings from
    /// reloads arrive on `reload`.
    pub async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        mut reload: mpsc::UnboundedReceiver<HaSettings>,
    ) {
        tracing::info!(
            local = %self.settings.local,
            peers = ?self.settings.peers,
            priority = self.settings.router.priority,
            vrid = self.settings.router.vrid,
            "failover: joining the election"
        );
        self.follow_mail();
        self.fault = self.links_fault();
        if self.fault.is_none() {
            let now = self.now();
            self.router.start(now);
        } else {
            tracing::warn!(reason = ?self.fault, "failover: not joining while a link is down");
            self.status.send_modify(|s| {
                s.state = "FAULT";
                s.reason = self.fault.clone().unwrap_or_default();
            });
        }
        self.start_pings();
        let mut hellos = tokio::time::interval(self.settings.keepalive);
        hellos.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut links = tokio::time::interval(LINK_POLL);
        links.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let monitor = !self.settings.links.is_empty();
        loop {
            self.flush().await;
            let deadline = self
                .router
                .poll_timeout()
                .map(|t| tokio::time::Instant::from_std(self.epoch + t));
            tokio::select! {
                _ = self.sock.readable() => self.receive(Path::Main),
                Ok(()) = async {
                    match &self.group_sock {
                        Some(g) => g.readable().await,
                        None => std::future::pending().await,
                    }
                } => self.receive(Path::Group),
                Ok(()) = async {
                    match &self.priv_sock {
                        Some(g) => g.readable().await,
                        None => std::future::pending().await,
                    }
                } => self.receive(Path::Private),
                _ = self.hello_sock.readable() => self.receive_hellos(),
                _ = hellos.tick() => {
                    self.judge_ping_nodes();
                    self.send_hellos();
                    self.push_config();
                }
                Ok((stream, from)) = async {
                    match &self.sync {
                        Some(s) => s.listener.accept().await,
                        None => std::future::pending().await,
                    }
                } => self.accept_config(stream, from),
                Some((i, ok)) = self.ping_rx.recv() => {
                    let before = self.pings.up(i);
                    self.pings.record(i, ok);
                    if before != self.pings.up(i) {
                        let node = self.settings.ping_nodes.get(i).copied();
                        tracing::warn!(node = ?node, reachable = self.pings.up(i), reach = self.pings.reach(), of = self.pings.nodes(), "ipfail: ping node changed");
                    }
                }
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = self.now();
                    self.router.handle_timeout(now);
                }
                _ = links.tick(), if monitor => {
                    let fault = self.links_fault();
                    match (&self.fault, fault) {
                        (None, Some(f)) => {
                            tracing::warn!(reason = %f, "failover: giving up the active role");
                            self.fault = Some(f);
                            self.router.shutdown();
                        }
                        (Some(_), None) => {
                            tracing::info!("failover: links are up again; rejoining");
                            self.fault = None;
                            let now = self.now();
                            self.router.start(now);
                        }
                        _ => {}
                    }
                }
                Some(new) = reload.recv() => self.reconfigure(new),
                _ = &mut stop => break,
            }
        }
        self.router.shutdown();
        self.flush().await;
        for t in self.ping_tasks.drain(..) {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_state_round_trips_and_ignores_junk() {
        let mut a = Authenticator::new(b"k", 100);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        a.remember(peer, 77);
        let _ = a.seal(peer, peer, b"x");
        let text = ReplayState::render(&[("advert", &a)]);
        assert_eq!(text, "sent advert 100\nadvert 10.0.0.2 77\n");
        let st = ReplayState::parse(&format!("{text}garbage line here\nhello nonsense 5\n"));
        assert_eq!(st.sent("advert"), 100);
        let mut b = new_authenticator_after(b"k", st.sent("advert"));
        st.restore("advert", &mut b);
        assert_eq!(b.accepted().collect::<Vec<_>>(), vec![(peer, 77)]);
        assert!(b.next_seq() > 100);
    }

    #[test]
    fn settings_follow_the_piranha_keys() {
        let cf = "primary = 127.0.0.1\nbackup = 192.0.2.77\nbackup_active = 1\nkeepalive = 0.1\ndeadtime = 0.35\n\
                  virtual web {\n address = 127.40.0.1\n active = 1\n port = 80\n server a {\n address = 127.0.0.1\n active = 1\n }\n}\n";
        let p = fulcrum_config::parse(cf);
        assert!(!p.has_errors(), "{}", p.render("t", cf));
        let s = HaSettings::from_config(&p.config).unwrap().unwrap();
        assert_eq!(s.local, Ipv4Addr::LOCALHOST);
        assert_eq!(s.peers, vec!["192.0.2.77".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(s.router.priority, PRIMARY_PRIORITY);
        assert_eq!(s.router.interval_cs, 10);
        assert_eq!(s.router.deadtime, Some(Duration::from_millis(350)));
        assert!(s.router.preempt);
        assert_eq!(s.router.vrid, DEFAULT_VRID);

        let cf2 = cf.replace("primary = 127.0.0.1", "primary = 192.0.2.78");
        let p = fulcrum_config::parse(&cf2);
        let e = HaSettings::from_config(&p.config).unwrap_err();
        assert!(
            e.contains("none of the directors (192.0.2.78, 192.0.2.77)"),
            "{e}"
        );
    }
}
