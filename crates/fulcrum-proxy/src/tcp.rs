//! The TCP side of the proxy plane.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fulcrum_core::conn::ConnId;
use fulcrum_core::sched::Flow;
use fulcrum_core::state::{Direction, TcpFlags};
use fulcrum_core::{Protocol, ServiceKey};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::CONNECT_TIMEOUT;
use crate::events::PlaneEvent;
use crate::splice::{End, one_way};

/// How often long connections report their traffic, so rates stay live.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// A listening socket for a virtual service, bound with `IP_FREEBIND`.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    } else {
        s.set_freebind_v4(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    TcpListener::from_std(s.into())
}

/// Close with a reset (`SO_LINGER` 0), as IPVS's "no destination" and a
/// failed real server look to a client.
fn reset(s: &TcpStream) {
    let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Accept connections for one service until aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    key: ServiceKey,
    events: mpsc::Sender<PlaneEvent>,
) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(handle(client, peer, key, events.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(service = %key, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Report {
    conn: ConnId,
    events: mpsc::Sender<PlaneEvent>,
    sent_in: u64,
    sent_out: u64,
    segs_in: u64,
    segs_out: u64,
}

impl Report {
    /// Send what moved since the last report; packets are the client
    /// socket's segment counters (`TCP_INFO`).
    async fn flush(&mut self, client: &TcpStream, inb: &AtomicU64, outb: &AtomicU64) {
        let (i, o) = (inb.load(Ordering::Relaxed), outb.load(Ordering::Relaxed));
        let seg = fulcrum_net::tcp_segments(client).unwrap_or_default();
        let (si, so) = (u64::from(seg.segs_in), u64::from(seg.segs_out));
        let ev = PlaneEvent::Traffic {
            conn: self.conn,
            inpkts: si.saturating_sub(self.segs_in),
            inbytes: i - self.sent_in,
            outpkts: so.saturating_sub(self.segs_out),
            outbytes: o - self.sent_out,
        };
        (self.sent_in, self.sent_out, self.segs_in, self.segs_out) =
            (i, o, si.max(self.segs_in), so.max(self.segs_out));
        let _ = self.events.send(ev).await;
    }
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    key: ServiceKey,
    events: mpsc::Sender<PlaneEvent>,
) {
    let Ok(local) = client.local_addr() else {
        return;
    };
    let flow = Flow {
        saddr: peer.ip(),
        sport: peer.port(),
        daddr: local.ip(),
        dport: local.port(),
    };
    let (tx, rx) = oneshot::channel();
    if events
        .send(PlaneEvent::Schedule {
            key,
            proto: Protocol::Tcp,
            flow,
            reply: tx,
        })
        .await
        .is_err()
    {
        return;
    }
    let Some(sched) = rx.await.ok().flatten() else {
        reset(&client);
        let _ = events.send(PlaneEvent::NoDest { key, client: peer }).await;
        return;
    };
    let Some(conn) = sched.conn else { return };
    let seg = |dir, flags| PlaneEvent::Segment {
        conn,
        dir,
        flags: Some(flags),
    };
    // The client's handshake is what IPVS sees first.
    let _ = events.send(seg(Direction::Input, TcpFlags::SYN)).await;
    let dest = SocketAddr::new(sched.daddr, sched.dport);
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return unreachable(&client, conn, dest, e.to_string(), &events).await,
        Err(_) => {
            return unreachable(
                &client,
                conn,
                dest,
                format!("no answer within {CONNECT_TIMEOUT:?}"),
                &events,
            )
            .await;
        }
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let _ = events.send(seg(Direction::Output, TcpFlags::SYN_ACK)).await;
    let _ = events.send(seg(Direction::Input, TcpFlags::ACK)).await;

    let inb = Arc::new(AtomicU64::new(0));
    let outb = Arc::new(AtomicU64::new(0));
    let mut report = Report {
        conn,
        events: events.clone(),
        sent_in: 0,
        sent_out: 0,
        segs_in: 0,
        segs_out: 0,
    };
    let up = one_way(&client, &server, inb.clone());
    let down = one_way(&server, &client, outb.clone());
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    let mut reset_seen = false;
    while !(reset_seen || up_done && down_done) {
        tokio::select! {
            end = &mut up, if !up_done => {
                up_done = true;
                match end {
                    End::Fin => { let _ = events.send(seg(Direction::Input, TcpFlags::FIN_ACK)).await; }
                    End::Error(e) => {
                        tracing::debug!(%peer, error = %e, "client side ended");
                        reset_seen = true;
                        let _ = events.send(seg(Direction::Input, TcpFlags::RST)).await;
                    }
                }
            }
            end = &mut down, if !down_done => {
                down_done = true;
                match end {
                    End::Fin => { let _ = events.send(seg(Direction::Output, TcpFlags::FIN_ACK)).await; }
                    End::Error(e) => {
                        tracing::debug!(%dest, error = %e, "real server side ended");
                        reset_seen = true;
                        let _ = events.send(seg(Direction::Output, TcpFlags::RST)).await;
                    }
                }
            }
            _ = tick.tick() => report.flush(&client, &inb, &outb).await,
        }
    }
    if reset_seen {
        // One side broke: pass the reset on to the other.
        reset(&client);
        reset(&server);
    }
    report.flush(&client, &inb, &outb).await;
}

async fn unreachable(
    client: &TcpStream,
    conn: ConnId,
    dest: SocketAddr,
    error: String,
    events: &mpsc::Sender<PlaneEvent>,
) {
    reset(client);
    let _ = events
        .send(PlaneEvent::Segment {
            conn,
            dir: Direction::Output,
            flags: Some(TcpFlags::RST),
        })
        .await;
    let _ = events
        .send(PlaneEvent::Unreachable { conn, dest, error })
        .await;
}
