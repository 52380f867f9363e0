//! `fulcrum check` as a user runs it.

use std::process::Command;

fn root(rel: &str) -> String {
    format!("{}/../../{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn seed_examples_print_their_tables() {
    let want = "-A -t 1.2.3.1:80 -s wlc\n-a -t 1.2.3.1:80 -r 192.168.1.3:80 -m -w 2000\n-a -t 1.2.3.1:80 -r 192.168.1.4:80 -m -w 1000\n-a -t 1.2.3.1:80 -r 192.168.1.5:80 -m -w 1000\n";
    for f in ["examples/lvs.cf", "examples/piranha.cf"] {
        let (code, out, err) = check(&["--config", &root(f), "--save"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, want, "{f}");
        assert!(
            err.contains("OK: 1 virtual server with 3 real servers active (0 warnings)"),
            "{err}"
        );
    }
}

#[test]
fn broken_file_names_every_problem_and_fails() {
    let path = root("crates/fulcrum-config/tests/data/broken.cf");
    let (code, out, err) = check(&["--config", &path, "--save"]);
    assert_eq!(code, 1);
    assert_eq!(out, "", "no table for a broken file");
    assert_eq!(err.matches(": error: ").count(), 19, "{err}");
    assert!(
        err.contains("broken.cf:9:5: error: unknown keyword `schedular` in virtual server `web`")
    );
    assert!(err.contains("  hint: did you mean `scheduler`?"));
    assert!(err.ends_with("19 errors, 0 warnings; nothing would be applied\n"));
}

#[test]
fn forwarding_and_persistence_become_ipvsadm_options() {
    let dir = std::env::temp_dir().join(format!("fulcrum-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cf = dir.join("lvs.cf");
    std::fs::write(
        &cf,
        "dataplane = ipvs\nnetwork = direct\nvirtual web {\n address = 10.0.0.1\n active = 1\n persistent = 600\n pmask = 255.255.255.0\n scheduler = sh\n sched_flags = sh-fallback\n server a {\n  address = 10.1.0.1\n  active = 1\n  weight = 3\n }\n server b {\n  address = 10.1.0.2\n  active = 1\n  forwarding = tunnel\n }\n server c {\n  address = 10.1.0.3\n  active = 0\n }\n}\nvirtual off {\n address = 10.0.0.2\n active = 0\n}\nvirtual dns {\n address = 10.0.0.3\n active = 1\n protocol = udp\n port = 53\n forwarding = nat\n server d {\n  address = 10.1.0.4\n  active = 1\n  port = 5353\n }\n}\n",
    )
    .unwrap();
    let (code, out, err) = check(&["--config", cf.to_str().unwrap(), "--save"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "-A -t 10.0.0.1:80 -s sh -p 600 -M 255.255.255.0 -b sh-fallback\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 3\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 1 --tun-type ipip\n-A -u 10.0.0.3:53 -s wlc\n-a -u 10.0.0.3:53 -r 10.1.0.4:5353 -m -w 1\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreadable_file_is_an_error_with_a_hint() {
    let (code, _, err) = check(&["--config", "/nonexistent/lvs.cf"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("fulcrum: cannot read /nonexistent/lvs.cf: "));
}

#[test]
fn failover_files_say_what_this_host_would_be() {
    let (code, _, err) = check(&["--config", &root("examples/failover.cf")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("failover: `fulcrum run` would not start on this host: none of the directors (1.2.3.2, 1.2.3.3) is an address of this host"),
        "{err}"
    );
    let f = std::env::temp_dir().join(format!("fulcrum-check-ha-{}.cf", std::process::id()));
    std::fs::write(
        &f,
        "primary = 127.0.0.1\nbackup = 192.0.2.1\nbackup_active = 1\nvirtual v {\n address = 127.40.0.9\n active = 1\n server s {\n  address = 127.0.0.1\n  active = 1\n }\n}\n",
    )
    .unwrap();
    let (code, _, err) = check(&["--config", &f.to_string_lossy()]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("failover: on this host, director 127.0.0.1 at priority 200 with 192.0.2.1"),
        "{err}"
    );
}

/// Whether this host could give `fulcrum run` the kernel's IPVS.
fn host_has_ipvs() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
        || Command::new("modprobe")
            .args(["-n", "-q", "ip_vs"])
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn a_file_only_ipvs_can_forward_stops_where_auto_finds_no_ipvs() {
    if host_has_ipvs() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: this host has IPVS, so `dataplane = auto` would take it (the VM tests cover that)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("fulcrum-auto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cf = dir.join("lvs.cf");
    std::fs::write(
        &cf,
        "network = direct\nvirtual web {\n address = 127.0.0.1\n active = 1\n port = 80\n server a {\n  address = 127.0.0.2\n  active = 1\n }\n}\n",
    )
    .unwrap();
    let cf = cf.to_str().unwrap();
    // `fulcrum check` says what `fulcrum run` would do here, and passes
    // the file: it may run on a director that has IPVS.
    let (code, _, err) = check(&["--config", cf]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("data plane: auto (the default): this host's kernel shows no IPVS")
            && err.contains("real server `a` of virtual server `web` is reached by direct routing"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["run", "--config", cf, "--control"])
        .arg(dir.join("c.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("real server `a` of virtual server `web` is reached by direct routing, which only the kernel's IPVS forwards, and this director would run the proxy data plane (auto: "),
        "{err}"
    );
}

#[test]
fn interfaces_this_host_lacks_are_named_and_do_not_fail_the_check() {
    let dir = std::env::temp_dir().join(format!("fulcrum-check-if-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cf = dir.join("lvs.cf");
    std::fs::write(
        &cf,
        "nat_router = 10.1.0.254 nosuch1:1\nsyncdaemon = 1\nsyncd_iface = nosuch2\nvirtual web {\n address = 192.0.2.10 nosuch0:1\n active = 1\n server a {\n  address = 10.1.0.1\n  active = 1\n }\n}\nvirtual local {\n address = 192.0.2.11 lo\n active = 1\n server b {\n  address = 10.1.0.2\n  active = 1\n }\n}\n",
    )
    .unwrap();
    let (code, _, err) = check(&["--config", cf.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for (dev, what) in [
        ("nosuch0", "virtual server web"),
        ("nosuch1", "nat_router"),
        ("nosuch2", "syncd_iface"),
    ] {
        assert!(
            err.contains(&format!(
                "warning: this host has no interface `{dev}` ({what})"
            )),
            "{err}"
        );
    }
    assert!(!err.contains("interface `lo`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_run_would_refuse_is_an_error_of_check_at_its_line() {
    let dir = std::env::temp_dir().join(format!("fulcrum-check-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cf = dir.join("lvs.cf");
    let missing = dir.join("no-such-ca.pem");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    std::fs::write(
        &cf,
        format!(
            "virtual web {{\n address = 192.0.2.10\n active = 1\n port = 443\n checktype = https_get\n tls_ca = {}\n server a {{\n  address = 10.1.0.1\n  active = 1\n }}\n}}\nvirtual api {{\n address = 192.0.2.11\n active = 1\n port = 443\n checktype = https_get\n tls_ca = {}\n server b {{\n  address = 10.1.0.2\n  active = 1\n }}\n}}\n",
            missing.display(),
            empty.display()
        ),
    )
    .unwrap();
    let (code, _, err) = check(&["--config", cf.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let name = cf.display().to_string();
    // file:line:col of the value at fault, then the line with a caret.
    assert!(
        err.contains(&format!(
            "{name}:6:11: error: virtual server `web`: cannot read the CA file {}",
            missing.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(" 6 |  tls_ca = {}\n", missing.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:17:11: error: virtual server `api`: the CA file {} holds no certificate",
            empty.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("2 errors: `fulcrum run` would not start with it"),
        "{err}"
    );
    // The director refuses the same file, with the same reason.
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["run", "--config", cf.to_str().unwrap(), "--control"])
        .arg(dir.join("c.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the CA file"));
    let _ = std::fs::remove_dir_all(&dir);
}
