//! Embedded storage: one redb file (`data/ares.redb`), the single source of truth.
//!
//! Only this module knows redb. Reads run on the blocking pool through [`Store::read`]; writes
//! on the request path go through [`Store::write`], which hands them to the group-commit
//! writer so concurrent requests share one fsync. Every table is declared in `tables.rs`,
//! every value is a versioned postcard record (`codec.rs`), and `migrations.rs` brings a file
//! from any earlier schema version to the current one at start.

mod codec;
mod error;
pub mod generational;
pub mod migrations;
pub mod tables;
mod writer;

pub mod agents;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod backup;
pub mod budgets;
pub mod compat;
pub mod conversations;
pub mod costs;
pub mod deploys;
pub mod memory;
pub mod provisioning;
pub mod rag;
pub mod rag_jobs;
pub mod request_log;
pub mod runs;
pub mod templates;
pub mod tenants;
pub mod usage;
pub mod user_agents;
pub mod user_usage;
pub mod users;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase as _, WriteTransaction};

pub use codec::{Record, all_values, decode, encode};
pub use error::Error;
pub use migrations::{Migration, MigrationStatus};
pub use writer::WriterStats;

use writer::Writer;

/// What a cache outside the store can be built from: each kind has a generation
/// ([`Store::generation`]) that moves after every commit that changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// API keys and tenants: what authenticates a key (`auth::key_cache`).
    Credentials,
    /// A tenant's agents and their run statistics: what `GET /v1/agents` shows.
    Agents,
    /// A tenant's agent definitions only (not their statistics, which every chat moves): what
    /// a tenant's chat runs (`agents::resolve::for_tenant`).
    TenantAgents,
}

impl Watched {
    const ALL: [Watched; 3] = [Watched::Credentials, Watched::Agents, Watched::TenantAgents];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

thread_local! {
    /// The [`Watched`] kinds the writes of the transaction in progress on this thread changed;
    /// the commit that follows (the writer's, or [`Store::write_blocking`]'s) moves their
    /// generations.
    static CHANGED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Called by the store functions that change a watched kind, inside their transaction.
fn note_changed(kind: Watched) {
    CHANGED.set(CHANGED.get() | kind.bit());
}

/// The kinds changed since the last call (a bit per [`Watched`]), and forget them.
fn take_changed() -> u8 {
    CHANGED.replace(0)
}

/// Directory (beside the database file) of the automatic pre-migration snapshots.
pub const PRE_MIGRATION_DIR: &str = "backups";

/// An existing file with pending migrations is copied first to
/// `backups/pre-migration-v<from>-to-v<to>-<unix time>.redb` beside it, so a failed or
/// regretted upgrade can be undone with `ares restore`. A file with no recorded migration (just
/// created) has nothing worth saving.
fn snapshot_before_migrating(db: &Database, path: &Path, migrations: &[Migration]) -> Result<(), Error> {
    let status = migrations::status(db, migrations)?;
    let applied = status.iter().filter(|s| s.applied_at.is_some()).map(|s| s.version).max();
    let latest = migrations::latest(migrations);
    let Some(from) = applied else { return Ok(()) };
    if from >= latest {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new(".")).join(PRE_MIGRATION_DIR);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let target = dir.join(format!("pre-migration-v{from}-to-v{latest}-{}.redb", crate::clock::now_unix()));
    backup::snapshot(db, &target)?;
    tracing::info!(snapshot = %target.display(), from, to = latest, "saved a snapshot before migrating");
    Ok(())
}

/// redb's page cache unless configured (`[storage].cache_mib`, whose default is the same).
/// redb's own default is 1 GiB, and the cache keeps every page written until it is full: under
/// chat load the server's memory grew with every conversation stored. Reads that miss it are
/// served by the kernel's page cache, which is not the process's memory. 16 MiB holds the hot
/// path's pages: under c=32 chat load it served as many requests as 32 MiB (11.6k vs 10.6k
/// req/s, `benches/wrk_gateway.py`) with 16 MiB less resident.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "ares.redb";

/// What [`Store::open`] does about pending migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Apply every pending migration in one transaction before returning (server start,
    /// `ares migrate up`).
    Apply,
    /// Leave the file as it is (`ares migrate status`); [`Store::migration_status`] reports.
    Inspect,
}

/// A detached write's place in the writer's order ([`Store::write_detached`]); the default
/// stands before every write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// The open database plus its writer thread. Cheap to share behind an `Arc`.
pub struct Store {
    db: Arc<Database>,
    writer: Writer,
    path: PathBuf,
}

impl Store {
    /// Open (or create) the database file with the built-in migration list.
    ///
    /// Blocking: call from the CLI or `spawn_blocking`. Fails with [`Error::Locked`] at once,
    /// without waiting, when another process holds the file, and with [`Error::NewerSchema`]
    /// when the file was written by a newer binary (the file is then left untouched).
    pub fn open(path: &Path, policy: MigrationPolicy) -> Result<Store, Error> {
        Self::open_with(path, migrations::MIGRATIONS, policy)
    }

    /// [`Store::open`] with a page cache of `cache_bytes` instead of [`DEFAULT_CACHE_BYTES`]
    /// (`[storage].cache_mib`).
    pub fn open_cached(path: &Path, policy: MigrationPolicy, cache_bytes: usize) -> Result<Store, Error> {
        Self::open_inner(path, migrations::MIGRATIONS, policy, cache_bytes)
    }

    /// [`Store::open`] with an explicit migration list (tests exercise upgrade paths with it).
    pub fn open_with(path: &Path, migrations: &[Migration], policy: MigrationPolicy) -> Result<Store, Error> {
        Self::open_inner(path, migrations, policy, DEFAULT_CACHE_BYTES)
    }

    fn open_inner(
        path: &Path,
        migrations: &[Migration],
        policy: MigrationPolicy,
        cache_bytes: usize,
    ) -> Result<Store, Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_path_buf(), source })?;
        }
        // Refuse a newer file before opening it for writing: a read-write open may already
        // write to it (e.g. its recovery state), and a newer file must stay exactly as it is.
        if path.exists() {
            match open_read_only(path) {
                Ok(db) => migrations::check_history(&db, migrations)?,
                // Left by a crash: redb must recover it before it can be read; the check below
                // still runs before any migration touches it.
                Err(Error::NeedsRecovery) => {}
                Err(e) => return Err(e),
            }
        }
        let existed = path.exists();
        let db = Database::builder().set_cache_size(cache_bytes).create(path).map_err(|e| open_error(path, e))?;
        migrations::check_history(&db, migrations)?;
        if policy == MigrationPolicy::Apply {
            if existed {
                snapshot_before_migrating(&db, path, migrations)?;
            }
            migrations::apply_pending(&db, migrations)?;
        }
        let db = Arc::new(db);
        let writer = Writer::start(db.clone())?;
        Ok(Store { db, writer, path: path.to_path_buf() })
    }

    /// Migration status of an existing file without modifying it (`ares migrate status`).
    /// A file left by a crash is recovered first, which changes no recorded data.
    pub fn inspect(path: &Path) -> Result<Vec<MigrationStatus>, Error> {
        match open_read_only(path) {
            Ok(db) => migrations::status(&db, migrations::MIGRATIONS),
            Err(Error::NeedsRecovery) => {
                let store = Store::open(path, MigrationPolicy::Inspect)?;
                let status = store.migration_status();
                store.close();
                status
            }
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write a consistent copy of the database to `target` (a new file) from one read
    /// transaction, without blocking writers. Blocking.
    pub fn snapshot(&self, target: &Path) -> Result<backup::TableCounts, Error> {
        backup::snapshot(&self.db, target)
    }

    /// Every known migration with its applied time, or pending.
    pub fn migration_status(&self) -> Result<Vec<MigrationStatus>, Error> {
        migrations::status(self.db.as_ref(), migrations::MIGRATIONS)
    }

    /// Run `f` in a read transaction on the blocking pool (a consistent MVCC snapshot) that
    /// sees every write queued before the call, detached ones included ([`Store::settle`]).
    pub async fn read<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&ReadTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.settle().await;
        self.read_committed(f).await
    }

    /// [`Store::read`] of what is committed now, without waiting for the writer: for reads that
    /// only need the file (the health probe must not queue behind a large write batch).
    async fn read_committed<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&ReadTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }

    /// Wait until every write queued so far (detached ones included) is committed, so that a
    /// read begun afterwards sees it: read-your-writes for records whose writers do not wait
    /// for their commit (chat turns, runs, learned memory). [`Store::read`] does it itself;
    /// [`Store::read_now`] callers that read those records call it first. Nearly free when the
    /// writer has caught up; otherwise it waits for the batch in progress, never for an fsync.
    pub async fn settle(&self) {
        self.writer.settle().await;
    }

    /// Run `f` in a read transaction on the calling (async worker) thread. It sees what is
    /// committed, not what is still queued: see [`Store::settle`].
    ///
    /// For small, bounded reads on the hot request path (API-key lookup, quota seeds, a
    /// tenant's agent or key list): they are served from redb's page cache in microseconds,
    /// while a hop to the blocking pool costs a thread wake-up each way (measured: ~140 µs per
    /// request on the 2-core test machine, most of the governed path's cost). A cold page costs
    /// one disk read on the worker, which these few-key lookups accept. Scans and anything
    /// unbounded use [`Store::read`].
    pub fn read_now<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R, Error>) -> Result<R, Error> {
        let txn = self.db.begin_read()?;
        f(&txn)
    }

    /// Queue `f` for the group-commit writer and wait until its transaction is durable.
    ///
    /// `f` runs on the writer thread together with whatever else is queued; if `f` returns an
    /// error, its writes are discarded and the rest of the batch commits without it. A job may
    /// therefore run more than once (the batch is replayed without the failed job), so `f`
    /// must derive everything from its captures and the transaction. `Ok` means committed and
    /// fsynced. Dropping the future does not cancel the write.
    pub async fn write<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.writer.submit(f, false).await
    }

    /// [`Store::write`] for chat records (conversation turns, runs, learned memory): answered
    /// once committed and visible to every later read, but made durable up to the sync
    /// interval later ([`Store::set_sync_interval`]), so a chat does not wait for an fsync. A
    /// crash can lose at most that window of these writes.
    pub async fn write_relaxed<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.writer.submit(f, true).await
    }

    /// Have `observer` told of every commit's duration and batch size (once per store).
    pub fn observe_commits(&self, observer: writer::CommitObserver) {
        self.writer.observe_commits(observer);
    }

    /// How long relaxed writes may stay unsynced ([`Store::set_sync_interval`]).
    pub fn sync_interval(&self) -> std::time::Duration {
        self.writer.sync_interval()
    }

    /// How long relaxed writes may stay unsynced (`[storage].sync_interval_ms`); zero (the
    /// default) makes them as durable as any other.
    pub fn set_sync_interval(&self, interval: std::time::Duration) {
        self.writer.set_sync_interval(interval);
    }

    /// [`Store::write`] for work already on the blocking pool (RAG ingest writes a large
    /// document as a series of these, so other writers' jobs share the commits in between
    /// instead of waiting for one huge transaction). Blocks the calling thread until the commit;
    /// never call it on an async worker.
    pub fn write_wait<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.writer.submit_blocking(f)
    }

    /// Queue `f` for the writer and return at once. For records whose loss in a crash is
    /// acceptable and whose latency must not reach the client: bookkeeping (usage events,
    /// `last_used`, system alerts) and chat records (a chat is answered as soon as its exchange
    /// is queued). Relaxed: durable within the sync interval of its commit. Readers that must
    /// see it call [`Store::settle`] (or use [`Store::read`]). Failures are logged.
    pub fn write_detached<R, F>(&self, f: F) -> Ticket
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        match self.writer.submit_detached(f) {
            Ok(number) => Ticket(number),
            Err(e) => {
                tracing::warn!(error = %e, "a detached write was dropped");
                Ticket::default()
            }
        }
    }

    /// [`Store::settle`] for one detached write (and what was queued before it) rather than
    /// everything queued so far: a reader that depends on one kind of record does not wait
    /// for the request log and usage batches queued after it.
    pub async fn settle_until(&self, ticket: Ticket) {
        self.writer.settle_to(ticket.0).await;
    }

    /// Wait until every write queued before this call (detached ones included) is committed:
    /// the writer runs jobs in order, so an empty job is a barrier. Costs one commit.
    pub async fn flush(&self) -> Result<(), Error> {
        self.write(|_txn| Ok(())).await
    }

    /// Run `f` in its own transaction on the calling thread, bypassing the writer. For start-up
    /// and CLI work only (blocking; one fsync of its own).
    pub fn write_blocking<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R, Error>) -> Result<R, Error> {
        let txn = self.db.begin_write()?;
        take_changed();
        let out = f(&txn);
        if out.is_err() {
            take_changed();
        }
        let out = out?;
        txn.commit()?;
        self.writer.count_watched_commit();
        Ok(out)
    }

    /// How many commits have changed `kind`. A cache of it (`auth::KeyCache`, the agent
    /// pages of `GET /v1/agents`) notes this before it reads and is current while it has not
    /// moved: it moves only after such a commit is visible to new reads, so a read begun before
    /// it can only be older.
    pub fn generation(&self, kind: Watched) -> u64 {
        self.writer.generation(kind)
    }

    /// Counters of the group-commit writer (batches, jobs): how much fsync sharing happened.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// The raw database, for tools and benchmarks that must bypass the writer (the
    /// one-commit-per-write baseline, backups). Request paths use [`Store::write`].
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// [`Error::WritesStopped`] once the storage has failed: for requests that would otherwise
    /// be answered and then lose what they write (a chat's turn, run and usage).
    pub fn check_writable(&self) -> Result<(), Error> {
        match self.writer.stopped() {
            Some(cause) => Err(Error::WritesStopped(cause)),
            None => Ok(()),
        }
    }

    /// A cheap liveness probe: a read transaction that opens the migrations table.
    pub async fn ping(&self) -> Result<(), Error> {
        // A read the page cache answers would pass after the storage failed.
        self.check_writable()?;
        self.read_committed(|txn| {
            txn.open_table(tables::SCHEMA_MIGRATIONS)?;
            Ok(())
        })
        .await
    }

    /// Stop the writer after it has committed everything already queued. Later writes fail
    /// with [`Error::Closed`]. Blocking (joins the writer thread).
    pub fn close(&self) {
        self.writer.shutdown();
    }
}

#[cfg(test)]
impl Store {
    /// A store on `backend` with every migration applied, for tests that make the storage
    /// itself fail; `path` is only its name in errors.
    pub(crate) fn on_backend(backend: impl redb::StorageBackend, path: &Path) -> Result<Store, Error> {
        let db = Database::builder().create_with_backend(backend).map_err(|e| open_error(path, e))?;
        migrations::apply_pending(&db, migrations::MIGRATIONS)?;
        let db = Arc::new(db);
        let writer = Writer::start(db.clone())?;
        Ok(Store { db, writer, path: path.to_path_buf() })
    }
}

fn open_read_only(path: &Path) -> Result<redb::ReadOnlyDatabase, Error> {
    redb::ReadOnlyDatabase::open(path).map_err(|e| match e {
        redb::DatabaseError::RepairAborted => Error::NeedsRecovery,
        other => open_error(path, other),
    })
}

fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked { path: path.to_path_buf() },
        other => Error::from(redb::Error::from(other)),
    }
}
