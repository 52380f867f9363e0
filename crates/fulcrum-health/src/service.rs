//! Protocol-aware checks as ldirectord's `service =` does them: the
//! server's greeting and a polite goodbye for SMTP, FTP, POP3, IMAP and
//! NNTP; a query and its answer for DNS.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A line-based protocol with a greeting and a quit command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialogue {
    /// SMTP: `220` greeting, `QUIT` → `221`.
    Smtp,
    /// FTP: `220` greeting, `QUIT` → `221`.
    Ftp,
    /// POP3: `+OK` greeting, `QUIT` → `+OK`.
    Pop,
    /// IMAP: `* OK` greeting, `LOGOUT` → `* BYE`.
    Imap,
    /// NNTP: `200`/`201` greeting, `QUIT` → `205`.
    Nntp,
}

/// The longest line read.
const MAX_LINE: usize = 1024;
/// The most greeting lines (SMTP and FTP greetings may continue).
const MAX_LINES: usize = 32;

impl Dialogue {
    /// The protocol's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialogue::Smtp => "smtp",
            Dialogue::Ftp => "ftp",
            Dialogue::Pop => "pop",
            Dialogue::Imap => "imap",
            Dialogue::Nntp => "nntp",
        }
    }

    fn greeting(self) -> &'static [&'static str] {
        match self {
            Dialogue::Smtp | Dialogue::Ftp => &["220"],
            Dialogue::Pop => &["+OK"],
            Dialogue::Imap => &["* OK", "* PREAUTH"],
            Dialogue::Nntp => &["200", "201"],
        }
    }

    fn quit(self) -> (&'static [u8], &'static [&'static str]) {
        match self {
            Dialogue::Smtp | Dialogue::Ftp => (b"QUIT\r\n", &["221"]),
            Dialogue::Pop => (b"QUIT\r\n", &["+OK"]),
            Dialogue::Imap => (b"f1 LOGOUT\r\n", &["* BYE", "f1 OK"]),
            Dialogue::Nntp => (b"QUIT\r\n", &["205"]),
        }
    }

    /// Whether a reply line continues (`220-…` in SMTP, FTP and NNTP).
    fn continues(self, line: &str) -> bool {
        matches!(self, Dialogue::Smtp | Dialogue::Ftp | Dialogue::Nntp)
            && line.len() > 3
            && line.as_bytes()[3] == b'-'
    }

    /// Greet the server and say goodbye.
    ///
    /// # Errors
    /// What the server said instead, or how the connection failed.
    pub async fn check(self, addr: SocketAddr) -> Result<(), String> {
        let name = self.name();
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut s = BufReader::new(s);
        let greeting = self.reply(&mut s).await?;
        if !self.greeting().iter().any(|p| greeting.starts_with(p)) {
            return Err(format!(
                "{name}: expected a greeting starting with {}, got \"{}\"",
                self.greeting().join(" or "),
                greeting.escape_debug()
            ));
        }
        let (quit, bye) = self.quit();
        s.get_mut()
            .write_all(quit)
            .await
            .map_err(|e| format!("{name}: send: {e}"))?;
        let reply = self.reply(&mut s).await?;
        if !bye.iter().any(|p| reply.starts_with(p)) {
            return Err(format!(
                "{name}: expected {} after {}, got \"{}\"",
                bye.join(" or "),
                String::from_utf8_lossy(quit).trim_end(),
                reply.escape_debug()
            ));
        }
        Ok(())
    }

    /// One reply: its last line (continuation lines skipped).
    async fn reply(self, s: &mut BufReader<TcpStream>) -> Result<String, String> {
        let name = self.name();
        for _ in 0..MAX_LINES {
            let mut line = Vec::new();
            let n = (&mut *s)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| format!("{name}: read: {e}"))?;
            if n == 0 {
                return Err(format!("{name}: connection closed without a reply"));
            }
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if !self.continues(&line) {
                return Ok(line);
            }
        }
        Err(format!("{name}: reply longer than {MAX_LINES} lines"))
    }
}

/// A DNS check: a query for `name` (type A, recursion desired) over UDP;
/// the server must answer it with NOERROR and at least one record, and
/// with `receive`, one record must contain that text.
#[derive(Debug, Clone)]
pub struct DnsCheck {
    /// The server.
    pub addr: SocketAddr,
    /// What to ask for.
    pub name: String,
    /// Text an answer must contain.
    pub receive: Option<String>,
}

impl DnsCheck {
    /// Ask and judge the answer.
    ///
    /// # Errors
    /// Why the answer is not good enough.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        let qname = Name::from_ascii(&self.name)
            .map_err(|e| format!("dns: invalid name `{}`: {e}", self.name))?;
        let id: u16 = rand_id();
        let mut q = Message::query();
        q.metadata.id = id;
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(qname, RecordType::A));
        let bytes = q.to_vec().map_err(|e| format!("dns: {e}"))?;
        let s = crate::probe::udp_to(self.addr)
            .await
            .map_err(|e| format!("dns: {e}"))?;
        s.send(&bytes)
            .await
            .map_err(|e| format!("dns: send: {e}"))?;
        let mut buf = vec![0u8; 4096];
        let answer = loop {
            let n = match tokio::time::timeout(timeout, s.recv(&mut buf)).await {
                Err(_) => {
                    return Err(format!(
                        "dns: no answer within {:.1}s",
                        timeout.as_secs_f64()
                    ));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err("dns: port unreachable".into());
                }
                Ok(Err(e)) => return Err(format!("dns: {e}")),
                Ok(Ok(n)) => n,
            };
            // A malformed datagram or someone else's answer is not ours:
            // keep waiting for ours until the timeout.
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == id => break m,
                _ => continue,
            }
        };
        let rcode = answer.metadata.response_code;
        if rcode != ResponseCode::NoError {
            return Err(format!("dns: {} answered {rcode}", self.name));
        }
        if answer.answers.is_empty() {
            return Err(format!("dns: no records for {}", self.name));
        }
        if let Some(want) = &self.receive {
            let datas: Vec<String> = answer.answers.iter().map(|r| r.data.to_string()).collect();
            if !datas.iter().any(|d| d.contains(want.as_str())) {
                return Err(format!(
                    "dns: {} is {}, not {want}",
                    self.name,
                    datas.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// A query id that differs from check to check.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A scripted server: sends `greeting`, reads a command, sends `bye`.
    async fn scripted(greeting: &'static str, bye: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let _ = s.write_all(greeting.as_bytes()).await;
                let mut b = [0u8; 64];
                let _ = s.read(&mut b).await;
                let _ = s.write_all(bye.as_bytes()).await;
            }
        });
        a
    }

    #[tokio::test]
    async fn nntp_and_multiline_greetings() {
        // No NNTP server is light enough to install for tests: a scripted one.
        let a = scripted("200 news.test InterNetNews ready\r\n", "205 bye\r\n").await;
        assert_eq!(Dialogue::Nntp.check(a).await, Ok(()));
        let a = scripted("502 no permission\r\n", "205 bye\r\n").await;
        assert_eq!(
            Dialogue::Nntp.check(a).await,
            Err(
                "nntp: expected a greeting starting with 200 or 201, got \"502 no permission\""
                    .into()
            )
        );
        let a = scripted(
            "220-mail.test ESMTP\r\n220-more\r\n220 ready\r\n",
            "221 bye\r\n",
        )
        .await;
        assert_eq!(Dialogue::Smtp.check(a).await, Ok(()));
        let a = scripted("220 ftp ready\r\n", "500 what?\r\n").await;
        assert_eq!(
            Dialogue::Ftp.check(a).await,
            Err("ftp: expected 221 after QUIT, got \"500 what?\"".into())
        );
    }
}
