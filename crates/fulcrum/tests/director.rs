//! The director end to end on loopback: real `fulcrum run`, `fulcrum
//! realserver` and `fulcrum adm` processes, real TCP and UDP clients.
//! Every test uses its own 127.N.0.0/24 addresses and control socket. Peers
//! (nginx, HAProxy, keepalived's genhash, mail, FTP and DNS servers) run
//! beside it where a test needs them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

#[test]
fn wrr_gives_exact_shares_and_listings_count_them() {
    let _rs = realservers(21, 3);
    let d = Director::start("wrr", &cluster(21, "wrr", &[2000, 1000, 1000], ""));
    let names: Vec<String> = (0..400).map(|_| get("127.21.0.1:8080")).collect();
    let c = counts(&names);
    assert_eq!((c["rs1"], c["rs2"], c["rs3"]), (200, 100, 100));
    // Closed connections sit in TIME_WAIT: inactive, as IPVS counts them.
    assert_eq!(
        d.ok("-L -n"),
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  127.21.0.1:8080 wrr\n  -> 127.21.0.11:8081             Masq    2000   0          200       \n  -> 127.21.0.12:8081             Masq    1000   0          100       \n  -> 127.21.0.13:8081             Masq    1000   0          100       \n"
    );
    let stats = d.ok("-L -n --stats --exact");
    let svc: Vec<&str> = stats.lines().nth(3).unwrap().split_whitespace().collect();
    assert_eq!(&svc[..3], &["TCP", "127.21.0.1:8080", "400"], "{stats}");
    let in_bytes: u64 = svc[5].parse().unwrap();
    assert_eq!(in_bytes, 400 * 18, "each request is 18 bytes: {stats}");
    let rs1: Vec<&str> = stats.lines().nth(4).unwrap().split_whitespace().collect();
    assert_eq!(rs1[2], "200");
    let conns = d.ok("-L -n -c");
    assert_eq!(conns.lines().count(), 2 + 400, "{}", &conns[..200]);
    assert!(conns.lines().skip(2).all(|l| l.starts_with("TCP 01:5")
        && l.contains(" TIME_WAIT ")
        && l.contains(" 127.21.0.1:8080 ")));
    // The estimator runs every 2 s: after a tick, the rate shows.
    std::thread::sleep(Duration::from_millis(2300));
    let rate = d.ok("-L -n --rate");
    let cps: u64 = rate
        .lines()
        .nth(3)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(cps > 0, "{rate}");
    assert!(rate.starts_with("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"));
}

/// Four workers take connections from eight clients at once: each schedules
/// by itself, yet with the service's one scheduler, so the wrr sequence and
/// its shares stay the kernel's exactly, and the counts the controller keeps
/// come to every connection once.
#[test]
fn wrr_stays_exact_when_workers_schedule_concurrently() {
    let _rs = realservers(42, 3);
    let d = Director::start_with(
        "wrr-workers",
        &cluster(42, "wrr", &[2, 1, 1], ""),
        &["--workers", "4"],
    );
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                (0..50)
                    .map(|_| get("127.42.0.1:8080"))
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let names: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let c = counts(&names);
    assert_eq!((c["rs1"], c["rs2"], c["rs3"]), (200, 100, 100), "{c:?}");
    // Every connection reaches the table once: 400 entries in TIME_WAIT,
    // counted inactive where they went.
    let want = "  -> 127.42.0.11:8081             Masq    2      0          200       \n  -> 127.42.0.12:8081             Masq    1      0          100       \n  -> 127.42.0.13:8081             Masq    1      0          100       \n";
    let t = Instant::now();
    let mut l = d.ok("-L -n");
    while !l.ends_with(want) && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        l = d.ok("-L -n");
    }
    assert!(l.ends_with(want), "{l}");
    assert_eq!(d.ok("-L -n -c").lines().count(), 2 + 400);
}

#[test]
fn wlc_keeps_concurrent_connections_in_weight_ratio() {
    let _rs = realservers(22, 3);
    let d = Director::start("wlc", &cluster(22, "wlc", &[2, 1, 1], ""));
    let mut open = Vec::new();
    let mut names = Vec::new();
    for _ in 0..40 {
        let mut k = KeepAlive::open("127.22.0.1:8080");
        names.push(k.get());
        open.push(k);
    }
    let c = counts(&names);
    assert_eq!((c["rs1"], c["rs2"], c["rs3"]), (20, 10, 10));
    let l = d.ok("-L -n");
    assert!(
        l.contains("  -> 127.22.0.11:8081             Masq    2      20         0         \n"),
        "{l}"
    );
    assert!(
        l.contains("  -> 127.22.0.12:8081             Masq    1      10         0         \n"),
        "{l}"
    );
    drop(open);
}

#[test]
fn persistence_keeps_a_client_on_one_real_server() {
    let _rs = realservers(23, 3);
    let _d = Director::start(
        "persist",
        &cluster(23, "rr", &[1, 1, 1], " persistent = 60\n"),
    );
    let names: Vec<String> = (0..12).map(|_| get("127.23.0.1:8080")).collect();
    assert_eq!(counts(&names).len(), 1, "{names:?}");
}

#[test]
fn quiesce_lets_open_connections_finish_and_edit_changes_the_scheduler() {
    let _rs = realservers(24, 2);
    let d = Director::start("quiesce", &cluster(24, "rr", &[1, 1], ""));
    let mut held = KeepAlive::open("127.24.0.1:8080");
    let first = held.get();
    let rip = if first == "rs1" {
        "127.24.0.11:8081"
    } else {
        "127.24.0.12:8081"
    };
    d.ok(&format!("-e -t 127.24.0.1:8080 -r {rip} -m -w 0"));
    for _ in 0..6 {
        assert_ne!(
            get("127.24.0.1:8080"),
            first,
            "a quiesced real server gets no new connections"
        );
    }
    assert_eq!(held.get(), first, "the open connection still works");
    d.ok("-E -t 127.24.0.1:8080 -s wlc");
    assert!(d.ok("-L -n").contains("TCP  127.24.0.1:8080 wlc\n"));
    // What the proxy cannot do is refused, and the table is untouched.
    let (code, _, err) = d.adm("-a -t 127.24.0.1:8080 -r 127.24.0.13:8081");
    assert_eq!(code, 255);
    assert!(
        err.starts_with("the proxy data plane forwards by NAT only"),
        "{err}"
    );
    assert!(!d.ok("-L -n").contains("127.24.0.13"));
}

#[test]
fn reload_changes_real_servers_without_breaking_open_connections() {
    let _rs = realservers(25, 3);
    let d = Director::start("reload", &cluster(25, "rr", &[1, 1], ""));
    let mut held = KeepAlive::open("127.25.0.1:8080");
    let name = held.get();
    // Keep the server holding the connection, drop the other, add rs3.
    let keep = if name == "rs1" { 1 } else { 2 };
    let cfg = format!(
        "virtual web {{\n address = 127.25.0.1\n active = 1\n port = 8080\n scheduler = rr\n server rs{keep} {{\n  address = 127.25.0.1{keep}\n  port = 8081\n  active = 1\n }}\n server rs3 {{\n  address = 127.25.0.13\n  port = 8081\n  active = 1\n }}\n}}\n"
    );
    std::fs::write(d.cf(), cfg).unwrap();
    let (code, out, err) = d.run("reload", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("reloaded: virtual servers: 0 added, 0 removed, 0 changed"),
        "{out}"
    );
    // A real server new to the configuration serves after its first good
    // health check, a moment after the reload.
    wait_until("rs3 to pass its first check", || {
        d.ok("-L -n").contains("127.25.0.13:8081")
    });
    let l = d.ok("-L -n");
    assert!(!l.contains(&format!("127.25.0.1{}:8081", 3 - keep)), "{l}");
    assert_eq!(held.get(), name, "the open connection survives the reload");
    let names: Vec<String> = (0..4).map(|_| get("127.25.0.1:8080")).collect();
    assert!(names.contains(&"rs3".to_string()));
    // The table without its connection counts (the four connections just
    // made close on their own time).
    let table = || -> Vec<String> {
        d.ok("-L -n")
            .lines()
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let l = table();
    // An invalid file changes nothing and says why.
    std::fs::write(
        d.cf(),
        "virtual web {\n address = 127.25.0.1\n schedular = rr\n",
    )
    .unwrap();
    let (code, _, err) = d.run("reload", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown keyword `schedular`") && err.contains("nothing changed"),
        "{err}"
    );
    assert_eq!(table(), l);
    assert_eq!(held.get(), name);
}

#[test]
fn udp_service_by_flow_and_one_packet() {
    let _rs: Vec<Proc> = (0..2)
        .map(|i| {
            realserver(
                &format!("127.26.0.{}:5353", 11 + i),
                &format!("u{}", i + 1),
                true,
            )
        })
        .collect();
    let cfg = "virtual dns {\n address = 127.26.0.1\n active = 1\n protocol = udp\n port = 5300\n scheduler = rr\n server a {\n  address = 127.26.0.11\n  port = 5353\n  active = 1\n }\n server b {\n  address = 127.26.0.12\n  port = 5353\n  active = 1\n }\n}\n";
    let d = Director::start("udp", cfg);
    let ask = |s: &UdpSocket| {
        s.send_to(b"q", "127.26.0.1:5300").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(
            from,
            "127.26.0.1:5300".parse().unwrap(),
            "replies come from the virtual address"
        );
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    };
    let client = |port: u16| {
        let s = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    };
    let c1 = client(0);
    let first = ask(&c1);
    assert_eq!(ask(&c1), first, "one flow sticks to its real server");
    let c2 = client(0);
    assert_ne!(ask(&c2), first, "a new flow is scheduled (rr)");
    let l = d.ok("-L -n");
    assert!(l.contains("UDP  127.26.0.1:5300 rr\n"), "{l}");
    assert!(
        l.contains("Masq    1      0          1         \n"),
        "UDP flows count as inactive: {l}"
    );
    // One-packet scheduling: every datagram on its own.
    d.ok("-E -u 127.26.0.1:5300 -s rr -o");
    let c3 = client(0);
    let (a, b) = (ask(&c3), ask(&c3));
    assert_ne!(a, b, "ops schedules each datagram");
    assert!(d.ok("-L -n").contains("UDP  127.26.0.1:5300 rr ops\n"));
}

#[test]
fn no_destination_resets_the_client_and_is_counted() {
    let cfg = "virtual empty {\n address = 127.27.0.1\n active = 1\n port = 8080\n}\n";
    let d = Director::start("nodest", cfg);
    let mut s = TcpStream::connect("127.27.0.1:8080").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(n) => assert_eq!(n, 0, "no data from a service without real servers"),
    }
    wait_until("the refusal to be counted", || {
        d.run("status", &[])
            .1
            .contains("refused (no destination available): 1")
    });
    // A real server that is down: the client is reset too.
    d.ok("-a -t 127.27.0.1:8080 -r 127.27.0.9:9 -m");
    let mut s = TcpStream::connect("127.27.0.1:8080").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Err(_) | Ok(0)));
    wait_until("the reset to show", || {
        d.run("status", &[])
            .1
            .contains("a real server was unreachable: 1")
    });
}

#[test]
fn invoked_as_ipvsadm_it_is_fulcrum_adm() {
    let d = Director::start(
        "ipvsadm",
        "virtual web {\n address = 127.28.0.1\n active = 1\n port = 8080\n}\n",
    );
    let link = d.dir.0.join("ipvsadm");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let run = |args: &[&str], stdin: &str| {
        run_with_stdin(
            Command::new(&link)
                .args(args)
                .env("FULCRUM_CONTROL", &d.control),
            stdin,
        )
    };
    let (code, out, _) = run(&["-L", "-n"], "");
    assert_eq!(code, 0);
    assert!(out.contains("TCP  127.28.0.1:8080 wlc\n"));
    let (code, _, err) = run(&["-A", "-t", "127.28.0.1:8080"], "");
    assert_eq!((code, err.as_str()), (255, "Service already exists\n"));
    let (code, _, err) = run(&["-t", "x"], "");
    assert_eq!(
        (code, err.as_str()),
        (
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"
        )
    );
    let (code, _, err) = run(
        &["-R"],
        "-A -u 127.28.0.1:53 -s rr\n-a -u 127.28.0.1:53 -r 127.28.0.11:53 -m -w 3\n",
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let (_, out, _) = run(&["-S", "-n"], "");
    assert_eq!(
        out,
        "-A -t 127.28.0.1:8080 -s wlc\n-A -u 127.28.0.1:53 -s rr\n-a -u 127.28.0.1:53 -r 127.28.0.11:53 -m -w 3\n"
    );
    // Without a director, ipvsadm-style failure with a hint (exit 2).
    let o = Command::new(&link)
        .args(["-L", "-n"])
        .env("FULCRUM_CONTROL", d.dir.0.join("nothing.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach the Fulcrum director"));
    // What needs no director is answered without one: help, and a command
    // line that does not parse (with ipvsadm's own message and status).
    let alone = |args: &[&str]| {
        Command::new(&link)
            .args(args)
            .env("FULCRUM_CONTROL", d.dir.0.join("nothing.sock"))
            .output()
            .unwrap()
    };
    let o = alone(&["-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ipvsadm v1.31"));
    let o = alone(&[
        "-a",
        "-t",
        "127.28.0.1:8080",
        "-r",
        "127.28.0.9",
        "-w",
        "-1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "illegal weight specified\n"
    );
}

/// Whether a peer program is installed (see
/// [`fulcrum_testbed::missing_peer`] for when it is not).
fn have(program: &str, test: &str) -> bool {
    if Command::new(program).arg("-v").output().is_ok() {
        return true;
    }
    fulcrum_testbed::missing_peer(test, program);
    false
}

/// nginx in the foreground with these `server` blocks, its files in `dir`.
fn nginx(dir: &TempDir, servers: &str) -> Proc {
    let d = dir.0.display();
    std::fs::create_dir_all(dir.0.join("tmp")).unwrap();
    std::fs::write(
        dir.0.join("nginx.conf"),
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             {servers} }}\n"
        ),
    )
    .unwrap();
    Proc(
        Command::new("nginx")
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// nginx, listening with `proxy_protocol`, answers with the address it read
/// from the header (v1 for one real server, v2 for the other).
#[test]
fn proxy_protocol_v1_and_v2_tell_nginx_the_client_address() {
    if !have("nginx", "proxy_protocol test") {
        return;
    }
    let dir = TempDir::new("pp-nginx");
    let _nginx = nginx(
        &dir,
        "server { listen 127.29.0.11:8081 proxy_protocol; location / { return 200 \"$proxy_protocol_addr:$proxy_protocol_port\\n\"; } }\n\
         server { listen 127.29.0.12:8081 proxy_protocol; location / { return 200 \"$proxy_protocol_addr:$proxy_protocol_port\\n\"; } }\n",
    );
    wait_until("nginx", || TcpStream::connect("127.29.0.12:8081").is_ok());
    let cfg = "virtual one {\n address = 127.29.0.1\n active = 1\n port = 8080\n server a {\n  address = 127.29.0.11\n  port = 8081\n  active = 1\n  proxy_protocol = v1\n }\n}\nvirtual two {\n address = 127.29.0.2\n active = 1\n port = 8080\n server b {\n  address = 127.29.0.12\n  port = 8081\n  active = 1\n  proxy_protocol = v2\n }\n}\n";
    let _d = Director::start("pp", cfg);
    for vip in ["127.29.0.1:8080", "127.29.0.2:8080"] {
        let mut s = TcpStream::connect(vip).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        let body = r.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string();
        assert_eq!(
            body,
            me.to_string(),
            "{vip}: the real server saw the client through the PROXY header"
        );
    }
}

/// The weight `adm -L -n` lists for a real server, if it is in the table.
fn listed_weight(listing: &str, rs: &str) -> Option<u32> {
    listing.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&"->") && f.get(1) == Some(&rs)).then(|| f[3].parse().unwrap())
    })
}

fn agent(listen: &str, state: &std::path::Path) -> Proc {
    Proc(
        Command::new(BIN)
            .args(["agent", "--listen", listen, "--state-file"])
            .arg(state)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
    .listening(listen, "the agent")
}

#[test]
fn agents_set_weights_and_take_servers_out() {
    let _rs = realservers(32, 2);
    let cfg = "virtual web {\n address = 127.32.0.1\n active = 1\n port = 8080\n scheduler = wrr\n\
               load_monitor = agent\n agent_port = 9777\n check_interval = 0.2\n fall = 1\n reentry = 0\n timeout = 2\n\
               server rs1 {\n  address = 127.32.0.11\n  port = 8081\n  active = 1\n  weight = 100\n }\n\
               server rs2 {\n  address = 127.32.0.12\n  port = 8081\n  active = 1\n  weight = 100\n  checktype = agent\n }\n}\n";
    let states = TempDir::new("agent-states");
    let (a, b) = (states.0.join("a"), states.0.join("b"));
    std::fs::write(&a, "up 100%\n").unwrap();
    std::fs::write(&b, "up\n").unwrap();
    let agent_a = agent("127.32.0.11:9777", &a);
    let _agent_b = agent("127.32.0.12:9777", &b);
    let d = Director::start("agents", cfg);
    let weights = || {
        let l = d.ok("-L -n");
        (
            listed_weight(&l, "127.32.0.11:8081"),
            listed_weight(&l, "127.32.0.12:8081"),
        )
    };
    wait_until("both servers at full weight", || {
        weights() == (Some(100), Some(100))
    });

    // load_monitor = agent: the agent's share scales the configured weight.
    std::fs::write(&a, "up 50%\n").unwrap();
    wait_until("rs1 at half weight", || weights().0 == Some(50));
    assert!(
        d.run("status", &[]).1.contains("agent asks 50% of weight"),
        "status shows the share"
    );
    std::fs::write(&a, "drain\n").unwrap();
    wait_until("rs1 drained", || weights().0 == Some(0));

    // An agent that stops answering: the connect check still passes, so
    // the server stays in at its configured weight, and status says why.
    drop(agent_a);
    wait_until("rs1 back at its configured weight", || {
        weights().0 == Some(100)
    });
    assert!(d.run("status", &[]).1.contains("load unreadable"));

    // checktype = agent: the agent's line is the health check.
    std::fs::write(&b, "down # disk full\n").unwrap();
    wait_until("rs2 out of the table", || weights().1.is_none());
    let status = d.run("status", &[]).1;
    assert!(
        status.contains("disk full"),
        "status gives the agent's reason: {status}"
    );
    std::fs::write(&b, "up 25%\n").unwrap();
    wait_until("rs2 back at a quarter weight", || weights().1 == Some(25));
    // Traffic follows: rs1 100 to rs2 25 under wrr.
    let names: Vec<String> = (0..50).map(|_| get("127.32.0.1:8080")).collect();
    assert_eq!(
        counts(&names),
        HashMap::from([("rs1".into(), 40), ("rs2".into(), 10)])
    );
}

#[test]
fn external_checks_decide_health_and_dynamic_weights() {
    let _rs = realservers(33, 2);
    let dir = TempDir::new("external-codes");
    // Each real server's exit code is in a file named after its address.
    let code = |rs: &str, c: &str| std::fs::write(dir.0.join(rs), c).unwrap();
    code("127.33.0.11", "0");
    code("127.33.0.12", "0");
    let cfg = format!(
        "virtual web {{\n address = 127.33.0.1\n active = 1\n port = 8080\n scheduler = wrr\n\
         send_program = \"exit $(cat {}/%h)\"\n misc_dynamic = 1\n check_interval = 0.2\n fall = 1\n reentry = 0\n timeout = 2\n\
         server rs1 {{\n  address = 127.33.0.11\n  port = 8081\n  active = 1\n  weight = 10\n }}\n\
         server rs2 {{\n  address = 127.33.0.12\n  port = 8081\n  active = 1\n  weight = 10\n }}\n}}\n",
        dir.0.display()
    );
    let d = Director::start("external", &cfg);
    let weights = || {
        let l = d.ok("-L -n");
        (
            listed_weight(&l, "127.33.0.11:8081"),
            listed_weight(&l, "127.33.0.12:8081"),
        )
    };
    wait_until("both servers in at their weight", || {
        weights() == (Some(10), Some(10))
    });
    // misc_dynamic: exit 2..255 sets the weight to code - 2.
    code("127.33.0.11", "32");
    wait_until("rs1 at weight 30", || weights() == (Some(30), Some(10)));
    let names: Vec<String> = (0..40).map(|_| get("127.33.0.1:8080")).collect();
    assert_eq!(
        counts(&names),
        HashMap::from([("rs1".into(), 30), ("rs2".into(), 10)])
    );
    // Exit 1 fails: out of the table, and status gives the reason.
    code("127.33.0.12", "1");
    wait_until("rs2 out", || weights().1.is_none());
    let status = d.run("status", &[]).1;
    assert!(
        status.contains("exited with 1"),
        "status gives the reason: {status}"
    );
    code("127.33.0.12", "0");
    wait_until("rs2 back", || weights().1.is_some());
}

#[test]
fn status_names_real_servers_and_says_how_long_until_one_re_enters() {
    let _rs = realservers(36, 2);
    let dir = TempDir::new("reentry-status");
    let code = |rs: &str, c: &str| std::fs::write(dir.0.join(rs), c).unwrap();
    code("127.36.0.11", "0");
    code("127.36.0.12", "0");
    let cfg = format!(
        "virtual web {{\n address = 127.36.0.1\n active = 1\n port = 8080\n\
         send_program = \"exit $(cat {}/%h)\"\n check_interval = 0.2\n fall = 1\n reentry = 30\n timeout = 2\n\
         server rs1 {{\n  address = 127.36.0.11\n  port = 8081\n  active = 1\n }}\n\
         server alpha {{\n  address = 127.36.0.12\n  port = 8081\n  active = 1\n }}\n}}\n",
        dir.0.display()
    );
    let d = Director::start("reentry-status", &cfg);
    let status = || d.run("status", &[]).1;
    wait_until("both servers in", || {
        let s = status();
        s.contains("  -> 127.36.0.11:8081 (rs1)  weight 1  available")
            && s.contains("  -> 127.36.0.12:8081 (alpha)  weight 1  available")
    });
    code("127.36.0.12", "1");
    wait_until("alpha out of service, named", || {
        status().contains("  -- 127.36.0.12:8081 (alpha)  out of service: dead (")
    });
    // Answering again: out until it has for `reentry`, and status says how
    // long that still is.
    code("127.36.0.12", "0");
    wait_until("alpha waiting to re-enter", || {
        status().contains("(alpha)  out of service: dead, answering again: waiting to re-enter (")
    });
    let s = status();
    let left: u64 = s
        .split("waiting to re-enter (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{s}"));
    assert!((1..=30).contains(&left), "{s}");
}

/// A test CA and a certificate for `rs.test` signed by it, made with
/// openssl: (ca.pem, rs.pem, rs.key).
fn test_certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Fulcrum test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "rs.key",
            "-out",
            "rs.csr",
            "-subj",
            "/CN=rs.test",
        ],
    ]
    .concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:rs.test\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "rs.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "rs.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (dir.join("ca.pem"), dir.join("rs.pem"), dir.join("rs.key"))
}

/// nginx serving `dir/www` over HTTP on 127.NET.0.11:8081 and HTTPS (the
/// `rs.test` certificate) on 127.NET.0.11:8443.
fn https_nginx(dir: &TempDir, net: u8) -> (Proc, PathBuf) {
    let (ca, cert, key) = test_certificates(&dir.0);
    let www = dir.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("health"), "ok\n").unwrap();
    let p = nginx(
        dir,
        &format!(
            "server {{ listen 127.{net}.0.11:8081; root {w}; }}\n\
             server {{ listen 127.{net}.0.11:8443 ssl; ssl_certificate {c}; ssl_certificate_key {k}; root {w}; }}\n",
            w = www.display(),
            c = cert.display(),
            k = key.display()
        ),
    );
    wait_until("nginx", || {
        TcpStream::connect(format!("127.{net}.0.11:8443")).is_ok()
    });
    (p, ca)
}

#[test]
fn genhash_prints_what_keepalived_genhash_prints() {
    if !have("nginx", "genhash test") || !have("openssl", "genhash test") {
        return;
    }
    if Command::new("genhash").arg("-h").output().is_err() {
        fulcrum_testbed::missing_peer("genhash test", "keepalived's genhash");
        return;
    }
    let dir = TempDir::new("genhash-peer");
    let (_nginx, _) = https_nginx(&dir, 35);
    std::fs::write(
        dir.0.join("www/page.html"),
        "<h1>Fulcrum</h1>\n".repeat(500),
    )
    .unwrap();
    for (port, tls) in [("8081", false), ("8443", true)] {
        let mut args = vec!["-s", "127.35.0.11", "-p", port, "-u", "/page.html"];
        if tls {
            args.insert(0, "-S");
        }
        let ours = Command::new(BIN)
            .arg("genhash")
            .args(&args)
            .output()
            .unwrap();
        let theirs = Command::new("genhash").args(&args).output().unwrap();
        let ours = String::from_utf8(ours.stdout).unwrap();
        let theirs = String::from_utf8(theirs.stdout).unwrap();
        assert_eq!(ours.trim().len(), 32, "a digest: {ours}");
        assert_eq!(
            ours.trim(),
            theirs.trim(),
            "port {port}: the same digest as keepalived"
        );
        assert_eq!(
            ours.trim(),
            fulcrum_health::http::md5_hex("<h1>Fulcrum</h1>\n".repeat(500).as_bytes())
        );
    }
    let (code, _, err) = {
        let o = Command::new(BIN)
            .args(["genhash", "-s", "127.35.0.11", "-p", "9", "-u", "/"])
            .output()
            .unwrap();
        (
            o.status.code(),
            o.stdout,
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    assert_eq!(code, Some(1));
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn http_checks_judge_status_digest_and_certificates() {
    if !have("nginx", "http check test") || !have("openssl", "http check test") {
        return;
    }
    let dir = TempDir::new("httpcheck-peer");
    let (_nginx, ca) = https_nginx(&dir, 34);
    let ok_digest = fulcrum_health::http::md5_hex(b"ok\n");
    let common =
        "active = 1\n port = 8080\n check_interval = 0.2\n fall = 1\n reentry = 0\n timeout = 2\n";
    let cfg = format!(
        "virtual plain {{\n address = 127.34.0.1\n {common} checktype = http_get\n request = /health\n digest = {ok_digest}\n\
           server a {{\n  address = 127.34.0.11\n  port = 8081\n  active = 1\n }}\n}}\n\
         virtual tls {{\n address = 127.34.0.2\n {common} checktype = https_get\n request = /health\n virtualhost = rs.test\n tls_ca = {ca}\n receive = \"^ok\"\n\
           server a {{\n  address = 127.34.0.11\n  port = 8443\n  active = 1\n }}\n}}\n\
         virtual wrongname {{\n address = 127.34.0.3\n {common} checktype = https_get\n request = /health\n virtualhost = other.test\n tls_ca = {ca}\n\
           server a {{\n  address = 127.34.0.11\n  port = 8443\n  active = 1\n }}\n}}\n\
         virtual missing {{\n address = 127.34.0.4\n {common} checktype = http_get\n request = /nothing-here\n\
           server a {{\n  address = 127.34.0.11\n  port = 8081\n  active = 1\n }}\n}}\n",
        ca = ca.display()
    );
    let d = Director::start("httpcheck", &cfg);
    let listed = |vip: &str, rs: &str| {
        let l = d.ok(&format!("-L -n -t {vip}"));
        listed_weight(&l, rs).is_some()
    };
    wait_until("the good checks", || {
        listed("127.34.0.1:8080", "127.34.0.11:8081")
            && listed("127.34.0.2:8080", "127.34.0.11:8443")
    });
    let status = d.run("status", &[]).1;
    assert!(
        !listed("127.34.0.3:8080", "127.34.0.11:8443"),
        "a certificate for another name fails"
    );
    assert!(status.contains("TLS handshake"), "{status}");
    assert!(!listed("127.34.0.4:8080", "127.34.0.11:8081"));
    assert!(status.contains("status 404 (expected 200-299)"), "{status}");
    // The page changes: the digest no longer matches and the server leaves.
    std::fs::write(dir.0.join("www/health"), "ok, but different\n").unwrap();
    wait_until("the digest failure", || {
        !listed("127.34.0.1:8080", "127.34.0.11:8081")
    });
    let status = d.run("status", &[]).1;
    assert!(
        status.contains(&format!("(expected {ok_digest})")),
        "{status}"
    );
    assert!(
        listed("127.34.0.2:8080", "127.34.0.11:8443"),
        "the regex still matches"
    );
    std::fs::write(dir.0.join("www/health"), "ok\n").unwrap();
    wait_until("the server's return", || {
        listed("127.34.0.1:8080", "127.34.0.11:8081")
    });
}

/// Real SMTP, FTP, POP3, IMAP and DNS servers from Debian on 127.37.0.x:
/// dnsmasq (.11:5353 UDP), vsftpd (.12:2121), dovecot (.13: IMAP 1143,
/// POP3 1110), OpenSMTPD (.14:2525). `None` when one is missing.
fn service_peers(dir: &TempDir) -> Option<Vec<Proc>> {
    for p in ["dnsmasq", "vsftpd", "dovecot", "smtpd"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(p).exists());
        if !found {
            fulcrum_testbed::missing_peer("service checks test", p);
            return None;
        }
    }
    let d = dir.0.display();
    let spawn = |prog: &str, args: &[&str]| {
        Proc(
            Command::new(prog)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut procs = vec![spawn(
        "dnsmasq",
        &[
            "-k",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.37.0.11",
            "--bind-interfaces",
            "--port=5353",
            "--address=/check.test/10.0.0.7",
            "--user=root",
            &format!("--pid-file={d}/dnsmasq.pid"),
        ],
    )];
    std::fs::create_dir_all(dir.0.join("empty")).unwrap();
    std::fs::write(
        dir.0.join("vsftpd.conf"),
        format!("listen=YES\nlisten_ipv6=NO\nlisten_address=127.37.0.12\nlisten_port=2121\nbackground=NO\nanonymous_enable=NO\nlocal_enable=YES\nseccomp_sandbox=NO\nsecure_chroot_dir={d}/empty\nxferlog_enable=NO\n"),
    )
    .unwrap();
    procs.push(spawn("vsftpd", &[&format!("{d}/vsftpd.conf")]));
    std::fs::create_dir_all(dir.0.join("dovecot")).unwrap();
    std::fs::write(
        dir.0.join("dovecot.conf"),
        format!(
            "protocols = imap pop3\nlisten = 127.37.0.13\nbase_dir = {d}/dovecot\nstate_dir = {d}/dovecot\nlog_path = {d}/dovecot/log\nssl = no\n\
             default_internal_user = dovecot\ndefault_internal_group = dovecot\ndefault_login_user = dovenull\n\
             service imap-login {{\n inet_listener imap {{\n  port = 1143\n }}\n inet_listener imaps {{\n  port = 0\n }}\n}}\n\
             service pop3-login {{\n inet_listener pop3 {{\n  port = 1110\n }}\n inet_listener pop3s {{\n  port = 0\n }}\n}}\n\
             passdb {{\n driver = static\n args = password=unused\n}}\nuserdb {{\n driver = static\n args = uid=dovecot gid=dovecot home={d}/dovecot\n}}\n"
        ),
    )
    .unwrap();
    procs.push(spawn(
        "dovecot",
        &["-F", "-c", &format!("{d}/dovecot.conf")],
    ));
    std::fs::write(
        dir.0.join("smtpd.conf"),
        "listen on 127.37.0.14 port 2525\naction \"local\" mbox\nmatch from any for domain \"check.test\" action \"local\"\n",
    )
    .unwrap();
    procs.push(spawn("smtpd", &["-d", "-f", &format!("{d}/smtpd.conf")]));
    for a in [
        "127.37.0.12:2121",
        "127.37.0.13:1143",
        "127.37.0.13:1110",
        "127.37.0.14:2525",
    ] {
        wait_until(a, || TcpStream::connect(a).is_ok());
    }
    Some(procs)
}

#[test]
fn protocol_checks_against_real_mail_ftp_and_dns_servers() {
    let dir = TempDir::new("service-peers");
    let Some(_peers) = service_peers(&dir) else {
        return;
    };
    let common = "active = 1\n check_interval = 0.2\n fall = 1\n reentry = 0\n timeout = 2\n";
    let vs = |name: &str, n: u8, port: u16, check: &str, rs: &str, rport: u16| {
        format!(
            "virtual {name} {{\n address = 127.37.0.{n}\n port = {port}\n {common} {check}\n server a {{\n  address = {rs}\n  port = {rport}\n  active = 1\n }}\n}}\n"
        )
    };
    let cfg = [
        vs(
            "dns",
            1,
            8053,
            "protocol = udp\n checktype = dns\n request = check.test\n receive = 10.0.0.7",
            "127.37.0.11",
            5353,
        ),
        vs(
            "nxdns",
            2,
            8053,
            "protocol = udp\n checktype = dns\n request = missing.test",
            "127.37.0.11",
            5353,
        ),
        vs("ftp", 3, 21, "checktype = ftp", "127.37.0.12", 2121),
        vs("imap", 4, 143, "checktype = imap", "127.37.0.13", 1143),
        vs("pop", 5, 110, "checktype = pop", "127.37.0.13", 1110),
        vs("smtp", 6, 25, "checktype = smtp", "127.37.0.14", 2525),
        vs("notftp", 7, 21, "checktype = ftp", "127.37.0.13", 1110),
    ]
    .concat();
    let d = Director::start("services", &cfg);
    let listed = |proto: &str, vip: &str, rs: &str| {
        let l = d.ok(&format!("-L -n {proto} {vip}"));
        listed_weight(&l, rs).is_some()
    };
    wait_until("every good check", || {
        listed("-u", "127.37.0.1:8053", "127.37.0.11:5353")
            && listed("-t", "127.37.0.3:21", "127.37.0.12:2121")
            && listed("-t", "127.37.0.4:143", "127.37.0.13:1143")
            && listed("-t", "127.37.0.5:110", "127.37.0.13:1110")
            && listed("-t", "127.37.0.6:25", "127.37.0.14:2525")
    });
    assert!(!listed("-u", "127.37.0.2:8053", "127.37.0.11:5353"));
    assert!(!listed("-t", "127.37.0.7:21", "127.37.0.13:1110"));
    let status = d.run("status", &[]).1;
    assert!(status.contains("dns: missing.test answered"), "{status}");
    assert!(
        status.contains("ftp: expected a greeting starting with 220, got \"+OK"),
        "a POP3 server is not an FTP server: {status}"
    );
}

#[test]
fn load_monitor_program_drives_nannys_weight_formula() {
    let _rs = realservers(38, 2);
    let dir = TempDir::new("load-programs");
    let script = dir.0.join("load");
    // rs1's load comes from a file; rs2's is this host's own `uptime`.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n 127.38.0.11) [ -s {d}/rs1 ] || exit 1; printf ' 10:00:00 up 3 days,  2 users,  load average: %s, 0.50, 0.50\\n' \"$(cat {d}/rs1)\" ;;\n *) exec uptime ;;\nesac\n",
            d = dir.0.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    std::fs::write(dir.0.join("rs1"), "0.00").unwrap();
    let cfg = format!(
        "virtual web {{\n address = 127.38.0.1\n active = 1\n port = 8080\n scheduler = wrr\n\
         load_monitor = {s}\n load_interval = 0.2\n check_interval = 0.2\n reentry = 0\n\
         server rs1 {{\n  address = 127.38.0.11\n  port = 8081\n  active = 1\n  weight = 100\n }}\n\
         server rs2 {{\n  address = 127.38.0.12\n  port = 8081\n  active = 1\n  weight = 100\n }}\n}}\n",
        s = script.display()
    );
    let d = Director::start("loadmon", &cfg);
    let weight = |rs: &str| listed_weight(&d.ok("-L -n"), rs);
    // Idle: nanny's formula raises the weight by half of it per reading, up
    // to ten times the configured weight.
    wait_until("rs1 at ten times its weight", || {
        weight("127.38.0.11:8081") == Some(1000)
    });
    let w2 = weight("127.38.0.12:8081").unwrap();
    assert!(
        (100..=1000).contains(&w2),
        "rs2 follows this host's real uptime: {w2}"
    );
    let status = d.run("status", &[]).1;
    assert!(status.contains("load 0.00, weight 1000"), "{status}");
    // Loaded: back down, never below the configured weight.
    std::fs::write(dir.0.join("rs1"), "9.00").unwrap();
    wait_until("rs1 back at its weight", || {
        weight("127.38.0.11:8081") == Some(100)
    });
    // Unreadable: the configured weight applies and status says so.
    std::fs::write(dir.0.join("rs1"), "0.00").unwrap();
    wait_until("rs1 climbing again", || {
        weight("127.38.0.11:8081") > Some(100)
    });
    std::fs::write(dir.0.join("rs1"), "").unwrap();
    wait_until("rs1 at its configured weight", || {
        weight("127.38.0.11:8081") == Some(100)
    });
    assert!(d.run("status", &[]).1.contains("load unreadable"));
}

/// A Prometheus scrape: the body of `GET /metrics`.
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(
        r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
        "{r}"
    );
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn metrics_count_traffic_checks_and_transitions() {
    let mut rs = realservers(39, 2);
    let cfg = cluster(
        39,
        "rr",
        &[1, 1],
        " check_interval = 0.2\n fall = 1\n reentry = 0\n",
    );
    let d = Director::start_with("metrics", &cfg, &["--metrics", "127.39.0.1:9100"]);
    for _ in 0..4 {
        get("127.39.0.1:8080");
    }
    let labels = |rs: &str, name: &str| {
        format!(
            "{{service=\"tcp 127.39.0.1:8080\",virtual_server=\"web\",real_server=\"{rs}\",name=\"{name}\"}}"
        )
    };
    wait_until("the four connections counted", || {
        scrape("127.39.0.1:9100")
            .contains("fulcrum_service_connections_total{service=\"tcp 127.39.0.1:8080\",virtual_server=\"web\"} 4")
    });
    rs.remove(1);
    wait_until("rs2's departure counted", || {
        scrape("127.39.0.1:9100").contains(&format!(
            "fulcrum_real_server_down_transitions_total{} 1",
            labels("127.39.0.12:8081", "rs2")
        ))
    });
    let m = scrape("127.39.0.1:9100");
    assert!(
        m.contains("# TYPE fulcrum_health_checks_failed_total counter"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "fulcrum_real_server_alive{} 0",
            labels("127.39.0.12:8081", "rs2")
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "fulcrum_real_server_alive{} 1",
            labels("127.39.0.11:8081", "rs1")
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "fulcrum_real_server_up_transitions_total{} 1",
            labels("127.39.0.11:8081", "rs1")
        )),
        "{m}"
    );
    assert!(
        m.contains("fulcrum_real_server_weight{service=\"tcp 127.39.0.1:8080\",virtual_server=\"web\",real_server=\"127.39.0.11:8081\"} 1"),
        "{m}"
    );
    drop(d);
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

/// A real HAProxy with `agent-check` pointed at `fulcrum agent` follows
/// what the agent says.
#[test]
fn haproxy_follows_fulcrum_agent() {
    if !have("haproxy", "haproxy_follows_fulcrum_agent") {
        return;
    }
    let dir = TempDir::new("haproxy-agent");
    let state = dir.0.join("state");
    std::fs::write(&state, "up 50%\n").unwrap();
    let _rs = realserver("127.31.0.11:8081", "rs1", false);
    let _agent = agent("127.31.0.21:9777", &state);
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

/// A real server that streams `n` lines, `gap` apart, to every client.
fn streaming_server(addr: &str, n: u32, gap: f64) -> Proc {
    let script = format!(
        "import socket, threading, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{}', {})); s.listen(64)\n\
         def serve(c):\n\
         \x20   for i in range({n}):\n\
         \x20       c.sendall(b'chunk %d\\n' % i); time.sleep({gap})\n\
         \x20   c.close()\n\
         while True:\n\
         \x20   c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()\n",
        addr.split(':').next().unwrap(),
        addr.split(':').nth(1).unwrap()
    );
    let p = Proc(
        Command::new("python3")
            .args(["-c", &script])
            .spawn()
            .unwrap(),
    );
    let a: SocketAddr = addr.parse().unwrap();
    wait_until("the streaming server", || TcpStream::connect(a).is_ok());
    p
}

#[test]
fn sigterm_drains_open_connections_and_refuses_new_ones() {
    let _rs = streaming_server("127.41.0.11:8081", 8, 0.3);
    let cfg = |drain: &str| {
        format!(
            "{drain}virtual web {{\n address = 127.41.0.1\n active = 1\n port = 8080\n checktype = off\n server rs1 {{\n  address = 127.41.0.11\n  port = 8081\n  active = 1\n }}\n}}\n"
        )
    };
    let read_all = |mut s: TcpStream| {
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    // The default drain (10 s): the stream runs to its end, new connections
    // are refused meanwhile, and the director exits as the stream ends.
    let mut d = Director::start("drain", &cfg(""));
    let mut s = TcpStream::connect("127.41.0.1:8080").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut first = [0u8; 8];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"chunk 0\n");
    d.proc.signal("TERM");
    wait_until("new connections refused", || {
        TcpStream::connect("127.41.0.1:8080").is_err()
    });
    let rest = read_all(s);
    assert_eq!(rest.lines().count(), 7, "the whole stream: {rest:?}");
    assert!(rest.ends_with("chunk 7\n"), "{rest:?}");
    let status = d.proc.exits_within(Duration::from_secs(5), &|| {
        "the director did not exit after the drain".into()
    });
    assert!(status.success(), "{}", d.log());
    // A short drain_timeout cuts what is still open when it ends, and says so.
    let mut d = Director::start("drain-short", &cfg("drain_timeout = 0.5\n"));
    let mut s = TcpStream::connect("127.41.0.1:8080").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_exact(&mut first).unwrap();
    d.proc.signal("TERM");
    let rest = read_all(s);
    assert!(rest.lines().count() < 7, "cut before the end: {rest:?}");
    let _ = d.proc.0.wait();
    assert!(
        d.log().contains("drain_timeout is over, 1 connection cut"),
        "{}",
        d.log()
    );
}

/// Kills a process by id when dropped (the director a restart started).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// `fulcrum restart`: a new director takes the listening sockets over
/// while clients keep connecting — none is refused or fails — and the old
/// one finishes its open stream to the end, then exits.
#[test]
fn restart_hands_the_listeners_over_without_refusing_or_cutting() {
    let _rs = streaming_server("127.43.0.11:8081", 8, 0.3);
    let cfg = "virtual web {\n address = 127.43.0.1\n active = 1\n port = 8080\n checktype = off\n server rs1 {\n  address = 127.43.0.11\n  port = 8081\n  active = 1\n }\n}\n";
    let mut d = Director::start("restart", cfg);
    let mut stream = TcpStream::connect("127.43.0.1:8080").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut first = [0u8; 8];
    stream.read_exact(&mut first).unwrap();
    // Clients connect all through the restart; each reads the first chunk.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = TcpStream::connect("127.43.0.1:8080").and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(3)))?;
                    let mut b = [0u8; 8];
                    s.read_exact(&mut b)?;
                    Ok(b)
                });
                match r {
                    Ok(b) if &b == b"chunk 0\n" => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                // Each connection opens a 2.4 s stream on the real server.
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(BIN)
        .args(["restart", "--control", d.control.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let pid: u32 = said
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {said:?}"));
    let _new = KillOnDrop(pid);
    assert_ne!(pid, d.proc.0.id());
    // The old director's stream runs to its end, then it exits.
    let mut rest = String::new();
    let _ = stream.read_to_string(&mut rest);
    drop(stream);
    assert_eq!(
        rest.lines().count(),
        7,
        "the whole stream: {rest:?}\n{}",
        d.log()
    );
    // Its last clients' streams end within 2.4 s of the restart.
    let log = d.dir.0.join("director.log");
    let status = d.proc.exits_within(Duration::from_secs(5), &|| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        format!("the old director did not exit after its streams:\n{log}")
    });
    assert!(status.success(), "{}", d.log());
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = hammer.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(ok >= 20, "only {ok} connections while restarting");
    // The new director answers on the same control socket, and serves.
    let l = d.ok("-L -n");
    assert!(l.contains("-> 127.43.0.11:8081"), "{l}");
    assert!(
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .unwrap()
            .success(),
        "the new director is not running"
    );
    let mut s = TcpStream::connect("127.43.0.1:8080").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"chunk 0\n");
}

/// A successor that cannot start (its lvs.cf broke since) leaves the
/// running director as it was, and says why; a forged inheritance is
/// refused with what is wrong.
#[test]
fn a_failed_restart_changes_nothing_and_forged_sockets_are_refused() {
    let _rs = realservers(44, 1);
    let d = Director::start("restart-fail", &cluster(44, "rr", &[1], ""));
    assert_eq!(get("127.44.0.1:8080"), "rs1");
    std::fs::write(d.dir.0.join("lvs.cf"), "virtual web {\n nosuchkey = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["restart", "--control", d.control.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exited before it served") && err.contains("this director carries on"),
        "{err}"
    );
    assert_eq!(get("127.44.0.1:8080"), "rs1");
    assert!(d.ok("-L -n").contains("127.44.0.11:8081"));
    let good = d.dir.0.join("good.cf");
    std::fs::write(&good, cluster(44, "rr", &[1], "")).unwrap();
    for (spec, want) in [
        (
            "control=99",
            "FULCRUM_INHERIT: descriptor 99: Bad file descriptor",
        ),
        (
            "control=1",
            "FULCRUM_INHERIT: descriptor 1: Invalid argument",
        ),
        (
            "tcp/127.44.0.1=7",
            "FULCRUM_INHERIT: `tcp/127.44.0.1` is not a socket Fulcrum hands over",
        ),
    ] {
        let out = Command::new(BIN)
            .args([
                "run",
                "--config",
                good.to_str().unwrap(),
                "--control",
                "/nonexistent/c.sock",
            ])
            .env("FULCRUM_INHERIT", spec)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(err.contains(want), "{spec}: {err}");
    }
}
