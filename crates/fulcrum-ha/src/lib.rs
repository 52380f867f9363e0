//! High availability for Fulcrum directors, sans-IO: the VRRP advertisement
//! codec, wire-compatible with keepalived (RFC 3768 version 2 and RFC 5798
//! version 3, IPv4 and IPv6); the election of one virtual router
//! (priorities, preemption and its delay, Master_Down with skew or Piranha's
//! deadtime, priority-0 hand-over, split-brain answer); the authentication
//! of adverts between Fulcrum directors (HMAC-SHA256 with replay
//! protection); and the cluster channel beside VRRP (hellos for ipfail's
//! ping-node comparison and configuration sync). All of that is sans-IO;
//! [`runtime`] is the failover task that runs it: the raw sockets (from
//! `fulcrum-net`), the clock, and the consequences — the floating addresses,
//! the commands, mail, configuration sync.

pub mod auth;
pub mod cluster;
pub mod election;
pub mod runtime;
pub mod vrrp;
