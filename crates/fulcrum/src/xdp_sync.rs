//! Fulcrum's own connection-sync receiver for the XDP plane: the kernel's
//! backup daemon's job (`syncd_role = backup`). It listens for the IPVS
//! sync messages of the group on `syncd_iface` — from kernel IPVS masters
//! or other Fulcrums — and hands their connections, in this director's
//! terms, to the plane, which installs them in the program's flow table.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fulcrum_core::state::ConnState;
use fulcrum_core::{Protocol, SyncDaemon};
use fulcrum_sync::{Conn, flags};
use fulcrum_xdp::SyncedFlow;
use tokio::sync::mpsc;

/// Messages waiting for the plane at most (each at most 255 entries);
/// beyond, they are dropped and counted (the plane installs every second).
const QUEUE_MESSAGES: usize = 1024;

/// What the receiver saw.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Messages taken.
    pub messages: AtomicU64,
    /// Entries handed to the plane.
    pub entries: AtomicU64,
    /// Entries dropped: skipped by the codec, of another sync id, of a
    /// fwmark service, or over the queue's bound.
    pub dropped: AtomicU64,
    /// Datagrams that were no sync message.
    pub malformed: AtomicU64,
}

/// [`SyncCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCounts {
    /// Messages taken.
    pub messages: u64,
    /// Entries handed to the plane.
    pub entries: u64,
    /// Entries dropped.
    pub dropped: u64,
    /// Datagrams that were no sync message.
    pub malformed: u64,
}

impl SyncCounters {
    /// The counters now.
    pub fn read(&self) -> SyncCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SyncCounts {
            messages: get(&self.messages),
            entries: get(&self.entries),
            dropped: get(&self.dropped),
            malformed: get(&self.malformed),
        }
    }
}

/// The running receiver.
#[derive(Debug)]
pub struct SyncReceiver {
    /// What it was started for.
    pub daemon: SyncDaemon,
    /// Its counters.
    pub counters: Arc<SyncCounters>,
    rx: mpsc::Receiver<Vec<SyncedFlow>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyncReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SyncReceiver {
    /// Listen as `daemon` says (a backup's group, port, interface, id).
    ///
    /// # Errors
    /// The socket refused (no such interface, the port taken).
    pub fn start(daemon: SyncDaemon) -> Result<SyncReceiver, String> {
        let group = fulcrum_sync::receive::group_or_default(daemon.mcast_group);
        let port = if daemon.mcast_port == 0 {
            fulcrum_sync::PORT
        } else {
            daemon.mcast_port
        };
        let std_socket = fulcrum_sync::receive::open(group, port, &daemon.mcast_ifn)?;
        let socket =
            tokio::net::UdpSocket::from_std(std_socket).map_err(|e| format!("sync socket: {e}"))?;
        let counters = Arc::new(SyncCounters::default());
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let c = counters.clone();
        let syncid = daemon.syncid;
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok(n) = socket.recv(&mut buf).await else {
                    continue;
                };
                let Ok(d) = fulcrum_sync::decode(&buf[..n]) else {
                    c.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                c.messages.fetch_add(1, Ordering::Relaxed);
                let announced = d.announced as u64;
                if syncid != 0 && d.syncid != syncid {
                    c.dropped.fetch_add(announced, Ordering::Relaxed);
                    continue;
                }
                let flows: Vec<SyncedFlow> = d.conns.iter().filter_map(synced).collect();
                c.dropped
                    .fetch_add(announced - flows.len() as u64, Ordering::Relaxed);
                let n = flows.len() as u64;
                match tx.try_send(flows) {
                    Ok(()) => {
                        c.entries.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        c.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        tracing::info!(iface = %daemon.mcast_ifn, %group, port, syncid, "connection sync: receiving (Fulcrum's backup daemon)");
        Ok(SyncReceiver {
            daemon,
            counters,
            rx,
            task,
        })
    }

    /// The connections received since the last call.
    pub fn take(&mut self) -> Vec<SyncedFlow> {
        let mut out = Vec::new();
        while let Ok(mut v) = self.rx.try_recv() {
            out.append(&mut v);
        }
        out
    }
}

/// A synced connection in the plane's terms; `None` for what the plane
/// has no place for (fwmark services, other protocols, one-packet ones).
pub fn synced(c: &Conn) -> Option<SyncedFlow> {
    if c.fwmark != 0 || c.flags & flags::ONE_PACKET != 0 {
        return None;
    }
    let proto = match c.protocol {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        132 => Protocol::Sctp,
        _ => return None,
    };
    let template = c.flags & flags::TEMPLATE != 0;
    let state = if template {
        ConnState::None
    } else {
        match proto {
            Protocol::Udp => ConnState::Udp,
            Protocol::Tcp => ConnState::from_tcp_index(u8::try_from(c.state).ok()?)?,
            // IPVS's SCTP states, in the TCP names the program keeps them in.
            Protocol::Sctp => match c.state {
                0 => ConnState::None,
                7 => ConnState::Established,
                1..=6 => ConnState::SynRecv,
                8..=10 => ConnState::FinWait,
                _ => ConnState::Close,
            },
        }
    };
    // Version 0 carries no timeout: the state's own (templates: 3 min,
    // as the kernel's backup takes them).
    let timeout = c.timeout.unwrap_or(if template { 180 } else { 0 });
    Some(SyncedFlow {
        proto,
        virt: c.virt,
        client: c.client,
        dest: c.dest,
        state,
        template,
        timeout,
    })
}
