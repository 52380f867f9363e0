//! The kernel IPVS plane: the `IPVS` generic-netlink family, as a sans-IO
//! codec ([`nl`] framing, [`msg`] typed IPVS messages) and a driver
//! ([`driver::Ipvs`]) that programs the kernel's table over a netlink
//! socket, as keepalived and ipvsadm do.

pub mod conns;
pub mod driver;
pub mod msg;
pub mod nl;
pub mod reconcile;
