//! The TCP side of the proxy plane.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use fulcrum_core::conn::ConnId;
use fulcrum_core::state::{Direction, TcpFlags};
use fulcrum_core::{Protocol, ServiceKey};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::events::{Answer, PlaneEvent};
use crate::limit::{Admitted, ConnLimit, QUEUE_WAIT, admit, full_one, wait_for_room};
use crate::splice::{End, Meter, one_way};
use crate::worker::Worker;
use crate::{CONNECT_TIMEOUT, TcpTimeouts};

/// How often long connections report their traffic, so rates stay live.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// A non-blocking socket for a virtual service, bound to `addr` with
/// `SO_REUSEADDR` (and `SO_REUSEPORT` when asked) and `IP_FREEBIND`, so a
/// virtual address the host does not hold yet can be served.
pub(crate) fn service_socket(addr: SocketAddr, ty: Type, reuse_port: bool) -> io::Result<Socket> {
    let s = unbound_socket(addr, ty, true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// A socket for `addr`'s family with `IP_FREEBIND` (IPv6: v6 only), and
/// `SO_REUSEADDR` when asked.
pub(crate) fn unbound_socket(addr: SocketAddr, ty: Type, reuse_addr: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    if reuse_addr {
        s.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    } else {
        s.set_freebind_v4(true)?;
    }
    Ok(s)
}

/// A listening socket for a virtual service, bound with `IP_FREEBIND`, and
/// with `SO_REUSEPORT` when several workers share the address. Returned as
/// a std listener so the worker that serves it registers it.
pub(crate) fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let s = service_socket(addr, Type::STREAM, reuse_port)?;
    s.listen(4096)?;
    Ok(s.into())
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
    link: Arc<Worker>,
    (director, service): (Arc<ConnLimit>, Arc<ConnLimit>),
    timeouts: watch::Receiver<TcpTimeouts>,
) {
    let mut backoff = crate::accept::AcceptBackoff::new(format!("virtual service {key}"));
    loop {
        // Checked before accepting: while a limit is full, connections wait
        // in the backlog for a place, and are reset after QUEUE_WAIT.
        let room = director.has_room() && service.has_room();
        if !room && !wait_for_room(&director, &service, QUEUE_WAIT).await {
            refuse_queued(&listener, &director, &service);
            continue;
        }
        match listener.accept().await {
            Ok((client, peer)) => match admit(&director, &service) {
                Some(slot) => {
                    tokio::spawn(handle(
                        client,
                        peer,
                        key,
                        link.clone(),
                        slot,
                        timeouts.clone(),
                    ));
                }
                None => reset(&client),
            },
            Err(e) => backoff.failed(&e).await,
        }
    }
}

/// Reset every connection waiting in the backlog while a limit stays full
/// (accepted without registering them: an accept, a linger option and a
/// close each).
fn refuse_queued(listener: &TcpListener, director: &ConnLimit, service: &ConnLimit) {
    let raw = SockRef::from(listener);
    while !(director.has_room() && service.has_room()) {
        match raw.accept() {
            Ok((s, _)) => {
                let _ = s.set_linger(Some(Duration::ZERO));
                full_one(director, service).refuse();
            }
            Err(_) => return, // the backlog is empty (WouldBlock), or EMFILE
        }
    }
}

/// A connection's traffic accounting, shared by its two directions (they
/// run in one task; the atomics are only there to keep the task `Send`).
/// Reports go out at most once a second while data moves, and once at the
/// end; an idle connection holds no timer.
struct Report<'a> {
    conn: ConnId,
    link: &'a Worker,
    client: &'a TcpStream,
    start: Instant,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
    /// Bytes in/out and segments in/out already reported.
    sent: [AtomicU64; 4],
    /// Next report due, in milliseconds since `start`.
    next_ms: AtomicU64,
    /// The last data moved, in milliseconds since `start`.
    active_ms: AtomicU64,
    /// Directions that reached their sender's FIN (bit 0 client → server,
    /// bit 1 back).
    ended: std::sync::atomic::AtomicU8,
}

impl Report<'_> {
    fn event(&self) -> PlaneEvent {
        let seg = fulcrum_net::tcp_segments(self.client).unwrap_or_default();
        let now = [
            self.inbytes.load(Relaxed),
            self.outbytes.load(Relaxed),
            u64::from(seg.segs_in).max(self.sent[2].load(Relaxed)),
            u64::from(seg.segs_out).max(self.sent[3].load(Relaxed)),
        ];
        let d: Vec<u64> = (0..4)
            .map(|k| now[k] - self.sent[k].swap(now[k], Relaxed))
            .collect();
        PlaneEvent::Traffic {
            conn: self.conn,
            inbytes: d[0],
            outbytes: d[1],
            inpkts: d[2],
            outpkts: d[3],
        }
    }

    fn maybe_report(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.active_ms.store(now, Relaxed);
        if now < self.next_ms.load(Relaxed) {
            return;
        }
        self.next_ms
            .store(now + REPORT_EVERY.as_millis() as u64, Relaxed);
        // Never waits: the report leaves with the worker's next batch.
        self.link.emit(self.event());
    }

    /// The final report, carrying the connection's last segment if any.
    fn finish(&self, last: Option<(Direction, TcpFlags)>) {
        let ev = match (self.event(), last) {
            (
                PlaneEvent::Traffic {
                    inbytes,
                    outbytes,
                    inpkts,
                    outpkts,
                    ..
                },
                Some((dir, flags)),
            ) => PlaneEvent::Last {
                conn: self.conn,
                dir,
                flags,
                traffic: [inbytes, outbytes, inpkts, outpkts],
            },
            (ev, _) => ev,
        };
        self.link.emit(ev);
    }
}

struct Up<'a>(&'a Report<'a>);
struct Down<'a>(&'a Report<'a>);

impl Meter for Up<'_> {
    fn moved(&self, n: u64) {
        self.0.inbytes.fetch_add(n, Relaxed);
        self.0.maybe_report();
    }

    fn ended(&self) -> bool {
        self.0.ended.fetch_or(1, Relaxed) & 2 != 0
    }
}

impl Meter for Down<'_> {
    fn moved(&self, n: u64) {
        self.0.outbytes.fetch_add(n, Relaxed);
        self.0.maybe_report();
    }

    fn ended(&self) -> bool {
        self.0.ended.fetch_or(2, Relaxed) & 1 != 0
    }
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    key: ServiceKey,
    link: Arc<Worker>,
    _slot: Admitted,
    timeouts: watch::Receiver<TcpTimeouts>,
) {
    // The listener is bound to the service's own address: that is where
    // the client connected (no system call needed to ask).
    let local = match key {
        ServiceKey::Addr { addr, port, .. } if !addr.is_unspecified() => {
            SocketAddr::new(addr, port)
        }
        _ => match client.local_addr() {
            Ok(a) => a,
            Err(_) => return,
        },
    };
    let (sched, opts) = match link.schedule(key, Protocol::Tcp, peer, local).await {
        Answer::Dest(s, o) => (s, o),
        Answer::NoDest => {
            reset(&client);
            let _ = link
                .events()
                .send(PlaneEvent::NoDest { key, client: peer })
                .await;
            return;
        }
        Answer::Gone => return,
    };
    // The schedule request was the client's SYN: the controller has moved
    // the connection to SYN_RECV already.
    let Some(conn) = sched.conn else { return };
    let seg = |dir, flags| PlaneEvent::Segment {
        conn,
        dir,
        flags: Some(flags),
    };
    let dest = SocketAddr::new(sched.daddr, sched.dport);
    let connect = async {
        if opts.transparent {
            Box::pin(connect_as(peer, dest)).await
        } else {
            TcpStream::connect(dest).await
        }
    };
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return unreachable(&client, conn, dest, e.to_string(), &link),
        Err(_) => {
            return unreachable(
                &client,
                conn,
                dest,
                format!("no answer within {CONNECT_TIMEOUT:?}"),
                &link,
            );
        }
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    if let Some(v) = opts.proxy_protocol {
        let h = crate::proxy_header::header(v, peer, local);
        if let Err(e) = write_header(&server, &h).await {
            return unreachable(
                &client,
                conn,
                dest,
                format!("cannot send the PROXY header: {e}"),
                &link,
            );
        }
    }
    link.emit(PlaneEvent::Segments {
        conn,
        segs: [
            (Direction::Output, TcpFlags::SYN_ACK),
            (Direction::Input, TcpFlags::ACK),
        ],
    });

    let report = Report {
        conn,
        link: &link,
        client: &client,
        start: Instant::now(),
        inbytes: AtomicU64::new(0),
        outbytes: AtomicU64::new(0),
        sent: Default::default(),
        next_ms: AtomicU64::new(REPORT_EVERY.as_millis() as u64),
        active_ms: AtomicU64::new(0),
        ended: std::sync::atomic::AtomicU8::new(0),
    };
    let (up_meter, down_meter) = (Up(&report), Down(&report));
    let up = one_way(&client, &server, &up_meter);
    let down = one_way(&server, &client, &down_meter);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let mut reset_seen = false;
    // The segment that ends the connection goes out with the final traffic.
    let mut last: Option<(Direction, TcpFlags)> = None;
    let mut note = |dir: Direction, flags: TcpFlags| {
        let prev = last.replace((dir, flags));
        prev.map(|(d, f)| seg(d, f))
    };
    while !(reset_seen || up_done && down_done) {
        // IPVS's timeout for the state the connection is in: established
        // while both directions are open, FIN_WAIT/CLOSE_WAIT after one.
        let limit = {
            let t = timeouts.borrow();
            if up_done || down_done {
                t.fin
            } else {
                t.established
            }
        };
        let idle_until =
            report.start + Duration::from_millis(report.active_ms.load(Relaxed)) + limit;
        let earlier = tokio::select! {
            () = tokio::time::sleep_until(idle_until.into()) => {
                if Instant::now() < report.start
                    + Duration::from_millis(report.active_ms.load(Relaxed))
                    + limit
                {
                    continue; // data moved meanwhile
                }
                tracing::debug!(%peer, %dest, idle = ?limit, "connection idle past its timeout; reset");
                reset_seen = true;
                note(Direction::Input, TcpFlags::RST)
            }
            end = &mut up, if !up_done => {
                up_done = true;
                match end {
                    End::Fin => note(Direction::Input, TcpFlags::FIN_ACK),
                    End::Error(e) => {
                        tracing::debug!(%peer, error = %e, "client side ended");
                        reset_seen = true;
                        note(Direction::Input, TcpFlags::RST)
                    }
                }
            }
            end = &mut down, if !down_done => {
                down_done = true;
                match end {
                    End::Fin => note(Direction::Output, TcpFlags::FIN_ACK),
                    End::Error(e) => {
                        tracing::debug!(%dest, error = %e, "real server side ended");
                        reset_seen = true;
                        note(Direction::Output, TcpFlags::RST)
                    }
                }
            }
        };
        if let Some(ev) = earlier {
            link.emit(ev);
        }
    }
    if reset_seen {
        // One side broke: pass the reset on to the other.
        reset(&client);
        reset(&server);
    }
    report.finish(last);
}

/// Connect to `dest` from the client's own address and port
/// (`IP_TRANSPARENT`, which needs `CAP_NET_ADMIN`), as LVS-NAT shows a
/// client to the real server. When that port is taken on this host, the
/// client's address with a port the kernel picks.
async fn connect_as(client: SocketAddr, dest: SocketAddr) -> io::Result<TcpStream> {
    let sock = unbound_socket(client, Type::STREAM, true)?;
    if client.is_ipv6() {
        sock.set_ip_transparent_v6(true)?;
    } else {
        sock.set_ip_transparent_v4(true)?;
    }
    sock.set_nonblocking(true)?;
    if let Err(e) = sock.bind(&client.into()) {
        if e.kind() != io::ErrorKind::AddrInUse {
            return Err(e);
        }
        sock.bind(&SocketAddr::new(client.ip(), 0).into())?;
    }
    let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(sock));
    sock.connect(dest).await
}

async fn write_header(server: &TcpStream, mut h: &[u8]) -> io::Result<()> {
    while !h.is_empty() {
        server.writable().await?;
        match server.try_write(h) {
            Ok(n) => h = &h[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn unreachable(client: &TcpStream, conn: ConnId, dest: SocketAddr, error: String, link: &Worker) {
    reset(client);
    link.emit(PlaneEvent::Segment {
        conn,
        dir: Direction::Output,
        flags: Some(TcpFlags::RST),
    });
    link.emit(PlaneEvent::Unreachable { conn, dest, error });
}

#[cfg(test)]
mod size {
    /// Every open connection carries its task's future: keep it small (it
    /// is most of the plane's memory per idle connection).
    #[tokio::test]
    async fn connection_task_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let key = fulcrum_core::ServiceKey::Addr {
            proto: fulcrum_core::Protocol::Tcp,
            addr: [127, 0, 0, 1].into(),
            port: 1,
        };
        let limit = crate::ConnLimit::new("test", 1);
        let slot = crate::limit::admit(&limit, &crate::ConnLimit::new("test", 1)).unwrap();
        let timeouts = tokio::sync::watch::channel(crate::TcpTimeouts::default()).1;
        let published = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(
            crate::worker::Published::empty(),
        ));
        let link = std::sync::Arc::new(crate::worker::Worker::new(tx, published));
        let fut = super::handle(c, "127.0.0.1:1".parse().unwrap(), key, link, slot, timeouts);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 1700, "the connection task grew to {size} bytes");
    }
}
