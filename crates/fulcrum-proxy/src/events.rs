//! What the plane tells the controller.

use std::net::SocketAddr;

use fulcrum_core::DestId;
use fulcrum_core::conn::ConnId;
use fulcrum_core::sched::Flow;
use fulcrum_core::state::{Direction, TcpFlags};
use fulcrum_core::table::Scheduled;
use fulcrum_core::{Protocol, ServiceKey};
use tokio::sync::oneshot;

/// What the plane needs to know about a real server beyond IPVS's view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestOptions {
    /// Send a PROXY protocol header first.
    pub proxy_protocol: Option<crate::ProxyProtocol>,
    /// Connect from the client's own address and port (`IP_TRANSPARENT`),
    /// so the real server sees the client as behind LVS-NAT. Its replies
    /// must come back through the director ([`fulcrum_net::transparent`]).
    pub transparent: bool,
}

/// A message from the data plane to the controller that owns the table.
#[derive(Debug)]
pub enum PlaneEvent {
    /// A new connection (or datagram flow) arrived: pick its real server.
    /// For TCP this is also the client's SYN as IPVS would see it.
    Schedule {
        /// The virtual service it arrived on.
        key: ServiceKey,
        /// Its protocol.
        proto: Protocol,
        /// Client and virtual endpoints.
        flow: Flow,
        /// The answer: `None` is "no destination available".
        reply: oneshot::Sender<Option<(Scheduled, DestOptions)>>,
    },
    /// A new connection (or datagram flow) the worker scheduled itself from
    /// the published snapshot: make its entry, and for TCP take it as the
    /// client's SYN.
    Opened {
        /// The virtual service it arrived on.
        key: ServiceKey,
        /// Its protocol.
        proto: Protocol,
        /// Client and virtual endpoints.
        flow: Flow,
        /// The real server picked.
        dest: DestId,
        /// The entry's id, taken from the table's sequence.
        conn: ConnId,
    },
    /// A worker's events, in the order they happened.
    Batch(Vec<PlaneEvent>),
    /// Something happened to a connection, told as the TCP segment IPVS
    /// would have seen (`flags` is `None` for a UDP datagram).
    Segment {
        /// The connection.
        conn: ConnId,
        /// Which way.
        dir: Direction,
        /// The TCP flags.
        flags: Option<TcpFlags>,
    },
    /// Several segments at once, in order (e.g. the real server's SYN/ACK
    /// and the client's ACK when the connection to it is made).
    Segments {
        /// The connection.
        conn: ConnId,
        /// The segments.
        segs: [(Direction, TcpFlags); 2],
    },
    /// The last segment of a connection, with its final traffic.
    Last {
        /// The connection.
        conn: ConnId,
        /// Which way.
        dir: Direction,
        /// The TCP flags.
        flags: TcpFlags,
        /// Bytes and packets since the last report: in bytes, out bytes, in
        /// packets, out packets.
        traffic: [u64; 4],
    },
    /// Traffic since the last report.
    Traffic {
        /// The connection.
        conn: ConnId,
        /// Packets client → real server.
        inpkts: u64,
        /// Bytes client → real server.
        inbytes: u64,
        /// Packets real server → client.
        outpkts: u64,
        /// Bytes real server → client.
        outbytes: u64,
    },
    /// A connection or datagram was refused: no real server available.
    NoDest {
        /// The service.
        key: ServiceKey,
        /// The client.
        client: SocketAddr,
    },
    /// A real server could not be reached; the client was reset.
    Unreachable {
        /// The connection.
        conn: ConnId,
        /// The real server.
        dest: SocketAddr,
        /// Why.
        error: String,
    },
}

/// The controller's answer to a new connection or flow.
pub(crate) enum Answer {
    /// Forward to this real server.
    Dest(Scheduled, DestOptions),
    /// No destination available.
    NoDest,
    /// The controller is gone (the director is stopping).
    Gone,
}

/// Ask the controller to schedule a connection (services whose scheduling
/// needs the table itself: persistence, one-packet scheduling).
pub(crate) async fn ask(
    events: &tokio::sync::mpsc::Sender<PlaneEvent>,
    key: ServiceKey,
    proto: Protocol,
    flow: Flow,
) -> Answer {
    let (reply, rx) = oneshot::channel();
    if events
        .send(PlaneEvent::Schedule {
            key,
            proto,
            flow,
            reply,
        })
        .await
        .is_err()
    {
        return Answer::Gone;
    }
    match rx.await {
        Ok(Some((s, o))) => Answer::Dest(s, o),
        Ok(None) => Answer::NoDest,
        Err(_) => Answer::Gone,
    }
}
