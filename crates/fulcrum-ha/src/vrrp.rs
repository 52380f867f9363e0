//! VRRP advertisements (IP protocol 112).
//!
//! Version 3 (RFC 5798 §5.1), IPv4 or IPv6:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IPvX Address(es)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Max Adver Int is in centiseconds (12 bits); the checksum covers an IP
//! pseudo-header (source, destination, protocol 112, VRRP length) and the
//! message.
//!
//! Version 2 (RFC 3768 §5.1), IPv4 only:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Adver Int   |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         IP Address (1..n)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Authentication Data (8 octets)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Adver Int is in whole seconds; the checksum covers the message only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The only packet type: an advertisement.
const TYPE_ADVERTISEMENT: u8 = 1;
/// Header length before the addresses.
const HEADER: usize = 8;
/// Version 2's authentication data after the addresses.
const V2_AUTH: usize = 8;

/// The protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// RFC 3768: IPv4, whole-second intervals, optional simple password.
    V2,
    /// RFC 5798: IPv4 or IPv6, centisecond intervals.
    V3,
}

/// Version 2's authentication (RFC 3768 §5.3.6; types 1 and 2 are
/// deprecated but keepalived still sends type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No authentication (type 0).
    None,
    /// A cleartext password of up to 8 octets, zero-padded (type 1).
    Password([u8; 8]),
}

/// An advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Version 2 or 3.
    pub version: Version,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Priority: 255 owns the addresses, 0 means "I am leaving".
    pub priority: u8,
    /// The advertisement interval in centiseconds (version 2: a multiple
    /// of 100).
    pub interval_cs: u16,
    /// The virtual addresses, all of one family.
    pub addrs: Vec<IpAddr>,
    /// Version 2 only.
    pub auth: Auth,
}

/// Why bytes are not an advertisement we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header and addresses need.
    #[error("VRRP packet too short: {got} bytes, {need} needed")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes the header says there are.
        need: usize,
    },
    /// Not version 2 or 3.
    #[error("unsupported VRRP version {0}")]
    Version(u8),
    /// Not an advertisement.
    #[error("unknown VRRP packet type {0}")]
    Type(u8),
    /// Version 2 over IPv6 does not exist.
    #[error("VRRP version 2 over IPv6")]
    V2OverIpv6,
    /// The checksum does not match.
    #[error("bad VRRP checksum")]
    Checksum,
    /// Virtual router id 0.
    #[error("VRRP virtual router id 0")]
    Vrid,
    /// An unknown version 2 authentication type.
    #[error("unsupported VRRP authentication type {0}")]
    AuthType(u8),
    /// Source and destination are of different families.
    #[error("VRRP source and destination of different address families")]
    Family,
}

/// Why an advertisement cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Addresses of the wrong family, or version 2 with IPv6.
    #[error("VRRP addresses must all be of the source's family (and IPv4 for version 2)")]
    Family,
    /// More than 255 addresses.
    #[error("at most 255 virtual addresses per VRRP advertisement")]
    TooManyAddresses,
    /// The interval does not fit the version's field.
    #[error("advertisement interval out of range for this VRRP version")]
    Interval,
}

/// The Internet checksum (RFC 1071) of some byte slices taken together.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header of version 3's checksum.
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Result<Vec<u8>, DecodeError> {
    let mut p = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, PROTOCOL]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, PROTOCOL]);
        }
        _ => return Err(DecodeError::Family),
    }
    Ok(p)
}

impl Advert {
    /// The packet, for an IP header from `src` to `dst` (the checksum of
    /// version 3 depends on them).
    ///
    /// # Errors
    /// Addresses of the wrong family, too many, or an interval that does
    /// not fit.
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
        let v6 = src.is_ipv6();
        if self.addrs.iter().any(|a| a.is_ipv6() != v6)
            || dst.is_ipv6() != v6
            || (self.version == Version::V2 && v6)
        {
            return Err(EncodeError::Family);
        }
        let count = u8::try_from(self.addrs.len()).map_err(|_| EncodeError::TooManyAddresses)?;
        let mut b = Vec::with_capacity(HEADER + self.addrs.len() * 16 + V2_AUTH);
        let version = match self.version {
            Version::V2 => 2u8,
            Version::V3 => 3u8,
        };
        b.push(version << 4 | TYPE_ADVERTISEMENT);
        b.push(self.vrid);
        b.push(self.priority);
        b.push(count);
        match self.version {
            Version::V2 => {
                let secs = self.interval_cs / 100;
                if secs == 0 || secs > 255 || !self.interval_cs.is_multiple_of(100) {
                    return Err(EncodeError::Interval);
                }
                b.push(match self.auth {
                    Auth::None => 0,
                    Auth::Password(_) => 1,
                });
                b.push(secs as u8);
            }
            Version::V3 => {
                if self.interval_cs == 0 || self.interval_cs > 0x0fff {
                    return Err(EncodeError::Interval);
                }
                b.extend_from_slice(&self.interval_cs.to_be_bytes());
            }
        }
        b.extend_from_slice(&[0, 0]);
        for a in &self.addrs {
            match a {
                IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
            }
        }
        let sum = match self.version {
            Version::V2 => {
                b.extend_from_slice(match &self.auth {
                    Auth::None => &[0; 8],
                    Auth::Password(p) => p,
                });
                checksum(&[&b])
            }
            Version::V3 => {
                let ph = pseudo_header(src, dst, b.len()).map_err(|_| EncodeError::Family)?;
                checksum(&[&ph, &b])
            }
        };
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(b)
    }

    /// Read an advertisement that came from `src` to `dst` (the IP
    /// header's addresses). Never panics, whatever the bytes.
    ///
    /// # Errors
    /// What is wrong with the packet.
    pub fn decode(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advert, DecodeError> {
        if src.is_ipv6() != dst.is_ipv6() {
            return Err(DecodeError::Family);
        }
        if bytes.len() < HEADER {
            return Err(DecodeError::Truncated {
                got: bytes.len(),
                need: HEADER,
            });
        }
        let version = match bytes[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(DecodeError::Version(v)),
        };
        if bytes[0] & 0x0f != TYPE_ADVERTISEMENT {
            return Err(DecodeError::Type(bytes[0] & 0x0f));
        }
        let v6 = src.is_ipv6();
        if version == Version::V2 && v6 {
            return Err(DecodeError::V2OverIpv6);
        }
        let (vrid, priority, count) = (bytes[1], bytes[2], usize::from(bytes[3]));
        if vrid == 0 {
            return Err(DecodeError::Vrid);
        }
        let width = if v6 { 16 } else { 4 };
        let need = HEADER + count * width + if version == Version::V2 { V2_AUTH } else { 0 };
        if bytes.len() < need {
            return Err(DecodeError::Truncated {
                got: bytes.len(),
                need,
            });
        }
        let msg = &bytes[..need];
        let ok = match version {
            Version::V2 => checksum(&[msg]) == 0,
            Version::V3 => checksum(&[&pseudo_header(src, dst, msg.len())?, msg]) == 0,
        };
        if !ok {
            return Err(DecodeError::Checksum);
        }
        let addrs = msg[HEADER..HEADER + count * width]
            .chunks_exact(width)
            .map(|c| {
                if v6 {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(c);
                    IpAddr::V6(Ipv6Addr::from(o))
                } else {
                    IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                }
            })
            .collect();
        let (interval_cs, auth) = match version {
            Version::V2 => {
                let auth = match bytes[4] {
                    0 => Auth::None,
                    1 => {
                        let mut p = [0u8; 8];
                        p.copy_from_slice(&msg[need - V2_AUTH..need]);
                        Auth::Password(p)
                    }
                    t => return Err(DecodeError::AuthType(t)),
                };
                (u16::from(bytes[5]) * 100, auth)
            }
            Version::V3 => (
                u16::from_be_bytes([bytes[4], bytes[5]]) & 0x0fff,
                Auth::None,
            ),
        };
        Ok(Advert {
            version,
            vrid,
            priority,
            interval_cs,
            addrs,
            auth,
        })
    }
}

/// Split a raw IPv4 datagram as a raw socket reads it: (source,
/// destination, TTL, payload). `None` for anything that is not a whole
/// IPv4 header; a total length the datagram does not hold is ignored (the
/// payload ends where the datagram does).
pub fn split_ipv4(pkt: &[u8]) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr, u8, &[u8])> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let end = if (ihl..=pkt.len()).contains(&total) {
        total
    } else {
        pkt.len()
    };
    let src = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = std::net::Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    Some((src, dst, pkt[8], &pkt[ihl..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_datagrams_split_and_short_headers_are_refused() {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 255, 112, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (s, d, ttl, body) = split_ipv4(&p).unwrap();
        assert_eq!(
            (s, d, ttl),
            (
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                255
            )
        );
        assert_eq!(body, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(split_ipv4(&p[..10]).is_none());
        assert!(split_ipv4(&[0x41; 30]).is_none(), "IHL below 5");
        assert!(split_ipv4(&[0x65; 30]).is_none(), "not version 4");
        assert!(split_ipv4(&[]).is_none());
        // A total length past the datagram: the payload is what is there.
        p[3] = 200;
        assert_eq!(split_ipv4(&p).unwrap().3.len(), 8);
        for cut in 0..p.len() {
            let _ = split_ipv4(&p[..cut]);
        }
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v3_ipv4_golden_bytes() {
        let a = Advert {
            version: Version::V3,
            vrid: 51,
            priority: 150,
            interval_cs: 100,
            addrs: vec![v4("10.200.1.100")],
            auth: Auth::None,
        };
        let (src, dst) = (v4("10.200.1.2"), v4("224.0.0.18"));
        let b = a.encode(src, dst).unwrap();
        // Worked by hand: 0x31 (v3, advert), vrid 51, prio 150, 1 address,
        // interval 100 cs, checksum over the pseudo-header and message.
        assert_eq!(&b[..6], &[0x31, 51, 150, 1, 0x00, 0x64]);
        assert_eq!(&b[8..], &[10, 200, 1, 100]);
        let sum = {
            // One's-complement sum of 16-bit words, folded.
            let words: [u32; 10] = [
                0x0ac8, 0x0102, // src
                0xe000, 0x0012, // dst
                0x0070, 0x000c, // zero, proto 112, length 12
                0x3133, 0x9601, 0x0064, // header without checksum
                0x0ac8,
            ];
            let mut s: u32 = words.iter().sum::<u32>() + 0x0164;
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), sum);
        assert_eq!(Advert::decode(&b, src, dst), Ok(a));
    }

    /// Captured from keepalived 2.2.7 (unicast 10.210.0.1 → 10.210.0.2,
    /// vrid 51, priority 150, VIP 10.210.0.100): version 3 with
    /// `advert_int 0.5`, and version 2 with `auth_type PASS`,
    /// `auth_pass secret`.
    #[test]
    fn keepalived_golden_bytes() {
        let (src, dst) = (v4("10.210.0.1"), v4("10.210.0.2"));
        let v3 = [
            0x31, 0x33, 0x96, 0x01, 0x00, 0x32, 0x17, 0x40, 0x0a, 0xd2, 0x00, 0x64,
        ];
        let a3 = Advert {
            version: Version::V3,
            vrid: 51,
            priority: 150,
            interval_cs: 50,
            addrs: vec![v4("10.210.0.100")],
            auth: Auth::None,
        };
        assert_eq!(Advert::decode(&v3, src, dst), Ok(a3.clone()));
        assert_eq!(a3.encode(src, dst).unwrap(), v3);
        let v2 = [
            0x21, 0x33, 0x96, 0x01, 0x01, 0x01, 0x00, 0x48, 0x0a, 0xd2, 0x00, 0x64, b's', b'e',
            b'c', b'r', b'e', b't', 0, 0,
        ];
        let a2 = Advert {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            interval_cs: 100,
            addrs: vec![v4("10.210.0.100")],
            auth: Auth::Password(*b"secret\0\0"),
        };
        assert_eq!(Advert::decode(&v2, src, dst), Ok(a2.clone()));
        assert_eq!(a2.encode(src, dst).unwrap(), v2);
    }

    #[test]
    fn v2_with_password_and_v3_over_ipv6() {
        let a = Advert {
            version: Version::V2,
            vrid: 7,
            priority: 100,
            interval_cs: 100,
            addrs: vec![v4("192.0.2.1"), v4("192.0.2.2")],
            auth: Auth::Password(*b"secret\0\0"),
        };
        let (src, dst) = (v4("192.0.2.10"), v4("224.0.0.18"));
        let b = a.encode(src, dst).unwrap();
        assert_eq!(b.len(), 8 + 8 + 8);
        assert_eq!(&b[..6], &[0x21, 7, 100, 2, 1, 1]);
        assert_eq!(Advert::decode(&b, src, dst), Ok(a));
        let a6 = Advert {
            version: Version::V3,
            vrid: 9,
            priority: 0,
            interval_cs: 35,
            addrs: vec!["2001:db8::100".parse().unwrap()],
            auth: Auth::None,
        };
        let (s6, d6): (IpAddr, IpAddr) = ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap());
        let b = a6.encode(s6, d6).unwrap();
        assert_eq!(b.len(), 8 + 16);
        assert_eq!(Advert::decode(&b, s6, d6), Ok(a6.clone()));
        // The pseudo-header is covered: another source fails the checksum.
        assert_eq!(
            Advert::decode(&b, "fe80::2".parse().unwrap(), d6),
            Err(DecodeError::Checksum)
        );
        assert_eq!(a6.encode(src, dst), Err(EncodeError::Family));
    }

    #[test]
    fn malformed_packets_are_errors() {
        let (src, dst) = (v4("10.0.0.1"), v4("224.0.0.18"));
        assert_eq!(
            Advert::decode(&[0x31, 1, 100], src, dst),
            Err(DecodeError::Truncated { got: 3, need: 8 })
        );
        assert_eq!(
            Advert::decode(&[0x41, 1, 100, 0, 0, 100, 0, 0], src, dst),
            Err(DecodeError::Version(4))
        );
        assert_eq!(
            Advert::decode(&[0x32, 1, 100, 0, 0, 100, 0, 0], src, dst),
            Err(DecodeError::Type(2))
        );
        assert_eq!(
            Advert::decode(&[0x31, 1, 100, 3, 0, 100, 0, 0, 1, 2, 3, 4], src, dst),
            Err(DecodeError::Truncated { got: 12, need: 20 })
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80), v6 in proptest::bool::ANY) {
            let (s, d): (IpAddr, IpAddr) = if v6 {
                ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
            } else {
                ("10.0.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
            };
            let _ = Advert::decode(&bytes, s, d);
        }

        #[test]
        fn round_trip(vrid in 1u8.., priority in proptest::num::u8::ANY, interval in 1u16..0x0fff, n in 0usize..8, v2 in proptest::bool::ANY) {
            let addrs: Vec<IpAddr> = (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8))).collect();
            let a = Advert {
                version: if v2 { Version::V2 } else { Version::V3 },
                vrid,
                priority,
                interval_cs: if v2 { (interval % 255 + 1) * 100 } else { interval },
                addrs,
                auth: Auth::None,
            };
            let (s, d) = ("10.0.0.9".parse().unwrap(), "224.0.0.18".parse().unwrap());
            let b = a.encode(s, d).unwrap();
            proptest::prop_assert_eq!(Advert::decode(&b, s, d), Ok(a));
        }
    }
}
