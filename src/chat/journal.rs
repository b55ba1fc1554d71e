//! Chat records on their way to the store: every finished chat's exchange, run and lessons,
//! written by one writer job per batch instead of one job per chat.
//!
//! A job per chat opened nine tables and read-modified-wrote four rollups for each chat: at 32
//! concurrent clients the writer thread was 30 % of the server's CPU. Records pushed while a
//! drain job is already queued ride along with it, so a batch's tables are opened once and each
//! rollup row (an agent's stats, a tenant's totals, a day) is updated once.
//!
//! Read-your-writes holds as with any queued write: a record is in the buffer before its chat is
//! answered, and the drain job that will write it is queued by then (under the same lock), so
//! `Store::settle` after the answer waits for it.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::memory::{self, Lesson};
use crate::store::conversations::{self, Exchange, MessageRecord};
use crate::store::runs::{self, AgentRunRecord};
use crate::store::{Error, Store, Ticket};

/// What one finished chat writes.
pub struct ChatRecord {
    /// The conversation's owner key and id, and the turns to append (none for stateless
    /// requests and failed turns).
    pub owner: String,
    pub context_id: String,
    pub messages: Vec<MessageRecord>,
    /// What the user's message taught about them.
    pub lessons: Option<(String, Vec<Lesson>)>,
    /// The run, for tenant calls.
    pub run: Option<AgentRunRecord>,
    pub now: i64,
}

/// Most chat records that may wait for the writer while their chats are already answered.
pub const MAX_BUFFERED: usize = 256;

#[derive(Default)]
pub struct Journal {
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    records: Vec<ChatRecord>,
    /// A drain job is queued and has not taken the records yet.
    draining: bool,
    /// The last drain job queued: once it is committed, so is every record pushed so far.
    last_drain: Ticket,
}

impl Journal {
    /// Queue `record` for the writer, then wait for what the durability settings promise before
    /// its chat is answered: nothing more, normally (the records become visible to every later
    /// read and durable within `[storage].sync_interval_ms`); the fsync with an interval of zero;
    /// the commit while more than [`MAX_BUFFERED`] records wait, so chats go at the writer's pace
    /// when clients outrun the disk and the buffer (memory, and what a crash could lose) stays
    /// bounded.
    pub async fn record(self: &Arc<Self>, store: &Store, record: ChatRecord) -> Result<(), Error> {
        let buffered = self.push(store, record);
        if store.sync_interval().is_zero() {
            store.flush().await
        } else {
            if buffered > MAX_BUFFERED {
                store.settle().await;
            }
            Ok(())
        }
    }

    /// Queue `record` for the writer without waiting for anything: for a chat nobody is
    /// answered for (its client left), which may not wait in a destructor.
    pub fn record_detached(self: &Arc<Self>, store: &Store, record: ChatRecord) {
        self.push(store, record);
    }

    /// Buffer `record` and make sure a queued writer job will write it; returns how many records
    /// are buffered.
    fn push(self: &Arc<Self>, store: &Store, record: ChatRecord) -> usize {
        let mut pending = self.lock();
        pending.records.push(record);
        let buffered = pending.records.len();
        if pending.draining {
            return buffered;
        }
        pending.draining = true;
        // Queued while the lock is held: a chat answered after this push can only settle on a
        // queue that already holds the job.
        let journal = self.clone();
        let mut taken: Option<Vec<ChatRecord>> = None;
        pending.last_drain = store.write_detached(move |txn| {
            // The writer may run a job twice (a batch is replayed when another job fails), so the
            // records are taken once and kept for the replay.
            let records = taken.get_or_insert_with(|| journal.take());
            write_all(txn, records)
        });
        buffered
    }

    /// Wait until every chat record pushed so far is committed (read-your-writes for readers
    /// of conversations, runs and memory), but not for writes queued after it: under load the
    /// writer always has request-log and usage batches queued, and waiting for those made every
    /// `GET /v1/agents` wait out whole commits.
    pub async fn settle(&self, store: &Store) {
        let last_drain = self.lock().last_drain;
        store.settle_until(last_drain).await;
    }

    fn take(&self) -> Vec<ChatRecord> {
        let mut pending = self.lock();
        pending.draining = false;
        std::mem::take(&mut pending.records)
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Write a batch of chat records in the writer's transaction.
fn write_all(txn: &redb::WriteTransaction, records: &[ChatRecord]) -> Result<(), Error> {
    let exchanges: Vec<Exchange<'_>> = records
        .iter()
        .filter(|r| !r.messages.is_empty())
        .map(|r| Exchange { owner: &r.owner, id: &r.context_id, messages: &r.messages, now: r.now })
        .collect();
    // Checked before the chat ran (`conversations::usable_by`); only a race with another owner
    // taking the same new id lands here, and only that exchange is dropped.
    for refused in conversations::append_all(txn, &exchanges)? {
        tracing::warn!(conversation = %refused, "a chat exchange was not stored: the conversation belongs to another owner");
    }
    for record in records {
        if let Some((user_id, lessons)) = &record.lessons {
            memory::apply(txn, user_id, lessons, record.now)?;
        }
    }
    runs::record_all(txn, records.iter().filter_map(|r| r.run.as_ref()))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::store::MigrationPolicy;

    fn store(dir: &tempfile::TempDir, sync_interval: Duration) -> Arc<Store> {
        let store = Store::open(&dir.path().join(crate::store::DB_FILE), MigrationPolicy::Apply).unwrap();
        store.set_sync_interval(sync_interval);
        Arc::new(store)
    }

    fn chat(i: usize, tokens: u64) -> ChatRecord {
        let message = |role: &str| MessageRecord {
            id: format!("{role}-{i}"),
            role: role.into(),
            content: format!("{role} {i}"),
            created_at: 1_000,
        };
        ChatRecord {
            owner: "tenant:t".into(),
            context_id: format!("c-{i}"),
            messages: vec![message("user"), message("assistant")],
            lessons: None,
            run: Some(AgentRunRecord {
                id: format!("run-{i}"),
                tenant_id: "t".into(),
                agent_name: "assistant".into(),
                user_id: None,
                status: if i.is_multiple_of(4) { "failed".into() } else { "completed".into() },
                input_tokens: tokens,
                output_tokens: 1,
                duration_ms: 10,
                error: None,
                created_at: 1_000 + i as i64,
                served_by: Some("mock/m".into()),
                attempts: 1,
                cost_micros: 0,
            }),
            now: 1_000,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_chats_is_written_in_few_jobs_with_every_record_and_exact_rollups() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, Duration::from_millis(50));
        let journal = Arc::new(Journal::default());
        let jobs = store.writer_stats().jobs;
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (store, journal) = (store.clone(), journal.clone());
                tokio::spawn(async move { journal.record(&store, chat(i, i as u64)).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        store.settle().await;
        let (stats, totals, second) = store
            .read(|txn| {
                Ok((runs::stats(txn, "t", "assistant")?, runs::totals(txn, "t")?, conversations::messages(txn, "c-2")?))
            })
            .await
            .unwrap();
        assert_eq!((stats.total, stats.failed, stats.completed), (200, 50, 150));
        assert_eq!(stats.input_tokens, (0..200).sum::<u64>());
        assert_eq!(stats.last_run, Some(1_199));
        assert_eq!((totals.runs, totals.tokens), (200, (0..200).sum::<u64>() + 200));
        assert_eq!(second.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["user 2", "assistant 2"]);
        let used = store.writer_stats().jobs - jobs;
        assert!(used < 200, "{used} writer jobs for 200 chats: records are not batched");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_a_sync_interval_of_zero_a_chat_waits_for_its_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, Duration::ZERO);
        let journal = Arc::new(Journal::default());
        let syncs = store.writer_stats().syncs;
        journal.record(&store, chat(1, 1)).await.unwrap();
        assert!(store.writer_stats().syncs > syncs);
        let stored = store.read_now(|txn| conversations::messages(txn, "c-1")).unwrap();
        assert_eq!(stored.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settling_waits_for_the_chat_records_pushed_so_far_and_for_nothing_queued_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, Duration::from_millis(50));
        let journal = Arc::new(Journal::default());
        journal.record(&store, chat(1, 1)).await.unwrap();
        journal.settle(&store).await;
        assert_eq!(store.read_now(|txn| runs::stats(txn, "t", "assistant")).unwrap().total, 1);
        // The writer is stuck on a later, unrelated job: chat readers need not wait for it.
        let (release, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        store.write_detached(move |_txn| {
            let _ = wait.lock().map(|w| w.recv());
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(5), journal.settle(&store))
            .await
            .expect("settling waited for a job queued after every chat record");
        // A record pushed now is behind the stuck job: settling waits for it.
        journal.record(&store, chat(2, 1)).await.unwrap();
        let settled = {
            let (store, journal) = (store.clone(), journal.clone());
            tokio::spawn(async move { journal.settle(&store).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!settled.is_finished(), "settled before the record's commit");
        release.send(()).unwrap();
        settled.await.unwrap();
        assert_eq!(store.read_now(|txn| runs::stats(txn, "t", "assistant")).unwrap().total, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_buffer_bound_a_chat_waits_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, Duration::from_millis(50));
        let journal = Arc::new(Journal::default());
        // Hold the writer thread so that nothing drains.
        let (release, wait) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        store.write_detached(move |_txn| {
            let _ = started.send(());
            let _ = wait.lock().map(|w| w.recv());
            Ok(())
        });
        tokio::task::spawn_blocking(move || running.recv().unwrap()).await.unwrap();
        for i in 0..MAX_BUFFERED {
            journal.record(&store, chat(i, 1)).await.unwrap();
        }
        let over = {
            let (store, journal) = (store.clone(), journal.clone());
            tokio::spawn(async move { journal.record(&store, chat(MAX_BUFFERED, 1)).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!over.is_finished(), "a chat past the bound was answered while the writer was stuck");
        release.send(()).unwrap();
        over.await.unwrap();
        let stats = store.read(|txn| runs::stats(txn, "t", "assistant")).await.unwrap();
        assert_eq!(stats.total, MAX_BUFFERED as u64 + 1);
    }
}
