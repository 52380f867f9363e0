//! The configuration model: what an lvs.cf says, without spans. Optional
//! fields are `None` when the file does not set them; the `effective_*`
//! methods apply Piranha's defaults.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{
    Family, Forwarding, Netmask, Protocol, SchedFlags, ServiceKey, TunnelCsum, TunnelType,
};

/// A duration written in seconds, possibly fractional (`0.35`), kept to the
/// microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

impl Seconds {
    /// Whole seconds.
    pub fn from_secs(s: u64) -> Seconds {
        Seconds(Duration::from_secs(s))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.subsec_micros();
        if us == 0 {
            write!(f, "{}", self.0.as_secs())
        } else {
            let frac = format!("{us:06}");
            write!(f, "{}.{}", self.0.as_secs(), frac.trim_end_matches('0'))
        }
    }
}

/// Piranha's `network` and Fulcrum's per-virtual / per-server `forwarding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// NAT (LVS-NAT), Piranha's default.
    #[default]
    Nat,
    /// Direct routing (LVS-DR).
    Direct,
    /// IP-in-IP tunnelling (LVS-TUN).
    Tunnel,
}

impl Routing {
    /// The lvs.cf word.
    pub fn name(self) -> &'static str {
        match self {
            Routing::Nat => "nat",
            Routing::Direct => "direct",
            Routing::Tunnel => "tunnel",
        }
    }

    /// The IPVS forwarding method.
    pub fn forwarding(self) -> Forwarding {
        match self {
            Routing::Nat => Forwarding::Masq,
            Routing::Direct => Forwarding::Route,
            Routing::Tunnel => Forwarding::TUNNEL,
        }
    }
}

/// `tunnel_type`, `tunnel_port` and `tunnel_checksum` (Fulcrum), of a
/// virtual or a real server: IPVS's `--tun-type`, `--tun-port` and
/// `--tun-nocsum`/`--tun-csum`/`--tun-remcsum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelKeys {
    /// `tunnel_type`.
    pub kind: Option<TunnelType>,
    /// `tunnel_port`.
    pub port: Option<u16>,
    /// `tunnel_checksum`.
    pub checksum: Option<TunnelCsum>,
}

impl TunnelKeys {
    /// These keys if any is set, else `outer`'s: a real server's tunnel is
    /// its own or its virtual server's, never a mix of the two.
    pub fn or(&self, outer: &TunnelKeys) -> TunnelKeys {
        if self.any() { *self } else { *outer }
    }

    /// Whether any key is set.
    pub fn any(&self) -> bool {
        self.kind.is_some() || self.port.is_some() || self.checksum.is_some()
    }
}

/// Which data plane forwards traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dataplane {
    /// The kernel's IPVS where this host has it and the director may
    /// program it, the proxy otherwise (the default; decided at start).
    #[default]
    Auto,
    /// Userspace TCP/UDP proxy (no privileges needed).
    Proxy,
    /// The kernel's own IPVS, programmed over generic netlink (NAT,
    /// direct routing, tunnelling, fwmark, SCTP).
    Ipvs,
    /// Packet-level XDP data plane (NAT, direct routing, tunnelling).
    Xdp,
}

impl Dataplane {
    /// The lvs.cf word.
    pub fn name(self) -> &'static str {
        match self {
            Dataplane::Auto => "auto",
            Dataplane::Proxy => "proxy",
            Dataplane::Ipvs => "ipvs",
            Dataplane::Xdp => "xdp",
        }
    }
}

/// `syncd_role`: which of the kernel's connection-sync daemons a director
/// runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncdRole {
    /// Follow the failover election: the active director sends (master),
    /// the others receive (backup); without failover, master.
    #[default]
    Auto,
    /// Always send.
    Master,
    /// Always receive.
    Backup,
    /// Send this director's connections and receive the others' (peer to
    /// peer: what active-active directors need).
    Both,
}

impl SyncdRole {
    /// The lvs.cf word.
    pub fn name(self) -> &'static str {
        match self {
            SyncdRole::Auto => "auto",
            SyncdRole::Master => "master",
            SyncdRole::Backup => "backup",
            SyncdRole::Both => "both",
        }
    }
}

/// The kernel connection-sync daemon a configuration asks for
/// (`syncdaemon = 1` and the `syncd_*` keys, with their defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncdSettings {
    /// The interface the sync messages use (`syncd_iface`, `eth0`).
    pub iface: String,
    /// The sync id (`syncd_id`, 0).
    pub id: u8,
    /// Which daemon runs.
    pub role: SyncdRole,
    /// Largest payload (0: the kernel's choice, from the MTU).
    pub maxlen: u16,
    /// Multicast group (`None`: the kernel's 224.0.0.81).
    pub group: Option<IpAddr>,
    /// UDP port (0: the kernel's 8848).
    pub port: u16,
    /// Multicast TTL (0: the kernel's 1).
    pub ttl: u8,
    /// Seal and check the messages with `auth_key_file` (`syncd_auth`).
    pub auth: bool,
}

/// `rsh_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RshCommand {
    /// rsh (Piranha's default).
    #[default]
    Rsh,
    /// ssh.
    Ssh,
}

/// `load_monitor`: how real-server load is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadMonitor {
    /// No load monitoring.
    None,
    /// `rsh_command HOST uptime`.
    Uptime,
    /// rpc.rstatd.
    Rup,
    /// rwhod's data.
    Ruptime,
    /// Fulcrum's agent (`fulcrum agent`).
    Agent,
    /// A program path.
    Program(String),
}

/// An address with an optional device (`1.2.3.1 eth0:1`): `eth0` is the
/// device and `eth0:1` the address label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrDev {
    /// The address.
    pub addr: IpAddr,
    /// Device with optional `:alias`, as written.
    pub dev: Option<String>,
}

impl AddrDev {
    /// The device without the alias (`eth0` for `eth0:1`).
    pub fn device(&self) -> Option<&str> {
        self.dev
            .as_deref()
            .map(|d| d.split(':').next().unwrap_or(d))
    }
}

/// A host named by address or by name (`primary`, `backup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address.
    Addr(IpAddr),
    /// A host name, resolved when used.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Addr(a) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// An address with an optional port (`sorry_server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// Address.
    pub addr: IpAddr,
    /// Port; the virtual server's port when absent.
    pub port: Option<u16>,
}

/// `checktype`: how the monitor checks a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckType {
    /// A TCP connection is accepted (for UDP: a datagram draws no ICMP
    /// error).
    Connect,
    /// Piranha's `send`/`expect` exchange.
    Negotiate,
    /// Ask the real server's agent (`fulcrum agent`, HAProxy's agent-check
    /// protocol): `down`/`fail`/`stopped`/`maint` fail.
    Agent,
    /// Run `send_program` (Piranha) / a MISC_CHECK (keepalived): its
    /// output is compared with `expect`, or without `expect` its exit
    /// code decides.
    External,
    /// An HTTP GET (`request`, `status_code`, `digest`, `receive`,
    /// `virtualhost`): keepalived's HTTP_GET, ldirectord's http check.
    HttpGet,
    /// The same over TLS (keepalived's SSL_GET, ldirectord's https).
    HttpsGet,
    /// An ICMP echo (v4 or v6) to the real server's address: the host is
    /// up, whatever its services do (ldirectord's `ping`).
    Ping,
    /// SMTP greeting and QUIT (ldirectord's `service = smtp`).
    Smtp,
    /// FTP greeting and QUIT.
    Ftp,
    /// POP3 greeting and QUIT.
    Pop,
    /// IMAP greeting and LOGOUT.
    Imap,
    /// NNTP greeting and QUIT.
    Nntp,
    /// A DNS query for `request` (type A) answered with records
    /// (containing `receive`, when set).
    Dns,
    /// No checking: the real server is always in service.
    Off,
}

/// The HTTP status codes an HTTP check accepts (`status_code = 200-299,301`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCodes(pub Vec<(u16, u16)>);

impl StatusCodes {
    /// Whether a status is accepted.
    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

impl Default for StatusCodes {
    /// keepalived's default: any 2xx.
    fn default() -> Self {
        StatusCodes(vec![(200, 299)])
    }
}

impl std::fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl CheckType {
    /// The lvs.cf word.
    pub fn name(self) -> &'static str {
        match self {
            CheckType::Connect => "connect",
            CheckType::Negotiate => "negotiate",
            CheckType::Agent => "agent",
            CheckType::External => "external",
            CheckType::HttpGet => "http_get",
            CheckType::HttpsGet => "https_get",
            CheckType::Ping => "ping",
            CheckType::Smtp => "smtp",
            CheckType::Ftp => "ftp",
            CheckType::Pop => "pop",
            CheckType::Imap => "imap",
            CheckType::Nntp => "nntp",
            CheckType::Dns => "dns",
            CheckType::Off => "off",
        }
    }
}

/// `proxy_protocol`: which PROXY protocol header a real server expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The text form.
    V1,
    /// The binary form.
    V2,
}

impl ProxyProtocolVersion {
    /// The lvs.cf word.
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocolVersion::V1 => "v1",
            ProxyProtocolVersion::V2 => "v2",
        }
    }
}

/// Persistence granularity: an IPv4 mask or an IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pmask {
    /// IPv4 netmask.
    V4(Ipv4Addr),
    /// IPv6 prefix length 1..=128.
    V6(u8),
}

/// A scheduler flag as written in `sched_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedFlag {
    /// `sh-fallback`
    ShFallback,
    /// `sh-port`
    ShPort,
    /// `mh-fallback`
    MhFallback,
    /// `mh-port`
    MhPort,
}

impl SchedFlag {
    /// All flags.
    pub const ALL: [SchedFlag; 4] = [
        SchedFlag::ShFallback,
        SchedFlag::ShPort,
        SchedFlag::MhFallback,
        SchedFlag::MhPort,
    ];

    /// The lvs.cf / ipvsadm name.
    pub fn name(self) -> &'static str {
        match self {
            SchedFlag::ShFallback => "sh-fallback",
            SchedFlag::ShPort => "sh-port",
            SchedFlag::MhFallback => "mh-fallback",
            SchedFlag::MhPort => "mh-port",
        }
    }

    /// The scheduler the flag belongs to.
    pub fn scheduler(self) -> SchedulerKind {
        match self {
            SchedFlag::ShFallback | SchedFlag::ShPort => SchedulerKind::Sh,
            SchedFlag::MhFallback | SchedFlag::MhPort => SchedulerKind::Mh,
        }
    }
}

/// The global section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(
    missing_docs,
    reason = "each field is the lvs.cf key of the same name, documented in docs/config.md"
)]
pub struct Global {
    pub serial_no: Option<u64>,
    pub primary: Option<Host>,
    pub primary_private: Option<Host>,
    pub primary_shared: Option<String>,
    pub backup: Option<Host>,
    pub backup_private: Option<Host>,
    pub backup_shared: Option<String>,
    pub backup_active: Option<bool>,
    pub heartbeat: Option<bool>,
    pub heartbeat_port: Option<u16>,
    pub keepalive: Option<Seconds>,
    pub deadtime: Option<Seconds>,
    pub network: Option<Routing>,
    pub nat_router: Option<AddrDev>,
    pub nat_nmask: Option<Ipv4Addr>,
    pub reservation_conflict_action: Option<String>,
    pub debug_level: Option<String>,
    pub rsh_command: Option<RshCommand>,
    pub sync: Option<bool>,
    pub ipvsadm: Option<String>,
    pub active_cmd: Option<String>,
    pub inactive_cmd: Option<String>,
    pub monitor_links: Option<bool>,
    pub hard_shutdown: Option<bool>,
    pub syncdaemon: Option<bool>,
    pub syncd_iface: Option<String>,
    pub syncd_id: Option<u8>,
    /// Which sync daemon runs (`syncd_role`, Fulcrum).
    pub syncd_role: Option<SyncdRole>,
    /// Largest sync message payload (`syncd_maxlen`, Fulcrum).
    pub syncd_maxlen: Option<u16>,
    /// Multicast group of the sync messages (`syncd_group`, Fulcrum).
    pub syncd_group: Option<IpAddr>,
    /// UDP port of the sync messages (`syncd_port`, Fulcrum).
    pub syncd_port: Option<u16>,
    /// Multicast TTL of the sync messages (`syncd_ttl`, Fulcrum).
    pub syncd_ttl: Option<u8>,
    /// Seal and check the sync messages with `auth_key_file`
    /// (`syncd_auth`, Fulcrum; the XDP plane's daemons only).
    pub syncd_auth: Option<bool>,
    pub tcp_timeout: Option<u32>,
    pub tcpfin_timeout: Option<u32>,
    pub udp_timeout: Option<u32>,
    /// The most connections (and UDP flows) the director serves at once.
    pub max_connections: Option<u32>,
    /// On SIGTERM, how long open connections may finish after the
    /// listeners close (`drain_timeout`, Fulcrum; proxy plane).
    pub drain_timeout: Option<Seconds>,
    pub dataplane: Option<Dataplane>,
    /// The user the director runs as after start (`user`).
    pub user: Option<String>,
    pub priority: Option<u8>,
    pub preempt: Option<bool>,
    pub nice_failback: Option<bool>,
    pub preempt_delay: Option<Seconds>,
    pub vrrp_version: Option<VrrpVersion>,
    pub virtual_router_id: Option<u8>,
    /// Every `peer` line, in file order.
    pub peer: Vec<IpAddr>,
    pub auth_key_file: Option<String>,
    pub notify_script: Option<String>,
    pub garp_count: Option<u32>,
    pub garp_delay: Option<Seconds>,
    /// Every `ping_node` line, in file order.
    pub ping_node: Vec<IpAddr>,
    /// Every `notify_email` line, in file order.
    pub notify_email: Vec<String>,
    pub notify_email_from: Option<String>,
    pub smtp_server: Option<HostPort>,
    pub vrrp_multicast: Option<bool>,
    /// The web console and JSON API's address and port (`console`).
    pub console: Option<HostPort>,
    /// The console's users and API tokens (`console_users`).
    pub console_users: Option<String>,
    /// The console's certificate chain, PEM (`console_tls_cert`).
    pub console_tls_cert: Option<String>,
    /// The console's private key, PEM (`console_tls_key`).
    pub console_tls_key: Option<String>,
}

/// `vrrp_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VrrpVersion {
    /// RFC 3768: whole-second adverts, IPv4 only.
    V2,
    /// RFC 5798: centisecond adverts (the default).
    #[default]
    V3,
}

/// A `server NAME { … }` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(
    missing_docs,
    reason = "each field is the lvs.cf key of the same name, documented in docs/config.md"
)]
pub struct RealServer {
    /// The block's name.
    pub name: String,
    pub address: Option<IpAddr>,
    pub active: Option<bool>,
    pub weight: Option<u32>,
    pub port: Option<u16>,
    pub forwarding: Option<Routing>,
    pub tunnel: TunnelKeys,
    pub uthreshold: Option<u32>,
    pub lthreshold: Option<u32>,
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    pub checktype: Option<CheckType>,
}

/// A `virtual NAME { … }` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(
    missing_docs,
    reason = "each field is the lvs.cf key of the same name, documented in docs/config.md"
)]
pub struct VirtualServer {
    /// The block's name.
    pub name: String,
    pub active: Option<bool>,
    pub address: Option<AddrDev>,
    pub vip_nmask: Option<Ipv4Addr>,
    pub sorry_server: Option<HostPort>,
    pub fwmark: Option<u32>,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub scheduler: Option<SchedulerKind>,
    pub sched_flags: Vec<SchedFlag>,
    pub persistent: Option<u32>,
    pub pmask: Option<Pmask>,
    pub one_packet: Option<bool>,
    /// `transparent` (Fulcrum): the proxy plane connects to real servers
    /// from the client's own address.
    pub transparent: Option<bool>,
    pub forwarding: Option<Routing>,
    pub tunnel: TunnelKeys,
    pub send: Option<String>,
    pub expect: Option<String>,
    pub use_regex: Option<bool>,
    pub send_program: Option<String>,
    pub load_monitor: Option<LoadMonitor>,
    pub timeout: Option<Seconds>,
    pub reentry: Option<Seconds>,
    pub quiesce_server: Option<bool>,
    pub checktype: Option<CheckType>,
    pub check_interval: Option<Seconds>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub agent_port: Option<u16>,
    pub misc_dynamic: Option<bool>,
    pub load_interval: Option<Seconds>,
    /// The most connections (and UDP flows) this virtual server serves at
    /// once.
    pub max_connections: Option<u32>,
    pub request: Option<String>,
    pub receive: Option<String>,
    pub digest: Option<String>,
    pub status_code: Option<StatusCodes>,
    pub virtualhost: Option<String>,
    pub tls_ca: Option<String>,
    pub client_monitor: Option<String>,
    pub master: Option<String>,
    pub dirs: Option<String>,
    /// Real servers, in file order.
    pub servers: Vec<RealServer>,
}

/// A whole lvs.cf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The global section.
    pub global: Global,
    /// Virtual servers, in file order.
    pub virtuals: Vec<VirtualServer>,
}

/// Piranha's default `heartbeat_port`.
pub const DEFAULT_HEARTBEAT_PORT: u16 = 539;
/// Piranha's default `keepalive`.
pub const DEFAULT_KEEPALIVE: Seconds = Seconds(Duration::from_secs(2));
/// Piranha's default `deadtime`.
pub const DEFAULT_DEADTIME: Seconds = Seconds(Duration::from_secs(5));
/// Piranha's default virtual-server `timeout`.
pub const DEFAULT_TIMEOUT: Seconds = Seconds(Duration::from_secs(10));
/// Piranha's default `reentry`.
pub const DEFAULT_REENTRY: Seconds = Seconds(Duration::from_secs(180));
/// Piranha's default virtual-server `port`.
pub const DEFAULT_PORT: u16 = 80;

impl Global {
    /// `network`, defaulting to NAT.
    pub fn effective_network(&self) -> Routing {
        self.network.unwrap_or_default()
    }

    /// `dataplane`, defaulting to `auto`.
    pub fn effective_dataplane(&self) -> Dataplane {
        self.dataplane.unwrap_or_default()
    }

    /// The kernel connection-sync daemon to run, with `syncdaemon = 1`.
    pub fn syncd(&self) -> Option<SyncdSettings> {
        (self.syncdaemon == Some(true)).then(|| SyncdSettings {
            iface: self.syncd_iface.clone().unwrap_or_else(|| "eth0".into()),
            id: self.syncd_id.unwrap_or(0),
            role: self.syncd_role.unwrap_or_default(),
            maxlen: self.syncd_maxlen.unwrap_or(0),
            group: self.syncd_group,
            port: self.syncd_port.unwrap_or(0),
            ttl: self.syncd_ttl.unwrap_or(0),
            auth: self.syncd_auth == Some(true),
        })
    }

    /// `heartbeat_port`, defaulting to 539.
    pub fn effective_heartbeat_port(&self) -> u16 {
        self.heartbeat_port.unwrap_or(DEFAULT_HEARTBEAT_PORT)
    }

    /// `keepalive`, defaulting to 2 s.
    pub fn effective_keepalive(&self) -> Seconds {
        self.keepalive.unwrap_or(DEFAULT_KEEPALIVE)
    }

    /// `deadtime`, defaulting to 5 s.
    pub fn effective_deadtime(&self) -> Seconds {
        self.deadtime.unwrap_or(DEFAULT_DEADTIME)
    }

    /// Whether this file asks for director failover: `backup_active = 1`
    /// (and `heartbeat` not turned off).
    pub fn failover(&self) -> bool {
        self.backup_active == Some(true) && self.heartbeat != Some(false)
    }

    /// Whether a returning higher-priority director takes the active role
    /// back: `preempt`, else the opposite of `nice_failback`, else yes
    /// (Piranha's rule: the primary always wins).
    pub fn effective_preempt(&self) -> bool {
        self.preempt
            .or(self.nice_failback.map(|n| !n))
            .unwrap_or(true)
    }

    /// `garp_count`: announcements in each burst, defaulting to 5.
    pub fn effective_garp_count(&self) -> u32 {
        self.garp_count.unwrap_or(5)
    }

    /// `garp_delay`: the second burst's delay, defaulting to 5 s (0: none).
    pub fn effective_garp_delay(&self) -> Seconds {
        self.garp_delay.unwrap_or(Seconds::from_secs(5))
    }

    /// Every director's heartbeat address, when given as addresses:
    /// `primary`, `backup`, then each `peer`.
    pub fn directors(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = [&self.primary, &self.backup]
            .into_iter()
            .filter_map(|h| match h {
                Some(Host::Addr(a)) => Some(*a),
                _ => None,
            })
            .collect();
        for p in &self.peer {
            if !v.contains(p) {
                v.push(*p);
            }
        }
        v
    }
}

impl VirtualServer {
    /// `active`, Piranha's default being off.
    pub fn is_active(&self) -> bool {
        self.active.unwrap_or(false)
    }

    /// `port`, defaulting to 80.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// `protocol`, defaulting to TCP.
    pub fn effective_protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::Tcp)
    }

    /// `scheduler`, defaulting to wlc.
    pub fn effective_scheduler(&self) -> SchedulerKind {
        self.scheduler.unwrap_or(SchedulerKind::Wlc)
    }

    /// The virtual service's key, if the address is known.
    pub fn service_key(&self) -> Option<ServiceKey> {
        match (self.fwmark, &self.address) {
            (Some(mark), addr) => Some(ServiceKey::Fwmark {
                mark,
                family: addr.as_ref().map_or(Family::V4, |a| Family::of(&a.addr)),
            }),
            (None, Some(a)) => Some(ServiceKey::Addr {
                proto: self.effective_protocol(),
                addr: a.addr,
                port: self.effective_port(),
            }),
            (None, None) => None,
        }
    }

    /// `sched_flags` as IPVS service flags.
    pub fn sched_flags(&self) -> SchedFlags {
        let mut f = SchedFlags::default();
        for fl in &self.sched_flags {
            match fl {
                SchedFlag::ShFallback | SchedFlag::MhFallback => f.sched1 = true,
                SchedFlag::ShPort | SchedFlag::MhPort => f.sched2 = true,
            }
        }
        f
    }

    /// `pmask` as an IPVS netmask for this service's family.
    pub fn netmask(&self) -> Netmask {
        let fam = self.service_key().map_or(Family::V4, |k| k.family());
        match self.pmask {
            Some(Pmask::V4(m)) => Netmask::V4(u32::from(m)),
            Some(Pmask::V6(p)) => Netmask::V6(p),
            None => Netmask::host(fam),
        }
    }

    /// The routing for a server: its own, else this virtual's, else global.
    pub fn routing_for(&self, server: &RealServer, global: &Global) -> Routing {
        server
            .forwarding
            .or(self.forwarding)
            .unwrap_or_else(|| global.effective_network())
    }

    /// The IPVS forwarding for a server: its routing, and when tunnelled
    /// the tunnel's type, port and checksum (the server's own tunnel keys,
    /// else this virtual's; IP-in-IP without a checksum by default).
    pub fn forwarding_for(&self, server: &RealServer, global: &Global) -> Forwarding {
        match self.routing_for(server, global) {
            Routing::Tunnel => {
                let t = server.tunnel.or(&self.tunnel);
                Forwarding::Tunnel {
                    kind: t.kind.unwrap_or(TunnelType::Ipip),
                    port: t.port.unwrap_or(0),
                    csum: t.checksum.unwrap_or(TunnelCsum::NoCsum),
                }
            }
            r => r.forwarding(),
        }
    }
}

impl RealServer {
    /// `active`, Piranha's default being off.
    pub fn is_active(&self) -> bool {
        self.active.unwrap_or(false)
    }

    /// `weight`, defaulting to 1.
    pub fn effective_weight(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
}
