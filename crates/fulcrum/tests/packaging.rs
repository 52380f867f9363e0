//! What the package installs works: the manual pages render without a
//! warning, the completions load in bash, the systemd unit passes
//! `systemd-analyze verify`, and the director speaks systemd's notify
//! protocol (ready, reloading, stopping) on a real notify socket.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn manual_pages_render_without_warnings_and_name_every_command() {
    if !have("man") {
        fulcrum_testbed::missing_peer("manual_pages_render_without_warnings", "man (man-db)");
        return;
    }
    let dir = TempDir::new("manpages");
    let out = Command::new(BIN)
        .arg("manpages")
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "fulcrum.1",
        "fulcrum-run.1",
        "fulcrum-adm.1",
        "fulcrum-passwd.1",
        "lvs.cf.5",
    ] {
        let p = dir.0.join(page);
        assert!(p.exists(), "{page} missing");
        let r = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&p)
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success() && err.trim().is_empty(), "{page}: {err}");
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(text.len() > 200, "{page} is nearly empty: {text}");
        if page == "lvs.cf.5" {
            for key in [
                "serial_no",
                "backup_active",
                "scheduler",
                "console_users",
                "weight",
            ] {
                assert!(text.contains(key), "lvs.cf(5) lacks {key}");
            }
        }
        if page == "fulcrum.1" {
            assert!(
                text.contains("passwd") && text.contains("completions"),
                "{text}"
            );
        }
    }
}

#[test]
fn bash_completes_commands_and_options() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = TempDir::new("completions");
    let f = dir.0.join("fulcrum.bash");
    std::fs::write(&f, &out.stdout).unwrap();
    // Complete `fulcrum pa` and `fulcrum run --con` as bash would.
    let script = format!(
        "source {}; COMP_WORDS=(fulcrum pa); COMP_CWORD=1; _fulcrum fulcrum pa fulcrum; echo \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(fulcrum run --con); COMP_CWORD=2; _fulcrum fulcrum --con run; echo \"${{COMPREPLY[@]}}\"",
        f.display()
    );
    let r = Command::new("bash").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.split(' ').any(|w| w == "passwd")),
        "{text}"
    );
    assert!(
        lines.get(1).is_some_and(|l| l.contains("--config")
            && l.contains("--console")
            && l.contains("--control")),
        "{text} {}",
        String::from_utf8_lossy(&r.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if !have("systemd-analyze") {
        fulcrum_testbed::missing_peer("the_systemd_unit_verifies", "systemd-analyze (systemd)");
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/fulcrum.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Type=notify") && text.contains("ExecReload="));
    // Verified as installed, with this build's binary where the package puts it.
    let dir = TempDir::new("unit");
    let mine = dir.0.join("fulcrum.service");
    std::fs::write(&mine, text.replace("/usr/bin/fulcrum", BIN)).unwrap();
    let r = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&mine)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    let own: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("fulcrum.service"))
        .collect();
    assert!(r.status.success() && own.is_empty(), "{err}");
}

/// Messages on a notify socket, until one contains `want`.
fn until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no `{want}` from the director ({e}); it sent: {seen:?}"));
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(m.clone());
        if m.contains(want) {
            return;
        }
    }
}

#[test]
fn the_director_tells_systemd_ready_reloading_and_stopping() {
    let _rs = realservers(78, 1);
    let dir = TempDir::new("notify-files");
    let sock_path = dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = cluster(78, "rr", &[1], "");
    let cf = dir.0.join("lvs.cf");
    std::fs::write(&cf, &cfg).unwrap();
    let mut child = Proc(
        Command::new(BIN)
            .args(["run", "--config", cf.to_str().unwrap(), "--control"])
            .arg(dir.0.join("control.sock"))
            .env("NOTIFY_SOCKET", &sock_path)
            .env("FULCRUM_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let mut seen = Vec::new();
    until(&sock, "READY=1", &mut seen);
    assert!(seen.last().unwrap().contains("STATUS=serving"), "{seen:?}");
    assert_eq!(get("127.78.0.1:8080"), "rs1", "ready means serving");
    child.signal("HUP");
    until(&sock, "RELOADING=1", &mut seen);
    assert!(seen.last().unwrap().contains("MONOTONIC_USEC="), "{seen:?}");
    until(&sock, "READY=1", &mut seen);
    assert!(seen.last().unwrap().contains("reloaded"), "{seen:?}");
    child.signal("TERM");
    until(&sock, "STOPPING=1", &mut seen);
    let _ = child.0.wait();
}
