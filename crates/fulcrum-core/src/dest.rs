//! Real servers ("destinations" in IPVS).

use std::net::IpAddr;

use crate::estimator::Stats;

/// Stable identity of a dest inside its service. Scheduler state (cursors,
/// caches, hash tables) refers to dests by id, so a deleted dest can never be
/// returned through a stale reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u64);

/// Tunnel encapsulation for `Tunnel` dests (`--tun-type`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum TunnelType {
    /// IP-in-IP, the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation, with its UDP port.
    Gue,
    /// GRE.
    Gre,
}

impl TunnelType {
    /// ipvsadm's name.
    pub fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// Tunnel checksum mode (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum TunnelCsum {
    /// No checksum (the default).
    #[default]
    NoCsum,
    /// Checksum.
    Csum,
    /// Remote checksum offload (GUE only).
    RemCsum,
}

/// How packets reach a real server (the low bits of IPVS's conn flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Forwarding {
    /// NAT (`-m`), shown `Masq`.
    Masq,
    /// The director itself, shown `Local`.
    Local,
    /// Tunnelling (`-i`), shown `Tunnel`.
    Tunnel {
        /// Encapsulation.
        kind: TunnelType,
        /// UDP port for GUE (0 otherwise).
        port: u16,
        /// Checksum mode.
        csum: TunnelCsum,
    },
    /// Direct routing (`-g`, ipvsadm's default), shown `Route`.
    Route,
}

impl Forwarding {
    /// A plain IP-in-IP tunnel.
    pub const TUNNEL: Forwarding = Forwarding::Tunnel {
        kind: TunnelType::Ipip,
        port: 0,
        csum: TunnelCsum::NoCsum,
    };

    /// The name ipvsadm prints in the `Forward` column.
    pub fn name(&self) -> &'static str {
        match self {
            Forwarding::Masq => "Masq",
            Forwarding::Local => "Local",
            Forwarding::Tunnel { .. } => "Tunnel",
            Forwarding::Route => "Route",
        }
    }

    /// True when the director never sees replies (`IP_VS_CONN_F_NOOUTPUT`):
    /// direct routing and tunnelling use the INPUT_ONLY state table.
    pub fn input_only(&self) -> bool {
        matches!(self, Forwarding::Route | Forwarding::Tunnel { .. })
    }

    /// The kernel's flag value (`IP_VS_CONN_F_FWD_MASK` bits).
    pub fn conn_flags(&self) -> u32 {
        match self {
            Forwarding::Masq => 0,
            Forwarding::Local => 1,
            Forwarding::Tunnel { .. } => 2,
            Forwarding::Route => 3,
        }
    }
}

/// A real server of a virtual service.
#[derive(Debug, Clone)]
pub struct Dest {
    /// Stable identity within the service.
    pub id: DestId,
    /// Address.
    pub addr: IpAddr,
    /// Port (0 for fwmark services that keep the packet's port).
    pub port: u16,
    /// Forwarding method.
    pub fwd: Forwarding,
    /// Weight, 0..=2147483647; 0 quiesces the dest.
    pub weight: u32,
    /// The last non-zero weight (`dest->last_weight`), used by mh so a
    /// quiesced dest keeps its table slots.
    pub last_weight: u32,
    /// Upper connection threshold (`-x`); 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`); 0 = 3/4 of the upper one.
    pub l_threshold: u32,
    /// Connections in ESTABLISHED.
    pub activeconns: u32,
    /// Connections in any other state, and all UDP connections.
    pub inactconns: u32,
    /// Persistence templates pointing here.
    pub persistconns: u32,
    /// `IP_VS_DEST_F_OVERLOAD`: set when the upper threshold is reached.
    pub overload: bool,
    /// Traffic counters and rate estimator.
    pub stats: Stats,
}

impl Dest {
    /// A new dest with no connections.
    pub fn new(id: DestId, addr: IpAddr, port: u16, fwd: Forwarding, weight: u32) -> Dest {
        Dest {
            id,
            addr,
            port,
            fwd,
            weight,
            last_weight: weight,
            u_threshold: 0,
            l_threshold: 0,
            activeconns: 0,
            inactconns: 0,
            persistconns: 0,
            overload: false,
            stats: Stats::default(),
        }
    }

    /// `ip_vs_dest_conn_overhead`: `active * 256 + inactive`.
    pub fn conn_overhead(&self) -> i64 {
        (i64::from(self.activeconns) << 8) + i64::from(self.inactconns)
    }

    /// `active + inactive` (templates not included).
    pub fn totalconns(&self) -> u32 {
        self.activeconns + self.inactconns
    }

    /// The test every scheduler applies: not overloaded and weight > 0.
    pub fn available(&self) -> bool {
        !self.overload && self.weight > 0
    }

    /// Apply the overload rule for a connection just bound (`ip_vs_bind_dest`).
    pub(crate) fn check_overload_on_bind(&mut self) {
        if self.u_threshold != 0 && self.totalconns() >= self.u_threshold {
            self.overload = true;
        }
    }

    /// Apply the overload rule for a connection just unbound
    /// (`ip_vs_unbind_dest`): below the lower threshold, or below 3/4 of the
    /// upper one when no lower threshold is set.
    pub(crate) fn check_overload_on_unbind(&mut self) {
        let total = u64::from(self.totalconns());
        if self.l_threshold != 0 {
            if total < u64::from(self.l_threshold) {
                self.overload = false;
            }
        } else if self.u_threshold != 0 {
            if total * 4 < u64::from(self.u_threshold) * 3 {
                self.overload = false;
            }
        } else {
            self.overload = false;
        }
    }
}
