//! Address helpers shared by schedulers, persistence and listings.

use std::net::IpAddr;

/// An address family, as IPVS distinguishes services and dests.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Family {
    /// `AF_INET`
    V4,
    /// `AF_INET6`
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The numeric value the kernel uses (`AF_INET` = 2, `AF_INET6` = 10), which
    /// is also the sort key ipvsadm uses.
    pub fn af(self) -> u16 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }
}

/// The address "fold" IPVS hashes: the IPv4 address in host order, or the XOR of
/// the four 32-bit words of an IPv6 address (`ip_vs_sh.c`, `ip_vs_mh.c`).
pub fn addr_fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// The kernel's `hash_32(val, bits)`: multiply by `GOLDEN_RATIO_32` and keep the
/// top `bits` bits (`include/linux/hash.h`, kernels >= 4.7).
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// A persistence netmask: a (possibly non-contiguous) IPv4 mask as ipvsadm's
/// `-M 255.255.255.0` sets it, or an IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Netmask {
    /// IPv4 mask in host byte order (`0xffffffff` is /32, the default).
    V4(u32),
    /// IPv6 prefix length, 1..=128 (128 is the default).
    V6(u8),
}

impl Netmask {
    /// The default (host) mask for a family: /32 or /128.
    pub fn host(family: Family) -> Netmask {
        match family {
            Family::V4 => Netmask::V4(u32::MAX),
            Family::V6 => Netmask::V6(128),
        }
    }

    /// True for the default mask, which ipvsadm does not print.
    pub fn is_host(&self) -> bool {
        matches!(self, Netmask::V4(u32::MAX) | Netmask::V6(128))
    }

    /// Mask a client address the way `ip_vs_sched_persist` does: `saddr & mask`
    /// for IPv4, `ipv6_addr_prefix` for IPv6. Addresses of the other family are
    /// returned unchanged.
    pub fn apply(&self, addr: &IpAddr) -> IpAddr {
        match (self, addr) {
            (Netmask::V4(m), IpAddr::V4(a)) => IpAddr::V4((u32::from(*a) & m).into()),
            (Netmask::V6(len), IpAddr::V6(a)) => {
                let len = u32::from((*len).min(128));
                let bits = u128::from(*a);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6((bits & mask).into())
            }
            _ => *addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_v6_xors_words() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(addr_fold(&a), 0x2001_0db8 ^ 1);
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(addr_fold(&b), 0x0a00_0001);
    }

    #[test]
    fn masks() {
        let a: IpAddr = "192.168.7.9".parse().unwrap();
        assert_eq!(
            Netmask::V4(0xffff_ff00).apply(&a),
            "192.168.7.0".parse::<IpAddr>().unwrap()
        );
        let b: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(
            Netmask::V6(48).apply(&b),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
        assert!(Netmask::host(Family::V6).is_host());
    }

    #[test]
    fn hash32_matches_kernel_constant() {
        // hash_32(1, 8) = (0x61C88647 >> 24) = 0x61
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 10), 0);
    }
}
