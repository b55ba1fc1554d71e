//! Group commit vs one commit per write: acknowledged durable writes per second.
//!
//! Every durable redb commit (the default `Durability::Immediate`) ends in an fsync, and redb
//! admits one write transaction at a time, so N clients that each commit their own write get
//! at most one write per fsync however many of them there are. The store's group-commit
//! writer (`Store::write`, src/store/writer.rs) instead runs everything queued in one
//! transaction and commits once, so concurrent writers share an fsync and throughput should
//! grow with concurrency.
//!
//! For 1, 8 and 64 concurrent writers this bench measures, in the same run:
//!
//! - **group commit**: N tokio tasks each awaiting `Store::write` in a loop, one new tenant
//!   (`store::tenants::insert`, a small record plus its name-index entry) per write;
//! - **one commit per write**: N OS threads each doing `Database::begin_write`, the same
//!   insert, `commit()` in a loop, on the raw database (`Store::database`).
//!
//! A write counts once its call has returned `Ok` (committed and fsynced). Each sample runs
//! for a fixed time on a fresh database in a fresh temp dir (on the real filesystem, so the
//! fsync is real) and checks afterwards that the table holds exactly the acknowledged writes.
//! The machine may be shared and noisy, so each cell is the median of several samples, with
//! min and max alongside; the two modes are interleaved sample by sample so drift hits both.
//! For group commit the writer's counters give the average number of jobs per commit.
//!
//! A second table has each writer submit one failing write (a taken tenant name) before every
//! write that succeeds, against writers whose writes all succeed, in the same run: failing
//! writes must not slow the writes that succeed. "fail in batch" sends them to the writer (they
//! fail inside a batch, which `commit_batch` must isolate); "fail on snapshot" checks the name
//! on a read snapshot first, as the create-tenant handler does, so they never reach it.
//!
//! `cargo bench --bench group_commit` runs the full measurement (about a minute: 5 samples of
//! 2 s per cell).
//! Without `--bench` (e.g. `cargo test --benches`) or with `--test`
//! (`cargo bench --bench group_commit -- --test`) it does a quick smoke run instead.
//! `ARES_BENCH_SAMPLES` and `ARES_BENCH_SECS` override the sample count and the seconds per
//! sample.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ares::store::tenants::{self, TenantRecord};
use ares::store::{DB_FILE, MigrationPolicy, Store, WriterStats, tables};
use redb::{ReadableDatabase as _, ReadableTableMetadata as _};

/// Concurrent writers per measurement.
const LEVELS: [usize; 3] = [1, 8, 64];

struct Settings {
    samples: usize,
    duration: Duration,
    warmup: Option<Duration>,
}

/// One timed run: acknowledged writes, wall time until the last one was acknowledged, and
/// (group commit only) the writer's counters.
struct Sample {
    writes: u64,
    elapsed: Duration,
    stats: Option<WriterStats>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let env_or =
        |key: &str, default: f64| std::env::var(key).ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(default);
    let settings = if full {
        Settings {
            samples: env_or("ARES_BENCH_SAMPLES", 5.0).max(1.0) as usize,
            duration: Duration::from_secs_f64(env_or("ARES_BENCH_SECS", 2.0).max(0.01)),
            warmup: Some(Duration::from_millis(500)),
        }
    } else {
        Settings { samples: 1, duration: Duration::from_millis(50), warmup: None }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");

    println!("group_commit: acknowledged durable writes/s (redb Durability::Immediate, fsync per commit)");
    println!(
        "  {} sample(s) of {:.2} s per cell, fresh database per sample under {}; {} cores{}",
        settings.samples,
        settings.duration.as_secs_f64(),
        std::env::temp_dir().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if full { "" } else { "  [smoke run: pass --bench without --test for the full measurement]" },
    );

    if let Some(warmup) = settings.warmup {
        group_sample(&runtime, 8, Mix::Clean, warmup);
        baseline_sample(8, warmup);
    }

    println!();
    println!(
        "writers |   group commit med [min-max] | 1 commit/write med [min-max] |  ratio | group batching: jobs/commit"
    );
    println!("{}", "-".repeat(112));
    for writers in LEVELS {
        let mut group = Vec::with_capacity(settings.samples);
        let mut baseline = Vec::with_capacity(settings.samples);
        for _ in 0..settings.samples {
            group.push(group_sample(&runtime, writers, Mix::Clean, settings.duration));
            baseline.push(baseline_sample(writers, settings.duration));
        }
        let (g_med, g_min, g_max) = summary(&group);
        let (b_med, b_min, b_max) = summary(&baseline);
        let (batches, jobs) = group
            .iter()
            .filter_map(|s| s.stats)
            .fold((0, 0), |(batches, jobs), s| (batches + s.batches, jobs + s.jobs));
        println!(
            "{:>7} | {:>28} | {:>28} | {:>5.2}x | {:.2} ({} jobs in {} commits)",
            writers,
            format!("{g_med:.0} [{g_min:.0}-{g_max:.0}]"),
            format!("{b_med:.0} [{b_min:.0}-{b_max:.0}]"),
            g_med / b_med,
            jobs as f64 / batches.max(1) as f64,
            jobs,
            batches,
        );
    }
    println!();
    println!("ratio = median group-commit writes/s / median one-commit-per-write writes/s");

    // One failing write before every succeeding one: the succeeding writes should keep their
    // rate. The three mixes are interleaved sample by sample so drift hits all of them.
    println!();
    println!("succeeding writes/s when each writer also submits one failing write (taken name) per success");
    println!(
        "writers | all succeed med [min-max] | fail in batch med [min-max] | ratio | fail on snapshot [min-max] | ratio"
    );
    println!("{}", "-".repeat(112));
    for writers in [8, 32] {
        let mut runs: [Vec<Sample>; 3] = Default::default();
        for _ in 0..settings.samples {
            for (i, mix) in [Mix::Clean, Mix::FailInBatch, Mix::FailOnSnapshot].into_iter().enumerate() {
                runs[i].push(group_sample(&runtime, writers, mix, settings.duration));
            }
        }
        let [(c, c_min, c_max), (b, b_min, b_max), (n, n_min, n_max)] = runs.each_ref().map(|r| summary(r));
        println!(
            "{:>7} | {:>25} | {:>27} | {:>4.2}x | {:>26} | {:>4.2}x",
            writers,
            format!("{c:.0} [{c_min:.0}-{c_max:.0}]"),
            format!("{b:.0} [{b_min:.0}-{b_max:.0}]"),
            b / c,
            format!("{n:.0} [{n_min:.0}-{n_max:.0}]"),
            n / c,
        );
    }
    println!();
    println!("ratio = median succeeding writes/s with the mix / all succeed");
}

/// Median, min and max writes/s of `samples`.
fn summary(samples: &[Sample]) -> (f64, f64, f64) {
    let mut rates: Vec<f64> = samples.iter().map(Sample::rate).collect();
    rates.sort_by(f64::total_cmp);
    let median = if rates.len() % 2 == 1 {
        rates[rates.len() / 2]
    } else {
        (rates[rates.len() / 2 - 1] + rates[rates.len() / 2]) / 2.0
    };
    (median, rates[0], rates[rates.len() - 1])
}

/// A fresh, migrated store in its own temp dir (dropped, and deleted, after the sample).
fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new().prefix("ares-bench-group-commit-").tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Apply).expect("open store");
    (dir, store)
}

/// A small, unique tenant for write `seq` of writer `worker`.
fn tenant(worker: usize, seq: u64) -> TenantRecord {
    TenantRecord {
        id: format!("bench-{worker:03}-{seq:08}"),
        name: format!("Bench tenant {worker}/{seq}"),
        tier: "free".to_string(),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// The table must hold exactly the acknowledged writes: nothing lost, nothing extra.
fn check_count(store: &Store, acknowledged: u64) {
    let txn = store.database().begin_read().expect("read txn");
    let stored = txn.open_table(tables::TENANTS).expect("tenants table").len().expect("len");
    assert_eq!(stored, acknowledged, "tenants stored vs writes acknowledged");
}

/// How the writers of a group-commit sample mix in writes that fail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Every write succeeds.
    Clean,
    /// Before each write that succeeds, a writer submits one that fails (a taken tenant name)
    /// straight to the writer, where it fails inside a batch.
    FailInBatch,
    /// The same mix, with every write first checking its name on a read snapshot as the
    /// create-tenant handler does, so the failing ones never reach the writer.
    FailOnSnapshot,
}

/// `writers` tokio tasks, each awaiting `Store::write` back to back until `duration` has passed;
/// only successful writes are counted.
fn group_sample(runtime: &tokio::runtime::Runtime, writers: usize, mix: Mix, duration: Duration) -> Sample {
    let (_dir, store) = fresh_store();
    let store = Arc::new(store);
    let seeded = u64::from(mix != Mix::Clean);
    if mix != Mix::Clean {
        runtime.block_on(store.write(|txn| tenants::insert(txn, &tenant(usize::MAX, 0)))).expect("seed the taken name");
    }
    let start = Instant::now();
    let deadline = start + duration;
    let writes = runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|worker| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut seq = 0;
                    while Instant::now() < deadline {
                        if mix != Mix::Clean {
                            let taken = TenantRecord { id: format!("dup-{worker}-{seq}"), ..tenant(usize::MAX, 0) };
                            let outcome = if mix == Mix::FailOnSnapshot {
                                store.read_now(|txn| tenants::check_name_free(txn, &taken.name))
                            } else {
                                store.write(move |txn| tenants::insert(txn, &taken)).await
                            };
                            assert!(outcome.is_err(), "a write with a taken name must fail");
                        }
                        let record = tenant(worker, seq);
                        if mix == Mix::FailOnSnapshot {
                            store.read_now(|txn| tenants::check_name_free(txn, &record.name)).expect("name is free");
                        }
                        store.write(move |txn| tenants::insert(txn, &record)).await.expect("group-commit write");
                        seq += 1;
                    }
                    seq
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("writer task");
        }
        total
    });
    let elapsed = start.elapsed();
    let stats = store.writer_stats();
    assert_eq!(stats.jobs, writes + seeded, "writer counted jobs vs writes acknowledged");
    check_count(&store, writes + seeded);
    store.close();
    Sample { writes, elapsed, stats: Some(stats) }
}

/// `writers` OS threads, each running its own write transaction and commit per write (queueing
/// on redb's write lock) until `duration` has passed.
fn baseline_sample(writers: usize, duration: Duration) -> Sample {
    let (_dir, store) = fresh_store();
    let db = store.database();
    let start = Instant::now();
    let deadline = start + duration;
    let writes = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..writers)
            .map(|worker| {
                scope.spawn(move || {
                    let mut seq = 0;
                    while Instant::now() < deadline {
                        let txn = db.begin_write().expect("begin write");
                        tenants::insert(&txn, &tenant(worker, seq)).expect("insert");
                        txn.commit().expect("commit");
                        seq += 1;
                    }
                    seq
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("writer thread")).sum::<u64>()
    });
    let elapsed = start.elapsed();
    check_count(&store, writes);
    store.close();
    Sample { writes, elapsed, stats: None }
}
