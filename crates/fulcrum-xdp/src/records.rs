//! The map records the BPF program reads and writes, laid out byte for byte
//! as the C structs in `bpf/fulcrum.bpf.c` (little-endian host, natural
//! alignment). The crate forbids `unsafe`, so records travel as byte
//! arrays, built and read here and nowhere else.

use std::net::IpAddr;

use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{Forwarding, TunnelType};

/// The most services the program holds (`MAX_SERVICES`).
pub const MAX_SERVICES: u32 = 4096;
/// The most real-server slots (`MAX_DESTS`).
pub const MAX_DESTS: u32 = 65536;
/// The most real servers of one service (`MAX_SVC_DESTS`).
pub const MAX_SVC_DESTS: usize = 256;

/// `struct svc`.
pub const SVC_LEN: usize = 48 + 4 * MAX_SVC_DESTS;
/// `struct svc_sched`.
pub const SCHED_LEN: usize = 24;
/// `struct dest`.
pub const DEST_LEN: usize = 64;

/// `svc.flags`: sh/mh fall back to the next bucket.
pub const SVC_SCHED1: u8 = 0x1;
/// `svc.flags`: sh/mh hash the client's port too.
pub const SVC_SCHED2: u8 = 0x2;

/// The scheduler's number in the program (SchedulerKind::ALL order).
pub fn sched_number(kind: SchedulerKind) -> u8 {
    SchedulerKind::ALL
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as u8)
}

/// An address as the program keeps it: 16 bytes, IPv4 in the first four.
pub fn addr16(addr: &IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match addr {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

/// The address back from 16 bytes and a family (4 or 6).
pub fn addr_of(bytes: &[u8], family: u8) -> Option<IpAddr> {
    match family {
        4 => {
            let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

fn family(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 4 } else { 6 }
}

/// A persistence netmask as the 16 bytes the program ANDs addresses with.
pub fn netmask16(m: &fulcrum_core::Netmask) -> [u8; 16] {
    let mut b = [0u8; 16];
    match m {
        fulcrum_core::Netmask::V4(mask) => b[..4].copy_from_slice(&mask.to_be_bytes()),
        fulcrum_core::Netmask::V6(len) => {
            let len = u32::from((*len).min(128));
            let bits = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            b = bits.to_be_bytes();
        }
    }
    b
}

/// `struct tmpl_key` and `struct tmpl`, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    /// Protocol number.
    pub proto: u8,
    /// The client network.
    pub snet: IpAddr,
    /// Virtual address and port (0 for port-zero services and FTP).
    pub virt: (IpAddr, u16),
    /// The service index.
    pub svc: u32,
    /// Expiry, in ns on the program's clock.
    pub expires_ns: u64,
    /// The destination slot.
    pub dest: u32,
}

/// `struct tmpl_key`.
pub const TMPL_KEY_LEN: usize = 40;

impl TemplateRecord {
    /// From a key and value of `templates`, for a service of `family`.
    pub fn parse(k: &[u8; TMPL_KEY_LEN], v: &[u8; 16], family: u8) -> Option<TemplateRecord> {
        Some(TemplateRecord {
            proto: k[38],
            snet: addr_of(&k[..16], family)?,
            virt: (
                addr_of(&k[16..32], family)?,
                u16::from_be_bytes([k[36], k[37]]),
            ),
            svc: u32::from_ne_bytes(k[32..36].try_into().ok()?),
            expires_ns: u64::from_ne_bytes(v[..8].try_into().ok()?),
            dest: u32::from_ne_bytes(v[8..12].try_into().ok()?),
        })
    }
}

/// `struct svc`: scheduler, flags, wrr's constants, mh's size, and the
/// destination slots in list order.
pub struct SvcRecord {
    /// Scheduler number.
    pub sched: u8,
    /// `SVC_SCHED1 | SVC_SCHED2`.
    pub flags: u8,
    /// wrr's `mw`.
    pub wrr_mw: u32,
    /// wrr's `di`.
    pub wrr_di: u32,
    /// mh's table size.
    pub mh_m: u32,
    /// Persistence timeout in seconds, 0 when not persistent.
    pub persist: u32,
    /// The service's port (0: all ports).
    pub port: u16,
    /// Persistence granularity as an address mask (16 bytes, IPv4 in the
    /// first four).
    pub netmask: [u8; 16],
    /// lblc/lblcr: cache expiration in seconds.
    pub lblc_expire: u32,
    /// Slots in list order (at most [`MAX_SVC_DESTS`]).
    pub slots: Vec<u32>,
}

impl SvcRecord {
    /// The bytes.
    pub fn bytes(&self) -> [u8; SVC_LEN] {
        let mut b = [0u8; SVC_LEN];
        b[0] = self.sched;
        b[1] = self.flags;
        let n = self.slots.len().min(MAX_SVC_DESTS);
        b[2..4].copy_from_slice(&(n as u16).to_ne_bytes());
        b[4..8].copy_from_slice(&self.wrr_mw.to_ne_bytes());
        b[8..12].copy_from_slice(&self.wrr_di.to_ne_bytes());
        b[12..16].copy_from_slice(&self.mh_m.to_ne_bytes());
        b[16..20].copy_from_slice(&self.persist.to_ne_bytes());
        b[20..22].copy_from_slice(&self.port.to_be_bytes());
        b[24..40].copy_from_slice(&self.netmask);
        b[40..44].copy_from_slice(&self.lblc_expire.to_ne_bytes());
        for (i, s) in self.slots.iter().take(n).enumerate() {
            b[48 + 4 * i..52 + 4 * i].copy_from_slice(&s.to_ne_bytes());
        }
        b
    }
}

/// `struct svc_sched`: the scheduler state the program keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedState {
    /// wrr's current weight.
    pub wrr_cw: i64,
    /// wrr's last pick (list index), -1 for none.
    pub wrr_cl: i32,
    /// rr's last pick: slot + 1, 0 for none.
    pub rr_last: u32,
    /// twos' random state.
    pub rng: u64,
}

impl SchedState {
    /// The bytes.
    pub fn bytes(&self) -> [u8; SCHED_LEN] {
        let mut b = [0u8; SCHED_LEN];
        b[0..8].copy_from_slice(&self.wrr_cw.to_ne_bytes());
        b[8..12].copy_from_slice(&self.wrr_cl.to_ne_bytes());
        b[12..16].copy_from_slice(&self.rr_last.to_ne_bytes());
        b[16..24].copy_from_slice(&self.rng.to_ne_bytes());
        b
    }

    /// From the bytes.
    pub fn from_bytes(b: &[u8; SCHED_LEN]) -> SchedState {
        let u64_at = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        SchedState {
            wrr_cw: u64_at(0) as i64,
            wrr_cl: u32_at(8) as i32,
            rr_last: u32_at(12),
            rng: u64_at(16),
        }
    }
}

/// `dest.tun_type`: IP-in-IP (or IPv6-in-IPv6).
pub const TUN_IPIP: u8 = 0;
/// `dest.tun_type`: GUE (UDP to `tun_port`, a 4-byte GUE header, the packet).
pub const TUN_GUE: u8 = 1;

/// `struct dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestRecord {
    /// Address.
    pub addr: IpAddr,
    /// Forwarding.
    pub fwd: Forwarding,
    /// Port, 0 to keep the packet's.
    pub port: u16,
    /// Weight.
    pub weight: u32,
    /// Upper threshold.
    pub u_threshold: u32,
    /// Lower threshold.
    pub l_threshold: u32,
    /// Bumped to clear OVERLOAD.
    pub epoch: u32,
    /// The service's index.
    pub svc: u32,
    /// Tunnelling: the director's address towards the real server (the
    /// outer header's source).
    pub tun_src: Option<IpAddr>,
    /// Deleted from its service: forwards its flows, takes no new ones.
    pub retired: bool,
}

impl DestRecord {
    /// The bytes.
    pub fn bytes(&self) -> [u8; DEST_LEN] {
        let mut b = [0u8; DEST_LEN];
        b[..16].copy_from_slice(&addr16(&self.addr));
        b[16] = family(&self.addr);
        b[17] = self.fwd.conn_flags() as u8;
        b[18..20].copy_from_slice(&self.port.to_be_bytes());
        b[20..24].copy_from_slice(&self.weight.to_ne_bytes());
        b[24..28].copy_from_slice(&self.u_threshold.to_ne_bytes());
        b[28..32].copy_from_slice(&self.l_threshold.to_ne_bytes());
        b[32..36].copy_from_slice(&self.epoch.to_ne_bytes());
        b[36..40].copy_from_slice(&self.svc.to_ne_bytes());
        if let Some(src) = &self.tun_src {
            b[40..56].copy_from_slice(&addr16(src));
        }
        b[56] = u8::from(self.retired);
        if let Forwarding::Tunnel {
            kind: TunnelType::Gue,
            port,
            ..
        } = self.fwd
        {
            b[57] = TUN_GUE;
            b[58..60].copy_from_slice(&port.to_be_bytes());
        }
        b
    }
}

/// `struct dest_conns`: what the program counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestConns {
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn.
    pub persist: u32,
    /// `epoch + 1` while overloaded, 0 otherwise.
    pub overload: u32,
}

impl DestConns {
    /// From the map's value.
    pub fn from_words(w: [u32; 4]) -> DestConns {
        DestConns {
            active: w[0],
            inactive: w[1],
            persist: w[2],
            overload: w[3],
        }
    }
}

/// `struct flow_key` and `struct flow`, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// Protocol number.
    pub proto: u8,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub virt: (IpAddr, u16),
    /// Expiry, in ns on the program's clock.
    pub expires_ns: u64,
    /// The destination slot.
    pub dest: u32,
    /// The service index.
    pub svc: u16,
    /// fulcrum-core's ConnState number.
    pub state: u8,
    /// Counted as inactive.
    pub inactive: bool,
}

/// `SYNC_MAX`: the synced flows one install run takes.
pub const SYNC_MAX: usize = 256;

/// `struct sync_rec`.
pub const SYNC_REC_LEN: usize = 64;

/// `SYNC_F_TEMPLATE`.
const SYNC_F_TEMPLATE: u8 = 0x1;

/// `struct sync_rec` for a synced flow bound to real-server `slot` of
/// service `svc`.
pub(crate) fn sync_rec(f: &crate::SyncedFlow, slot: u32, svc: u32) -> [u8; SYNC_REC_LEN] {
    let mut b = [0u8; SYNC_REC_LEN];
    b[..16].copy_from_slice(&addr16(&f.client.0));
    b[16..32].copy_from_slice(&addr16(&f.virt.0));
    b[32..34].copy_from_slice(&f.client.1.to_be_bytes());
    b[34..36].copy_from_slice(&f.virt.1.to_be_bytes());
    b[36] = f.proto.number();
    b[37] = family(&f.virt.0);
    b[38] = f.state as u8;
    b[39] = if f.template { SYNC_F_TEMPLATE } else { 0 };
    b[40..44].copy_from_slice(&slot.to_ne_bytes());
    b[44..48].copy_from_slice(&svc.to_ne_bytes());
    b[48..52].copy_from_slice(&f.timeout.to_ne_bytes());
    b
}

/// `struct sync_ev`: a flow the program reports for connection sync.
pub const SYNC_EV_LEN: usize = 56;

/// A flow the program reported for connection sync (`struct sync_ev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The client's address and port.
    pub client: (IpAddr, u16),
    /// The virtual address and port the client's packets go to.
    pub virt: (IpAddr, u16),
    /// When, in ns on the program's clock.
    pub stamp_ns: u64,
    /// The real server's slot.
    pub dest: u32,
    /// The service's index.
    pub svc: u32,
    /// Protocol number.
    pub proto: u8,
    /// fulcrum-core's ConnState number.
    pub state: u8,
    /// Counted as inactive.
    pub inactive: bool,
    /// The state's timeout in seconds.
    pub timeout: u32,
}

impl SyncReport {
    /// A report read from the ring; `None` when it is not one.
    pub fn parse(b: &[u8]) -> Option<SyncReport> {
        if b.len() < SYNC_EV_LEN {
            return None;
        }
        let family = b[49];
        let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(SyncReport {
            client: (addr_of(&b[..16], family)?, port(40)),
            virt: (addr_of(&b[16..32], family)?, port(42)),
            stamp_ns: u64::from_ne_bytes(b[32..40].try_into().ok()?),
            dest: u32::from(u16_at(44)),
            svc: u32::from(u16_at(46)),
            proto: b[48],
            state: b[50],
            inactive: b[51] & 1 != 0,
            timeout: u32::from_ne_bytes(b[52..56].try_into().ok()?),
        })
    }
}

/// `struct bucket4`: four 32-byte slots of the IPv4 flow table.
pub const BUCKET4_LEN: usize = 128;

/// `struct bucket6`: four 64-byte slots of the IPv6 flow table.
pub const BUCKET6_LEN: usize = 256;

impl FlowRecord {
    /// The flows among the four slots of an IPv4 bucket (free slots left
    /// out): `struct slot4`, the client's address, the virtual address,
    /// the ports, protocol and kind, then `struct flow`.
    pub fn parse_bucket4(b: &[u8; BUCKET4_LEN]) -> Vec<FlowRecord> {
        b.chunks_exact(32)
            .filter_map(|s| {
                let v4 = |i: usize| IpAddr::from([s[i], s[i + 1], s[i + 2], s[i + 3]]);
                FlowRecord::of_slot(s, v4(0), v4(4), 8)
            })
            .collect()
    }

    /// The same for an IPv6 bucket (`struct slot6`).
    pub fn parse_bucket6(b: &[u8; BUCKET6_LEN]) -> Vec<FlowRecord> {
        b.chunks_exact(64)
            .filter_map(|s| {
                let v6 = |i: usize| -> Option<IpAddr> {
                    let a: [u8; 16] = s[i..i + 16].try_into().ok()?;
                    Some(IpAddr::from(a))
                };
                FlowRecord::of_slot(s, v6(0)?, v6(16)?, 32)
            })
            .collect()
    }

    /// A slot whose ports sit at `at` (protocol and kind after them, the
    /// flow 8 bytes on), or `None` when it holds no flow.
    fn of_slot(s: &[u8], client: IpAddr, virt: IpAddr, at: usize) -> Option<FlowRecord> {
        if s.get(at + 5) != Some(&1) {
            return None;
        }
        let port = |i: usize| u16::from_be_bytes([s[i], s[i + 1]]);
        let f = s.get(at + 8..at + 24)?;
        Some(FlowRecord {
            proto: s[at + 4],
            client: (client, port(at)),
            virt: (virt, port(at + 2)),
            expires_ns: u64::from_ne_bytes(f[..8].try_into().ok()?),
            dest: u32::from(u16::from_ne_bytes(f[8..10].try_into().ok()?)),
            svc: u16::from_ne_bytes(f[12..14].try_into().ok()?),
            state: f[14],
            inactive: f[15] & 1 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_c_layout() {
        let d = DestRecord {
            addr: "10.0.0.5".parse().unwrap(),
            fwd: Forwarding::Masq,
            port: 8080,
            weight: 3,
            u_threshold: 10,
            l_threshold: 2,
            epoch: 7,
            svc: 9,
            tun_src: Some("10.0.0.254".parse().unwrap()),
            retired: true,
        }
        .bytes();
        assert_eq!(d[56], 1);
        assert_eq!(&d[57..60], &[TUN_IPIP, 0, 0]);
        let gue = DestRecord {
            addr: "10.0.0.5".parse().unwrap(),
            fwd: Forwarding::Tunnel {
                kind: TunnelType::Gue,
                port: 6080,
                csum: fulcrum_core::TunnelCsum::NoCsum,
            },
            port: 0,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            epoch: 0,
            svc: 0,
            tun_src: None,
            retired: false,
        }
        .bytes();
        assert_eq!(gue[17], 2, "IP_VS_CONN_F_TUNNEL");
        assert_eq!(&gue[57..60], &[TUN_GUE, 0x17, 0xc0]);
        // A synced template, as `struct sync_rec` lays it out.
        let r = sync_rec(
            &crate::SyncedFlow {
                proto: fulcrum_core::Protocol::Tcp,
                virt: ("192.0.2.1".parse().unwrap(), 80),
                client: ("198.51.100.0".parse().unwrap(), 0),
                dest: ("10.0.0.1".parse().unwrap(), 80),
                state: fulcrum_core::state::ConnState::None,
                template: true,
                timeout: 300,
            },
            7,
            3,
        );
        assert_eq!(&r[..4], &[198, 51, 100, 0]);
        assert_eq!(&r[16..20], &[192, 0, 2, 1]);
        assert_eq!(&r[32..40], &[0, 0, 0, 80, 6, 4, 0, SYNC_F_TEMPLATE]);
        assert_eq!(u32::from_ne_bytes(r[40..44].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(r[44..48].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(r[48..52].try_into().unwrap()), 300);
        assert_eq!(&d[40..44], &[10, 0, 0, 254]);
        assert_eq!(&d[..4], &[10, 0, 0, 5]);
        assert_eq!(d[16], 4);
        assert_eq!(d[17], 0);
        assert_eq!(&d[18..20], &[0x1f, 0x90]);
        assert_eq!(u32::from_ne_bytes(d[20..24].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(d[36..40].try_into().unwrap()), 9);
        let s = SchedState {
            wrr_cw: -1,
            wrr_cl: 5,
            rr_last: 3,
            rng: 42,
        };
        assert_eq!(SchedState::from_bytes(&s.bytes()), s);
        let v = SvcRecord {
            sched: 3,
            flags: SVC_SCHED2,
            wrr_mw: 0,
            wrr_di: 1,
            mh_m: 0,
            persist: 300,
            port: 80,
            netmask: netmask16(&fulcrum_core::Netmask::V4(0xffff_ff00)),
            lblc_expire: 86400,
            slots: vec![4, 5],
        }
        .bytes();
        assert_eq!(&v[..4], &[3, 2, 2, 0]);
        assert_eq!(u32::from_ne_bytes(v[16..20].try_into().unwrap()), 300);
        assert_eq!(&v[20..22], &[0, 80]);
        assert_eq!(&v[24..29], &[255, 255, 255, 0, 0]);
        assert_eq!(u32::from_ne_bytes(v[40..44].try_into().unwrap()), 86400);
        assert_eq!(u32::from_ne_bytes(v[52..56].try_into().unwrap()), 5);
        assert_eq!(
            &netmask16(&fulcrum_core::Netmask::V6(20))[..4],
            &[255, 255, 0xf0, 0]
        );
        assert_eq!(sched_number(SchedulerKind::Twos), 13);
        assert_eq!(sched_number(SchedulerKind::Rr), 0);
    }

    #[test]
    fn flow_slots_read_back_and_free_ones_are_left_out() {
        // An IPv4 bucket: a flow, a slot freed (kind 0), two never used.
        let mut b = [0u8; BUCKET4_LEN];
        b[..4].copy_from_slice(&[198, 51, 100, 1]);
        b[4..8].copy_from_slice(&[192, 0, 2, 1]);
        b[8..10].copy_from_slice(&40000u16.to_be_bytes());
        b[10..12].copy_from_slice(&80u16.to_be_bytes());
        b[12] = 6;
        b[13] = 1;
        b[16..24].copy_from_slice(&5u64.to_ne_bytes());
        b[24..26].copy_from_slice(&3u16.to_ne_bytes());
        b[26..28].copy_from_slice(&7u16.to_ne_bytes()); // the sync packet count
        b[30] = 1;
        b[32..36].copy_from_slice(&[198, 51, 100, 2]);
        b[32 + 12] = 17;
        let flows = FlowRecord::parse_bucket4(&b);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].client, ("198.51.100.1".parse().unwrap(), 40000));
        assert_eq!(flows[0].virt, ("192.0.2.1".parse().unwrap(), 80));
        assert_eq!(
            (
                flows[0].expires_ns,
                flows[0].dest,
                flows[0].state,
                flows[0].inactive
            ),
            (5, 3, 1, false)
        );
        // An IPv6 bucket: its last slot holds an inactive UDP flow.
        let mut b = [0u8; BUCKET6_LEN];
        let s = &mut b[192..];
        let client: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let virt: std::net::Ipv6Addr = "2001:db8::100".parse().unwrap();
        s[..16].copy_from_slice(&client.octets());
        s[16..32].copy_from_slice(&virt.octets());
        s[32..34].copy_from_slice(&5353u16.to_be_bytes());
        s[34..36].copy_from_slice(&53u16.to_be_bytes());
        s[36] = 17;
        s[37] = 1;
        s[48..50].copy_from_slice(&9u16.to_ne_bytes());
        s[50..52].copy_from_slice(&49u16.to_ne_bytes());
        s[52..54].copy_from_slice(&2u16.to_ne_bytes());
        s[54] = 11;
        s[55] = 1;
        let flows = FlowRecord::parse_bucket6(&b);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].client, (IpAddr::V6(client), 5353));
        assert_eq!(flows[0].virt, (IpAddr::V6(virt), 53));
        assert_eq!(
            (
                flows[0].proto,
                flows[0].dest,
                flows[0].svc,
                flows[0].state,
                flows[0].inactive
            ),
            (17, 9, 2, 11, true)
        );
    }
}
