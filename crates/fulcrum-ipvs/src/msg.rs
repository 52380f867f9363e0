//! The `IPVS` generic-netlink family's messages (`include/uapi/linux/ip_vs.h`),
//! typed in `fulcrum-core`'s terms: a [`ServiceSpec`] or [`DestSpec`] in,
//! bytes out; bytes in, a [`KernelService`] or [`KernelDest`] out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fulcrum_core::{
    DestSpec, Family, Forwarding, Netmask, Protocol, SchedFlags, ServiceKey, ServiceSpec,
    TunnelCsum, TunnelType,
};
pub use fulcrum_core::{SyncDaemon, SyncRole};

use crate::nl::{Attr, Builder, DecodeError, attrs};

/// The family's name, resolved to its id through the controller.
pub const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const VERSION: u8 = 1;

/// `IPVS_CMD_*`.
#[allow(missing_docs, reason = "the kernel's names")]
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const NEW_DAEMON: u8 = 9;
    pub const DEL_DAEMON: u8 = 10;
    pub const GET_DAEMON: u8 = 11;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    pub const GET_INFO: u8 = 15;
    pub const ZERO: u8 = 16;
    pub const FLUSH: u8 = 17;
}

/// `IPVS_CMD_ATTR_*`.
mod cmd_attr {
    pub(super) const SERVICE: u16 = 1;
    pub(super) const DEST: u16 = 2;
    pub(super) const DAEMON: u16 = 3;
    pub(super) const TIMEOUT_TCP: u16 = 4;
    pub(super) const TIMEOUT_TCP_FIN: u16 = 5;
    pub(super) const TIMEOUT_UDP: u16 = 6;
}

/// `IPVS_SVC_ATTR_*`.
mod svc {
    pub(super) const AF: u16 = 1;
    pub(super) const PROTOCOL: u16 = 2;
    pub(super) const ADDR: u16 = 3;
    pub(super) const PORT: u16 = 4;
    pub(super) const FWMARK: u16 = 5;
    pub(super) const SCHED_NAME: u16 = 6;
    pub(super) const FLAGS: u16 = 7;
    pub(super) const TIMEOUT: u16 = 8;
    pub(super) const NETMASK: u16 = 9;
    pub(super) const STATS: u16 = 10;
    pub(super) const PE_NAME: u16 = 11;
    pub(super) const STATS64: u16 = 12;
}

/// `IPVS_DEST_ATTR_*`.
mod dest {
    pub(super) const ADDR: u16 = 1;
    pub(super) const PORT: u16 = 2;
    pub(super) const FWD_METHOD: u16 = 3;
    pub(super) const WEIGHT: u16 = 4;
    pub(super) const U_THRESH: u16 = 5;
    pub(super) const L_THRESH: u16 = 6;
    pub(super) const ACTIVE_CONNS: u16 = 7;
    pub(super) const INACT_CONNS: u16 = 8;
    pub(super) const PERSIST_CONNS: u16 = 9;
    pub(super) const STATS: u16 = 10;
    pub(super) const ADDR_FAMILY: u16 = 11;
    pub(super) const STATS64: u16 = 12;
    pub(super) const TUN_TYPE: u16 = 13;
    pub(super) const TUN_PORT: u16 = 14;
    pub(super) const TUN_FLAGS: u16 = 15;
}

/// `IPVS_DAEMON_ATTR_*`.
mod daemon {
    pub(super) const STATE: u16 = 1;
    pub(super) const MCAST_IFN: u16 = 2;
    pub(super) const SYNC_ID: u16 = 3;
    pub(super) const SYNC_MAXLEN: u16 = 4;
    pub(super) const MCAST_GROUP: u16 = 5;
    pub(super) const MCAST_GROUP6: u16 = 6;
    pub(super) const MCAST_PORT: u16 = 7;
    pub(super) const MCAST_TTL: u16 = 8;
}

/// `IPVS_INFO_ATTR_*`.
mod info {
    pub(super) const VERSION: u16 = 1;
    pub(super) const CONN_TAB_SIZE: u16 = 2;
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `IP_VS_SVC_F_*`.
const F_PERSISTENT: u32 = 0x1;
const F_ONEPACKET: u32 = 0x4;
const F_SCHED1: u32 = 0x8;
const F_SCHED2: u32 = 0x10;
const F_SCHED3: u32 = 0x20;
/// `IP_VS_CONN_F_*` forwarding methods.
const FWD_MASQ: u32 = 0;
const FWD_LOCAL: u32 = 1;
const FWD_TUNNEL: u32 = 2;
const FWD_ROUTE: u32 = 3;

fn af(f: Family) -> u16 {
    match f {
        Family::V4 => AF_INET,
        Family::V6 => AF_INET6,
    }
}

/// `union nf_inet_addr`: 16 bytes, IPv4 in the first four.
fn inet_addr(a: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

fn read_inet_addr(family: u16, a: &Attr<'_>, what: &'static str) -> Result<IpAddr, DecodeError> {
    let bad = || DecodeError::BadAttribute {
        what,
        ty: a.ty,
        len: a.value.len(),
    };
    match family {
        AF_INET => {
            let o: [u8; 4] = a
                .value
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)?;
            Ok(IpAddr::V4(Ipv4Addr::from(o)))
        }
        AF_INET6 => {
            let o: [u8; 16] = a
                .value
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)?;
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        f => Err(DecodeError::Invalid(format!("address family {f}"))),
    }
}

fn proto_number(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// The attributes that name a service (inside `IPVS_CMD_ATTR_SERVICE`).
fn put_key(b: &mut Builder, key: &ServiceKey) {
    match *key {
        ServiceKey::Addr { proto, addr, port } => {
            b.u16(svc::AF, af(Family::of(&addr)))
                .u16(svc::PROTOCOL, proto_number(proto))
                .bytes(svc::ADDR, &inet_addr(addr))
                .be16(svc::PORT, port);
        }
        ServiceKey::Fwmark { mark, family } => {
            b.u16(svc::AF, af(family)).u32(svc::FWMARK, mark);
        }
    }
}

/// A request naming only a service (delete, list its dests, zero).
pub fn service_key(family: u16, seq: u32, command: u8, key: &ServiceKey, flags: u16) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, command, VERSION);
    b.nest(cmd_attr::SERVICE);
    put_key(&mut b, key);
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_NEW_SERVICE` / `SET_SERVICE` with the whole service.
pub fn service(family: u16, seq: u32, command: u8, s: &ServiceSpec, flags: u16) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, command, VERSION);
    b.nest(cmd_attr::SERVICE);
    put_key(&mut b, &s.key);
    let mut f = 0;
    if s.persistent.is_some() {
        f |= F_PERSISTENT;
    }
    if s.one_packet {
        f |= F_ONEPACKET;
    }
    for (on, bit) in [
        (s.flags.sched1, F_SCHED1),
        (s.flags.sched2, F_SCHED2),
        (s.flags.sched3, F_SCHED3),
    ] {
        if on {
            f |= bit;
        }
    }
    let mut flags_struct = [0u8; 8];
    flags_struct[..4].copy_from_slice(&f.to_ne_bytes());
    flags_struct[4..].copy_from_slice(&u32::MAX.to_ne_bytes()); // mask: all
    let netmask = match s.netmask {
        // The kernel keeps an IPv4 mask in network order.
        Netmask::V4(m) => u32::from_ne_bytes(m.to_be_bytes()),
        Netmask::V6(plen) => u32::from(plen),
    };
    b.string(svc::SCHED_NAME, s.scheduler.name())
        .bytes(svc::FLAGS, &flags_struct)
        .u32(svc::TIMEOUT, s.persistent.unwrap_or(0))
        .u32(svc::NETMASK, netmask);
    if let Some(pe) = &s.pe_name {
        b.string(svc::PE_NAME, pe);
    }
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_NEW_DEST` / `SET_DEST` with the whole destination.
pub fn dest(
    family: u16,
    seq: u32,
    command: u8,
    key: &ServiceKey,
    d: &DestSpec,
    flags: u16,
) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, command, VERSION);
    b.nest(cmd_attr::SERVICE);
    put_key(&mut b, key);
    b.end_nest();
    b.nest(cmd_attr::DEST);
    let (method, tunnel) = match d.fwd {
        Forwarding::Masq => (FWD_MASQ, None),
        Forwarding::Local => (FWD_LOCAL, None),
        Forwarding::Route => (FWD_ROUTE, None),
        Forwarding::Tunnel { kind, port, csum } => (FWD_TUNNEL, Some((kind, port, csum))),
    };
    b.bytes(dest::ADDR, &inet_addr(d.addr))
        .be16(dest::PORT, d.port)
        .u32(dest::FWD_METHOD, method)
        .u32(dest::WEIGHT, d.weight)
        .u32(dest::U_THRESH, d.u_threshold)
        .u32(dest::L_THRESH, d.l_threshold)
        .u16(dest::ADDR_FAMILY, af(Family::of(&d.addr)));
    if let Some((kind, port, csum)) = tunnel {
        let ty = match kind {
            TunnelType::Ipip => 0,
            TunnelType::Gue => 1,
            TunnelType::Gre => 2,
        };
        let flags = match csum {
            TunnelCsum::NoCsum => 0u16,
            TunnelCsum::Csum => 1,
            TunnelCsum::RemCsum => 2,
        };
        b.u8(dest::TUN_TYPE, ty)
            .be16(dest::TUN_PORT, port)
            .u16(dest::TUN_FLAGS, flags);
    }
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_DEL_DEST`.
pub fn del_dest(
    family: u16,
    seq: u32,
    key: &ServiceKey,
    addr: IpAddr,
    port: u16,
    flags: u16,
) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, cmd::DEL_DEST, VERSION);
    b.nest(cmd_attr::SERVICE);
    put_key(&mut b, key);
    b.end_nest();
    b.nest(cmd_attr::DEST);
    b.bytes(dest::ADDR, &inet_addr(addr)).be16(dest::PORT, port);
    b.u16(dest::ADDR_FAMILY, af(Family::of(&addr)));
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_SET_CONFIG`: the timeouts (0 leaves one unchanged).
pub fn set_timeouts(family: u16, seq: u32, tcp: u32, tcpfin: u32, udp: u32, flags: u16) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, cmd::SET_CONFIG, VERSION);
    b.u32(cmd_attr::TIMEOUT_TCP, tcp)
        .u32(cmd_attr::TIMEOUT_TCP_FIN, tcpfin)
        .u32(cmd_attr::TIMEOUT_UDP, udp);
    b.finish()
}

/// A request with no attributes (`GET_INFO`, `GET_CONFIG`, `FLUSH`, dumps).
pub fn bare(family: u16, seq: u32, command: u8, flags: u16) -> Vec<u8> {
    Builder::new(family, flags, seq, command, VERSION).finish()
}

/// `IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`.
fn state(role: SyncRole) -> u32 {
    match role {
        SyncRole::Master => 1,
        SyncRole::Backup => 2,
    }
}

/// `IPVS_CMD_NEW_DAEMON`: start a sync daemon.
pub fn new_daemon(family: u16, seq: u32, d: &SyncDaemon, flags: u16) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, cmd::NEW_DAEMON, VERSION);
    b.nest(cmd_attr::DAEMON);
    b.u32(daemon::STATE, state(d.role))
        .string(daemon::MCAST_IFN, &d.mcast_ifn)
        .u32(daemon::SYNC_ID, u32::from(d.syncid));
    if d.sync_maxlen != 0 {
        b.u16(daemon::SYNC_MAXLEN, d.sync_maxlen);
    }
    match d.mcast_group {
        Some(IpAddr::V4(g)) => {
            b.bytes(daemon::MCAST_GROUP, &g.octets());
        }
        Some(IpAddr::V6(g)) => {
            b.bytes(daemon::MCAST_GROUP6, &g.octets());
        }
        None => {}
    }
    if d.mcast_port != 0 {
        b.u16(daemon::MCAST_PORT, d.mcast_port);
    }
    if d.mcast_ttl != 0 {
        b.u8(daemon::MCAST_TTL, d.mcast_ttl);
    }
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_DEL_DAEMON`: stop the daemon of `role`.
pub fn del_daemon(family: u16, seq: u32, role: SyncRole, flags: u16) -> Vec<u8> {
    let mut b = Builder::new(family, flags, seq, cmd::DEL_DAEMON, VERSION);
    b.nest(cmd_attr::DAEMON);
    b.u32(daemon::STATE, state(role));
    b.end_nest();
    b.finish()
}

/// A reply of a `GET_DAEMON` dump: one running daemon.
///
/// # Errors
/// Attributes missing, of the wrong size, or out of range.
pub fn decode_daemon(body: &[u8]) -> Result<SyncDaemon, DecodeError> {
    let d = nested(body, cmd_attr::DAEMON)?;
    let mut out = SyncDaemon {
        role: SyncRole::Master,
        mcast_ifn: String::new(),
        syncid: 0,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    let mut state = None;
    for a in attrs(d) {
        let a = a?;
        match a.ty {
            daemon::STATE => state = Some(a.u32("sync daemon")?),
            daemon::MCAST_IFN => out.mcast_ifn = a.string("sync daemon")?,
            // The kernel keeps the id in a byte.
            daemon::SYNC_ID => out.syncid = (a.u32("sync daemon")? & 0xff) as u8,
            daemon::SYNC_MAXLEN => out.sync_maxlen = a.u16("sync daemon")?,
            daemon::MCAST_GROUP => {
                out.mcast_group = Some(read_inet_addr(AF_INET, &a, "sync daemon group")?);
            }
            daemon::MCAST_GROUP6 => {
                out.mcast_group = Some(read_inet_addr(AF_INET6, &a, "sync daemon group")?);
            }
            daemon::MCAST_PORT => out.mcast_port = a.u16("sync daemon")?,
            daemon::MCAST_TTL => out.mcast_ttl = a.u8("sync daemon")?,
            _ => {}
        }
    }
    out.role = match state {
        Some(1) => SyncRole::Master,
        Some(2) => SyncRole::Backup,
        other => {
            return Err(DecodeError::Invalid(format!("sync daemon state {other:?}")));
        }
    };
    Ok(out)
}

/// Counters as the kernel reports them (`IPVS_STATS_ATTR_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub inpkts: u64,
    /// Packets out.
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
    /// Connections per second (the kernel's estimator).
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

fn read_stats(nested: &[u8], wide: bool) -> Result<KernelStats, DecodeError> {
    let mut s = KernelStats::default();
    for a in attrs(nested) {
        let a = a?;
        let v = if wide {
            a.u64("stats64")?
        } else if a.value.len() == 8 {
            a.u64("stats")?
        } else if a.value.len() == 4 {
            u64::from(a.u32("stats")?)
        } else {
            continue;
        };
        match a.ty {
            1 => s.conns = v,
            2 => s.inpkts = v,
            3 => s.outpkts = v,
            4 => s.inbytes = v,
            5 => s.outbytes = v,
            6 => s.cps = v,
            7 => s.inpps = v,
            8 => s.outpps = v,
            9 => s.inbps = v,
            10 => s.outbps = v,
            _ => {}
        }
    }
    Ok(s)
}

/// A service as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelService {
    /// What it is.
    pub spec: ServiceSpec,
    /// Its counters.
    pub stats: KernelStats,
}

/// A real server as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDest {
    /// What it is.
    pub spec: DestSpec,
    /// Established connections.
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
    /// Persistence templates.
    pub persistent: u32,
    /// Its counters.
    pub stats: KernelStats,
}

/// The nested attribute of type `ty` in a generic-netlink payload.
fn nested(body: &[u8], ty: u16) -> Result<&[u8], DecodeError> {
    for a in attrs(body) {
        let a = a?;
        if a.ty == ty {
            return Ok(a.value);
        }
    }
    Err(DecodeError::Invalid(format!(
        "no attribute {ty} in the reply"
    )))
}

/// A `NEW_SERVICE` reply of a `GET_SERVICE` dump.
///
/// # Errors
/// Attributes missing, of the wrong size, or out of range.
pub fn decode_service(body: &[u8]) -> Result<KernelService, DecodeError> {
    let s = nested(body, cmd_attr::SERVICE)?;
    let mut family = None;
    let (mut proto, mut addr_attr, mut port, mut fwmark) = (None, None, None, None);
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, 0u32, 0u32, None, None);
    let mut stats = KernelStats::default();
    for a in attrs(s) {
        let a = a?;
        match a.ty {
            svc::AF => family = Some(a.u16("service")?),
            svc::PROTOCOL => proto = Some(a.u16("service")?),
            svc::ADDR => addr_attr = Some(a),
            svc::PORT => port = Some(a.be16("service")?),
            svc::FWMARK => fwmark = Some(a.u32("service")?),
            svc::SCHED_NAME => sched = Some(a.string("service")?),
            svc::FLAGS => {
                flags = a
                    .value
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_ne_bytes)
                    .ok_or(DecodeError::BadAttribute {
                        what: "service flags",
                        ty: a.ty,
                        len: a.value.len(),
                    })?;
            }
            svc::TIMEOUT => timeout = a.u32("service")?,
            svc::NETMASK => netmask = Some(a.u32("service")?),
            svc::PE_NAME => pe = Some(a.string("service")?),
            svc::STATS64 => stats = read_stats(a.value, true)?,
            svc::STATS if stats == KernelStats::default() => stats = read_stats(a.value, false)?,
            _ => {}
        }
    }
    let family = family.ok_or_else(|| DecodeError::Invalid("service without a family".into()))?;
    let fam = match family {
        AF_INET => Family::V4,
        AF_INET6 => Family::V6,
        f => return Err(DecodeError::Invalid(format!("address family {f}"))),
    };
    let key = match (fwmark.filter(|m| *m != 0), proto, addr_attr, port) {
        (Some(mark), _, _, _) => ServiceKey::Fwmark { mark, family: fam },
        (None, Some(p), Some(a), Some(port)) => ServiceKey::Addr {
            proto: match p {
                6 => Protocol::Tcp,
                17 => Protocol::Udp,
                132 => Protocol::Sctp,
                other => return Err(DecodeError::Invalid(format!("protocol {other}"))),
            },
            addr: read_inet_addr(family, &a, "service address")?,
            port,
        },
        _ => {
            return Err(DecodeError::Invalid(
                "service without an address or mark".into(),
            ));
        }
    };
    let sched = sched.ok_or_else(|| DecodeError::Invalid("service without a scheduler".into()))?;
    let scheduler = sched
        .parse()
        .map_err(|_| DecodeError::Invalid(format!("unknown scheduler {sched}")))?;
    let mut spec = ServiceSpec::new(key, scheduler);
    spec.flags = SchedFlags {
        sched1: flags & F_SCHED1 != 0,
        sched2: flags & F_SCHED2 != 0,
        sched3: flags & F_SCHED3 != 0,
    };
    spec.one_packet = flags & F_ONEPACKET != 0;
    spec.persistent = (flags & F_PERSISTENT != 0).then_some(timeout);
    if let Some(m) = netmask {
        spec.netmask = match fam {
            Family::V4 => Netmask::V4(u32::from_be_bytes(m.to_ne_bytes())),
            Family::V6 => Netmask::V6(u8::try_from(m).unwrap_or(128)),
        };
    }
    spec.pe_name = pe.filter(|p| !p.is_empty());
    Ok(KernelService { spec, stats })
}

/// A `NEW_DEST` reply of a `GET_DEST` dump.
///
/// # Errors
/// Attributes missing, of the wrong size, or out of range.
pub fn decode_dest(body: &[u8], service_family: Family) -> Result<KernelDest, DecodeError> {
    let d = nested(body, cmd_attr::DEST)?;
    let mut family = af(service_family);
    let (mut addr_attr, mut port, mut method) = (None, None, None);
    let (mut weight, mut u_th, mut l_th) = (0u32, 0u32, 0u32);
    let (mut active, mut inactive, mut persistent) = (0, 0, 0);
    let (mut tun_type, mut tun_port, mut tun_flags) = (0u8, 0u16, 0u16);
    let mut stats = KernelStats::default();
    for a in attrs(d) {
        let a = a?;
        match a.ty {
            dest::ADDR => addr_attr = Some(a),
            dest::PORT => port = Some(a.be16("dest")?),
            dest::FWD_METHOD => method = Some(a.u32("dest")?),
            dest::WEIGHT => weight = a.u32("dest")?,
            dest::U_THRESH => u_th = a.u32("dest")?,
            dest::L_THRESH => l_th = a.u32("dest")?,
            dest::ACTIVE_CONNS => active = a.u32("dest")?,
            dest::INACT_CONNS => inactive = a.u32("dest")?,
            dest::PERSIST_CONNS => persistent = a.u32("dest")?,
            dest::ADDR_FAMILY => family = a.u16("dest")?,
            dest::TUN_TYPE => tun_type = a.u8("dest")?,
            dest::TUN_PORT => tun_port = a.be16("dest")?,
            dest::TUN_FLAGS => tun_flags = a.u16("dest")?,
            dest::STATS64 => stats = read_stats(a.value, true)?,
            dest::STATS if stats == KernelStats::default() => stats = read_stats(a.value, false)?,
            _ => {}
        }
    }
    let a = addr_attr.ok_or_else(|| DecodeError::Invalid("dest without an address".into()))?;
    let addr = read_inet_addr(family, &a, "dest address")?;
    let port = port.ok_or_else(|| DecodeError::Invalid("dest without a port".into()))?;
    let fwd = match method.map(|m| m & 0x7) {
        Some(FWD_MASQ) => Forwarding::Masq,
        Some(FWD_LOCAL) => Forwarding::Local,
        Some(FWD_ROUTE) => Forwarding::Route,
        Some(FWD_TUNNEL) => Forwarding::Tunnel {
            kind: match tun_type {
                1 => TunnelType::Gue,
                2 => TunnelType::Gre,
                _ => TunnelType::Ipip,
            },
            port: tun_port,
            csum: match tun_flags {
                f if f & 2 != 0 => TunnelCsum::RemCsum,
                f if f & 1 != 0 => TunnelCsum::Csum,
                _ => TunnelCsum::NoCsum,
            },
        },
        other => return Err(DecodeError::Invalid(format!("forwarding method {other:?}"))),
    };
    let mut spec = DestSpec::new(addr, port, fwd);
    spec.weight = weight;
    spec.u_threshold = u_th;
    spec.l_threshold = l_th;
    Ok(KernelDest {
        spec,
        active,
        inactive,
        persistent,
        stats,
    })
}

/// The kernel's IPVS version and connection table size (`GET_INFO`).
///
/// # Errors
/// Attributes missing or of the wrong size.
pub fn decode_info(body: &[u8]) -> Result<(u32, u32), DecodeError> {
    let (mut version, mut size) = (None, None);
    for a in attrs(body) {
        let a = a?;
        match a.ty {
            info::VERSION => version = Some(a.u32("info")?),
            info::CONN_TAB_SIZE => size = Some(a.u32("info")?),
            _ => {}
        }
    }
    version
        .zip(size)
        .ok_or_else(|| DecodeError::Invalid("info without version or table size".into()))
}

/// The timeouts (`GET_CONFIG`): tcp, tcpfin, udp.
///
/// # Errors
/// Attributes of the wrong size.
pub fn decode_timeouts(body: &[u8]) -> Result<(u32, u32, u32), DecodeError> {
    let mut t = (0, 0, 0);
    for a in attrs(body) {
        let a = a?;
        match a.ty {
            cmd_attr::TIMEOUT_TCP => t.0 = a.u32("config")?,
            cmd_attr::TIMEOUT_TCP_FIN => t.1 = a.u32("config")?,
            cmd_attr::TIMEOUT_UDP => t.2 = a.u32("config")?,
            _ => {}
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nl::messages;
    use fulcrum_core::sched::SchedulerKind;

    fn body(msg: &[u8]) -> Vec<u8> {
        let m = messages(msg).next().unwrap().unwrap();
        m.genl().unwrap().1.to_vec()
    }

    #[test]
    fn services_and_dests_round_trip() {
        let mut s = ServiceSpec::new(
            ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: "10.0.0.2".parse().unwrap(),
                port: 443,
            },
            SchedulerKind::Sh,
        );
        s.flags.sched1 = true;
        s.flags.sched2 = true;
        s.persistent = Some(300);
        s.netmask = Netmask::V4(0xffff_ff00);
        let got = decode_service(&body(&service(0x20, 1, cmd::NEW_SERVICE, &s, 0))).unwrap();
        assert_eq!(got.spec, s);

        let mut v6 = ServiceSpec::new(
            ServiceKey::Fwmark {
                mark: 8,
                family: Family::V6,
            },
            SchedulerKind::Rr,
        );
        v6.persistent = Some(60);
        v6.netmask = Netmask::V6(64);
        let got = decode_service(&body(&service(0x20, 1, cmd::NEW_SERVICE, &v6, 0))).unwrap();
        assert_eq!(got.spec, v6);

        let mut d = DestSpec::new(
            "10.0.2.3".parse().unwrap(),
            80,
            Forwarding::Tunnel {
                kind: TunnelType::Gue,
                port: 6080,
                csum: TunnelCsum::RemCsum,
            },
        );
        d.weight = 2_147_483_647;
        d.u_threshold = 100;
        d.l_threshold = 10;
        let got = decode_dest(
            &body(&dest(0x20, 2, cmd::NEW_DEST, &s.key, &d, 0)),
            Family::V4,
        )
        .unwrap();
        assert_eq!(got.spec, d);
    }

    #[test]
    fn daemons_round_trip() {
        let d = SyncDaemon {
            role: SyncRole::Backup,
            mcast_ifn: "eth1".into(),
            syncid: 7,
            sync_maxlen: 1400,
            mcast_group: Some("239.1.2.3".parse().unwrap()),
            mcast_port: 9000,
            mcast_ttl: 2,
        };
        assert_eq!(
            decode_daemon(&body(&new_daemon(0x20, 1, &d, 0))).unwrap(),
            d
        );
        let v6 = SyncDaemon {
            role: SyncRole::Master,
            mcast_group: Some("ff02::81".parse().unwrap()),
            sync_maxlen: 0,
            mcast_port: 0,
            mcast_ttl: 0,
            ..d
        };
        assert_eq!(
            decode_daemon(&body(&new_daemon(0x20, 1, &v6, 0))).unwrap(),
            v6
        );
        // A stop names only the role.
        let stop = decode_daemon(&body(&del_daemon(0x20, 1, SyncRole::Backup, 0))).unwrap();
        assert_eq!((stop.role, stop.mcast_ifn.as_str()), (SyncRole::Backup, ""));
    }

    proptest::proptest! {
        #[test]
        fn replies_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode_service(&bytes);
            let _ = decode_dest(&bytes, Family::V4);
            let _ = decode_dest(&bytes, Family::V6);
            let _ = decode_info(&bytes);
            let _ = decode_timeouts(&bytes);
            let _ = decode_daemon(&bytes);
        }
    }
}
