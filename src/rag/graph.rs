//! A hierarchical navigable small world graph (HNSW, Malkov & Yashunin) over cosine similarity,
//! written for this server instead of taken from hnsw_rs.
//!
//! hnsw_rs kept every point as an `Arc` holding its own `Vec<f32>` and every neighbour list as
//! `Arc`s behind a lock per layer: at a million 384-dimension chunks the process held 3.6× the
//! raw vector bytes, built 1,000–1,400 vectors/s on two cores, and reloaded a dump by rebuilding
//! all of that object by object. Here the coordinates of all points are one flat array —
//! optionally quantised to `int8` with a scale per vector, a quarter of the bytes, which also
//! makes each distance four times cheaper to read from memory — and a node's links are one small
//! vector per layer behind one lock. Dumps are the same flat arrays written out.
//!
//! Concurrency: appending nodes takes the write side of one `RwLock`, once per build step
//! while its vectors are copied in; inserting their links and searching take the read side,
//! so both run in parallel. An insert locks one node's links at a time, never two, so it cannot deadlock; a
//! search copies a node's links out under its lock. A search may meet a node whose links are
//! still being written, which costs it at most that node's neighbourhood, as in every
//! concurrent HNSW.
//!
//! Vectors are unit length (the caller scales them), so cosine distance is `1 - dot`.

use std::cell::RefCell;
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io::Write;
use std::sync::{Mutex, RwLock};

pub use crate::config::VectorPrecision as Precision;

/// Graph shape, measured by benches/rag.rs (README "Indexing and scale"). `m` 16 with a
/// construction beam of 150: on the Rust documentation embedded with `hash` (91k chunks) a
/// search beam of 3,200 then finds 0.977 of the exact top 10 (0.945 with a construction beam
/// of 100, 0.957 with `m` 32 and 400 at twice the build time); on 1,000 Gaussian clusters
/// (100k) a beam of 64 finds 0.989 with `int8` coordinates and 1.000 with `f32`, whatever the
/// construction beam, which costs build speed there (measured before [`SLACK`]: 3,700 vectors/s
/// at 100, 2,055 at 150, 1,800 at 200).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Links per node on the upper layers; layer 0 keeps twice as many.
    pub m: usize,
    /// The candidate beam while inserting.
    pub ef_construction: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params { m: 16, ef_construction: 150 }
    }
}

const MAX_LEVEL: usize = 15;

/// Links a list may hold beyond its limit before the heuristic prunes it back. Nearly every
/// insert adds a link to ~32 full lists, and each prune compares every pair of candidates:
/// pruning once per 8 additions instead of on each built 100k Gaussian-cluster vectors 1.9x
/// faster (4,090 against 2,150 vectors/s) with the same recall, and the benchmark's 100k
/// `hash` chunks 1.3x faster (3,798 against 2,954), also with the same recall.
const SLACK: usize = 8;

/// Dot product with sixteen independent partial sums, which the compiler keeps in vector
/// registers (a single running sum serialises every addition).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let (whole_a, whole_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = whole_a.remainder().iter().zip(whole_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in whole_a.zip(whole_b) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Integer dot product of two codes, widened to `i32` in sixteen lanes (the compiler turns
/// this into packed multiply-adds).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 16;
    let mut sums = [0i32; LANES];
    let (whole_a, whole_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 =
        whole_a.remainder().iter().zip(whole_b.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    for (x, y) in whole_a.zip(whole_b) {
        for lane in 0..LANES {
            sums[lane] += i32::from(x[lane]) * i32::from(y[lane]);
        }
    }
    sums.iter().sum::<i32>() + tail
}

/// Full-precision query against a code: exact up to the code's own rounding.
fn dot_f32_i8(a: &[f32], b: &[i8]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let (whole_a, whole_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = whole_a.remainder().iter().zip(whole_b.remainder()).map(|(x, y)| x * f32::from(*y)).sum();
    for (x, y) in whole_a.zip(whole_b) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * f32::from(y[lane]);
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `v` as codes in [-127, 127] and the scale that maps them back (`v ≈ code * scale`).
fn quantise(v: &[f32], codes: &mut Vec<i8>) -> f32 {
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

/// A query prepared for one precision.
struct Query<'a> {
    full: &'a [f32],
    codes: Vec<i8>,
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
    /// Per node, its links per layer (`[0]` is the bottom layer; the length is its level + 1).
    links: Vec<Mutex<Vec<Vec<u32>>>>,
}

impl Nodes {
    fn len(&self) -> usize {
        self.seqs.len()
    }

    fn push(&mut self, seq: u64, vector: &[f32], level: usize, m: usize) {
        match self.precision {
            Precision::F32 => self.full.extend_from_slice(vector),
            Precision::Int8 => {
                let scale = quantise(vector, &mut self.codes);
                self.scales.push(scale);
            }
        }
        self.seqs.push(seq);
        let layers =
            (0..=level).map(|layer| Vec::with_capacity((if layer == 0 { 2 * m } else { m }) + SLACK)).collect();
        self.links.push(Mutex::new(layers));
    }

    fn query<'a>(&self, vector: &'a [f32]) -> Query<'a> {
        let mut codes = Vec::new();
        let scale = match self.precision {
            Precision::F32 => 0.0,
            Precision::Int8 => quantise(vector, &mut codes),
        };
        Query { full: vector, codes, scale }
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

    /// Similarity of the full-precision query to a node: the score a search returns.
    fn similarity(&self, query: &[f32], node: u32) -> f32 {
        let row = self.row(node);
        match self.precision {
            Precision::F32 => dot(query, &self.full[row]),
            Precision::Int8 => dot_f32_i8(query, &self.codes[row]) * self.scales[node as usize],
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
        if let Ok(links) = self.links[node as usize].lock()
            && let Some(list) = links.get(layer)
        {
            into.extend_from_slice(list);
        }
    }

    fn level(&self, node: u32) -> usize {
        self.links[node as usize].lock().map_or(0, |links| links.len().saturating_sub(1))
    }
}

thread_local! {
    /// Per thread: a visit mark per node and the mark of the current search, so a search does
    /// not clear or allocate a set the size of the graph.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Run `f` with a fresh visited set over `nodes` nodes.
fn with_visited<R>(nodes: usize, f: impl FnOnce(&mut dyn FnMut(u32) -> bool) -> R) -> R {
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
        let mark = *current;
        // `true` the first time a node is seen in this search.
        let mut first_visit = |node: u32| {
            let slot = &mut marks[node as usize];
            let first = *slot != mark;
            *slot = mark;
            first
        };
        f(&mut first_visit)
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
                links: Vec::new(),
            }),
            entry: Mutex::new(None),
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
    pub fn insert(&self, points: &[(u64, Vec<f32>)], pool: &rayon::ThreadPool) {
        let first = {
            let Ok(mut nodes) = self.nodes.write() else { return };
            let first = nodes.len();
            for (seq, vector) in points {
                nodes.push(*seq, vector, level_for(*seq, self.params.m), self.params.m);
            }
            first
        };
        let Ok(nodes) = self.nodes.read() else { return };
        let ids: Vec<u32> = (first..first + points.len()).map(|i| i as u32).collect();
        let link = |node: &u32| self.link(&nodes, *node, &points[*node as usize - first].1);
        if ids.len() > 16 {
            use rayon::prelude::*;
            pool.install(|| ids.par_iter().for_each(link));
        } else {
            ids.iter().for_each(link);
        }
    }

    /// Connect a node already in the arrays to the graph.
    fn link(&self, nodes: &Nodes, node: u32, vector: &[f32]) {
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
        let query = nodes.query(vector);
        let mut scratch = Vec::new();
        let mut current = Near(nodes.distance(&query, entry.node), entry.node);
        for layer in (level + 1..=entry.level).rev() {
            current = greedy(nodes, &query, current, layer, &mut scratch);
        }
        let mut entries = vec![current];
        for layer in (0..=level.min(entry.level)).rev() {
            let found = search_layer(nodes, &query, &entries, self.params.ef_construction, layer);
            let limit = if layer == 0 { 2 * self.params.m } else { self.params.m };
            let chosen = select(nodes, &found, limit);
            if let Ok(mut links) = nodes.links[node as usize].lock()
                && let Some(list) = links.get_mut(layer)
            {
                list.clear();
                list.extend(chosen.iter().map(|near| near.1));
            }
            for near in &chosen {
                add_link(nodes, near.1, Near(near.0, node), layer, limit);
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
        let mut scratch = Vec::new();
        let mut current = Near(nodes.distance(&prepared, entry.node), entry.node);
        for layer in (1..=entry.level).rev() {
            current = greedy(&nodes, &prepared, current, layer, &mut scratch);
        }
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
        let mut buffer = Vec::new();
        for links in &nodes.links {
            let links = links.lock().map_err(|_| std::io::Error::other("graph lock poisoned"))?;
            buffer.clear();
            buffer.push(links.len() as u8);
            for list in links.iter() {
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
                node.push(list);
            }
            links.push(Mutex::new(node));
        }
        if reader.at != bytes.len() {
            return None;
        }
        let entry = match (count, u32::try_from(entry_node).ok()) {
            (0, _) => None,
            (_, Some(node)) if (node as usize) < count => {
                let level = links[node as usize].lock().ok()?.len() - 1;
                (level == entry_level).then_some(Entry { node, level })?;
                Some(Entry { node, level })
            }
            _ => return None,
        };
        Some(Graph {
            params: Params { m, ef_construction },
            nodes: RwLock::new(Nodes {
                dimensions,
                precision,
                full,
                codes,
                scales,
                seqs,
                links: links.into_iter().collect(),
            }),
            entry: Mutex::new(entry),
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

/// Walk `layer` greedily from `start` to the nearest node it can reach.
fn greedy(nodes: &Nodes, query: &Query, start: Near, layer: usize, scratch: &mut Vec<u32>) -> Near {
    let mut current = start;
    loop {
        let mut moved = false;
        nodes.links_of(current.1, layer, scratch);
        for &next in scratch.iter() {
            let distance = nodes.distance(query, next);
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
    with_visited(nodes.len(), |first_visit| {
        let reserve = ef.min(4_096);
        let mut candidates: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::with_capacity(reserve * 2);
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(reserve + 1);
        for &entry in entries {
            if first_visit(entry.1) {
                candidates.push(std::cmp::Reverse(entry));
                best.push(entry);
            }
        }
        while best.len() > ef {
            best.pop();
        }
        let mut scratch = Vec::new();
        while let Some(std::cmp::Reverse(candidate)) = candidates.pop() {
            if best.len() >= ef && best.peek().is_some_and(|worst| candidate.0 > worst.0) {
                break;
            }
            nodes.links_of(candidate.1, layer, &mut scratch);
            for &next in &scratch {
                if !first_visit(next) {
                    continue;
                }
                let distance = nodes.distance(query, next);
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
    let Ok(mut links) = nodes.links[node as usize].lock() else { return };
    let Some(list) = links.get_mut(layer) else { return };
    if list.contains(&new.1) {
        return;
    }
    if list.len() < limit + SLACK {
        list.push(new.1);
        return;
    }
    let mut candidates: Vec<Near> = list.iter().map(|&other| Near(nodes.between(node, other), other)).collect();
    candidates.push(new);
    candidates.sort();
    let chosen = select(nodes, &candidates, limit);
    list.clear();
    list.extend(chosen.iter().map(|near| near.1));
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
                graph.insert(batch, &pool);
            }
            assert_eq!(graph.len(), 3_000);
            let recall = recall(&graph, &points, &queries, 200);
            assert!(recall >= 0.97, "{precision:?}: recall {recall}");
            // No score above 1, whatever the rounding: a point searched by its own vector.
            // (That it comes first is not asserted: pruning can leave a node without in-links,
            // and parallel inserts make which one vary from run to run.)
            for (_, vector) in points.iter().take(20) {
                let found = graph.search(vector, 1, 64);
                assert!(found[0].1 <= 1.0, "{precision:?}: {}", found[0].1);
            }
            // Any beam is accepted: one wider than the graph is capped at the graph's size.
            assert_eq!(graph.search(&queries[1], 10, usize::MAX).len(), 10);
            let found = graph.search(&queries[0], 5, 64);
            let by_seq: std::collections::HashMap<u64, &Vec<f32>> = points.iter().map(|(s, v)| (*s, v)).collect();
            for (seq, similarity) in found {
                assert!((similarity - dot(&queries[0], by_seq[&seq])).abs() < 0.01, "{precision:?}");
            }
        }
    }

    #[test]
    fn a_written_graph_reads_back_identical_and_damage_is_refused() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let points: Vec<(u64, Vec<f32>)> =
            unit_vectors(600, 16, 7).into_iter().enumerate().map(|(i, v)| (i as u64 * 3 + 1, v)).collect();
        for precision in [Precision::F32, Precision::Int8] {
            let graph = Graph::new(16, precision, Params::default());
            graph.insert(&points, &pool);
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
