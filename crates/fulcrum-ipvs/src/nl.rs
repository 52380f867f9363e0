//! Netlink and generic-netlink framing: typed views over bytes that never
//! panic (RFC 3549; `include/uapi/linux/netlink.h`, `genetlink.h`).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      nlmsg_len (host order)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          nlmsg_type           |          nlmsg_flags          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           nlmsg_seq                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           nlmsg_pid                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      cmd      |    version    |           reserved            |  genlmsghdr
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        nla_len (incl. 4)      | N O |         nla_type        |  attributes,
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  each padded
//! |                     value ... (padded to 4)                   |  to 4 bytes
//! ```

/// `NLMSG_ERROR`: an error, or (error 0) an acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `GENL_ID_CTRL`: the generic-netlink controller family.
pub const GENL_ID_CTRL: u16 = 0x10;
/// `NLM_F_REQUEST`.
pub const F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: part of a multi-part reply.
pub const F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub const F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const F_DUMP: u16 = 0x300;
/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 0x8000;
/// The type bits of `nla_type`.
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;

/// Why bytes are not a netlink message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its header or than its length says.
    #[error("truncated netlink data: {0}")]
    Truncated(&'static str),
    /// A length field smaller than its own header.
    #[error("bad length in {0}")]
    BadLength(&'static str),
    /// An attribute of the wrong size for its type.
    #[error("attribute {ty} of {what} has {len} bytes")]
    BadAttribute {
        /// What it belongs to.
        what: &'static str,
        /// Its type.
        ty: u16,
        /// Its length.
        len: usize,
    },
    /// A value out of the range its field allows.
    #[error("{0}")]
    Invalid(String),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// One netlink message in a received buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`: a family id, or `NLMSG_ERROR`/`NLMSG_DONE`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// What follows the header.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// For `NLMSG_ERROR`: the error (negative errno; 0 acknowledges).
    ///
    /// # Errors
    /// A payload too short for the error code.
    pub fn error_code(&self) -> Result<i32, DecodeError> {
        u32_at(self.payload, 0)
            .map(|v| v as i32)
            .ok_or(DecodeError::Truncated("NLMSG_ERROR"))
    }

    /// A generic-netlink payload: its command and attributes.
    ///
    /// # Errors
    /// A payload shorter than the generic-netlink header.
    pub fn genl(&self) -> Result<(u8, &'a [u8]), DecodeError> {
        if self.payload.len() < GENL_HDRLEN {
            return Err(DecodeError::Truncated("genlmsghdr"));
        }
        Ok((self.payload[0], &self.payload[GENL_HDRLEN..]))
    }
}

/// The messages in a buffer received from a netlink socket.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Iterator over [`messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let (Some(len), Some(ty), Some(flags), Some(seq)) =
            (u32_at(b, 0), u16_at(b, 4), u16_at(b, 6), u32_at(b, 8))
        else {
            self.rest = &[];
            return Some(Err(DecodeError::Truncated("nlmsghdr")));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(DecodeError::BadLength("nlmsghdr")));
        }
        let Some(payload) = b.get(NLMSG_HDRLEN..len) else {
            self.rest = &[];
            return Some(Err(DecodeError::Truncated("netlink message")));
        };
        self.rest = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Message {
            ty,
            flags,
            seq,
            payload,
        }))
    }
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Its type (without the nested and byte-order bits).
    pub ty: u16,
    /// Its value.
    pub value: &'a [u8],
}

impl Attr<'_> {
    /// The value as a `u8`.
    ///
    /// # Errors
    /// A value of another size.
    pub fn u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        match self.value {
            [v] => Ok(*v),
            _ => Err(self.bad(what)),
        }
    }

    /// The value as a `u16` in host order.
    ///
    /// # Errors
    /// A value of another size.
    pub fn u16(&self, what: &'static str) -> Result<u16, DecodeError> {
        <[u8; 2]>::try_from(self.value)
            .map(u16::from_ne_bytes)
            .map_err(|_| self.bad(what))
    }

    /// The value as a `u16` in network order.
    ///
    /// # Errors
    /// A value of another size.
    pub fn be16(&self, what: &'static str) -> Result<u16, DecodeError> {
        <[u8; 2]>::try_from(self.value)
            .map(u16::from_be_bytes)
            .map_err(|_| self.bad(what))
    }

    /// The value as a `u32` in host order.
    ///
    /// # Errors
    /// A value of another size.
    pub fn u32(&self, what: &'static str) -> Result<u32, DecodeError> {
        <[u8; 4]>::try_from(self.value)
            .map(u32::from_ne_bytes)
            .map_err(|_| self.bad(what))
    }

    /// The value as a `u64` in host order.
    ///
    /// # Errors
    /// A value of another size.
    pub fn u64(&self, what: &'static str) -> Result<u64, DecodeError> {
        <[u8; 8]>::try_from(self.value)
            .map(u64::from_ne_bytes)
            .map_err(|_| self.bad(what))
    }

    /// The value as a NUL-terminated string.
    ///
    /// # Errors
    /// Bytes that are not UTF-8.
    pub fn string(&self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .value
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.value.len());
        std::str::from_utf8(&self.value[..end])
            .map(str::to_string)
            .map_err(|_| self.bad(what))
    }

    fn bad(&self, what: &'static str) -> DecodeError {
        DecodeError::BadAttribute {
            what,
            ty: self.ty,
            len: self.value.len(),
        }
    }
}

/// The attributes in a buffer.
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

/// Iterator over [`attrs`].
#[derive(Debug)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let (Some(len), Some(ty)) = (u16_at(b, 0), u16_at(b, 2)) else {
            self.rest = &[];
            return Some(Err(DecodeError::Truncated("attribute header")));
        };
        let len = usize::from(len);
        if len < 4 {
            self.rest = &[];
            return Some(Err(DecodeError::BadLength("attribute")));
        }
        let Some(value) = b.get(4..len) else {
            self.rest = &[];
            return Some(Err(DecodeError::Truncated("attribute")));
        };
        self.rest = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Attr {
            ty: ty & NLA_TYPE_MASK,
            value,
        }))
    }
}

/// Builds one netlink message with a generic-netlink header and
/// attributes.
#[derive(Debug)]
pub struct Builder {
    buf: Vec<u8>,
    /// Where each open nest starts.
    nests: Vec<usize>,
}

impl Builder {
    /// A message to `family` carrying `cmd` (version `version`).
    pub fn new(family: u16, flags: u16, seq: u32, cmd: u8, version: u8) -> Builder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&family.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        buf.extend_from_slice(&[cmd, version, 0, 0]);
        Builder {
            buf,
            nests: Vec::new(),
        }
    }

    /// An attribute with raw bytes.
    pub fn bytes(&mut self, ty: u16, value: &[u8]) -> &mut Builder {
        let len = 4 + value.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// A `u8` attribute.
    pub fn u8(&mut self, ty: u16, v: u8) -> &mut Builder {
        self.bytes(ty, &[v])
    }

    /// A `u16` attribute in host order.
    pub fn u16(&mut self, ty: u16, v: u16) -> &mut Builder {
        self.bytes(ty, &v.to_ne_bytes())
    }

    /// A `u16` attribute in network order.
    pub fn be16(&mut self, ty: u16, v: u16) -> &mut Builder {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// A `u32` attribute in host order.
    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Builder {
        self.bytes(ty, &v.to_ne_bytes())
    }

    /// A NUL-terminated string attribute.
    pub fn string(&mut self, ty: u16, v: &str) -> &mut Builder {
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        self.bytes(ty, &b)
    }

    /// Open a nested attribute; close it with [`end_nest`](Self::end_nest).
    pub fn nest(&mut self, ty: u16) -> &mut Builder {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Close the innermost nested attribute.
    pub fn end_nest(&mut self) -> &mut Builder {
        if let Some(at) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The message's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_messages_read_back() {
        let mut b = Builder::new(0x1c, F_REQUEST | F_ACK, 7, 1, 1);
        b.u16(1, 2)
            .nest(2)
            .string(3, "wlc")
            .be16(4, 80)
            .end_nest()
            .u32(5, 9);
        let bytes = b.finish();
        assert_eq!(bytes.len() % 4, 0);
        let msgs: Vec<_> = messages(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].ty, msgs[0].seq), (0x1c, 7));
        let (cmd, body) = msgs[0].genl().unwrap();
        assert_eq!(cmd, 1);
        let a: Vec<_> = attrs(body).collect::<Result<_, _>>().unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].u16("t").unwrap(), 2);
        let inner: Vec<_> = attrs(a[1].value).collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].string("t").unwrap(), "wlc");
        assert_eq!(inner[1].be16("t").unwrap(), 80);
        assert_eq!(a[2].u32("t").unwrap(), 9);
        assert!(a[2].u16("t").is_err(), "a u32 is not a u16");
    }

    #[test]
    fn short_and_lying_lengths_are_errors() {
        assert!(matches!(messages(&[1, 2, 3]).next(), Some(Err(_))));
        let mut m = Builder::new(1, 0, 0, 0, 0).finish();
        m[0] = 200; // longer than the buffer
        assert!(matches!(
            messages(&m).next(),
            Some(Err(DecodeError::Truncated(_)))
        ));
        m[0] = 3; // shorter than the header
        assert!(matches!(
            messages(&m).next(),
            Some(Err(DecodeError::BadLength(_)))
        ));
        assert!(matches!(
            attrs(&[2, 0, 1, 0]).next(),
            Some(Err(DecodeError::BadLength(_)))
        ));
        assert!(matches!(
            attrs(&[9, 0, 1, 0, 0]).next(),
            Some(Err(DecodeError::Truncated(_)))
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            for m in messages(&bytes).flatten() {
                let _ = m.error_code();
                if let Ok((_, body)) = m.genl() {
                    for a in attrs(body).flatten() {
                        let _ = (a.u8("x"), a.u16("x"), a.u32("x"), a.u64("x"), a.string("x"));
                        let _ = attrs(a.value).count();
                    }
                }
            }
            let _ = attrs(&bytes).count();
        }
    }
}
