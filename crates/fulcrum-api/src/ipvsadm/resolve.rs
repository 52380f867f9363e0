//! Name resolution as ipvsadm does it, behind a trait so that parsing and
//! listing stay free of I/O. The binary provides the system resolver.

use std::net::{IpAddr, Ipv4Addr};

use fulcrum_core::Protocol;

/// The lookups ipvsadm makes: `gethostbyname`, `getservbyname`,
/// `gethostbyaddr` and `getservbyport`.
pub trait Resolver {
    /// A host name to an IPv4 address (ipvsadm only resolves IPv4 names).
    fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr>;
    /// A service name to a port for a protocol.
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16>;
    /// An address to its host name.
    fn addr_to_host(&self, addr: &IpAddr) -> Option<String>;
    /// A port to its service name for a protocol.
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String>;
}

/// A resolver that knows no names: everything stays numeric.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumericResolver;

impl Resolver for NumericResolver {
    fn host_to_addr(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_to_port(&self, _: &str, _: Protocol) -> Option<u16> {
        None
    }
    fn addr_to_host(&self, _: &IpAddr) -> Option<String> {
        None
    }
    fn port_to_service(&self, _: u16, _: Protocol) -> Option<String> {
        None
    }
}
