//! `fulcrum check`: validate an lvs.cf and optionally show its table.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use fulcrum_api::ipvsadm::{self, NumericResolver};
use fulcrum_config::{Config, Severity};
use fulcrum_core::Table;

/// Build the IPVS table a validated configuration describes.
pub fn build_table(cfg: &Config) -> anyhow::Result<Table> {
    let mut table = Table::new();
    for svc in cfg.table() {
        table
            .add_service(svc.spec.clone())
            .map_err(|e| anyhow::anyhow!("virtual server `{}`: {e}", svc.name))?;
        for (name, dest) in &svc.dests {
            table.add_dest(&svc.spec.key, dest.clone()).map_err(|e| {
                anyhow::anyhow!("real server `{name}` of virtual server `{}`: {e}", svc.name)
            })?;
        }
    }
    Ok(table)
}

/// The interfaces `cfg` names (the floating addresses' devices, the sync
/// interface) that `exists` says are not there, each once, with what names
/// it.
pub fn missing_interfaces(cfg: &Config, exists: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut named: Vec<(String, String)> = cfg
        .floating_addresses()
        .into_iter()
        .filter_map(|f| f.device.map(|d| (d, f.what)))
        .collect();
    if let Some(s) = cfg.global.syncd() {
        named.push((s.iface, "syncd_iface".into()));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (dev, what) in named {
        if !exists(&dev) && !out.iter().any(|(d, _)| *d == dev) {
            out.push((dev, what));
        }
    }
    out
}

/// The checks that cannot be built, once per virtual server: where the
/// key at fault is written (`tls_ca`, `expect`, `receive`, `send_program`,
/// or the block) and why.
pub fn unbuildable_checks(
    cfg: &Config,
    source: &str,
) -> Vec<(Option<fulcrum_config::Span>, String)> {
    use fulcrum_config::edit::{Scope, span_of};
    let mut out: Vec<(Option<fulcrum_config::Span>, String)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for spec in cfg.checks() {
        if seen.contains(&spec.service_name) {
            continue;
        }
        if let Err(e) = fulcrum_health::nanny::Monitor::validate_one(&spec) {
            seen.push(spec.service_name.clone());
            let scope = Scope::Virtual(spec.service_name.clone());
            let key = ["tls_ca", "expect", "receive", "send_program"]
                .into_iter()
                .find(|k| {
                    e.contains(&format!("`{k}`")) || (*k == "tls_ca" && e.contains("CA file"))
                })
                .unwrap_or("");
            out.push((
                span_of(source, &scope, key),
                format!("virtual server `{}`: {e}", spec.service_name),
            ));
        }
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `fulcrum check`: print diagnostics and a summary (and with `save` the
/// table as `ipvsadm -S -n`); exit 1 on any error.
pub fn run(path: &Path, save: bool) -> ExitCode {
    let name = path.display().to_string();
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fulcrum: cannot read {name}: {e}");
            eprintln!("  hint: pass the configuration with --config PATH");
            return ExitCode::from(1);
        }
    };
    let parsed = fulcrum_config::parse(&source);
    eprint!("{}", parsed.render(&name, &source));
    let errors = parsed.error_count();
    let warnings = parsed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    if errors > 0 {
        eprintln!(
            "{name}: {}, {}; nothing would be applied",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
        return ExitCode::from(1);
    }
    let mut table = match build_table(&parsed.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(1);
        }
    };
    // What `fulcrum run` would refuse beyond the text: the checks are built
    // (patterns compiled, CA files read), each virtual server's once.
    let refused = unbuildable_checks(&parsed.config, &source);
    for (span, e) in &refused {
        match span {
            Some(s) => eprint!(
                "{}",
                fulcrum_config::Diagnostic::error(*s, e.as_str()).render(&name, &source)
            ),
            None => eprintln!("{name}: error: {e}"),
        }
    }
    if !refused.is_empty() {
        eprintln!(
            "{name}: {}: `fulcrum run` would not start with it, nor a reload apply it",
            plural(refused.len(), "error")
        );
        return ExitCode::from(1);
    }
    let services = table.services();
    let dests: usize = services.iter().map(|s| s.dests.len()).sum();
    eprintln!(
        "{name}: OK: {} with {} active ({})",
        plural(services.len(), "virtual server"),
        plural(dests, "real server"),
        plural(warnings, "warning")
    );
    let has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    let plane = match (parsed.config.global.dataplane, parsed.config.global.effective_dataplane()) {
        (None | Some(fulcrum_config::Dataplane::Auto), _) if has_ipvs => {
            "auto (the default): ipvs on this host, whose kernel has IPVS, when `fulcrum run` runs as root".to_string()
        }
        (None | Some(fulcrum_config::Dataplane::Auto), _) => match parsed.config.kernel_only() {
            None => "auto (the default): proxy on this host, whose kernel shows no IPVS (/proc/net/ip_vs) unless `fulcrum run` as root can load ip_vs".to_string(),
            Some(what) => format!(
                "auto (the default): this host's kernel shows no IPVS (/proc/net/ip_vs), and {what}, which only IPVS forwards: `fulcrum run` stops here unless it can load ip_vs"
            ),
        },
        (Some(_), fulcrum_config::Dataplane::Ipvs) if !has_ipvs => {
            "ipvs (`dataplane = ipvs`), but this host's kernel shows no IPVS (/proc/net/ip_vs): `fulcrum run` would load ip_vs or stop here".to_string()
        }
        (Some(_), p) => format!("{} (`dataplane = {}`)", p.name(), p.name()),
    };
    eprintln!("{name}: data plane: {plane}");
    // Interfaces the file names that this host lacks: a note, not an
    // error, as the file may be checked away from the directors.
    for (dev, what) in missing_interfaces(&parsed.config, |d| {
        std::path::Path::new("/sys/class/net").join(d).exists()
    }) {
        eprintln!(
            "{name}: warning: this host has no interface `{dev}` ({what}): `fulcrum run` here would not bring it up (fine if the file is for another machine)"
        );
    }
    if parsed.config.global.failover() {
        // What `fulcrum run` would find on this host; not an error here,
        // as the file may be checked away from the directors.
        match fulcrum_ha::runtime::HaSettings::from_config(&parsed.config) {
            Ok(Some(h)) => {
                let peers: Vec<String> = h.peers.iter().map(ToString::to_string).collect();
                eprintln!(
                    "{name}: failover: on this host, director {} at priority {} with {}",
                    h.local,
                    h.router.priority,
                    peers.join(", ")
                );
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("{name}: failover: `fulcrum run` would not start on this host: {e}")
            }
        }
    }
    if save {
        let save = ipvsadm::AdmCommand::Save { numeric: true };
        let out = ipvsadm::execute(&save, &mut table, std::time::Duration::ZERO)
            .render(&save, &NumericResolver);
        let mut stdout = std::io::stdout().lock();
        if stdout.write_all(out.stdout.as_bytes()).is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// What `fulcrum genhash` fetches.
#[derive(Debug)]
pub struct Genhash {
    /// The real server.
    pub addr: std::net::SocketAddr,
    /// The path.
    pub path: String,
    /// Over TLS.
    pub tls: bool,
    /// The Host header.
    pub virtualhost: Option<String>,
    /// Name the virtual host in SNI.
    pub sni: bool,
    /// Print the header too.
    pub verbose: bool,
    /// Seconds to wait.
    pub timeout: f64,
}

/// `fulcrum genhash`: fetch a page and print its body's MD5 digest, the
/// value for `digest` in lvs.cf (keepalived's genhash prints the same).
pub async fn genhash(g: Genhash) -> i32 {
    use fulcrum_health::http::{Request, Tls};
    let Ok(timeout) = std::time::Duration::try_from_secs_f64(g.timeout) else {
        eprintln!(
            "fulcrum genhash: invalid timeout {}: give seconds, e.g. 5",
            g.timeout
        );
        return 2;
    };
    let req = Request {
        addr: g.addr,
        path: g.path.clone(),
        virtualhost: g.virtualhost,
        tls: g.tls.then(Tls::unverified),
        sni: g.sni,
    };
    match req.fetch(timeout).await {
        Ok(reply) => {
            if g.verbose {
                print!("{}", String::from_utf8_lossy(&reply.head));
            }
            println!("{}", reply.digest());
            if !(200..300).contains(&reply.status) {
                eprintln!(
                    "fulcrum genhash: note: the status is {}; an HTTP check accepts 200-299 unless `status_code` says otherwise",
                    reply.status
                );
            }
            0
        }
        Err(e) => {
            eprintln!("fulcrum genhash: {} {}: {e}", g.addr, g.path);
            1
        }
    }
}
