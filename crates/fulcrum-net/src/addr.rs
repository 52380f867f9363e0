//! Floating addresses: virtual server and NAT-router addresses added to a
//! device (with Piranha's `eth0:1` alias as the address label) and removed
//! again — exactly those this director added, never one it found there.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::Handle;

/// A failure to manage an address.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No such device.
    #[error("there is no network device `{0}`")]
    NoSuchDevice(String),
    /// The address is on no interface, and no device was named.
    #[error("{0} is on no local subnet and no device is given")]
    NoDevice(IpAddr),
    /// The kernel refused.
    #[error("{0}")]
    Netlink(String),
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rtnetlink::Error> for NetError {
    fn from(e: rtnetlink::Error) -> Self {
        NetError::Netlink(e.to_string())
    }
}

/// An address the director brings up while it is active.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FloatingAddr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (32 or 128 unless a netmask is configured).
    pub prefix: u8,
    /// The device, e.g. `eth0`; `None` to use the interface whose subnet
    /// holds the address.
    pub device: Option<String>,
    /// The address label, e.g. `eth0:1`.
    pub label: Option<String>,
}

/// What happened when an address was brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The director added it (and will remove it).
    Added {
        /// The device's index.
        ifindex: u32,
    },
    /// The host already had it; it is left alone.
    AlreadyPresent,
}

/// Adds and removes floating addresses over rtnetlink, remembering which it
/// added.
#[derive(Debug)]
pub struct AddressManager {
    handle: Handle,
    added: Vec<AddressMessage>,
}

fn addr_of(m: &AddressMessage) -> Option<IpAddr> {
    m.attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
}

fn in_prefix(a: &IpAddr, net: &IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(*a) & m == u32::from(*n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(*a) & m == u128::from(*n) & m
        }
        _ => false,
    }
}

impl AddressManager {
    /// Open a netlink connection (its task runs on the current tokio
    /// runtime).
    ///
    /// # Errors
    /// The socket could not be opened.
    pub fn new() -> Result<AddressManager, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(AddressManager {
            handle,
            added: Vec::new(),
        })
    }

    /// Have the kernel resolve the neighbour (MAC address) of `addr` on
    /// interface `index` (a neighbour request with `NTF_USE`: the kernel
    /// sends its ARP request or neighbour solicitation, as it would for a
    /// packet of its own).
    ///
    /// # Errors
    /// The kernel refusing (no such interface, no privilege).
    pub async fn resolve_neighbour(&self, index: u32, addr: IpAddr) -> Result<(), NetError> {
        use netlink_packet_route::neighbour::NeighbourFlags;
        self.handle
            .neighbours()
            .add(index, addr)
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await?;
        Ok(())
    }

    /// A device's index.
    ///
    /// # Errors
    /// [`NetError::NoSuchDevice`].
    pub async fn link_index(&self, dev: &str) -> Result<u32, NetError> {
        Ok(self.link(dev).await?.header.index)
    }

    /// A device's link message, by name.
    async fn link(&self, dev: &str) -> Result<netlink_packet_route::link::LinkMessage, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(dev.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l),
            _ => Err(NetError::NoSuchDevice(dev.to_string())),
        }
    }

    async fn all_addresses(&self) -> Result<Vec<AddressMessage>, NetError> {
        Ok(self.handle.address().get().execute().try_collect().await?)
    }

    /// The name of the device with an index.
    pub async fn link_name(&self, index: u32) -> Option<String> {
        let mut links = self.handle.link().get().match_index(index).execute();
        let l = links.try_next().await.ok()??;
        l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
    }

    /// The name of the device that holds an address, if one does.
    pub async fn device_of(&self, addr: &IpAddr) -> Option<String> {
        let index = self
            .all_addresses()
            .await
            .ok()?
            .into_iter()
            .find(|m| addr_of(m) == Some(*addr))?
            .header
            .index;
        self.link_name(index).await
    }

    /// Bring a device up or down (`ip link set DEV up|down`).
    ///
    /// # Errors
    /// [`NetError::NoSuchDevice`], or the kernel refusing.
    pub async fn set_link_up(&self, dev: &str, up: bool) -> Result<(), NetError> {
        let index = self.link_index(dev).await?;
        let b = rtnetlink::LinkUnspec::new_with_index(index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    /// Attach the XDP program `fd` to a device over netlink (`ip link set
    /// DEV xdpdrv|xdpgeneric fd FD`): the attachment lives with the device,
    /// not with this process. In the driver when `native`, else in the
    /// generic path. `fd = None` detaches what that mode runs.
    ///
    /// # Errors
    /// [`NetError::NoSuchDevice`], or the kernel refusing.
    pub async fn set_xdp(
        &self,
        dev: &str,
        fd: Option<std::os::fd::RawFd>,
        native: bool,
    ) -> Result<(), NetError> {
        use netlink_packet_route::link::LinkXdp;
        const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
        const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
        let index = self.link_index(dev).await?;
        let mut msg = rtnetlink::LinkUnspec::new_with_index(index).build();
        msg.attributes.push(LinkAttribute::Xdp(vec![
            LinkXdp::Fd(fd.unwrap_or(-1)),
            LinkXdp::Flags(if native {
                XDP_FLAGS_DRV_MODE
            } else {
                XDP_FLAGS_SKB_MODE
            }),
        ]));
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    /// The id of the XDP program a device runs, if any.
    ///
    /// # Errors
    /// [`NetError::NoSuchDevice`].
    pub async fn xdp_program(&self, dev: &str) -> Result<Option<u32>, NetError> {
        use netlink_packet_route::link::LinkXdp;
        let l = self.link(dev).await?;
        Ok(l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Xdp(x) => x.iter().find_map(|x| match x {
                LinkXdp::ProgId(id) if *id != 0 => Some(*id),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Whether any interface has the address.
    ///
    /// # Errors
    /// Netlink failures.
    pub async fn has(&self, addr: &IpAddr) -> Result<bool, NetError> {
        Ok(self
            .all_addresses()
            .await?
            .iter()
            .any(|m| addr_of(m) == Some(*addr)))
    }

    /// Bring an address up unless the host already has it.
    ///
    /// # Errors
    /// Unknown device, no device to put it on, or the kernel refusing
    /// (EPERM without root).
    pub async fn add(&mut self, f: &FloatingAddr) -> Result<Added, NetError> {
        let existing = self.all_addresses().await?;
        if existing.iter().any(|m| addr_of(m) == Some(f.addr)) {
            return Ok(Added::AlreadyPresent);
        }
        let ifindex = match &f.device {
            Some(dev) => self.link_index(dev).await?,
            None => existing
                .iter()
                .find(|m| addr_of(m).is_some_and(|n| in_prefix(&f.addr, &n, m.header.prefix_len)))
                .map(|m| m.header.index)
                .ok_or(NetError::NoDevice(f.addr))?,
        };
        let mut req = self.handle.address().add(ifindex, f.addr, f.prefix);
        if let (Some(label), IpAddr::V4(_)) = (&f.label, f.addr) {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(label.clone()));
        }
        let msg = req.message_mut().clone();
        req.execute().await?;
        self.added.push(msg);
        Ok(Added::Added { ifindex })
    }

    /// Remove one address this manager added. Addresses it did not add are
    /// never touched.
    ///
    /// # Errors
    /// The kernel refusing.
    pub async fn remove(&mut self, addr: &IpAddr) -> Result<bool, NetError> {
        let Some(pos) = self.added.iter().position(|m| addr_of(m) == Some(*addr)) else {
            return Ok(false);
        };
        let msg = self.added.remove(pos);
        self.handle.address().del(msg).execute().await?;
        Ok(true)
    }

    /// Take charge of an address the host already has (left by an earlier
    /// run, say), so that [`remove`](Self::remove) and
    /// [`remove_all`](Self::remove_all) will take it down. False when the
    /// host does not have it.
    ///
    /// # Errors
    /// Netlink failures.
    pub async fn adopt(&mut self, addr: &IpAddr) -> Result<bool, NetError> {
        if self.added.iter().any(|m| addr_of(m) == Some(*addr)) {
            return Ok(true);
        }
        let found = self
            .all_addresses()
            .await?
            .into_iter()
            .find(|m| addr_of(m) == Some(*addr));
        Ok(found.map(|m| self.added.push(m)).is_some())
    }

    /// Remove every address this manager added, newest first.
    pub async fn remove_all(&mut self) -> Vec<(IpAddr, Result<(), NetError>)> {
        let mut out = Vec::new();
        while let Some(msg) = self.added.pop() {
            let a = addr_of(&msg);
            let r = self
                .handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(NetError::from);
            if let Some(a) = a {
                out.push((a, r));
            }
        }
        out
    }

    /// The addresses this manager added.
    pub fn added(&self) -> Vec<IpAddr> {
        self.added.iter().filter_map(addr_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let a: IpAddr = "192.168.1.254".parse().unwrap();
        assert!(in_prefix(&a, &"192.168.1.1".parse().unwrap(), 24));
        assert!(!in_prefix(&a, &"192.168.2.1".parse().unwrap(), 24));
        assert!(in_prefix(
            &"2001:db8::9".parse().unwrap(),
            &"2001:db8::1".parse().unwrap(),
            64
        ));
    }
}
