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
    /// Messages refused with `syncd_auth`: not sealed, or not with our
    /// key.
    pub unauthenticated: AtomicU64,
    /// Sealed messages refused as replays (seen before, or too old).
    pub replayed: AtomicU64,
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
    /// Messages not sealed with our key.
    pub unauthenticated: u64,
    /// Sealed messages replayed.
    pub replayed: u64,
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
            unauthenticated: get(&self.unauthenticated),
            replayed: get(&self.replayed),
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
    /// Listen as `daemon` says (a backup's group, port, interface, id);
    /// with `key`, take only messages sealed with it ([`SyncAuth`]).
    ///
    /// # Errors
    /// The socket refused (no such interface, the port taken).
    pub fn start(daemon: SyncDaemon, key: Option<&[u8]>) -> Result<SyncReceiver, String> {
        let group = fulcrum_sync::receive::group_or_default(daemon.mcast_group);
        let port = fulcrum_sync::port_or_default(daemon.mcast_port);
        let std_socket = fulcrum_sync::receive::open(group, port, &daemon.mcast_ifn)?;
        let socket =
            tokio::net::UdpSocket::from_std(std_socket).map_err(|e| format!("sync socket: {e}"))?;
        let counters = Arc::new(SyncCounters::default());
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let c = counters.clone();
        let syncid = daemon.syncid;
        let mut auth = key.map(SyncAuth::new);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let msg = match auth.as_mut() {
                    None => &buf[..n],
                    Some(a) => match a.open(
                        from.ip(),
                        group,
                        &buf[..n],
                        fulcrum_ha::auth::wall_clock_us(),
                    ) {
                        Ok(m) => m,
                        Err(Refused::Unauthenticated) => {
                            c.unauthenticated.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(Refused::Replayed) => {
                            c.replayed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                };
                let Ok(d) = fulcrum_sync::decode(msg) else {
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
        tracing::info!(iface = %daemon.mcast_ifn, %group, port, syncid, sealed = key.is_some(), "connection sync: receiving (Fulcrum's backup daemon)");
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

/// How long the sender lets reports gather after the first wakes it, so
/// that they go out in full messages: about the most a report waits before
/// it is sent (IPVS's master waits up to 20 ms, and up to 2 s for a partly
/// filled message). Idle, the sender sleeps until a report comes.
const SEND_INTERVAL: Duration = Duration::from_millis(10);

/// How often an idle sender looks whether it is asked to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

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

impl SyncSender {
    /// Send as `daemon` says (a master's group, port, interface, id, TTL,
    /// message size) what the program reports into `reports`, read against
    /// `view`; with `key`, each message sealed with it ([`SyncAuth`], its
    /// trailer within the message size).
    ///
    /// # Errors
    /// The socket refused (no such interface), or no thread: the reports
    /// come back with why.
    pub fn start(
        daemon: SyncDaemon,
        reports: SyncReports,
        view: SyncView,
        key: Option<&[u8]>,
    ) -> Result<SyncSender, Box<(String, Option<SyncReports>)>> {
        let group = fulcrum_sync::receive::group_or_default(daemon.mcast_group);
        let port = fulcrum_sync::port_or_default(daemon.mcast_port);
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
                // The seal's trailer goes within the size.
                let maxlen = if key.is_some() {
                    maxlen.saturating_sub(fulcrum_ha::auth::TRAILER).max(64)
                } else {
                    maxlen
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
        let seal = key.map(|k| {
            let src = socket
                .local_addr()
                .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
            (SyncAuth::new(k), src, group)
        });
        let spawned = std::thread::Builder::new()
            .name("fulcrum-syncd".into())
            .spawn(move || {
                let taken = r.lock().ok().and_then(|mut g| g.take());
                if let Some(mut reports) = taken {
                    let out = Out {
                        socket,
                        seal,
                        c,
                        pending: Vec::new(),
                    };
                    send_loop(&mut reports, out, syncid, maxlen, &v, &st);
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

/// Where the sender's messages go: the socket, sealed or not, counted;
/// gathered and sent with one system call a batch (`sendmmsg`).
struct Out {
    socket: std::net::UdpSocket,
    seal: Option<(SyncAuth, std::net::IpAddr, std::net::IpAddr)>,
    c: Arc<SendCounters>,
    pending: Vec<Vec<u8>>,
}

/// Messages one `sendmmsg` takes at most (the kernel's UIO_MAXIOV).
const SEND_MANY: usize = 1024;

impl Out {
    /// A message to send with the batch.
    fn add(&mut self, m: Vec<u8>) {
        let m = match self.seal.as_mut() {
            None => m,
            Some((a, src, group)) => a.seal(*src, *group, &m, fulcrum_ha::auth::wall_clock_us()),
        };
        self.pending.push(m);
    }

    /// Send what was gathered.
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.pending.len() {
            let end = (done + SEND_MANY).min(self.pending.len());
            let iovs: Vec<[std::io::IoSlice<'_>; 1]> = self.pending[done..end]
                .iter()
                .map(|m| [std::io::IoSlice::new(m)])
                .collect();
            let mut controls: Vec<rustix::net::SendAncillaryBuffer<'_, '_, '_>> =
                iovs.iter().map(|_| Default::default()).collect();
            let mut hdrs: Vec<rustix::net::MMsgHdr<'_>> = iovs
                .iter()
                .zip(controls.iter_mut())
                .map(|(iov, control)| rustix::net::MMsgHdr::new(iov, control))
                .collect();
            match rustix::net::sendmmsg(&self.socket, &mut hdrs, rustix::net::SendFlags::empty()) {
                Ok(n) if n > 0 => {
                    for m in &self.pending[done..done + n] {
                        self.c.messages.fetch_add(1, Ordering::Relaxed);
                        // A message's entry count is its fifth byte.
                        self.c.entries.fetch_add(u64::from(m[4]), Ordering::Relaxed);
                    }
                    done += n;
                }
                _ => {
                    // The first of them was refused (a full queue, the
                    // link down): counted, the rest tried.
                    self.c.errors.fetch_add(1, Ordering::Relaxed);
                    done += 1;
                }
            }
        }
        self.pending.clear();
    }
}

/// The sender's thread: read the ring, make entries, send, until `stop`
/// (then once more, so nothing read is left behind).
fn send_loop(
    reports: &mut SyncReports,
    mut out: Out,
    syncid: u8,
    maxlen: usize,
    view: &Mutex<Arc<SyncView>>,
    stop: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    let mut entries = Vec::with_capacity(2 * SEND_BATCH);
    let mut packer = fulcrum_sync::Packer::new(syncid, maxlen);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        batch.clear();
        let n = reports.drain(SEND_BATCH, &mut batch);
        if n > 0 {
            let v = view.lock().map(|g| g.clone()).unwrap_or_default();
            entries.clear();
            for r in &batch {
                if !v.entries(r, &mut entries) {
                    out.c.unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
            for e in &entries {
                // An entry too long for a message (a tiny `syncd_maxlen`)
                // cannot go: counted with the refused.
                match packer.push(e) {
                    Ok(Some(m)) => out.add(m),
                    Ok(None) => {}
                    Err(_) => {
                        out.c.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Some(m) = packer.finish() {
                out.add(m);
            }
            out.flush();
            let oldest = batch.iter().map(|r| r.stamp_ns).min().unwrap_or(0);
            let now = fulcrum_xdp::kernel_clock_ns();
            out.c
                .lag_us
                .store(now.saturating_sub(oldest) / 1000, Ordering::Relaxed);
        }
        if stopping {
            return;
        }
        // A full batch: more is waiting. Otherwise sleep until the program
        // reports again, then let its reports gather a moment.
        if n < SEND_BATCH && reports.wait(STOP_CHECK) {
            std::thread::sleep(SEND_INTERVAL);
        }
    }
}

/// How much older than the receiver's clock a sealed message's number (the
/// sender's wall clock, in µs) may be; older ones are refused as replays.
/// The directors' clocks must agree to within it (NTP).
pub const AUTH_WINDOW_US: u64 = 30_000_000;

/// Why a message was refused under `syncd_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not sealed, or not with our key (or altered).
    Unauthenticated,
    /// Seen before, or older than [`AUTH_WINDOW_US`].
    Replayed,
}

/// Sync messages sealed with `auth_key_file`'s key (`syncd_auth = 1`), as
/// the failover adverts are: a trailer with a sequence number and an
/// HMAC-SHA256 over the sender's address, the group, the message and the
/// number. A sender numbers its messages from its wall clock in µs, so a
/// receiver refuses what it has seen (each sender's numbers only go up)
/// and what is older than [`AUTH_WINDOW_US`] (a recording replayed after
/// the receiver restarted). Only Fulcrum understands the trailer: a
/// kernel backup drops sealed messages (their size is not their length).
#[derive(Debug)]
pub struct SyncAuth {
    a: fulcrum_ha::auth::Authenticator,
}

impl SyncAuth {
    /// With the shared secret.
    pub fn new(key: &[u8]) -> SyncAuth {
        SyncAuth {
            a: fulcrum_ha::auth::Authenticator::new(key, 0),
        }
    }

    /// `msg` sealed, sent by `src` to `group` at `now_us` (wall clock).
    pub fn seal(
        &mut self,
        src: std::net::IpAddr,
        group: std::net::IpAddr,
        msg: &[u8],
        now_us: u64,
    ) -> Vec<u8> {
        self.a.advance_to(now_us);
        self.a.seal(src, group, msg)
    }

    /// The message inside `packet` from `src` to `group`, received at
    /// `now_us` (wall clock).
    ///
    /// # Errors
    /// [`Refused`], with why.
    pub fn open<'a>(
        &mut self,
        src: std::net::IpAddr,
        group: std::net::IpAddr,
        packet: &'a [u8],
        now_us: u64,
    ) -> Result<&'a [u8], Refused> {
        match self.a.open_with_seq(src, group, packet) {
            Ok((m, seq)) if seq.saturating_add(AUTH_WINDOW_US) >= now_us => Ok(m),
            Ok(_) | Err(fulcrum_ha::auth::AuthError::Replay { .. }) => Err(Refused::Replayed),
            Err(_) => Err(Refused::Unauthenticated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_once_in_time_and_only_with_the_key() {
        let (a, g): (std::net::IpAddr, std::net::IpAddr) =
            ("10.0.0.1".parse().unwrap(), "224.0.0.81".parse().unwrap());
        let key = b"0123456789abcdef0123";
        let mut tx = SyncAuth::new(key);
        let mut rx = SyncAuth::new(key);
        let now = 1_800_000_000_000_000;
        let msg = [0u8, 7, 0, 8, 0, 1, 0, 0];
        let p1 = tx.seal(a, g, &msg, now);
        let p2 = tx.seal(a, g, &msg, now); // the same microsecond: numbered on
        assert_eq!(p1.len(), msg.len() + fulcrum_ha::auth::TRAILER);
        assert_eq!(rx.open(a, g, &p1, now + 10), Ok(&msg[..]));
        assert_eq!(rx.open(a, g, &p2, now + 10), Ok(&msg[..]));
        assert_eq!(rx.open(a, g, &p1, now + 20), Err(Refused::Replayed));
        // Unsealed, another key, altered, another sender.
        assert_eq!(rx.open(a, g, &msg, now), Err(Refused::Unauthenticated));
        let forged = SyncAuth::new(b"another key, 16+").seal(a, g, &msg, now + 30);
        assert_eq!(
            rx.open(a, g, &forged, now + 30),
            Err(Refused::Unauthenticated)
        );
        let mut altered = tx.seal(a, g, &msg, now + 40);
        altered[1] = 8;
        assert_eq!(
            rx.open(a, g, &altered, now + 40),
            Err(Refused::Unauthenticated)
        );
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let p3 = tx.seal(a, g, &msg, now + 50);
        assert_eq!(rx.open(b, g, &p3, now + 50), Err(Refused::Unauthenticated));
        // A receiver that restarted forgets what it saw, but a recording
        // older than the window is still refused; a fresh one goes.
        let mut restarted = SyncAuth::new(key);
        assert_eq!(
            restarted.open(a, g, &p1, now + AUTH_WINDOW_US + 11),
            Err(Refused::Replayed)
        );
        let fresh = tx.seal(a, g, &msg, now + AUTH_WINDOW_US + 11);
        assert_eq!(
            restarted.open(a, g, &fresh, now + AUTH_WINDOW_US + 12),
            Ok(&msg[..])
        );
    }
}
