//! The web console and JSON API against a real `fulcrum run` on loopback,
//! driven with curl (a real HTTP client with a cookie jar): logins, the
//! live view, drain/disable/enable, the editors writing lvs.cf, roles,
//! CSRF, tokens, TLS, and hostile requests.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// `fulcrum passwd` with the password on standard input.
fn passwd(users: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    run_with_stdin(
        Command::new(BIN)
            .arg("passwd")
            .arg("--users")
            .arg(users)
            .args(args),
        stdin,
    )
}

/// A users file with `admin` (password `admin-pass`) and `watcher`
/// (viewer, `watch-pass`).
fn users(dir: &TempDir) -> PathBuf {
    let u = dir.0.join("console.users");
    assert_eq!(passwd(&u, &["admin"], "admin-pass\n").0, 0);
    let (code, _, err) = passwd(&u, &["--role", "viewer", "watcher"], "watch-pass\n");
    assert_eq!(code, 0, "{err}");
    u
}

/// A browser-like client: curl with a cookie jar.
struct Browser {
    base: String,
    jar: PathBuf,
    extra: Vec<String>,
}

struct Page {
    status: u16,
    headers: String,
    body: String,
}

impl Browser {
    fn new(dir: &TempDir, name: &str, base: &str) -> Browser {
        Browser {
            base: base.into(),
            jar: dir.0.join(format!("{name}.jar")),
            extra: Vec::new(),
        }
    }

    fn curl(&self, args: &[&str]) -> Page {
        let hdr = self.jar.with_extension("hdr");
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-c"])
            .arg(&self.jar)
            .arg("-b")
            .arg(&self.jar)
            .arg("-D")
            .arg(&hdr)
            .args(["-w", "\n%{http_code}"])
            .args(&self.extra)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        Page {
            status: code.parse().unwrap_or(0),
            headers: std::fs::read_to_string(&hdr).unwrap_or_default(),
            body: body.to_string(),
        }
    }

    fn get(&self, path: &str) -> Page {
        self.curl(&[&format!("{}{path}", self.base)])
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut args: Vec<String> = Vec::new();
        for (k, v) in form {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{}{path}", self.base));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&a)
    }

    fn login(&self, user: &str, password: &str) -> Page {
        let page = self.get("/login");
        assert_eq!(page.status, 200);
        let nonce = hidden(&page.body, "csrf");
        self.post(
            "/login",
            &[("csrf", &nonce), ("user", user), ("password", password)],
        )
    }
}

/// The value of a hidden input.
fn hidden(html: &str, name: &str) -> String {
    let at = format!("name=\"{name}\" value=\"");
    let rest = html
        .split(&at)
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    rest.split('"').next().unwrap().to_string()
}

/// The `<tr>` of a real server in the live view.
fn row<'a>(html: &'a str, server: &str) -> &'a str {
    let at = format!("<tr data-server=\"{server}\"");
    let rest = html
        .split(&at)
        .nth(1)
        .unwrap_or_else(|| panic!("no row for {server} in {html}"));
    rest.split("</tr>").next().unwrap()
}

fn config(net: u8, console: &str, users: &Path, extra_global: &str) -> String {
    format!(
        "# the console test's cluster\nserial_no = 41\n{extra_global}console = {console}\nconsole_users = {}\n\n{}",
        users.display(),
        cluster(net, "rr", &[1, 1], " check_interval = 0.2\n")
    )
}

#[test]
fn console_logs_in_shows_the_table_drains_and_edits_with_csrf_and_roles() {
    let _rs = realservers(72, 2);
    let dir = TempDir::new("console-main-files");
    let u = users(&dir);
    let console = "127.72.0.1:8090";
    let d = Director::start("console-main", &config(72, console, &u, ""));
    let base = format!("http://{console}");
    let b = Browser::new(&dir, "admin", &base);

    // Not logged in: the live view sends to the login page.
    let p = b.get("/");
    assert_eq!(p.status, 303);
    assert!(p.headers.to_lowercase().contains("location: /login"));
    // A wrong password is refused, and says so.
    let p = b.login("admin", "wrong-pass");
    assert_eq!(p.status, 401);
    assert!(
        p.body.contains("Wrong user name or password."),
        "{}",
        p.body
    );
    let p = b.login("nobody", "admin-pass");
    assert_eq!(p.status, 401);
    // A login form's token must be the one its cookie came with.
    let p = b.post(
        "/login",
        &[
            ("csrf", "0000"),
            ("user", "admin"),
            ("password", "admin-pass"),
        ],
    );
    assert_eq!(p.status, 403, "{}", p.body);
    // The right one logs in, with a cookie scripts cannot read.
    let p = b.login("admin", "admin-pass");
    assert_eq!(p.status, 303, "{}", p.body);
    let cookie = p
        .headers
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie: fulcrum_session="))
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // The live view: both real servers, alive, with their checks' words.
    let p = b.get("/");
    assert_eq!(p.status, 200);
    assert!(
        p.headers
            .contains("content-security-policy: default-src 'none'")
    );
    assert!(row(&p.body, "rs1").contains("data-health=\"alive\""));
    assert!(row(&p.body, "rs2").contains("127.72.0.12:8081"));
    assert!(p.body.contains("rr"), "{}", p.body);
    let csrf = hidden(&p.body, "csrf");

    // Drain rs2: new connections go to rs1 only; the view says so.
    let p = b.post(
        "/server",
        &[
            ("csrf", &csrf),
            ("virtual", "web"),
            ("server", "rs2"),
            ("action", "drain"),
        ],
    );
    assert_eq!(p.status, 303);
    let p = b.get("/");
    assert!(
        p.body.contains("real server `rs2` of `web` drained"),
        "{}",
        p.body
    );
    assert!(row(&p.body, "rs2").contains("drained by the operator"));
    let names: Vec<String> = (0..6).map(|_| get("127.72.0.1:8080")).collect();
    assert!(names.iter().all(|n| n == "rs1"), "{names:?}");
    assert!(
        d.run("status", &[])
            .1
            .contains("(rs2)  weight 0  quiesced  drained by the operator")
    );
    // Disable takes it out of the table; enable gives it back to its checks.
    b.post(
        "/server",
        &[
            ("csrf", &csrf),
            ("virtual", "web"),
            ("server", "rs2"),
            ("action", "disable"),
        ],
    );
    assert!(!d.ok("-L -n").contains("127.72.0.12:8081"));
    b.post(
        "/server",
        &[
            ("csrf", &csrf),
            ("virtual", "web"),
            ("server", "rs2"),
            ("action", "enable"),
        ],
    );
    wait_until("rs2 back", || d.ok("-L -n").contains("127.72.0.12:8081"));

    // CSRF: a change without the page's token, or with another's, is
    // refused; so is one from another origin.
    let p = b.post(
        "/server",
        &[("virtual", "web"), ("server", "rs2"), ("action", "disable")],
    );
    assert_eq!(p.status, 403);
    assert!(p.body.contains("CSRF token"), "{}", p.body);
    let p = b.post(
        "/server",
        &[
            ("csrf", &"0".repeat(64)),
            ("virtual", "web"),
            ("server", "rs2"),
            ("action", "disable"),
        ],
    );
    assert_eq!(p.status, 403);
    let mut cross = Browser::new(&dir, "admin", &base);
    cross.extra = vec!["-H".into(), "Origin: http://evil.example".into()];
    let p = cross.post(
        "/server",
        &[
            ("csrf", &csrf),
            ("virtual", "web"),
            ("server", "rs2"),
            ("action", "disable"),
        ],
    );
    assert_eq!(p.status, 403);
    assert!(p.body.contains("cross-site"), "{}", p.body);
    assert!(
        d.ok("-L -n").contains("127.72.0.12:8081"),
        "nothing refused was done"
    );

    // The editor: a weight changed in place, comments and order kept,
    // serial_no moved on, applied.
    let before = std::fs::read_to_string(d.cf()).unwrap();
    let p = b.get("/config");
    assert_eq!(p.status, 200);
    let base_hash = hidden(&p.body, "base");
    let weight_field = "f.s0-1.weight.0";
    assert!(
        p.body
            .contains(&format!("name=\"{weight_field}\" value=\"1\"")),
        "{}",
        p.body
    );
    // An invalid value: not saved, the error at its field.
    let p = b.post(
        "/config",
        &[
            ("csrf", &csrf),
            ("base", &base_hash),
            (weight_field, "heavy"),
        ],
    );
    assert_eq!(p.status, 422);
    assert!(
        p.body.contains(&format!(
            "<p class=\"diag error\" data-for=\"{weight_field}\">error: invalid weight `heavy`"
        )),
        "{}",
        p.body
    );
    assert_eq!(
        std::fs::read_to_string(d.cf()).unwrap(),
        before,
        "nothing written"
    );
    // Corrected in the same draft: saved.
    let draft = hidden(&p.body, "base");
    assert_eq!(draft, base_hash);
    let draft_text = p
        .body
        .split("<textarea name=\"draft\" hidden>")
        .nth(1)
        .unwrap()
        .split("</textarea>")
        .next()
        .unwrap()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let p = b.post(
        "/config",
        &[
            ("csrf", &csrf),
            ("base", &base_hash),
            ("draft", &draft_text),
            (weight_field, "3"),
        ],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("serial_no 42"), "{}", p.body);
    let after = std::fs::read_to_string(d.cf()).unwrap();
    assert_eq!(
        after,
        before.replace("serial_no = 41", "serial_no = 42").replacen(
            "weight = 1\n }\n}",
            "weight = 3\n }\n}",
            1
        ),
        "only the weight and serial changed"
    );
    assert!(after.starts_with("# the console test's cluster\n"));
    wait_until("weight 3 in the table", || {
        d.ok("-L -n")
            .contains("127.72.0.12:8081             Masq    3")
    });
    // A stale editor (the file changed since) saves nothing.
    let p = b.post(
        "/config",
        &[("csrf", &csrf), ("base", &base_hash), (weight_field, "4")],
    );
    assert_eq!(p.status, 409);

    // Stop and start a virtual server.
    let p = b.post(
        "/virtual",
        &[("csrf", &csrf), ("virtual", "web"), ("action", "stop")],
    );
    assert_eq!(p.status, 303);
    wait_until("web stopped", || !d.ok("-L -n").contains("127.72.0.1:8080"));
    let p = b.get("/");
    assert!(
        p.body.contains("<li data-virtual=\"web\">web"),
        "{}",
        p.body
    );
    b.post(
        "/virtual",
        &[("csrf", &csrf), ("virtual", "web"), ("action", "start")],
    );
    wait_until("web started", || d.ok("-L -n").contains("127.72.0.1:8080"));

    // A viewer sees, without buttons, and cannot change anything.
    let v = Browser::new(&dir, "viewer", &base);
    assert_eq!(v.login("watcher", "watch-pass").status, 303);
    let p = v.get("/");
    assert!(p.body.contains("watcher (read-only)"));
    assert!(
        !p.body.contains("action\" value=\"drain\""),
        "no buttons for a viewer"
    );
    let vcsrf = hidden(&p.body, "csrf");
    let p = v.post(
        "/server",
        &[
            ("csrf", &vcsrf),
            ("virtual", "web"),
            ("server", "rs1"),
            ("action", "disable"),
        ],
    );
    assert_eq!(p.status, 403);
    assert!(p.body.contains("may look but not change"), "{}", p.body);
    assert!(d.ok("-L -n").contains("127.72.0.11:8081"));

    // Logging out ends the session: its cookie no longer opens anything.
    assert_eq!(b.post("/logout", &[("csrf", &csrf)]).status, 303);
    assert_eq!(b.get("/").status, 303);
    assert!(d.log().contains("console: login failed"), "{}", d.log());
}

#[test]
fn the_api_reads_and_changes_with_tokens_and_explains_refusals() {
    let _rs = realservers(73, 2);
    let dir = TempDir::new("console-api-files");
    let u = users(&dir);
    let (code, admin_token, err) = passwd(&u, &["--token", "deploy"], "");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shown this once"), "{err}");
    let admin_token = admin_token.trim().to_string();
    assert_eq!(admin_token.len(), 64);
    let (_, viewer_token, _) = passwd(&u, &["--token", "--role", "viewer", "grafana"], "");
    let viewer_token = viewer_token.trim().to_string();
    let text = std::fs::read_to_string(&u).unwrap();
    assert!(
        !text.contains(&admin_token),
        "only the token's hash is kept"
    );
    let console = "127.73.0.1:8090";
    let d = Director::start("console-api", &config(73, console, &u, ""));
    let api =
        |token: &str, method: &str, path: &str, body: Option<&str>| -> (u16, serde_json::Value) {
            let mut c = Command::new("curl");
            c.args([
                "-s",
                "--max-time",
                "10",
                "-X",
                method,
                "-w",
                "\n%{http_code}",
            ]);
            if !token.is_empty() {
                c.args(["-H", &format!("Authorization: Bearer {token}")]);
            }
            if let Some(b) = body {
                c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
            }
            let out = c.arg(format!("http://{console}{path}")).output().unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let (body, code) = text.rsplit_once('\n').unwrap();
            (
                code.parse().unwrap(),
                serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.into())),
            )
        };
    // No token, a wrong one: 401 with what to do.
    let (s, b) = api("", "GET", "/api/v1/state", None);
    assert_eq!(s, 401);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("fulcrum passwd --token")
    );
    assert_eq!(api("f00d", "GET", "/api/v1/state", None).0, 401);
    // The state, typed.
    let (s, st) = api(&viewer_token, "GET", "/api/v1/state", None);
    assert_eq!(s, 200);
    assert_eq!(st["plane"], "proxy");
    assert_eq!(st["serial"], 41);
    let web = &st["services"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["scheduler"], "rr");
    assert_eq!(web["servers"].as_array().unwrap().len(), 2);
    assert_eq!(web["servers"][0]["health"]["state"], "alive");
    // A viewer may not change anything.
    let (s, b) = api(
        &viewer_token,
        "POST",
        "/api/v1/adm",
        Some(r#"{"args":["-C"]}"#),
    );
    assert_eq!(s, 403);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("`grafana` may look but not change")
    );
    assert!(d.ok("-L -n").contains("127.73.0.11:8081"));
    // adm: what `fulcrum adm` prints, byte for byte.
    let (s, b) = api(
        &admin_token,
        "POST",
        "/api/v1/adm",
        Some(r#"{"args":["-L","-n"]}"#),
    );
    assert_eq!(s, 200);
    assert_eq!(b["stdout"].as_str().unwrap(), d.ok("-L -n"));
    let (s, b) = api(
        &admin_token,
        "POST",
        "/api/v1/adm",
        Some(r#"{"args":["-A","-t","bogus"]}"#),
    );
    assert_eq!(s, 422);
    assert_eq!(b["exit_code"], 2);
    assert_eq!(
        api(&admin_token, "POST", "/api/v1/adm", Some("not json")).0,
        400
    );
    // Servers by name.
    let (s, b) = api(&admin_token, "POST", "/api/v1/servers/web/rs1/drain", None);
    assert_eq!(s, 200, "{b}");
    assert!(
        d.run("status", &[])
            .1
            .contains("(rs1)  weight 0  quiesced  drained by the operator")
    );
    let (s, b) = api(&admin_token, "POST", "/api/v1/servers/web/rs9/drain", None);
    assert_eq!(s, 422);
    assert!(
        b["stderr"]
            .as_str()
            .unwrap()
            .contains("has no active real server `rs9`")
    );
    assert_eq!(
        api(
            &admin_token,
            "POST",
            "/api/v1/servers/web/rs1/explode",
            None
        )
        .0,
        404
    );
    api(&admin_token, "POST", "/api/v1/servers/web/rs1/enable", None);
    // The configuration: read, edited in place, applied.
    let (s, cfg) = api(&viewer_token, "GET", "/api/v1/config", None);
    assert_eq!(s, 200);
    let base = cfg["sha256"].as_str().unwrap().to_string();
    assert!(
        cfg["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "scheduler" && e["virtual"] == "web" && e["value"] == "rr")
    );
    let edit = |base: &str, value: &str| {
        format!(
            r#"{{"base":"{base}","edits":[{{"op":"set","virtual":"web","key":"scheduler","value":"{value}"}}]}}"#
        )
    };
    let (s, b) = api(
        &admin_token,
        "POST",
        "/api/v1/config",
        Some(&edit(&base, "fifo")),
    );
    assert_eq!(s, 422);
    let diag = &b["diagnostics"][0];
    assert_eq!(diag["key"], "scheduler");
    assert_eq!(diag["scope"]["virtual"], "web");
    assert!(diag["message"].as_str().unwrap().contains("fifo"), "{diag}");
    let (s, b) = api(
        &admin_token,
        "POST",
        "/api/v1/config",
        Some(&edit(&base, "wlc")),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["serial_no"], "42");
    wait_until("wlc in the table", || {
        d.ok("-L -n").contains("127.73.0.1:8080 wlc")
    });
    let text = std::fs::read_to_string(d.cf()).unwrap();
    assert!(
        text.starts_with("# the console test's cluster\nserial_no = 42\n"),
        "{text}"
    );
    // The same base again: the file moved on.
    assert_eq!(
        api(
            &admin_token,
            "POST",
            "/api/v1/config",
            Some(&edit(&base, "lc"))
        )
        .0,
        409
    );
    // A change the director refuses (it needs a restart) leaves the file
    // as it was.
    let (_, cfg) = api(&viewer_token, "GET", "/api/v1/config", None);
    let base = cfg["sha256"].as_str().unwrap();
    let before = std::fs::read_to_string(d.cf()).unwrap();
    let body =
        format!(r#"{{"base":"{base}","edits":[{{"op":"set","key":"dataplane","value":"ipvs"}}]}}"#);
    let (s, b) = api(&admin_token, "POST", "/api/v1/config", Some(&body));
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("the file is as it was"),
        "{b}"
    );
    assert_eq!(std::fs::read_to_string(d.cf()).unwrap(), before);
    // The OpenAPI document needs no token.
    let (s, doc) = api("", "GET", "/api/v1/openapi.json", None);
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(api(&admin_token, "GET", "/api/v1/nothing", None).0, 404);
}

#[test]
fn the_console_refuses_hostile_requests_and_throttles_guessing() {
    let _rs = realservers(74, 1);
    let dir = TempDir::new("console-hostile-files");
    let u = users(&dir);
    let console = "127.74.0.1:8090";
    let d = Director::start("console-hostile", &config(74, console, &u, ""));
    let raw = |req: &[u8]| -> String {
        let mut s = TcpStream::connect(console).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(req);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // Garbage, a header too long, a body too large: answered and refused.
    assert!(raw(b"\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    let long = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let r = raw(long.as_bytes());
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
    let b = Browser::new(&dir, "flood", &format!("http://{console}"));
    assert_eq!(b.login("admin", "admin-pass").status, 303);
    let big = dir.0.join("big");
    std::fs::write(&big, vec![b'a'; 2 << 20]).unwrap();
    let p = b.curl(&[
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data-binary",
        &format!("@{}", big.display()),
        &format!("http://{console}/server"),
    ]);
    assert_eq!(p.status, 413, "{}", p.body);
    // Half-sent requests do not hold the console: others are served.
    let mut half: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(console).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    assert_eq!(b.get("/login").status, 200);
    half.clear();
    // Guessing passwords: after 5 failures from an address it must wait,
    // even with the right password, and is told how long.
    let g = Browser::new(&dir, "guess", &format!("http://{console}"));
    for _ in 0..5 {
        assert_eq!(g.login("admin", "guess").status, 401);
    }
    let p = g.login("admin", "admin-pass");
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(
        p.body
            .contains("Too many failed logins from 127.0.0.1: wait"),
        "{}",
        p.body
    );
    assert!(p.headers.to_lowercase().contains("retry-after: "));
    // A forged session cookie opens nothing.
    let mut forged = Browser::new(&dir, "forged", &format!("http://{console}"));
    forged.extra = vec![
        "-H".into(),
        format!("Cookie: fulcrum_session={}", "a".repeat(64)),
    ];
    assert_eq!(forged.get("/").status, 303);
    assert_eq!(forged.get("/api/v1/state").status, 401);
    // The director still forwards and answers.
    assert_eq!(get("127.74.0.1:8080"), "rs1");
    assert!(d.log().contains("login failed"), "{}", d.log());
}

#[test]
fn passwd_keeps_the_users_file_private_and_the_director_refuses_an_open_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("console-passwd");
    let u = dir.0.join("sub").join("console.users");
    let (code, _, err) = passwd(&u, &["alice"], "short\n");
    assert_eq!(code, 1);
    assert!(err.contains("shorter than 8 characters"), "{err}");
    assert!(!u.exists());
    let (code, _, err) = passwd(&u, &["bad name"], "long enough\n");
    assert_eq!(code, 1);
    assert!(err.contains("cannot be a user or token name"), "{err}");
    assert_eq!(passwd(&u, &["alice"], "long enough\n").0, 0);
    assert_eq!(
        std::fs::metadata(&u).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&u).unwrap();
    assert!(text.contains("user:alice:admin:$argon2id$"), "{text}");
    assert!(!text.contains("long enough"));
    let (code, _, err) = passwd(&u, &["--delete", "bob"], "");
    assert_eq!(code, 1);
    assert!(err.contains("has no user `bob`"), "{err}");
    // Opened to others: the director does not start, and says why.
    std::fs::set_permissions(&u, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = |users: &str| {
        let cf = dir.0.join("lvs.cf");
        std::fs::write(
            &cf,
            format!("console = 127.75.0.1:8090\nconsole_users = {users}\n"),
        )
        .unwrap();
        let out = Command::new(BIN)
            .args(["run", "--config", cf.to_str().unwrap(), "--control"])
            .arg(dir.0.join("c.sock"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&u.display().to_string());
    assert!(
        err.contains("is open to other users (mode 644); `chmod 600"),
        "{err}"
    );
    // No file at all: also said, with what to do.
    let err = refused(&format!("{}/none", dir.0.display()));
    assert!(
        err.contains("add a user with `fulcrum passwd --users"),
        "{err}"
    );
}

#[test]
fn the_console_over_tls_sets_secure_cookies() {
    if Command::new("openssl").arg("version").output().is_err() {
        fulcrum_testbed::missing_peer("the_console_over_tls_sets_secure_cookies", "openssl");
        return;
    }
    let _rs = realservers(76, 1);
    let dir = TempDir::new("console-tls-files");
    let u = users(&dir);
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=console.test",
            "-addext",
            "subjectAltName=DNS:console.test",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls = format!(
        "console_tls_cert = {}\nconsole_tls_key = {}\n",
        dir.0.join("cert.pem").display(),
        dir.0.join("key.pem").display()
    );
    let _d = Director::start("console-tls", &config(76, "127.76.0.1:8443", &u, &tls));
    let mut b = Browser::new(&dir, "tls", "https://console.test:8443");
    b.extra = vec![
        "--resolve".into(),
        "console.test:8443:127.76.0.1".into(),
        "--cacert".into(),
        dir.0.join("cert.pem").display().to_string(),
    ];
    let p = b.login("admin", "admin-pass");
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.headers.contains("; Secure"), "{}", p.headers);
    assert!(b.get("/").body.contains("data-server=\"rs1\""));
    // Plain HTTP on the TLS port gets nothing.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.76.0.1:8443/login",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "000");
}
