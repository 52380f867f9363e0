//! `fulcrum restart`: a new director takes over from the running one
//! without a connection refused or cut.
//!
//! The running director starts its successor from the same program file
//! (the upgraded binary, if the package replaced it) with the same
//! arguments, leaving it copies of its listening sockets — every virtual
//! service's, the control socket's, and the metrics and console
//! listeners' — named in `FULCRUM_INHERIT`. The successor takes them
//! instead of binding, so connections waiting in their queues are its own,
//! and says on an inherited pipe when it serves. Until then the old
//! director goes on accepting; then it stops accepting, leaves the
//! floating addresses in place, and finishes its open connections (up to
//! `drain_timeout`). If the successor exits before it serves, the old
//! director carries on as if nothing had been asked.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fulcrum_core::{Protocol, ServiceKey};

/// The environment variable naming the inherited descriptors.
pub const ENV: &str = "FULCRUM_INHERIT";

/// How long a successor may take to serve (its first round of checks
/// included) before the old director gives up on it.
pub const READY_WITHIN: Duration = Duration::from_secs(120);

/// What an inherited descriptor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The control socket's listener.
    Control,
    /// The metrics listener.
    Metrics,
    /// The web console's listener.
    Console,
    /// The pipe on which the successor says it serves.
    Ready,
    /// A virtual service's listening socket (TCP) or socket (UDP).
    Service(ServiceKey),
}

fn slot_name(s: &Slot) -> String {
    match s {
        Slot::Control => "control".into(),
        Slot::Metrics => "metrics".into(),
        Slot::Console => "console".into(),
        Slot::Ready => "ready".into(),
        Slot::Service(ServiceKey::Addr { proto, addr, port }) => {
            format!("{}/{addr}/{port}", proto.name().to_lowercase())
        }
        // The proxy plane has no fwmark services.
        Slot::Service(ServiceKey::Fwmark { mark, .. }) => format!("fwmark/{mark}"),
    }
}

fn parse_slot(s: &str) -> Option<Slot> {
    Some(match s {
        "control" => Slot::Control,
        "metrics" => Slot::Metrics,
        "console" => Slot::Console,
        "ready" => Slot::Ready,
        _ => {
            let mut it = s.splitn(3, '/');
            let proto = match it.next()? {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return None,
            };
            let addr = it.next()?.parse().ok()?;
            let port = it.next()?.parse().ok()?;
            Slot::Service(ServiceKey::Addr { proto, addr, port })
        }
    })
}

/// `control=5;tcp/10.0.0.1/80=6,7` for these descriptors.
pub fn encode(items: &[(Slot, i32)]) -> String {
    let mut by: Vec<(String, Vec<i32>)> = Vec::new();
    for (slot, fd) in items {
        let name = slot_name(slot);
        match by.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(*fd),
            None => by.push((name, vec![*fd])),
        }
    }
    by.iter()
        .map(|(n, v)| {
            let fds: Vec<String> = v.iter().map(i32::to_string).collect();
            format!("{n}={}", fds.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The descriptors `encode` named.
///
/// # Errors
/// What part of the value is wrong.
pub fn decode(spec: &str) -> Result<Vec<(Slot, i32)>, String> {
    let mut out = Vec::new();
    for part in spec.split(';').filter(|p| !p.is_empty()) {
        let (name, fds) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` has no `=`"))?;
        let slot = parse_slot(name)
            .ok_or_else(|| format!("`{name}` is not a socket Fulcrum hands over"))?;
        for fd in fds.split(',') {
            let n: i32 = fd
                .parse()
                .map_err(|_| format!("`{fd}` in `{part}` is not a descriptor number"))?;
            if out.iter().any(|(_, m)| *m == n) {
                return Err(format!("descriptor {n} is named twice"));
            }
            out.push((slot, n));
        }
    }
    Ok(out)
}

/// What the director this one replaces left for it.
#[derive(Debug, Default)]
pub struct Inherited {
    /// Each virtual service's sockets.
    pub services: HashMap<ServiceKey, Vec<OwnedFd>>,
    /// The control socket.
    pub control: Option<OwnedFd>,
    /// The metrics listener.
    pub metrics: Option<OwnedFd>,
    /// The console's listener.
    pub console: Option<OwnedFd>,
    /// Where to say "serving".
    ready: Option<OwnedFd>,
}

impl Inherited {
    /// The sockets named in `FULCRUM_INHERIT`, if this director was
    /// started by `fulcrum restart`.
    ///
    /// # Errors
    /// A malformed value, or a number that is not an open socket.
    pub fn from_env() -> Result<Option<Inherited>, String> {
        let Ok(spec) = std::env::var(ENV) else {
            return Ok(None);
        };
        let mut inh = Inherited::default();
        for (slot, n) in decode(&spec).map_err(|e| format!("{ENV}: {e}"))? {
            // The pipe is not a socket.
            let fd = if slot == Slot::Ready {
                fulcrum_net::inherited_fd(n)
            } else {
                fulcrum_net::inherited_socket(n)
            }
            .map_err(|e| format!("{ENV}: descriptor {n}: {e}"))?;
            match slot {
                Slot::Control => inh.control = Some(fd),
                Slot::Metrics => inh.metrics = Some(fd),
                Slot::Console => inh.console = Some(fd),
                Slot::Ready => inh.ready = Some(fd),
                Slot::Service(k) => inh.services.entry(k).or_default().push(fd),
            }
        }
        Ok(Some(inh))
    }

    /// Tell the director that started this one that it serves now.
    pub fn serving(&mut self) {
        if let Some(fd) = self.ready.take() {
            let _ = rustix::io::write(&fd, b"serving\n");
        }
    }
}

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Remember the program's path at start, before an upgrade may replace
/// the file: the successor is started from the same path.
pub fn remember_program() {
    if let Ok(p) = std::env::current_exe() {
        let _ = PROGRAM.set(p);
    }
}

/// Start the successor with `sockets` and wait until it serves. Its
/// process id.
///
/// # Errors
/// Why it did not take over (it could not start, it exited, or it did not
/// serve within [`READY_WITHIN`]); the caller carries on.
pub async fn start_successor(sockets: Vec<(Slot, OwnedFd)>) -> Result<u32, String> {
    let program = PROGRAM
        .get()
        .cloned()
        .ok_or("the program's path is not known")?;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    let mut named: Vec<(Slot, i32)> = Vec::new();
    let mut keep = Vec::new();
    for (slot, fd) in sockets.into_iter().chain([(Slot::Ready, w)]) {
        // Left open across exec for the successor only: the copies here
        // close once it has started.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty())
            .map_err(|e| format!("cannot pass a socket on: {e}"))?;
        named.push((slot, fd.as_raw_fd()));
        keep.push(fd);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut child = std::process::Command::new(&program)
        .args(&args)
        .env(ENV, encode(&named))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    drop(keep);
    let pid = child.id();
    let said = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(r);
        let mut buf = [0u8; 16];
        matches!(f.read(&mut buf), Ok(n) if n > 0)
    });
    match tokio::time::timeout(READY_WITHIN, said).await {
        Ok(Ok(true)) => {
            // Reaped by whoever outlives it; the old director exits soon.
            std::mem::forget(child);
            Ok(pid)
        }
        Ok(_) => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(format!(
                "the new director (pid {pid}, {}) exited before it served ({status}); see its log",
                program.display()
            ))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "the new director (pid {pid}) did not serve within {READY_WITHIN:?}; it was stopped"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_values_are_refused() {
        let k = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 443,
        };
        let u = ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: [10, 0, 0, 1].into(),
            port: 53,
        };
        let items = vec![
            (Slot::Control, 5),
            (Slot::Service(k), 6),
            (Slot::Service(k), 7),
            (Slot::Service(u), 8),
            (Slot::Ready, 9),
        ];
        let s = encode(&items);
        assert_eq!(
            s,
            "control=5;tcp/2001:db8::1/443=6,7;udp/10.0.0.1/53=8;ready=9"
        );
        assert_eq!(decode(&s).unwrap(), items);
        for bad in [
            "control",
            "nosuch=3",
            "tcp/10.0.0.1/80=x",
            "control=3;metrics=3",
            "sctp/1.2.3.4/5=6",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        assert_eq!(decode("").unwrap(), vec![]);
    }
}
