//! Drive the kernel's IPVS table through `fulcrum-ipvs` (used by the
//! kernel tests in the IPVS VM):
//!
//! - `ipvs_table dump [IPVSADM-LISTING-OPTIONS]`: read the kernel's table
//!   and print it as ipvsadm would with those options (default `-S -n`);
//! - `ipvs_table apply LVS_CF`: install the table an lvs.cf describes;
//! - `ipvs_table sync OLD_CF NEW_CF`: bring the kernel from what OLD_CF
//!   installed to what NEW_CF describes by difference, printing each change.

use std::time::Duration;

use fulcrum_api::ipvsadm::{NumericResolver, run};
use fulcrum_core::Table;
use fulcrum_ipvs::driver::Ipvs;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dump"] => dump(&["-S".into(), "-n".into()]),
        ["dump", rest @ ..] => dump(&rest.iter().map(|a| (*a).to_string()).collect::<Vec<_>>()),
        ["apply", path] => apply(path),
        ["sync", old, new] => sync(old, new),
        _ => Err(
            "usage: ipvs_table dump [LISTING-OPTIONS] | apply LVS_CF | sync OLD_CF NEW_CF".into(),
        ),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvs_table: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn dump(listing: &[String]) -> Result<(), String> {
    let mut ipvs = Ipvs::open().map_err(|e| e.to_string())?;
    let mut table = Table::new();
    for s in ipvs.services().map_err(|e| e.to_string())? {
        table
            .add_service(s.spec.clone())
            .map_err(|e| e.to_string())?;
        // The kernel lists newest first; the table puts each new one first.
        let dests = ipvs.dests(&s.spec.key).map_err(|e| e.to_string())?;
        for d in dests.iter().rev() {
            table
                .add_dest(&s.spec.key, d.spec.clone())
                .map_err(|e| e.to_string())?;
        }
    }
    let (tcp, fin, udp) = ipvs.timeouts().map_err(|e| e.to_string())?;
    let secs = |v| Duration::from_secs(u64::from(v));
    table.set_timeouts(secs(tcp), secs(fin), secs(udp));
    let out = run(
        "ipvsadm",
        listing,
        "",
        &mut table,
        &NumericResolver,
        Duration::ZERO,
    );
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    Ok(())
}

/// The table an lvs.cf describes.
fn table_of(path: &str) -> Result<Vec<fulcrum_config::TableService>, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let parsed = fulcrum_config::parse(&src);
    if parsed.has_errors() {
        return Err(parsed.render(path, &src));
    }
    Ok(parsed.config.table())
}

fn sync(old: &str, new: &str) -> Result<(), String> {
    let owned = table_of(old)?.into_iter().map(|s| s.spec.key).collect();
    let desired: Vec<_> = table_of(new)?
        .into_iter()
        .map(|s| (s.spec, s.dests.into_iter().map(|(_, d)| d).collect()))
        .collect();
    let mut ipvs = Ipvs::open().map_err(|e| e.to_string())?;
    let kernel = fulcrum_ipvs::reconcile::read(&mut ipvs).map_err(|e| e.to_string())?;
    let changes = fulcrum_ipvs::reconcile::plan(&kernel, &desired, &owned);
    for c in &changes {
        println!("{c:?}");
    }
    let refused = fulcrum_ipvs::reconcile::apply(&mut ipvs, &changes);
    match refused.first() {
        None => Ok(()),
        Some((c, e)) => Err(format!(
            "{c:?}: {e} ({} change(s) refused in all)",
            refused.len()
        )),
    }
}

fn apply(path: &str) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let parsed = fulcrum_config::parse(&src);
    if parsed.has_errors() {
        return Err(parsed.render(path, &src));
    }
    let mut ipvs = Ipvs::open().map_err(|e| e.to_string())?;
    for s in parsed.config.table() {
        ipvs.add_service(&s.spec)
            .map_err(|e| format!("virtual server `{}`: {e}", s.name))?;
        for (name, d) in &s.dests {
            ipvs.add_dest(&s.spec.key, d)
                .map_err(|e| format!("real server `{name}`: {e}"))?;
        }
    }
    Ok(())
}
