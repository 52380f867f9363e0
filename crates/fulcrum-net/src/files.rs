//! Files the director writes: whole, private and durable, or not at all.

use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write `bytes` to `path` atomically: a new temporary file beside it,
/// created with `mode` from the start (no window under the umask), synced
/// to disk, renamed over `path`, and the directory synced, so a crash
/// leaves the old file or the new one — never half of one.
///
/// # Errors
/// The I/O error; `path` is then unchanged and the temporary file removed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of a crashed write (or anything planted there) goes; the
    // new file is created afresh, never opened through a link.
    let _ = std::fs::remove_file(&tmp);
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return r;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Read a state file the director wrote: a regular file of this user of at
/// most `max` bytes, else `None` (and a warning naming it when something
/// else is there).
pub fn read_own(path: &Path, max: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.is_file() || m.uid() != rustix::process::geteuid().as_raw() || m.len() > max {
        tracing::warn!(state = %path.display(), "state file is not a regular file of this user, or is too large; ignored");
        return None;
    }
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn written_whole_private_and_over_a_planted_link() {
        let d = std::env::temp_dir().join(format!("fulcrum-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let target = d.join("victim");
        std::fs::write(&target, "keep").unwrap();
        let path = d.join("state");
        // A link planted at the path is replaced, not written through.
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_atomic(&path, b"new\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.is_file());
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            2,
            "no temporary left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
