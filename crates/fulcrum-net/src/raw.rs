//! The raw sockets of director failover: VRRP (IP protocol 112) bound to a
//! heartbeat address, and the multicast group's; plus what failover asks of
//! the host's links and addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

/// VRRP's IP protocol number.
pub const IPPROTO_VRRP: i32 = 112;

/// VRRP's multicast group.
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// The raw socket for protocol 112, bound to `local`, sending with TTL 255
/// (and to the group from `local`'s interface with `multicast`). Tokio
/// drives it as a datagram socket: a raw socket reads whole IP datagrams
/// and sends to an address with port 0, which is all `recv` and `send_to`
/// need.
///
/// # Errors
/// What failed, with what to do (raw sockets need CAP_NET_RAW).
pub fn vrrp_socket(local: Ipv4Addr, multicast: bool) -> Result<UdpSocket, String> {
    let hint = "run as root (raw sockets need CAP_NET_RAW)";
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
        .map_err(|e| format!("cannot open the VRRP socket: {e}; {hint}"))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))
        .map_err(|e| format!("cannot bind the VRRP socket to {local}: {e}"))?;
    s.set_ttl_v4(255)
        .and_then(|()| {
            if multicast {
                s.set_multicast_if_v4(&local)?;
                s.set_multicast_ttl_v4(255)?;
                s.set_multicast_loop_v4(false)?;
            }
            Ok(())
        })
        .and_then(|()| s.set_nonblocking(true))
        .map_err(|e| format!("cannot set up the VRRP socket: {e}"))?;
    UdpSocket::from_std(std::net::UdpSocket::from(s))
        .map_err(|e| format!("cannot register the VRRP socket: {e}"))
}

/// A raw socket that receives the group's adverts on the interface of
/// `local` (bound to the group, so it sees nothing else).
///
/// # Errors
/// What failed.
pub fn vrrp_group_socket(local: Ipv4Addr) -> Result<UdpSocket, String> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
        .map_err(|e| format!("cannot open the VRRP group socket: {e}"))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(VRRP_GROUP, 0)))
        .and_then(|()| s.join_multicast_v4(&VRRP_GROUP, &local))
        .and_then(|()| s.set_nonblocking(true))
        .map_err(|e| format!("cannot join {VRRP_GROUP} on the interface of {local}: {e}"))?;
    UdpSocket::from_std(std::net::UdpSocket::from(s))
        .map_err(|e| format!("cannot register the VRRP group socket: {e}"))
}

/// Whether a link is usable: the kernel says it is up (or cannot tell, as
/// for loopback).
pub fn link_up(dev: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/operstate"))
        .is_ok_and(|s| matches!(s.trim(), "up" | "unknown"))
}

/// Whether an address is one of this host's (it can be bound).
pub fn is_local(a: IpAddr) -> bool {
    std::net::UdpSocket::bind((a, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_local_and_up() {
        assert!(is_local(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        // TEST-NET-3 is nobody's.
        assert!(!is_local(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))));
        assert!(link_up("lo"));
        assert!(!link_up("no-such-link"));
        assert!(!link_up("../../../etc"));
    }
}
