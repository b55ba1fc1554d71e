//! A hierarchical navigable small world graph (HNSW, Malkov & Yashunin) over cosine similarity,
//! written for this server instead of taken from hnsw_rs.
//!
//! hnsw_rs kept every point as an `Arc` holding its own `Vec<f32>` and every neighbour list as
//! `Arc`s behind a lock per layer: at a million 384-dimension chunks the process held 3.6× the
//! raw vector bytes, built 1,000–1,400 vectors/s on two cores, and reloaded a dump by rebuilding
//! all of that object by object. Here the coordinates of all points are one flat array —
//! optionally quantised to `int8` with a scale per vector, a quarter of the bytes, which also
//! makes each distance four times cheaper to read from memory — and the bottom layer's links are
//! one flat array too (the upper layers' are one small vector per layer behind the node's lock).
//! Dumps are the same arrays written out. The dot products run on the CPU's widest vector
//! instructions (`kernels`), and a node's neighbours are scored in one batch whose rows are
//! prefetched first: at 100k vectors a build spends most of its time waiting on memory.
//!
//! Concurrency: appending nodes takes the write side of one `RwLock`, once per build step
//! while its vectors are copied in; inserting their links and searching take the read side,
//! so both run in parallel. An insert locks one node's links at a time, never two, so it
//! cannot deadlock. A search reads the bottom layer's links (one flat array of atomics) without
//! a lock, and copies an upper layer's out under the node's lock. A search may meet a node
//! whose links are still being written, which costs it at most that node's neighbourhood, as
//! in every concurrent HNSW.
//!
//! Reachability: pruning a full list can remove a node's last in-link, and then no search finds
//! it again. Bottom-layer in-link counts keep a prune from dropping a last in-link, and
//! [`Graph::repair`] reconnects what they cannot see (two nodes linked only to each other).
//!
//! Vectors are unit length (the caller scales them), so cosine distance is `1 - dot`.

use std::cell::RefCell;
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

pub use crate::config::VectorPrecision as Precision;

/// Graph shape, measured by benches/rag.rs (README "Indexing and scale"). `m` 16 with a
/// construction beam of 120: on the Rust documentation embedded with `hash` (91k chunks) a
/// search beam of 3,200 then finds 0.969 of the exact top 10 (0.977 with a construction beam
/// of 150, 0.945 with 100, 0.957 with `m` 32 and 400 at twice the build time); on 1,000
/// Gaussian clusters (100k) a beam of 64 finds 0.989 with `int8` coordinates and 1.000 with
/// `f32`, whatever the construction beam. The construction beam is what a build pays for:
/// 120 builds those clusters at 7,190 vectors/s against 5,692 at 150 (same run), and a
/// million vectors must rebuild within minutes.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Links per node on the upper layers; layer 0 keeps twice as many.
    pub m: usize,
    /// The candidate beam while inserting.
    pub ef_construction: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params { m: 16, ef_construction: 120 }
    }
}

const MAX_LEVEL: usize = 15;

/// Links a list may hold beyond its limit before the heuristic prunes it back. Nearly every
/// insert adds a link to ~32 full lists, and each prune compares every pair of candidates:
/// pruning once per 8 additions instead of on each built 100k Gaussian-cluster vectors 1.9x
/// faster (4,090 against 2,150 vectors/s) with the same recall, and the benchmark's 100k
/// `hash` chunks 1.3x faster (3,798 against 2,954), also with the same recall.
const SLACK: usize = 8;

pub use super::kernels::dot;
use super::kernels::{self, dot_f32_i8, dot_i8};

/// `v` as codes in [-127, 127] and the scale that maps them back (`v ≈ code * scale`).
pub(super) fn quantise(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let largest = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        codes.extend(std::iter::repeat_n(0, v.len()));
        return 0.0;
    }
    let scale = largest / 127.0;
    // In range by construction: |x| / scale <= 127.
    codes.extend(v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    scale
}

/// A unit vector as a graph of one precision keeps it: `f32` coordinates, or an `int8` code
/// with its scale. The queue ahead of a graph (`super::queue`) keeps vectors the same way and
/// hands them over like this, so a code is computed once and the graph takes it in as it is.
pub enum Coordinates {
    Full(Box<[f32]>),
    Codes { codes: Box<[i8]>, scale: f32 },
}

impl Coordinates {
    /// `vector` (unit length) as a graph of `precision` keeps it.
    pub fn new(vector: &[f32], precision: Precision) -> Coordinates {
        match precision {
            Precision::F32 => Coordinates::Full(vector.into()),
            Precision::Int8 => {
                let mut codes = Vec::with_capacity(vector.len());
                let scale = quantise(vector, &mut codes);
                Coordinates::Codes { codes: codes.into(), scale }
            }
        }
    }

    /// Cosine similarity of the unit `query` to these coordinates, the score a graph search
    /// gives the same point: within [-1, 1] (a code's rounding can put it a hair above 1).
    /// What tests check the queue's scan against.
    #[cfg(test)]
    pub fn similarity(&self, query: &[f32]) -> f32 {
        let similarity = match self {
            Coordinates::Full(vector) => dot(query, vector),
            Coordinates::Codes { codes, scale } => dot_f32_i8(query, codes) * scale,
        };
        similarity.clamp(-1.0, 1.0)
    }

    /// The coordinates (of a code: as it says).
    pub fn vector(&self) -> Vec<f32> {
        match self {
            Coordinates::Full(vector) => vector.to_vec(),
            Coordinates::Codes { codes, scale } => codes.iter().map(|c| f32::from(*c) * scale).collect(),
        }
    }
}

/// A query prepared for one precision.
struct Query<'a> {
    full: &'a [f32],
    codes: std::borrow::Cow<'a, [i8]>,
    scale: f32,
}

/// Distance with a total order, for the heaps.
#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Near) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Near) -> CmpOrdering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// The flat arrays: node `i`'s coordinates, sequence number and links.
struct Nodes {
    dimensions: usize,
    precision: Precision,
    /// `F32`: the coordinates, `dimensions` per node.
    full: Vec<f32>,
    /// `Int8`: the codes, `dimensions` per node, and each node's scale.
    codes: Vec<i8>,
    scales: Vec<f32>,
    seqs: Vec<u64>,
    /// The bottom layer's links, [`Nodes::base_width`] slots per node: the count, then the
    /// ids. Every search reads a node's bottom-layer links, so they are one flat array a row
    /// of which is one cache miss away, read without a lock: the lock holder writes them as
    /// atomics, and a search that reads a row mid-write sees a mix of old and new links, each
    /// a node of the graph (nodes are only appended under the write lock, which no search holds).
    base: Vec<AtomicU32>,
    /// `1 + 2m + SLACK`: a count and the most links a bottom-layer list holds.
    base_width: usize,
    /// Per node, its links on the layers above the bottom one (`[0]` is layer 1; the length is
    /// its level), and the lock every change to any of its links, bottom layer included, holds.
    links: Vec<Mutex<Vec<Vec<u32>>>>,
    /// Per node, how many bottom-layer lists link to it. Pruning never removes a node's last
    /// in-link: a node without one is unreachable, and no search can ever find it again.
    in_links: Vec<AtomicU32>,
}

impl Nodes {
    fn len(&self) -> usize {
        self.seqs.len()
    }

    fn push(&mut self, seq: u64, row: &Coordinates, level: usize, m: usize) {
        match (self.precision, row) {
            (Precision::F32, Coordinates::Full(vector)) => self.full.extend_from_slice(vector),
            (Precision::F32, codes) => self.full.extend(codes.vector()),
            (Precision::Int8, Coordinates::Codes { codes, scale }) => {
                self.codes.extend_from_slice(codes);
                self.scales.push(*scale);
            }
            (Precision::Int8, Coordinates::Full(vector)) => {
                let scale = quantise(vector, &mut self.codes);
                self.scales.push(scale);
            }
        }
        self.seqs.push(seq);
        self.base.extend((0..self.base_width).map(|_| AtomicU32::new(0)));
        self.links.push(Mutex::new((1..=level).map(|_| Vec::with_capacity(m + SLACK)).collect()));
        self.in_links.push(AtomicU32::new(0));
    }

    fn query<'a>(&self, vector: &'a [f32]) -> Query<'a> {
        let mut codes = Vec::new();
        let scale = match self.precision {
            Precision::F32 => 0.0,
            Precision::Int8 => quantise(vector, &mut codes),
        };
        Query { full: vector, codes: codes.into(), scale }
    }

    fn row(&self, node: u32) -> std::ops::Range<usize> {
        let start = node as usize * self.dimensions;
        start..start + self.dimensions
    }

    /// Distance from the query to a node, as the graph walk sees it.
    fn distance(&self, query: &Query, node: u32) -> f32 {
        let row = self.row(node);
        match self.precision {
            Precision::F32 => 1.0 - dot(query.full, &self.full[row]),
            Precision::Int8 => {
                1.0 - dot_i8(&query.codes, &self.codes[row]) as f32 * query.scale * self.scales[node as usize]
            }
        }
    }

    /// Distances from the query to each of `ids`, into `out`: [`Nodes::distance`] for a
    /// node's whole neighbourhood, vectorised once.
    fn distances(&self, query: &Query, ids: &[u32], out: &mut Vec<f32>) {
        out.clear();
        match self.precision {
            Precision::F32 => kernels::similarities_f32(query.full, &self.full, ids, out),
            Precision::Int8 => kernels::similarities_i8(&query.codes, query.scale, &self.codes, &self.scales, ids, out),
        }
        out.iter_mut().for_each(|similarity| *similarity = 1.0 - *similarity);
    }

    /// A node's coordinates (with `int8`, as its code says).
    fn vector(&self, node: u32) -> Vec<f32> {
        let row = self.row(node);
        match self.precision {
            Precision::F32 => self.full[row].to_vec(),
            Precision::Int8 => self.codes[row].iter().map(|c| f32::from(*c) * self.scales[node as usize]).collect(),
        }
    }

    /// Similarity of the full-precision query to a node: the score a search returns.
    fn similarity(&self, query: &[f32], node: u32) -> f32 {
        let row = self.row(node);
        match self.precision {
            Precision::F32 => dot(query, &self.full[row]),
            Precision::Int8 => dot_f32_i8(query, &self.codes[row]) * self.scales[node as usize],
        }
    }

    /// Node `from` as a query: distances from it as [`Nodes::between`] gives them.
    fn node_query(&self, from: u32) -> Query<'_> {
        let row = self.row(from);
        match self.precision {
            Precision::F32 => Query { full: &self.full[row], codes: Vec::new().into(), scale: 0.0 },
            Precision::Int8 => Query { full: &[], codes: self.codes[row].into(), scale: self.scales[from as usize] },
        }
    }

    /// Distance between two nodes.
    fn between(&self, a: u32, b: u32) -> f32 {
        let (ra, rb) = (self.row(a), self.row(b));
        match self.precision {
            Precision::F32 => 1.0 - dot(&self.full[ra], &self.full[rb]),
            Precision::Int8 => {
                1.0 - dot_i8(&self.codes[ra], &self.codes[rb]) as f32
                    * self.scales[a as usize]
                    * self.scales[b as usize]
            }
        }
    }

    /// A node's links on `layer`, copied into `into` (empty when it has no such layer).
    fn links_of(&self, node: u32, layer: usize, into: &mut Vec<u32>) {
        into.clear();
        if layer == 0 {
            let row = self.base_row(node);
            let count = (row[0].load(Ordering::Relaxed) as usize).min(row.len() - 1);
            into.extend(row[1..=count].iter().map(|id| id.load(Ordering::Relaxed)));
        } else if let Ok(links) = self.links[node as usize].lock()
            && let Some(list) = links.get(layer - 1)
        {
            into.extend_from_slice(list);
        }
    }

    fn base_row(&self, node: u32) -> &[AtomicU32] {
        let start = node as usize * self.base_width;
        &self.base[start..start + self.base_width]
    }

    /// Run `change` on a node's links on `layer` (nothing if it has no such layer), under the
    /// node's lock.
    fn change_links(&self, node: u32, layer: usize, change: impl FnOnce(&mut Vec<u32>)) {
        let Ok(mut links) = self.links[node as usize].lock() else { return };
        if layer > 0 {
            if let Some(list) = links.get_mut(layer - 1) {
                change(list);
            }
            return;
        }
        let mut list = Vec::with_capacity(self.base_width);
        self.links_of(node, 0, &mut list);
        change(&mut list);
        let row = self.base_row(node);
        list.truncate(row.len() - 1);
        for (slot, id) in row[1..].iter().zip(&list) {
            slot.store(*id, Ordering::Relaxed);
        }
        row[0].store(list.len() as u32, Ordering::Relaxed);
    }

    fn level(&self, node: u32) -> usize {
        self.links[node as usize].lock().map_or(0, |links| links.len())
    }
}

thread_local! {
    /// Per thread: a visit mark per node and the mark of the current search, so a search does
    /// not clear or allocate a set the size of the graph. A byte per node (a megabyte at a
    /// million nodes) stays in cache better than a wider mark; the marks are cleared once
    /// every 255 searches, when the byte wraps.
    static VISITED: RefCell<(Vec<u8>, u8)> = const { RefCell::new((Vec::new(), 0)) };
}

/// The nodes a search has seen.
struct Visited<'a> {
    marks: &'a mut [u8],
    mark: u8,
}

impl Visited<'_> {
    /// `true` the first time `node` is seen in this search.
    #[inline]
    fn first(&mut self, node: u32) -> bool {
        let slot = &mut self.marks[node as usize];
        let first = *slot != self.mark;
        *slot = self.mark;
        first
    }
}

/// Run `f` with a fresh visited set over `nodes` nodes.
fn with_visited<R>(nodes: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    VISITED.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (marks, current) = &mut *guard;
        if marks.len() < nodes {
            marks.resize(nodes, 0);
        }
        *current = current.wrapping_add(1);
        if *current == 0 {
            marks.iter_mut().for_each(|m| *m = 0);
            *current = 1;
        }
        f(&mut Visited { marks, mark: *current })
    })
}

/// The entry point: the node on the highest layer.
#[derive(Clone, Copy)]
struct Entry {
    node: u32,
    level: usize,
}

pub struct Graph {
    params: Params,
    nodes: RwLock<Nodes>,
    entry: Mutex<Option<Entry>>,
    /// Nodes inserted since the last [`Graph::repair`].
    unchecked: AtomicUsize,
}

/// The level of the node for `seq`: geometric with ratio 1/M, drawn from a hash of the sequence
/// number so the same data always builds the same shape.
fn level_for(seq: u64, m: usize) -> usize {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Uniform in (0, 1].
    let uniform = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let level = (-uniform.ln() / (m as f64).ln()).floor();
    (level as usize).min(MAX_LEVEL)
}

impl Graph {
    pub fn new(dimensions: usize, precision: Precision, params: Params) -> Graph {
        Graph {
            params,
            nodes: RwLock::new(Nodes {
                dimensions,
                precision,
                full: Vec::new(),
                codes: Vec::new(),
                scales: Vec::new(),
                seqs: Vec::new(),
                base: Vec::new(),
                base_width: 1 + 2 * params.m + SLACK,
                links: Vec::new(),
                in_links: Vec::new(),
            }),
            entry: Mutex::new(None),
            unchecked: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.read().map_or(0, |nodes| nodes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn precision(&self) -> Precision {
        self.nodes.read().map_or(Precision::default(), |nodes| nodes.precision)
    }

    /// Add `points` (unit vectors of the graph's width) and link them, in parallel on `pool`.
    pub fn insert(&self, points: &[(u64, Coordinates)], pool: &rayon::ThreadPool) {
        let first = {
            let Ok(mut nodes) = self.nodes.write() else { return };
            let first = nodes.len();
            for (seq, row) in points {
                nodes.push(*seq, row, level_for(*seq, self.params.m), self.params.m);
            }
            first
        };
        let Ok(nodes) = self.nodes.read() else { return };
        let ids: Vec<u32> = (first..first + points.len()).map(|i| i as u32).collect();
        let link = |node: &u32| self.link(&nodes, *node);
        if ids.len() > 16 {
            use rayon::prelude::*;
            pool.install(|| ids.par_iter().for_each(link));
        } else {
            ids.iter().for_each(link);
        }
        drop(nodes);
        // A check walks the whole bottom layer: run when the graph has grown by a twentieth
        // since the last, so all the checks of a build cost about twenty walks of the final
        // graph (at a million nodes a walk reads 40M link slots, well under a second).
        let unchecked = self.unchecked.fetch_add(points.len(), Ordering::Relaxed) + points.len();
        if unchecked * 20 >= self.len() {
            self.repair();
        }
    }

    /// [`Graph::repair`], if nodes were inserted since the last one (a dump's check: a walk
    /// of a million nodes is not worth repeating at every periodic dump of an unchanged graph).
    pub fn repair_if_unchecked(&self) -> usize {
        if self.unchecked.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.repair()
    }

    /// Reconnect the nodes a search can no longer reach, and return how many there were.
    ///
    /// In-link counts keep pruning from cutting off a single node, but two nodes can still
    /// end up linked only to each other once every other list has pruned them (seen in about
    /// 2 of 3,000 nodes built in parallel). So a walk from the entry point over the bottom
    /// layer, where every search ends, finds what it cannot reach, and the nearest reachable
    /// node found by searching for each such node's own vector links to it. Called as the
    /// graph grows and before it is written out, so a dump never holds an unreachable node.
    pub fn repair(&self) -> usize {
        let Ok(nodes) = self.nodes.read() else { return 0 };
        let Some(entry) = self.entry.lock().ok().and_then(|entry| *entry) else { return 0 };
        self.unchecked.store(0, Ordering::Relaxed);
        let mut seen = vec![false; nodes.len()];
        let mut links = Vec::new();
        let mut walk = |from: u32, seen: &mut Vec<bool>| {
            let mut queue = vec![from];
            seen[from as usize] = true;
            while let Some(node) = queue.pop() {
                nodes.links_of(node, 0, &mut links);
                for &next in &links {
                    if !std::mem::replace(&mut seen[next as usize], true) {
                        queue.push(next);
                    }
                }
            }
        };
        walk(entry.node, &mut seen);
        let cut_off: Vec<u32> = (0..nodes.len() as u32).filter(|node| !seen[*node as usize]).collect();
        let room = 2 * self.params.m + SLACK;
        let mut repaired = 0;
        for node in cut_off {
            if seen[node as usize] {
                continue; // reached through one repaired before it
            }
            let vector = nodes.vector(node);
            let query = nodes.query(&vector);
            let start = descend(&nodes, &query, entry, 1);
            let found = search_layer(&nodes, &query, &[start], self.params.ef_construction, 0);
            let Some(nearest) = found.iter().find(|near| near.1 != node && seen[near.1 as usize]) else { continue };
            let mut linked = false;
            nodes.change_links(nearest.1, 0, |list| {
                if !list.contains(&node) && make_room(&nodes, list, room) {
                    list.push(node);
                    nodes.in_links[node as usize].fetch_add(1, Ordering::Relaxed);
                    linked = true;
                }
            });
            if linked {
                repaired += 1;
                walk(node, &mut seen);
            }
        }
        repaired
    }

    /// Connect a node already in the arrays to the graph.
    fn link(&self, nodes: &Nodes, node: u32) {
        let level = nodes.level(node);
        let entry = match self.entry.lock() {
            Ok(mut entry) => match *entry {
                Some(current) => current,
                None => {
                    *entry = Some(Entry { node, level });
                    return;
                }
            },
            Err(_) => return,
        };
        // Its own stored row as the query: what every later distance to it will be.
        let query = nodes.node_query(node);
        let mut entries = vec![descend(nodes, &query, entry, level + 1)];
        for layer in (0..=level.min(entry.level)).rev() {
            let found = search_layer(nodes, &query, &entries, self.params.ef_construction, layer);
            let limit = if layer == 0 { 2 * self.params.m } else { self.params.m };
            let chosen = select(nodes, &found, limit);
            nodes.change_links(node, layer, |list| relink(nodes, list, &chosen, layer, limit + SLACK));
            for near in &chosen {
                add_link(nodes, near.1, Near(near.0, node), layer, limit);
            }
            // Every neighbour may have pruned the new node away again: then the nearest keeps it.
            if layer == 0
                && nodes.in_links[node as usize].load(Ordering::Relaxed) == 0
                && let Some(nearest) = chosen.first()
            {
                nodes.change_links(nearest.1, 0, |list| {
                    if !list.contains(&node) && make_room(nodes, list, limit + SLACK) {
                        list.push(node);
                        nodes.in_links[node as usize].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            entries = found;
        }
        if level > entry.level
            && let Ok(mut entry) = self.entry.lock()
            && entry.is_none_or(|current| level > current.level)
        {
            *entry = Some(Entry { node, level });
        }
    }

    /// The `k` nearest nodes to the unit vector `query` as `(seq, cosine similarity)`, best
    /// first, searching with a beam of `ef`.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(u64, f32)> {
        let Ok(nodes) = self.nodes.read() else { return Vec::new() };
        let Some(entry) = self.entry.lock().ok().and_then(|entry| *entry) else { return Vec::new() };
        if query.len() != nodes.dimensions || k == 0 {
            return Vec::new();
        }
        let prepared = nodes.query(query);
        let current = descend(&nodes, &prepared, entry, 1);
        // A beam wider than the graph visits nothing more (and `[rag].search_beam` is unbounded).
        let found = search_layer(&nodes, &prepared, &[current], ef.max(k).min(nodes.len()), 0);
        // Scored again with the full-precision query: with int8 codes the walk's distances are
        // approximate, and the final order should not be. A code's rounding can put a
        // vector's similarity to itself a hair above 1; a cosine is shown within [-1, 1].
        let mut scored: Vec<(u64, f32)> = found
            .iter()
            .map(|near| (nodes.seqs[near.1 as usize], nodes.similarity(query, near.1).clamp(-1.0, 1.0)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }

    /// Write the graph to `out` (the dump format: [`Graph::read`]).
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let nodes = self.nodes.read().map_err(|_| std::io::Error::other("graph lock poisoned"))?;
        let entry = self.entry.lock().map_err(|_| std::io::Error::other("graph lock poisoned"))?;
        let (entry_node, entry_level) = entry.map_or((u32::MAX, 0), |e| (e.node, e.level as u32));
        out.write_all(MAGIC)?;
        for value in [
            nodes.dimensions as u64,
            nodes.len() as u64,
            self.params.m as u64,
            self.params.ef_construction as u64,
            u64::from(entry_node),
            u64::from(entry_level),
        ] {
            out.write_all(&value.to_le_bytes())?;
        }
        out.write_all(&[match nodes.precision {
            Precision::F32 => 0,
            Precision::Int8 => 1,
        }])?;
        for seq in &nodes.seqs {
            out.write_all(&seq.to_le_bytes())?;
        }
        match nodes.precision {
            Precision::F32 => {
                for x in &nodes.full {
                    out.write_all(&x.to_le_bytes())?;
                }
            }
            Precision::Int8 => {
                out.write_all(&nodes.codes.iter().map(|c| *c as u8).collect::<Vec<u8>>())?;
                for scale in &nodes.scales {
                    out.write_all(&scale.to_le_bytes())?;
                }
            }
        }
        let (mut buffer, mut base) = (Vec::new(), Vec::new());
        for (node, upper) in nodes.links.iter().enumerate() {
            let upper = upper.lock().map_err(|_| std::io::Error::other("graph lock poisoned"))?;
            nodes.links_of(node as u32, 0, &mut base);
            buffer.clear();
            buffer.push(upper.len() as u8 + 1);
            for list in std::iter::once(&base).chain(upper.iter()) {
                buffer.extend_from_slice(&(list.len() as u16).to_le_bytes());
                list.iter().for_each(|id| buffer.extend_from_slice(&id.to_le_bytes()));
            }
            out.write_all(&buffer)?;
        }
        Ok(())
    }

    /// Read a dump written by [`Graph::write`]; `None` if it is malformed in any way (every
    /// count and link is checked, so a damaged file is rejected, never trusted).
    pub fn read(bytes: &[u8], dimensions: usize) -> Option<Graph> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let stored_dimensions = usize::try_from(reader.u64()?).ok()?;
        let count = usize::try_from(reader.u64()?).ok()?;
        let m = usize::try_from(reader.u64()?).ok()?;
        let ef_construction = usize::try_from(reader.u64()?).ok()?;
        let entry_node = reader.u64()?;
        let entry_level = usize::try_from(reader.u64()?).ok()?;
        let precision = match reader.take(1)?[0] {
            0 => Precision::F32,
            1 => Precision::Int8,
            _ => return None,
        };
        if stored_dimensions != dimensions || count > u32::MAX as usize || m == 0 || m > 1024 {
            return None;
        }
        let seqs: Vec<u64> = reader
            .take(count.checked_mul(8)?)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let values = count.checked_mul(dimensions)?;
        let (mut full, mut codes, mut scales) = (Vec::new(), Vec::new(), Vec::new());
        match precision {
            Precision::F32 => {
                full = reader
                    .take(values.checked_mul(4)?)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
            }
            Precision::Int8 => {
                codes = reader.take(values)?.iter().map(|b| *b as i8).collect();
                scales = reader
                    .take(count.checked_mul(4)?)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
            }
        }
        let base_width = 1 + 2 * m + SLACK;
        let mut base = Vec::with_capacity(count.checked_mul(base_width)?);
        let mut links = Vec::with_capacity(count);
        for _ in 0..count {
            let layers = usize::from(reader.take(1)?[0]);
            if layers == 0 || layers > MAX_LEVEL + 1 {
                return None;
            }
            let mut node = Vec::with_capacity(layers);
            for layer in 0..layers {
                let len = usize::from(u16::from_le_bytes(reader.take(2)?.try_into().ok()?));
                let limit = (if layer == 0 { 2 * m } else { m }) + SLACK;
                if len > limit {
                    return None;
                }
                let mut list = Vec::with_capacity(limit);
                for id in reader.take(len * 4)?.chunks_exact(4) {
                    let id = u32::from_le_bytes(id.try_into().ok()?);
                    if id as usize >= count {
                        return None;
                    }
                    list.push(id);
                }
                if layer == 0 {
                    base.push(AtomicU32::new(list.len() as u32));
                    base.extend(list.iter().map(|id| AtomicU32::new(*id)));
                    base.extend((list.len()..base_width - 1).map(|_| AtomicU32::new(0)));
                } else {
                    node.push(list);
                }
            }
            links.push(Mutex::new(node));
        }
        if reader.at != bytes.len() {
            return None;
        }
        let entry = match (count, u32::try_from(entry_node).ok()) {
            (0, _) => None,
            (_, Some(node)) if (node as usize) < count => {
                let level = links[node as usize].lock().ok()?.len();
                (level == entry_level).then_some(Entry { node, level })?;
                Some(Entry { node, level })
            }
            _ => return None,
        };
        let in_links: Vec<AtomicU32> = (0..count).map(|_| AtomicU32::new(0)).collect();
        for row in base.chunks_exact(base_width) {
            for id in &row[1..=row[0].load(Ordering::Relaxed) as usize] {
                in_links[id.load(Ordering::Relaxed) as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(Graph {
            params: Params { m, ef_construction },
            nodes: RwLock::new(Nodes {
                dimensions,
                precision,
                full,
                codes,
                scales,
                seqs,
                base,
                base_width,
                links,
                in_links,
            }),
            entry: Mutex::new(entry),
            unchecked: AtomicUsize::new(count),
        })
    }
}

const MAGIC: &[u8; 8] = b"ARESHNS1";

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// From the entry point greedily down the upper layers to `lowest`: the nearest node found.
fn descend(nodes: &Nodes, query: &Query, entry: Entry, lowest: usize) -> Near {
    let mut scratch = Vec::new();
    let mut current = Near(nodes.distance(query, entry.node), entry.node);
    for layer in (lowest..=entry.level).rev() {
        current = greedy(nodes, query, current, layer, &mut scratch);
    }
    current
}

/// Walk `layer` greedily from `start` to the nearest node it can reach.
fn greedy(nodes: &Nodes, query: &Query, start: Near, layer: usize, scratch: &mut Vec<u32>) -> Near {
    let mut current = start;
    let mut distances = Vec::with_capacity(scratch.capacity());
    loop {
        let mut moved = false;
        nodes.links_of(current.1, layer, scratch);
        nodes.distances(query, scratch, &mut distances);
        for (&next, &distance) in scratch.iter().zip(&distances) {
            if distance < current.0 {
                current = Near(distance, next);
                moved = true;
            }
        }
        if !moved {
            return current;
        }
    }
}

/// The `ef` nearest nodes on `layer` reachable from `entries`, nearest first.
fn search_layer(nodes: &Nodes, query: &Query, entries: &[Near], ef: usize, layer: usize) -> Vec<Near> {
    with_visited(nodes.len(), |visited| {
        let reserve = ef.min(4_096);
        let mut candidates: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::with_capacity(reserve * 2);
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(reserve + 1);
        for &entry in entries {
            if visited.first(entry.1) {
                candidates.push(std::cmp::Reverse(entry));
                best.push(entry);
            }
        }
        while best.len() > ef {
            best.pop();
        }
        let (mut scratch, mut unvisited, mut distances) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(std::cmp::Reverse(candidate)) = candidates.pop() {
            if best.len() >= ef && best.peek().is_some_and(|worst| candidate.0 > worst.0) {
                break;
            }
            // The next candidate's links are read next: start loading them now.
            if layer == 0
                && let Some(std::cmp::Reverse(next)) = candidates.peek()
            {
                kernels::prefetch(nodes.base_row(next.1));
            }
            nodes.links_of(candidate.1, layer, &mut scratch);
            unvisited.clear();
            unvisited.extend(scratch.iter().copied().filter(|&next| visited.first(next)));
            nodes.distances(query, &unvisited, &mut distances);
            for (&next, &distance) in unvisited.iter().zip(&distances) {
                if best.len() < ef || best.peek().is_some_and(|worst| distance < worst.0) {
                    candidates.push(std::cmp::Reverse(Near(distance, next)));
                    best.push(Near(distance, next));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        best.into_sorted_vec()
    })
}

/// Up to `limit` of `candidates` (nearest first) as neighbours, by the HNSW heuristic: a
/// candidate is kept only if it is nearer to the base than to every neighbour kept so far, so
/// links spread in all directions instead of all pointing into one cluster.
fn select(nodes: &Nodes, candidates: &[Near], limit: usize) -> Vec<Near> {
    let mut chosen: Vec<Near> = Vec::with_capacity(limit);
    for &candidate in candidates {
        if chosen.len() >= limit {
            break;
        }
        if chosen.iter().all(|kept| nodes.between(candidate.1, kept.1) > candidate.0) {
            chosen.push(candidate);
        }
    }
    chosen
}

/// Add a link from `node` to `new` on `layer`; past `limit` + [`SLACK`] links, choose `limit`
/// again among the old ones and the new one by the heuristic.
fn add_link(nodes: &Nodes, node: u32, new: Near, layer: usize, limit: usize) {
    nodes.change_links(node, layer, |list| add_to(nodes, list, node, new, layer, limit));
}

fn add_to(nodes: &Nodes, list: &mut Vec<u32>, node: u32, new: Near, layer: usize, limit: usize) {
    if list.contains(&new.1) {
        return;
    }
    if list.len() < limit + SLACK {
        list.push(new.1);
        if layer == 0 {
            nodes.in_links[new.1 as usize].fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let mut distances = Vec::with_capacity(list.len());
    nodes.distances(&nodes.node_query(node), list, &mut distances);
    let mut candidates: Vec<Near> = list.iter().zip(&distances).map(|(&other, &d)| Near(d, other)).collect();
    candidates.push(new);
    candidates.sort();
    let chosen = select(nodes, &candidates, limit);
    relink(nodes, list, &chosen, layer, limit + SLACK);
}

/// Replace a node's links on `layer` (`list`) with `chosen`, keeping the in-link counts. On
/// the bottom layer a dropped node with no other in-link stays while the list has `room`
/// (its limit + [`SLACK`], the most a dump holds): without it that node could never be found
/// again. Counts are atomic and each list is changed under its own lock, so parallel inserts
/// that drop the same node from two lists keep exactly one of its links.
fn relink(nodes: &Nodes, list: &mut Vec<u32>, chosen: &[Near], layer: usize, room: usize) {
    let old = std::mem::replace(list, chosen.iter().map(|near| near.1).collect());
    if layer != 0 {
        return;
    }
    for &id in list.iter() {
        if !old.contains(&id) {
            nodes.in_links[id as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
    for id in old {
        if list.contains(&id) {
            continue;
        }
        let count = &nodes.in_links[id as usize];
        let others = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n > 1).then(|| n - 1));
        if others.is_err() {
            if make_room(nodes, list, room) {
                list.push(id);
            } else {
                let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
            }
        }
    }
}

/// Whether a bottom-layer `list` has room for one more link, making it if the list is at
/// `room` by dropping its last link whose node has another in-link.
fn make_room(nodes: &Nodes, list: &mut Vec<u32>, room: usize) -> bool {
    if list.len() < room {
        return true;
    }
    for at in (0..list.len()).rev() {
        let count = &nodes.in_links[list[at] as usize];
        if count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n > 1).then(|| n - 1)).is_ok() {
            list.remove(at);
            return true;
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random vectors (xorshift), coordinates in [-1, 1].
    pub(crate) fn vectors(count: usize, dimensions: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed | 1;
        (0..count)
            .map(|_| {
                (0..dimensions)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % 2001) as f32 / 1000.0 - 1.0
                    })
                    .collect()
            })
            .collect()
    }

    fn unit_vectors(count: usize, dimensions: usize, seed: u64) -> Vec<Vec<f32>> {
        let scale = |v: Vec<f32>| {
            let norm = dot(&v, &v).sqrt();
            v.iter().map(|x| x / norm).collect()
        };
        vectors(count, dimensions, seed).into_iter().map(scale).collect()
    }

    /// `points` as a graph of `precision` takes them.
    fn rows(points: &[(u64, Vec<f32>)], precision: Precision) -> Vec<(u64, Coordinates)> {
        points.iter().map(|(seq, v)| (*seq, Coordinates::new(v, precision))).collect()
    }

    fn exact(points: &[(u64, Vec<f32>)], query: &[f32], k: usize) -> Vec<u64> {
        let mut scored: Vec<(u64, f32)> = points.iter().map(|(seq, v)| (*seq, dot(query, v))).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(k).map(|(seq, _)| seq).collect()
    }

    fn recall(graph: &Graph, points: &[(u64, Vec<f32>)], queries: &[Vec<f32>], ef: usize) -> f64 {
        let mut hits = 0;
        for query in queries {
            let truth = exact(points, query, 10);
            hits += graph.search(query, 10, ef).iter().filter(|(seq, _)| truth.contains(seq)).count();
        }
        hits as f64 / (queries.len() * 10) as f64
    }

    #[test]
    fn integer_kernels_match_the_plain_sums() {
        for len in [0, 1, 15, 16, 17, 384] {
            let a: Vec<i8> = (0..len).map(|i| ((i * 37) % 255) as i8).collect();
            let b: Vec<i8> = (0..len).map(|i| ((i * 91 + 5) % 255) as i8).collect();
            let plain: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            assert_eq!(dot_i8(&a, &b), plain);
            let f: Vec<f32> = a.iter().map(|x| f32::from(*x) / 10.0).collect();
            let plain: f32 = f.iter().zip(&b).map(|(x, y)| x * f32::from(*y)).sum();
            assert!((dot_f32_i8(&f, &b) - plain).abs() < 1e-2 * plain.abs().max(1.0));
        }
    }

    #[test]
    fn quantised_codes_round_trip_within_half_a_step() {
        let v = &unit_vectors(1, 384, 3)[0];
        let mut codes = Vec::new();
        let scale = quantise(v, &mut codes);
        assert!(v.iter().zip(&codes).all(|(x, c)| (x - f32::from(*c) * scale).abs() <= scale / 2.0 + 1e-6));
        let mut zero = Vec::new();
        assert_eq!(quantise(&[0.0; 4], &mut zero), 0.0);
        assert_eq!(zero, vec![0; 4]);
    }

    #[test]
    fn levels_are_deterministic_and_geometric() {
        assert_eq!(level_for(42, 16), level_for(42, 16));
        let above: usize = (0..100_000).filter(|seq| level_for(*seq, 16) > 0).count();
        // 1/16 of the nodes on layer 1 or higher, give or take.
        assert!((5_000..7_500).contains(&above), "{above}");
    }

    #[test]
    fn both_precisions_find_the_exact_neighbours_and_score_them_like_the_exact_scan() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let points: Vec<(u64, Vec<f32>)> =
            unit_vectors(3_000, 32, 5).into_iter().enumerate().map(|(i, v)| (i as u64 + 1, v)).collect();
        let queries = unit_vectors(50, 32, 99);
        for precision in [Precision::F32, Precision::Int8] {
            let graph = Graph::new(32, precision, Params::default());
            for batch in points.chunks(500) {
                graph.insert(&rows(batch, precision), &pool);
            }
            assert_eq!(graph.len(), 3_000);
            let recall = recall(&graph, &points, &queries, 200);
            assert!(recall >= 0.97, "{precision:?}: recall {recall}");
            // Each point searched by its own vector finds itself first, scored 1 (never above,
            // whatever the rounding).
            for (seq, vector) in points.iter().take(20) {
                let found = graph.search(vector, 1, 64);
                assert_eq!(found[0].0, *seq, "{precision:?}");
                assert!(found[0].1 <= 1.0 && found[0].1 > 0.99, "{precision:?}: {}", found[0].1);
            }
            // Any beam is accepted: one wider than the graph is the graph's size, and visits
            // every node, so it finds the exact top 10 (with int8 codes, up to their rounding).
            let widest = graph.search(&queries[1], 10, usize::MAX);
            let truth = exact(&points, &queries[1], 10);
            match precision {
                Precision::F32 => assert_eq!(widest.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), truth),
                Precision::Int8 => {
                    let tenth = dot(&queries[1], &points[truth[9] as usize - 1].1);
                    for (seq, _) in &widest {
                        assert!(dot(&queries[1], &points[*seq as usize - 1].1) >= tenth - 0.01, "{seq}");
                    }
                }
            }
            let found = graph.search(&queries[0], 5, 64);
            let by_seq: std::collections::HashMap<u64, &Vec<f32>> = points.iter().map(|(s, v)| (*s, v)).collect();
            for (seq, similarity) in found {
                assert!((similarity - dot(&queries[0], by_seq[&seq])).abs() < 0.01, "{precision:?}");
            }
        }
    }

    /// Nodes reachable from the entry point on the bottom layer, which every search ends on.
    fn reachable(graph: &Graph) -> usize {
        let nodes = graph.nodes.read().unwrap();
        let Some(entry) = *graph.entry.lock().unwrap() else { return 0 };
        let mut seen = vec![false; nodes.len()];
        let (mut queue, mut links) = (vec![entry.node], Vec::new());
        seen[entry.node as usize] = true;
        while let Some(node) = queue.pop() {
            nodes.links_of(node, 0, &mut links);
            for &next in &links {
                if !std::mem::replace(&mut seen[next as usize], true) {
                    queue.push(next);
                }
            }
        }
        seen.iter().filter(|s| **s).count()
    }

    /// Pruning a full list drops links, which can cut nodes off; in-link counts and the
    /// repair walk must leave none. Built in parallel, several times, since which lists are
    /// pruned when varies from run to run.
    #[test]
    fn every_node_stays_reachable() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for seed in 1..=4 {
            let points: Vec<(u64, Vec<f32>)> =
                unit_vectors(3_000, 24, seed).into_iter().enumerate().map(|(i, v)| (i as u64 + 1, v)).collect();
            for precision in [Precision::F32, Precision::Int8] {
                let graph = Graph::new(24, precision, Params { m: 8, ef_construction: 60 });
                for batch in points.chunks(300) {
                    graph.insert(&rows(batch, precision), &pool);
                }
                assert_eq!(reachable(&graph), 3_000, "seed {seed}, {precision:?}");
                assert_eq!(graph.repair(), 0, "nothing left to repair");
                let mut bytes = Vec::new();
                graph.write(&mut bytes).unwrap();
                assert_eq!(reachable(&Graph::read(&bytes, 24).unwrap()), 3_000, "read back");
            }
        }
    }

    #[test]
    fn repair_reconnects_a_node_that_no_list_links_to() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let points: Vec<(u64, Vec<f32>)> =
            unit_vectors(2_000, 24, 9).into_iter().enumerate().map(|(i, v)| (i as u64 + 1, v)).collect();
        let graph = Graph::new(24, Precision::F32, Params::default());
        graph.insert(&rows(&points, Precision::F32), &pool);
        let entry = graph.entry.lock().unwrap().unwrap().node;
        let cut = if entry == 42 { 43 } else { 42 };
        {
            let nodes = graph.nodes.read().unwrap();
            for node in 0..nodes.len() as u32 {
                nodes.change_links(node, 0, |list| list.retain(|id| *id != cut));
            }
        }
        assert!(reachable(&graph) < 2_000);
        assert_eq!(graph.repair_if_unchecked(), 0, "nothing inserted since the insert's own check");
        assert!(graph.repair() >= 1);
        assert_eq!(reachable(&graph), 2_000);
        let (seq, vector) = &points[cut as usize];
        assert_eq!(graph.search(vector, 1, 64)[0].0, *seq);
    }

    #[test]
    fn a_written_graph_reads_back_identical_and_damage_is_refused() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let points: Vec<(u64, Vec<f32>)> =
            unit_vectors(600, 16, 7).into_iter().enumerate().map(|(i, v)| (i as u64 * 3 + 1, v)).collect();
        for precision in [Precision::F32, Precision::Int8] {
            let graph = Graph::new(16, precision, Params::default());
            graph.insert(&rows(&points, precision), &pool);
            let mut bytes = Vec::new();
            graph.write(&mut bytes).unwrap();
            let loaded = Graph::read(&bytes, 16).unwrap();
            assert_eq!((loaded.len(), loaded.precision()), (600, precision));
            for query in unit_vectors(10, 16, 17) {
                assert_eq!(loaded.search(&query, 10, 50), graph.search(&query, 10, 50));
            }
            assert!(Graph::read(&bytes, 8).is_none(), "another width");
            assert!(Graph::read(&bytes[..bytes.len() - 1], 16).is_none(), "truncated");
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Graph::read(&longer, 16).is_none(), "trailing bytes");
        }
        let empty = Graph::new(4, Precision::Int8, Params::default());
        let mut bytes = Vec::new();
        empty.write(&mut bytes).unwrap();
        let loaded = Graph::read(&bytes, 4).unwrap();
        assert!(loaded.is_empty() && loaded.search(&[1.0, 0.0, 0.0, 0.0], 3, 10).is_empty());
    }
}
