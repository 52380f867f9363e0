//! The kernel's connection-sync daemons as ipvsadm and netlink describe
//! them (`ipvs_daemon_t`, `IPVS_CMD_ATTR_DAEMON`).

use std::net::IpAddr;

/// The role of a connection-sync daemon (`IP_VS_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SyncRole {
    /// Sends this director's connections (`master`).
    Master,
    /// Receives another director's (`backup`).
    Backup,
}

impl SyncRole {
    /// `master` or `backup`, as ipvsadm says it.
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }
}

/// A connection-sync daemon: what `--start-daemon` asks for and what
/// `--daemon` lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncDaemon {
    /// Its role.
    pub role: SyncRole,
    /// The interface its multicast goes out of or comes in on
    /// (`--mcast-interface`).
    pub mcast_ifn: String,
    /// The sync id: a backup takes only messages with its own (0: any).
    pub syncid: u8,
    /// The largest UDP payload (0: the kernel's default, from the MTU).
    pub sync_maxlen: u16,
    /// The multicast group (`None`: the kernel's 224.0.0.81).
    pub mcast_group: Option<IpAddr>,
    /// The UDP port (0: the kernel's 8848).
    pub mcast_port: u16,
    /// The multicast TTL (0: the kernel's 1).
    pub mcast_ttl: u8,
}
