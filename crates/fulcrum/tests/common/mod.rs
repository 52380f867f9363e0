//! The harness of the director's loopback tests: real `fulcrum run` and
//! `fulcrum realserver` processes, each test on its own 127.N.0.0/24.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    reason = "shared by several test crates, each using a part"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// Send a signal (`TERM`, `HUP`, …).
    pub fn signal(&self, sig: &str) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{sig}"), pid.as_str()])
                .status()
                .unwrap()
                .success(),
            "kill -{sig} {pid}"
        );
    }

    /// Wait for the process to exit, at most `within`; its status. `why`
    /// says what it should have finished (in the panic message).
    pub fn exits_within(
        &mut self,
        within: Duration,
        why: &dyn Fn() -> String,
    ) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st;
            }
            assert!(t.elapsed() < within, "{}", why());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until something accepts TCP connections at `addr`, then
    /// return the process serving it.
    pub fn listening(self, addr: &str, what: &str) -> Proc {
        let a: SocketAddr = addr.parse().unwrap();
        wait_until(what, || TcpStream::connect(a).is_ok());
        self
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fulcrum-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run a command with `stdin` as its standard input: (exit status,
/// stdout, stderr).
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> (i32, String, String) {
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn realserver(addr: &str, name: &str, udp: bool) -> Proc {
    let mut c = Command::new(BIN);
    c.args(["realserver", "--listen", addr, "--name", name])
        .stderr(Stdio::null());
    if udp {
        c.arg("--udp");
    }
    let p = Proc(c.spawn().unwrap());
    if !udp {
        let a: SocketAddr = addr.parse().unwrap();
        wait_until(&format!("real server {name}"), || {
            TcpStream::connect(a).is_ok()
        });
    } else {
        std::thread::sleep(Duration::from_millis(150));
    }
    p
}

/// A running director with its configuration file and control socket.
pub struct Director {
    pub proc: Proc,
    pub dir: TempDir,
    pub control: PathBuf,
}

impl Director {
    pub fn start(tag: &str, config: &str) -> Director {
        Director::start_with(tag, config, &[])
    }

    pub fn start_with(tag: &str, config: &str, extra: &[&str]) -> Director {
        Director::start_limited(tag, config, extra, None)
    }

    /// Start with the descriptor limit (`ulimit -n`) at `nofile` when given.
    pub fn start_limited(tag: &str, config: &str, extra: &[&str], nofile: Option<u64>) -> Director {
        let dir = TempDir::new(tag);
        let cf = dir.0.join("lvs.cf");
        std::fs::write(&cf, config).unwrap();
        let control = dir.0.join("control.sock");
        let mut cmd = match nofile {
            None => Command::new(BIN),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                c
            }
        };
        let child = cmd
            .args([
                "run",
                "--config",
                cf.to_str().unwrap(),
                "--control",
                control.to_str().unwrap(),
            ])
            .args(extra)
            .env("FULCRUM_LOG", "warn")
            .stderr(std::fs::File::create(dir.0.join("director.log")).unwrap())
            .spawn()
            .unwrap();
        let d = Director {
            proc: Proc(child),
            dir,
            control,
        };
        let t = Instant::now();
        while d.adm("-L -n").0 != 0 {
            let log = std::fs::read_to_string(d.dir.0.join("director.log")).unwrap_or_default();
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the director did not start; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// What the director has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("director.log")).unwrap_or_default()
    }

    /// The director's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn cf(&self) -> PathBuf {
        self.dir.0.join("lvs.cf")
    }

    pub fn run(&self, sub: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .arg(sub)
            .arg("--control")
            .arg(&self.control)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub fn adm(&self, line: &str) -> (i32, String, String) {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.run("adm", &args)
    }

    pub fn ok(&self, line: &str) -> String {
        let (code, out, err) = self.adm(line);
        assert_eq!((code, err.as_str()), (0, ""), "adm {line}");
        out
    }
}

/// One HTTP/1.0 request on a fresh connection; returns the body.
pub fn get(vip: &str) -> String {
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string()
}

/// A kept-alive HTTP/1.1 connection.
pub struct KeepAlive(pub TcpStream);

impl KeepAlive {
    pub fn open(vip: &str) -> KeepAlive {
        let s = TcpStream::connect(vip).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        KeepAlive(s)
    }

    pub fn get(&mut self) -> String {
        self.0
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = self.0.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= len {
                    return body[..len].trim().to_string();
                }
            }
        }
    }
}

pub fn counts(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

pub fn cluster(net: u8, sched: &str, weights: &[u32], extra: &str) -> String {
    let mut s = format!(
        "virtual web {{\n address = 127.{net}.0.1\n active = 1\n port = 8080\n scheduler = {sched}\n{extra}"
    );
    for (i, w) in weights.iter().enumerate() {
        s.push_str(&format!(
            " server rs{n} {{\n  address = 127.{net}.0.{a}\n  port = 8081\n  active = 1\n  weight = {w}\n }}\n",
            n = i + 1,
            a = 11 + i
        ));
    }
    s.push_str("}\n");
    s
}

pub fn realservers(net: u8, n: usize) -> Vec<Proc> {
    (0..n)
        .map(|i| {
            realserver(
                &format!("127.{net}.0.{}:8081", 11 + i),
                &format!("rs{}", i + 1),
                false,
            )
        })
        .collect()
}
