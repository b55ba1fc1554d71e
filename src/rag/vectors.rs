//! The vector indexes (`data/vectors/<collection id>/`): one HNSW graph per collection
//! ([`super::graph`]), cosine similarity, kept in memory and dumped to disk so a clean restart
//! reloads instead of rebuilding.
//!
//! Chunks reach a graph in two steps. The indexing round that makes an ingest searchable
//! ([`super::indexer`]) only *queues* its vectors on the collection ([`CollectionVectors::queue`]);
//! a builder thread inserts queued vectors into the graph in batches, in parallel, while
//! searches go on. A search ranks the graph and scans what is still queued exactly, so a chunk
//! is found from the moment its ingest returns, and an ingest never waits for graph
//! construction — only, when far more is queued than the builder keeps up with
//! ([`MAX_QUEUED_BYTES`]), for room (back-pressure that bounds memory and the exact scan). A
//! collection below [`FULL_SCAN_BELOW`] vectors gets no graph at all: its queue is searched
//! exactly, which at that size is as fast as a graph and never misses.
//!
//! Graphs never delete points; chunks are only ever added to a collection and a deleted
//! collection drops its whole index, so it never needs to. Each dump records the highest chunk
//! sequence number its graph holds (its watermark) in `manifest.json`; chunks after it are
//! queued again from redb at start. Dumps are written to a fresh directory and renamed into
//! place, so a crash mid-dump leaves the previous dump (or none — then the collection is
//! rebuilt). The manifest carries a SHA-256 of each dump file and the graph reader checks every
//! count and link, so a damaged dump is treated as missing, never trusted.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use super::graph::dot;
use super::graph::{Coordinates, Graph, Params, Precision};
use super::queue::Queue;

/// Vectors inserted per builder step: small enough that a dump or a shutdown waits at most one
/// step, large enough for the parallel insert to keep both cores busy.
const BUILD_BATCH: usize = 1024;
/// Collections with fewer vectors than this have no graph: their queue is their index, and a
/// search scans it exactly — recall 1.0, and at 384 dimensions no slower than a graph search at
/// this size (~2 ms). The builder starts on a collection once it reaches this size.
pub const FULL_SCAN_BELOW: usize = 16_384;
/// Bytes of queued vectors due for the builder (all collections, [`Queue::footprint`])
/// above which ingests wait for it: what bounds the queue's memory and the exact scan every
/// search makes of it while a bulk load is ahead of the builder.
pub const MAX_QUEUED_BYTES: usize = 256 << 20;
const MANIFEST: &str = "manifest.json";
/// The queue at dump time: per vector, its sequence number (u64) then, as the manifest's
/// `queue_codes` says, its coordinates (f32) or its scale (f32) and code (i8), little-endian.
const QUEUE_FILE: &str = "queued.bin";
const GRAPH_FILE: &str = "graph.bin";
/// Bumped when what a dump means changes; older dumps are rebuilt. 3: this server's own graph
/// ([`super::graph`]); 1 and 2 were hnsw_rs dumps.
const FORMAT: u32 = 3;

/// `v` scaled to unit length, or `None` for a zero (or non-finite) vector: cosine with it is
/// undefined and a graph would call it a perfect match.
fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = dot(v, v).sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| v.iter().map(|x| x / norm).collect())
}

/// Write the queue, streamed (at a bulk load's peak it holds hundreds of megabytes); returns
/// whether its records are codes (the manifest's `queue_codes`).
fn write_queue(path: &Path, queue: &Queue) -> std::io::Result<bool> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for (seq, row) in queue.iter() {
        out.write_all(&seq.to_le_bytes())?;
        match row {
            Coordinates::Codes { codes, scale } => {
                out.write_all(&scale.to_le_bytes())?;
                out.write_all(&codes.iter().map(|c| c.to_le_bytes()[0]).collect::<Vec<u8>>())?;
            }
            Coordinates::Full(vector) => {
                for x in vector.iter() {
                    out.write_all(&x.to_le_bytes())?;
                }
            }
        }
    }
    out.flush()?;
    Ok(queue.precision() == Precision::Int8)
}

/// A queue file back: records of codes when `precision` is `int8` (each with its own scale, so
/// it scores exactly as before), else of `f32` coordinates (an exact queue, or a dump from
/// before `queue_codes`), which the collection quantises if its graph keeps codes.
fn parse_queue(bytes: &[u8], dimensions: usize, precision: Precision) -> Option<Queue> {
    let codes = precision == Precision::Int8;
    let record = if codes { 8 + 4 + dimensions } else { 8 + dimensions * 4 };
    if dimensions == 0 || !bytes.len().is_multiple_of(record) {
        return None;
    }
    let f32_at = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap_or_default());
    let mut queue = Queue::new(dimensions, precision);
    for r in bytes.chunks_exact(record) {
        let (seq, rest) = r.split_at(8);
        let seq = u64::from_le_bytes(seq.try_into().unwrap_or_default());
        if codes {
            let (scale, code) = rest.split_at(4);
            let code = code.iter().map(|b| i8::from_le_bytes([*b])).collect();
            queue.push_row(seq, &Coordinates::Codes { codes: code, scale: f32_at(scale) });
        } else {
            let vector: Vec<f32> = rest.chunks_exact(4).map(f32_at).collect();
            queue.push(seq, &vector);
        }
    }
    Some(queue)
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    #[serde(default)]
    format: u32,
    /// Highest sequence number in the graph.
    watermark: u64,
    dimensions: usize,
    points: usize,
    /// Vectors in the queue file, after the graph's.
    #[serde(default)]
    queued: usize,
    /// Whether the queue file holds `int8` codes (else `f32` coordinates, as before it could).
    #[serde(default)]
    queue_codes: bool,
    /// How the graph stores coordinates; a dump of another precision is rebuilt.
    precision: String,
    /// SHA-256 (hex) of each dump file, by file name.
    #[serde(default)]
    files: Vec<(String, String)>,
}

/// Streamed: at a million vectors the graph file is several hundred megabytes, and a dump
/// should not hold a second copy of it in memory to hash it.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The dump file `name` from `dir`, if it is as `manifest` says it was written (read once:
/// at a million vectors the graph file is several hundred megabytes).
fn read_intact(dir: &Path, manifest: &Manifest, name: &str) -> Option<Vec<u8>> {
    let (_, digest) = manifest.files.iter().find(|(listed, _)| listed == name)?;
    let bytes = std::fs::read(dir.join(name)).ok()?;
    (hex::encode(Sha256::digest(&bytes)) == *digest).then_some(bytes)
}

/// One collection's graph and its queue.
pub struct CollectionVectors {
    /// Synchronises concurrent inserts and searches itself.
    graph: Graph,
    dimensions: usize,
    /// The graph's, and so the queue's.
    precision: Precision,
    /// Held by the builder while it inserts and by a dump while it writes: a dump must see a
    /// graph no insert is changing, and a queue consistent with it.
    build: Mutex<()>,
    /// Whether the graph or the queue changed since the last dump.
    dirty: AtomicBool,
    /// Highest sequence number in the graph.
    watermark: AtomicU64,
    points: AtomicUsize,
    /// Committed chunks' unit vectors not yet in the graph, in sequence order, kept as the
    /// graph will keep them; searched by an exact scan.
    queued: RwLock<Queue>,
}

impl CollectionVectors {
    fn new(dimensions: usize, precision: Precision) -> CollectionVectors {
        CollectionVectors::with_graph(Graph::new(dimensions, precision, Params::default()), dimensions, 0, 0)
    }

    fn with_graph(graph: Graph, dimensions: usize, watermark: u64, points: usize) -> CollectionVectors {
        CollectionVectors {
            precision: graph.precision(),
            // Exact until the collection is due for a graph ([`CollectionVectors::match_graph`]).
            queued: RwLock::new(Queue::new(dimensions, Precision::F32)),
            graph,
            dimensions,
            build: Mutex::new(()),
            dirty: AtomicBool::new(false),
            watermark: AtomicU64::new(watermark),
            points: AtomicUsize::new(points),
        }
    }

    /// Queue `(seq, vector)` points, in sequence order, for the builder; those the graph or
    /// the queue already holds, of the wrong width, or zero are skipped. Returns how many
    /// were queued.
    fn queue(&self, points: &[(u64, &[f32])]) -> usize {
        let Ok(mut queued) = self.queued.write() else { return 0 };
        let mut after = queued.last_seq().unwrap_or(0).max(self.watermark());
        let before = queued.len();
        for (seq, vector) in points {
            if *seq > after
                && vector.len() == self.dimensions
                && let Some(vector) = unit(vector)
            {
                queued.push(*seq, &vector);
                after = *seq;
            }
        }
        let added = queued.len() - before;
        self.match_graph(&mut queued);
        if added > 0 {
            self.dirty.store(true, Ordering::Release);
        }
        added
    }

    /// Keep the queue as the graph keeps vectors once the collection has, or is due for, a
    /// graph ([`FULL_SCAN_BELOW`]): from then on searches score the graph's vectors through
    /// their codes anyway, and a bulk load's backlog takes a quarter of the memory. Below it,
    /// the queue is the collection's whole index and stays exact (a text's own chunk scores 1).
    fn match_graph(&self, queued: &mut Queue) {
        let due = self.points() > 0 || self.points() + queued.len() >= FULL_SCAN_BELOW;
        if due && self.precision == Precision::Int8 {
            queued.quantise();
        }
    }

    /// Insert up to `limit` queued vectors into the graph; returns how many.
    fn build_step(&self, limit: usize, pool: &rayon::ThreadPool) -> usize {
        let Ok(_build) = self.build.lock() else { return 0 };
        // Copied out so ingests can queue more and searches scan the queue meanwhile.
        let step: Vec<(u64, Coordinates)> = match self.queued.read() {
            Ok(queued) => queued.front(limit),
            Err(_) => return 0,
        };
        let Some(last) = step.last().map(|(seq, _)| *seq) else { return 0 };
        self.graph.insert(&step, pool);
        self.points.fetch_add(step.len(), Ordering::Relaxed);
        self.watermark.fetch_max(last, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        // Searches may see a point in the graph and the queue at once for this moment; they
        // drop the duplicate.
        if let Ok(mut queued) = self.queued.write() {
            queued.drop_through(last);
        }
        step.len()
    }

    /// The `k` nearest points as `(seq, cosine similarity)`, best first: the graph's, walked
    /// with a beam of `ef` (`[rag].search_beam`), merged with an exact scan of the queue.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(u64, f32)> {
        let Some(query) = unit(query) else { return Vec::new() };
        if k == 0 || query.len() != self.dimensions {
            return Vec::new();
        }
        let mut found: Vec<(u64, f32)> = Vec::with_capacity(k * 2);
        if self.points() > 0 {
            found.extend(self.graph.search(&query, k, ef));
        }
        if let Ok(queued) = self.queued.read()
            && !queued.is_empty()
        {
            found.extend(queued.scan(&query, k));
        }
        // Equal similarities (the same text twice) in chunk order, whatever the graph's shape.
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut seen = std::collections::HashSet::with_capacity(found.len());
        found.retain(|(seq, _)| seen.insert(*seq));
        found.truncate(k);
        found
    }

    /// Highest sequence number in the graph (not counting the queue).
    pub fn watermark(&self) -> u64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// Points in the graph.
    pub fn points(&self) -> usize {
        self.points.load(Ordering::Relaxed)
    }

    /// Highest sequence number in the graph or the queue: start-up queues what comes after.
    pub fn covered(&self) -> u64 {
        let queued = self.queued.read().ok().and_then(|q| q.last_seq()).unwrap_or(0);
        queued.max(self.watermark())
    }

    /// Points in the queue (scanned exactly).
    pub fn queued(&self) -> usize {
        self.queued.read().map_or(0, |q| q.len())
    }

    /// Queued points the builder is due to insert: all of them once the collection has a
    /// graph or has reached [`FULL_SCAN_BELOW`], none before.
    pub fn backlog(&self) -> usize {
        let (points, queued) = (self.points(), self.queued());
        if points > 0 || points + queued >= FULL_SCAN_BELOW { queued } else { 0 }
    }

    /// The backlog's memory ([`Queue::footprint`]).
    fn backlog_bytes(&self) -> usize {
        let precision = self.queued.read().map_or(self.precision, |queued| queued.precision());
        self.backlog() * Queue::footprint(self.dimensions, precision)
    }

    /// Write the graph and the queue to `dir` (replacing the previous dump) when either
    /// changed since the last one. The queue goes too, so a clean restart replays nothing even
    /// when the builder had not caught up.
    fn dump(&self, dir: &Path) -> std::io::Result<bool> {
        let Ok(_build) = self.build.lock() else { return Ok(false) };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let written = self.dump_locked(dir);
        if written.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        written
    }

    fn dump_locked(&self, dir: &Path) -> std::io::Result<bool> {
        let staging = dir.with_extension("staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        let points = self.points();
        if points > 0 {
            // Insert batches check for cut-off nodes as the graph grows; the last few may not
            // have been checked yet, and a dump should not keep one.
            let repaired = self.graph.repair_if_unchecked();
            if repaired > 0 {
                tracing::debug!(repaired, "vector graph: reconnected nodes no search could reach");
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(staging.join(GRAPH_FILE))?);
            self.graph.write(&mut out)?;
            std::io::Write::flush(&mut out)?;
        }
        let (queued, queue_codes) = match self.queued.read() {
            Ok(queue) => {
                let codes = if queue.is_empty() { false } else { write_queue(&staging.join(QUEUE_FILE), &queue)? };
                (queue.len(), codes)
            }
            Err(_) => return Err(std::io::Error::other("vector queue lock poisoned")),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&staging)? {
            let path = entry?.path();
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                files.push((name.to_string(), sha256_file(&path)?));
            }
        }
        files.sort();
        let manifest = Manifest {
            format: FORMAT,
            watermark: self.watermark(),
            dimensions: self.dimensions,
            points,
            queued,
            queue_codes,
            precision: self.precision.as_str().to_string(),
            files,
        };
        let manifest_path = staging.join(MANIFEST);
        std::fs::write(&manifest_path, serde_json::to_vec(&manifest).map_err(std::io::Error::other)?)?;
        for entry in std::fs::read_dir(&staging)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        let retired = dir.with_extension("retired");
        if dir.exists() {
            if retired.exists() {
                std::fs::remove_dir_all(&retired)?;
            }
            std::fs::rename(dir, &retired)?;
        }
        std::fs::rename(&staging, dir)?;
        if retired.exists() {
            std::fs::remove_dir_all(&retired)?;
        }
        Ok(true)
    }

    /// Reload a dump, or `None` if there is none usable.
    fn load(dir: &Path, dimensions: usize, precision: Precision) -> Option<CollectionVectors> {
        let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).ok()?).ok()?;
        if manifest.format != FORMAT || manifest.dimensions != dimensions || manifest.precision != precision.as_str() {
            return None;
        }
        let queue = if manifest.queued > 0 {
            let bytes = read_intact(dir, &manifest, QUEUE_FILE)?;
            let precision = if manifest.queue_codes { Precision::Int8 } else { Precision::F32 };
            let queue = parse_queue(&bytes, dimensions, precision)?;
            (queue.len() == manifest.queued).then_some(queue)?
        } else {
            Queue::new(dimensions, Precision::F32)
        };
        let loaded = Self::load_graph(dir, &manifest, dimensions, precision)?;
        let mut queued = loaded.queued.write().ok()?;
        *queued = queue;
        loaded.match_graph(&mut queued);
        drop(queued);
        Some(loaded)
    }

    fn load_graph(
        dir: &Path,
        manifest: &Manifest,
        dimensions: usize,
        precision: Precision,
    ) -> Option<CollectionVectors> {
        if manifest.points == 0 {
            let empty = CollectionVectors::new(dimensions, precision);
            empty.watermark.store(manifest.watermark, Ordering::Release);
            return Some(empty);
        }
        let graph = Graph::read(&read_intact(dir, manifest, GRAPH_FILE)?, dimensions)?;
        if graph.len() != manifest.points || graph.precision() != precision {
            return None;
        }
        Some(CollectionVectors::with_graph(graph, dimensions, manifest.watermark, manifest.points))
    }
}

/// Every collection's graph, by collection id, and the builder thread that fills them.
pub struct VectorIndexes {
    shared: Arc<Shared>,
    builder: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    dir: PathBuf,
    collections: RwLock<HashMap<u64, Arc<CollectionVectors>>>,
    /// Set when vectors are queued; the builder sleeps on `work` while it is clear.
    pending: Mutex<bool>,
    work: Condvar,
    /// Signalled after every builder step, for ingests waiting for room.
    progress: Condvar,
    stop: AtomicBool,
    /// The builder's own threads, at [`BUILDER_NICE`].
    pool: rayon::ThreadPool,
    /// `[rag].vector_precision` of new graphs; a dump of another precision is rebuilt.
    precision: Precision,
}

/// The builder's CPU priority: below request serving, so under load graph construction takes
/// the idle time and ingests and searches keep theirs (the exact scan of the queue covers
/// what the graph has not caught up with).
const BUILDER_NICE: i32 = 10;

/// Lower the calling thread's priority (Linux: `setpriority` on a thread id affects that thread
/// only). Best effort: where it is refused, the builder runs at normal priority.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), BUILDER_NICE);
}

impl Shared {
    fn graphs(&self) -> Vec<(u64, Arc<CollectionVectors>)> {
        self.collections.read().map(|map| map.iter().map(|(id, g)| (*id, g.clone())).collect()).unwrap_or_default()
    }

    fn backlog(&self) -> usize {
        self.graphs().iter().map(|(_, g)| g.backlog()).sum()
    }

    fn backlog_bytes(&self) -> usize {
        self.graphs().iter().map(|(_, g)| g.backlog_bytes()).sum()
    }

    /// The builder: insert queued vectors, a step per collection in turn, until none are left;
    /// then sleep until more are queued.
    fn build(&self) {
        loop {
            {
                let Ok(mut pending) = self.pending.lock() else { return };
                while !*pending && !self.stop.load(Ordering::Acquire) {
                    pending = match self.work.wait(pending) {
                        Ok(guard) => guard,
                        Err(_) => return,
                    };
                }
                *pending = false;
            }
            loop {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                let built: usize = self
                    .graphs()
                    .iter()
                    .filter(|(_, graph)| graph.backlog() > 0)
                    .map(|(_, graph)| graph.build_step(BUILD_BATCH, &self.pool))
                    .sum();
                let _room = self.pending.lock();
                self.progress.notify_all();
                if built == 0 {
                    break;
                }
            }
        }
    }
}

impl VectorIndexes {
    /// Open the directory and start the builder thread (stopped when this is dropped).
    pub fn new(dir: &Path, precision: Precision) -> std::io::Result<VectorIndexes> {
        std::fs::create_dir_all(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            collections: RwLock::new(HashMap::new()),
            pending: Mutex::new(false),
            work: Condvar::new(),
            progress: Condvar::new(),
            stop: AtomicBool::new(false),
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                .thread_name(|i| format!("ares-vectors-{i}"))
                .start_handler(|_| lower_priority())
                .build()
                .map_err(std::io::Error::other)?,
            precision,
        });
        let builder = {
            let shared = shared.clone();
            std::thread::Builder::new().name("ares-vectors".into()).spawn(move || {
                lower_priority();
                shared.build()
            })?
        };
        Ok(VectorIndexes { shared, builder: Mutex::new(Some(builder)) })
    }

    fn path(&self, collection_id: u64) -> PathBuf {
        self.shared.dir.join(collection_id.to_string())
    }

    pub fn get(&self, collection_id: u64) -> Option<Arc<CollectionVectors>> {
        self.shared.collections.read().ok()?.get(&collection_id).cloned()
    }

    /// The collection's graph: already open, else reloaded from its dump, else new and empty.
    pub fn open(&self, collection_id: u64, dimensions: usize) -> Arc<CollectionVectors> {
        if let Some(existing) = self.get(collection_id) {
            return existing;
        }
        let precision = self.shared.precision;
        let graph = CollectionVectors::load(&self.path(collection_id), dimensions, precision)
            .unwrap_or_else(|| CollectionVectors::new(dimensions, precision));
        let graph = Arc::new(graph);
        let graph = match self.shared.collections.write() {
            Ok(mut map) => map.entry(collection_id).or_insert(graph).clone(),
            Err(_) => graph,
        };
        // A dump taken while the builder was behind brings its queue back: resume building.
        if graph.backlog() > 0 {
            self.wake_builder();
        }
        graph
    }

    fn wake_builder(&self) {
        if let Ok(mut pending) = self.shared.pending.lock() {
            *pending = true;
            self.shared.work.notify_one();
        }
    }

    /// Queue committed chunks' vectors on their collection's graph and wake the builder.
    /// Returns how many were queued (see [`CollectionVectors::queue`]).
    pub fn queue(&self, graph: &CollectionVectors, points: &[(u64, &[f32])]) -> usize {
        let queued = graph.queue(points);
        if queued > 0 {
            self.wake_builder();
        }
        queued
    }

    /// Queued vectors the builder is due to insert, in every collection.
    pub fn backlog(&self) -> usize {
        self.shared.backlog()
    }

    /// Wait while the builder's backlog holds more than `limit` bytes (ingest back-pressure).
    pub fn wait_for_room(&self, limit: usize) {
        while self.shared.backlog_bytes() > limit && !self.shared.stop.load(Ordering::Acquire) {
            let Ok(guard) = self.shared.pending.lock() else { return };
            // Timed: a step may end between the count above and this wait.
            let _ = self.shared.progress.wait_timeout(guard, Duration::from_millis(100));
        }
    }

    /// Wait until the builder has no backlog (`ares reindex`, benchmarks).
    pub fn wait_until_built(&self) {
        while self.backlog() > 0 && !self.shared.stop.load(Ordering::Acquire) {
            let Ok(guard) = self.shared.pending.lock() else { return };
            let _ = self.shared.progress.wait_timeout(guard, Duration::from_millis(100));
        }
    }

    /// Forget a collection and delete its dump.
    pub fn drop_collection(&self, collection_id: u64) -> std::io::Result<()> {
        if let Ok(mut map) = self.shared.collections.write() {
            map.remove(&collection_id);
        }
        let path = self.path(collection_id);
        if path.exists() {
            std::fs::remove_dir_all(path)?;
        }
        Ok(())
    }

    /// Delete dumps of collections not in `live` (deleted while the server was down).
    pub fn remove_stale(&self, live: &[u64]) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.shared.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let id = name.split('.').next().and_then(|n| n.parse::<u64>().ok());
            let stale = match id {
                Some(id) => !live.contains(&id) || name.contains('.'),
                None => false,
            };
            if stale && path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    /// Dump every graph that changed; returns how many were written.
    pub fn dump_dirty(&self) -> std::io::Result<usize> {
        let mut written = 0;
        for (id, graph) in self.shared.graphs() {
            if graph.dump(&self.path(id))? {
                written += 1;
            }
        }
        Ok(written)
    }
}

impl Drop for VectorIndexes {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Ok(_pending) = self.shared.pending.lock() {
            self.shared.work.notify_all();
            self.shared.progress.notify_all();
        }
        if let Some(builder) = self.builder.lock().ok().and_then(|mut b| b.take()) {
            let _ = builder.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rag::graph::tests::vectors;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    fn exact(points: &[(u64, Vec<f32>)], query: &[f32], k: usize) -> Vec<u64> {
        let query = unit(query).unwrap();
        let mut scored: Vec<(u64, f32)> =
            points.iter().map(|(seq, v)| (*seq, dot(&query, &unit(v).unwrap()))).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(k).map(|(seq, _)| seq).collect()
    }

    #[test]
    fn dot_matches_the_plain_sum_for_every_length() {
        for len in [0, 1, 15, 16, 17, 384, 1000] {
            let v = vectors(2, len, 7);
            let plain: f32 = v[0].iter().zip(&v[1]).map(|(a, b)| a * b).sum();
            assert!((dot(&v[0], &v[1]) - plain).abs() < 1e-3, "{len}");
        }
    }

    #[test]
    fn queued_vectors_are_found_exactly_before_the_builder_inserts_them() {
        let graph = CollectionVectors::new(8, Precision::F32);
        let points: Vec<(u64, Vec<f32>)> =
            vectors(50, 8, 3).into_iter().enumerate().map(|(i, v)| (i as u64 + 1, v)).collect();
        let refs: Vec<(u64, &[f32])> = points.iter().map(|(seq, v)| (*seq, v.as_slice())).collect();
        assert_eq!(graph.queue(&refs), 50);
        // Already queued, a zero vector, or the wrong width: skipped.
        assert_eq!(graph.queue(&refs[..3]), 0);
        assert_eq!(graph.queue(&[(51, &[0.0; 8][..]), (52, &[1.0; 4][..])]), 0);
        assert_eq!((graph.points(), graph.queued(), graph.covered()), (0, 50, 50));
        for query in vectors(5, 8, 11) {
            let found: Vec<u64> = graph.search(&query, 10, 200).into_iter().map(|(seq, _)| seq).collect();
            assert_eq!(found, exact(&points, &query, 10));
        }
    }

    #[test]
    fn building_moves_the_queue_into_the_graph_and_searches_see_each_point_once() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let graph = CollectionVectors::new(16, Precision::Int8);
        let points: Vec<(u64, Vec<f32>)> =
            vectors(300, 16, 5).into_iter().enumerate().map(|(i, v)| (i as u64 + 1, v)).collect();
        let refs: Vec<(u64, &[f32])> = points.iter().map(|(seq, v)| (*seq, v.as_slice())).collect();
        graph.queue(&refs);
        assert_eq!(graph.build_step(200, &pool), 200);
        assert_eq!((graph.points(), graph.queued(), graph.watermark(), graph.covered()), (200, 100, 200, 300));
        // Half in the graph, half queued: every result once, the nearest first.
        for query in vectors(5, 16, 13) {
            let found = graph.search(&query, 300, 600);
            let mut seqs: Vec<u64> = found.iter().map(|(seq, _)| *seq).collect();
            assert!(found.windows(2).all(|w| w[0].1 >= w[1].1));
            seqs.sort_unstable();
            seqs.dedup();
            assert_eq!(seqs.len(), found.len());
        }
        assert_eq!(graph.build_step(200, &pool), 100);
        assert_eq!((graph.points(), graph.queued(), graph.watermark()), (300, 0, 300));
        assert_eq!(graph.build_step(200, &pool), 0);
    }

    #[test]
    fn a_reloaded_queue_due_for_a_graph_is_built_without_new_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let points: Vec<(u64, Vec<f32>)> =
            vectors(200, 4, 21).into_iter().enumerate().map(|(i, v)| (i as u64 + 1, v)).collect();
        let refs: Vec<(u64, &[f32])> = points.iter().map(|(seq, v)| (*seq, v.as_slice())).collect();
        // Dumped by a server stopped while its builder was behind: a graph, and a queue due for it.
        let behind = CollectionVectors::new(4, Precision::Int8);
        behind.queue(&refs);
        behind.build_step(10, &pool);
        assert_eq!(behind.backlog(), 190);
        assert!(behind.dump(&dir.path().join("7")).unwrap());
        let indexes = VectorIndexes::new(dir.path(), Precision::Int8).unwrap();
        let graph = indexes.open(7, 4);
        indexes.wait_until_built();
        assert_eq!((graph.points(), graph.queued()), (200, 0));
    }

    #[test]
    fn a_small_collection_stays_exact_across_a_reload_even_from_an_empty_dump() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("3");
        let empty = CollectionVectors::new(4, Precision::Int8);
        empty.dirty.store(true, Ordering::Release);
        assert!(empty.dump(&path).unwrap());
        let loaded = CollectionVectors::load(&path, 4, Precision::Int8).unwrap();
        let v = [0.3f32, -0.7, 0.2, 0.1];
        assert_eq!(loaded.queue(&[(1, &v[..])]), 1);
        // Exact: the vector's own score is 1 (an int8 code of 4 coordinates would be well off).
        let found = loaded.search(&v, 1, 10);
        assert_eq!(found[0].0, 1);
        assert!((found[0].1 - 1.0).abs() < 1e-6, "{found:?}");
    }

    #[test]
    fn a_dump_keeps_the_graph_and_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1");
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let graph = CollectionVectors::new(16, Precision::Int8);
        let points: Vec<(u64, Vec<f32>)> =
            vectors(120, 16, 9).into_iter().enumerate().map(|(i, v)| (i as u64 * 2 + 1, v)).collect();
        let refs: Vec<(u64, &[f32])> = points.iter().map(|(seq, v)| (*seq, v.as_slice())).collect();
        graph.queue(&refs);
        graph.build_step(80, &pool);
        assert!(graph.dump(&path).unwrap());
        assert!(!graph.dump(&path).unwrap(), "nothing changed since");
        let loaded = CollectionVectors::load(&path, 16, Precision::Int8).unwrap();
        assert_eq!((loaded.points(), loaded.queued(), loaded.watermark(), loaded.covered()), (80, 40, 159, 239));
        let query = &points[100].1;
        assert_eq!(loaded.search(query, 5, 200), graph.search(query, 5, 200));
        // A dump from before queues of codes (its queue as f32 records) loads as well and
        // scores the queued vectors within their rounding.
        let coordinates: Vec<(u64, Coordinates)> = graph.queued.read().unwrap().iter().collect();
        let mut f32_records = Vec::new();
        for (seq, row) in &coordinates {
            f32_records.extend_from_slice(&seq.to_le_bytes());
            row.vector().iter().for_each(|x| f32_records.extend_from_slice(&x.to_le_bytes()));
        }
        let older = dir.path().join("older");
        copy_dir(&path, &older);
        std::fs::write(older.join(QUEUE_FILE), &f32_records).unwrap();
        let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(older.join(MANIFEST)).unwrap()).unwrap();
        manifest.queue_codes = false;
        for (name, digest) in manifest.files.iter_mut() {
            *digest = sha256_file(&older.join(name.as_str())).unwrap();
        }
        std::fs::write(older.join(MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        let upgraded = CollectionVectors::load(&older, 16, Precision::Int8).unwrap();
        assert_eq!((upgraded.points(), upgraded.queued(), upgraded.covered()), (80, 40, 239));
        let (before, after) = (graph.search(query, 5, 200), upgraded.search(query, 5, 200));
        assert_eq!(
            before.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            after.iter().map(|(seq, _)| *seq).collect::<Vec<_>>()
        );
        assert!(before.iter().zip(&after).all(|(a, b)| (a.1 - b.1).abs() < 1e-3), "{before:?} {after:?}");
        // Another width, or a damaged queue file: no dump.
        assert!(CollectionVectors::load(&path, 8, Precision::Int8).is_none());
        std::fs::write(path.join(QUEUE_FILE), b"torn").unwrap();
        assert!(CollectionVectors::load(&path, 16, Precision::Int8).is_none());
    }
}
