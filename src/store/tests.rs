//! Store behaviour: group commit, failure isolation inside a batch, durability across reopen,
//! migrations (upgrade, newer-file refusal, edited history), the single-process lock, codec.

use std::sync::Arc;
use std::sync::mpsc;

use redb::{ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition, WriteTransaction};

use super::tables::{META, TENANTS};
use super::tenants::{self, TenantRecord};
use super::testing::FillingDisk;
use super::*;

const SCRATCH: TableDefinition<&str, &[u8]> = TableDefinition::new("scratch_v2");

fn tenant(name: &str) -> TenantRecord {
    TenantRecord { id: format!("id-{name}"), name: name.into(), tier: "free".into(), created_at: 1, updated_at: 1 }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Apply).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Occupy the writer thread until the returned sender fires, so that jobs submitted meanwhile
/// queue up and form one batch deterministically.
/// Returns once the blocking job is running on the writer thread.
async fn block_writer(store: &Arc<Store>) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let store = store.clone();
    let handle = tokio::spawn(async move {
        store
            .write(move |_txn| {
                let _ = started_tx.send(());
                let _ = wait.lock().unwrap().recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    tokio::task::spawn_blocking(move || started.recv().unwrap()).await.unwrap();
    (release, handle)
}

async fn let_tasks_enqueue() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn concurrent_writes_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    runtime().block_on(async {
        let (release, blocker) = block_writer(&store).await;
        let writers: Vec<_> = (0..63)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let record = tenant(&format!("t{i}"));
                    store.write(move |txn| tenants::insert(txn, &record)).await
                })
            })
            .collect();
        let_tasks_enqueue().await;
        release.send(()).unwrap();
        blocker.await.unwrap();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
    });
    let stats = store.writer_stats();
    assert_eq!(stats.jobs, 64);
    assert_eq!(stats.batches, 2, "the blocker alone, then the 63 queued writes together: {stats:?}");
}

#[test]
fn a_failing_job_does_not_take_its_batch_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    runtime().block_on(async {
        store.write(|txn| tenants::insert(txn, &tenant("taken"))).await.unwrap();

        let (release, blocker) = block_writer(&store).await;
        let spawn_insert = |name: &'static str, id: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let record = TenantRecord { id: id.into(), ..tenant(name) };
                store.write(move |txn| tenants::insert(txn, &record)).await
            })
        };
        let first = spawn_insert("first", "id-first");
        // Writes something, then fails on a duplicate name: the earlier write must vanish.
        let partial = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|txn| {
                        txn.open_table(META)?.insert("partial", b"must not survive".as_slice())?;
                        tenants::insert(txn, &TenantRecord { id: "id-dup".into(), ..tenant("taken") })
                    })
                    .await
            })
        };
        let panicking = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|txn: &WriteTransaction| -> Result<(), Error> {
                        txn.open_table(META)?.insert("panicked", b"must not survive".as_slice())?;
                        panic!("job bug")
                    })
                    .await
            })
        };
        let last = spawn_insert("last", "id-last");
        let_tasks_enqueue().await;
        release.send(()).unwrap();
        blocker.await.unwrap();

        first.await.unwrap().unwrap();
        last.await.unwrap().unwrap();
        let conflict = partial.await.unwrap().unwrap_err();
        assert_eq!(conflict.to_string(), "Tenant with name 'taken' already exists");
        assert!(matches!(panicking.await.unwrap(), Err(Error::Internal(_))));

        let (names, meta_partial, meta_panicked) = store
            .read(|txn| {
                let names: Vec<String> = tenants::list(txn)?.into_iter().map(|s| s.tenant.name).collect();
                let meta = txn.open_table(META)?;
                Ok((names, meta.get("partial")?.is_some(), meta.get("panicked")?.is_some()))
            })
            .await
            .unwrap();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["first", "last", "taken"]);
        assert!(!meta_partial, "a failed job's earlier writes must be discarded");
        assert!(!meta_panicked, "a panicked job's writes must be discarded");
    });
}

/// Regression (hardening issue, item 9): one replay per failure made a mix of failing and
/// succeeding writes quadratic in the batch size. Every failure here is in the same batch; the
/// number of job runs must stay linear.
#[test]
fn failures_in_a_batch_cost_a_bounded_number_of_job_runs() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let runs = Arc::new(AtomicUsize::new(0));
    runtime().block_on(async {
        store.write(|txn| tenants::insert(txn, &tenant("taken"))).await.unwrap();
        let (release, blocker) = block_writer(&store).await;
        let jobs: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                let runs = runs.clone();
                // Even jobs insert a new tenant; odd ones collide with "taken".
                let record = if i % 2 == 0 {
                    tenant(&format!("t{i}"))
                } else {
                    TenantRecord { id: format!("dup-{i}"), ..tenant("taken") }
                };
                tokio::spawn(async move {
                    store
                        .write(move |txn| {
                            runs.fetch_add(1, Ordering::Relaxed);
                            tenants::insert(txn, &record)
                        })
                        .await
                })
            })
            .collect();
        let_tasks_enqueue().await;
        release.send(()).unwrap();
        blocker.await.unwrap();
        for (i, job) in jobs.into_iter().enumerate() {
            let outcome = job.await.unwrap();
            if i % 2 == 0 {
                outcome.unwrap();
            } else {
                assert!(matches!(outcome, Err(Error::Conflict(_))), "job {i}: {outcome:?}");
            }
        }
    });
    let count = runtime().block_on(store.read(|txn| Ok(tenants::list(txn)?.len()))).unwrap();
    assert_eq!(count, 33, "32 new tenants plus the one that was there");
    let runs = runs.load(Ordering::Relaxed);
    // One pass over 64, a solo try for 31 of the 32 failures, a replay of the 32 survivors.
    assert!(runs <= 64 + 32 + 32, "{runs} job runs for a batch of 64 with 32 failures");
    assert_eq!(store.writer_stats().batches, 3, "seed, blocker, then the whole mix in one commit");
}

/// A job that fails only because an earlier job of its batch wrote something and then failed
/// must not be rejected: that earlier write is never committed.
#[test]
fn a_failure_caused_by_a_dropped_jobs_partial_write_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    runtime().block_on(async {
        let (release, blocker) = block_writer(&store).await;
        let phantom = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|txn| {
                        tenants::insert(txn, &TenantRecord { id: "id-phantom".into(), ..tenant("ghost") })?;
                        Err::<(), _>(Error::Conflict("changed its mind".into()))
                    })
                    .await
            })
        };
        let real = {
            let store = store.clone();
            tokio::spawn(async move { store.write(|txn| tenants::insert(txn, &tenant("ghost"))).await })
        };
        let_tasks_enqueue().await;
        release.send(()).unwrap();
        blocker.await.unwrap();
        assert!(matches!(phantom.await.unwrap(), Err(Error::Conflict(_))));
        real.await.unwrap().unwrap();
        let ids: Vec<String> =
            store.read(|txn| Ok(tenants::list(txn)?.into_iter().map(|s| s.tenant.id).collect())).await.unwrap();
        assert_eq!(ids, ["id-ghost"]);
    });
}

#[test]
fn acknowledged_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        runtime().block_on(async {
            for i in 0..20 {
                let record = tenant(&format!("t{i}"));
                store.write(move |txn| tenants::insert(txn, &record)).await.unwrap();
            }
        });
        store.close();
    }
    let store = open(&dir);
    let count = store.database().begin_read().unwrap().open_table(TENANTS).unwrap().len().unwrap();
    assert_eq!(count, 20);
}

#[test]
fn relaxed_writes_are_read_at_once_and_synced_by_the_next_durable_commit_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // An interval no test run reaches, so no timer sync can race the counts below.
    store.set_sync_interval(std::time::Duration::from_secs(3600));
    let count = |store: &Store| store.database().begin_read().unwrap().open_table(TENANTS).unwrap().len().unwrap();
    runtime().block_on(async {
        let before = store.writer_stats().syncs;
        let record = tenant("relaxed");
        store.write_relaxed(move |txn| tenants::insert(txn, &record)).await.unwrap();
        // Visible to the next read before any fsync.
        assert_eq!(count(&store), 1);
        assert_eq!(store.writer_stats().syncs, before, "a relaxed commit does not wait for a sync");
        // A durable write is synced by its own commit, whatever relaxed writes came before.
        let record = tenant("strict");
        store.write(move |txn| tenants::insert(txn, &record)).await.unwrap();
        assert_eq!(store.writer_stats().syncs, before + 1);
        let record = tenant("last");
        store.write_relaxed(move |txn| tenants::insert(txn, &record)).await.unwrap();
        assert_eq!(store.writer_stats().syncs, before + 1);
    });
    // Closing syncs what is left.
    let syncs = store.writer_stats().syncs;
    store.close();
    assert_eq!(store.writer_stats().syncs, syncs + 1);
    drop(store);
    assert_eq!(count(&open(&dir)), 3);
}

#[test]
fn relaxed_writes_are_synced_by_the_writer_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.set_sync_interval(std::time::Duration::from_millis(100));
    runtime().block_on(async {
        let before = store.writer_stats().syncs;
        let record = tenant("relaxed");
        store.write_relaxed(move |txn| tenants::insert(txn, &record)).await.unwrap();
        // Nothing else writes: the writer syncs on its own once the interval has passed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.writer_stats().syncs == before {
            assert!(std::time::Instant::now() < deadline, "no sync within 5 s");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(store.writer_stats().syncs, before + 1, "one sync covers the relaxed commit");
    });
}

#[test]
fn settle_waits_for_every_queued_write_and_reads_settle_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.set_sync_interval(std::time::Duration::from_millis(100));
    let count = |store: &Store| store.database().begin_read().unwrap().open_table(TENANTS).unwrap().len().unwrap();
    runtime().block_on(async {
        let jobs = store.writer_stats().jobs;
        for i in 0..50 {
            let record = tenant(&format!("queued-{i}"));
            store.write_detached(move |txn| tenants::insert(txn, &record));
        }
        store.settle().await;
        assert_eq!(count(&store), 50, "settle returned before every queued write was committed");
        assert_eq!(store.writer_stats().jobs, jobs + 50);
        let record = tenant("read-after");
        store.write_detached(move |txn| tenants::insert(txn, &record));
        let seen = store.read(|txn| Ok(txn.open_table(TENANTS)?.len()?)).await.unwrap();
        assert_eq!(seen, 51);
    });
    // Closing commits what is still queued, and settling a closed store returns at once.
    store.close();
    runtime().block_on(store.settle());
}

#[test]
fn writes_after_close_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.close();
    let result = runtime().block_on(store.write(|_txn| Ok(())));
    assert!(matches!(result, Err(Error::Closed)));
}

#[test]
fn a_second_open_of_the_same_file_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open(&dir);
    let second = Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Inspect);
    assert!(matches!(second, Err(Error::Locked { .. })), "{:?}", second.err());
}

fn scratch_v2(txn: &WriteTransaction) -> Result<(), Error> {
    // Backfill: one scratch row per tenant, as a migration that rewrites data would.
    let ids: Vec<String> = {
        let tenants = txn.open_table(TENANTS)?;
        tenants.iter()?.map(|e| e.map(|(k, _)| k.value().to_string())).collect::<Result<_, _>>()?
    };
    let mut scratch = txn.open_table(SCRATCH)?;
    for id in ids {
        scratch.insert(id.as_str(), b"backfilled".as_slice())?;
    }
    Ok(())
}

fn with_v2() -> Vec<Migration> {
    let mut list = migrations::MIGRATIONS.to_vec();
    list.push(Migration {
        version: migrations::latest(migrations::MIGRATIONS) + 1,
        description: "test: scratch table backfilled from tenants",
        definition: "create scratch_v2(&str->bytes) from tenants",
        apply: scratch_v2,
    });
    list
}

#[test]
fn pending_migrations_are_applied_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let store = Store::open(&path, MigrationPolicy::Apply).unwrap();
        runtime().block_on(store.write(|txn| tenants::insert(txn, &tenant("old")))).unwrap();
        store.close();
    }
    let v2 = with_v2();
    let newest = v2.last().unwrap().version;
    {
        let store = Store::open_with(&path, &v2, MigrationPolicy::Inspect).unwrap();
        let status = migrations::status(store.database(), &v2).unwrap();
        assert!(status.iter().find(|s| s.version == newest).unwrap().applied_at.is_none());
        assert!(status.iter().filter(|s| s.version < newest).all(|s| s.applied_at.is_some()));
    }
    let store = Store::open_with(&path, &v2, MigrationPolicy::Apply).unwrap();
    let status = migrations::status(store.database(), &v2).unwrap();
    assert!(status.iter().all(|s| s.applied_at.is_some()), "{status:?}");
    let txn = store.database().begin_read().unwrap();
    assert_eq!(txn.open_table(SCRATCH).unwrap().get("id-old").unwrap().unwrap().value(), b"backfilled");
}

#[test]
fn a_file_from_a_newer_binary_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    drop(Store::open_with(&path, &with_v2(), MigrationPolicy::Apply).unwrap());
    let before = std::fs::read(&path).unwrap();
    let refused = Store::open(&path, MigrationPolicy::Apply);
    match refused {
        Err(Error::NewerSchema { found, supported }) => assert!(found > supported),
        other => panic!("expected NewerSchema, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the refused file must not be modified");
}

#[test]
fn an_edited_released_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    drop(Store::open(&path, MigrationPolicy::Apply).unwrap());
    let mut edited = migrations::MIGRATIONS.to_vec();
    edited[0].definition = "something else";
    assert!(matches!(
        Store::open_with(&path, &edited, MigrationPolicy::Apply),
        Err(Error::ChecksumMismatch { version: 1, .. })
    ));
}

#[test]
fn codec_refuses_unknown_versions_and_empty_values() {
    let bytes = encode(&tenant("x")).unwrap();
    assert_eq!(bytes[0], TenantRecord::VERSION);
    assert_eq!(decode::<TenantRecord>(&bytes).unwrap(), tenant("x"));
    let mut future = bytes.clone();
    future[0] = 99;
    assert!(matches!(decode::<TenantRecord>(&future), Err(Error::UnknownRecordVersion { version: 99, .. })));
    assert!(matches!(decode::<TenantRecord>(&[]), Err(Error::Codec { .. })));
    assert!(matches!(decode::<TenantRecord>(&bytes[..3]), Err(Error::Codec { .. })));
}

#[test]
fn a_usage_batch_sums_into_each_tenant_month_day_and_the_platform_day() {
    use super::usage::{self, UsageEventRecord};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    const DAY: i64 = 86_400;
    // 2026-01-31 and 2026-02-01 (UTC): two days in two months, two tenants, one batch.
    let (jan_31, feb_1) = (1_769_817_600, 1_769_817_600 + DAY);
    let event = |i: usize, tenant: &str, at: i64, tokens: u64| UsageEventRecord {
        id: format!("e{i}"),
        tenant_id: tenant.into(),
        source: "http".into(),
        request_count: 1,
        token_count: tokens,
        created_at: at,
    };
    let events = vec![
        event(1, "a", jan_31, 10),
        event(2, "a", jan_31 + 60, 5),
        event(3, "a", feb_1, 7),
        event(4, "b", jan_31 + 120, 1),
    ];
    // Counters that already exist are added to, not replaced.
    store.write_blocking(|txn| usage::record_all(txn, &[event(0, "a", jan_31, 100)])).unwrap();
    store.write_blocking(|txn| usage::record_all(txn, &events)).unwrap();
    let txn = store.database().begin_read().unwrap();
    let month = |tenant, at| usage::monthly(&txn, tenant, crate::metering::periods::month_start(at)).unwrap();
    let day = |tenant, at| usage::daily(&txn, tenant, crate::metering::periods::day_start(at)).unwrap();
    assert_eq!((month("a", jan_31).requests, month("a", jan_31).tokens), (3, 115));
    assert_eq!((month("a", feb_1).requests, month("a", feb_1).tokens), (1, 7));
    assert_eq!((month("b", jan_31).requests, month("b", jan_31).tokens), (1, 1));
    assert_eq!((day("a", jan_31).requests, day("a", jan_31).tokens), (3, 115));
    assert_eq!((day("a", feb_1).requests, day("a", feb_1).tokens), (1, 7));
    let platform = usage::platform_day(&txn, crate::metering::periods::day_start(jan_31)).unwrap();
    assert_eq!((platform.requests, platform.tokens), (4, 116));
}

#[test]
fn a_full_disk_stops_writes_with_its_cause_until_a_restart_which_finds_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let (disk, full) = FillingDisk::open(&path);
    let store = Store::on_backend(disk, &path).unwrap();
    let rt = runtime();
    let insert = |name: &'static str| {
        let record = tenant(name);
        rt.block_on(store.write(move |txn| tenants::insert(txn, &record)))
    };
    insert("before").unwrap();

    full.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = insert("during").unwrap_err();
    assert!(matches!(&refused, Error::WritesStopped(cause) if cause.contains("No space left")), "{refused}");
    // Freeing the space is not enough: redb refuses every write until the file is reopened,
    // and says so with the first cause rather than its own "previous I/O error".
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    let refused = insert("after").unwrap_err();
    assert!(matches!(&refused, Error::WritesStopped(cause) if cause.contains("No space left")), "{refused}");
    let ping = rt.block_on(store.ping()).unwrap_err().to_string();
    assert!(ping.contains("No space left") && ping.contains("restart ares"), "{ping}");
    assert!(matches!(store.check_writable(), Err(Error::WritesStopped(_))));
    drop(store);

    // The restart: the acknowledged write is there, the refused ones are not, writes work.
    let store = open(&dir);
    let stored = |id: &str| store.read_now(|txn| tenants::get(txn, id)).unwrap().map(|t| t.name);
    assert_eq!(stored("id-before").as_deref(), Some("before"));
    assert_eq!((stored("id-during"), stored("id-after")), (None, None));
    let record = tenant("again");
    rt.block_on(store.write(move |txn| tenants::insert(txn, &record))).unwrap();
    rt.block_on(store.ping()).unwrap();
    store.check_writable().unwrap();
}
