//! Virtual services.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::addr::{Family, Netmask};
use crate::dest::{Dest, DestId};
use crate::estimator::Stats;
use crate::sched::SharedScheduler;

/// The transport protocol of a virtual service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Protocol {
    /// TCP
    Tcp,
    /// UDP
    Udp,
    /// SCTP
    Sctp,
}

impl Protocol {
    /// IANA protocol number, ipvsadm's sort key.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Upper-case name as listings print it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(format!("unknown protocol `{s}`")),
        }
    }
}

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ServiceKey {
    /// protocol, address and port.
    Addr {
        /// Protocol.
        proto: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port (0 only for persistent services).
        port: u16,
    },
    /// A firewall mark, for one address family.
    Fwmark {
        /// The mark (> 0).
        mark: u32,
        /// Family of the marked packets.
        family: Family,
    },
}

impl ServiceKey {
    /// The service's address family.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The service port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// The fwmark, 0 for address services.
    pub fn fwmark(&self) -> u32 {
        match self {
            ServiceKey::Addr { .. } => 0,
            ServiceKey::Fwmark { mark, .. } => *mark,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                proto,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{proto} [{a}]:{port}"),
            ServiceKey::Addr { proto, addr, port } => write!(f, "{proto} {addr}:{port}"),
            ServiceKey::Fwmark {
                mark,
                family: Family::V4,
            } => write!(f, "fwmark {mark}"),
            ServiceKey::Fwmark {
                mark,
                family: Family::V6,
            } => write!(f, "fwmark {mark} IPv6"),
        }
    }
}

/// The scheduler flags (`-b`): SCHED1 is sh-/mh-fallback, SCHED2 is
/// sh-/mh-port, SCHED3 is unused by the in-tree schedulers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SchedFlags {
    /// `IP_VS_SVC_F_SCHED1` (0x0008).
    pub sched1: bool,
    /// `IP_VS_SVC_F_SCHED2` (0x0010).
    pub sched2: bool,
    /// `IP_VS_SVC_F_SCHED3` (0x0020).
    pub sched3: bool,
}

impl SchedFlags {
    /// True if any flag is set.
    pub fn any(&self) -> bool {
        self.sched1 || self.sched2 || self.sched3
    }
}

/// A virtual service with its real servers.
#[derive(Debug)]
pub struct Service {
    /// Identity.
    pub key: ServiceKey,
    /// The bound scheduler.
    pub scheduler: SharedScheduler,
    /// Scheduler flags.
    pub flags: SchedFlags,
    /// Persistence timeout in seconds when persistent (`-p`).
    pub persistent: Option<u32>,
    /// Persistence granularity (`-M`).
    pub netmask: Netmask,
    /// One-packet scheduling (`-o`).
    pub one_packet: bool,
    /// Persistence engine (`--pe`), e.g. `sip`.
    pub pe_name: Option<String>,
    /// Real servers in kernel list order (newest first).
    pub dests: Vec<Dest>,
    /// Counters and rates.
    pub stats: Stats,
    pub(crate) next_dest_id: u64,
}

impl Service {
    /// The dest with an address and port.
    pub fn dest(&self, addr: &IpAddr, port: u16) -> Option<&Dest> {
        self.dests
            .iter()
            .find(|d| d.addr == *addr && d.port == port)
    }

    /// The dest with an id.
    pub fn dest_by_id(&self, id: DestId) -> Option<&Dest> {
        self.dests.iter().find(|d| d.id == id)
    }

    pub(crate) fn dest_by_id_mut(&mut self, id: DestId) -> Option<&mut Dest> {
        self.dests.iter_mut().find(|d| d.id == id)
    }
}
