//! The UDP side of the proxy plane: flows by client address and port, each
//! with its own socket towards the real server, forgotten after the UDP
//! timeout without traffic. One-packet services schedule every datagram.
//!
//! An idle flow costs its socket, its map entry and a small task: replies
//! are read into one buffer per worker thread, never one per flow. New
//! flows count against the connection limits (`max_connections`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fulcrum_core::conn::ConnId;
use fulcrum_core::state::Direction;
use fulcrum_core::{Protocol, ServiceKey};
use socket2::Type;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::events::{Answer, PlaneEvent, schedule};
use crate::limit::{Admitted, ConnLimit, admit};

/// Replies to a one-packet datagram are awaited at most this long.
const ONE_PACKET_WINDOW: Duration = Duration::from_secs(10);
const MAX_DATAGRAM: usize = 65_535;

/// A UDP socket for a virtual service, bound with `IP_FREEBIND`.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = crate::tcp::service_socket(addr, Type::DGRAM, false)?;
    UdpSocket::from_std(s.into())
}

struct UdpFlow {
    conn: ConnId,
    backend: Arc<UdpSocket>,
    last_seen: Arc<AtomicU64>,
}

fn unspecified(for_addr: &IpAddr) -> SocketAddr {
    match for_addr {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

async fn connect_backend(dest: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(unspecified(&dest.ip())).await?;
    s.connect(dest).await?;
    Ok(s)
}

/// Serve one UDP virtual service until aborted.
pub(crate) async fn serve(
    sock: UdpSocket,
    key: ServiceKey,
    one_packet: bool,
    events: mpsc::Sender<PlaneEvent>,
    timeout: watch::Receiver<Duration>,
    (director, service): (Arc<ConnLimit>, Arc<ConnLimit>),
) {
    let sock = Arc::new(sock);
    let start = Instant::now();
    let mut flows: HashMap<SocketAddr, UdpFlow> = HashMap::new();
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<(SocketAddr, ConnId)>();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut unreachable = RateLimited::default();
    loop {
        let (n, client) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(service = %key, error = %e, "recv failed");
                    continue;
                }
            },
            Some((client, conn)) = gone_rx.recv() => {
                if flows.get(&client).is_some_and(|f| f.conn == conn) {
                    flows.remove(&client);
                }
                continue;
            }
        };
        let data = &buf[..n];
        if let Some(f) = flows.get(&client) {
            f.last_seen
                .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            if f.backend.send(data).await.is_ok() {
                let _ = events
                    .send(PlaneEvent::Segment {
                        conn: f.conn,
                        dir: Direction::Input,
                        flags: None,
                    })
                    .await;
                let _ = events
                    .send(PlaneEvent::Traffic {
                        conn: f.conn,
                        inpkts: 1,
                        inbytes: n as u64,
                        outpkts: 0,
                        outbytes: 0,
                    })
                    .await;
            }
            continue;
        }
        // A new flow costs a socket and a task: within the limits only.
        let Some(slot) = admit(&director, &service) else {
            continue; // dropped, counted against the full limit
        };
        let Ok(local) = sock.local_addr() else {
            continue;
        };
        let s = match schedule(&events, key, Protocol::Udp, client, local).await {
            Answer::Dest(s, _) => s,
            Answer::NoDest => {
                let _ = events.send(PlaneEvent::NoDest { key, client }).await;
                continue; // dropped, as IPVS drops it
            }
            Answer::Gone => return,
        };
        let dest = SocketAddr::new(s.daddr, s.dport);
        let backend = match connect_backend(dest).await {
            Ok(b) => Arc::new(b),
            Err(e) => {
                if unreachable.due() {
                    tracing::warn!(service = %key, %dest, error = %e, dropped = unreachable.take(),
                        "cannot open a flow to the real server; datagrams dropped");
                }
                continue;
            }
        };
        if backend.send(data).await.is_err() {
            continue;
        }
        let last_seen = Arc::new(AtomicU64::new(start.elapsed().as_millis() as u64));
        let flow = Replies {
            backend: backend.clone(),
            front: sock.clone(),
            client,
            conn: s.conn,
            events: events.clone(),
            last_seen: last_seen.clone(),
            start,
            timeout: timeout.clone(),
            one_packet: s.conn.is_none(),
            gone: gone_tx.clone(),
            _slot: slot,
        };
        if let Some(conn) = s.conn {
            let _ = events
                .send(PlaneEvent::Traffic {
                    conn,
                    inpkts: 1,
                    inbytes: n as u64,
                    outpkts: 0,
                    outbytes: 0,
                })
                .await;
            if !one_packet {
                flows.insert(
                    client,
                    UdpFlow {
                        conn,
                        backend,
                        last_seen,
                    },
                );
            }
        }
        tokio::spawn(flow.run());
    }
}

/// Counts events and says when one may be logged: at most once per
/// [`LOG_EVERY`].
#[derive(Debug, Default)]
struct RateLimited {
    last: Option<Instant>,
    count: u64,
}

/// At most one warning per kind and service in this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl RateLimited {
    fn due(&mut self) -> bool {
        self.count += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }

    fn take(&mut self) -> u64 {
        std::mem::take(&mut self.count)
    }
}

thread_local! {
    /// One receive buffer per worker thread, shared by every flow on it: a
    /// flow's replies are read and forwarded without awaiting in between,
    /// so an idle flow holds no buffer.
    static REPLY_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// One flow's way back: a real server's replies to the client, until the
/// flow has been idle for the UDP timeout.
struct Replies {
    backend: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    conn: Option<ConnId>,
    events: mpsc::Sender<PlaneEvent>,
    last_seen: Arc<AtomicU64>,
    start: Instant,
    timeout: watch::Receiver<Duration>,
    one_packet: bool,
    gone: mpsc::UnboundedSender<(SocketAddr, ConnId)>,
    /// The flow's place under the connection limits.
    _slot: Admitted,
}

impl Replies {
    /// Forward whatever the real server has sent; packets and bytes.
    fn forward_ready(&self) -> io::Result<(u64, u64)> {
        REPLY_BUF.with(|b| {
            let mut b = b.borrow_mut();
            let (mut pkts, mut bytes) = (0, 0);
            loop {
                match self.backend.try_recv(&mut b) {
                    Ok(n) => {
                        // A full client socket buffer drops the datagram,
                        // as the network would.
                        let _ = self.front.try_send_to(&b[..n], self.client);
                        pkts += 1;
                        bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((pkts, bytes)),
                    Err(e) if pkts == 0 => return Err(e),
                    Err(_) => return Ok((pkts, bytes)),
                }
            }
        })
    }

    async fn run(self) {
        loop {
            let idle_limit = if self.one_packet {
                ONE_PACKET_WINDOW.min(*self.timeout.borrow())
            } else {
                *self.timeout.borrow()
            };
            let seen = Duration::from_millis(self.last_seen.load(Ordering::Relaxed));
            let left = (seen + idle_limit).saturating_sub(self.start.elapsed());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.backend.readable()).await {
                Ok(Ok(())) => match self.forward_ready() {
                    Ok((0, _)) => {}
                    Ok((pkts, bytes)) => {
                        self.last_seen
                            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
                        if let Some(conn) = self.conn {
                            // Boxed: only while reporting, so an idle
                            // flow's task does not carry the send futures.
                            Box::pin(report(&self.events, conn, pkts, bytes)).await;
                        }
                    }
                    // ICMP port unreachable and the like: keep the flow
                    // until idle.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(_) => {} // re-check idleness: the client may have sent meanwhile
            }
        }
        if let Some(conn) = self.conn {
            let _ = self.gone.send((self.client, conn));
        }
    }
}

/// Tell the controller about replies forwarded on a flow.
async fn report(events: &mpsc::Sender<PlaneEvent>, conn: ConnId, pkts: u64, bytes: u64) {
    let _ = events
        .send(PlaneEvent::Segment {
            conn,
            dir: Direction::Output,
            flags: None,
        })
        .await;
    let _ = events
        .send(PlaneEvent::Traffic {
            conn,
            inpkts: 0,
            inbytes: 0,
            outpkts: pkts,
            outbytes: bytes,
        })
        .await;
}

#[cfg(test)]
mod size {
    /// Every idle flow holds its reply task: keep it small (no buffer of
    /// its own).
    #[tokio::test]
    async fn an_idle_flow_stays_small() {
        let sock = std::sync::Arc::new(super::bind("127.0.0.1:0".parse().unwrap()).unwrap());
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let (gone, _g) = tokio::sync::mpsc::unbounded_channel();
        let limit = crate::ConnLimit::new("test", 1);
        let flow = super::Replies {
            backend: sock.clone(),
            front: sock,
            client: "127.0.0.1:9".parse().unwrap(),
            conn: None,
            events: tx,
            last_seen: Default::default(),
            start: std::time::Instant::now(),
            timeout: tokio::sync::watch::channel(std::time::Duration::from_secs(1)).1,
            one_packet: false,
            gone,
            _slot: crate::limit::admit(&limit, &crate::ConnLimit::new("t", 1)).unwrap(),
        };
        let fut = flow.run();
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 640, "an idle flow's task grew to {size} bytes");
    }
}
