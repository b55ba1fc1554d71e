//! Online backups: a snapshot of the database from one read transaction plus a manifest, in a
//! directory of its own under the backups dir (`POST /api/admin/backup`, `ares backup`), and
//! putting one back (`ares restore`, server stopped).
//!
//! Only the database is backed up: the search indexes are derived from it and are rebuilt after
//! a restore; the secrets in `data/secrets/` are not copied (keep them with your other secrets).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::store::{self, Store, migrations};

/// The snapshot's file name inside a backup directory.
pub const SNAPSHOT_FILE: &str = "ares.redb";
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup directory.
    pub path: PathBuf,
    pub file: PathBuf,
    pub created_at: String,
    pub ares_version: String,
    pub schema_version: u32,
    pub bytes: u64,
    /// Rows per table.
    pub tables: std::collections::BTreeMap<String, u64>,
}

/// Where backups go: `[storage].backups_dir` (relative to the data dir) or `<data>/backups`.
pub fn backups_dir(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    match configured {
        Some(dir) if dir.is_absolute() => dir.to_path_buf(),
        Some(dir) => data_dir.join(dir),
        None => data_dir.join("backups"),
    }
}

/// Snapshot `store` into a new directory under `backups_dir`. Blocking.
pub fn create(store: &Store, backups_dir: &Path) -> Result<Manifest, store::Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| store::Error::Io { path, source }
    };
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let backups_dir = std::path::absolute(backups_dir).map_err(io(backups_dir))?;
    let dir = backups_dir.join(format!("ares-{stamp}-{}", &suffix[..8]));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let file = dir.join(SNAPSHOT_FILE);
    let counts = match store.snapshot(&file) {
        Ok(counts) => counts,
        Err(e) => {
            // No half-written backup is left looking like a good one.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(&file).map_err(io(&file))?.len();
    let manifest = Manifest {
        path: dir.clone(),
        file,
        created_at: clock::rfc3339(clock::now_unix()),
        ares_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: migrations::latest(migrations::MIGRATIONS),
        bytes,
        tables: counts.into_iter().collect(),
    };
    let manifest_path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| store::Error::Internal(e.to_string()))?;
    std::fs::write(&manifest_path, json).map_err(io(&manifest_path))?;
    std::fs::File::open(&manifest_path).and_then(|f| f.sync_all()).map_err(io(&manifest_path))?;
    Ok(manifest)
}

/// What `restore` did.
#[derive(Debug)]
pub struct Restored {
    pub from: PathBuf,
    /// Where the replaced database was moved, if there was one.
    pub previous: Option<PathBuf>,
}

/// Put the snapshot at `source` (a backup directory or a `.redb` file) back as the data dir's
/// database. The server must be stopped: the current file is opened first, which fails while a
/// server holds it. The replaced file is kept beside it, and the derived indexes are deleted so
/// the next start rebuilds them from the restored data.
/// The snapshots under `dir` (backup directories and `.redb` files such as the pre-migration
/// snapshots), newest first by modification time: what `ares restore DIR` offers when DIR is
/// not a snapshot itself.
pub fn snapshots_in(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(PathBuf, std::time::SystemTime, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let file = if path.is_dir() { path.join(SNAPSHOT_FILE) } else { path.clone() };
            let is_snapshot = file.is_file() && file.extension().is_some_and(|e| e == "redb");
            let meta = std::fs::metadata(&file).ok().filter(|_| is_snapshot)?;
            Some((path, meta.modified().ok()?, meta.len()))
        })
        .collect();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    found
}

pub fn restore(source: &Path, data_dir: &Path) -> Result<Restored, store::Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| store::Error::Io { path, source }
    };
    let snapshot = if source.is_dir() { source.join(SNAPSHOT_FILE) } else { source.to_path_buf() };
    if !snapshot.is_file() {
        return Err(store::Error::NotFound(format!("no snapshot at {}", snapshot.display())));
    }
    // A snapshot from a newer binary is refused, and a damaged one fails here, before anything changes.
    Store::inspect(&snapshot)?;

    let target = data_dir.join(store::DB_FILE);
    let mut previous = None;
    if target.exists() {
        // Fails at once if a server holds the file.
        Store::open(&target, store::MigrationPolicy::Inspect)?.close();
        let kept = data_dir.join(format!("{}.before-restore-{}", store::DB_FILE, clock::now_unix()));
        std::fs::rename(&target, &kept).map_err(io(&target))?;
        previous = Some(kept);
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let staging = data_dir.join(format!("{}.restoring", store::DB_FILE));
    std::fs::copy(&snapshot, &staging).map_err(io(&staging))?;
    std::fs::File::open(&staging).and_then(|f| f.sync_all()).map_err(io(&staging))?;
    std::fs::rename(&staging, &target).map_err(io(&target))?;
    for derived in [crate::rag::SEARCH_DIR, crate::rag::VECTORS_DIR] {
        let dir = data_dir.join(derived);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    Ok(Restored { from: snapshot, previous })
}
