//! `fulcrum agent` against a real HAProxy: HAProxy's `agent-check` reads
//! the agent and its server's weight and state follow.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HAProxy's view of server `be/rs1`: (status, weight), from `show stat`.
fn haproxy_server(sock: &PathBuf) -> Option<(String, String)> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (st, w) = (col("status")?, col("weight")?);
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"be") && f.get(1) == Some(&"rs1"))
        .map(|f| (f[st].to_string(), f[w].to_string()))
}

#[test]
fn haproxy_follows_fulcrum_agent() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED haproxy_follows_fulcrum_agent: haproxy is not installed (.ci/run installs it)"
        );
        return;
    }
    let dir = Dir(std::env::temp_dir().join(format!("fulcrum-agent-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let state = dir.0.join("state");
    std::fs::write(&state, "up 50%\n").unwrap();
    let _rs = Proc(
        Command::new(BIN)
            .args([
                "realserver",
                "--listen",
                "127.31.0.11:8081",
                "--name",
                "rs1",
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _agent = Proc(
        Command::new(BIN)
            .args([
                "agent",
                "--listen",
                "127.31.0.21:9777",
                "--state-file",
                state.to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the agent", || {
        std::net::TcpStream::connect("127.31.0.21:9777").is_ok()
    });
    let sock = dir.0.join("haproxy.sock");
    let cfg = dir.0.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 100\n  stats socket {} mode 600 level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             backend be\n  balance roundrobin\n  server rs1 127.31.0.11:8081 check inter 500ms weight 100 agent-check agent-addr 127.31.0.21 agent-port 9777 agent-inter 200ms\n\
             frontend fe\n  bind 127.31.0.1:8080\n  default_backend be\n",
            sock.display()
        ),
    )
    .unwrap();
    let _haproxy = Proc(
        Command::new("haproxy")
            .args(["-db", "-f", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let expect = |state_line: &str, status: &str, weight: &str| {
        std::fs::write(&state, format!("{state_line}\n")).unwrap();
        let t = Instant::now();
        let mut seen = None;
        while t.elapsed() < Duration::from_secs(10) {
            seen = haproxy_server(&sock);
            if seen
                .as_ref()
                .is_some_and(|(s, w)| s.starts_with(status) && w == weight)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("after `{state_line}` HAProxy shows {seen:?}, expected {status}/{weight}");
    };
    expect("up 50%", "UP", "50");
    expect("75%", "UP", "75");
    // Drain is an administrative state: HAProxy keeps the weight, sends no
    // new traffic, and shows it as "DRAIN (agent)".
    expect("drain # maintenance window", "DRAIN", "75");
    expect("ready 100%", "UP", "100");
    expect("down # disk full", "DOWN", "100");
    expect("up ready 30%", "UP", "30");
    // Without the state file, the agent reports the host's idle CPU.
    std::fs::remove_file(&state).unwrap();
    wait_until("a load-derived weight", || {
        haproxy_server(&sock).is_some_and(|(s, w)| {
            s.starts_with("UP") && w.parse::<u32>().is_ok_and(|w| (1..=100).contains(&w))
        })
    });
}
