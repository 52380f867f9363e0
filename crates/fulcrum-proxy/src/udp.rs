//! The UDP side of the proxy plane: flows by client address and port, each
//! with its own socket towards the real server, forgotten after the UDP
//! timeout without traffic. One-packet services schedule every datagram.

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
) {
    let sock = Arc::new(sock);
    let start = Instant::now();
    let mut flows: HashMap<SocketAddr, UdpFlow> = HashMap::new();
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<(SocketAddr, ConnId)>();
    let mut buf = vec![0u8; MAX_DATAGRAM];
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
                tracing::warn!(service = %key, %dest, error = %e, "cannot reach real server");
                continue;
            }
        };
        if backend.send(data).await.is_err() {
            continue;
        }
        let last_seen = Arc::new(AtomicU64::new(start.elapsed().as_millis() as u64));
        match s.conn {
            // One-packet scheduling: no flow; pass replies back for a while.
            None => {
                tokio::spawn(replies(
                    backend,
                    sock.clone(),
                    client,
                    None,
                    events.clone(),
                    last_seen,
                    start,
                    timeout.clone(),
                    true,
                    gone_tx.clone(),
                ));
            }
            Some(conn) => {
                let _ = events
                    .send(PlaneEvent::Traffic {
                        conn,
                        inpkts: 1,
                        inbytes: n as u64,
                        outpkts: 0,
                        outbytes: 0,
                    })
                    .await;
                tokio::spawn(replies(
                    backend.clone(),
                    sock.clone(),
                    client,
                    Some(conn),
                    events.clone(),
                    last_seen.clone(),
                    start,
                    timeout.clone(),
                    false,
                    gone_tx.clone(),
                ));
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
        }
    }
}

/// Forward a real server's replies to the client until the flow has been
/// idle for the UDP timeout.
#[allow(
    clippy::too_many_arguments,
    reason = "one task's whole context, passed once at spawn"
)]
async fn replies(
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
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let idle_limit = if one_packet {
            ONE_PACKET_WINDOW.min(*timeout.borrow())
        } else {
            *timeout.borrow()
        };
        let seen = Duration::from_millis(last_seen.load(Ordering::Relaxed));
        let left = (seen + idle_limit).saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, backend.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                last_seen.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                let _ = front.send_to(&buf[..n], client).await;
                if let Some(conn) = conn {
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
                            outpkts: 1,
                            outbytes: n as u64,
                        })
                        .await;
                }
            }
            // ICMP port unreachable and the like: keep the flow until idle.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => {} // re-check idleness: the client may have sent meanwhile
        }
    }
    if let Some(conn) = conn {
        let _ = gone.send((client, conn));
    }
}
