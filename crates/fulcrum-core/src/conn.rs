//! Connection entries and persistence templates (`ip_vs_conn.c`,
//! `ip_vs_core.c`). The [`Table`](crate::table::Table) owns the connection
//! table and drives it; this module holds the entry types.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::dest::DestId;
use crate::service::{Protocol, ServiceKey};
use crate::state::ConnState;

/// Handle of a connection or template in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The protocol column of a connection: templates of fwmark services carry
/// `IPPROTO_IP` (shown `IP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnProto {
    /// A transport protocol.
    L4(Protocol),
    /// `IPPROTO_IP`, fwmark templates only.
    Ip,
}

impl ConnProto {
    /// The name `/proc/net/ip_vs_conn` prints.
    pub fn name(self) -> &'static str {
        match self {
            ConnProto::L4(p) => p.name(),
            ConnProto::Ip => "IP",
        }
    }
}

/// A connection entry, or a persistence template when `template` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Protocol.
    pub proto: ConnProto,
    /// Client address (the masked client network for templates).
    pub caddr: IpAddr,
    /// Client port (0 for templates).
    pub cport: u16,
    /// Virtual address (the fwmark as an IPv4 address for fwmark templates).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// The service that scheduled it.
    pub service: ServiceKey,
    /// The dest it is bound to.
    pub dest: DestId,
    /// Protocol state.
    pub state: ConnState,
    /// `IP_VS_CONN_F_INACTIVE`: counted in InActConn.
    pub inactive: bool,
    /// `IP_VS_CONN_F_TEMPLATE`.
    pub template: bool,
    /// The template controlling this connection, by id (0: none; ids
    /// start at 1). Read with [`Conn::control`].
    pub(crate) control: u64,
    /// Connections this template controls.
    pub n_control: u32,
    /// Current timeout (state timeout, or the persistence timeout) in
    /// milliseconds, at most about 49 days. Read with [`Conn::timeout`].
    pub(crate) timeout_ms: u32,
    /// When the entry expires unless a packet re-arms it, in milliseconds
    /// of the table's clock (rounded up). Read with [`Conn::expires`].
    pub(crate) expires_ms: u64,
}

/// Milliseconds, rounded up (an entry never expires early), saturating.
fn ms_ceil(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_nanos().div_ceil(1_000_000)))
}

impl Conn {
    /// The template controlling this connection.
    pub fn control(&self) -> Option<ConnId> {
        (self.control != 0).then_some(ConnId(self.control))
    }

    /// Current timeout (the state's, or the persistence timeout).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms))
    }

    /// When the entry expires unless a packet re-arms it.
    pub fn expires(&self) -> Duration {
        Duration::from_millis(self.expires_ms)
    }

    /// Set the timeout and run it from `now`.
    pub(crate) fn arm(&mut self, timeout: Duration, now: Duration) {
        self.timeout_ms = u32::try_from(ms_ceil(timeout)).unwrap_or(u32::MAX);
        self.rearm(now);
    }

    /// Run the timeout again from `from`.
    pub(crate) fn rearm(&mut self, from: Duration) {
        self.expires_ms = ms_ceil(from).saturating_add(u64::from(self.timeout_ms));
    }
}

/// Lookup key of a template: `<proto, snet, 0, vaddr, vport>`; the dest part of
/// the kernel's template tuple is what the template stores, not what it is
/// found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TemplateKey {
    pub(crate) service: ServiceKey,
    pub(crate) proto: ConnProto,
    pub(crate) snet: IpAddr,
    pub(crate) vaddr: IpAddr,
    pub(crate) vport: u16,
}

/// The connection table: entries by id, with an index of the templates by
/// their key. (The data planes that use it know their connections' ids, so
/// there is no index by client tuple: a TIME_WAIT entry costs its entry
/// alone.)
#[derive(Debug, Default)]
pub struct ConnTable {
    pub(crate) entries: HashMap<ConnId, Conn>,
    pub(crate) templates: HashMap<TemplateKey, ConnId>,
    /// The last id given out; shared with data planes that open entries
    /// themselves ([`crate::snapshot`]), so ids stay one sequence.
    pub(crate) next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ConnTable {
    /// Give back what a burst left behind: a map at under a quarter of its
    /// capacity is shrunk to twice its size (maps only grow otherwise, so a
    /// director would keep the memory of its busiest minute for ever).
    /// Whether anything was shrunk.
    pub(crate) fn compact(&mut self) -> bool {
        fn shrink<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) -> bool {
            let (len, cap) = (m.len(), m.capacity());
            if cap > 4096 && len < cap / 4 {
                m.shrink_to(len * 2);
                return true;
            }
            false
        }
        let entries = shrink(&mut self.entries);
        shrink(&mut self.templates) || entries
    }

    /// An entry by id.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.entries.get(&id)
    }

    /// How many entries the table holds room for without growing.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Number of entries, templates included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries in id (creation) order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        let mut ids: Vec<&ConnId> = self.entries.keys().collect();
        ids.sort();
        ids.into_iter().map(|id| (*id, &self.entries[id]))
    }

    pub(crate) fn insert(&mut self, conn: Conn) -> ConnId {
        let id = ConnId(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
        );
        self.entries.insert(id, conn);
        id
    }
}

/// A connection as `/proc/net/ip_vs_conn` shows it and `ipvsadm -c` lists
/// it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(
    missing_docs,
    reason = "fields mirror the /proc/net/ip_vs_conn columns"
)]
pub struct ConnEntry {
    /// `TCP`, `UDP`, `SCTP` or `IP`.
    pub proto: String,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub state: String,
    /// Seconds until expiry.
    pub expires: u64,
    /// Persistence engine name and data, when present.
    pub pe: Option<(String, String)>,
}

#[cfg(test)]
mod size {
    use super::*;

    /// Most of what a director holds after a burst of short connections is
    /// their entries waiting out TIME_WAIT (120 s): each is kept small.
    #[test]
    fn an_entry_stays_small() {
        let size = std::mem::size_of::<Conn>();
        eprintln!("Conn: {size} bytes");
        assert!(size <= 120, "Conn grew to {size} bytes");
    }

    #[test]
    fn timers_round_up_and_saturate() {
        let mut c = Conn {
            proto: ConnProto::L4(Protocol::Tcp),
            caddr: IpAddr::from([10, 0, 0, 1]),
            cport: 1,
            vaddr: IpAddr::from([10, 0, 0, 2]),
            vport: 80,
            daddr: IpAddr::from([10, 0, 0, 3]),
            dport: 80,
            service: ServiceKey::Fwmark {
                mark: 1,
                family: crate::Family::V4,
            },
            dest: DestId(1),
            state: ConnState::None,
            inactive: true,
            template: false,
            control: 0,
            n_control: 0,
            timeout_ms: 0,
            expires_ms: 0,
        };
        c.arm(Duration::from_secs(120), Duration::from_micros(1_500));
        assert_eq!(c.timeout(), Duration::from_secs(120));
        assert_eq!(c.expires(), Duration::from_millis(120_002));
        c.arm(Duration::MAX, Duration::MAX);
        assert_eq!(c.timeout(), Duration::from_millis(u64::from(u32::MAX)));
        assert_eq!(c.expires(), Duration::from_millis(u64::MAX));
        assert_eq!(c.control(), None);
        c.control = 7;
        assert_eq!(c.control(), Some(ConnId(7)));
    }
}
