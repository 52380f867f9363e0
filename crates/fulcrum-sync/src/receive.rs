//! The receiving end's socket: UDP on the sync port, joined to the group
//! on one interface, as the kernel's backup daemon listens.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// The receive buffer asked for: about 2,800 full messages of 1,472 bytes.
const RECV_BUFFER: usize = 4 << 20;

/// A socket that receives the sync messages sent to `group`:`port` on
/// interface `iface` (non-blocking, for an async runtime).
///
/// # Errors
/// No such interface, or the kernel refusing the socket, the port or the
/// group, said with what was asked.
pub fn open(group: IpAddr, port: u16, iface: &str) -> Result<UdpSocket, String> {
    let what = |e: std::io::Error| format!("sync messages to {group} port {port} on {iface}: {e}");
    let (s, index) = udp_socket(&group, iface, &what)?;
    s.set_reuse_address(true).map_err(what)?;
    // Room for a master's burst (hundreds of full messages at once): past
    // `net.core.rmem_max` where the process may (CAP_NET_ADMIN), else as
    // much as the system allows.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&s, RECV_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
    }
    // Bound to the group itself, so that only its messages arrive.
    s.bind(&SocketAddr::new(group, port).into()).map_err(what)?;
    match group {
        IpAddr::V4(g) => s
            .join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(index))
            .map_err(what)?,
        IpAddr::V6(g) => s.join_multicast_v6(&g, index).map_err(what)?,
    }
    s.set_nonblocking(true).map_err(what)?;
    Ok(s.into())
}

/// The port a daemon uses: its own, else the kernel's 8848.
pub fn port_or_default(port: u16) -> u16 {
    if port == 0 { crate::PORT } else { port }
}

/// The group a daemon uses: its own, else the kernel's 224.0.0.81.
pub fn group_or_default(group: Option<IpAddr>) -> IpAddr {
    group.unwrap_or(IpAddr::V4(crate::GROUP_V4))
}

/// A UDP socket of `group`'s family and the index of interface `iface`
/// (named when there is no such interface); `what` says the rest.
pub(crate) fn udp_socket(
    group: &IpAddr,
    iface: &str,
    what: &dyn Fn(std::io::Error) -> String,
) -> Result<(Socket, u32), String> {
    let domain = if group.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(what)?;
    let index = rustix::net::netdevice::name_to_index(&s, iface)
        .map_err(|e| format!("sync interface {iface}: {e} (is `syncd_iface` right?)"))?;
    Ok((s, index))
}
