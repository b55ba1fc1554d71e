//! Errors of the storage layer. `api::error` maps them to HTTP in one place.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process (normally a running `ares serve`) holds the file's lock.
    #[error("{} is in use by another ares process (is `ares serve` running?)", path.display())]
    Locked { path: PathBuf },
    /// The file records migrations this binary does not know: it was written by a newer ARES.
    #[error(
        "the database was written by a newer ARES (schema version {found}; this binary supports up to {supported}); \
         upgrade ares or restore a backup — the file was not modified"
    )]
    NewerSchema { found: u32, supported: u32 },
    /// A recorded migration differs from the one compiled in (edited after release).
    #[error("migration {version} recorded in the database has checksum {recorded}, but this binary's has {expected}")]
    ChecksumMismatch { version: u32, recorded: String, expected: String },
    /// The file was not closed cleanly and must be recovered by a read-write open.
    #[error("the database needs recovery after an unclean shutdown")]
    NeedsRecovery,
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    #[error("cannot decode a {table} record: {message}")]
    Codec { table: &'static str, message: String },
    #[error("a {table} record has value version {version}, which this binary cannot read")]
    UnknownRecordVersion { table: &'static str, version: u8 },
    /// A uniqueness rule was violated; the message is safe to show to clients.
    #[error("{0}")]
    Conflict(String),
    /// The addressed record does not exist; the message is safe to show to clients.
    #[error("{0}")]
    NotFound(String),
    /// The commit that carried this write failed; nothing of it was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The storage failed (an I/O error: a full disk, a failing device) and redb refuses every
    /// write until the database is reopened.
    #[error(
        "the database refuses writes after an I/O error ({0}); free disk space if it is full, then restart ares \
         (the file recovers to its last durable commit)"
    )]
    WritesStopped(String),
    /// The writer has shut down (the server is stopping).
    #[error("the store is closed")]
    Closed,
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Internal(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Storage(e.into()) }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::DatabaseError);
