//! RAG: ingest throughput, search latency per strategy, HNSW recall and start-up time.
//!
//! Uses the library directly (`ares::rag::Rag` over a real redb file in a temp dir) with the
//! built-in `hash` embedder, so it needs no model. The corpus is synthetic but shaped like
//! prose: 200-word documents drawn from a Zipf-like vocabulary of 20,000 words, so BM25, fuzzy
//! and the hash embedder see realistic term statistics. For each corpus size it reports:
//!
//! - **ingest**: chunks/s through `Rag::ingest`, documents of 50 chunks sent by 4 concurrent
//!   clients into one collection: until the last ingest returned and the indexes caught up as
//!   a search would (every chunk searchable by every strategy, vectors not yet in the graph
//!   scanned exactly), and until the builder thread
//!   had every vector in the graph;
//! - **search**: p50/p95 latency of `bm25`, `fuzzy`, `semantic` and `hybrid` over 200 queries
//!   (3-word queries sampled from the corpus vocabulary, one with a typo for fuzzy), top_k 10;
//!   and, as the baseline measured in the same run, an exact brute-force cosine scan over the
//!   same vectors;
//! - **recall@10**: of the HNSW search against that brute-force scan, over the same queries;
//! - **start-up**: `Rag::open` on the populated data dir after a clean shutdown (dumps
//!   reloaded, nothing replayed), and after deleting `data/search` and `data/vectors` (full
//!   rebuild from redb): until it serves (lexical index rebuilt, vectors queued and scanned
//!   exactly) and until every vector is in the graph.
//!
//! `cargo bench --bench rag` runs 10k and 100k chunks (several minutes on 2 cores, most of it
//! building the 100k HNSW graph). Without `--bench` it is a quick smoke run at 2k chunks.
//! `ARES_BENCH_CHUNKS=10000,50000` overrides the sizes; `ARES_BENCH_ONLY=ingest` (or
//! `clusters`, `docs`) runs one section; `ARES_BENCH_PRECISION=f32` stores full-precision
//! coordinates in the graphs instead of `int8`. `ARES_BENCH_DATA=dir` keeps an ingest run's
//! data in `dir` (which must not exist yet, so one size per run), and `ARES_BENCH_ONLY=rebuild
//! ARES_BENCH_DATA=dir` then times only the rebuild from that redb file, as often as wanted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

#[path = "support/rust_docs.rs"]
mod rust_docs;

use ares::config::{RagConfig, VectorPrecision};
use ares::rag::chunking::Strategy;
use ares::rag::vectors::VectorIndexes;
use ares::rag::{IngestRequest, Rag, SearchRequest, SearchStrategy};
use ares::store::{DB_FILE, MigrationPolicy, Store};

const WORDS_PER_CHUNK: usize = 200;
const CHUNKS_PER_DOCUMENT: usize = 50;
const VOCABULARY: usize = 20_000;
const QUERIES: usize = 200;
/// Semantic searches timed right after the ingest, while the builder is still behind it.
const QUERIES_BEHIND: usize = 20;
const TOP_K: usize = 10;
/// Concurrent ingest clients.
const CLIENTS: usize = 4;

/// Deterministic xorshift, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Zipf-like: small ranks far more often.
    fn word<'a>(&mut self, vocabulary: &'a [String]) -> &'a str {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        let rank = ((vocabulary.len() as f64).powf(u) - 1.0) as usize;
        &vocabulary[rank.min(vocabulary.len() - 1)]
    }
}

fn vocabulary() -> Vec<String> {
    let syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "qui", "dor", "fen", "gal", "hur"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..VOCABULARY)
        .map(|_| {
            let n = 2 + (rng.next() % 3) as usize;
            (0..n).map(|_| syllables[(rng.next() % syllables.len() as u64) as usize]).collect()
        })
        .collect()
}

fn document(rng: &mut Rng, vocabulary: &[String]) -> String {
    let mut text = String::new();
    for c in 0..CHUNKS_PER_DOCUMENT {
        for w in 0..WORDS_PER_CHUNK {
            if w > 0 {
                text.push(' ');
            }
            text.push_str(rng.word(vocabulary));
        }
        text.push_str(if c + 1 < CHUNKS_PER_DOCUMENT { " " } else { "" });
    }
    text
}

/// `ARES_BENCH_PRECISION=f32` measures the graphs with full-precision coordinates (default: the
/// server's default, `int8`).
fn precision() -> VectorPrecision {
    match std::env::var("ARES_BENCH_PRECISION").as_deref() {
        Ok("f32") => VectorPrecision::F32,
        _ => VectorPrecision::Int8,
    }
}

fn config() -> RagConfig {
    // One user holds the whole corpus: the per-user cap (250,000 by default) is lifted to the
    // largest size a run may ask for.
    RagConfig {
        chunk_size: WORDS_PER_CHUNK,
        chunk_overlap: 0,
        max_chunks_per_user: 10_000_000,
        vector_precision: precision(),
        ..RagConfig::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This process's resident set (Linux `VmRSS`), in bytes.
fn resident_bytes() -> usize {
    status_bytes("VmRSS:")
}

/// A size line of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok());
    kib.unwrap_or(0) * 1024
}

/// The bench user's search of its corpus, top 10, no threshold or rerank.
fn search_request(query: String, strategy: SearchStrategy) -> SearchRequest {
    SearchRequest {
        user_id: "bench".into(),
        collection: "corpus".into(),
        query,
        strategy,
        top_k: TOP_K,
        threshold: None,
        rerank: false,
    }
}

/// Where a run keeps its data: `ARES_BENCH_DATA` (a new directory, kept afterwards for
/// `ARES_BENCH_ONLY=rebuild`), else a temp dir removed at the end.
enum DataDir {
    Kept(std::path::PathBuf),
    Temporary(tempfile::TempDir),
}

impl DataDir {
    fn new() -> DataDir {
        match std::env::var_os("ARES_BENCH_DATA") {
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                std::fs::create_dir(&path).expect("ARES_BENCH_DATA must name a directory that does not exist yet");
                DataDir::Kept(path)
            }
            None => DataDir::Temporary(tempfile::tempdir().unwrap()),
        }
    }

    fn path(&self) -> &std::path::Path {
        match self {
            DataDir::Kept(path) => path,
            DataDir::Temporary(dir) => dir.path(),
        }
    }
}

fn run(chunks: usize) {
    let dir = DataDir::new();
    let store = Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Apply).unwrap();
    let env = |_: &str| None;
    let rag = Rag::open(&config(), dir.path(), &store, &env).unwrap();
    let vocabulary = vocabulary();
    let mut rng = Rng(42);

    // Ingest: four clients, each writing its share of the documents as it sends them (so the
    // corpus is never all in memory and the resident size below is the index's).
    let documents = chunks.div_ceil(CHUNKS_PER_DOCUMENT);
    let started = Instant::now();
    let ingested: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (rag, store, vocabulary) = (&rag, &store, &vocabulary);
                scope.spawn(move || {
                    let mut rng = Rng(1_000 + client as u64);
                    let mut ingested = 0;
                    for _ in (client..documents).step_by(CLIENTS) {
                        let request = IngestRequest {
                            user_id: "bench".into(),
                            collection: "corpus".into(),
                            content: document(&mut rng, vocabulary),
                            strategy: Strategy::Word,
                            metadata: serde_json::Map::new(),
                        };
                        ingested += rag.ingest(store, request).unwrap().chunk_ids.len();
                    }
                    ingested
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    // Searchable: what a search does first (ingests do not wait for their indexing round).
    rag.index_pending(&store).unwrap();
    let ingest_time = started.elapsed();
    let queued = rag.vectors_backlog();
    // Queries: three corpus words; the fuzzy ones get a typo (a swapped pair of letters).
    let queries: Vec<String> = (0..QUERIES)
        .map(|_| format!("{} {} {}", rng.word(&vocabulary), rng.word(&vocabulary), rng.word(&vocabulary)))
        .collect();
    // What a search costs while the builder is still behind the ingest: the graph walk plus an
    // exact scan of everything queued (the builder keeps working meanwhile).
    let mut behind = Vec::with_capacity(QUERIES_BEHIND);
    for query in queries.iter().take(QUERIES_BEHIND) {
        let request = search_request(query.clone(), SearchStrategy::Semantic);
        let t = Instant::now();
        rag.search(&store, &request).unwrap();
        behind.push(t.elapsed());
    }
    behind.sort();
    rag.wait_for_vectors();
    let built_time = started.elapsed();
    println!(
        "\n== {ingested} chunks ==\ningest: {:.0} chunks/s acknowledged and searchable ({:.1} s; {queued} vectors \
         then still queued for the graph, searched exactly); {:.0} chunks/s until every vector was in the graph ({:.1} s)",
        ingested as f64 / ingest_time.as_secs_f64(),
        ingest_time.as_secs_f64(),
        ingested as f64 / built_time.as_secs_f64(),
        built_time.as_secs_f64()
    );
    println!(
        "search semantic right after the ingest, {queued} vectors queued: p50 {:>7.2} ms  p95 {:>7.2} ms",
        ms(percentile(&behind, 0.5)),
        ms(percentile(&behind, 0.95))
    );
    let dimensions = rag.embedder().embed_blocking(&["width"]).unwrap()[0].len();
    let raw = ingested * dimensions * 4;
    let resident = resident_bytes();
    let peak = status_bytes("VmHWM:");
    println!(
        "memory: {:.0} MiB resident after the ingest; raw vectors {:.0} MiB ({:.2}x); peak {:.0} MiB ({:.2}x)",
        resident as f64 / 1048576.0,
        raw as f64 / 1048576.0,
        resident as f64 / raw as f64,
        peak as f64 / 1048576.0,
        peak as f64 / raw as f64
    );

    let typo = |q: &str| -> String {
        let mut chars: Vec<char> = q.chars().collect();
        if chars.len() > 3 {
            chars.swap(1, 2);
        }
        chars.into_iter().collect()
    };
    for strategy in [SearchStrategy::Bm25, SearchStrategy::Fuzzy, SearchStrategy::Semantic, SearchStrategy::Hybrid] {
        let mut times = Vec::with_capacity(QUERIES);
        for query in &queries {
            let query = if strategy == SearchStrategy::Fuzzy { typo(query) } else { query.clone() };
            let request = search_request(query, strategy);
            let t = Instant::now();
            let outcome = rag.search(&store, &request).unwrap();
            times.push(t.elapsed());
            assert!(outcome.hits.len() <= TOP_K);
        }
        times.sort();
        println!(
            "search {:<9} p50 {:>7.2} ms  p95 {:>7.2} ms",
            strategy.as_str(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95))
        );
    }

    // Recall@10 of HNSW against brute force over the stored vectors, and brute force latency.
    let vectors: Vec<(u64, Vec<f32>)> = store
        .read_now(|txn| {
            let chunks = ares::store::rag::chunks_after(txn, 0, usize::MAX)?;
            Ok(chunks.into_iter().map(|c| (c.seq, c.embedding)).collect())
        })
        .unwrap();
    let mut recall_sum = 0.0;
    let mut brute_times = Vec::with_capacity(QUERIES);
    for query in &queries {
        let q = rag.embedder().embed_blocking(&[query.as_str()]).unwrap().remove(0);
        let t = Instant::now();
        let mut exact: Vec<(u64, f32)> =
            vectors.iter().map(|(seq, v)| (*seq, v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())).collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        brute_times.push(t.elapsed());
        let truth: Vec<u64> = exact.iter().take(TOP_K).map(|(s, _)| *s).collect();
        let request = search_request(query.clone(), SearchStrategy::Semantic);
        let found = rag.search(&store, &request).unwrap();
        let hits = found.hits.iter().filter(|h| truth.contains(&h.chunk.seq)).count();
        recall_sum += hits as f64 / truth.len().max(1) as f64;
    }
    brute_times.sort();
    println!(
        "baseline brute-force cosine p50 {:>7.2} ms  p95 {:>7.2} ms\nHNSW recall@{TOP_K}: {:.3}",
        ms(percentile(&brute_times, 0.5)),
        ms(percentile(&brute_times, 0.95)),
        recall_sum / QUERIES as f64
    );

    // Start-up: clean (dumps present) and after losing both indexes.
    rag.persist().unwrap();
    drop(rag);
    let t = Instant::now();
    let reopened = Rag::open(&config(), dir.path(), &store, &env).unwrap();
    let clean = t.elapsed();
    let report = reopened.open_report();
    drop(reopened);
    println!(
        "start-up: clean {:.2} s (replayed {} + {})",
        clean.as_secs_f64(),
        report.replayed_lexical,
        report.replayed_vectors
    );
    rebuild_indexes(dir.path(), &store);
    store.close();
}

/// Delete both indexes under `dir` and time their rebuild from redb: until every strategy
/// answers (queued vectors by exact scan), and until every vector is in the graph.
fn rebuild_indexes(dir: &std::path::Path, store: &Store) {
    let env = |_: &str| None;
    for index in [ares::rag::SEARCH_DIR, ares::rag::VECTORS_DIR] {
        let path = dir.join(index);
        if path.exists() {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let t = Instant::now();
    let rebuilt = Rag::open(&config(), dir, store, &env).unwrap();
    let serving = t.elapsed();
    rebuilt.wait_for_vectors();
    let rebuild = t.elapsed();
    println!(
        "start-up after deleting the indexes: {:.2} s to serve (replayed {} chunks; vectors scanned exactly \
         meanwhile) and {:.2} s until every vector was in the graph",
        serving.as_secs_f64(),
        rebuilt.open_report().replayed_lexical,
        rebuild.as_secs_f64(),
    );
}

/// `ARES_BENCH_ONLY=rebuild`: the rebuild alone, from the redb file a run left in
/// `ARES_BENCH_DATA`, so builds can be compared on the same data without ingesting it again.
fn rebuild_kept() {
    let dir = std::path::PathBuf::from(std::env::var_os("ARES_BENCH_DATA").expect("ARES_BENCH_DATA names a kept run"));
    let store = Store::open(&dir.join(DB_FILE), MigrationPolicy::Apply).unwrap();
    rebuild_indexes(&dir, &store);
    store.close();
}

/// Recall and latency of the vector index alone on 384-dimension vectors drawn from 1,000
/// Gaussian clusters (centres and spread both N(0, 1) per coordinate), against an exact scan
/// measured in the same run, for several search beams.
fn clusters(points: usize) {
    const DIMENSIONS: usize = 384;
    const CLUSTERS: usize = 1000;
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut gaussian = move || {
        // Box-Muller over two uniforms in (0, 1].
        let u = ((rng.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let v = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let centres: Vec<Vec<f32>> = (0..CLUSTERS).map(|_| (0..DIMENSIONS).map(|_| gaussian()).collect()).collect();
    let mut pick = Rng(77);
    let mut sample = || -> Vec<f32> {
        let centre = &centres[(pick.next() % CLUSTERS as u64) as usize];
        let mut v: Vec<f32> = centre.iter().map(|c| c + gaussian()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    let data: Vec<Vec<f32>> = (0..points).map(|_| sample()).collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| sample()).collect();

    measure_vectors(&format!("{points} vectors, 1,000 Gaussian clusters, 384 dimensions"), &data, &queries);
}

/// Build a graph of `data` (sequence numbers from 1), then report build speed, and recall@10
/// and latency for several search beams against an exact scan of the same vectors.
fn measure_vectors(title: &str, data: &[Vec<f32>], queries: &[Vec<f32>]) {
    let dimensions = data.first().map_or(0, Vec::len);
    let dir = tempfile::tempdir().unwrap();
    let indexes = VectorIndexes::new(dir.path(), precision()).unwrap();
    let graph = indexes.open(1, dimensions);
    let started = Instant::now();
    for (i, batch) in data.chunks(4096).enumerate() {
        let refs: Vec<(u64, &[f32])> =
            batch.iter().enumerate().map(|(j, v)| ((i * 4096 + j + 1) as u64, v.as_slice())).collect();
        indexes.queue(&graph, &refs);
    }
    indexes.wait_until_built();
    let build = started.elapsed();
    println!("\n== {title} ==");
    if graph.points() == 0 {
        println!("no graph: below {} vectors a collection is scanned exactly", ares::rag::vectors::FULL_SCAN_BELOW);
    } else {
        println!(
            "graph build: {:.0} vectors/s ({:.1} s)",
            graph.points() as f64 / build.as_secs_f64(),
            build.as_secs_f64()
        );
    }

    let mut exact_times = Vec::with_capacity(QUERIES);
    // The exact tenth-best similarity per query: a result counts as a true neighbour when it is
    // at least that similar, so ties (documentation repeats itself) do not count as misses.
    let bars: Vec<f32> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let mut scored: Vec<f32> = data.iter().map(|v| ares::rag::vectors::dot(q, v)).collect();
            let k = TOP_K.min(scored.len()) - 1;
            let (_, bar, _) = scored.select_nth_unstable_by(k, |a, b| b.total_cmp(a));
            exact_times.push(t.elapsed());
            *bar
        })
        .collect();
    exact_times.sort();
    println!(
        "baseline exact scan      p50 {:>7.2} ms  p95 {:>7.2} ms",
        ms(percentile(&exact_times, 0.5)),
        ms(percentile(&exact_times, 0.95))
    );
    for ef in [32, 64, 100, 200, 400, 800, 1600, 3200] {
        let mut times = Vec::with_capacity(QUERIES);
        let mut hits = 0;
        for (query, bar) in queries.iter().zip(&bars) {
            let t = Instant::now();
            let found = graph.search(query, TOP_K, ef);
            times.push(t.elapsed());
            hits += found
                .iter()
                .filter(|(seq, _)| ares::rag::vectors::dot(query, &data[*seq as usize - 1]) >= *bar - 1e-6)
                .count();
        }
        times.sort();
        println!(
            "HNSW ef {ef:>3}: recall@{TOP_K} {:.3}  p50 {:>7.2} ms  p95 {:>7.2} ms",
            hits as f64 / (QUERIES * TOP_K) as f64,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95))
        );
    }
}

/// Recall and latency of the vector index alone on real text: the Rust documentation under the
/// toolchain (the Book, the Reference, std, core, alloc and the rest) chunked into 200-word
/// chunks and embedded with the built-in `hash` embedder, up to `limit` chunks. Queries are the
/// first eight words of chunks picked at random; truth is an exact scan in the same run.
fn rust_docs_vectors(limit: usize) {
    let root = rust_docs::html_root();
    let chunking = ares::rag::chunking::ChunkingConfig { chunk_size: WORDS_PER_CHUNK, chunk_overlap: 0 };
    let mut texts: Vec<String> = Vec::new();
    for file in rust_docs::html_files(&root) {
        if texts.len() >= limit {
            break;
        }
        let Ok(html) = std::fs::read_to_string(&file) else { continue };
        let text = rust_docs::page_text(&html);
        if text.split_whitespace().count() >= 20 {
            texts.extend(ares::rag::chunking::chunk(&text, Strategy::Word, &chunking));
        }
    }
    texts.truncate(limit);
    let embedder = ares::rag::embedder::Embedder::from_config(&config().embedder, &|_: &str| None);
    let started = Instant::now();
    let mut data: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
    for batch in texts.chunks(1024) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        data.extend(embedder.embed_blocking(&refs).unwrap());
    }
    let embed = started.elapsed();
    let mut rng = Rng(4242);
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| {
            let text = &texts[(rng.next() % texts.len() as u64) as usize];
            let query: Vec<&str> = text.split_whitespace().take(8).collect();
            embedder.embed_blocking(&[query.join(" ").as_str()]).unwrap().remove(0)
        })
        .collect();
    measure_vectors(&format!("{} chunks of the Rust documentation, hash embedder", data.len()), &data, &queries);
    println!("(embedding: {:.0} chunks/s)", data.len() as f64 / embed.as_secs_f64());
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test");
    let sizes: Vec<usize> = match std::env::var("ARES_BENCH_CHUNKS") {
        Ok(list) => list.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) if full => vec![10_000, 100_000],
        Err(_) => vec![2_000],
    };
    // `ARES_BENCH_ONLY=ingest` (or `clusters`, `docs`) runs one section: at 1M chunks each
    // takes long enough to be worth running alone.
    let only = std::env::var("ARES_BENCH_ONLY").ok();
    if only.as_deref() == Some("rebuild") {
        rebuild_kept();
        return;
    }
    let wanted = |section: &str| only.as_deref().is_none_or(|o| o == section);
    for size in &sizes {
        if wanted("clusters") {
            clusters(*size);
        }
        if wanted("docs") {
            rust_docs_vectors(*size);
        }
    }
    for size in sizes {
        if wanted("ingest") {
            run(size);
        }
    }
}
