//! The vectors a collection's graph has not taken in yet ([`super::vectors`]): committed
//! chunks' unit vectors in sequence order, which every search scans exactly until the builder
//! inserts them.
//!
//! During a bulk load the queue is what lets an ingest be acknowledged faster than the graph
//! grows, so it can hold hundreds of thousands of vectors and its scan is on every search's
//! path. Once its collection has (or is due for) a graph, it keeps them as the graph will
//! (`int8` codes by default: a quarter of the bytes of `f32`, scored as a graph search scores
//! them); before that, a small collection's queue is its whole index and stays exact. Either
//! way the vectors sit in blocks of contiguous rows, so a scan streams through memory in one
//! vectorised pass per block instead of following a pointer per vector. Measured by `benches/rag.rs`
//! right after a bulk load of a million chunks, with 645k–677k codes queued: a search took
//! 92 ms (p50) with one boxed vector per entry, 37.6 ms with blocks, 28.5 ms with blocks
//! scanned on both cores.

use std::collections::VecDeque;

use super::graph::{Coordinates, Precision, quantise};
use super::kernels;

/// Rows per block: a builder step's worth ([`super::vectors`]), so a step mostly takes whole
/// blocks, and small enough that a partly taken block is cheap to shift.
const BLOCK_ROWS: usize = 1024;

/// One block's coordinates, row after row.
enum Rows {
    Full(Vec<f32>),
    Codes { codes: Vec<i8>, scales: Vec<f32> },
}

struct Block {
    seqs: Vec<u64>,
    rows: Rows,
}

impl Block {
    /// Empty, growing as rows come: a block reserved whole would hold 1.5 MB of `f32` for
    /// every small collection's few chunks.
    fn new(precision: Precision) -> Block {
        let rows = match precision {
            Precision::F32 => Rows::Full(Vec::new()),
            Precision::Int8 => Rows::Codes { codes: Vec::new(), scales: Vec::new() },
        };
        Block { seqs: Vec::new(), rows }
    }

    fn row(&self, at: usize, dimensions: usize) -> Coordinates {
        let range = at * dimensions..(at + 1) * dimensions;
        match &self.rows {
            Rows::Full(full) => Coordinates::Full(full[range].into()),
            Rows::Codes { codes, scales } => Coordinates::Codes { codes: codes[range].into(), scale: scales[at] },
        }
    }

    /// Drop the first `count` rows.
    fn drop_front(&mut self, count: usize, dimensions: usize) {
        self.seqs.drain(..count);
        match &mut self.rows {
            Rows::Full(full) => drop(full.drain(..count * dimensions)),
            Rows::Codes { codes, scales } => {
                codes.drain(..count * dimensions);
                scales.drain(..count);
            }
        }
    }
}

/// A collection's queued vectors, oldest first.
pub struct Queue {
    dimensions: usize,
    precision: Precision,
    blocks: VecDeque<Block>,
    len: usize,
}

impl Queue {
    pub fn new(dimensions: usize, precision: Precision) -> Queue {
        Queue { dimensions, precision, blocks: VecDeque::new(), len: 0 }
    }

    /// Bytes a queue holds per vector of `dimensions` in `precision` (its coordinates or
    /// code and scale, and its sequence number): what the ingest back-pressure counts.
    pub fn footprint(dimensions: usize, precision: Precision) -> usize {
        8 + match precision {
            Precision::F32 => dimensions * 4,
            Precision::Int8 => dimensions + 4,
        }
    }

    /// How the queue keeps vectors.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Keep every vector as an `int8` code from now on (a collection that reaches a graph of
    /// codes: until then its queue is exact).
    pub fn quantise(&mut self) {
        if self.precision == Precision::Int8 {
            return;
        }
        let dimensions = self.dimensions;
        for block in &mut self.blocks {
            if let Rows::Full(full) = &block.rows {
                let mut codes = Vec::with_capacity(full.len());
                let scales = full.chunks_exact(dimensions.max(1)).map(|row| quantise(row, &mut codes)).collect();
                block.rows = Rows::Codes { codes, scales };
            }
        }
        self.precision = Precision::Int8;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The newest queued vector's sequence number.
    pub fn last_seq(&self) -> Option<u64> {
        self.blocks.back().and_then(|block| block.seqs.last().copied())
    }

    /// Append a vector of the queue's width (the caller checks it), quantised if the queue
    /// keeps codes.
    pub fn push(&mut self, seq: u64, vector: &[f32]) {
        let block = self.back_with_room();
        block.seqs.push(seq);
        match &mut block.rows {
            Rows::Full(full) => full.extend_from_slice(vector),
            Rows::Codes { codes, scales } => scales.push(quantise(vector, codes)),
        }
        self.len += 1;
    }

    /// Append a vector as a dump held it: a code keeps its own scale, so it scores exactly as
    /// before the restart.
    pub fn push_row(&mut self, seq: u64, row: &Coordinates) {
        match (self.precision, row) {
            (Precision::Int8, Coordinates::Codes { codes: code, scale }) => {
                let block = self.back_with_room();
                block.seqs.push(seq);
                if let Rows::Codes { codes, scales } = &mut block.rows {
                    codes.extend_from_slice(code);
                    scales.push(*scale);
                }
                self.len += 1;
            }
            _ => self.push(seq, &row.vector()),
        }
    }

    fn back_with_room(&mut self) -> &mut Block {
        if self.blocks.back().is_none_or(|block| block.seqs.len() >= BLOCK_ROWS) {
            self.blocks.push_back(Block::new(self.precision));
        }
        let last = self.blocks.len() - 1;
        &mut self.blocks[last]
    }

    /// Copies of the oldest `limit` vectors, for the builder (it inserts them while ingests
    /// keep queueing and searches keep scanning).
    pub fn front(&self, limit: usize) -> Vec<(u64, Coordinates)> {
        self.iter().take(limit).collect()
    }

    /// Every queued vector, oldest first (dumps).
    pub fn iter(&self) -> impl Iterator<Item = (u64, Coordinates)> + '_ {
        self.blocks.iter().flat_map(move |block| {
            block.seqs.iter().enumerate().map(move |(at, seq)| (*seq, block.row(at, self.dimensions)))
        })
    }

    /// Drop the vectors up to and including sequence number `last` (now in the graph).
    pub fn drop_through(&mut self, last: u64) {
        while let Some(block) = self.blocks.front_mut() {
            let built = block.seqs.partition_point(|seq| *seq <= last);
            self.len -= built;
            if built == block.seqs.len() {
                self.blocks.pop_front();
            } else {
                block.drop_front(built, self.dimensions);
                return;
            }
        }
    }

    /// The `k` queued vectors most similar to the unit `query`, as `(seq, cosine similarity)`
    /// in no particular order; scores as a graph search gives them (within [-1, 1]).
    ///
    /// A long queue is scanned on every core (rayon's shared pool, at normal priority): right
    /// after a bulk load the builder's niced threads have the cores, and a search should not
    /// wait for them. Measured by `benches/rag.rs` ("right after the ingest").
    pub fn scan(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let scan = |(mut best, mut scores): (Vec<(u64, f32)>, Vec<f32>), block: &Block| {
            scores.clear();
            match &block.rows {
                Rows::Full(full) => kernels::scan_f32(query, full, &mut scores),
                Rows::Codes { codes, scales } => kernels::scan_f32_i8(query, codes, scales, &mut scores),
            }
            best.extend(block.seqs.iter().zip(&scores).map(|(seq, score)| (*seq, score.clamp(-1.0, 1.0))));
            // Keep the best k of what was scanned so far, not every score.
            if best.len() > k.max(BLOCK_ROWS) {
                keep_best(&mut best, k);
            }
            (best, scores)
        };
        let start = || (Vec::with_capacity(k + BLOCK_ROWS), Vec::with_capacity(BLOCK_ROWS));
        let mut best = if self.len >= PARALLEL_SCAN_FROM {
            use rayon::prelude::*;
            self.blocks.par_iter().fold(start, scan).map(|(best, _)| best).reduce(Vec::new, |mut a, b| {
                a.extend(b);
                keep_best(&mut a, k);
                a
            })
        } else {
            self.blocks.iter().fold(start(), scan).0
        };
        keep_best(&mut best, k);
        best
    }
}

/// Queues at least this long are scanned in parallel ([`Queue::scan`]): below it (a few
/// milliseconds of scanning) handing blocks to other threads costs more than it saves.
const PARALLEL_SCAN_FROM: usize = 32 * BLOCK_ROWS;

/// Cut `scored` down to its `k` best, in no particular order.
fn keep_best(scored: &mut Vec<(u64, f32)>, k: usize) {
    if scored.len() > k {
        scored.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rag::graph::tests::vectors;
    use crate::rag::kernels::dot;

    fn unit(v: &[f32]) -> Vec<f32> {
        let norm = dot(v, v).sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn blocks_keep_order_through_pushes_partial_takes_and_scans() {
        for precision in [Precision::F32, Precision::Int8] {
            let points: Vec<Vec<f32>> = vectors(2_500, 12, 4).iter().map(|v| unit(v)).collect();
            let mut queue = Queue::new(12, precision);
            for (i, v) in points.iter().enumerate() {
                queue.push(i as u64 * 2 + 1, v);
            }
            assert_eq!((queue.len(), queue.last_seq()), (2_500, Some(4_999)));
            let front = queue.front(3);
            assert_eq!(front.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 3, 5]);
            // Through the middle of the second block: the rest stays, in order.
            queue.drop_through(2_999);
            assert_eq!(queue.len(), 1_000);
            let seqs: Vec<u64> = queue.iter().map(|(seq, _)| seq).collect();
            assert_eq!(seqs, (1_500..2_500).map(|i| i as u64 * 2 + 1).collect::<Vec<_>>());
            // The scan finds what an exact search of what is left finds, scored alike.
            let query = unit(&vectors(1, 12, 77)[0]);
            let mut found = queue.scan(&query, 10);
            found.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut exact: Vec<(u64, f32)> = queue.iter().map(|(seq, row)| (seq, row.similarity(&query))).collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            exact.truncate(10);
            assert_eq!(found.len(), 10);
            for (got, want) in found.iter().zip(&exact) {
                assert!((got.1 - want.1).abs() < 1e-5, "{precision:?}: {got:?} {want:?}");
            }
            queue.drop_through(u64::MAX);
            assert!(queue.is_empty() && queue.last_seq().is_none() && queue.scan(&query, 10).is_empty());
        }
    }

    #[test]
    fn a_long_queue_scanned_in_parallel_finds_the_exact_top_k() {
        let dimensions = 8;
        let points: Vec<Vec<f32>> =
            vectors(PARALLEL_SCAN_FROM + 3_000, dimensions, 8).iter().map(|v| unit(v)).collect();
        let mut queue = Queue::new(dimensions, Precision::F32);
        for (i, v) in points.iter().enumerate() {
            queue.push(i as u64, v);
        }
        let query = unit(&vectors(1, dimensions, 5)[0]);
        let mut found: Vec<u64> = queue.scan(&query, 10).into_iter().map(|(seq, _)| seq).collect();
        let mut exact: Vec<(u64, f32)> = points.iter().enumerate().map(|(i, v)| (i as u64, dot(&query, v))).collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut truth: Vec<u64> = exact.iter().take(10).map(|(seq, _)| *seq).collect();
        found.sort_unstable();
        truth.sort_unstable();
        assert_eq!(found, truth);
    }

    #[test]
    fn quantising_an_exact_queue_keeps_its_order_and_scores_within_the_rounding() {
        let points: Vec<Vec<f32>> = vectors(1_500, 16, 6).iter().map(|v| unit(v)).collect();
        let mut queue = Queue::new(16, Precision::F32);
        for (i, v) in points.iter().enumerate() {
            queue.push(i as u64 + 1, v);
        }
        let query = unit(&vectors(1, 16, 9)[0]);
        let exact = queue.scan(&query, 1_500);
        queue.quantise();
        queue.push(1_501, &points[0]);
        assert_eq!((queue.precision(), queue.len()), (Precision::Int8, 1_501));
        assert!(queue.iter().all(|(_, row)| matches!(row, Coordinates::Codes { .. })));
        let seqs: Vec<u64> = queue.iter().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, (1..=1_501).collect::<Vec<u64>>());
        let coded: std::collections::HashMap<u64, f32> = queue.scan(&query, 1_501).into_iter().collect();
        for (seq, score) in exact {
            assert!((coded[&seq] - score).abs() < 0.02, "{seq}: {} vs {score}", coded[&seq]);
        }
    }

    #[test]
    fn a_code_pushed_back_from_a_dump_scores_exactly_as_before() {
        let v = unit(&vectors(1, 16, 3)[0]);
        let mut queue = Queue::new(16, Precision::Int8);
        queue.push(1, &v);
        let (_, row) = queue.front(1).remove(0);
        let mut reloaded = Queue::new(16, Precision::Int8);
        reloaded.push_row(1, &row);
        assert_eq!(queue.scan(&v, 1), reloaded.scan(&v, 1));
    }
}
