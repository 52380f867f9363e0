//! Authenticated adverts between Fulcrum directors (`auth_key_file`): the
//! VRRP advert followed by a trailer that carries a sequence number and an
//! HMAC-SHA256 over the IP addresses, the advert and the sequence number.
//! An advert whose MAC fails, or whose sequence number is not above the
//! last one accepted from its sender, is refused. The director keeps the
//! last accepted numbers across restarts ([`Authenticator::accepted`],
//! [`Authenticator::remember`]), so a recording made before a restart is
//! refused after it too.
//!
//! ```text
//! +----------------------+------+------------------+--------------------+
//! | VRRP advert (n)      | FLC1 | sequence (u64 BE) | HMAC-SHA256 (32)   |
//! +----------------------+------+------------------+--------------------+
//! ```
//!
//! Only Fulcrum understands the trailer: with a key configured, every
//! director of the virtual router must be a Fulcrum director.

use std::collections::HashMap;
use std::net::IpAddr;

use ring::hmac;

const MAGIC: &[u8; 4] = b"FLC1";
/// The bytes the trailer adds to a sealed message.
pub const TRAILER: usize = 4 + 8 + 32;

/// The wall clock in µs: where senders start (or keep) their sequence
/// numbers, so that a restarted one counts on upwards.
pub fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Why an authenticated advert is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No trailer: a director without the key (or keepalived).
    #[error("advert from {0} is not authenticated: is `auth_key_file` set on every director?")]
    Missing(IpAddr),
    /// The MAC does not match: another key, or a forged or altered advert.
    #[error("advert from {0} fails authentication: the directors' keys differ, or it was forged")]
    BadMac(IpAddr),
    /// A sequence number already seen: a replay.
    #[error("advert from {from} replays sequence {seq} (last accepted {last})")]
    Replay {
        /// The sender.
        from: IpAddr,
        /// Its sequence number.
        seq: u64,
        /// The last one accepted from it.
        last: u64,
    },
}

/// Seals our adverts and opens our peers'.
#[derive(Debug)]
pub struct Authenticator {
    key: hmac::Key,
    next: u64,
    last_seen: HashMap<IpAddr, u64>,
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl Authenticator {
    /// With a shared secret (the bytes of `auth_key_file`) and the first
    /// sequence number to send — the caller passes the wall-clock time in
    /// microseconds, so that a restarted director keeps counting upwards.
    pub fn new(secret: &[u8], first_seq: u64) -> Authenticator {
        Authenticator {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            next: first_seq,
            last_seen: HashMap::new(),
        }
    }

    /// The next sequence number this side will send.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The last sequence number accepted from each sender: what a restart
    /// must remember to keep refusing replays of what came before it.
    pub fn accepted(&self) -> impl Iterator<Item = (IpAddr, u64)> + '_ {
        self.last_seen.iter().map(|(a, s)| (*a, *s))
    }

    /// Take a sender's last accepted sequence number from an earlier run:
    /// adverts at or below it are refused as replays.
    pub fn remember(&mut self, from: IpAddr, seq: u64) {
        let last = self.last_seen.entry(from).or_insert(seq);
        *last = (*last).max(seq);
    }

    /// What the MAC covers.
    fn signed(src: IpAddr, dst: IpAddr, advert: &[u8], seq: u64) -> Vec<u8> {
        let mut m = addr_bytes(src);
        m.extend_from_slice(&addr_bytes(dst));
        m.extend_from_slice(advert);
        m.extend_from_slice(&seq.to_be_bytes());
        m
    }

    /// The advert with its trailer.
    pub fn seal(&mut self, src: IpAddr, dst: IpAddr, advert: &[u8]) -> Vec<u8> {
        let seq = self.next;
        self.next += 1;
        let tag = hmac::sign(&self.key, &Self::signed(src, dst, advert, seq));
        let mut out = Vec::with_capacity(advert.len() + TRAILER);
        out.extend_from_slice(advert);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Send no sequence number below `seq` from now on (a sender that
    /// keeps its numbers near the wall clock, so that receivers can refuse
    /// old ones).
    pub fn advance_to(&mut self, seq: u64) {
        self.next = self.next.max(seq);
    }

    /// The advert inside an authenticated packet from `src` to `dst`.
    ///
    /// # Errors
    /// No trailer, a failed MAC, or a replayed sequence number.
    pub fn open<'a>(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        packet: &'a [u8],
    ) -> Result<&'a [u8], AuthError> {
        self.open_with_seq(src, dst, packet).map(|(m, _)| m)
    }

    /// The same, with the sequence number the packet carried.
    ///
    /// # Errors
    /// No trailer, a failed MAC, or a replayed sequence number.
    pub fn open_with_seq<'a>(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        packet: &'a [u8],
    ) -> Result<(&'a [u8], u64), AuthError> {
        let Some(split) = packet.len().checked_sub(TRAILER) else {
            return Err(AuthError::Missing(src));
        };
        let (advert, trailer) = packet.split_at(split);
        if &trailer[..4] != MAGIC {
            return Err(AuthError::Missing(src));
        }
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&trailer[4..12]);
        let seq = u64::from_be_bytes(seq_bytes);
        // ring compares in constant time.
        if hmac::verify(
            &self.key,
            &Self::signed(src, dst, advert, seq),
            &trailer[12..],
        )
        .is_err()
        {
            return Err(AuthError::BadMac(src));
        }
        if let Some(&last) = self.last_seen.get(&src)
            && seq <= last
        {
            return Err(AuthError::Replay {
                from: src,
                seq,
                last,
            });
        }
        self.last_seen.insert(src, seq);
        Ok((advert, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_adverts_open_once_and_only_with_the_key() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut tx = Authenticator::new(b"correct horse battery staple", 1_000);
        let mut rx = Authenticator::new(b"correct horse battery staple", 0);
        let advert = [0x31, 51, 150, 1, 0, 100, 0x12, 0x34, 10, 0, 0, 100];
        let p1 = tx.seal(a, b, &advert);
        let p2 = tx.seal(a, b, &advert);
        assert_eq!(p1.len(), advert.len() + TRAILER);
        assert_eq!(rx.open(a, b, &p1), Ok(&advert[..]));
        assert_eq!(rx.open(a, b, &p2), Ok(&advert[..]));
        assert_eq!(
            rx.open(a, b, &p1),
            Err(AuthError::Replay {
                from: a,
                seq: 1000,
                last: 1001
            })
        );
        // Another key, an altered byte, another source, no trailer.
        let mut other = Authenticator::new(b"another key", 0);
        let p3 = tx.seal(a, b, &advert);
        assert_eq!(other.open(a, b, &p3), Err(AuthError::BadMac(a)));
        let mut bad = p3.clone();
        bad[2] = 255;
        assert_eq!(rx.open(a, b, &bad), Err(AuthError::BadMac(a)));
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(rx.open(c, b, &p3), Err(AuthError::BadMac(c)));
        assert_eq!(rx.open(a, b, &advert), Err(AuthError::Missing(a)));
        assert_eq!(rx.open(a, b, &p3), Ok(&advert[..]));
    }

    #[test]
    fn remembered_sequences_refuse_replays_after_a_restart() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut tx = Authenticator::new(b"correct horse battery staple", 5_000);
        let mut rx = Authenticator::new(b"correct horse battery staple", 0);
        let advert = [0x31, 51, 150, 1, 0, 100, 0x12, 0x34, 10, 0, 0, 100];
        let recorded: Vec<Vec<u8>> = (0..3).map(|_| tx.seal(a, b, &advert)).collect();
        for p in &recorded {
            rx.open(a, b, p).unwrap();
        }
        let saved: Vec<(IpAddr, u64)> = rx.accepted().collect();
        assert_eq!(saved, vec![(a, 5_002)]);
        // The receiver restarts: what it saved refuses the recording.
        let mut restarted = Authenticator::new(b"correct horse battery staple", 0);
        for (from, seq) in saved {
            restarted.remember(from, seq);
        }
        for p in &recorded {
            assert!(matches!(
                restarted.open(a, b, p),
                Err(AuthError::Replay { .. })
            ));
        }
        assert_eq!(
            restarted.open(a, b, &tx.seal(a, b, &advert)),
            Ok(&advert[..])
        );
        assert_eq!(tx.next_seq(), 5_004);
    }

    proptest::proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let mut rx = Authenticator::new(b"k", 0);
            let _ = rx.open("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), &bytes);
        }
    }
}
