//! The director's state as data: what `fulcrum status` says for people, typed
//! for the console and the JSON API (`GET /api/v1/state`).

use serde::{Deserialize, Serialize};

/// The whole director.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectorState {
    /// `proxy`, `ipvs` or `xdp`.
    pub plane: String,
    /// Why this plane runs.
    pub plane_why: String,
    /// Seconds since the director started.
    pub uptime_secs: u64,
    /// The configuration file, or where the configuration came from.
    pub config: String,
    /// Its `serial_no`.
    pub serial: Option<u64>,
    /// Failover, when `backup_active = 1`.
    pub failover: Option<Failover>,
    /// Whether this director forwards: false on a backup director, whose
    /// services stand by.
    pub forwarding: bool,
    /// Open connections (proxy plane), and its limit.
    pub connections: Option<Connections>,
    /// The virtual servers, in table order.
    pub services: Vec<VirtualState>,
    /// Connection sync, one line per daemon.
    pub sync: Vec<String>,
}

/// The failover election as this director sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    /// `MASTER`, `BACKUP`, `FAULT` or `INIT`.
    pub state: String,
    /// Seconds in this state.
    pub since_secs: u64,
    /// Why it is in this state.
    pub reason: String,
    /// Our priority.
    pub priority: u8,
    /// The virtual router id.
    pub vrid: u8,
    /// Our heartbeat address.
    pub local: String,
    /// The other directors.
    pub peers: Vec<String>,
    /// Adverts refused so far.
    pub refused: u64,
    /// The other directors, as their hellos last described them.
    #[serde(default)]
    pub directors: Vec<PeerView>,
}

/// Another director of the failover group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// Its heartbeat address.
    pub address: String,
    /// `MASTER`, `BACKUP`, `FAULT` or `INIT` from its last hello; none
    /// when none came (a keepalived director sends none, or it is down).
    pub state: Option<String>,
    /// Its priority, from the same hello.
    pub priority: Option<u8>,
    /// Its configuration's `serial_no` (0: none).
    pub serial: Option<u64>,
    /// Seconds since that hello.
    pub heard_secs_ago: Option<f64>,
}

/// The proxy plane's connection count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    /// Open now.
    pub open: u64,
    /// `max_connections`.
    pub max: u64,
    /// Refused at the limit so far.
    pub refused: u64,
}

/// One virtual server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualState {
    /// Its name in lvs.cf (none for one added with `fulcrum adm`).
    pub name: Option<String>,
    /// As ipvsadm names it: `TCP 10.0.0.1:80`, `FWM 1`.
    pub service: String,
    /// The scheduler.
    pub scheduler: String,
    /// Persistence timeout, seconds.
    pub persistent: Option<u32>,
    /// `serving`, `NOT SERVING`, `in the kernel`, `in XDP`, or
    /// `standing by` on a backup director.
    pub serving: String,
    /// Connections scheduled so far.
    pub conns: u64,
    /// Active connections now.
    pub active: u64,
    /// Inactive connections now.
    pub inactive: u64,
    /// New connections a second.
    pub cps: u64,
    /// Bytes a second in.
    pub inbps: u64,
    /// Bytes a second out.
    pub outbps: u64,
    /// Connections refused because no real server was available.
    pub refused_no_server: u64,
    /// The sorry server, when it is in.
    pub sorry_server: Option<String>,
    /// Its real servers: those in the table, then those the checks keep out.
    pub servers: Vec<RealState>,
    /// Rates over the last minutes, oldest first.
    pub history: Vec<Sample>,
}

/// One real server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RealState {
    /// Its name in lvs.cf.
    pub name: Option<String>,
    /// `ADDR:PORT`.
    pub address: String,
    /// In the table (receiving per its weight) or out of service.
    pub in_service: bool,
    /// Its weight in the table (0 when out).
    pub weight: u32,
    /// `available`, `quiesced`, `overloaded`, or `out of service`.
    pub state: String,
    /// `drained` or `disabled` when the operator said so.
    pub admin: Option<String>,
    /// Its checks, when it is checked.
    pub health: Option<Health>,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Connections scheduled to it so far.
    pub conns: u64,
    /// New connections a second.
    pub cps: u64,
}

/// What the checks say of a real server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `alive`, `dead`, `unknown` or `not checked`.
    pub state: String,
    /// The whole line `fulcrum status` shows (check kind, last result and its
    /// reason, re-entry, load).
    pub text: String,
}

/// Rates of a virtual server at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the director started.
    pub t: u64,
    /// New connections a second.
    pub cps: u64,
    /// Bytes a second in.
    pub inbps: u64,
    /// Bytes a second out.
    pub outbps: u64,
    /// Active connections.
    pub active: u64,
}

/// What the operator can ask of a real server at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerAction {
    /// Weight 0: no new connections, the open ones go on.
    Drain,
    /// Out of the table whatever its checks say.
    Disable,
    /// Back to what its checks and configuration say.
    Enable,
}

impl std::str::FromStr for ServerAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drain" => Ok(ServerAction::Drain),
            "disable" => Ok(ServerAction::Disable),
            "enable" => Ok(ServerAction::Enable),
            other => Err(format!(
                "`{other}` is not an action on a real server: use drain, disable or enable"
            )),
        }
    }
}
