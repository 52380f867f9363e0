//! High availability for Fulcrum directors. So far, sans-IO: the VRRP
//! advertisement codec, wire-compatible with keepalived (RFC 3768 version 2
//! and RFC 5798 version 3, IPv4 and IPv6), and the election of one virtual
//! router (priorities, preemption, Master_Down with skew, priority-0
//! hand-over), and the authentication of adverts between Fulcrum directors
//! (HMAC-SHA256 with replay protection). The sockets, addresses and lvs.cf
//! keys come next.

pub mod auth;
pub mod election;
pub mod vrrp;
