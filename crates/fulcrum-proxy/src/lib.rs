//! The `proxy` data plane: a TCP and UDP full proxy.
//!
//! Seen from outside it behaves like LVS-NAT: clients talk to the virtual
//! address, real servers are hidden behind the director. Every decision the
//! kernel's IPVS would make — which real server, persistence, thresholds,
//! quiesce — follows the controller's [`fulcrum_core::Table`]: workers
//! schedule new connections themselves from the snapshot the controller
//! publishes ([`fulcrum_core::snapshot`]), with the service's own scheduler
//! and live counts, and tell it afterwards ([`PlaneEvent::Opened`]);
//! services that need the table itself (persistence) ask it through
//! [`PlaneEvent::Schedule`]. What happens to each connection is reported in
//! IPVS's own terms (TCP segments by direction), in batches, so listings and
//! the connection-counting schedulers behave as in the kernel.

pub mod accept;
mod events;
pub mod limit;
mod owner;
pub mod proxy_header;
mod splice;
mod tcp;
mod udp;
mod worker;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use fulcrum_core::snapshot::Snapshot;
use fulcrum_core::{DestId, Protocol, ServiceKey, Table};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use events::{DestOptions, PlaneEvent};
pub use limit::ConnLimit;
pub use proxy_header::ProxyProtocol;

/// How long the plane waits for a real server to accept a connection before
/// resetting the client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a proxied TCP connection may idle: IPVS's timeouts for the
/// states it maps onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTimeouts {
    /// Both directions open (ESTABLISHED; `tcp_timeout`, IPVS 900 s).
    pub established: Duration,
    /// One direction closed (FIN_WAIT/CLOSE_WAIT; `tcpfin_timeout`, IPVS
    /// 120 s).
    pub fin: Duration,
}

impl Default for TcpTimeouts {
    fn default() -> TcpTimeouts {
        TcpTimeouts {
            established: Duration::from_secs(900),
            fin: Duration::from_secs(120),
        }
    }
}

/// A service this plane cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// fwmark services need packet marks, which a proxy never sees.
    #[error("fwmark services need the ipvs data plane; the proxy plane sees no packet marks")]
    Fwmark,
    /// SCTP is not proxied.
    #[error("SCTP services need the ipvs data plane")]
    Sctp,
    /// The listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, io::Error),
    /// Another process serves the address already.
    #[error(
        "{0} is already served on this host by {1}; one director per virtual service and host: stop the other, or give this virtual server another address or port"
    )]
    Taken(SocketAddr, String),
}

/// The proxy plane: per virtual service, one listener on every worker.
///
/// Workers are single-threaded runtimes, one per CPU by default. Worker 0 is
/// the runtime the plane is created on (the controller's); the others get a
/// thread each. TCP services get an `SO_REUSEPORT` listener per worker, so a
/// connection is accepted, scheduled and proxied on one thread without
/// cross-thread wake-ups on its data path. UDP services run on worker 0.
#[derive(Debug)]
pub struct ProxyPlane {
    /// Per worker (index as in `workers`), its link to the controller.
    links: Vec<Arc<worker::Worker>>,
    /// What the workers schedule from.
    published: Arc<ArcSwap<worker::Published>>,
    flushers: Vec<JoinHandle<()>>,
    udp_timeout: watch::Sender<Duration>,
    tcp_timeouts: watch::Sender<TcpTimeouts>,
    workers: Vec<tokio::runtime::Handle>,
    services: HashMap<ServiceKey, Served>,
    /// The director-wide connection limit.
    limit: Arc<ConnLimit>,
    /// Listening sockets a director that restarted into this one left
    /// open for it, by service, until the service claims them.
    inherited: std::sync::Mutex<HashMap<ServiceKey, Vec<std::os::fd::OwnedFd>>>,
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// A service being served: its accept tasks, its connection limit, and a
/// copy of its sockets to hand to a director that replaces this one.
#[derive(Debug)]
struct Served {
    tasks: Vec<JoinHandle<()>>,
    limit: Arc<ConnLimit>,
    sockets: Vec<std::os::fd::OwnedFd>,
}

/// A socket a restarted director left for a service: it must be the
/// service's kind of socket, bound to its address and port (a TCP one
/// listening).
fn claim(
    fd: std::os::fd::OwnedFd,
    local: SocketAddr,
    proto: Protocol,
) -> io::Result<socket2::Socket> {
    let s = socket2::Socket::from(fd);
    let ty = s.r#type()?;
    let ok = s.local_addr()?.as_socket() == Some(local)
        && match proto {
            Protocol::Tcp => ty == socket2::Type::STREAM && s.is_listener()?,
            _ => ty == socket2::Type::DGRAM,
        };
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the inherited socket is not a {proto} socket on {local}"),
        ));
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

impl ProxyPlane {
    /// A plane that reports to the controller on `events`, with `workers`
    /// worker threads in all (at least 1). `udp_timeout` is the idle time
    /// after which a UDP flow is forgotten. Must be called inside a tokio
    /// runtime, which becomes worker 0.
    pub fn new(
        events: mpsc::Sender<PlaneEvent>,
        udp_timeout: Duration,
        workers: usize,
    ) -> ProxyPlane {
        let mut handles = vec![tokio::runtime::Handle::current()];
        let mut stop = Vec::new();
        for i in 1..workers.max(1) {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let (htx, hrx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name(format!("fulcrum-worker-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a worker runtime");
                            return;
                        }
                    };
                    let _ = htx.send(rt.handle().clone());
                    rt.block_on(async {
                        let _ = rx.await;
                    });
                });
            if spawned.is_ok()
                && let Ok(h) = hrx.recv()
            {
                handles.push(h);
                stop.push(tx);
            }
        }
        let published = Arc::new(ArcSwap::from_pointee(worker::Published::empty()));
        let links: Vec<Arc<worker::Worker>> = handles
            .iter()
            .map(|_| Arc::new(worker::Worker::new(events.clone(), published.clone())))
            .collect();
        let flushers = handles
            .iter()
            .zip(&links)
            .map(|(h, l)| h.spawn(l.clone().flush()))
            .collect();
        ProxyPlane {
            links,
            published,
            flushers,
            udp_timeout: watch::Sender::new(udp_timeout),
            tcp_timeouts: watch::Sender::new(TcpTimeouts::default()),
            workers: handles,
            services: HashMap::new(),
            limit: ConnLimit::new("director", usize::MAX),
            inherited: std::sync::Mutex::default(),
            _stop: stop,
        }
    }

    /// Publish `table` for the workers to schedule from. Call after every
    /// change of the table's services or real servers.
    pub fn publish_table(&self, table: &Table) {
        let old = self.published.load();
        self.published.store(Arc::new(worker::Published {
            table: Snapshot::of(table, Some(&old.table)),
            options: old.options.clone(),
            epoch: old.epoch,
        }));
    }

    /// The plane's clock: schedulers in the workers take `now` as the time
    /// since this instant, so the table's owner should too.
    pub fn epoch(&self) -> Instant {
        self.published.load().epoch
    }

    /// What the plane does for each real server beyond IPVS (the PROXY
    /// protocol), keyed by service, address and port.
    pub fn set_dest_options(
        &self,
        options: HashMap<(ServiceKey, std::net::IpAddr, u16), DestOptions>,
    ) {
        let old = self.published.load();
        self.published.store(Arc::new(worker::Published {
            table: old.table.clone(),
            options,
            epoch: old.epoch,
        }));
    }

    /// The table's counts moved (connections established, closed,
    /// expired): let the workers' schedulers see them.
    pub fn store_counts(&self, table: &Table) {
        self.published.load().table.store_counts(table);
    }

    /// The table adopted (or could not adopt) a connection a worker
    /// scheduled to `dest` ([`PlaneEvent::Opened`]).
    pub fn settle(&self, key: &ServiceKey, dest: DestId, table: &Table) {
        self.published.load().table.settle(key, dest, table);
    }

    /// Listening sockets left by the director this one replaces
    /// (`fulcrum restart`): each service takes its own when it is added,
    /// instead of binding, so connections waiting in their queues are
    /// served here.
    pub fn inherit(&self, key: ServiceKey, sockets: Vec<std::os::fd::OwnedFd>) {
        self.inherited().entry(key).or_default().extend(sockets);
    }

    fn inherited(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ServiceKey, Vec<std::os::fd::OwnedFd>>> {
        self.inherited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Close inherited sockets no service claimed (the configuration no
    /// longer has their services); how many.
    pub fn drop_unclaimed(&self) -> usize {
        self.inherited().drain().map(|(_, v)| v.len()).sum()
    }

    /// Copies of every listening socket, by service, for a director that
    /// replaces this one.
    ///
    /// # Errors
    /// A socket that cannot be duplicated (out of descriptors).
    pub fn listening_sockets(&self) -> io::Result<Vec<(ServiceKey, std::os::fd::OwnedFd)>> {
        let mut out = Vec::new();
        for (k, s) in &self.services {
            for fd in &s.sockets {
                out.push((*k, fd.try_clone()?));
            }
        }
        Ok(out)
    }

    /// How many workers serve TCP.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The director-wide limit on open connections and UDP flows.
    pub fn set_max_connections(&self, max: usize) {
        self.limit.set_max(max);
    }

    /// A service's limit on open connections and UDP flows (`None`: only
    /// the director's applies).
    pub fn set_service_max(&self, key: &ServiceKey, max: Option<usize>) {
        if let Some(s) = self.services.get(key) {
            s.limit.set_max(max.unwrap_or(usize::MAX));
        }
    }

    /// The director's limit: open connections and flows, and refusals.
    pub fn director_limit(&self) -> &ConnLimit {
        &self.limit
    }

    /// A service's limit, while it is served.
    pub fn service_limit(&self, key: &ServiceKey) -> Option<&ConnLimit> {
        self.services.get(key).map(|s| &*s.limit)
    }

    /// Change the idle timeouts (`ipvsadm --set tcp tcpfin udp`): open
    /// connections and flows follow at once.
    pub fn set_timeouts(&self, (tcp, tcpfin, udp): (Duration, Duration, Duration)) {
        self.udp_timeout.send_replace(udp);
        self.tcp_timeouts.send_replace(TcpTimeouts {
            established: tcp,
            fin: tcpfin,
        });
    }

    /// Start serving a virtual service: bind its listeners (with
    /// `IP_FREEBIND`, so the address need not be up yet) and accept.
    ///
    /// # Errors
    /// [`PlaneError`] when the service cannot be proxied or bound; nothing
    /// is left listening then.
    pub fn add_service(&mut self, key: ServiceKey, one_packet: bool) -> Result<(), PlaneError> {
        if self.services.contains_key(&key) {
            return Ok(());
        }
        let ServiceKey::Addr { proto, addr, port } = key else {
            return Err(PlaneError::Fwmark);
        };
        let local = SocketAddr::new(addr, port);
        // Refused, not shared, when another process serves it already.
        let ty = if proto == Protocol::Tcp {
            socket2::Type::STREAM
        } else {
            socket2::Type::DGRAM
        };
        // (Not when the director this one replaces left its sockets: it
        // holds them too until it has finished.)
        if proto != Protocol::Sctp
            && !self.inherited().contains_key(&key)
            && let Some(who) = owner::taken(local, ty)
            // Our own listener of a service just removed closes as its task
            // is aborted.
            && !who.starts_with(&format!("pid {} ", std::process::id()))
        {
            return Err(PlaneError::Taken(local, who));
        }
        let limit = ConnLimit::new(format!("virtual service {key}"), usize::MAX);
        let mut inherited = Vec::new();
        let left = self.inherited().remove(&key).unwrap_or_default();
        for fd in left {
            match claim(fd, local, proto) {
                Ok(s) => inherited.push(s),
                Err(e) => tracing::warn!(service = %key, error = %e, "inherited socket not used"),
            }
        }
        let mut sockets = Vec::new();
        let tasks = match proto {
            Protocol::Tcp => {
                // The inherited listeners first (they hold the connections
                // waiting to be accepted), then new ones for the workers
                // left; with more inherited than workers, some workers
                // serve two.
                let mut listeners: Vec<std::net::TcpListener> =
                    inherited.into_iter().map(Into::into).collect();
                while listeners.len() < self.workers.len() {
                    listeners.push(
                        tcp::listen(local, self.workers.len() > 1)
                            .map_err(|e| PlaneError::Bind(local, e))?,
                    );
                }
                let mut tasks = Vec::new();
                for (i, l) in listeners.into_iter().enumerate() {
                    let w = i % self.workers.len();
                    sockets.push(std::os::fd::OwnedFd::from(
                        l.try_clone().map_err(|e| PlaneError::Bind(local, e))?,
                    ));
                    let link = self.links[w].clone();
                    let limits = (self.limit.clone(), limit.clone());
                    let timeouts = self.tcp_timeouts.subscribe();
                    // Register the socket with the worker's own reactor.
                    tasks.push(self.workers[w].spawn(async move {
                        match tokio::net::TcpListener::from_std(l) {
                            Ok(l) => tcp::serve(l, key, link, limits, timeouts).await,
                            Err(e) => tracing::error!(service = %key, error = %e, "cannot register listener"),
                        }
                    }));
                }
                tasks
            }
            Protocol::Udp => {
                let s = match inherited.pop() {
                    Some(s) => tokio::net::UdpSocket::from_std(s.into()),
                    None => udp::bind(local),
                }
                .map_err(|e| PlaneError::Bind(local, e))?;
                sockets.push(rustix::io::dup(&s).map_err(|e| PlaneError::Bind(local, e.into()))?);
                vec![tokio::spawn(udp::serve(
                    s,
                    key,
                    one_packet,
                    self.links[0].clone(),
                    self.udp_timeout.subscribe(),
                    (self.limit.clone(), limit.clone()),
                ))]
            }
            Protocol::Sctp => return Err(PlaneError::Sctp),
        };
        tracing::info!(service = %key, workers = tasks.len(), "listening");
        self.services.insert(
            key,
            Served {
                tasks,
                limit,
                sockets,
            },
        );
        Ok(())
    }

    /// Stop accepting for a service. Connections already open carry on.
    pub fn remove_service(&mut self, key: &ServiceKey) {
        if let Some(s) = self.services.remove(key) {
            s.tasks.iter().for_each(JoinHandle::abort);
            tracing::info!(service = %key, "stopped listening");
        }
    }

    /// Whether a service is being served.
    pub fn serves(&self, key: &ServiceKey) -> bool {
        self.services.contains_key(key)
    }
}

impl Drop for ProxyPlane {
    fn drop(&mut self) {
        self.flushers.iter().for_each(JoinHandle::abort);
        for s in self.services.values() {
            s.tasks.iter().for_each(JoinHandle::abort);
        }
    }
}
