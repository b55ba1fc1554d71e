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
//! shutdown and every vector-dump interval) syncs every file and removes it. At open, a marker
//! from another boot means the machine went down with writes in flight: the index is dropped
//! and rebuilt from redb. A marker from this boot means only the process died, and the index
//! is sound.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Whether the marker is on disk (writes since the last sync).
    marked: Arc<AtomicBool>,
    /// Serialises marking and syncing.
    sync_lock: Arc<Mutex<()>>,
}

impl DeferredSyncDirectory {
    pub fn open(root: &Path) -> Result<DeferredSyncDirectory, tantivy::directory::error::OpenDirectoryError> {
        let marked = root.join(MARKER).exists();
        Ok(DeferredSyncDirectory {
            inner: MmapDirectory::open(root)?,
            root: root.to_path_buf(),
            marked: Arc::new(AtomicBool::new(marked)),
            sync_lock: Arc::new(Mutex::new(())),
        })
    }

    /// Durably write the marker before the first unsynced write.
    fn mark(&self) -> io::Result<()> {
        if self.marked.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.sync_lock.lock().map_err(|_| io::Error::other("index sync lock poisoned"))?;
        if self.marked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut file = File::create(self.root.join(MARKER))?;
        file.write_all(boot_id().unwrap_or_default().as_bytes())?;
        file.sync_all()?;
        sync_dir(&self.root)?;
        self.marked.store(true, Ordering::Release);
        Ok(())
    }

    /// Make every write so far durable and remove the marker. Call with no commit running
    /// (the lexical index holds its writer lock).
    pub fn sync(&self) -> io::Result<()> {
        let _guard = self.sync_lock.lock().map_err(|_| io::Error::other("index sync lock poisoned"))?;
        if !self.marked.load(Ordering::Acquire) {
            return Ok(());
        }
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_type()?.is_file() && entry.file_name() != MARKER {
                File::open(entry.path())?.sync_data()?;
            }
        }
        sync_dir(&self.root)?;
        std::fs::remove_file(self.root.join(MARKER))?;
        sync_dir(&self.root)?;
        self.marked.store(false, Ordering::Release);
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A segment file: written and flushed to the kernel, not synced.
struct UnsyncedFile(File);

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
        self.mark().map_err(|e| OpenWriteError::wrap_io_error(e, path.to_path_buf()))?;
        let file = OpenOptions::new().write(true).create_new(true).open(self.root.join(path)).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                OpenWriteError::FileAlreadyExists(path.to_path_buf())
            } else {
                OpenWriteError::wrap_io_error(e, path.to_path_buf())
            }
        })?;
        Ok(BufWriter::new(Box::new(UnsyncedFile(file))))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    /// Write-then-rename, so readers see the old or the new content, never a mix; not synced.
    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.mark()?;
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
        directory.sync().unwrap();
        assert_eq!(trust(dir.path()), Trust::Synced);
        assert_eq!(directory.atomic_read(Path::new("meta.json")).unwrap(), b"{}");
        // Marked again by the next write after a sync.
        let mut writer = directory.open_write(Path::new("segment")).unwrap();
        writer.write_all(b"data").unwrap();
        writer.terminate().unwrap();
        assert!(dir.path().join(MARKER).exists());
    }
}
