//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`), sent to a
//! real server before the client's bytes so it learns who the client is.
//!
//! Version 2 (binary), for TCP over IPv4:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  signature \r\n\r\n\0\r\nQUIT\n  (12 bytes)                    |
//! +---------------+---------------+-------------------------------+
//! | ver 2|cmd 1   | fam 1|proto 1 |   length of what follows (BE) |
//! +---------------+---------------+-------------------------------+
//! |  source address  |  destination address  | src port | dst port|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! IPv6 uses family 2 and 16-byte addresses (length 36).

use std::net::SocketAddr;

/// Which PROXY protocol version a real server expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// The text form: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary form.
    V2,
}

const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The header for a TCP connection from `client` to `virt` (the virtual
/// address it reached). Mixed families, which a proxy never sees, get v1's
/// `UNKNOWN` / v2's `LOCAL` command.
pub fn header(version: ProxyProtocol, client: SocketAddr, virt: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocol::V1 => match (client, virt) {
            (SocketAddr::V4(c), SocketAddr::V4(v)) => format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                c.ip(),
                v.ip(),
                c.port(),
                v.port()
            )
            .into_bytes(),
            (SocketAddr::V6(c), SocketAddr::V6(v)) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                c.ip(),
                v.ip(),
                c.port(),
                v.port()
            )
            .into_bytes(),
            _ => b"PROXY UNKNOWN\r\n".to_vec(),
        },
        ProxyProtocol::V2 => {
            let mut h = SIGNATURE.to_vec();
            match (client, virt) {
                (SocketAddr::V4(c), SocketAddr::V4(v)) => {
                    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
                    h.extend_from_slice(&c.ip().octets());
                    h.extend_from_slice(&v.ip().octets());
                    h.extend_from_slice(&c.port().to_be_bytes());
                    h.extend_from_slice(&v.port().to_be_bytes());
                }
                (SocketAddr::V6(c), SocketAddr::V6(v)) => {
                    h.extend_from_slice(&[0x21, 0x21, 0, 36]);
                    h.extend_from_slice(&c.ip().octets());
                    h.extend_from_slice(&v.ip().octets());
                    h.extend_from_slice(&c.port().to_be_bytes());
                    h.extend_from_slice(&v.port().to_be_bytes());
                }
                // LOCAL command, no address block.
                _ => h.extend_from_slice(&[0x20, 0x00, 0, 0]),
            }
            h
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_text() {
        let h = header(
            ProxyProtocol::V1,
            "192.168.0.1:56324".parse().unwrap(),
            "192.168.0.11:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let h = header(
            ProxyProtocol::V1,
            "[2001:db8::1]:1".parse().unwrap(),
            "[2001:db8::2]:2".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n");
    }

    #[test]
    fn v2_golden_bytes() {
        let h = header(
            ProxyProtocol::V2,
            "10.0.0.1:1234".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        assert_eq!(
            h,
            [
                0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54,
                0x0A, // signature
                0x21, 0x11, 0x00, 0x0C, // v2 PROXY, TCP over IPv4, 12 bytes
                10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xD2, 0x00, 0x50,
            ]
        );
        let h6 = header(
            ProxyProtocol::V2,
            "[::1]:1".parse().unwrap(),
            "[::2]:2".parse().unwrap(),
        );
        assert_eq!((h6.len(), h6[13], h6[15]), (16 + 36, 0x21, 36));
    }
}
