//! Announcing a floating address: gratuitous ARP for IPv4 (an ARP request
//! with sender and target both the address, as keepalived sends it) and an
//! unsolicited neighbour advertisement for IPv6 (RFC 4861 §7.2.6).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;

/// A device's index and MAC address, from sysfs.
fn link_info(dev: &str) -> io::Result<(i32, [u8; 6])> {
    let base = format!("/sys/class/net/{dev}");
    let index: i32 = std::fs::read_to_string(format!("{base}/ifindex"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex"))?;
    let text = std::fs::read_to_string(format!("{base}/address"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{dev} has no Ethernet address"),
        ));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad MAC"))?;
    }
    Ok((index, mac))
}

/// The 42-byte Ethernet frame of a gratuitous ARP request.
pub fn garp_frame(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // to everyone
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&addr.octets());
    f[32..38].copy_from_slice(&[0xff; 6]);
    f[38..42].copy_from_slice(&addr.octets());
    f
}

/// Send one gratuitous ARP for `addr` out of `dev`.
///
/// # Errors
/// Unknown device, or no permission for a packet socket (needs
/// `CAP_NET_RAW`).
pub fn gratuitous_arp(dev: &str, addr: Ipv4Addr) -> io::Result<()> {
    let (ifindex, mac) = link_info(dev)?;
    let sock = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )?;
    let mut storage = socket2::SockAddrStorage::zeroed();
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    #[allow(
        unsafe_code,
        reason = "socket2 builds no sockaddr_ll; we write one into its storage"
    )]
    // SAFETY: SockAddrStorage is a sockaddr_storage, larger than and aligned
    // for sockaddr_ll; we fill in one sockaddr_ll and pass its true length.
    let dst = unsafe {
        let ll = storage.view_as::<libc::sockaddr_ll>();
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ETH_P_ARP.to_be();
        ll.sll_ifindex = ifindex;
        ll.sll_halen = 6;
        ll.sll_addr = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
        SockAddr::new(storage, len)
    };
    sock.send_to(&garp_frame(mac, addr), &dst)?;
    Ok(())
}

/// The ICMPv6 body of an unsolicited neighbour advertisement (the kernel
/// fills in the checksum on raw ICMPv6 sockets).
pub fn na_body(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 136; // Neighbor Advertisement
    b[4] = 0x20; // Override (not Solicited, not Router)
    b[8..24].copy_from_slice(&target.octets());
    b[24] = 2; // Target Link-Layer Address option
    b[25] = 1; // 8 bytes
    b[26..32].copy_from_slice(&mac);
    b
}

/// Send one unsolicited neighbour advertisement for `addr` to all nodes
/// (ff02::1) on `dev`, from `addr`, hop limit 255.
///
/// # Errors
/// Unknown device, address not yet usable, or no permission (raw socket).
pub fn unsolicited_na(dev: &str, addr: Ipv6Addr) -> io::Result<()> {
    let (ifindex, mac) = link_info(dev)?;
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    sock.bind_device(Some(dev.as_bytes()))?;
    sock.set_multicast_hops_v6(255)?;
    sock.set_unicast_hops_v6(255)?;
    sock.set_multicast_if_v6(ifindex as u32)?;
    sock.bind(&SocketAddrV6::new(addr, 0, 0, 0).into())?;
    let to = SocketAddrV6::new("ff02::1".parse().expect("valid"), 0, 0, ifindex as u32);
    sock.send_to(&na_body(mac, addr), &to.into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_frame_layout() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 200, 0, 100));
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[28..32], &[10, 200, 0, 100]);
        assert_eq!(&f[38..42], &[10, 200, 0, 100]);
    }

    #[test]
    fn na_layout() {
        let b = na_body([2, 0, 0, 0, 0, 1], "2001:db8::1".parse().unwrap());
        assert_eq!((b[0], b[4], b[24], b[25]), (136, 0x20, 2, 1));
    }
}
