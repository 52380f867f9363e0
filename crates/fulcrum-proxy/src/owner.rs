//! Who else serves a virtual service on this host.
//!
//! The plane's workers share each TCP address through `SO_REUSEPORT`, which
//! would let a second director (same user, another control socket) join
//! the group silently and take part of the traffic. Before binding, a probe
//! socket without `SO_REUSEPORT` is bound to the address: it fails when any
//! other socket serves it, and the owner is found in `/proc` to name it.

use std::net::{IpAddr, SocketAddr};

use socket2::Type;

/// Whether another socket on this host already serves `addr`; if so, who
/// (`pid N (comm)` when `/proc` tells, else a plain description).
pub(crate) fn taken(addr: SocketAddr, ty: Type) -> Option<String> {
    // UDP without SO_REUSEADDR: with it, two sockets may share the address.
    let probe =
        crate::tcp::unbound_socket(addr, ty, ty == Type::STREAM).and_then(|s| s.bind(&addr.into()));
    match probe {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Some(owner(addr, ty).unwrap_or_else(|| "another process".into()))
        }
        _ => None,
    }
}

/// `/proc/net`'s spelling of an address: each 32-bit word in host order.
fn proc_hex(ip: IpAddr) -> String {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes
        .chunks(4)
        .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// The socket inode serving `addr` in `/proc/net/{tcp,udp}[6]`.
fn inode_of(addr: SocketAddr, ty: Type) -> Option<String> {
    let proto = if ty == Type::STREAM { "tcp" } else { "udp" };
    let file = if addr.is_ipv6() {
        format!("{proto}6")
    } else {
        proto.to_string()
    };
    let table = std::fs::read_to_string(format!("/proc/net/{file}")).ok()?;
    let want = format!("{}:{:04X}", proc_hex(addr.ip()), addr.port());
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // local_address, state (0A: LISTEN for TCP), inode
        let listening = ty != Type::STREAM || f.get(3) == Some(&"0A");
        (f.get(1) == Some(&want.as_str()) && listening)
            .then(|| f.get(9).map(ToString::to_string))
            .flatten()
    })
}

/// The process holding the socket that serves `addr`.
fn owner(addr: SocketAddr, ty: Type) -> Option<String> {
    let link = format!("socket:[{}]", inode_of(addr, ty)?);
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == link.as_str()) {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_process_is_found_and_named() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let who = taken(a, Type::STREAM).expect("the address is taken");
        assert!(
            who.starts_with(&format!("pid {} (", std::process::id())),
            "{who}"
        );
        drop(l);
        assert_eq!(taken(a, Type::STREAM), None);
        assert_eq!(proc_hex("127.0.0.1".parse().unwrap()), "0100007F");
    }
}
