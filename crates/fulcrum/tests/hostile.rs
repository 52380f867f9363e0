//! The director against hostile clients and hostile local users, on
//! loopback: planted socket directories, files at the control path,
//! half-sent requests, descriptor exhaustion, floods. Each test uses its own
//! 127.N.0.0/24 (N from 60).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::*;

/// `fulcrum run` with this control socket, expected to refuse to start:
/// its exit code and stderr.
fn run_refused(dir: &TempDir, control: &std::path::Path) -> (i32, String) {
    let cf = dir.0.join("lvs.cf");
    std::fs::write(&cf, cluster(60, "rr", &[1], "")).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config", cf.to_str().unwrap(), "--control"])
        .arg(control)
        .env("FULCRUM_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_control_socket_directory_others_can_write_is_refused() {
    let dir = TempDir::new("planted");
    let planted = dir.0.join("fulcrum-1000");
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = planted.join("control.sock");
    let (code, err) = run_refused(&dir, &sock);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is writable by other users (mode 0777)"),
        "{err}"
    );
    assert!(!sock.exists(), "nothing was bound there");
    // The client will not talk to a socket there either.
    let o = Command::new(BIN)
        .args(["adm", "--control"])
        .arg(&sock)
        .args(["-L", "-n"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("writable by other users"));

    // Owned by another user (root can make one): refused whatever its mode.
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        let (code, err) = run_refused(&dir, &sock);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("belongs to uid 65534, not to this user"),
            "{err}"
        );
    }
}

#[test]
fn control_at_a_regular_file_is_refused_and_the_file_kept() {
    let dir = TempDir::new("ctlfile");
    let precious = dir.0.join("precious.cf");
    std::fs::write(&precious, "serial_no = 7\n").unwrap();
    let (code, err) = run_refused(&dir, &precious);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("exists and is not a socket; refusing to replace it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "serial_no = 7\n"
    );
}

#[test]
fn the_socket_and_its_directory_are_private_whatever_the_umask() {
    let _rs = realservers(61, 1);
    let dir = TempDir::new("umask");
    let cf = dir.0.join("lvs.cf");
    std::fs::write(&cf, cluster(61, "rr", &[1], "")).unwrap();
    let sock = dir.0.join("run/fulcrum/control.sock");
    let cmd = format!(
        "umask 0; exec {BIN} run --config {} --control {}",
        cf.display(),
        sock.display()
    );
    let _d = Proc(
        Command::new("sh")
            .args(["-c", &cmd])
            .env("FULCRUM_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the control socket", || UnixStream::connect(&sock).is_ok());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.0.join("run")), 0o700);
}

/// Whether the peer closes `s` within `secs` seconds; what it sent first.
fn closed_within(s: &mut impl Read, secs: u64) -> Option<String> {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t.elapsed() < Duration::from_secs(secs) {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(String::from_utf8_lossy(&got).into_owned()),
        }
    }
    None
}

#[test]
fn half_sent_control_and_metrics_requests_are_closed_and_others_served() {
    let _rs = realservers(62, 1);
    let d = Director::start_with(
        "halfsent",
        &cluster(62, "rr", &[1], ""),
        &["--metrics", "127.62.0.9:9100"],
    );
    // Half a control request, and half an HTTP request head.
    let mut ctl = UnixStream::connect(&d.control).unwrap();
    ctl.write_all(br#"{"Adm":{"args":["-L""#).unwrap();
    ctl.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut http = TcpStream::connect("127.62.0.9:9100").unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    http.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Meanwhile everyone else is served.
    let t = Instant::now();
    assert!(d.ok("-L -n").contains("127.62.0.1:8080"));
    assert!(t.elapsed() < Duration::from_secs(1));
    // The half-sent requests are dropped: metrics after its 5 s header
    // timeout, control after its 10 s request timeout, with a reason.
    assert!(
        closed_within(&mut http, 8).is_some(),
        "a half-sent metrics request is still held after 8 s"
    );
    let said = closed_within(&mut ctl, 6).expect("a half-sent control request is still held");
    assert!(said.contains("no complete request within 10s"), "{said}");
}

#[test]
fn an_oversized_control_request_is_refused() {
    let _rs = realservers(63, 1);
    let d = Director::start("oversized", &cluster(63, "rr", &[1], ""));
    let mut ctl = UnixStream::connect(&d.control).unwrap();
    ctl.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // 17 MiB without a newline: the director stops reading at 16 MiB.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        if ctl.write_all(&chunk).is_err() {
            break;
        }
    }
    let said = closed_within(&mut ctl, 5).expect("the connection stays open");
    assert!(said.contains("request longer than"), "{said}");
    assert!(d.ok("-L -n").contains("127.63.0.1:8080"));
}

/// One request line to the control socket, its answer line decoded.
fn control_line(control: &std::path::Path, line: &str) -> fulcrum_api::control::Response {
    let mut ctl = UnixStream::connect(control).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ctl.write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    let mut byte = [0u8; 1];
    while ctl.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        answer.push(byte[0] as char);
    }
    fulcrum_api::control::decode(&answer).unwrap()
}

/// Typed commands no ipvsadm command line gives, written straight to the
/// control socket, are refused with what is wrong; the string form older
/// clients sent is refused whole — neither changes the table.
#[test]
fn forged_and_outdated_control_requests_change_nothing() {
    use fulcrum_api::control::{Request, encode};
    use fulcrum_api::ipvsadm::{AdmCommand, DestArgs, Reply};
    use fulcrum_core::{Forwarding, Protocol, ServiceKey};
    let _rs = realservers(81, 1);
    let d = Director::start("forged", &cluster(81, "rr", &[1], ""));
    let before = d.ok("-L -n");
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "127.81.0.1".parse().unwrap(),
        port: 8080,
    };
    let dest = |weight| {
        AdmCommand::AddDest(
            key,
            DestArgs {
                addr: "127.81.0.9".parse().unwrap(),
                port: 8081,
                fwd: Forwarding::Masq,
                weight,
                u_threshold: 0,
                l_threshold: 0,
            },
        )
    };
    let forged = encode(&Request::Adm {
        commands: vec![dest(u32::MAX), AdmCommand::SetTimeout(0, u32::MAX, 0)],
    });
    let r = control_line(&d.control, &forged);
    assert_eq!(r.replies.len(), 2, "{r:?}");
    for (reply, want) in r
        .replies
        .iter()
        .zip(["weight 4294967295", "timeout 4294967295"])
    {
        let Reply::Failed { message, exit_code } = reply else {
            panic!("taken: {reply:?}");
        };
        assert_eq!(*exit_code, 2);
        assert!(message.contains(want), "{message}");
    }
    let r = control_line(&d.control, "{\"cmd\":\"adm\",\"args\":[\"-C\"]}\n");
    assert_eq!(r.exit_code, 2, "{r:?}");
    assert!(r.stderr.starts_with("bad control request"), "{r:?}");
    assert!(r.replies.is_empty());
    // A request whose second command does not decode is refused whole.
    let half = forged.replacen("\"SetTimeout\"", "\"Bogus\"", 1);
    assert_eq!(control_line(&d.control, &half).exit_code, 2);
    assert_eq!(d.ok("-L -n"), before);
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    // The same weight from the command line gets ipvsadm's own message.
    let (code, _, err) = d.adm("-a -t 127.81.0.1:8080 -r 127.81.0.9:8081 -m -w 4294967295");
    assert_eq!((code, err.as_str()), (2, "illegal weight specified\n"));
}

/// Whether a connection to `vip` is served: a whole HTTP answer.
fn served(vip: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(vip) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut r = String::new();
    s.read_to_string(&mut r).is_ok() && r.starts_with("HTTP/1.")
}

/// Clients take every connection the director would hold: it stops
/// accepting at its limit instead of running out of descriptors (waiting
/// clients are reset after a second, or served when a place frees), keeps
/// answering `fulcrum adm` at once, keeps every real server in service
/// (its checks keep running), and serves again when the clients leave.
#[test]
fn descriptor_exhaustion_is_refused_at_the_limit_and_the_director_stays_in_control() {
    let _rs = realservers(64, 2);
    let vip = "127.64.0.1:8080";
    // ulimit -n 512: a reserve of 256, so 128 connections.
    let d = Director::start_limited(
        "nofile",
        &cluster(64, "rr", &[1, 1], " check_interval = 1\n timeout = 3\n"),
        &[],
        Some(512),
    );
    let status = d.run("status", &[]).1;
    assert!(status.contains("max_connections 128"), "{status}");
    // 1,000 idle clients.
    let mut held = Vec::new();
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect(vip) {
            held.push(s);
        }
    }
    wait_until("refusals at the limit", || {
        d.run("status", &[]).1.contains("refused at the limit")
    });
    // Longer than the checks' timeout: no real server is taken out.
    std::thread::sleep(Duration::from_secs(4));
    let t = Instant::now();
    let table = d.ok("-L -n");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "adm took {:?}",
        t.elapsed()
    );
    assert_eq!(table.matches("-> 127.64.0.").count(), 2, "{table}");
    let status = d.run("status", &[]).1;
    assert!(status.contains("connections: 128 open"), "{status}");
    assert!(!d.log().contains("real server down"), "{}", d.log());
    // A client over the limit waits at most a second, then is reset.
    let t = Instant::now();
    assert!(!served(vip));
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    // One that arrives while full is served as soon as a place frees (a
    // moment after the refusals above, which reset whatever is queued).
    std::thread::sleep(Duration::from_millis(100));
    let mut waiting = TcpStream::connect(vip).unwrap();
    waiting.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    held.drain(..200);
    let mut answer = String::new();
    waiting.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    drop(held);
    wait_until("service after the clients left", || served(vip));
}

#[test]
fn a_max_connections_the_descriptor_limit_cannot_hold_stops_the_start() {
    let dir = TempDir::new("maxconn");
    let cf = dir.0.join("lvs.cf");
    std::fs::write(
        &cf,
        format!("max_connections = 1000\n{}", cluster(65, "rr", &[1], "")),
    )
    .unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 512 && exec {BIN} run --config {} --control {}",
                cf.display(),
                dir.0.join("c.sock").display()
            ),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("max_connections = 1000 needs 3024 open files")
            && err.contains("ulimit -n 3024"),
        "{err}"
    );
}

/// 20,000 one-datagram flows from distinct client ports: each costs a
/// table entry's worth of memory, the flows stop at the limit, and the log
/// says so in a few lines, not one per datagram.
#[test]
fn a_udp_source_flood_costs_little_memory_and_few_log_lines() {
    let _rs = realserver("127.66.0.11:5353", "rs1", true);
    let cfg = "virtual dns {\n address = 127.66.0.1\n active = 1\n port = 53\n protocol = udp\n scheduler = rr\n checktype = off\n server rs1 {\n  address = 127.66.0.11\n  port = 5353\n  active = 1\n }\n}\n";
    let d = Director::start_limited("udpflood", cfg, &[], Some(4096));
    let before = d.rss_kib();
    // 4096 descriptors: 1,536 flows at most.
    let mut sent = 0;
    // Paced so that the service socket's receive buffer is not what drops
    // them.
    for _ in 0..100 {
        let socks: Vec<std::net::UdpSocket> = (0..200)
            .filter_map(|_| std::net::UdpSocket::bind("127.66.0.200:0").ok())
            .collect();
        for s in &socks {
            if s.send_to(b"x", "127.66.0.1:53").is_ok() {
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sent, 20_000);
    wait_until("the flood to be taken in", || {
        d.run("status", &[]).1.contains("refused at the limit")
    });
    std::thread::sleep(Duration::from_millis(500));
    let status = d.run("status", &[]).1;
    assert!(status.contains("connections: 1536 open"), "{status}");
    let grown = d.rss_kib().saturating_sub(before);
    eprintln!(
        "UDP flood: {grown} KiB more for 1536 flows ({} bytes per flow)",
        grown * 1024 / 1536
    );
    // Was about 60 KiB per flow (a 64 KiB buffer each).
    assert!(
        grown < 1536 * 2,
        "{grown} KiB for 1,536 flows: over 2 KiB each"
    );
    let lines = d.log().lines().count();
    assert!(lines < 20, "{lines} log lines:\n{}", d.log());
    // Still answering: a new client is refused (limit), the table listed.
    assert!(d.ok("-L -n").contains("127.66.0.1:53"));
}

/// The IPVS timeouts close proxied connections: an idle one after
/// `tcp_timeout`, a half-closed one (the client sent FIN, the real server
/// never reads nor closes) after `tcpfin_timeout`; one that keeps talking
/// stays; the table forgets them when the sockets close.
#[test]
fn idle_and_half_closed_connections_time_out_as_in_ipvs() {
    // A real server that accepts and then does nothing at all.
    let silent = std::net::TcpListener::bind("127.67.0.11:8081").unwrap();
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let cfg = format!(
        "tcp_timeout = 2\ntcpfin_timeout = 2\n{}",
        cluster(67, "rr", &[1], " checktype = off\n")
    );
    let d = Director::start("timeouts", &cfg);
    let vip = "127.67.0.1:8080";
    let open = || {
        let s = TcpStream::connect(vip).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s
    };
    let mut idle = open();
    let mut half = open();
    half.write_all(b"request").unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let mut talking = open();
    wait_until("three connections in the table", || {
        d.ok("-L -n -c").matches("127.67.0.11:8081").count() == 3
    });
    let t = Instant::now();
    let closed = |s: &mut TcpStream| {
        let mut b = [0u8; 16];
        !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let (mut idle_gone, mut half_gone) = (None, None);
    while t.elapsed() < Duration::from_secs(6) {
        talking.write_all(b"x").unwrap();
        if idle_gone.is_none() && closed(&mut idle) {
            idle_gone = Some(t.elapsed());
        }
        if half_gone.is_none() && closed(&mut half) {
            half_gone = Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let idle_gone = idle_gone.expect("the idle connection is still open after 6 s");
    let half_gone = half_gone.expect("the half-closed connection is still open after 6 s");
    assert!(idle_gone >= Duration::from_millis(1500), "{idle_gone:?}");
    assert!(half_gone >= Duration::from_millis(1500), "{half_gone:?}");
    // The talking one is still served; the table holds it alone as open
    // (the others wait out IPVS's CLOSE state).
    talking.write_all(b"still here").unwrap();
    assert!(!closed(&mut talking));
    let conns = d.ok("-L -n -c");
    assert_eq!(conns.matches("ESTABLISHED").count(), 1, "{conns}");
    assert_eq!(conns.matches("CLOSE ").count(), 2, "{conns}");
}

/// A second director on the same host with another control socket is
/// refused the virtual services the first one serves (TCP through
/// SO_REUSEPORT would have shared them silently; UDP too), naming it.
#[test]
fn a_second_director_for_the_same_service_is_refused_naming_the_first() {
    let _rs = realservers(68, 1);
    let cfg = format!(
        "{}virtual dns {{\n address = 127.68.0.1\n active = 1\n port = 53\n protocol = udp\n checktype = off\n server rs1 {{\n  address = 127.68.0.11\n  port = 53\n  active = 1\n }}\n}}\n",
        cluster(68, "rr", &[1], "")
    );
    let first = Director::start_with("first", &cfg, &["--workers", "2"]);
    for (what, cf) in [
        ("TCP", cluster(68, "rr", &[1], "")),
        ("UDP", cfg.replace("port = 8080", "port = 8090")),
    ] {
        let dir = TempDir::new(&format!("second-{what}"));
        std::fs::write(dir.0.join("lvs.cf"), &cf).unwrap();
        let out = Command::new(BIN)
            .args(["run", "--workers", "2", "--config"])
            .arg(dir.0.join("lvs.cf"))
            .arg("--control")
            .arg(dir.0.join("c.sock"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        let pid = first.proc.0.id();
        assert!(
            err.contains(&format!(
                "is already served on this host by pid {pid} (fulcrum)"
            )),
            "{what}: {err}"
        );
    }
    assert!(first.ok("-L -n").contains("127.68.0.1:8080"));
}

/// A field of a /proc status file, as a number (hex for capability sets).
fn proc_field(status: &str, field: &str) -> u64 {
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim();
    u64::from_str_radix(v, if field.starts_with("Cap") { 16 } else { 10 }).unwrap()
}

/// After start, every thread of the director — and every program it runs
/// — holds at most the capabilities the configuration needs (here, no
/// floating address and no failover: only CAP_NET_BIND_SERVICE), with
/// no_new_privs set.
#[test]
fn the_director_and_its_checks_keep_only_the_capabilities_they_need() {
    const NET_BIND_SERVICE: u64 = 1 << 10;
    let _rs = realservers(69, 1);
    let dir = TempDir::new("caps");
    let seen = dir.0.join("check-status");
    let check = format!(
        " send_program = \"cat /proc/self/status > {}\"\n",
        seen.display()
    );
    let d = Director::start("caps", &cluster(69, "rr", &[1], &check));
    let root = rustix::process::geteuid().is_root();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.proc.0.id())).unwrap();
    let mut threads = 0;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap();
        threads += 1;
        for f in ["CapEff:", "CapPrm:", "CapInh:"] {
            let v = proc_field(&status, f);
            assert_eq!(
                v & !NET_BIND_SERVICE,
                0,
                "thread {:?} {f} {v:#x}",
                t.file_name()
            );
        }
        if root {
            assert_eq!(proc_field(&status, "CapBnd:"), NET_BIND_SERVICE, "{status}");
        }
        assert_eq!(proc_field(&status, "NoNewPrivs:"), 1, "{status}");
    }
    assert!(
        threads >= 2,
        "the workers were looked at too ({threads} threads)"
    );
    let status = d.run("status", &[]).1;
    assert!(status.contains("privileges: uid "), "{status}");
    // The check program ran with the same limits.
    wait_until("the check program", || seen.exists());
    let child = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        proc_field(&child, "CapEff:") & !NET_BIND_SERVICE,
        0,
        "{child}"
    );
    assert_eq!(proc_field(&child, "NoNewPrivs:"), 1, "{child}");
    if root {
        assert_eq!(proc_field(&child, "CapBnd:"), NET_BIND_SERVICE, "{child}");
    }
}

/// `user = nobody`: the director started by root runs as nobody (no
/// supplementary groups) with the capabilities it needs, root's `fulcrum
/// adm` still reaches it, it serves, and a reload cannot change the user.
/// Needs root, as changing users does.
#[cfg_attr(
    not(netns_tests),
    ignore = "needs root: run with FULCRUM_NETNS_TESTS=1 as root (.ci/run does)"
)]
#[test]
fn the_director_runs_as_the_configured_user() {
    let _rs = realservers(70, 1);
    let dir = TempDir::new("runas");
    let cf = dir.0.join("lvs.cf");
    let cfg = format!("user = nobody\n{}", cluster(70, "rr", &[1], ""));
    std::fs::write(&cf, &cfg).unwrap();
    std::fs::set_permissions(&cf, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A directory the director creates (0700), which it gives to nobody.
    let control = dir.0.join("run/control.sock");
    let mut child = Proc(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cf)
            .arg("--control")
            .arg(&control)
            .env("FULCRUM_LOG", "warn")
            .stderr(std::fs::File::create(dir.0.join("log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let adm = |args: &[&str]| {
        Command::new(BIN)
            .arg("adm")
            .arg("--control")
            .arg(&control)
            .args(args)
            .output()
            .unwrap()
    };
    wait_until("the director", || adm(&["-L", "-n"]).status.success());
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    let line = |f: &str| {
        status
            .lines()
            .find(|l| l.starts_with(f))
            .unwrap()
            .to_string()
    };
    assert!(
        line("Uid:")
            .split_whitespace()
            .skip(1)
            .all(|u| u == "65534"),
        "{status}"
    );
    assert!(
        line("Gid:")
            .split_whitespace()
            .skip(1)
            .all(|g| g == "65534"),
        "{status}"
    );
    assert_eq!(line("Groups:").trim(), "Groups:", "{status}");
    assert_eq!(proc_field(&status, "CapEff:"), 1 << 10, "{status}");
    let st = Command::new(BIN)
        .args(["status", "--control"])
        .arg(&control)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&st.stdout)
            .contains("privileges: uid 65534, capabilities cap_net_bind_service")
    );
    assert!(served("127.70.0.1:8080"));
    // A reload that changes the user is refused, and changes nothing.
    std::fs::write(&cf, cfg.replace("user = nobody", "user = root")).unwrap();
    let r = Command::new(BIN)
        .args(["reload", "--control"])
        .arg(&control)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("`user` changed"));
    assert!(served("127.70.0.1:8080"));
    let _ = child.0.kill();
}

/// Many half-sent requests to the metrics port (a slow-loris): the
/// director keeps answering `fulcrum adm` at once, and metrics are served
/// again once the attackers' connections go (closed by them, or by the
/// 5 s header timeout).
#[test]
fn a_metrics_slow_loris_stalls_nothing() {
    let _rs = realservers(71, 1);
    let d = Director::start_with(
        "loris",
        &cluster(71, "rr", &[1], ""),
        &["--metrics", "127.71.0.9:9100"],
    );
    let mut held = Vec::new();
    for _ in 0..500 {
        if let Ok(mut s) = TcpStream::connect("127.71.0.9:9100") {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
            held.push(s);
        }
    }
    let t = Instant::now();
    assert!(d.ok("-L -n").contains("127.71.0.1:8080"));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(served("127.71.0.1:8080"));
    drop(held);
    wait_until("metrics again", || {
        let Ok(mut s) = TcpStream::connect("127.71.0.9:9100") else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        r.contains("fulcrum_up_seconds")
    });
}
