//! Probes: how a real server is asked whether it is alive. Each returns
//! `Ok(())` or the reason in words an operator can act on.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// What to expect back from a `negotiate` probe.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Any reply at all (`expect = *`).
    Anything,
    /// The reply starts with these bytes.
    Prefix(Vec<u8>),
    /// The reply (its first 254 bytes) matches this expression
    /// (`use_regex = 1`).
    Regex(regex::bytes::Regex),
}

/// An agent's answer (HAProxy's agent-check protocol): every category
/// optional, the last word of each category winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReply {
    /// `N%` or `weight:N%`: the share of the configured weight wanted.
    pub weight_pct: Option<u32>,
    /// `up` (true) or `down`/`fail`/`stopped` (false).
    pub up: Option<bool>,
    /// `ready`, `drain` or `maint`.
    pub admin: Option<String>,
    /// What follows `#`.
    pub reason: Option<String>,
}

impl AgentReply {
    /// Parse one line. Unknown words are ignored, as HAProxy records them
    /// only as an error message.
    pub fn parse(line: &str) -> AgentReply {
        let line = line.split(['\r', '\n']).next().unwrap_or("");
        let (words, reason) = match line.split_once('#') {
            Some((w, r)) => (w, Some(r.trim().to_string()).filter(|r| !r.is_empty())),
            None => (line, None),
        };
        let mut r = AgentReply {
            reason,
            ..Default::default()
        };
        for w in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
            let w = w.to_ascii_lowercase();
            let pct = w.strip_prefix("weight:").unwrap_or(&w);
            if let Some(n) = pct.strip_suffix('%').and_then(|n| n.parse::<u32>().ok()) {
                r.weight_pct = Some(n.min(256));
                continue;
            }
            match w.as_str() {
                "up" => r.up = Some(true),
                "down" | "fail" | "stopped" => r.up = Some(false),
                "ready" | "drain" | "maint" => r.admin = Some(w),
                _ => {}
            }
        }
        r
    }

    /// As a health verdict: `maint` and `down`/`fail`/`stopped` are
    /// failures, with the agent's reason.
    pub fn health(&self) -> Result<(), String> {
        let why = |w: &str| match &self.reason {
            Some(r) => format!("agent says {w}: {r}"),
            None => format!("agent says {w}"),
        };
        if self.admin.as_deref() == Some("maint") {
            return Err(why("maint"));
        }
        if self.up == Some(false) {
            return Err(why("down"));
        }
        Ok(())
    }

    /// The share of the configured weight wanted, in percent: 0 for
    /// `drain`, the agent's figure otherwise, else 100.
    pub fn share(&self) -> u32 {
        if self.admin.as_deref() == Some("drain") {
            0
        } else {
            self.weight_pct.unwrap_or(100)
        }
    }
}

/// Ask an agent (e.g. `fulcrum agent`) for its line.
pub async fn ask_agent(addr: SocketAddr, timeout: Duration) -> Result<AgentReply, String> {
    let ask = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("agent {addr}: {e}"))?;
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 128];
        while !buf.contains(&b'\n') && buf.len() < 1024 {
            let n = s
                .read(&mut chunk)
                .await
                .map_err(|e| format!("agent {addr}: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if !buf.contains(&b'\n') {
            return Err(format!("agent {addr}: incomplete line"));
        }
        Ok(AgentReply::parse(&String::from_utf8_lossy(&buf)))
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| {
        format!(
            "agent {addr}: no answer within {:.1}s",
            timeout.as_secs_f64()
        )
    })?
}

/// A probe of one real server.
#[derive(Debug, Clone)]
pub enum Probe {
    /// TCP: a connection is accepted.
    TcpConnect(SocketAddr),
    /// UDP: a datagram draws no ICMP port-unreachable within the timeout.
    UdpConnect(SocketAddr),
    /// TCP: send a string, check the reply (Piranha's `send`/`expect`).
    Negotiate {
        /// Where.
        addr: SocketAddr,
        /// What to send after connecting (may be empty).
        send: Vec<u8>,
        /// What the reply must look like.
        expect: Expect,
    },
    /// TCP: the real server's agent answers a line saying it is up (and
    /// which share of its weight it wants).
    Agent(SocketAddr),
    /// TCP: the greeting and goodbye of SMTP, FTP, POP3, IMAP or NNTP.
    Service(crate::service::Dialogue, SocketAddr),
    /// UDP: a DNS query is answered.
    Dns(crate::service::DnsCheck),
    /// ICMP: an echo request draws a reply.
    Ping(std::net::IpAddr),
    /// HTTP(S): a GET whose reply passes the verdict.
    Http {
        /// What to fetch, and how.
        request: crate::http::Request,
        /// What the reply must be.
        verdict: crate::http::Verdict,
    },
    /// A program run by `/bin/sh -c` (Piranha's `send_program`, keepalived's
    /// MISC_CHECK): with `expect`, its output must match; without, exit 0
    /// passes and 1 fails, and 2..=255 fails — or, `dynamic`, passes with
    /// weight code − 2.
    External {
        /// The command line, `%h` and `%p` already substituted.
        command: String,
        /// What its output must look like.
        expect: Option<Expect>,
        /// keepalived's `misc_dynamic`.
        dynamic: bool,
    },
}

/// What one round of checking a real server found.
#[derive(Debug)]
pub struct Outcome {
    /// The health verdict.
    pub health: Result<(), String>,
    /// The share of its weight the server's agent asked for, in percent,
    /// or why the agent could not be read; `None` when it was not asked.
    pub share: Option<Result<u32, String>>,
    /// The weight an external check's exit code set (`misc_dynamic`).
    pub weight: Option<u32>,
    /// The load average a command printed, or why it could not be read;
    /// `None` when it was not asked.
    pub load: Option<Result<f64, String>>,
}

/// Where a real server's load is read after a good check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadFrom {
    /// Its agent: the share of its weight it asks for.
    Agent(SocketAddr),
    /// A command that prints its load average (`ssh HOST uptime`, …).
    Command(String),
}

/// Whether a probe's failure reason is the director's own exhaustion —
/// out of descriptors (`EMFILE`, `ENFILE`) or buffers and memory
/// (`ENOBUFS`, `ENOMEM`) — rather than anything about the real server.
/// Probes report I/O errors in `std::io::Error`'s words, which end in
/// `(os error N)`.
pub fn is_local_exhaustion(reason: &str) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|e| reason.contains(&format!("(os error {})", e.raw_os_error())))
}

/// Substitute `%h` (the real server's address) and `%p` (its port) in a
/// `send_program` command line; `%%` is a literal `%`.
pub fn expand_program(template: &str, addr: SocketAddr) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&addr.ip().to_string()),
            Some('p') => out.push_str(&addr.port().to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Whether a reply matches what is expected, in words when it does not.
fn judge(expect: &Expect, got: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(got).escape_debug().to_string();
    match expect {
        Expect::Anything if !got.is_empty() => Ok(()),
        Expect::Anything => Err("no reply".into()),
        Expect::Prefix(p) if got.starts_with(p) => Ok(()),
        Expect::Prefix(p) => {
            let p = String::from_utf8_lossy(p).escape_debug().to_string();
            if got.is_empty() {
                Err(format!("expected \"{p}\" got nothing"))
            } else {
                Err(format!("expected \"{p}\" got \"{}\"", shown()))
            }
        }
        Expect::Regex(re) if re.is_match(got) => Ok(()),
        Expect::Regex(re) => Err(format!(
            "reply \"{}\" does not match /{}/",
            shown(),
            re.as_str()
        )),
    }
}

/// Run an external check, killing its whole process group if it is still
/// running at `timeout`.
async fn run_external(
    command: &str,
    expect: Option<&Expect>,
    dynamic: bool,
    timeout: Duration,
) -> (Result<(), String>, Option<u32>) {
    let (got, status) = match run_program(command, timeout).await {
        Ok(r) => r,
        Err(e) => return (Err(e), None),
    };
    if let Some(expect) = expect {
        return (judge(expect, &got).map_err(|e| format!("output {e}")), None);
    }
    match status.code() {
        Some(0) => (Ok(()), None),
        Some(c @ 2..=255) if dynamic => (Ok(()), Some(c as u32 - 2)),
        Some(c) => (Err(format!("`{command}` exited with {c}")), None),
        None => (Err(format!("`{command}` was killed by a signal")), None),
    }
}

/// Run `command` under `/bin/sh -c` in a process group of its own; its
/// output (the first 64 KiB) and exit status. Still running at `timeout`,
/// the whole group is killed.
///
/// # Errors
/// The program could not be started, or was killed for taking too long.
pub async fn run_program(
    command: &str,
    timeout: Duration,
) -> Result<(Vec<u8>, std::process::ExitStatus), String> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    let group = child.id();
    let stdout = child.stdout.take();
    let work = async {
        let mut got = Vec::new();
        if let Some(out) = stdout {
            let _ = out.take(64 * 1024).read_to_end(&mut got).await;
        }
        (got, child.wait().await)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((got, Ok(status))) => Ok((got, status)),
        Ok((_, Err(e))) => Err(format!("`{command}`: {e}")),
        Err(_) => {
            if let Some(pid) = group.and_then(|g| rustix::process::Pid::from_raw(g as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(format!(
                "`{command}` still running after {:.1}s: killed",
                timeout.as_secs_f64()
            ))
        }
    }
}

/// Read a real server's 1-minute load average by running `command`
/// (`ssh HOST uptime`, `rup HOST`, …).
///
/// # Errors
/// The program failed, or its output holds no load average.
async fn read_load(command: &str, timeout: Duration) -> Result<f64, String> {
    let (out, status) = Box::pin(run_program(command, timeout)).await?;
    // The shell's own codes: the program is missing, or not executable.
    let program = command.split_whitespace().next().unwrap_or(command);
    match status.code() {
        Some(127) => {
            return Err(format!(
                "`{command}`: `{program}` not found: install it (or fix `load_monitor` / `rsh_command`)"
            ));
        }
        Some(126) => {
            return Err(format!(
                "`{command}`: `{program}` cannot be run (not executable)"
            ));
        }
        _ => {}
    }
    let text = String::from_utf8_lossy(&out);
    match crate::parse_load(&text) {
        Some(l) if status.success() => Ok(l),
        _ => Err(format!(
            "`{command}` gave no load average ({status}): \"{}\"",
            text.trim()
                .chars()
                .take(80)
                .collect::<String>()
                .escape_debug()
        )),
    }
}

impl Probe {
    /// nanny's default for a port-80 service with neither `send` nor
    /// `expect`: `GET / HTTP/1.0\r\n\r\n`, expecting `HTTP`.
    pub fn http_default(addr: SocketAddr) -> Probe {
        Probe::Negotiate {
            addr,
            send: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            expect: Expect::Prefix(b"HTTP".to_vec()),
        }
    }

    /// Run the probe; it gives up after `timeout`.
    pub async fn run(&self, timeout: Duration) -> Result<(), String> {
        let secs = timeout.as_secs_f64();
        match tokio::time::timeout(timeout, self.run_inner(timeout)).await {
            Ok(r) => r,
            Err(_) => Err(match self {
                Probe::TcpConnect(_) => format!("connect timeout after {secs:.1}s"),
                Probe::UdpConnect(_) => unreachable!("UDP probes time out as success"),
                Probe::Negotiate { .. } => format!("no complete reply within {secs:.1}s"),
                Probe::Agent(_) => format!("agent: no answer within {secs:.1}s"),
                Probe::Http { .. } => format!("no complete reply within {secs:.1}s"),
                Probe::Ping(_) => format!("no echo reply within {secs:.1}s"),
                Probe::Service(d, _) => {
                    format!("{}: no complete reply within {secs:.1}s", d.name())
                }
                Probe::Dns(_) => format!("dns: no answer within {secs:.1}s"),
                Probe::External { command, .. } => {
                    format!("`{command}` still running after {secs:.1}s: killed")
                }
            }),
        }
    }

    /// Run the probe and, when it passes and `load_from` says where, read
    /// the server's load: its agent's share of the weight, or the load
    /// average a command prints. An agent probe reads its share from the
    /// one answer.
    pub async fn run_with_load(&self, timeout: Duration, load_from: Option<LoadFrom>) -> Outcome {
        let (health, weight, share) = match self {
            Probe::Agent(addr) => match ask_agent(*addr, timeout).await {
                Ok(reply) => (reply.health(), None, Some(Ok(reply.share()))),
                Err(e) => (Err(e), None, None),
            },
            // Boxed: the rarer, larger probes do not size every probe's future.
            Probe::External {
                command,
                expect,
                dynamic,
            } => {
                let (health, weight) =
                    Box::pin(run_external(command, expect.as_ref(), *dynamic, timeout)).await;
                (health, weight, None)
            }
            _ => (self.run(timeout).await, None, None),
        };
        let (share, load) = match (load_from, &health) {
            (Some(LoadFrom::Agent(addr)), Ok(())) => (
                Some(ask_agent(addr, timeout).await.map(|r| r.share())),
                None,
            ),
            (Some(LoadFrom::Command(cmd)), Ok(())) => (
                share,
                Some(read_load(&cmd, timeout.max(Duration::from_secs(5))).await),
            ),
            _ => (share, None),
        };
        Outcome {
            health,
            share,
            weight,
            load,
        }
    }

    async fn run_inner(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Probe::TcpConnect(a) => TcpStream::connect(a)
                .await
                .map(|_| ())
                .map_err(|e| format!("connect: {e}")),
            Probe::UdpConnect(a) => udp_probe(*a, timeout).await,
            Probe::Agent(a) => ask_agent(*a, timeout).await?.health(),
            Probe::Ping(ip) => Box::pin(ping(*ip, timeout)).await,
            Probe::Service(d, addr) => Box::pin(d.check(*addr)).await,
            Probe::Dns(c) => Box::pin(c.check(timeout)).await,
            Probe::Http { request, verdict } => {
                verdict.judge(&Box::pin(request.fetch(timeout)).await?)
            }
            Probe::External {
                command,
                expect,
                dynamic,
            } => {
                Box::pin(run_external(command, expect.as_ref(), *dynamic, timeout))
                    .await
                    .0
            }
            Probe::Negotiate { addr, send, expect } => {
                let mut s = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                if !send.is_empty() {
                    s.write_all(send).await.map_err(|e| format!("send: {e}"))?;
                }
                let want = match expect {
                    Expect::Anything => 1,
                    Expect::Prefix(p) => p.len().max(1),
                    Expect::Regex(_) => 254,
                };
                let mut got = Vec::with_capacity(want);
                let mut buf = [0u8; 256];
                while got.len() < want {
                    let n = s
                        .read(&mut buf[..(want - got.len()).min(256)])
                        .await
                        .map_err(|e| format!("read: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                judge(expect, &got)
            }
        }
    }
}

/// One ICMP echo request (raw socket, or an unprivileged ICMP socket where
/// the host allows it); a reply within `timeout` passes.
pub async fn ping(ip: std::net::IpAddr, timeout: Duration) -> Result<(), String> {
    use std::sync::atomic::{AtomicU16, Ordering};
    use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
    const ICMPV4_ECHO_REPLY: u8 = 0;
    const ICMPV6_ECHO_REPLY: u8 = 129;
    static NEXT_IDENT: AtomicU16 = AtomicU16::new(1);
    let kind = if ip.is_ipv4() { ICMP::V4 } else { ICMP::V6 };
    let client = Client::new(&Config::builder().kind(kind).build())
        .map_err(|e| format!("ping: cannot open an ICMP socket (needs CAP_NET_RAW): {e}"))?;
    let ident = PingIdentifier(NEXT_IDENT.fetch_add(1, Ordering::Relaxed));
    let mut pinger = client.pinger(ip, ident).await;
    pinger.timeout(timeout.mul_f32(0.95));
    // surge-ping also hands back the ICMP errors a request draws
    // (destination unreachable, time exceeded): only an echo reply passes.
    match pinger.ping(PingSequence(0), &[0x46; 16]).await {
        Ok((IcmpPacket::V4(p), _)) if p.get_icmp_type().0 == ICMPV4_ECHO_REPLY => Ok(()),
        Ok((IcmpPacket::V6(p), _)) if p.get_icmpv6_type().0 == ICMPV6_ECHO_REPLY => Ok(()),
        Ok((IcmpPacket::V4(p), _)) => Err(format!(
            "ICMP type {} code {} from {} instead of an echo reply",
            p.get_icmp_type().0,
            p.get_icmp_code().0,
            p.get_source()
        )),
        Ok((IcmpPacket::V6(p), _)) => Err(format!(
            "ICMPv6 type {} code {} from {} instead of an echo reply",
            p.get_icmpv6_type().0,
            p.get_icmpv6_code().0,
            p.get_source()
        )),
        Err(SurgeError::Timeout { .. }) => Err(format!(
            "no echo reply within {:.1}s",
            timeout.as_secs_f64()
        )),
        Err(e) => Err(format!("ping: {e}")),
    }
}

/// A UDP socket connected to `addr`, from an ephemeral port of its family.
pub(crate) async fn udp_to(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let any = SocketAddr::new(
        match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        },
        0,
    );
    let s = UdpSocket::bind(any).await?;
    s.connect(addr).await?;
    Ok(s)
}

/// A datagram to a closed UDP port draws an ICMP port-unreachable, which a
/// connected socket reports as `ECONNREFUSED` on the next receive. Silence
/// (or any reply) within the timeout counts as alive, as nanny counts it.
async fn udp_probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let s = udp_to(addr).await.map_err(|e| format!("udp: {e}"))?;
    s.send(b"\n").await.map_err(|e| format!("udp send: {e}"))?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(timeout.mul_f32(0.9), s.recv(&mut buf)).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err("udp: port unreachable".into())
        }
        Ok(Err(e)) => Err(format!("udp: {e}")),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn a_missing_load_command_says_not_found() {
        let e = read_load("fulcrum-no-such-program-x host", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.contains("`fulcrum-no-such-program-x` not found: install it"),
            "{e}"
        );
        let e = read_load("echo no load here", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.contains("gave no load average"), "{e}");
        assert_eq!(
            read_load(
                "echo ' 10:00:00 up 1 day,  load average: 0.25, 0.20, 0.10'",
                Duration::from_secs(5)
            )
            .await,
            Ok(0.25)
        );
    }

    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn agent_grammar() {
        let r = AgentReply::parse("up ready 75%\n");
        assert_eq!(
            (r.up, r.admin.as_deref(), r.weight_pct, r.share()),
            (Some(true), Some("ready"), Some(75), 75)
        );
        let r = AgentReply::parse("DRAIN, weight:30% # rolling upgrade\r\n");
        assert_eq!(
            (r.share(), r.reason.as_deref()),
            (0, Some("rolling upgrade"))
        );
        assert_eq!(
            AgentReply::parse("10% 20%").weight_pct,
            Some(20),
            "last word wins"
        );
        assert_eq!(
            AgentReply::parse("down # disk full").health(),
            Err("agent says down: disk full".into())
        );
        assert_eq!(
            AgentReply::parse("maint").health(),
            Err("agent says maint".into())
        );
        assert_eq!(
            AgentReply::parse("fail stopped up").health(),
            Ok(()),
            "last health word wins"
        );
        assert_eq!(AgentReply::parse("hello").share(), 100);
    }

    /// A server that answers after reading a request, or at once with a
    /// banner (as SSH and SMTP do).
    async fn serve(reply: &'static [u8], banner: bool) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                if !banner {
                    let mut b = [0u8; 64];
                    let _ = s.read(&mut b).await;
                }
                let _ = s.write_all(reply).await;
            }
        });
        a
    }

    async fn server(reply: &'static [u8]) -> SocketAddr {
        serve(reply, false).await
    }

    #[tokio::test]
    async fn connect_probes() {
        let a = server(b"").await;
        assert_eq!(
            Probe::TcpConnect(a).run(Duration::from_secs(1)).await,
            Ok(())
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = Probe::TcpConnect(closed)
            .run(Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.starts_with("connect: Connection refused"), "{e}");
        let udp_closed = {
            let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            u.local_addr().unwrap()
        };
        assert_eq!(
            Probe::UdpConnect(udp_closed)
                .run(Duration::from_millis(500))
                .await,
            Err("udp: port unreachable".into())
        );
        let udp_open = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            Probe::UdpConnect(udp_open.local_addr().unwrap())
                .run(Duration::from_millis(300))
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn negotiate_prefix_anything_regex() {
        let http = server(b"HTTP/1.0 200 OK\r\n\r\nhi").await;
        let ssh = serve(b"SSH-2.0-OpenSSH_9.2\r\n", true).await;
        let t = Duration::from_secs(1);
        assert_eq!(Probe::http_default(http).run(t).await, Ok(()));
        assert_eq!(
            Probe::http_default(ssh).run(t).await,
            Err("expected \"HTTP\" got \"SSH-\"".into())
        );
        let any = Probe::Negotiate {
            addr: ssh,
            send: vec![],
            expect: Expect::Anything,
        };
        assert_eq!(any.run(t).await, Ok(()));
        let re = Probe::Negotiate {
            addr: http,
            send: b"x".to_vec(),
            expect: Expect::Regex(regex::bytes::Regex::new("200 OK").unwrap()),
        };
        assert_eq!(re.run(t).await, Ok(()));
        let silent = server(b"").await;
        let e = Probe::http_default(silent).run(t).await.unwrap_err();
        assert_eq!(e, "expected \"HTTP\" got nothing");
    }

    #[test]
    fn program_substitution() {
        let a: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        assert_eq!(
            expand_program("/bin/check -h %h -p %p 100%% %x", a),
            "/bin/check -h 10.0.0.2 -p 8080 100% %x"
        );
        let a6: SocketAddr = "[2001:db8::2]:80".parse().unwrap();
        assert_eq!(expand_program("%h/%p%", a6), "2001:db8::2/80%");
    }

    async fn external(command: &str, expect: Option<Expect>, dynamic: bool) -> Outcome {
        Probe::External {
            command: command.into(),
            expect,
            dynamic,
        }
        .run_with_load(Duration::from_secs(2), None)
        .await
    }

    #[tokio::test]
    async fn external_exit_codes_output_and_dynamic_weights() {
        let o = external("exit 0", None, false).await;
        assert_eq!((o.health, o.weight), (Ok(()), None));
        let o = external("exit 1", None, true).await;
        assert_eq!(
            o.health,
            Err("`exit 1` exited with 1".into()),
            "1 always fails"
        );
        let o = external("exit 52", None, false).await;
        assert!(o.health.is_err(), "2..255 fail without misc_dynamic");
        let o = external("exit 52", None, true).await;
        assert_eq!((o.health, o.weight), (Ok(()), Some(50)));
        let o = external("exit 2", None, true).await;
        assert_eq!((o.health, o.weight), (Ok(()), Some(0)), "2 means weight 0");
        // With `expect`, the output decides, whatever the exit code.
        let o = external(
            "echo OK; exit 3",
            Some(Expect::Prefix(b"OK".to_vec())),
            false,
        )
        .await;
        assert_eq!(o.health, Ok(()));
        let o = external("echo busy", Some(Expect::Prefix(b"OK".to_vec())), false).await;
        assert_eq!(
            o.health,
            Err("output expected \"OK\" got \"busy\\n\"".into())
        );
        let o = external("/nonexistent/check", None, false).await;
        assert_eq!(o.health, Err("`/nonexistent/check` exited with 127".into()));
    }

    #[tokio::test]
    async fn a_hanging_external_check_is_killed_with_its_children() {
        let dir = std::env::temp_dir().join(format!("fulcrum-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("pid");
        let cmd = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let t = std::time::Instant::now();
        let o = Probe::External {
            command: cmd.clone(),
            expect: None,
            dynamic: false,
        }
        .run_with_load(Duration::from_millis(300), None)
        .await;
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the probe does not wait for the program"
        );
        assert_eq!(
            o.health,
            Err(format!("`{cmd}` still running after 0.3s: killed"))
        );
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        // The grandchild is gone (or a zombie awaiting its reaper).
        let mut gone = false;
        for _ in 0..50 {
            match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
                Err(_) => gone = true,
                Ok(stat) => gone = stat.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')),
            }
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "the program's child `sleep 30` was killed");
    }

    #[tokio::test]
    async fn ping_loopback() {
        for ip in ["127.0.0.1", "::1"] {
            match Probe::Ping(ip.parse().unwrap())
                .run(Duration::from_secs(1))
                .await
            {
                Ok(()) => {}
                Err(e) if e.contains("cannot open an ICMP socket") => {
                    eprintln!("SKIPPED ping_loopback {ip}: {e}");
                }
                Err(e) => panic!("ping {ip}: {e}"),
            }
        }
    }
}
