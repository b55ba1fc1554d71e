//! Keeping the data dir private: everything under it holds users' data, password hashes and
//! key digests, so directories are 0700 and files 0600.
//!
//! The binary sets the process umask to 0o077 before any command runs ([`restrict_umask`]), which
//! covers files created by code that takes no mode (redb, tantivy, vector dumps, backups,
//! `server.json`); deploy commands get the operator's original umask back
//! ([`operator_umask`]). Paths left looser by an older version or by hand are tightened at
//! start ([`tighten`]), one log line each.

use std::path::Path;
use std::sync::OnceLock;

/// The umask the process started with, recorded by [`restrict_umask`].
static OPERATOR_UMASK: OnceLock<u32> = OnceLock::new();

/// Group and other get nothing.
const PRIVATE_UMASK: u32 = 0o077;

/// Set the process umask to 0o077, remembering the one the operator gave the process. Call it
/// once, first thing; later calls keep the first recorded umask.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(PRIVATE_UMASK as _));
        let _ = OPERATOR_UMASK.set(previous.as_raw_mode());
    }
}

/// The operator's umask, when [`restrict_umask`] replaced it: what child processes that work
/// for the operator (deploy commands) should run with.
pub fn operator_umask() -> Option<u32> {
    OPERATOR_UMASK.get().copied()
}

/// Remove group and other permissions from `dir` and everything under it (symbolic links are
/// neither followed nor changed), logging each path changed. Returns how many were changed.
pub fn tighten(dir: &Path) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        let mut changed = 0;
        tighten_path(dir, &mut changed)?;
        Ok(changed)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(0)
    }
}

#[cfg(unix)]
fn tighten_path(path: &Path, changed: &mut usize) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;

    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & PRIVATE_UMASK != 0 {
        let tightened = mode & !PRIVATE_UMASK;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened))?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{mode:04o}"),
            now = format!("{tightened:04o}"),
            "data dir entry was readable by others; permissions tightened"
        );
        *changed += 1;
    }
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            tighten_path(&entry?.path(), changed)?;
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn tightens_dirs_and_files_below_and_leaves_links_alone() {
        let mode = |path: &Path| std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("index/segments")).unwrap();
        std::fs::write(data.join("ares.redb"), b"x").unwrap();
        std::fs::write(data.join("index/segments/a.idx"), b"x").unwrap();
        let outside = root.path().join("outside.txt");
        std::fs::write(&outside, b"x").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
        for (path, mode) in [
            (data.clone(), 0o755),
            (data.join("index"), 0o775),
            (data.join("index/segments"), 0o700),
            (data.join("ares.redb"), 0o644),
            (data.join("index/segments/a.idx"), 0o666),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }

        assert_eq!(tighten(&data).unwrap(), 4);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("index")), 0o700);
        assert_eq!(mode(&data.join("ares.redb")), 0o600);
        assert_eq!(mode(&data.join("index/segments/a.idx")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link's target outside is not ours to change");
        assert_eq!(tighten(&data).unwrap(), 0, "nothing left to do");
    }
}
