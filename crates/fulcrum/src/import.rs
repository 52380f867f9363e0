//! `fulcrum import`: a keepalived.conf or an ldirectord.cf as lvs.cf.

use std::path::Path;
use std::process::ExitCode;

/// Which importer reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// keepalived.conf.
    Keepalived,
    /// ldirectord.cf.
    Ldirectord,
}

/// Which importer a file needs: by its name, else by what it holds.
pub fn guess(path: &Path, text: &str) -> From {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.contains("keepalived") {
        return From::Keepalived;
    }
    if name.contains("ldirectord") {
        return From::Ldirectord;
    }
    let braces = text.contains('{');
    if braces && (text.contains("virtual_server") || text.contains("vrrp_instance")) {
        From::Keepalived
    } else {
        From::Ldirectord
    }
}

/// Run `fulcrum import`: lvs.cf on standard output (or `out`), a note per
/// setting left out on standard error; exit 1 when the result does not
/// validate (its diagnostics follow the notes).
pub fn run(path: &Path, from: Option<From>, out: Option<&Path>) -> ExitCode {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fulcrum import: cannot read {name}: {e}");
            return ExitCode::from(1);
        }
    };
    let from = from.unwrap_or_else(|| guess(path, &text));
    let imported = match from {
        From::Keepalived => fulcrum_config::import::keepalived(&text),
        From::Ldirectord => fulcrum_config::import::ldirectord(&text),
    };
    eprint!("{}", imported.render(&name));
    let out_name = out.map_or("the imported lvs.cf".to_string(), |o| {
        o.display().to_string()
    });
    let parsed = fulcrum_config::parse(&imported.text);
    let diags = parsed.render(&out_name, &imported.text);
    match out {
        Some(o) => {
            if let Err(e) = std::fs::write(o, &imported.text) {
                eprintln!("fulcrum import: cannot write {}: {e}", o.display());
                return ExitCode::from(1);
            }
        }
        None => print!("{}", imported.text),
    }
    eprint!("{diags}");
    let left = imported.notes.len();
    if parsed.has_errors() {
        eprintln!(
            "fulcrum import: {out_name} has {} error{}: correct {} before using it",
            parsed.error_count(),
            if parsed.error_count() == 1 { "" } else { "s" },
            if out.is_some() { "the file" } else { "it" }
        );
        return ExitCode::from(1);
    }
    eprintln!(
        "fulcrum import: {name} imported; {left} setting{} left out or changed (above)",
        if left == 1 { "" } else { "s" }
    );
    ExitCode::SUCCESS
}
