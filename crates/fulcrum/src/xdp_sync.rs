//! Fulcrum's own connection-sync daemons for the XDP plane, the kernel's
//! two in userspace.
//!
//! The receiver (a backup) listens for the IPVS sync messages of the
//! group on `syncd_iface` — from kernel IPVS masters or other Fulcrums —
//! and hands their connections, in this director's terms, to the plane,
//! which installs them in the program's flow table.
//!
//! The sender (a master) reads the program's reports (flows at the moments
//! IPVS's master syncs its connections) every few milliseconds from their
//! ring buffer on its own thread, makes them sync entries against the
//! published table, packs them into messages as large as the link allows
//! and sends them to the group out of `syncd_iface`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fulcrum_core::state::ConnState;
use fulcrum_core::{Protocol, SyncDaemon};
use fulcrum_sync::{Conn, flags};
use fulcrum_xdp::{SyncReports, SyncView, SyncedFlow};
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

/// How long the sender sleeps between reads of the ring when it is idle:
/// the most a report waits before it is sent (IPVS's master waits up to
/// 20 ms, and up to 2 s for a partly filled message).
const SEND_INTERVAL: Duration = Duration::from_millis(5);

/// Reports taken from the ring at once.
const SEND_BATCH: usize = 4096;

/// What the sender did.
#[derive(Debug, Default)]
pub struct SendCounters {
    /// Messages sent.
    pub messages: AtomicU64,
    /// Entries sent (connections and templates).
    pub entries: AtomicU64,
    /// Reports of a real server or service no longer published.
    pub unknown: AtomicU64,
    /// Messages the kernel refused to send (a full queue, the link down).
    pub errors: AtomicU64,
    /// The oldest report's age when the last batch went out, in µs.
    pub lag_us: AtomicU64,
}

/// [`SendCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendCounts {
    /// Messages sent.
    pub messages: u64,
    /// Entries sent.
    pub entries: u64,
    /// Reports of no published real server.
    pub unknown: u64,
    /// Messages not sent.
    pub errors: u64,
    /// The last batch's lag, in µs.
    pub lag_us: u64,
}

impl SendCounters {
    /// The counters now.
    pub fn read(&self) -> SendCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SendCounts {
            messages: get(&self.messages),
            entries: get(&self.entries),
            unknown: get(&self.unknown),
            errors: get(&self.errors),
            lag_us: get(&self.lag_us),
        }
    }
}

/// The running sender.
#[derive(Debug)]
pub struct SyncSender {
    /// What it was started for.
    pub daemon: SyncDaemon,
    /// Its counters.
    pub counters: Arc<SendCounters>,
    /// The largest message it sends.
    pub maxlen: usize,
    view: Arc<Mutex<Arc<SyncView>>>,
    stop: Arc<AtomicBool>,
    ring: Arc<Mutex<Option<SyncReports>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The program's clock (CLOCK_MONOTONIC_COARSE, as the program reads it)
/// in ns.
fn program_clock() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

impl SyncSender {
    /// Send as `daemon` says (a master's group, port, interface, id, TTL,
    /// message size) what the program reports into `reports`, read against
    /// `view`.
    ///
    /// # Errors
    /// The socket refused (no such interface), or no thread: the reports
    /// come back with why.
    pub fn start(
        daemon: SyncDaemon,
        reports: SyncReports,
        view: SyncView,
    ) -> Result<SyncSender, Box<(String, Option<SyncReports>)>> {
        let group = fulcrum_sync::receive::group_or_default(daemon.mcast_group);
        let port = if daemon.mcast_port == 0 {
            fulcrum_sync::PORT
        } else {
            daemon.mcast_port
        };
        let opened = fulcrum_sync::send::open(group, port, &daemon.mcast_ifn, daemon.mcast_ttl)
            .and_then(|s| {
                let maxlen = if daemon.sync_maxlen != 0 {
                    usize::from(daemon.sync_maxlen)
                } else {
                    fulcrum_sync::send::default_maxlen(
                        fulcrum_sync::send::mtu(&daemon.mcast_ifn)?,
                        &group,
                    )
                };
                Ok((s, maxlen))
            });
        let (socket, maxlen) = match opened {
            Ok(x) => x,
            Err(e) => return Err(Box::new((e, Some(reports)))),
        };
        let counters = Arc::new(SendCounters::default());
        let view = Arc::new(Mutex::new(Arc::new(view)));
        let stop = Arc::new(AtomicBool::new(false));
        // The ring passes to the thread and back through this slot, so
        // that it comes back even when the thread cannot start.
        let ring = Arc::new(Mutex::new(Some(reports)));
        let (c, v, st, r) = (counters.clone(), view.clone(), stop.clone(), ring.clone());
        let syncid = daemon.syncid;
        let spawned = std::thread::Builder::new()
            .name("fulcrum-syncd".into())
            .spawn(move || {
                let taken = r.lock().ok().and_then(|mut g| g.take());
                if let Some(mut reports) = taken {
                    send_loop(&mut reports, &socket, syncid, maxlen, &v, &c, &st);
                    if let Ok(mut g) = r.lock() {
                        *g = Some(reports);
                    }
                }
            });
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                let back = ring.lock().ok().and_then(|mut g| g.take());
                return Err(Box::new((
                    format!("cannot start the sync sender's thread: {e}"),
                    back,
                )));
            }
        };
        tracing::info!(iface = %daemon.mcast_ifn, %group, port, syncid, maxlen, "connection sync: sending (Fulcrum's master daemon)");
        Ok(SyncSender {
            daemon,
            counters,
            maxlen,
            view,
            stop,
            ring,
            thread: Some(thread),
        })
    }

    /// The table was published anew: read later reports against it.
    pub fn set_view(&self, view: SyncView) {
        if let Ok(mut v) = self.view.lock() {
            *v = Arc::new(view);
        }
    }

    /// Stop, after sending what the ring holds; the reports come back.
    pub fn stop(mut self) -> Option<SyncReports> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.ring.lock().ok().and_then(|mut g| g.take())
    }
}

impl Drop for SyncSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The sender's thread: read the ring, make entries, send, until `stop`
/// (then once more, so nothing read is left behind).
fn send_loop(
    reports: &mut SyncReports,
    socket: &std::net::UdpSocket,
    syncid: u8,
    maxlen: usize,
    view: &Mutex<Arc<SyncView>>,
    c: &SendCounters,
    stop: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    let mut entries = Vec::with_capacity(2 * SEND_BATCH);
    let mut packer = fulcrum_sync::Packer::new(syncid, maxlen);
    // A message's entry count is its fifth byte.
    let send = |m: Vec<u8>| match socket.send(&m) {
        Ok(_) => {
            c.messages.fetch_add(1, Ordering::Relaxed);
            c.entries.fetch_add(u64::from(m[4]), Ordering::Relaxed);
        }
        Err(_) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        batch.clear();
        let n = reports.drain(SEND_BATCH, &mut batch);
        if n > 0 {
            let v = view.lock().map(|g| g.clone()).unwrap_or_default();
            entries.clear();
            for r in &batch {
                if !v.entries(r, &mut entries) {
                    c.unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
            for e in &entries {
                // An entry too long for a message (a tiny `syncd_maxlen`)
                // cannot go: counted with the refused.
                match packer.push(e) {
                    Ok(Some(m)) => send(m),
                    Ok(None) => {}
                    Err(_) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Some(m) = packer.finish() {
                send(m);
            }
            let oldest = batch.iter().map(|r| r.stamp_ns).min().unwrap_or(0);
            let now = program_clock();
            c.lag_us
                .store(now.saturating_sub(oldest) / 1000, Ordering::Relaxed);
        }
        if stopping {
            return;
        }
        // A full batch: more is waiting; otherwise rest a moment.
        if n < SEND_BATCH {
            std::thread::sleep(SEND_INTERVAL);
        }
    }
}
