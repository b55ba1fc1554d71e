//! Storage doubles for tests that need a disk to misbehave: the database file is real, only
//! the failure is injected.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A real database file on a disk that fills up when told to: writes, growth and syncs fail
/// with ENOSPC's message while the flag [`FillingDisk::open`] returns is set.
#[derive(Debug)]
pub(crate) struct FillingDisk {
    file: redb::backends::FileBackend,
    full: Arc<AtomicBool>,
}

impl FillingDisk {
    /// The file at `path` (created if missing) on a disk with room, and the flag that fills it.
    pub(crate) fn open(path: &Path) -> (FillingDisk, Arc<AtomicBool>) {
        let file = std::fs::File::options().read(true).write(true).create(true).truncate(false).open(path).unwrap();
        let full = Arc::new(AtomicBool::new(false));
        (FillingDisk { file: redb::backends::FileBackend::new(file).unwrap(), full: full.clone() }, full)
    }

    fn check(&self) -> std::io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"));
        }
        Ok(())
    }
}

impl redb::StorageBackend for FillingDisk {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }
}
