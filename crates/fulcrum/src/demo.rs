//! `fulcrum demo`: a director on 127.0.0.1:8080 in front of three local real
//! servers (weights 2, 1, 1, wlc), on the default (proxy) data plane. No
//! root needed.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::paths::default_control_path;
use crate::realserver::serve_http;
use crate::run::director;

/// The demo's lvs.cf, with the real servers' ports filled in.
pub fn demo_config(vip: SocketAddr, rs: &[(String, SocketAddr, u32)]) -> String {
    let mut s = format!(
        "# fulcrum demo: the proxy plane, which needs no root\ndataplane = proxy\nvirtual demo {{\n\taddress = {}\n\tactive = 1\n\tport = {}\n\tscheduler = wlc\n",
        vip.ip(),
        vip.port()
    );
    for (name, addr, weight) in rs {
        s.push_str(&format!(
            "\n\tserver {name} {{\n\t\taddress = {}\n\t\tport = {}\n\t\tactive = 1\n\t\tweight = {weight}\n\t}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    s.push_str("}\n");
    s
}

/// The demo's files (its lvs.cf and, with the console, its users), in a
/// private directory removed when the demo ends.
struct DemoDir(std::path::PathBuf);

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the demo until Ctrl-C: with `console`, the web console too (user
/// `admin`, a password made up and printed at start), editing the demo's
/// lvs.cf in a directory of its own.
pub async fn run(
    listen: SocketAddr,
    control: Option<std::path::PathBuf>,
    console: Option<SocketAddr>,
) -> i32 {
    let mut servers = Vec::new();
    for (name, weight) in [("rs1", 2), ("rs2", 1), ("rs3", 1)] {
        let l = match TcpListener::bind((listen.ip(), 0)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fulcrum demo: cannot start real server {name}: {e}");
                return 1;
            }
        };
        let addr = l.local_addr().expect("bound listener has an address");
        tokio::spawn(serve_http(l, name.to_string()));
        servers.push((name.to_string(), addr, weight));
    }
    let text = demo_config(listen, &servers);
    let parsed = fulcrum_config::parse(&text);
    if parsed.has_errors() {
        eprint!("{}", parsed.render("demo.cf", &text));
        return 1;
    }
    let control = control.unwrap_or_else(default_control_path);
    let mut config_path = None;
    let mut password = None;
    let mut config = parsed.config;
    let _dir = if let Some(at) = console {
        let dir = std::env::temp_dir().join(format!("fulcrum-demo-{}", std::process::id()));
        let made = (|| -> Result<(), String> {
            use std::os::unix::fs::DirBuilderExt as _;
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let users = dir.join("console.users");
            let pw = fulcrum_api::auth::random_hex(8)?;
            let mut u = fulcrum_api::auth::Users::default();
            u.set(fulcrum_api::auth::Credential::User {
                name: "admin".into(),
                role: fulcrum_api::auth::Role::Admin,
                hash: fulcrum_api::auth::hash_password(&pw)?,
            });
            fulcrum_net::files::write_atomic(&users, u.text().as_bytes(), 0o600)
                .map_err(|e| format!("cannot write {}: {e}", users.display()))?;
            let text = format!(
                "{text}\n# the web console (fulcrum demo --console)\nconsole = {at}\nconsole_users = {}\n",
                users.display()
            );
            let cf = dir.join("lvs.cf");
            fulcrum_net::files::write_atomic(&cf, text.as_bytes(), 0o600)
                .map_err(|e| format!("cannot write {}: {e}", cf.display()))?;
            config = fulcrum_config::parse(&text).into_result("demo lvs.cf", &text)?;
            config_path = Some(cf);
            password = Some(pw);
            Ok(())
        })();
        if let Err(e) = made {
            eprintln!("fulcrum demo: {e}");
            let _ = std::fs::remove_dir_all(&dir);
            return 1;
        }
        Some(DemoDir(dir))
    } else {
        None
    };
    let console_line = match (console, &password, &config_path) {
        (Some(at), Some(pw), Some(cf)) => format!(
            "\nWeb console: http://{at}/  (user admin, password {pw}); it edits {}\n",
            cf.display()
        ),
        _ => String::new(),
    };
    let banner = |control: &std::path::Path| {
        let mut b = format!(
            "\nFulcrum demo: a director on {listen} (wlc) in front of three real servers:\n"
        );
        for (name, addr, w) in &servers {
            b.push_str(&format!("  {name}  {addr}  weight {w}\n"));
        }
        b.push_str(&format!(
            "\nTry, in another terminal:\n  curl http://{listen}/\n  for i in 1 2 3 4 5 6 7 8; do curl -s http://{listen}/; done\n  fulcrum adm -L -n --stats          (or: cargo run --release -- adm -L -n --stats)\n  fulcrum status\n{console_line}\nControl socket: {}\nStop with Ctrl-C.\n\n",
            control.display()
        ));
        eprint!("{b}");
    };
    director(
        config_path,
        Some(config),
        None,
        "built in (fulcrum demo)",
        control,
        crate::controller::default_workers(),
        None,
        None,
        false,
        banner,
    )
    .await
}
