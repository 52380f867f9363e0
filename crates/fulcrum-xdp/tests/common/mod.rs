//! Frames for the XDP tests, built by hand with their checksums, and a
//! checker that recomputes every checksum of a frame that left the program.

#![allow(dead_code, reason = "each test binary uses a part of these helpers")]

use std::net::IpAddr;

use fulcrum_core::{DestSpec, Forwarding, Protocol, ServiceKey, Table};
use fulcrum_xdp::records::DestConns;
use fulcrum_xdp::{Exception, XdpError, XdpPlane};

/// A service of protocol, address and port.
pub(crate) fn svc(proto: Protocol, addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: addr.parse().unwrap(),
        port,
    }
}

/// A real server of that address, port, forwarding and weight.
pub(crate) fn dest(addr: &str, port: u16, fwd: Forwarding, weight: u32) -> DestSpec {
    let mut d = DestSpec::new(addr.parse().unwrap(), port, fwd);
    d.weight = weight;
    d
}

/// What the program counted under exception `e`.
pub(crate) fn count(p: &XdpPlane, e: Exception) -> u64 {
    p.exceptions()
        .unwrap()
        .into_iter()
        .find(|(x, _)| *x == e)
        .unwrap()
        .1
}

/// The program's counts of the real server of `addr` in service `key`.
pub(crate) fn dest_counts(p: &XdpPlane, t: &Table, key: &ServiceKey, addr: &str) -> DestConns {
    let s = t.service(key).unwrap();
    let d = s.dests.iter().find(|d| d.addr.to_string() == addr).unwrap();
    p.dest_conns(key, d.id).unwrap().unwrap()
}

/// Load the plane, or say why the test cannot run (no clang at build time).
pub(crate) fn load() -> Option<XdpPlane> {
    match XdpPlane::load(65536) {
        Ok(c) => Some(c),
        Err(XdpError::NotBuilt(_)) => {
            fulcrum_testbed::missing_peer("the XDP tests", "clang (and libbpf-dev)");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

pub(crate) const SYN: u8 = 0x02;
pub(crate) const ACK: u8 = 0x10;
pub(crate) const FIN: u8 = 0x01;
pub(crate) const RST: u8 = 0x04;

pub(crate) const MAC: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn pseudo(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> u32 {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed families"),
    }
    sum16(&p)
}

/// A frame: Ethernet, IPv4 or IPv6, and a TCP (with `flags`) or UDP
/// (`flags == None`) header with `payload` bytes; checksums right.
pub(crate) fn frame(
    src: (&str, u16),
    dst: (&str, u16),
    tcp_flags: Option<u8>,
    payload: usize,
) -> Vec<u8> {
    let s: IpAddr = src.0.parse().unwrap();
    let d: IpAddr = dst.0.parse().unwrap();
    let proto = if tcp_flags.is_some() { 6 } else { 17 };
    let mut l4 = Vec::new();
    l4.extend_from_slice(&src.1.to_be_bytes());
    l4.extend_from_slice(&dst.1.to_be_bytes());
    match tcp_flags {
        Some(f) => {
            l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, f, 0xff, 0xff, 0, 0, 0, 0]);
        }
        None => {
            l4.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        }
    }
    l4.extend((0..payload).map(|i| i as u8));
    let c = !fold(pseudo(&s, &d, proto, l4.len()) + sum16(&l4));
    let at = if proto == 6 { 16 } else { 6 };
    let c = if proto == 17 && c == 0 { 0xffff } else { c };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = MAC.to_vec();
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = !fold(sum16(&ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&l4);
    f
}

/// A TCP frame with `flags`.
pub(crate) fn tcp(src: (&str, u16), dst: (&str, u16), flags: u8) -> Vec<u8> {
    frame(src, dst, Some(flags), 0)
}

/// The frame's (source, destination) as address and port.
pub(crate) fn endpoints(f: &[u8]) -> ((IpAddr, u16), (IpAddr, u16)) {
    let port = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    match f[12..14] {
        [0x08, 0x00] => {
            let ihl = usize::from(f[14] & 0xf) * 4;
            let a = |i: usize| IpAddr::from([f[i], f[i + 1], f[i + 2], f[i + 3]]);
            ((a(26), port(14 + ihl)), (a(30), port(16 + ihl)))
        }
        _ => {
            let a = |i: usize| {
                let b: [u8; 16] = f[i..i + 16].try_into().unwrap();
                IpAddr::from(b)
            };
            ((a(22), port(54)), (a(38), port(56)))
        }
    }
}

/// Every checksum of the frame verifies (IPv4 header, TCP or UDP).
pub(crate) fn checksums_ok(f: &[u8]) -> bool {
    let ((s, _), (d, _)) = endpoints(f);
    let (l4, proto) = match f[12..14] {
        [0x08, 0x00] => {
            let ihl = usize::from(f[14] & 0xf) * 4;
            if fold(sum16(&f[14..14 + ihl])) != 0xffff {
                return false;
            }
            (&f[14 + ihl..], f[23])
        }
        _ => (&f[54..], f[20]),
    };
    if proto == 17 && f[12] == 0x08 && l4[6..8] == [0, 0] {
        return true;
    }
    fold(pseudo(&s, &d, proto, l4.len()) + sum16(l4)) == 0xffff
}

/// A network namespace deleted when the test ends, passed or not.
pub(crate) struct Netns(pub(crate) String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Run the test's body in a thread inside a new network namespace, after
/// `setup` (a shell script run inside it with `ip netns exec`). Without
/// set-up it has only `lo`: the program's FIB lookups find no route there,
/// so every forwarded frame goes to the kernel and comes back to the test.
pub(crate) fn in_netns<T: Send + 'static>(
    setup: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let name = format!(
        "fxt{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let ns = Netns(name.clone());
    fulcrum_testbed::sh(&format!("ip netns add {name}"));
    if !setup.is_empty() {
        fulcrum_testbed::sh(&format!("ip netns exec {name} sh -ec '{setup}'"));
    }
    let r = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&f),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        body()
    })
    .join();
    drop(ns);
    match r {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// An IPv4 ICMP error (`kind`, `code`, the 4 bytes after the checksum)
/// from `src` to `dst` quoting the IP header and 8 bytes of `quoted` (a
/// frame); checksums right.
pub(crate) fn icmp4_error(
    src: &str,
    dst: &str,
    kind: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let q = &quoted[14..14 + 20 + 8];
    let mut icmp = vec![kind, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(q);
    let c = !fold(sum16(&icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let s: std::net::Ipv4Addr = src.parse().unwrap();
    let d: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&s.octets());
    ip.extend_from_slice(&d.octets());
    let c = !fold(sum16(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// An IPv4 ICMP frame's checksums verify: the IP header, the ICMP
/// message, the quoted IP header.
pub(crate) fn icmp4_ok(f: &[u8]) -> bool {
    let ihl = usize::from(f[14] & 0xf) * 4;
    let icmp = &f[14 + ihl..];
    let qihl = usize::from(icmp[8] & 0xf) * 4;
    fold(sum16(&f[14..14 + ihl])) == 0xffff
        && fold(sum16(icmp)) == 0xffff
        && fold(sum16(&icmp[8..8 + qihl])) == 0xffff
}

/// An ICMPv6 error (`kind`, `code`, the 4 bytes after the checksum) from
/// `src` to `dst` quoting the IPv6 header and 8 bytes of `quoted` (a
/// frame); checksum right.
pub(crate) fn icmp6_error(
    src: &str,
    dst: &str,
    kind: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let s: IpAddr = src.parse().unwrap();
    let d: IpAddr = dst.parse().unwrap();
    let mut icmp = vec![kind, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(&quoted[14..14 + 40 + 8]);
    let c = !fold(pseudo(&s, &d, 58, icmp.len()) + sum16(&icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let (IpAddr::V6(s6), IpAddr::V6(d6)) = (s, d) else {
        panic!("IPv6 addresses")
    };
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 64]);
    f.extend_from_slice(&s6.octets());
    f.extend_from_slice(&d6.octets());
    f.extend_from_slice(&icmp);
    f
}

/// An ICMPv6 frame's checksum verifies (with its pseudo-header).
pub(crate) fn icmp6_ok(f: &[u8]) -> bool {
    let a = |i: usize| -> IpAddr {
        let b: [u8; 16] = f[i..i + 16].try_into().unwrap();
        IpAddr::from(b)
    };
    let icmp = &f[54..];
    fold(pseudo(&a(22), &a(38), 58, icmp.len()) + sum16(icmp)) == 0xffff
}
