//! The UDP side of the proxy plane: flows by client address and port, each
//! with its own socket towards the real server (its local port is how the
//! replies find their client), forgotten after the UDP timeout without
//! traffic. One-packet services schedule every datagram.
//!
//! One task serves a whole service: it reads the clients' datagrams, and
//! every flow's replies as its socket becomes readable, into one buffer.
//! An idle flow costs its socket, a map entry and a waker registered with
//! the socket — no task, no future and no buffer of its own — and counts
//! against the connection limits (`max_connections`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use fulcrum_core::conn::ConnId;
use fulcrum_core::state::Direction;
use fulcrum_core::{Protocol, ServiceKey};
use socket2::Type;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};

use crate::accept::RateLimited;
use crate::events::{Answer, PlaneEvent};
use crate::limit::{Admitted, ConnLimit, admit};
use crate::worker::Worker;

/// Replies to a one-packet datagram are awaited at most this long.
const ONE_PACKET_WINDOW: Duration = Duration::from_secs(10);
const MAX_DATAGRAM: usize = 65_535;
/// How often idle flows are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A UDP socket for a virtual service, bound with `IP_FREEBIND`.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = crate::tcp::service_socket(addr, Type::DGRAM, false)?;
    UdpSocket::from_std(s.into())
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

/// Which flow: a client's, or a one-packet datagram's (by number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FlowKey {
    Client(SocketAddr),
    OnePacket(u64),
}

/// One flow to a real server.
struct Flow {
    /// Tells this flow's wake-ups from those of an earlier flow of the same
    /// client.
    generation: u64,
    /// The table's entry; `None` for a one-packet datagram.
    conn: Option<ConnId>,
    backend: UdpSocket,
    /// Registered with the socket: puts the flow on the ready queue when
    /// a reply arrives.
    waker: Waker,
    /// Tenths of a second after the service started of the last datagram
    /// either way.
    last: u32,
    /// The flow's place under the connection limits.
    _slot: Admitted,
}

/// The flows whose sockets became readable, and the service task's alarm.
#[derive(Default)]
struct ReadyQueue {
    flows: Mutex<Vec<(FlowKey, u64)>>,
    notify: Notify,
}

/// A flow's waker: no future and no task per flow, only this.
struct FlowWaker {
    key: FlowKey,
    generation: u64,
    ready: Arc<ReadyQueue>,
}

impl Wake for FlowWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(mut q) = self.ready.flows.lock() {
            q.push((self.key, self.generation));
        }
        self.ready.notify.notify_one();
    }
}

/// Ask to be woken when the flow's socket has something to read; whether
/// it already has.
fn arm(f: &Flow) -> bool {
    let mut cx = Context::from_waker(&f.waker);
    f.backend.poll_recv_ready(&mut cx).is_ready()
}

/// A service's flows and what its task needs to serve them.
struct Service {
    key: ServiceKey,
    one_packet: bool,
    front: UdpSocket,
    link: Arc<Worker>,
    limits: (Arc<ConnLimit>, Arc<ConnLimit>),
    start: Instant,
    flows: HashMap<FlowKey, Flow>,
    /// The clients of one-packet datagrams awaiting replies.
    one_packet_clients: HashMap<FlowKey, SocketAddr>,
    ready: Arc<ReadyQueue>,
    next_generation: u64,
    unreachable: RateLimited,
}

impl Service {
    /// Tenths of a second since the service started.
    fn now(&self) -> u32 {
        u32::try_from(self.start.elapsed().as_millis() / 100).unwrap_or(u32::MAX)
    }

    /// A client's datagram: onto its flow, or a new one.
    async fn on_datagram(&mut self, data: &[u8], client: SocketAddr) -> Result<(), Gone> {
        let now = self.now();
        if let Some(f) = self.flows.get_mut(&FlowKey::Client(client)) {
            f.last = now;
            // A full socket buffer drops the datagram, as the network would.
            if f.backend.try_send(data).is_ok()
                && let Some(conn) = f.conn
            {
                report(&self.link, conn, Direction::Input, data.len() as u64);
            }
            return Ok(());
        }
        // A new flow costs a socket and a map entry: within the limits only.
        let Some(slot) = admit(&self.limits.0, &self.limits.1) else {
            return Ok(()); // dropped, counted against the full limit
        };
        let Ok(local) = self.front.local_addr() else {
            return Ok(());
        };
        let key = self.key;
        let s = match self.link.schedule(key, Protocol::Udp, client, local).await {
            Answer::Dest(s, _) => s,
            Answer::NoDest => {
                let _ = self
                    .link
                    .events()
                    .send(PlaneEvent::NoDest { key, client })
                    .await;
                return Ok(()); // dropped, as IPVS drops it
            }
            Answer::Gone => return Err(Gone),
        };
        let dest = SocketAddr::new(s.daddr, s.dport);
        let backend = match connect_backend(dest).await {
            Ok(b) => b,
            Err(e) => {
                if self.unreachable.due() {
                    tracing::warn!(service = %key, %dest, error = %e, dropped = self.unreachable.take(),
                        "cannot open a flow to the real server; datagrams dropped");
                }
                return Ok(());
            }
        };
        if backend.send(data).await.is_err() {
            return Ok(());
        }
        if let Some(conn) = s.conn {
            self.link.emit(PlaneEvent::Traffic {
                conn,
                inpkts: 1,
                inbytes: data.len() as u64,
                outpkts: 0,
                outbytes: 0,
            });
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let fkey = if s.conn.is_some() && !self.one_packet {
            FlowKey::Client(client)
        } else {
            FlowKey::OnePacket(generation)
        };
        let flow = Flow {
            generation,
            conn: s.conn,
            backend,
            waker: Waker::from(Arc::new(FlowWaker {
                key: fkey,
                generation,
                ready: self.ready.clone(),
            })),
            last: now,
            _slot: slot,
        };
        if arm(&flow) {
            flow.waker.wake_by_ref();
        }
        self.flows.insert(fkey, flow);
        if let FlowKey::OnePacket(_) = fkey {
            self.one_packet_clients.insert(fkey, client);
        }
        Ok(())
    }

    /// A flow's socket is readable: pass its replies to the client.
    async fn on_replies(&mut self, (fkey, generation): (FlowKey, u64), buf: &mut [u8]) {
        let now = self.now();
        let client = match fkey {
            FlowKey::Client(c) => c,
            FlowKey::OnePacket(_) => match self.one_packet_clients.get(&fkey) {
                Some(c) => *c,
                None => return,
            },
        };
        let Some(f) = self
            .flows
            .get_mut(&fkey)
            .filter(|f| f.generation == generation)
        else {
            return; // forgotten meanwhile
        };
        let (mut pkts, mut bytes) = (0u64, 0u64);
        for round in 0.. {
            // Drained; or an ICMP error (port unreachable): the flow stays
            // until idle.
            while let Ok(n) = f.backend.try_recv(buf) {
                // A full client socket buffer drops the datagram, as the
                // network would.
                let _ = self.front.try_send_to(&buf[..n], client);
                pkts += 1;
                bytes += n as u64;
            }
            if !arm(f) {
                break;
            }
            if round == 16 {
                // Still more: the other flows first.
                f.waker.wake_by_ref();
                break;
            }
        }
        if pkts == 0 {
            return;
        }
        f.last = now;
        if let Some(conn) = f.conn {
            self.link.emit(PlaneEvent::Segment {
                conn,
                dir: Direction::Output,
                flags: None,
            });
            self.link.emit(PlaneEvent::Traffic {
                conn,
                inpkts: 0,
                inbytes: 0,
                outpkts: pkts,
                outbytes: bytes,
            });
        }
    }

    /// Forget the flows idle for `timeout` (one-packet datagrams: at most
    /// the one-packet window).
    fn sweep(&mut self, timeout: Duration) {
        let now = self.now();
        let tenths = |d: Duration| u32::try_from(d.as_millis() / 100).unwrap_or(u32::MAX);
        let (flow_limit, one_limit) = (tenths(timeout), tenths(ONE_PACKET_WINDOW.min(timeout)));
        let one_packet_clients = &mut self.one_packet_clients;
        self.flows.retain(|k, f| {
            let limit = match k {
                FlowKey::Client(_) => flow_limit,
                FlowKey::OnePacket(_) => one_limit,
            };
            let keep = now.saturating_sub(f.last) < limit;
            if !keep {
                // Its socket closes as the flow is dropped.
                one_packet_clients.remove(k);
            }
            keep
        });
    }
}

/// The controller is gone: the director is stopping.
struct Gone;

/// A client datagram's traffic on its flow.
fn report(link: &Worker, conn: ConnId, dir: Direction, bytes: u64) {
    link.emit(PlaneEvent::Segment {
        conn,
        dir,
        flags: None,
    });
    link.emit(PlaneEvent::Traffic {
        conn,
        inpkts: 1,
        inbytes: bytes,
        outpkts: 0,
        outbytes: 0,
    });
}

/// Serve one UDP virtual service until aborted.
pub(crate) async fn serve(
    sock: UdpSocket,
    key: ServiceKey,
    one_packet: bool,
    link: Arc<Worker>,
    timeout: watch::Receiver<Duration>,
    limits: (Arc<ConnLimit>, Arc<ConnLimit>),
) {
    let mut svc = Service {
        key,
        one_packet,
        front: sock,
        link,
        limits,
        start: Instant::now(),
        flows: HashMap::new(),
        one_packet_clients: HashMap::new(),
        ready: Arc::new(ReadyQueue::default()),
        next_generation: 0,
        unreachable: RateLimited::default(),
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = svc.front.recv_from(&mut buf) => match r {
                Ok((n, client)) => {
                    if svc.on_datagram(&buf[..n], client).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::debug!(service = %key, error = %e, "recv failed"),
            },
            () = svc.ready.notify.notified() => {
                let ready = svc
                    .ready
                    .flows
                    .lock()
                    .map(|mut q| std::mem::take(&mut *q))
                    .unwrap_or_default();
                for k in ready {
                    svc.on_replies(k, &mut buf).await;
                }
            }
            _ = sweep.tick() => svc.sweep(*timeout.borrow()),
        }
    }
}

#[cfg(test)]
mod size {
    /// Every idle flow holds its entry and its waker: keep them small.
    #[test]
    fn an_idle_flow_stays_small() {
        let flow = std::mem::size_of::<super::Flow>();
        let waker = std::mem::size_of::<super::FlowWaker>();
        assert!(flow <= 112, "a flow grew to {flow} bytes");
        assert!(waker <= 64, "a flow's waker grew to {waker} bytes");
    }
}
