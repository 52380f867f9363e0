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

/// Run the demo until Ctrl-C.
pub async fn run(listen: SocketAddr) -> i32 {
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
    let control = default_control_path();
    let banner = |control: &std::path::Path| {
        let mut b = format!(
            "\nFulcrum demo: a director on {listen} (wlc) in front of three real servers:\n"
        );
        for (name, addr, w) in &servers {
            b.push_str(&format!("  {name}  {addr}  weight {w}\n"));
        }
        b.push_str(&format!(
            "\nTry, in another terminal:\n  curl http://{listen}/\n  for i in 1 2 3 4 5 6 7 8; do curl -s http://{listen}/; done\n  fulcrum adm -L -n --stats          (or: cargo run --release -- adm -L -n --stats)\n  fulcrum status\n\nControl socket: {}\nStop with Ctrl-C.\n\n",
            control.display()
        ));
        eprint!("{b}");
    };
    director(
        None,
        Some(parsed.config),
        None,
        "built in (fulcrum demo)",
        control,
        crate::controller::default_workers(),
        None,
        false,
        banner,
    )
    .await
}
