//! A tantivy directory whose commits do not wait for the disk.
//!
//! tantivy fsyncs every file of a new segment, the directory and `meta.json` on each commit —
//! about ten fsyncs, ~30 ms here — and a commit is the only way to make added documents
//! searchable. Ingests wait for their chunks to be searchable, so that fsync bill was the
//! ceiling of ingest throughput (benches/rag.rs: one round of 100 chunks took 35 ms, 3.5 s of
//! a 3.6 s run at 10k chunks).
//!
//! The index is derived from redb, so it needs no durability of its own — only a way to know
//! when it cannot be trusted. A process that dies (kill -9, a panic, an OOM kill) loses nothing
//! the kernel was given: its page cache still has every write. Only a machine that goes down
//! loses unsynced writes. So before the first unsynced write this directory durably writes a
//! marker, `unsynced`, holding the kernel's boot id; [`DeferredSyncDirectory::sync`] (at
//! shutdown, after tantivy's merges have finished, and every vector-dump interval) syncs every
//! file and removes it unless a write was under way meanwhile. At open, a marker
//! from another boot means the machine went down with writes in flight: the index is dropped
//! and rebuilt from redb. A marker from this boot means only the process died, and the index
//! is sound.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite, WatchCallback,
    WatchHandle, WritePtr,
};

pub const MARKER: &str = "unsynced";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// What the marker found at open says about the index.
#[derive(Debug, PartialEq, Eq)]
pub enum Trust {
    /// No marker: the last sync covered everything.
    Synced,
    /// Unsynced writes from this boot: the page cache still holds them.
    SameBoot,
    /// Unsynced writes from before a reboot (or an unknown boot): they may be lost or torn.
    Lost,
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID).ok().map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

/// Whether the index in `dir` can be trusted (module docs). Without a boot id to compare
/// (not Linux), any marker counts as lost writes.
pub fn trust(dir: &Path) -> Trust {
    match std::fs::read_to_string(dir.join(MARKER)) {
        Err(_) => Trust::Synced,
        Ok(marked) => match boot_id() {
            Some(current) if current == marked.trim() => Trust::SameBoot,
            _ => Trust::Lost,
        },
    }
}

#[derive(Clone, Debug)]
pub struct DeferredSyncDirectory {
    inner: MmapDirectory,
    root: PathBuf,
    writes: Arc<Mutex<Writes>>,
}

/// What [`DeferredSyncDirectory::sync`] must know to remove the marker only when nothing
/// written is left unsynced: tantivy's merge threads write while commits and syncs go on.
#[derive(Debug, Default)]
struct Writes {
    /// Whether the marker is on disk.
    marked: bool,
    /// Writes begun so far (a sync removes the marker only if none began while it ran).
    begun: u64,
    /// Segment files open for writing (their end may not be in the sync's pass).
    open: usize,
}

impl DeferredSyncDirectory {
    pub fn open(root: &Path) -> Result<DeferredSyncDirectory, tantivy::directory::error::OpenDirectoryError> {
        let marked = root.join(MARKER).exists();
        Ok(DeferredSyncDirectory {
            inner: MmapDirectory::open(root)?,
            root: root.to_path_buf(),
            writes: Arc::new(Mutex::new(Writes { marked, ..Writes::default() })),
        })
    }

    fn writes(&self) -> io::Result<std::sync::MutexGuard<'_, Writes>> {
        self.writes.lock().map_err(|_| io::Error::other("index sync lock poisoned"))
    }

    /// Count a write beginning (and, for a file, open until it drops), durably writing the
    /// marker first if it is not on disk.
    fn begin_write(&self, file: bool) -> io::Result<()> {
        let mut writes = self.writes()?;
        if !writes.marked {
            let mut marker = File::create(self.root.join(MARKER))?;
            marker.write_all(boot_id().unwrap_or_default().as_bytes())?;
            marker.sync_all()?;
            sync_dir(&self.root)?;
            writes.marked = true;
        }
        writes.begun += 1;
        if file {
            writes.open += 1;
        }
        Ok(())
    }

    /// Make every finished write durable, and remove the marker unless a write was open or
    /// began meanwhile (the next sync will). Returns whether the index is now fully synced.
    pub fn sync(&self) -> io::Result<bool> {
        let begun = {
            let writes = self.writes()?;
            if !writes.marked {
                return Ok(true);
            }
            writes.begun
        };
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            // Merges delete and rename files under our feet; what is gone needs no sync.
            let synced = match entry.file_type() {
                Ok(kind) if kind.is_file() && entry.file_name() != MARKER => {
                    File::open(entry.path()).and_then(|f| f.sync_data())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match synced {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(&self.root)?;
        let mut writes = self.writes()?;
        if writes.begun != begun || writes.open > 0 {
            return Ok(false);
        }
        std::fs::remove_file(self.root.join(MARKER))?;
        sync_dir(&self.root)?;
        writes.marked = false;
        Ok(true)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A segment file: written and flushed to the kernel, not synced. Counted open until dropped.
struct UnsyncedFile(File, Arc<Mutex<Writes>>);

impl Drop for UnsyncedFile {
    fn drop(&mut self) {
        if let Ok(mut writes) = self.1.lock() {
            writes.open -= 1;
        }
    }
}

impl Write for UnsyncedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TerminatingWrite for UnsyncedFile {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.0.flush()
    }
}

impl Directory for DeferredSyncDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.begin_write(true).map_err(|e| OpenWriteError::wrap_io_error(e, path.to_path_buf()))?;
        let opened = OpenOptions::new().write(true).create_new(true).open(self.root.join(path));
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                if let Ok(mut writes) = self.writes.lock() {
                    writes.open -= 1;
                }
                return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                    OpenWriteError::FileAlreadyExists(path.to_path_buf())
                } else {
                    OpenWriteError::wrap_io_error(e, path.to_path_buf())
                });
            }
        };
        Ok(BufWriter::new(Box::new(UnsyncedFile(file, self.writes.clone()))))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    /// Write-then-rename, so readers see the old or the new content, never a mix; not synced.
    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.begin_write(false)?;
        let target = self.root.join(path);
        let staging = self.root.join(format!(".{}.{}", path.display(), uuid::Uuid::new_v4().simple()));
        std::fs::write(&staging, data)?;
        std::fs::rename(&staging, &target)
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_says_whether_unsynced_writes_can_be_trusted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(trust(dir.path()), Trust::Synced);
        let directory = DeferredSyncDirectory::open(dir.path()).unwrap();
        directory.atomic_write(Path::new("meta.json"), b"{}").unwrap();
        assert!(dir.path().join(MARKER).exists(), "marked before the first unsynced write");
        let expected = if boot_id().is_some() { Trust::SameBoot } else { Trust::Lost };
        assert_eq!(trust(dir.path()), expected);
        std::fs::write(dir.path().join(MARKER), "another-boot").unwrap();
        assert_eq!(trust(dir.path()), Trust::Lost);
        assert!(directory.sync().unwrap());
        assert_eq!(trust(dir.path()), Trust::Synced);
        assert_eq!(directory.atomic_read(Path::new("meta.json")).unwrap(), b"{}");
        // Marked again by the next write after a sync; a file still being written (a merge
        // running through the sync) keeps the marker until a later sync.
        let mut writer = directory.open_write(Path::new("segment")).unwrap();
        writer.write_all(b"data").unwrap();
        assert!(dir.path().join(MARKER).exists());
        assert!(!directory.sync().unwrap());
        assert!(dir.path().join(MARKER).exists());
        writer.terminate().unwrap();
        assert!(directory.sync().unwrap());
        assert_eq!(trust(dir.path()), Trust::Synced);
    }
}
