//! The cluster channel between Fulcrum directors, beside VRRP: a hello on
//! UDP `heartbeat_port` every advert interval, saying what each director
//! sees — its state, priority, how many `ping_node`s it reaches, and the
//! `serial_no` of its configuration. Hellos feed ipfail (a director that
//! reaches fewer ping nodes than a live peer yields) and configuration sync
//! (a peer behind the active director's serial is sent the file).
//!
//! A hello, 16 bytes (then the [`crate::auth`] trailer when a key is set):
//!
//! ```text
//! +------+-------+----------+-------+-------+------------------+
//! | FLH1 | state | priority | reach | nodes | serial_no (u64)  |
//! +------+-------+----------+-------+-------+------------------+
//!    4       1        1         1       1          8 (BE)
//! ```

//! Configuration sync (`sync = 1`) goes over TCP on the same port: the
//! active director sends its lvs.cf to a peer whose hello shows an older
//! `serial_no`, and the peer answers (both sealed by [`crate::auth`]):
//!
//! ```text
//! push:  | FLS1 | serial_no (u64) | length (u32) | lvs.cf text (length) |
//! reply: | FLR1 | outcome (u8)    | length (u16) | message (length)     |
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

const HELLO_MAGIC: &[u8; 4] = b"FLH1";
/// A hello's length without authentication.
pub const HELLO_LEN: usize = 16;

/// A director's state as a hello carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not in the election.
    Init,
    /// Backup.
    Backup,
    /// Master (active).
    Master,
    /// A monitored link is down.
    Fault,
}

/// What one director says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Its state.
    pub state: PeerState,
    /// Its configured priority.
    pub priority: u8,
    /// Ping nodes it reaches.
    pub reach: u8,
    /// Ping nodes it has.
    pub nodes: u8,
    /// Its configuration's `serial_no` (0 when none).
    pub serial: u64,
}

/// Why bytes are not a hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// Too short or too long.
    #[error("a hello is {HELLO_LEN} bytes, not {0}")]
    Length(usize),
    /// Another protocol on the port.
    #[error("not a Fulcrum hello (no FLH1 magic)")]
    Magic,
    /// An unknown state byte.
    #[error("unknown state {0}")]
    State(u8),
}

impl Hello {
    /// The wire form.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..4].copy_from_slice(HELLO_MAGIC);
        b[4] = match self.state {
            PeerState::Init => 0,
            PeerState::Backup => 1,
            PeerState::Master => 2,
            PeerState::Fault => 3,
        };
        b[5] = self.priority;
        b[6] = self.reach;
        b[7] = self.nodes;
        b[8..].copy_from_slice(&self.serial.to_be_bytes());
        b
    }

    /// Read a hello; never panics.
    ///
    /// # Errors
    /// Wrong length, magic or state.
    pub fn decode(b: &[u8]) -> Result<Hello, HelloError> {
        let b: &[u8; HELLO_LEN] = b.try_into().map_err(|_| HelloError::Length(b.len()))?;
        if &b[..4] != HELLO_MAGIC {
            return Err(HelloError::Magic);
        }
        let state = match b[4] {
            0 => PeerState::Init,
            1 => PeerState::Backup,
            2 => PeerState::Master,
            3 => PeerState::Fault,
            s => return Err(HelloError::State(s)),
        };
        let mut serial = [0u8; 8];
        serial.copy_from_slice(&b[8..]);
        Ok(Hello {
            state,
            priority: b[5],
            reach: b[6],
            nodes: b[7],
            serial: u64::from_be_bytes(serial),
        })
    }
}

const PUSH_MAGIC: &[u8; 4] = b"FLS1";
const REPLY_MAGIC: &[u8; 4] = b"FLR1";
/// The largest lvs.cf that is synced.
pub const MAX_CONFIG: usize = 4 << 20;

/// An lvs.cf sent to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPush {
    /// Its `serial_no`.
    pub serial: u64,
    /// The file.
    pub text: String,
}

/// What the peer did with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Written and applied.
    Applied,
    /// Invalid: the peer keeps its configuration.
    Invalid,
    /// Not newer than the peer's: ignored.
    NotNewer,
    /// Valid, but the peer could not write or apply it.
    Failed,
}

/// The peer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReply {
    /// What happened.
    pub outcome: SyncOutcome,
    /// In words, for the log.
    pub message: String,
}

/// Why bytes are not a sync frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Shorter than its header or its stated length.
    #[error("truncated sync frame")]
    Truncated,
    /// Another protocol.
    #[error("not a Fulcrum sync frame")]
    Magic,
    /// Larger than [`MAX_CONFIG`].
    #[error("configuration of {0} bytes is larger than the 4 MiB sync limit")]
    TooLarge(usize),
    /// The text is not UTF-8.
    #[error("the configuration is not UTF-8 text")]
    NotText,
    /// An unknown outcome byte.
    #[error("unknown sync outcome {0}")]
    Outcome(u8),
}

impl SyncPush {
    /// The wire form.
    ///
    /// # Errors
    /// The text is larger than [`MAX_CONFIG`].
    pub fn encode(&self) -> Result<Vec<u8>, SyncError> {
        let n = self.text.len();
        if n > MAX_CONFIG {
            return Err(SyncError::TooLarge(n));
        }
        let mut b = Vec::with_capacity(16 + n);
        b.extend_from_slice(PUSH_MAGIC);
        b.extend_from_slice(&self.serial.to_be_bytes());
        b.extend_from_slice(
            &u32::try_from(n)
                .map_err(|_| SyncError::TooLarge(n))?
                .to_be_bytes(),
        );
        b.extend_from_slice(self.text.as_bytes());
        Ok(b)
    }

    /// How many bytes the whole frame has, once its 16-byte header is in
    /// (`None` before).
    pub fn frame_len(header: &[u8]) -> Option<usize> {
        let len: [u8; 4] = header.get(12..16)?.try_into().ok()?;
        Some(16 + usize::try_from(u32::from_be_bytes(len)).ok()?)
    }

    /// Read a push; never panics.
    ///
    /// # Errors
    /// Truncated, wrong magic, too large, or not UTF-8.
    pub fn decode(b: &[u8]) -> Result<SyncPush, SyncError> {
        if b.len() < 16 {
            return Err(SyncError::Truncated);
        }
        if &b[..4] != PUSH_MAGIC {
            return Err(SyncError::Magic);
        }
        let total = SyncPush::frame_len(b).ok_or(SyncError::Truncated)?;
        if total - 16 > MAX_CONFIG {
            return Err(SyncError::TooLarge(total - 16));
        }
        if b.len() != total {
            return Err(SyncError::Truncated);
        }
        let mut serial = [0u8; 8];
        serial.copy_from_slice(&b[4..12]);
        let text = std::str::from_utf8(&b[16..]).map_err(|_| SyncError::NotText)?;
        Ok(SyncPush {
            serial: u64::from_be_bytes(serial),
            text: text.to_string(),
        })
    }
}

impl SyncReply {
    /// The wire form (the message cut to 65,535 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut msg = self.message.as_bytes();
        if msg.len() > usize::from(u16::MAX) {
            msg = &msg[..usize::from(u16::MAX)];
        }
        let mut b = Vec::with_capacity(7 + msg.len());
        b.extend_from_slice(REPLY_MAGIC);
        b.push(match self.outcome {
            SyncOutcome::Applied => 0,
            SyncOutcome::Invalid => 1,
            SyncOutcome::NotNewer => 2,
            SyncOutcome::Failed => 3,
        });
        b.extend_from_slice(&u16::try_from(msg.len()).unwrap_or(u16::MAX).to_be_bytes());
        b.extend_from_slice(msg);
        b
    }

    /// Read a reply; never panics.
    ///
    /// # Errors
    /// Truncated, wrong magic or outcome.
    pub fn decode(b: &[u8]) -> Result<SyncReply, SyncError> {
        if b.len() < 7 {
            return Err(SyncError::Truncated);
        }
        if &b[..4] != REPLY_MAGIC {
            return Err(SyncError::Magic);
        }
        let outcome = match b[4] {
            0 => SyncOutcome::Applied,
            1 => SyncOutcome::Invalid,
            2 => SyncOutcome::NotNewer,
            3 => SyncOutcome::Failed,
            o => return Err(SyncError::Outcome(o)),
        };
        let n = usize::from(u16::from_be_bytes([b[5], b[6]]));
        if b.len() != 7 + n {
            return Err(SyncError::Truncated);
        }
        Ok(SyncReply {
            outcome,
            message: String::from_utf8_lossy(&b[7..]).into_owned(),
        })
    }
}

/// One ping node's reachability, with hysteresis: lost after `lose_after`
/// missed pings in a row, back after one reply.
#[derive(Debug, Clone)]
pub struct PingNodes {
    misses: Vec<u32>,
    lose_after: u32,
}

impl PingNodes {
    /// `n` nodes, all counted as reachable until they miss `lose_after`
    /// pings in a row.
    pub fn new(n: usize, lose_after: u32) -> PingNodes {
        PingNodes {
            misses: vec![0; n],
            lose_after: lose_after.max(1),
        }
    }

    /// A ping to node `i` was answered (or not).
    pub fn record(&mut self, i: usize, answered: bool) {
        if let Some(m) = self.misses.get_mut(i) {
            *m = if answered { 0 } else { m.saturating_add(1) };
        }
    }

    /// Whether node `i` counts as reachable.
    pub fn up(&self, i: usize) -> bool {
        self.misses.get(i).is_some_and(|m| *m < self.lose_after)
    }

    /// How many count as reachable.
    pub fn reach(&self) -> u8 {
        let n = (0..self.misses.len()).filter(|i| self.up(*i)).count();
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    /// How many there are.
    pub fn nodes(&self) -> u8 {
        u8::try_from(self.misses.len()).unwrap_or(u8::MAX)
    }
}

/// ipfail's decision, sans-IO: yield while a live peer (heard within
/// `alive_for`) has reached more ping nodes than we have, continuously for
/// `delay`; stop yielding as soon as none does.
#[derive(Debug, Clone)]
pub struct Ipfail {
    alive_for: Duration,
    delay: Duration,
    peers: HashMap<IpAddr, (Duration, u8)>,
    worse_since: Option<Duration>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// We reach as many ping nodes as every live peer.
    Fine,
    /// A peer has reached more for a while: yield to it.
    Yield {
        /// The peer.
        peer: IpAddr,
        /// What it reaches.
        theirs: u8,
        /// What we reach.
        ours: u8,
    },
}

impl Ipfail {
    /// Peers count as live for `alive_for` after a hello (the deadtime); a
    /// peer must be better for `delay` (two advert intervals, as ipfail's
    /// `delay_giveup`) before we yield.
    pub fn new(alive_for: Duration, delay: Duration) -> Ipfail {
        Ipfail {
            alive_for,
            delay,
            peers: HashMap::new(),
            worse_since: None,
        }
    }

    /// A peer's hello arrived.
    pub fn heard(&mut self, now: Duration, from: IpAddr, reach: u8) {
        self.peers.insert(from, (now, reach));
    }

    /// Decide, given what we reach now.
    pub fn judge(&mut self, now: Duration, ours: u8) -> Verdict {
        let better = self
            .peers
            .iter()
            .filter(|(_, (at, r))| now.saturating_sub(*at) <= self.alive_for && *r > ours)
            .max_by_key(|(_, (_, r))| *r)
            .map(|(p, (_, r))| (*p, *r));
        match better {
            None => {
                self.worse_since = None;
                Verdict::Fine
            }
            Some((peer, theirs)) => {
                let since = *self.worse_since.get_or_insert(now);
                if now.saturating_sub(since) >= self.delay {
                    Verdict::Yield { peer, theirs, ours }
                } else {
                    Verdict::Fine
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn hello_round_trips_and_refuses_other_bytes() {
        let h = Hello {
            state: PeerState::Master,
            priority: 200,
            reach: 2,
            nodes: 3,
            serial: 2026112201,
        };
        let b = h.encode();
        assert_eq!(&b[..8], b"FLH1\x02\xc8\x02\x03");
        assert_eq!(Hello::decode(&b), Ok(h));
        assert_eq!(Hello::decode(&b[..15]), Err(HelloError::Length(15)));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Hello::decode(&bad), Err(HelloError::Magic));
        bad = b;
        bad[4] = 9;
        assert_eq!(Hello::decode(&bad), Err(HelloError::State(9)));
    }

    #[test]
    fn one_lost_ping_does_not_count_three_do() {
        let mut p = PingNodes::new(2, 3);
        assert_eq!(p.reach(), 2);
        p.record(0, false);
        p.record(0, false);
        assert_eq!(p.reach(), 2, "two misses are not a loss");
        p.record(0, false);
        assert_eq!(p.reach(), 1);
        p.record(0, true);
        assert_eq!(p.reach(), 2, "one reply brings it back");
        p.record(7, false); // out of range: ignored
        assert_eq!(p.nodes(), 2);
    }

    #[test]
    fn yield_only_to_a_live_better_peer_after_the_delay() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let mut f = Ipfail::new(ms(500), ms(200));
        f.heard(ms(0), peer, 2);
        assert_eq!(f.judge(ms(0), 2), Verdict::Fine, "equal counts");
        f.heard(ms(100), peer, 2);
        assert_eq!(f.judge(ms(100), 1), Verdict::Fine, "not yet: delay");
        f.heard(ms(300), peer, 2);
        assert_eq!(
            f.judge(ms(300), 1),
            Verdict::Yield {
                peer,
                theirs: 2,
                ours: 1
            }
        );
        // Back to equal: fine at once.
        assert_eq!(f.judge(ms(350), 2), Verdict::Fine);
        // A better peer that went silent does not count.
        assert_eq!(f.judge(ms(1000), 1), Verdict::Fine);
        assert_eq!(f.judge(ms(1300), 1), Verdict::Fine);
    }

    #[test]
    fn sync_frames_round_trip_and_refuse_damage() {
        let p = SyncPush {
            serial: 7,
            text: "serial_no = 7\n".into(),
        };
        let b = p.encode().unwrap();
        assert_eq!(SyncPush::frame_len(&b[..16]), Some(b.len()));
        assert_eq!(SyncPush::decode(&b), Ok(p));
        assert_eq!(
            SyncPush::decode(&b[..b.len() - 1]),
            Err(SyncError::Truncated)
        );
        let mut bad = b.clone();
        bad[16] = 0xff;
        assert_eq!(SyncPush::decode(&bad), Err(SyncError::NotText));
        let mut huge = b[..16].to_vec();
        huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            SyncPush::decode(&huge),
            Err(SyncError::TooLarge(_))
        ));
        let r = SyncReply {
            outcome: SyncOutcome::Invalid,
            message: "2 errors".into(),
        };
        assert_eq!(SyncReply::decode(&r.encode()), Ok(r));
        assert_eq!(
            SyncReply::decode(b"FLR1\x09\x00\x00"),
            Err(SyncError::Outcome(9))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Hello::decode(&b);
            let _ = SyncPush::decode(&b);
            let _ = SyncReply::decode(&b);
            let _ = SyncPush::frame_len(&b);
        }
    }
}
