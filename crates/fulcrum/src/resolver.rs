//! The system's name service for ipvsadm listings and arguments
//! (`/etc/hosts`, DNS, `/etc/services`), as ipvsadm uses it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dns_lookup::{AddrInfoHints, getaddrinfo, getnameinfo, lookup_addr};
use fulcrum_api::ipvsadm::Resolver;
use fulcrum_core::Protocol;

/// Names through the C library's resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

fn socktype(p: Protocol) -> i32 {
    match p {
        Protocol::Tcp => libc::SOCK_STREAM,
        Protocol::Udp => libc::SOCK_DGRAM,
        Protocol::Sctp => libc::SOCK_SEQPACKET,
    }
}

impl Resolver for SystemResolver {
    fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr> {
        let hints = AddrInfoHints {
            address: libc::AF_INET,
            socktype: libc::SOCK_STREAM,
            ..Default::default()
        };
        getaddrinfo(Some(name), None, Some(hints))
            .ok()?
            .filter_map(Result::ok)
            .find_map(|ai| match ai.sockaddr.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
    }

    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        let hints = AddrInfoHints {
            flags: libc::AI_NUMERICHOST,
            address: libc::AF_INET,
            socktype: socktype(proto),
            ..Default::default()
        };
        getaddrinfo(Some("0.0.0.0"), Some(name), Some(hints))
            .ok()?
            .filter_map(Result::ok)
            .map(|ai| ai.sockaddr.port())
            .next()
    }

    fn addr_to_host(&self, addr: &IpAddr) -> Option<String> {
        lookup_addr(addr).ok()
    }

    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String> {
        let flags = libc::NI_NUMERICHOST
            | if proto == Protocol::Udp {
                libc::NI_DGRAM
            } else {
                0
            };
        let (_, serv) = getnameinfo(
            &SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            flags,
        )
        .ok()?;
        (serv != port.to_string()).then_some(serv)
    }
}
