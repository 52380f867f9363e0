//! Where the control socket lives, and which places are safe for it.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where `fulcrum run` and `fulcrum check` look for the configuration
/// without `--config`, in order: Fulcrum's own place, Piranha's, and the
/// LVS guide's.
pub const CONFIG_PLACES: &[&str] = &[
    "/etc/fulcrum/lvs.cf",
    "/etc/sysconfig/ha/lvs.cf",
    "/etc/lvs.cf",
];

/// The first of [`CONFIG_PLACES`] that exists under `root` (`/` on a
/// host).
///
/// # Errors
/// When none does: a message naming them all and what to do.
pub fn find_config(root: &Path) -> Result<PathBuf, String> {
    for p in CONFIG_PLACES {
        let at = root.join(p.trim_start_matches('/'));
        if at.exists() {
            return Ok(if root == Path::new("/") {
                PathBuf::from(p)
            } else {
                at
            });
        }
    }
    Err(format!(
        "no configuration: none of {} exists; write one there (see docs/config.md), or give --config PATH",
        CONFIG_PLACES.join(", ")
    ))
}

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

/// Where a director records the floating addresses it holds: beside its
/// control socket (`control.sock` → `control.addresses`), in the same
/// private directory.
pub fn address_state_path(control: &Path) -> PathBuf {
    control.with_extension("addresses")
}

/// Where a director records the kernel IPVS services it installed, so the
/// next director adopts them: beside its control socket (`control.kernel`).
pub fn kernel_state_path(control: &Path) -> PathBuf {
    control.with_extension("kernel")
}

/// Where a director keeps the sequence numbers of authenticated failover
/// traffic across restarts: beside its control socket (`control.replay`).
pub fn replay_state_path(control: &Path) -> PathBuf {
    control.with_extension("replay")
}

/// Whether a file owned by `uid` may be trusted: ours, or root's.
fn trusted_owner(uid: u32) -> bool {
    uid == rustix::process::geteuid().as_raw() || uid == 0
}

/// Check that nobody but us (and root) can replace what is in `dir`: it is
/// owned by us or root, and writable by nobody else unless it is sticky
/// (like `/tmp`, where only a file's owner may remove or rename it).
///
/// # Errors
/// A message naming the directory, what is wrong and what to do.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    check_dir(dir, false)
}

/// [`check_private_dir`] for a client: root also trusts a directory of
/// another user (a director running as its own `user`), though never one
/// that others can write to.
///
/// # Errors
/// A message naming the directory, what is wrong and what to do.
pub fn check_dir_for_client(dir: &Path) -> Result<(), String> {
    check_dir(dir, rustix::process::geteuid().is_root())
}

fn check_dir(dir: &Path, any_owner: bool) -> Result<(), String> {
    let m = std::fs::metadata(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if !m.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if !any_owner && !trusted_owner(m.uid()) {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {}) or root: another user could replace the control socket there; remove the directory or choose another --control path",
            dir.display(),
            m.uid(),
            rustix::process::geteuid().as_raw()
        ));
    }
    let sticky = m.mode() & 0o1000 != 0;
    if m.mode() & 0o022 != 0 && !sticky {
        return Err(format!(
            "{} is writable by other users (mode {:04o}): they could replace the control socket; `chmod go-w {}` or choose another --control path",
            dir.display(),
            m.mode() & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}

/// Make the control socket's directory ready: created private (0700) when
/// missing, checked with [`check_private_dir`] in any case.
///
/// # Errors
/// A message saying what to do.
pub fn prepare_socket_dir(socket: &Path) -> Result<(), String> {
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(()); // the working directory: the user chose it
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    check_private_dir(dir)
}

/// Before the director becomes `user`: its control socket's directory,
/// when private (no access for others, as the director creates it),
/// becomes that user's, so it can bind its socket and keep its state
/// there. A shared directory (`/tmp`, `/run`) is never given away.
pub fn hand_socket_dir_to(socket: &Path, uid: u32, gid: u32) {
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return;
    };
    if let Ok(m) = std::fs::metadata(dir)
        && m.is_dir()
        && m.mode() & 0o7077 == 0
        && let Err(e) = std::os::unix::fs::chown(dir, Some(uid), Some(gid))
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot give the control socket's directory to the director's user");
    }
}

/// What is at a path where a socket is to be bound.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Nothing,
    /// A socket (live or stale: the caller finds out).
    Socket,
}

/// What is at `path`, refusing anything that is not a socket owned by us or
/// root: such a file is never removed.
///
/// # Errors
/// A message saying what is there and what to do.
pub fn existing_socket(path: &Path) -> Result<Existing, String> {
    existing(path, false)
}

/// [`existing_socket`] for a client: root also talks to a socket of a
/// director running as its own `user`.
///
/// # Errors
/// A message saying what is there and what to do.
pub fn existing_socket_for_client(path: &Path) -> Result<Existing, String> {
    existing(path, rustix::process::geteuid().is_root())
}

fn existing(path: &Path, any_owner: bool) -> Result<Existing, String> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if !m.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket; refusing to replace it: give --control the path of a socket to create",
            path.display()
        ));
    }
    if !any_owner && !trusted_owner(m.uid()) {
        return Err(format!(
            "the socket {} belongs to uid {}, not to this user or root; refusing to use it",
            path.display(),
            m.uid()
        ));
    }
    Ok(Existing::Socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_fulcrums_then_piranhas_then_the_guides() {
        let root = std::env::temp_dir().join(format!("fulcrum-places-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let e = find_config(&root).unwrap_err();
        assert!(
            e.contains("/etc/fulcrum/lvs.cf, /etc/sysconfig/ha/lvs.cf, /etc/lvs.cf"),
            "{e}"
        );
        for (i, p) in CONFIG_PLACES.iter().enumerate().rev() {
            let at = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(&at, "").unwrap();
            assert_eq!(find_config(&root).unwrap(), at, "place {i}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fulcrum-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let d = scratch("mk");
        prepare_socket_dir(&d.join("sub/control.sock")).unwrap();
        let mode = std::fs::metadata(d.join("sub")).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused_unless_sticky() {
        let d = scratch("ww");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_socket_dir(&d.join("control.sock")).unwrap_err();
        assert!(e.contains("writable by other users (mode 0777)"), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_socket_dir(&d.join("control.sock")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_regular_file_is_never_taken_for_a_socket() {
        let d = scratch("file");
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("lvs.cf");
        std::fs::write(&f, "primary = 10.0.0.1\n").unwrap();
        let e = existing_socket(&f).unwrap_err();
        assert!(e.contains("is not a socket; refusing to replace it"), "{e}");
        assert_eq!(existing_socket(&d.join("none")).unwrap(), Existing::Nothing);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
