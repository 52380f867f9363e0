//! The web console in a real browser: Debian's Chromium, driven by
//! playwright-core (tests/browser/console.mjs), against a real `fulcrum run`
//! — log in, watch a real server go down and come back, drain one, edit a
//! weight and see the table change, CSRF and a wrong password refused.
//! `.ci/run` installs Chromium and the script's npm packages.
//!
//! `FULCRUM_SHOTS=DIR` keeps the screenshots (docs/images has them).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn the_console_works_in_chromium() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        fulcrum_testbed::missing_peer("the_console_works_in_chromium", "chromium");
        return;
    }
    if !here.join("node_modules/playwright-core").exists()
        || Command::new("node").arg("--version").output().is_err()
    {
        fulcrum_testbed::missing_peer(
            "the_console_works_in_chromium",
            "node with playwright-core (npm ci in crates/fulcrum/tests/browser)",
        );
        return;
    }
    let _rs = realservers(77, 2);
    let files = TempDir::new("browser-files");
    let users = files.0.join("console.users");
    let (code, _, err) = run_with_stdin(
        Command::new(BIN)
            .args(["passwd", "--users"])
            .arg(&users)
            .arg("admin"),
        "browser-pass\n",
    );
    assert_eq!(code, 0, "{err}");
    for a in ["127.77.0.11", "127.77.0.12"] {
        std::fs::write(files.0.join(a), "0").unwrap();
    }
    let cfg = format!(
        "# the browser test's director\nserial_no = 1\nconsole = 127.77.0.1:8090\nconsole_users = {}\n\n\
         virtual web {{\n address = 127.77.0.1\n active = 1\n port = 8080\n scheduler = wlc\n\
         send_program = \"exit $(cat {}/%h)\"\n check_interval = 0.3\n fall = 1\n reentry = 0\n timeout = 2\n\
         server rs1 {{\n  address = 127.77.0.11\n  port = 8081\n  active = 1\n  weight = 2\n }}\n\
         server rs2 {{\n  address = 127.77.0.12\n  port = 8081\n  active = 1\n  weight = 1\n }}\n}}\n",
        users.display(),
        files.0.display()
    );
    let d = Director::start("browser", &cfg);
    let mut cmd = Command::new("node");
    cmd.arg(here.join("console.mjs"))
        .env("CONSOLE_URL", "http://127.77.0.1:8090")
        .env("ADMIN_PASSWORD", "browser-pass")
        .env("STATE_DIR", &files.0)
        .env("VIP_URL", "http://127.77.0.1:8080/")
        .env("CHROMIUM", &chromium);
    if let Ok(shots) = std::env::var("FULCRUM_SHOTS") {
        cmd.env("SHOTS", shots);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nthe director's log:\n{}",
        d.log()
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
    // What the browser did, the director did.
    assert!(
        d.ok("-L -n")
            .contains("127.77.0.11:8081             Masq    4")
    );
    assert!(
        std::fs::read_to_string(d.cf())
            .unwrap()
            .contains("serial_no = 2")
    );
}
