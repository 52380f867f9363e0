//! The sending end's socket: UDP to the group and port, out of one
//! interface, as the kernel's master daemon sends (TTL 1 unless told, its
//! own messages not looped back to itself).

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// The send buffer asked for: room for a burst of full messages while the
/// link drains them.
const SEND_BUFFER: usize = 4 << 20;

/// A blocking socket connected to `group`:`port`, sending out of
/// interface `iface` with multicast TTL (hop limit) `ttl`.
///
/// # Errors
/// No such interface, or the kernel refusing the socket, said with what
/// was asked.
pub fn open(group: IpAddr, port: u16, iface: &str, ttl: u8) -> Result<UdpSocket, String> {
    let what =
        |e: std::io::Error| format!("sync messages to {group} port {port} out of {iface}: {e}");
    let (s, index) = crate::receive::udp_socket(&group, iface, &what)?;
    if rustix::net::sockopt::set_socket_send_buffer_size_force(&s, SEND_BUFFER).is_err() {
        let _ = s.set_send_buffer_size(SEND_BUFFER);
    }
    match group {
        IpAddr::V4(g) => {
            rustix::net::sockopt::set_ip_multicast_if_with_ifindex(
                &s,
                &g,
                &std::net::Ipv4Addr::UNSPECIFIED,
                index,
            )
            .map_err(|e| what(e.into()))?;
            s.set_multicast_ttl_v4(u32::from(ttl.max(1)))
                .map_err(what)?;
            s.set_multicast_loop_v4(false).map_err(what)?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(index).map_err(what)?;
            s.set_multicast_hops_v6(u32::from(ttl.max(1)))
                .map_err(what)?;
            s.set_multicast_loop_v6(false).map_err(what)?;
        }
    }
    s.connect(&SocketAddr::new(group, port).into())
        .map_err(what)?;
    Ok(s.into())
}

/// The largest message a master sends by default out of an interface of
/// `mtu` bytes to a group of `group`'s family: what one unfragmented
/// datagram carries, and as the kernel's master never more than a
/// 1,500-byte MTU allows (1,472 bytes over IPv4, 1,452 over IPv6).
pub fn default_maxlen(mtu: u32, group: &IpAddr) -> usize {
    let headers = if group.is_ipv4() { 28 } else { 48 };
    (mtu.clamp(576, 1500) as usize) - headers
}

/// The MTU of interface `iface`, from sysfs.
///
/// # Errors
/// No such interface.
pub fn mtu(iface: &str) -> Result<u32, String> {
    let p = format!("/sys/class/net/{iface}/mtu");
    std::fs::read_to_string(&p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("sync interface {iface}: no MTU at {p} (is `syncd_iface` right?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_length_is_the_kernels_on_a_full_sized_link_and_smaller_below() {
        let v4: IpAddr = crate::GROUP_V4.into();
        let v6: IpAddr = "ff02::81".parse().unwrap();
        assert_eq!(default_maxlen(1500, &v4), crate::DEFAULT_MAXLEN);
        assert_eq!(default_maxlen(9000, &v4), 1472);
        assert_eq!(default_maxlen(1500, &v6), 1452);
        assert_eq!(default_maxlen(1400, &v4), 1372);
        assert_eq!(default_maxlen(100, &v4), 548);
    }

    #[test]
    fn a_missing_interface_is_named() {
        let e = open(crate::GROUP_V4.into(), crate::PORT, "no-such-if0", 1).unwrap_err();
        assert!(
            e.contains("no-such-if0") && e.contains("syncd_iface"),
            "{e}"
        );
        assert!(mtu("no-such-if0").unwrap_err().contains("no-such-if0"));
    }
}
