//! High availability for Fulcrum directors. So far: the VRRP advertisement
//! codec, wire-compatible with keepalived (RFC 3768 version 2 and RFC 5798
//! version 3, IPv4 and IPv6). Sans-IO: bytes in, typed adverts out.

pub mod vrrp;
