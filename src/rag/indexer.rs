//! Making committed chunks searchable, in rounds shared by every writer.
//!
//! Chunks are committed to redb (the source of truth) first; [`Indexer::flush`] then makes
//! everything committed so far searchable. A flush does not index "its caller's" chunks: the
//! first caller to find no round running becomes the leader and runs one for everyone — it reads, in one redb snapshot, every chunk past the
//! indexed position and the collections deleted since, adds them to the lexical index in one
//! tantivy commit (whose payload carries the new position, the watermark start-up replays
//! from), queues their vectors on their collections' graphs ([`super::vectors`]), and removes
//! what was deleted. Callers that arrive while a round runs wait, and the next leader takes all
//! of them at once: with many concurrent ingests, a tantivy commit and its fsync are paid per
//! round, not per request.
//!
//! An ingest does not wait for its round: it notes what it committed and returns
//! ([`Indexer::advance`] leads a round only when none is running). A search makes the indexes
//! current for its collection first ([`Indexer::catch_up`]), so whatever was acknowledged
//! before a search began is in its answer — the indexes refresh on read, and a bulk load pays a
//! tantivy commit per round of many requests instead of waiting for one per request. A search
//! of a collection with nothing pending does not wait at all: one user's 10 MB ingest, indexed
//! round after round, used to hold every other search on the server for as long as each round
//! took (seconds, on a busy machine). An ingest does wait once the lexical index has fallen
//! [`MAX_LAG`] chunks behind, which bounds what a search may have to wait for.
//!
//! Following redb's sequence numbers instead of each request's own chunks keeps the watermark
//! exact whatever order concurrent ingests commit in: a round holds every chunk up to its
//! position, because sequence numbers are handed out in commit order. Deletions (rolled-back
//! ingests, deleted collections) go through rounds too, after the additions they may undo.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use crate::store::Store;
use crate::store::rag as rag_store;

use super::RagError;
use super::lexical::{LexicalDoc, LexicalIndex};
use super::vectors::VectorIndexes;

/// Chunks read per round: about 20 MB of text and embeddings at most.
const ROUND_LIMIT: usize = 8192;

/// Chunks committed but not yet indexed past which an ingest waits for the indexes: about
/// two rounds, so a search never waits for more than that.
pub const MAX_LAG: u64 = 2 * ROUND_LIMIT as u64;

pub struct Indexer {
    state: Mutex<State>,
    /// Signalled whenever a round ends.
    rounds: Condvar,
    /// The highest chunk sequence number an ingest of this process committed.
    committed: AtomicU64,
}

struct State {
    /// Every chunk up to this sequence number is searchable.
    position: u64,
    /// Flushes asked for so far; each waits for a round that began after it asked.
    requested: u64,
    /// The highest request a completed round covered (it began after the request and drained
    /// everything committed).
    covered: u64,
    running: bool,
    /// Chunks of rolled-back ingests to drop from the lexical index in the next round.
    removals: Vec<u64>,
    /// For each collection with chunks past `position`, the highest sequence number an ingest
    /// committed to it: what a search of that collection has to wait for. Entries the position
    /// has passed are dropped after each round.
    pending: HashMap<u64, u64>,
}

impl Indexer {
    /// An indexer whose indexes hold every chunk up to `position` (after start-up catch-up).
    pub fn new(position: u64) -> Indexer {
        Indexer {
            state: Mutex::new(State {
                position,
                requested: 0,
                covered: 0,
                running: false,
                removals: Vec::new(),
                pending: HashMap::new(),
            }),
            rounds: Condvar::new(),
            committed: AtomicU64::new(position),
        }
    }

    /// After an ingest committed chunks of `collection_id` up to `seq`: index them unless a
    /// round is already running (its leader, or the next search, takes them), and wait only
    /// when the indexes are [`MAX_LAG`] chunks behind.
    pub fn advance(
        &self,
        collection_id: u64,
        seq: u64,
        store: &Store,
        lexical: &LexicalIndex,
        vectors: &VectorIndexes,
    ) -> Result<(), RagError> {
        let committed = self.committed.fetch_max(seq, Ordering::AcqRel).max(seq);
        let (running, position) = self.note_committed(collection_id, seq)?;
        let behind = committed.saturating_sub(position);
        if behind > MAX_LAG || (!running && behind > 0) {
            return self.flush(store, lexical, vectors);
        }
        Ok(())
    }

    /// Everything acknowledged so far in the indexes (the periodic persist). Free when nothing
    /// is pending (deletions and rollbacks flush when they happen).
    pub fn catch_up_all(&self, store: &Store, lexical: &LexicalIndex, vectors: &VectorIndexes) -> Result<(), RagError> {
        let position = self.state.lock().map_err(|_| poisoned())?.position;
        if self.committed.load(Ordering::Acquire) > position {
            return self.flush(store, lexical, vectors);
        }
        Ok(())
    }

    /// Before a search of `collection_id`: everything acknowledged so far for it in the
    /// indexes. Free when none of its chunks are pending, whatever other collections have.
    pub fn catch_up(
        &self,
        collection_id: u64,
        store: &Store,
        lexical: &LexicalIndex,
        vectors: &VectorIndexes,
    ) -> Result<(), RagError> {
        if self.is_behind(collection_id)? {
            return self.flush(store, lexical, vectors);
        }
        Ok(())
    }

    /// Note that `collection_id` has chunks up to `seq` committed; returns whether a round is
    /// running and the indexed position.
    fn note_committed(&self, collection_id: u64, seq: u64) -> Result<(bool, u64), RagError> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if seq > state.position {
            let last = state.pending.entry(collection_id).or_insert(seq);
            *last = (*last).max(seq);
        }
        Ok((state.running, state.position))
    }

    /// Whether chunks acknowledged for `collection_id` are not yet searchable.
    fn is_behind(&self, collection_id: u64) -> Result<bool, RagError> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        Ok(state.pending.get(&collection_id).is_some_and(|last| *last > state.position))
    }

    /// A round made everything up to `position` searchable.
    fn indexed_up_to(state: &mut State, position: u64) {
        state.position = position;
        state.pending.retain(|_, last| *last > position);
    }

    /// Mark a round as running (or ended) as if another caller led one: what a search must
    /// wait for is then observable (`rag::tests`).
    #[cfg(test)]
    pub(super) fn hold_round(&self, running: bool) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.running = running;
        self.rounds.notify_all();
    }

    /// Drop these chunks (a rolled-back ingest's) from the lexical index in the next round.
    /// Their vectors stay in the graph, which cannot delete; searches drop them when they
    /// find no chunk in redb.
    pub fn remove(&self, seqs: &[u64]) {
        if let Ok(mut state) = self.state.lock() {
            state.removals.extend_from_slice(seqs);
        }
    }

    /// Return once everything committed to redb before this call (chunks, deleted
    /// collections, removals) is reflected in the indexes: by waiting for a round that began
    /// after the call, or by running one.
    pub fn flush(&self, store: &Store, lexical: &LexicalIndex, vectors: &VectorIndexes) -> Result<(), RagError> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.covered >= ticket {
                return Ok(());
            }
            if state.running {
                state = self.rounds.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            // Lead a round for every request so far.
            state.running = true;
            let taking = state.requested;
            let after = state.position;
            let removals = std::mem::take(&mut state.removals);
            drop(state);
            let leading = Leading(self);
            let outcome = round(store, lexical, vectors, after, &removals);
            std::mem::forget(leading);
            state = self.state.lock().map_err(|_| poisoned())?;
            state.running = false;
            match outcome {
                Ok((position, drained)) => {
                    Self::indexed_up_to(&mut state, position);
                    if drained {
                        state.covered = state.covered.max(taking);
                    }
                    self.rounds.notify_all();
                }
                Err(e) => {
                    // The removals are tried again by the next round; the chunks are still
                    // past the position, so they are too.
                    let mut again = removals;
                    again.append(&mut state.removals);
                    state.removals = again;
                    self.rounds.notify_all();
                    return Err(e);
                }
            }
        }
    }
}

/// Held by a round's leader: if the round panics, the next caller leads instead of every
/// flush waiting forever for a round that will not end.
struct Leading<'a>(&'a Indexer);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.running = false;
            self.0.rounds.notify_all();
        }
    }
}

fn poisoned() -> RagError {
    RagError::Io(std::io::Error::other("the RAG indexer lock is poisoned"))
}

/// One round (module docs): returns the new position and whether it reached the end of what
/// was committed.
fn round(
    store: &Store,
    lexical: &LexicalIndex,
    vectors: &VectorIndexes,
    after: u64,
    removals: &[u64],
) -> Result<(u64, bool), RagError> {
    let (tombstones, chunks, last_seq) = store.read_now(|txn| {
        Ok((rag_store::tombstones(txn)?, rag_store::chunks_after(txn, after, ROUND_LIMIT)?, rag_store::last_seq(txn)?))
    })?;
    let drained = chunks.len() < ROUND_LIMIT;
    // A round that read everything holds every sequence number handed out in its snapshot:
    // those past its last chunk belong to rolled-back ingests. Stopping at the last chunk left
    // them pending for good, and every later search of their collection ran an empty round
    // (a tantivy commit) until some other ingest moved the position past them.
    let position = match chunks.last() {
        Some(last) if !drained => last.seq,
        last => last.map_or(after, |c| c.seq).max(last_seq).max(after),
    };
    let docs: Vec<LexicalDoc<'_>> =
        chunks.iter().map(|c| LexicalDoc { seq: c.seq, collection_id: c.collection_id, text: &c.content }).collect();
    lexical.apply(&docs, &tombstones, removals, position)?;
    // Chunks come in sequence order; consecutive ones of one collection go to its graph together.
    let mut start = 0;
    while start < chunks.len() {
        let collection_id = chunks[start].collection_id;
        let end =
            chunks[start..].iter().position(|c| c.collection_id != collection_id).map_or(chunks.len(), |n| start + n);
        let run = &chunks[start..end];
        let dimensions = run[0].embedding.len();
        let graph = vectors.open(collection_id, dimensions);
        let points: Vec<(u64, &[f32])> = run.iter().map(|c| (c.seq, c.embedding.as_slice())).collect();
        vectors.queue(&graph, &points);
        start = end;
    }
    for collection_id in &tombstones {
        vectors.drop_collection(*collection_id)?;
    }
    if !tombstones.is_empty() {
        store.write_blocking(|txn| rag_store::clear_tombstones(txn, &tombstones))?;
    }
    Ok((position, drained))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_waits_only_for_chunks_of_its_own_collection() {
        let indexer = Indexer::new(10);
        // A round is running (for a big ingest into collection 1); it began before chunk 12.
        indexer.state.lock().unwrap().running = true;
        indexer.note_committed(1, 11).unwrap();
        indexer.note_committed(1, 12).unwrap();
        assert!(indexer.is_behind(1).unwrap());
        assert!(!indexer.is_behind(2).unwrap(), "a collection with nothing pending waits for nobody");

        // The round indexed up to 11: collection 1 is still behind, by chunk 12.
        Indexer::indexed_up_to(&mut indexer.state.lock().unwrap(), 11);
        assert!(indexer.is_behind(1).unwrap());
        indexer.note_committed(2, 13).unwrap();
        assert!(indexer.is_behind(2).unwrap());

        // The next round took everything; nothing is kept for collections it covered.
        Indexer::indexed_up_to(&mut indexer.state.lock().unwrap(), 13);
        assert!(!indexer.is_behind(1).unwrap() && !indexer.is_behind(2).unwrap());
        assert!(indexer.state.lock().unwrap().pending.is_empty());

        // A commit the indexes already hold (a round that read past it) is not pending.
        indexer.note_committed(3, 13).unwrap();
        assert!(!indexer.is_behind(3).unwrap());
    }

    #[test]
    fn a_round_passes_the_sequence_numbers_of_rolled_back_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(crate::store::DB_FILE), crate::store::MigrationPolicy::Apply).unwrap();
        let lexical = LexicalIndex::open(&dir.path().join("search")).unwrap();
        let vectors = VectorIndexes::new(&dir.path().join("vectors"), crate::config::VectorPrecision::F32).unwrap();
        // An ingest into collection 7 was given chunks 1 to 5, then rolled back: the counter
        // moved, the chunks are gone.
        store
            .write_blocking(|txn| {
                txn.open_table(crate::store::tables::RAG_COUNTERS)?.insert(rag_store::NEXT_SEQ, 6)?;
                Ok(())
            })
            .unwrap();
        let indexer = Indexer::new(0);
        indexer.note_committed(7, 5).unwrap();
        assert!(indexer.is_behind(7).unwrap());

        indexer.flush(&store, &lexical, &vectors).unwrap();
        assert_eq!(indexer.state.lock().unwrap().position, 5);
        assert!(!indexer.is_behind(7).unwrap(), "a search of the collection would run a round every time");
        assert_eq!(lexical.watermark(), 5);
    }
}
