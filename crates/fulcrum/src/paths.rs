//! Where the control socket lives.

use std::path::PathBuf;

/// The environment variable that overrides the control socket's path.
pub const CONTROL_ENV: &str = "FULCRUM_CONTROL";

/// The control socket: `$FULCRUM_CONTROL`, else `/run/fulcrum/control.sock`
/// for root, else `$XDG_RUNTIME_DIR/fulcrum/control.sock`, else
/// `/tmp/fulcrum-UID/control.sock`.
pub fn default_control_path() -> PathBuf {
    if let Some(p) = std::env::var_os(CONTROL_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return PathBuf::from("/run/fulcrum/control.sock");
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("fulcrum/control.sock");
    }
    PathBuf::from(format!("/tmp/fulcrum-{}/control.sock", uid.as_raw()))
}
