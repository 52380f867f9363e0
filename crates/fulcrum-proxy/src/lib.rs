//! The `proxy` data plane: a TCP and UDP full proxy.
//!
//! Seen from outside it behaves like LVS-NAT: clients talk to the virtual
//! address, real servers are hidden behind the director. Every decision the
//! kernel's IPVS would make — which real server, persistence, thresholds,
//! quiesce — is made by the controller's [`fulcrum_core::Table`]; the plane
//! asks it through [`PlaneEvent::Schedule`] and reports what happens to each
//! connection in IPVS's own terms (TCP segments by direction), so listings
//! and the connection-counting schedulers behave as in the kernel.

mod events;
pub mod proxy_header;
mod splice;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_core::{Protocol, ServiceKey};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use events::{DestOptions, PlaneEvent};
pub use proxy_header::ProxyProtocol;

/// How long the plane waits for a real server to accept a connection before
/// resetting the client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A service this plane cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// fwmark services need packet marks, which a proxy never sees.
    #[error("fwmark services need the xdp data plane; the proxy plane sees no packet marks")]
    Fwmark,
    /// SCTP is not proxied.
    #[error("SCTP services need the xdp data plane")]
    Sctp,
    /// The listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, io::Error),
}

/// The proxy plane: one listener task per virtual service.
#[derive(Debug)]
pub struct ProxyPlane {
    events: mpsc::Sender<PlaneEvent>,
    udp_timeout: watch::Sender<Duration>,
    services: HashMap<ServiceKey, JoinHandle<()>>,
}

impl ProxyPlane {
    /// A plane that reports to the controller on `events`. `udp_timeout` is
    /// the idle time after which a UDP flow is forgotten.
    pub fn new(events: mpsc::Sender<PlaneEvent>, udp_timeout: Duration) -> ProxyPlane {
        ProxyPlane {
            events,
            udp_timeout: watch::Sender::new(udp_timeout),
            services: HashMap::new(),
        }
    }

    /// Change the UDP idle timeout (`ipvsadm --set`).
    pub fn set_udp_timeout(&self, t: Duration) {
        self.udp_timeout.send_replace(t);
    }

    /// Start serving a virtual service: bind its listener (with
    /// `IP_FREEBIND`, so the address need not be up yet) and accept.
    ///
    /// # Errors
    /// [`PlaneError`] when the service cannot be proxied or bound.
    pub fn add_service(&mut self, key: ServiceKey, one_packet: bool) -> Result<(), PlaneError> {
        if self.services.contains_key(&key) {
            return Ok(());
        }
        let ServiceKey::Addr { proto, addr, port } = key else {
            return Err(PlaneError::Fwmark);
        };
        let local = SocketAddr::new(addr, port);
        let task = match proto {
            Protocol::Tcp => {
                let l = tcp::listen(local).map_err(|e| PlaneError::Bind(local, e))?;
                tokio::spawn(tcp::serve(l, key, self.events.clone()))
            }
            Protocol::Udp => {
                let s = udp::bind(local).map_err(|e| PlaneError::Bind(local, e))?;
                tokio::spawn(udp::serve(
                    s,
                    key,
                    one_packet,
                    self.events.clone(),
                    self.udp_timeout.subscribe(),
                ))
            }
            Protocol::Sctp => return Err(PlaneError::Sctp),
        };
        tracing::info!(service = %key, "listening");
        self.services.insert(key, task);
        Ok(())
    }

    /// Stop accepting for a service. Connections already open carry on.
    pub fn remove_service(&mut self, key: &ServiceKey) {
        if let Some(t) = self.services.remove(key) {
            t.abort();
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
        for t in self.services.values() {
            t.abort();
        }
    }
}
