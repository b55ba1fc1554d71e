//! The group-commit writer: one thread owns every request-path write transaction.
//!
//! redb allows one writer at a time and every durable commit costs an fsync. Instead of each
//! request opening its own transaction (and queueing on the write lock for its own fsync),
//! callers enqueue a job and await; the thread takes everything queued, runs the jobs in one
//! transaction and commits once. While that fsync runs, new jobs pile up and form the next
//! batch, so throughput grows with concurrency instead of staying at one fsync per write.
//!
//! Durability fits the record. Most writes are acknowledged only after their batch's fsync.
//! Chat records (conversation turns, runs, usage, learned memory) may instead be *relaxed*:
//! committed without the fsync (redb `Durability::None`), so visible to every later read at
//! once, and made durable by the next durable commit — at most `sync_interval` after the first
//! unsynced one, when the thread syncs on its own if nothing else did. A crash can lose at
//! most that window of relaxed writes, never a durable one (a durable commit persists every
//! earlier relaxed commit with it). An interval of zero makes every write durable.
//!
//! Chat turns go further: the chat answers once its job is queued, not committed. Jobs are
//! numbered as they are queued and the thread publishes the number of the last one it has
//! finished, so a reader that must see them ([`Writer::settle`]) waits only while the thread
//! is behind — for the batch in progress, never for an fsync.
//!
//! A job that returns an error must not take its batch down, and redb has no per-job rollback
//! inside a dirty transaction, so the batch is aborted and replayed without the failed jobs —
//! all of a pass's failures at once, so any mix of failing and succeeding writes costs about
//! two passes over the batch (see [`commit_batch`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{oneshot, watch};

use super::{Error, Watched};

/// Upper bound on jobs per transaction, so one batch's latency stays bounded under a flood.
const MAX_BATCH: usize = 1024;

/// How long a batch may wait for writers that were part of the previous batch. Those callers
/// were answered a moment ago and are about to submit again; without this wait the batch
/// closes on the first one back and the rest form a second, small batch with its own fsync
/// (measured: ~N/2 jobs per commit instead of ~N). Small next to one fsync (~0.3 ms here), and
/// a lone writer never waits because its previous batch had one job.
const LINGER: Duration = Duration::from_micros(200);

/// How long a writer that works back to back holds a batch led by a detached job (chat records,
/// usage, the request log) before running it. Nobody waits for such a job's commit: the hold
/// delays only its visibility to later reads (`Store::settle`). Under a load that keeps the
/// writer busy, commits otherwise carry a few chats each and their fixed cost (dirty pages
/// written, checksums) is most of the writer's time (measured at c=32: 2.6 chats per commit,
/// 58 µs of writer time per chat; with a 1 ms hold 30 and 31 µs). 3 ms rather than 1: about 30
/// chats per commit became about 80, and the server's CPU per chat fell from 64.6 to 62.4 µs
/// (medians of 4 alternating runs); a reader that settles waits at most this much longer, and
/// only while the writer is saturated. A lone or light writer is never busy at the end of a
/// commit, so it never holds.
const SATURATED_HOLD: Duration = Duration::from_millis(3);

/// A type-erased job: runs inside the batch transaction, answers its caller after the commit.
trait Job: Send {
    /// Whether the job may be acknowledged before its commit is durable.
    fn relaxed(&self) -> bool;
    /// Whether nobody waits for the job's commit (`write_detached`).
    fn detached(&self) -> bool;
    /// Run against `txn`; `false` means the job failed and its writes must be discarded.
    fn run(&mut self, txn: &WriteTransaction) -> bool;
    /// The I/O error the job's last run failed with, if the storage itself failed under it (a
    /// full disk met while growing the file): a failure of every write, not of this job.
    fn storage_failure(&self) -> Option<String>;
    /// Answer the caller of a failed job with its own error.
    fn reject(self: Box<Self>);
    /// Answer the caller once the batch's commit has succeeded or failed.
    fn finish(self: Box<Self>, commit: Result<(), &Failure>);
}

struct TypedJob<F, R> {
    f: F,
    relaxed: bool,
    outcome: Option<Result<R, Error>>,
    reply: Option<oneshot::Sender<Result<R, Error>>>,
}

impl<F, R> Job for TypedJob<F, R>
where
    F: FnMut(&WriteTransaction) -> Result<R, Error> + Send,
    R: Send,
{
    fn relaxed(&self) -> bool {
        self.relaxed
    }

    fn detached(&self) -> bool {
        self.reply.is_none()
    }

    fn run(&mut self, txn: &WriteTransaction) -> bool {
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.f)(txn)))
            .unwrap_or_else(|_| Err(Error::Internal("a write job panicked".into())));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn storage_failure(&self) -> Option<String> {
        match &self.outcome {
            Some(Err(Error::Storage(redb::Error::Io(e)))) => Some(e.to_string()),
            Some(Err(Error::Storage(redb::Error::PreviousIo))) => Some(PREVIOUS_IO.to_string()),
            _ => None,
        }
    }

    fn reject(mut self: Box<Self>) {
        let outcome = self.outcome.take().unwrap_or(Err(Error::Internal("write job did not run".into())));
        self.answer(outcome);
    }

    fn finish(mut self: Box<Self>, commit: Result<(), &Failure>) {
        let outcome = match commit {
            Ok(()) => self.outcome.take().unwrap_or(Err(Error::Internal("write job did not run".into()))),
            Err(Failure::Commit(message)) => Err(Error::CommitFailed(message.clone())),
            Err(Failure::Stopped(cause)) => Err(Error::WritesStopped(cause.clone())),
        };
        self.answer(outcome);
    }
}

impl<F, R> TypedJob<F, R> {
    fn answer(&mut self, outcome: Result<R, Error>) {
        match self.reply.take() {
            // The caller may have gone away (client disconnected); the write stands regardless.
            Some(reply) => {
                let _ = reply.send(outcome);
            }
            // Detached jobs have nobody to tell: a failure is at least logged (once for all,
            // when the storage itself failed).
            None => match outcome {
                Err(Error::WritesStopped(cause)) => tracing::debug!(%cause, "a detached write was refused"),
                Err(e) => tracing::warn!(error = %e, "a detached write failed"),
                Ok(_) => {}
            },
        }
    }
}

/// Why a batch's jobs failed together.
enum Failure {
    /// This batch's transaction could not begin or commit.
    Commit(String),
    /// The storage failed ([`Counters::stopped`]): every write fails until the file is reopened.
    Stopped(String),
}

enum Message {
    /// A job and its place in the queue (see [`Writer::settle`]).
    Job(Box<dyn Job>, u64),
    Shutdown,
}

/// Counters exposed for benchmarks and `/health/detailed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Jobs committed (successful ones).
    pub jobs: u64,
    /// Commits that waited for an fsync (batches with a durable job, and the writer's own syncs
    /// of relaxed commits).
    pub syncs: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    jobs: AtomicU64,
    syncs: AtomicU64,
    /// Milliseconds a relaxed commit may stay unsynced; 0 = every commit is durable.
    sync_interval_ms: AtomicU64,
    /// Told each batch's commit time and size (the `ares_store_commit_*` metrics).
    observer: std::sync::OnceLock<CommitObserver>,
    /// Commits that changed each [`Watched`] kind ([`super::note_changed`]), by its index.
    generations: [AtomicU64; Watched::ALL.len()],
    /// The I/O error after which redb refuses every write, and every read its cache cannot
    /// answer, until the database is reopened (a full disk, a failing device). Set once.
    stopped: std::sync::OnceLock<String>,
}

impl Counters {
    /// Note `error` if it is the storage failing; returns the failure to answer jobs with.
    /// Logged once: after it every write fails the same way, and a line per write (the usage
    /// flush alone writes every 50 ms) would only fill the disk further.
    fn failure(&self, error: &redb::StorageError, message: String) -> Failure {
        let cause = match error {
            redb::StorageError::Io(e) => e.to_string(),
            redb::StorageError::PreviousIo => PREVIOUS_IO.to_string(),
            _ => return Failure::Commit(message),
        };
        self.stop(cause, &message)
    }

    /// Note that the storage failed with `cause` (kept only the first time, which is logged).
    fn stop(&self, cause: String, message: &str) -> Failure {
        if self.stopped.set(cause.clone()).is_ok() {
            tracing::error!(
                %cause,
                error = %message,
                "the database hit an I/O error and refuses writes until ares restarts: free disk space if it is \
                 full, then restart (the file recovers to its last durable commit)"
            );
        }
        Failure::Stopped(self.stopped.get().cloned().unwrap_or_default())
    }
}

/// The cause noted when redb reports an I/O error it had already met (and did not say again).
const PREVIOUS_IO: &str = "an earlier I/O error";

/// Called by the writer thread after each commit with its duration and how many jobs it held.
pub type CommitObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

pub(super) struct Writer {
    sender: Mutex<Option<Sender<Message>>>,
    /// How many jobs were ever sent. Numbered and sent under the `sender` lock, so jobs reach
    /// the thread in the order of their numbers.
    queued: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    /// The number of the last job the thread has finished with (committed, or answered with its
    /// failure): every job up to it is visible to new read transactions.
    done: watch::Receiver<u64>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>) -> Result<Writer, Error> {
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let (done_sender, done) = watch::channel(0);
        let thread = std::thread::Builder::new()
            .name("ares-store-writer".into())
            .spawn(move || run(&db, &receiver, &thread_counters, &done_sender))
            .map_err(|e| Error::Internal(format!("cannot start the store writer thread: {e}")))?;
        Ok(Writer {
            sender: Mutex::new(Some(sender)),
            queued: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
            counters,
            done,
        })
    }

    /// Let relaxed jobs stay unsynced for up to `interval` (zero: every commit is durable).
    pub(super) fn set_sync_interval(&self, interval: Duration) {
        let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.counters.sync_interval_ms.store(millis, Ordering::Relaxed);
    }

    /// Have `observer` told of every commit from now on (once; later calls are ignored).
    pub(super) fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.counters.observer.set(observer);
    }

    pub(super) fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.counters.sync_interval_ms.load(Ordering::Relaxed))
    }

    /// Run `f` in the next batch; answered after its commit (`relaxed`: after a commit that
    /// may not be durable yet).
    pub(super) async fn submit<R, F>(&self, f: F, relaxed: bool) -> Result<R, Error>
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Box::new(TypedJob { f, relaxed, outcome: None, reply: Some(reply) }))?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// [`Writer::submit`] for callers on a blocking-pool thread (never an async worker: it
    /// blocks until the commit).
    pub(super) fn submit_blocking<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Box::new(TypedJob { f, relaxed: false, outcome: None, reply: Some(reply) }))?;
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Queue `f` without waiting for its commit; a failure is logged. Relaxed: nobody waits
    /// for it, so nobody was promised its durability. Returns the job's number, for
    /// [`Writer::settle_to`].
    pub(super) fn submit_detached<R, F>(&self, f: F) -> Result<u64, Error>
    where
        F: FnMut(&WriteTransaction) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.enqueue(Box::new(TypedJob { f, relaxed: true, outcome: None, reply: None }))
    }

    fn enqueue(&self, job: Box<dyn Job>) -> Result<u64, Error> {
        let sender = self.sender.lock().map_err(|_| Error::Closed)?;
        let sender = sender.as_ref().ok_or(Error::Closed)?;
        let number = self.queued.load(Ordering::Relaxed) + 1;
        sender.send(Message::Job(job, number)).map_err(|_| Error::Closed)?;
        self.queued.store(number, Ordering::Release);
        Ok(number)
    }

    /// Wait until every job queued before this call has been committed (or has failed), so a
    /// read transaction begun afterwards sees it. Costs two atomic loads when the thread has
    /// caught up, which is almost always; otherwise at most the batch in progress.
    pub(super) async fn settle(&self) {
        self.settle_to(self.queued.load(Ordering::Acquire)).await;
    }

    /// Wait until job `target` and every job before it has been committed (or has failed).
    pub(super) async fn settle_to(&self, target: u64) {
        if *self.done.borrow() >= target {
            return;
        }
        let mut done = self.done.clone();
        // An error means the thread has stopped, after committing everything queued.
        let _ = done.wait_for(|finished| *finished >= target).await;
    }

    /// How many commits have changed `kind` so far: a cache of it read while this was `n` is
    /// current while it still is (bumped only after such a commit is visible).
    pub(super) fn generation(&self, kind: Watched) -> u64 {
        self.counters.generations[kind as usize].load(Ordering::Acquire)
    }

    /// After a commit on the calling thread: count it for each watched kind it changed.
    pub(super) fn count_watched_commit(&self) {
        count_watched_commit(&self.counters);
    }

    /// The I/O error after which the store refuses writes, if one happened.
    pub(super) fn stopped(&self) -> Option<String> {
        self.counters.stopped.get().cloned()
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            syncs: self.counters.syncs.load(Ordering::Relaxed),
        }
    }

    /// Commit what is queued, stop the thread and wait for it. Idempotent.
    pub(super) fn shutdown(&self) {
        if let Ok(mut sender) = self.sender.lock()
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(Message::Shutdown);
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(db: &Database, receiver: &Receiver<Message>, counters: &Counters, done: &watch::Sender<u64>) {
    let mut previous_batch = 1;
    // When the oldest commit not yet synced was made; `None` while everything is durable.
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let interval = Duration::from_millis(counters.sync_interval_ms.load(Ordering::Relaxed));
        // A job already waiting when the last commit ended: the writer is working back to back.
        let waiting = receiver.try_recv();
        let saturated = waiting.is_ok();
        let next = match waiting {
            Ok(message) => Ok(message),
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => match unsynced_since {
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => receiver.recv_timeout((since + interval).saturating_duration_since(Instant::now())),
            },
        };
        let first = match next {
            Ok(Message::Job(job, number)) => (job, number),
            Err(RecvTimeoutError::Timeout) => {
                sync(db, counters);
                unsynced_since = None;
                continue;
            }
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
        };
        if saturated && first.0.detached() && !interval.is_zero() {
            std::thread::sleep(SATURATED_HOLD);
        }
        let (batch, last, stop) = collect_batch(receiver, first, previous_batch);
        previous_batch = batch.len();
        let started = Instant::now();
        // Relaxed only while every job allows it and the oldest unsynced commit is still
        // within the interval; a durable commit also makes every earlier relaxed one durable.
        let overdue = unsynced_since.is_some_and(|since| since.elapsed() >= interval);
        let relaxed = !interval.is_zero() && !overdue && batch.iter().all(|job| job.relaxed());
        commit_batch(db, batch, counters, if relaxed { Durability::None } else { Durability::Immediate });
        if let Some(observer) = counters.observer.get() {
            observer(started.elapsed(), previous_batch);
        }
        done.send_replace(last);
        if relaxed {
            unsynced_since.get_or_insert_with(Instant::now);
        } else {
            unsynced_since = None;
        }
        if stop {
            break;
        }
    }
    if unsynced_since.is_some() {
        sync(db, counters);
    }
}

/// An empty durable commit: makes every earlier relaxed commit durable.
fn sync(db: &Database, counters: &Counters) {
    let failure = match db.begin_write() {
        Err(redb::TransactionError::Storage(e)) => Some(counters.failure(&e, e.to_string())),
        Err(e) => Some(Failure::Commit(e.to_string())),
        Ok(mut txn) => match txn.set_durability(Durability::Immediate) {
            Err(e) => Some(Failure::Commit(e.to_string())),
            Ok(()) => match txn.commit() {
                Ok(()) => None,
                Err(redb::CommitError::Storage(e)) => Some(counters.failure(&e, e.to_string())),
                Err(e) => Some(Failure::Commit(e.to_string())),
            },
        },
    };
    match failure {
        None => {
            counters.syncs.fetch_add(1, Ordering::Relaxed);
        }
        // Logged once already.
        Some(Failure::Stopped(_)) => {}
        // The relaxed commits stay visible and the next durable commit retries their sync.
        Some(Failure::Commit(e)) => tracing::error!(error = %e, "syncing relaxed commits failed"),
    }
}

/// Take what is queued behind `first`; while fewer jobs than the previous batch have arrived,
/// wait up to [`LINGER`] for the rest. Returns the batch, the number of its last job and
/// whether shutdown was requested.
fn collect_batch(
    receiver: &Receiver<Message>,
    (first, mut last): (Box<dyn Job>, u64),
    expected: usize,
) -> (Vec<Box<dyn Job>>, u64, bool) {
    let mut batch = vec![first];
    let deadline = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        let next = match receiver.try_recv() {
            Ok(message) => Ok(message),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if batch.len() >= expected || now >= deadline {
                    break;
                }
                match receiver.recv_timeout(deadline - now) {
                    Ok(message) => Ok(message),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Err(()),
                }
            }
        };
        match next {
            Ok(Message::Job(job, number)) => {
                batch.push(job);
                last = number;
            }
            Ok(Message::Shutdown) => return (batch, last, true),
            Err(()) => break,
        }
    }
    (batch, last, false)
}

/// Run `batch` in one transaction and commit it. Jobs that fail are answered with their own
/// error and dropped; the others are committed.
///
/// redb cannot roll back one job inside a dirty transaction (a savepoint needs a clean one), so
/// a failure costs an abort and a replay. To keep that linear in the batch size whatever the
/// mix, every job of a pass runs before deciding:
///
/// - the first job to fail saw only successful jobs before it, so its failure stands (in the
///   committed history it ran, as a no-op, between those jobs and the rest);
/// - a later failure may have been caused by an earlier failed job's partial writes, so each
///   such job is tried again alone against the committed state, in a transaction that is then
///   aborted (no fsync): a failure there stands (it ran, as a no-op, before the batch), a
///   success puts the job back among the survivors;
/// - the survivors are replayed once. Another pass is needed only when a survivor fails on
///   replay because it depended on a dropped job's writes.
///
/// So a batch with any number of failures costs about two passes plus one cheap solo try per
/// further failure, instead of one full replay per failure (which made a mix of failing and
/// succeeding writes quadratic in the batch size and halved the throughput of the good ones).
fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Job>>, counters: &Counters, durability: Durability) {
    loop {
        let mut txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(redb::TransactionError::Storage(e)) => return fail_all(batch, &counters.failure(&e, e.to_string())),
            Err(e) => return fail_all(batch, &Failure::Commit(e.to_string())),
        };
        if let Err(e) = txn.set_durability(durability) {
            return fail_all(batch, &Failure::Commit(e.to_string()));
        }
        // What this pass changes: a pass that is aborted and replayed sets it again.
        super::take_changed();
        let succeeded: Vec<bool> = batch.iter_mut().map(|job| job.run(&txn)).collect();
        // A job that met an I/O error (the file could not grow on a full disk) did not fail by
        // itself: redb now refuses every access, so the whole batch fails with the cause, which
        // stops later writes and chats (`Store::check_writable`) as a failed commit does.
        if let Some(cause) = batch.iter().find_map(|job| job.storage_failure()) {
            let _ = txn.abort();
            let failure = counters.stop(cause, "a write met an I/O error");
            return fail_all(batch, &failure);
        }
        if succeeded.iter().all(|ok| *ok) {
            let jobs = batch.len() as u64;
            match txn.commit() {
                Ok(()) => {
                    count_watched_commit(counters);
                    counters.batches.fetch_add(1, Ordering::Relaxed);
                    counters.jobs.fetch_add(jobs, Ordering::Relaxed);
                    if matches!(durability, Durability::Immediate) {
                        counters.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    batch.into_iter().for_each(|job| job.finish(Ok(())));
                }
                Err(e) => {
                    let failure = match e {
                        redb::CommitError::Storage(e) => counters.failure(&e, e.to_string()),
                        e => Failure::Commit(e.to_string()),
                    };
                    if let Failure::Commit(message) = &failure {
                        tracing::error!(error = %message, jobs, "commit of a write batch failed");
                    }
                    batch.into_iter().for_each(|job| job.finish(Err(&failure)));
                }
            }
            return;
        }
        if let Err(e) = txn.abort() {
            tracing::warn!(error = %e, "aborting a write batch failed");
        }
        let mut survivors = Vec::with_capacity(batch.len());
        let mut first_failure_seen = false;
        for (mut job, ok) in batch.into_iter().zip(succeeded) {
            if ok {
                survivors.push(job);
            } else if !first_failure_seen {
                first_failure_seen = true;
                job.reject();
            } else {
                match fails_alone(db, job.as_mut(), counters) {
                    Ok(true) => job.reject(),
                    Ok(false) => survivors.push(job),
                    Err(failure) => job.finish(Err(&failure)),
                }
            }
        }
        if survivors.is_empty() {
            return;
        }
        batch = survivors;
    }
}

/// Count the commit just made on this thread for each watched kind its writes changed.
fn count_watched_commit(counters: &Counters) {
    let changed = super::take_changed();
    for kind in Watched::ALL.into_iter().filter(|kind| changed & kind.bit() != 0) {
        counters.generations[kind as usize].fetch_add(1, Ordering::Release);
    }
}

/// Run `job` alone against the committed state and throw its writes away: does it fail by
/// itself? The transaction is aborted, so this costs no fsync.
fn fails_alone(db: &Database, job: &mut dyn Job, counters: &Counters) -> Result<bool, Failure> {
    let txn = db.begin_write().map_err(|e| match e {
        redb::TransactionError::Storage(e) => counters.failure(&e, e.to_string()),
        e => Failure::Commit(e.to_string()),
    })?;
    let failed = !job.run(&txn);
    super::take_changed();
    if let Err(e) = txn.abort() {
        tracing::warn!(error = %e, "aborting a solo write try failed");
    }
    match job.storage_failure() {
        Some(cause) => Err(counters.stop(cause, "a write met an I/O error")),
        None => Ok(failed),
    }
}

fn fail_all(batch: Vec<Box<dyn Job>>, failure: &Failure) {
    if let Failure::Commit(message) = failure {
        tracing::error!(error = %message, "cannot begin a write transaction");
    }
    batch.into_iter().for_each(|job| job.finish(Err(failure)));
}
