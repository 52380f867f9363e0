//! IPVS connection synchronisation messages: the wire format the kernel's
//! sync daemon (`ip_vs_sync.c`) sends to UDP 224.0.0.81:8848, so that
//! Fulcrum and kernel IPVS directors can stand in one cluster. Sans-IO:
//! bytes in, connections out, and back; no sockets, no clocks.
//!
//! Version 1 is written and read; version 0 (the kernel's
//! `sync_version = 0`) is read, and written only for tests of readers.
//! All multi-byte fields are big-endian.
//!
//! ```text
//! Message, version 1: an 8-byte header, then entries, each starting on a
//! 4-byte boundary (zero padding between them, none after the last).
//!
//!  0               1               2               3
//! +---------------+---------------+---------------+---------------+
//! | reserved = 0  |    syncid     |       size (whole message)    |
//! +---------------+---------------+---------------+---------------+
//! |   nr_conns    |  version = 1  |          spare = 0            |
//! +---------------+---------------+---------------+---------------+
//!
//! Entry, version 1 (IPv4: 36 bytes before options; IPv6: 72):
//!
//! +---------------+---------------+---------------+---------------+
//! |  type (bit 0: |   protocol    | ver (4 bits) = 0 | entry size |
//! |   IPv6)       |               |    (12 bits, with options)    |
//! +---------------+---------------+---------------+---------------+
//! |                     flags (IP_VS_CONN_F_*)                    |
//! +---------------+---------------+---------------+---------------+
//! |            state              |            cport              |
//! +---------------+---------------+---------------+---------------+
//! |            vport              |            dport              |
//! +---------------+---------------+---------------+---------------+
//! |                            fwmark                             |
//! +---------------+---------------+---------------+---------------+
//! |                       timeout (seconds)                       |
//! +---------------+---------------+---------------+---------------+
//! |      caddr, vaddr, daddr: 4 bytes each (IPv6: 16 each)        |
//! +---------------+---------------+---------------+---------------+
//! | options: type, len, data ... (type | 0x40: may be ignored)    |
//! +---------------+---------------+---------------+---------------+
//!
//! Message, version 0: a 4-byte header (nr_conns, syncid, size), then
//! 24-byte IPv4 entries: reserved, protocol, cport, vport, dport, caddr,
//! vaddr, daddr, flags (16 bits), state (16 bits); with a sequence flag,
//! 24 more bytes of sequence data.
//! ```
//!
//! Reading follows the kernel's backup (`ip_vs_process_message`): a
//! message whose `size` is not its length, or an entry running past the
//! message, stops the reading (the entries before it stand); an entry with
//! an unknown mandatory option, an unknown protocol or a state out of range
//! is skipped and the rest read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's default multicast group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The kernel's default UDP port (sync thread 0).
pub const PORT: u16 = 8848;
/// The longest message a master sends by default (1500 less the IPv4
/// and UDP headers).
pub const DEFAULT_MAXLEN: usize = 1472;
/// The most entries a message can count (`nr_conns` is one byte).
pub const MAX_CONNS: usize = 255;

/// `IP_VS_CONN_F_*`, the flags an entry carries.
pub mod flags {
    /// The forwarding method's bits.
    pub const FWD_MASK: u32 = 0x0007;
    /// Entry created by sync (set by a receiver).
    pub const SYNC: u32 = 0x0020;
    /// No output packets (direct routing, tunnelling).
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established.
    pub const INACTIVE: u32 = 0x0100;
    /// Output sequence adjustment.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Input sequence adjustment.
    pub const IN_SEQ: u32 = 0x0400;
    /// Either sequence adjustment: sequence data follow.
    pub const SEQ_MASK: u32 = 0x0600;
    /// Client port not set yet (templates of port-zero services).
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling (never synced).
    pub const ONE_PACKET: u32 = 0x2000;
}

/// Option types of a version-1 entry.
mod opt {
    pub(crate) const SEQ_DATA: u8 = 1;
    pub(crate) const PE_DATA: u8 = 2;
    pub(crate) const PE_NAME: u8 = 3;
    /// ORed into a type: the receiver may ignore the option.
    pub(crate) const PARAM: u8 = 1 << 6;
}

/// The longest persistence-engine data (`IP_VS_PEDATA_MAXLEN`).
pub const PE_DATA_MAX: usize = 255;
/// The longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 16;

const V1_HEADER: usize = 8;
const V0_HEADER: usize = 4;
const V4_ENTRY: usize = 36;
const V6_ENTRY: usize = 72;
const V0_ENTRY: usize = 24;
const SEQ_LEN: usize = 24;
/// An entry's length lives in 12 bits.
const SIZE_MASK: u16 = 0x0fff;

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seq {
    /// Where the adjustment starts.
    pub init_seq: u32,
    /// The delta from then on.
    pub delta: u32,
    /// The delta before it.
    pub previous_delta: u32,
}

/// Both directions' sequence adjustments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqData {
    /// Client to real server.
    pub in_seq: Seq,
    /// Real server to client.
    pub out_seq: Seq,
}

/// A persistence engine's name and data (e.g. `sip` and a Call-ID).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeData {
    /// The engine's name (at most [`PE_NAME_MAX`] bytes).
    pub name: Vec<u8>,
    /// Its data for this connection (at most [`PE_DATA_MAX`] bytes).
    pub data: Vec<u8>,
}

/// A connection (or persistence template) as a sync message carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// IP protocol number (6, 17, 132; any for templates).
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` ([`flags`]).
    pub flags: u32,
    /// The state's index (TCP: 0–10, IPVS's order; UDP: 0; SCTP: 0–12;
    /// templates: 0).
    pub state: u16,
    /// The client's address and port.
    pub client: (IpAddr, u16),
    /// The virtual address and port.
    pub virt: (IpAddr, u16),
    /// The real server's address and port.
    pub dest: (IpAddr, u16),
    /// The firewall mark of a fwmark service, else 0.
    pub fwmark: u32,
    /// The timeout in seconds (version 1); `None` from version 0, where
    /// the receiver applies its own.
    pub timeout: Option<u32>,
    /// Sequence adjustments (with a sequence flag).
    pub seq: Option<SeqData>,
    /// Persistence-engine name and data.
    pub pe: Option<PeData>,
}

impl Conn {
    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    fn is_v6(&self) -> bool {
        self.client.0.is_ipv6()
    }
}

/// Which version a message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The kernel's `sync_version = 0` (IPv4 only, no timeouts).
    V0,
    /// The kernel's default since 2.6.39.
    V1,
}

/// Why an entry was skipped (the rest of the message is read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// An option the receiver must understand and does not.
    #[error("unknown mandatory option {0}")]
    UnknownOption(u8),
    /// A protocol IPVS does not balance.
    #[error("unsupported protocol {0}")]
    Protocol(u8),
    /// A state beyond the protocol's.
    #[error("state {state} out of range for protocol {protocol}")]
    State {
        /// The protocol.
        protocol: u8,
        /// The state carried.
        state: u16,
    },
}

/// Why reading a message stopped (the entries before stand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    /// Shorter than a header.
    #[error("{0} bytes: shorter than a header")]
    Short(usize),
    /// The header's size is not the message's length.
    #[error("the header says {said} bytes, the message has {len}")]
    SizeMismatch {
        /// The header's `size`.
        said: usize,
        /// The bytes received.
        len: usize,
    },
    /// Entry number `at` (from 0) runs past the message's end.
    #[error("entry {at} runs past the end")]
    Truncated {
        /// The entry's number.
        at: usize,
    },
    /// Entry `at` has a version other than 0.
    #[error("entry {at} has version {version}")]
    EntryVersion {
        /// The entry's number.
        at: usize,
        /// Its version.
        version: u16,
    },
    /// Entry `at`'s options are malformed (a zero or overlong length, a
    /// repeated option, a wrong size).
    #[error("entry {at}: malformed options")]
    Options {
        /// The entry's number.
        at: usize,
    },
}

/// A message read: the connections it carried, and what was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The sync id of the sender.
    pub syncid: u8,
    /// Its version.
    pub version: Version,
    /// The entries `nr_conns` announced.
    pub announced: usize,
    /// The connections read, in order.
    pub conns: Vec<Conn>,
    /// Entries skipped, with why.
    pub skipped: Vec<Skipped>,
    /// Why reading stopped early, if it did.
    pub stopped: Option<Stopped>,
}

/// Why connections cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// One entry carries one address family for all three addresses.
    #[error("{0:?} mixes IPv4 and IPv6 addresses, which one sync entry cannot carry")]
    MixedFamilies(Box<Conn>),
    /// Too long for one message of `maxlen` bytes.
    #[error("an entry of {len} bytes does not fit a message of {maxlen}")]
    TooLong {
        /// The entry's length.
        len: usize,
        /// The message's limit.
        maxlen: usize,
    },
    /// Persistence-engine name or data too long.
    #[error("persistence-engine name or data too long (name at most 16 bytes, data 255)")]
    PeTooLong,
    /// Version 0 carries IPv4, without templates' timeouts or PE data.
    #[error("version 0 carries only IPv4 connections without persistence-engine data")]
    NotV0,
}

/// How many states each protocol has (`pp->num_states`); `None` for a
/// protocol IPVS does not balance.
pub fn states_of(protocol: u8) -> Option<u16> {
    match protocol {
        6 => Some(11),
        17 => Some(1),
        132 => Some(13),
        _ => None,
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn addr(b: &[u8], at: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
    }
}

fn seq_of(b: &[u8]) -> SeqData {
    let s = |at| Seq {
        init_seq: be32(b, at),
        delta: be32(b, at + 4),
        previous_delta: be32(b, at + 8),
    };
    SeqData {
        in_seq: s(0),
        out_seq: s(12),
    }
}

/// The protocol and state checks of the kernel's backup.
fn check(c: &Conn) -> Result<(), Skipped> {
    if c.is_template() {
        if c.state > 0 {
            return Err(Skipped::State {
                protocol: c.protocol,
                state: c.state,
            });
        }
        return Ok(());
    }
    let n = states_of(c.protocol).ok_or(Skipped::Protocol(c.protocol))?;
    if c.state >= n {
        return Err(Skipped::State {
            protocol: c.protocol,
            state: c.state,
        });
    }
    Ok(())
}

/// Read one message (a UDP payload). Never panics, whatever the bytes.
///
/// # Errors
/// A message too short for a header, or whose header's size is not its
/// length: nothing in it is read.
pub fn decode(buf: &[u8]) -> Result<Decoded, Stopped> {
    if buf.len() < V0_HEADER {
        return Err(Stopped::Short(buf.len()));
    }
    let v1 = buf.len() >= V1_HEADER && buf[0] == 0 && buf[5] == 1 && be16(buf, 6) == 0;
    let said = usize::from(be16(buf, 2));
    if said != buf.len() {
        return Err(Stopped::SizeMismatch {
            said,
            len: buf.len(),
        });
    }
    if v1 {
        Ok(decode_v1(buf))
    } else {
        Ok(decode_v0(buf))
    }
}

fn decode_v1(buf: &[u8]) -> Decoded {
    let mut d = Decoded {
        syncid: buf[1],
        version: Version::V1,
        announced: usize::from(buf[4]),
        conns: Vec::new(),
        skipped: Vec::new(),
        stopped: None,
    };
    let mut p = V1_HEADER;
    for at in 0..d.announced {
        // Each entry starts on a 4-byte boundary.
        p = (p + 3) & !3;
        if p + 4 > buf.len() {
            d.stopped = Some(Stopped::Truncated { at });
            break;
        }
        let ver_size = be16(buf, p + 2);
        let size = usize::from(ver_size & SIZE_MASK);
        let end = p + size;
        if end > buf.len() {
            d.stopped = Some(Stopped::Truncated { at });
            break;
        }
        if ver_size >> 12 != 0 {
            d.stopped = Some(Stopped::EntryVersion {
                at,
                version: ver_size >> 12,
            });
            break;
        }
        match entry_v1(&buf[p..end]) {
            Ok(Ok(c)) => d.conns.push(c),
            Ok(Err(why)) => d.skipped.push(why),
            Err(()) => {
                d.stopped = Some(if size < V4_ENTRY {
                    Stopped::Truncated { at }
                } else {
                    Stopped::Options { at }
                });
                break;
            }
        }
        p = end;
    }
    d
}

/// One version-1 entry (exactly its `size` bytes): the connection, or why
/// it is skipped; `Err(())` stops the message.
fn entry_v1(e: &[u8]) -> Result<Result<Conn, Skipped>, ()> {
    if e.len() < V4_ENTRY {
        return Err(());
    }
    let v6 = e[0] & 1 != 0;
    let fixed = if v6 { V6_ENTRY } else { V4_ENTRY };
    if e.len() < fixed {
        return Err(());
    }
    let a = if v6 { 16 } else { 4 };
    let mut c = Conn {
        protocol: e[1],
        flags: be32(e, 4),
        state: be16(e, 8),
        client: (addr(e, 24, v6), be16(e, 10)),
        virt: (addr(e, 24 + a, v6), be16(e, 12)),
        dest: (addr(e, 24 + 2 * a, v6), be16(e, 14)),
        fwmark: be32(e, 16),
        timeout: Some(be32(e, 20)),
        seq: None,
        pe: None,
    };
    let mut p = fixed;
    let (mut name, mut data): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let mut unknown = None;
    while p < e.len() {
        if p + 2 > e.len() {
            return Err(());
        }
        let (ty, len) = (e[p], usize::from(e[p + 1]));
        p += 2;
        if len == 0 || p + len > e.len() {
            return Err(());
        }
        let v = &e[p..p + len];
        match ty & !opt::PARAM {
            opt::SEQ_DATA => {
                if c.seq.is_some() || len != SEQ_LEN {
                    return Err(());
                }
                c.seq = Some(seq_of(v));
            }
            opt::PE_DATA => {
                if data.is_some() || len > PE_DATA_MAX {
                    return Err(());
                }
                data = Some(v.to_vec());
            }
            opt::PE_NAME => {
                if name.is_some() || len > PE_NAME_MAX {
                    return Err(());
                }
                name = Some(v.to_vec());
            }
            other if ty & opt::PARAM == 0 => {
                unknown.get_or_insert(other);
            }
            _ => {}
        }
        p += len;
    }
    if let Some(ty) = unknown {
        return Ok(Err(Skipped::UnknownOption(ty)));
    }
    if name.is_some() || data.is_some() {
        c.pe = Some(PeData {
            name: name.unwrap_or_default(),
            data: data.unwrap_or_default(),
        });
    }
    Ok(check(&c).map(|()| c))
}

fn decode_v0(buf: &[u8]) -> Decoded {
    let mut d = Decoded {
        syncid: buf[1],
        version: Version::V0,
        announced: usize::from(buf[0]),
        conns: Vec::new(),
        skipped: Vec::new(),
        stopped: None,
    };
    let mut p = V0_HEADER;
    for at in 0..d.announced {
        if p + V0_ENTRY > buf.len() {
            d.stopped = Some(Stopped::Truncated { at });
            break;
        }
        let e = &buf[p..p + V0_ENTRY];
        let fl = u32::from(be16(e, 20));
        let mut c = Conn {
            protocol: e[1],
            flags: fl,
            state: be16(e, 22),
            client: (addr(e, 8, false), be16(e, 2)),
            virt: (addr(e, 12, false), be16(e, 4)),
            dest: (addr(e, 16, false), be16(e, 6)),
            fwmark: 0,
            timeout: None,
            seq: None,
            pe: None,
        };
        p += V0_ENTRY;
        if fl & flags::SEQ_MASK != 0 {
            if p + SEQ_LEN > buf.len() {
                d.stopped = Some(Stopped::Truncated { at });
                break;
            }
            c.seq = Some(seq_of(&buf[p..p + SEQ_LEN]));
            p += SEQ_LEN;
        }
        match check(&c) {
            Ok(()) => d.conns.push(c),
            Err(why) => d.skipped.push(why),
        }
    }
    d
}

fn put_addr(out: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(v) => out.extend_from_slice(&v.octets()),
        IpAddr::V6(v) => out.extend_from_slice(&v.octets()),
    }
}

fn put_seq(out: &mut Vec<u8>, s: &SeqData) {
    for q in [s.in_seq, s.out_seq] {
        out.extend_from_slice(&q.init_seq.to_be_bytes());
        out.extend_from_slice(&q.delta.to_be_bytes());
        out.extend_from_slice(&q.previous_delta.to_be_bytes());
    }
}

/// One version-1 entry, unpadded.
///
/// # Errors
/// Mixed address families, or persistence-engine strings too long.
pub fn encode_entry(c: &Conn) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(V6_ENTRY + 28);
    encode_entry_into(&mut out, c)?;
    Ok(out)
}

/// One version-1 entry, unpadded, appended to `buf` (nothing appended on
/// an error).
///
/// # Errors
/// Mixed address families, or persistence-engine strings too long.
pub fn encode_entry_into(buf: &mut Vec<u8>, c: &Conn) -> Result<(), EncodeError> {
    let v6 = c.is_v6();
    if c.virt.0.is_ipv6() != v6 || c.dest.0.is_ipv6() != v6 {
        return Err(EncodeError::MixedFamilies(Box::new(c.clone())));
    }
    if let Some(pe) = &c.pe
        && (pe.name.len() > PE_NAME_MAX || pe.data.len() > PE_DATA_MAX)
    {
        return Err(EncodeError::PeTooLong);
    }
    let start = buf.len();
    let out = buf;
    out.push(u8::from(v6));
    out.push(c.protocol);
    out.extend_from_slice(&[0, 0]); // size, below
    // The flags as given: in version 1 the option, not the flags, says
    // whether sequence data follow (the kernel reads it so), and what was
    // read writes back the same.
    out.extend_from_slice(&c.flags.to_be_bytes());
    out.extend_from_slice(&c.state.to_be_bytes());
    out.extend_from_slice(&c.client.1.to_be_bytes());
    out.extend_from_slice(&c.virt.1.to_be_bytes());
    out.extend_from_slice(&c.dest.1.to_be_bytes());
    out.extend_from_slice(&c.fwmark.to_be_bytes());
    out.extend_from_slice(&c.timeout.unwrap_or(0).to_be_bytes());
    put_addr(out, &c.client.0);
    put_addr(out, &c.virt.0);
    put_addr(out, &c.dest.0);
    if let Some(s) = &c.seq {
        out.extend_from_slice(&[opt::SEQ_DATA, SEQ_LEN as u8]);
        put_seq(out, s);
    }
    if let Some(pe) = &c.pe {
        // The kernel writes the data first, then the name; an empty one is
        // left out (a zero length is malformed).
        for (ty, v) in [(opt::PE_DATA, &pe.data), (opt::PE_NAME, &pe.name)] {
            if !v.is_empty() {
                out.push(ty);
                out.push(v.len() as u8);
                out.extend_from_slice(v);
            }
        }
    }
    let size = (out.len() - start) as u16 & SIZE_MASK;
    out[start + 2..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Pack connections into version-1 messages of at most `maxlen` bytes and
/// [`MAX_CONNS`] entries each, in order.
///
/// # Errors
/// An entry that cannot be written, or is longer than a message can hold.
pub fn encode(syncid: u8, conns: &[Conn], maxlen: usize) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut p = Packer::new(syncid, maxlen);
    let mut out = Vec::new();
    for c in conns {
        out.extend(p.push(c)?);
    }
    out.extend(p.finish());
    Ok(out)
}

/// Version-1 messages filled one entry at a time, as a master's send
/// buffer fills: [`Packer::push`] hands back the message that the entry
/// no longer fits in, [`Packer::finish`] the partly filled one.
#[derive(Debug, Clone)]
pub struct Packer {
    syncid: u8,
    maxlen: usize,
    msg: Vec<u8>,
    n: usize,
}

impl Packer {
    /// Messages of sync id `syncid` and at most `maxlen` bytes (at most
    /// 65,535).
    pub fn new(syncid: u8, maxlen: usize) -> Packer {
        Packer {
            syncid,
            maxlen: maxlen.min(usize::from(u16::MAX)),
            msg: Vec::new(),
            n: 0,
        }
    }

    /// Entries in the message being filled.
    pub fn pending(&self) -> usize {
        self.n
    }

    /// Add an entry; returns the message it closed, if it did not fit.
    ///
    /// # Errors
    /// An entry that cannot be written, or is longer than a message can
    /// hold (nothing is added).
    pub fn push(&mut self, c: &Conn) -> Result<Option<Vec<u8>>, EncodeError> {
        if self.n == 0 {
            self.msg.clear();
            self.msg
                .extend_from_slice(&[0, self.syncid, 0, 0, 0, 1, 0, 0]);
        }
        // Written in place, after the padding; moved to a message of its
        // own when this one cannot take it.
        let end = self.msg.len();
        self.msg.resize((end + 3) & !3, 0);
        let at = self.msg.len();
        if let Err(e) = encode_entry_into(&mut self.msg, c) {
            self.msg.truncate(end);
            return Err(e);
        }
        let len = self.msg.len() - at;
        if V1_HEADER + len > self.maxlen {
            self.msg.truncate(end);
            return Err(EncodeError::TooLong {
                len,
                maxlen: self.maxlen,
            });
        }
        if self.n == MAX_CONNS || (self.n > 0 && self.msg.len() > self.maxlen) {
            let entry = self.msg[at..].to_vec();
            self.msg.truncate(end);
            let closed = self.finish();
            self.msg.clear();
            self.msg
                .extend_from_slice(&[0, self.syncid, 0, 0, 0, 1, 0, 0]);
            self.msg.extend_from_slice(&entry);
            self.n = 1;
            return Ok(closed);
        }
        self.n += 1;
        Ok(None)
    }

    /// The message being filled, closed; `None` when it has no entry.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.n == 0 {
            return None;
        }
        let size = self.msg.len() as u16;
        self.msg[2..4].copy_from_slice(&size.to_be_bytes());
        self.msg[4] = self.n as u8;
        self.n = 0;
        Some(std::mem::take(&mut self.msg))
    }
}

/// One version-0 message (for tests of readers): IPv4 connections without
/// persistence-engine data, at most [`MAX_CONNS`].
///
/// # Errors
/// What version 0 cannot carry.
pub fn encode_v0(syncid: u8, conns: &[Conn]) -> Result<Vec<u8>, EncodeError> {
    if conns.len() > MAX_CONNS {
        return Err(EncodeError::TooLong {
            len: conns.len(),
            maxlen: MAX_CONNS,
        });
    }
    let mut out = vec![conns.len() as u8, syncid, 0, 0];
    for c in conns {
        let all_v4 = [c.client.0, c.virt.0, c.dest.0].iter().all(IpAddr::is_ipv4);
        if !all_v4 || c.pe.is_some() || c.flags > 0xffff {
            return Err(EncodeError::NotV0);
        }
        out.push(0);
        out.push(c.protocol);
        out.extend_from_slice(&c.client.1.to_be_bytes());
        out.extend_from_slice(&c.virt.1.to_be_bytes());
        out.extend_from_slice(&c.dest.1.to_be_bytes());
        put_addr(&mut out, &c.client.0);
        put_addr(&mut out, &c.virt.0);
        put_addr(&mut out, &c.dest.0);
        let mut fl = c.flags & !flags::SEQ_MASK;
        if c.seq.is_some() {
            fl |= if c.flags & flags::SEQ_MASK == 0 {
                flags::SEQ_MASK
            } else {
                c.flags & flags::SEQ_MASK
            };
        }
        out.extend_from_slice(&(fl as u16).to_be_bytes());
        out.extend_from_slice(&c.state.to_be_bytes());
        if let Some(s) = &c.seq {
            put_seq(&mut out, s);
        }
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            len: out.len(),
            maxlen: usize::from(u16::MAX),
        });
    }
    let size = out.len() as u16;
    out[2..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}

pub mod receive;
pub use receive::{group_or_default, port_or_default};
pub mod send;
