//! The vector indexes (`data/vectors/<collection id>/`): one hnsw_rs graph per collection,
//! cosine distance, kept in memory and dumped to disk so a clean restart reloads instead of
//! rebuilding.
//!
//! hnsw_rs cannot delete points; chunks are only ever added to a collection and a deleted
//! collection drops its whole index, so it never needs to. Each dump records the highest chunk
//! sequence number it holds (its watermark) in `manifest.json`; chunks after it are replayed
//! from redb at start. Dumps are written to a fresh directory and renamed into place, so a crash
//! mid-dump leaves the previous dump (or none — then the collection is rebuilt).
//!
//! Two hnsw_rs properties shape this module. Its reload API ties the graph's lifetime to the
//! loader object, so the (small) loader is leaked — once per collection per load, which happens
//! at start-up and after `ares reindex`. And it asserts on malformed files — or ends the process
//! outright on a truncated one — so the manifest carries a SHA-256 of each dump file, a dump is
//! reloaded only when they all match, the reload runs under `catch_unwind`, and a corrupt dump is
//! treated as missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hnsw_rs::prelude::{AnnT, DistCosine, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Graph parameters: 16 links per node, a construction beam of 200 and a search beam of at
/// least 200. On the benchmark corpus (benches/rag.rs: random-vocabulary text under the lexical
/// hash embedder, where nearly all distances are alike — a hard case for any graph index) a
/// search beam of 64 gave recall@10 0.72 at 10k chunks and 0.45 at 100k; 200 gives 0.85 at 10k
/// (3.9 ms p50; exact scan 6.2 ms) and 0.57 at 100k (6.8 ms p50; exact scan 54 ms).
const MAX_CONNECTIONS: usize = 16;
const MAX_LAYERS: usize = 16;
const EF_CONSTRUCTION: usize = 200;
/// The search beam is at least this wide, whatever `top_k` is.
const MIN_EF_SEARCH: usize = 200;
const MANIFEST: &str = "manifest.json";
const BASENAME: &str = "index";

type Graph = Hnsw<'static, f32, DistCosine>;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    watermark: u64,
    dimensions: usize,
    points: usize,
    basename: String,
    /// SHA-256 (hex) of each dump file, by file name. hnsw_rs ends the process
    /// (`std::process::exit`) on a truncated file instead of returning an error, so a dump is
    /// only handed to it once every file checks out.
    #[serde(default)]
    files: Vec<(String, String)>,
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

/// Whether every dump file listed in `manifest` is in `dir` as it was written.
fn files_intact(dir: &Path, manifest: &Manifest) -> bool {
    !manifest.files.is_empty()
        && manifest
            .files
            .iter()
            .all(|(name, digest)| sha256_file(&dir.join(name)).is_ok_and(|actual| actual == *digest))
}

struct Inner {
    graph: Graph,
    dimensions: usize,
    watermark: u64,
    points: usize,
    /// Points added since the last dump.
    dirty: bool,
}

/// One collection's graph.
pub struct CollectionVectors {
    inner: RwLock<Inner>,
}

impl CollectionVectors {
    fn new(dimensions: usize, expected_points: usize) -> CollectionVectors {
        let graph = Hnsw::new(MAX_CONNECTIONS, expected_points.max(1024), MAX_LAYERS, EF_CONSTRUCTION, DistCosine);
        CollectionVectors { inner: RwLock::new(Inner { graph, dimensions, watermark: 0, points: 0, dirty: false }) }
    }

    /// Add `(seq, vector)` points (in sequence order). Zero vectors are skipped: cosine with
    /// them is undefined and hnsw_rs would call them perfect matches.
    pub fn insert(&self, points: &[(u64, &[f32])]) {
        let Ok(mut inner) = self.inner.write() else { return };
        let usable: Vec<(&[f32], usize)> = points
            .iter()
            .filter(|(seq, v)| *seq > inner.watermark && v.len() == inner.dimensions && v.iter().any(|x| *x != 0.0))
            .map(|(seq, v)| (*v, *seq as usize))
            .collect();
        if usable.len() > 64 {
            inner.graph.parallel_insert_slice(&usable);
        } else {
            for point in &usable {
                inner.graph.insert_slice(*point);
            }
        }
        inner.points += usable.len();
        if let Some((seq, _)) = points.last() {
            inner.watermark = inner.watermark.max(*seq);
        }
        inner.dirty = true;
    }

    /// The `k` nearest points as `(seq, cosine similarity)`, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let Ok(inner) = self.inner.read() else { return Vec::new() };
        if k == 0 || inner.points == 0 || query.len() != inner.dimensions || query.iter().all(|x| *x == 0.0) {
            return Vec::new();
        }
        let ef = (k * 2).max(MIN_EF_SEARCH);
        let mut found: Vec<(u64, f32)> =
            inner.graph.search(query, k, ef).into_iter().map(|n| (n.d_id as u64, 1.0 - n.distance)).collect();
        // Equal similarities (the same text twice) in chunk order, whatever the graph's shape.
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found
    }

    pub fn watermark(&self) -> u64 {
        self.inner.read().map_or(0, |i| i.watermark)
    }

    pub fn points(&self) -> usize {
        self.inner.read().map_or(0, |i| i.points)
    }

    /// Write the graph to `dir` (replacing the previous dump) when it changed since the last one.
    fn dump(&self, dir: &Path) -> std::io::Result<bool> {
        let Ok(mut inner) = self.inner.write() else { return Ok(false) };
        if !inner.dirty {
            return Ok(false);
        }
        let staging = dir.with_extension("staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        let basename = if inner.points == 0 {
            BASENAME.to_string()
        } else {
            inner.graph.file_dump(&staging, BASENAME).map_err(|e| std::io::Error::other(e.to_string()))?
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
            watermark: inner.watermark,
            dimensions: inner.dimensions,
            points: inner.points,
            basename,
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
        inner.dirty = false;
        Ok(true)
    }

    /// Reload a dump, or `None` if there is none usable.
    fn load(dir: &Path, dimensions: usize) -> Option<CollectionVectors> {
        let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).ok()?).ok()?;
        if manifest.dimensions != dimensions {
            return None;
        }
        if manifest.points == 0 {
            let empty = CollectionVectors::new(dimensions, 0);
            if let Ok(mut inner) = empty.inner.write() {
                inner.watermark = manifest.watermark;
            }
            return Some(empty);
        }
        if !files_intact(dir, &manifest) {
            return None;
        }
        let dir = dir.to_path_buf();
        let basename = manifest.basename.clone();
        let loaded = std::panic::catch_unwind(move || {
            // Leaked on purpose: the graph borrows its loader for its whole life (module docs).
            let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&dir, &basename)));
            loader.load_hnsw::<f32, DistCosine>().ok()
        })
        .ok()
        .flatten()?;
        if loaded.get_nb_point() != manifest.points {
            return None;
        }
        Some(CollectionVectors {
            inner: RwLock::new(Inner {
                graph: loaded,
                dimensions,
                watermark: manifest.watermark,
                points: manifest.points,
                dirty: false,
            }),
        })
    }
}

/// Every collection's graph, by collection id.
pub struct VectorIndexes {
    dir: PathBuf,
    collections: RwLock<HashMap<u64, Arc<CollectionVectors>>>,
}

impl VectorIndexes {
    pub fn new(dir: &Path) -> std::io::Result<VectorIndexes> {
        std::fs::create_dir_all(dir)?;
        Ok(VectorIndexes { dir: dir.to_path_buf(), collections: RwLock::new(HashMap::new()) })
    }

    fn path(&self, collection_id: u64) -> PathBuf {
        self.dir.join(collection_id.to_string())
    }

    pub fn get(&self, collection_id: u64) -> Option<Arc<CollectionVectors>> {
        self.collections.read().ok()?.get(&collection_id).cloned()
    }

    /// The collection's graph: already open, else reloaded from its dump, else new and empty.
    pub fn open(&self, collection_id: u64, dimensions: usize, expected_points: usize) -> Arc<CollectionVectors> {
        if let Some(existing) = self.get(collection_id) {
            return existing;
        }
        let graph = CollectionVectors::load(&self.path(collection_id), dimensions)
            .unwrap_or_else(|| CollectionVectors::new(dimensions, expected_points));
        let graph = Arc::new(graph);
        match self.collections.write() {
            Ok(mut map) => map.entry(collection_id).or_insert(graph).clone(),
            Err(_) => graph,
        }
    }

    /// Forget a collection and delete its dump.
    pub fn drop_collection(&self, collection_id: u64) -> std::io::Result<()> {
        if let Ok(mut map) = self.collections.write() {
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
        for entry in std::fs::read_dir(&self.dir)? {
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
        let graphs: Vec<(u64, Arc<CollectionVectors>)> = match self.collections.read() {
            Ok(map) => map.iter().map(|(id, g)| (*id, g.clone())).collect(),
            Err(_) => return Ok(0),
        };
        let mut written = 0;
        for (id, graph) in graphs {
            if graph.dump(&self.path(id))? {
                written += 1;
            }
        }
        Ok(written)
    }
}
