//! Retrieval-augmented generation: ingest documents into per-user collections and search them
//! lexically (BM25, fuzzy), semantically (HNSW over embeddings) or both (hybrid), with optional
//! reranking (DESIGN.md §4, API.md §1.8).
//!
//! redb holds collections, chunks and embeddings; the tantivy index (`data/search/`) and the
//! HNSW graphs (`data/vectors/`) are derived from it. Writes go "redb commit, then indexes":
//! ingests into any collections commit concurrently, and indexing rounds shared by all of them
//! ([`indexer`]) follow redb's chunk sequence numbers, so each index's watermark (highest chunk
//! sequence number it holds) always means "everything up to here". [`Rag::open`] replays what
//! an index is missing after a crash; `ares reindex` deletes both and rebuilds them.
//!
//! Everything here blocks (tantivy, graph builds, redb, outbound embedding calls); handlers call it
//! on the blocking pool so a 10 MB ingest never holds up the async workers.

pub mod chunking;
mod deferred_sync;
pub mod embedder;
pub mod fusion;
pub mod graph;
pub mod indexer;
pub mod jobs;
mod kernels;
pub mod lexical;
mod queue;
pub mod vectors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::clock;
use crate::config::{EnvLookup, RagConfig};
use crate::store::rag::{self as rag_store, Begun, ChunkRecord, CollectionRecord, Limits, NewChunk, NewDocument};
use crate::store::{self, Store};
use chunking::{ChunkingConfig, Strategy};
use embedder::{EmbedError, Embedder};
use fusion::{Components, RerankError};
use indexer::Indexer;
use lexical::{LexicalDoc, LexicalError, LexicalIndex};
use vectors::VectorIndexes;

/// Directory names under the data dir.
pub const SEARCH_DIR: &str = "search";
pub const VECTORS_DIR: &str = "vectors";
/// Chunks replayed per redb read at start-up.
const REPLAY_BATCH: usize = 2048;
/// Candidates fetched per ranking for hybrid search and reranking, at least.
const MIN_CANDIDATES: usize = 50;
/// Chunks embedded, committed and indexed per step of an ingest: about 0.7 MB of records with
/// 384-dimension embeddings, so one step holds the writer for milliseconds, not seconds.
pub const WRITE_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RagError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Lexical(#[from] LexicalError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Rerank(#[from] RerankError),
    #[error("vector index: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    BadRequest(String),
    #[error("Collection '{0}' not found")]
    CollectionNotFound(String),
    /// A per-user limit (`[rag].max_collections_per_user`, `max_chunks_per_user`).
    #[error("{0}")]
    LimitReached(String),
    /// An ingest job was cancelled between two batches (what it wrote is rolled back).
    #[error("the ingest was cancelled")]
    Cancelled,
    #[error(
        "Collection '{collection}' was embedded with {stored}, but the configured embedder is {configured}; \
         run `ares reindex` (with the server stopped) to re-embed it"
    )]
    EmbedderMismatch { collection: String, stored: String, configured: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchStrategy {
    Semantic,
    Bm25,
    Fuzzy,
    Hybrid,
}

impl SearchStrategy {
    /// The documented names plus the reference's aliases (API.md C18).
    pub fn parse(name: &str) -> Option<SearchStrategy> {
        match name.trim().to_ascii_lowercase().as_str() {
            "semantic" | "dense" | "vector" | "approximate" => Some(SearchStrategy::Semantic),
            "bm25" | "lexical" | "sparse" | "keyword" => Some(SearchStrategy::Bm25),
            "fuzzy" => Some(SearchStrategy::Fuzzy),
            "hybrid" | "combined" | "rrf" => Some(SearchStrategy::Hybrid),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SearchStrategy::Semantic => "semantic",
            SearchStrategy::Bm25 => "bm25",
            SearchStrategy::Fuzzy => "fuzzy",
            SearchStrategy::Hybrid => "hybrid",
        }
    }
}

pub struct IngestRequest {
    pub user_id: String,
    pub collection: String,
    pub content: String,
    pub strategy: Strategy,
    /// The request's metadata merged with title, source and tags.
    pub metadata: Map<String, Value>,
}

#[derive(Debug)]
pub struct IngestOutcome {
    pub chunk_ids: Vec<String>,
    pub collection: CollectionRecord,
}

pub struct SearchRequest {
    pub user_id: String,
    pub collection: String,
    pub query: String,
    pub strategy: SearchStrategy,
    pub top_k: usize,
    pub threshold: Option<f32>,
    pub rerank: bool,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: ChunkRecord,
    /// The document's metadata with this chunk's `document_id`, `chunk_index` and `created_at`.
    pub metadata: Map<String, Value>,
    pub score: f32,
    /// Hybrid only: each ranking's (rank, score).
    pub components: Option<Components>,
    /// The score before reranking, when reranked.
    pub retrieval_score: Option<f32>,
}

#[derive(Debug)]
pub struct SearchOutcome {
    pub hits: Vec<Hit>,
    pub collection: String,
    pub reranked: bool,
}

/// What start-up did to bring the indexes up to date.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenReport {
    pub replayed_lexical: usize,
    pub replayed_vectors: usize,
    pub collections: usize,
    pub elapsed_ms: u64,
}

pub struct Rag {
    config: RagConfig,
    embedder: Embedder,
    lexical: LexicalIndex,
    vectors: VectorIndexes,
    indexer: Indexer,
    report: OpenReport,
}

impl Rag {
    /// Open (or create) the derived indexes under `data_dir` and replay whatever they miss.
    pub fn open(config: &RagConfig, data_dir: &Path, store: &Store, env: &EnvLookup) -> Result<Rag, RagError> {
        let started = Instant::now();
        let search_dir = data_dir.join(SEARCH_DIR);
        let lexical = match LexicalIndex::open(&search_dir) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(error = %e, dir = %search_dir.display(), "search index unusable; rebuilding it from the database");
                std::fs::remove_dir_all(&search_dir)?;
                LexicalIndex::open(&search_dir)?
            }
        };
        let mut rag = Rag {
            config: config.clone(),
            embedder: Embedder::from_config(&config.embedder, env),
            lexical,
            vectors: VectorIndexes::new(&data_dir.join(VECTORS_DIR), config.vector_precision)?,
            indexer: Indexer::new(0),
            report: OpenReport::default(),
        };
        rag.catch_up(store)?;
        rag.indexer = Indexer::new(rag.lexical.watermark());
        rag.report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(rag)
    }

    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Apply pending collection deletions, then replay chunks past each index's watermark.
    fn catch_up(&mut self, store: &Store) -> Result<(), RagError> {
        // Ingests cut short by a crash: their committed batches go (a removed collection leaves
        // a tombstone, applied below), and so do their lexical entries; vector entries cannot be
        // deleted from a graph and are dropped when a search re-reads them from redb.
        let unfinished = store.read_now(rag_store::pending_documents)?;
        for (collection_id, document_id) in &unfinished {
            let aborted = store.write_blocking(|txn| rag_store::abort_document(txn, *collection_id, document_id))?;
            if !aborted.seqs.is_empty() {
                self.lexical.apply(&[], &[], &aborted.seqs, self.lexical.watermark())?;
            }
        }
        if !unfinished.is_empty() {
            tracing::warn!(documents = unfinished.len(), "rolled back ingests interrupted by a crash");
        }
        let (tombstones, collections) =
            store.read_now(|txn| Ok((rag_store::tombstones(txn)?, rag_store::all_collections(txn)?)))?;
        let live: Vec<u64> = collections.iter().map(|c| c.id).collect();
        self.vectors.remove_stale(&live)?;
        self.warn_of_stale_embedders(&collections);

        // Both replays at once: vectors on a thread of their own, so the graph builder starts
        // on the first of them while the lexical index is still being rebuilt. One after the
        // other, the builder sat idle for the whole lexical replay (most of two minutes of a
        // million-chunk rebuild, on one core of two), and a graph is what a rebuild waits for.
        let (lexical, vectors) = (&self.lexical, &self.vectors);
        let (replayed_lexical, replayed_vectors) = std::thread::scope(|scope| {
            let queueing = std::thread::Builder::new()
                .name("ares-replay-vectors".into())
                .spawn_scoped(scope, || queue_missing_vectors(vectors, store, &collections))?;
            let replayed_lexical = replay_lexical(lexical, store, &tombstones);
            let replayed_vectors = queueing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, RagError>((replayed_lexical?, replayed_vectors?))
        })?;
        self.report.replayed_lexical += replayed_lexical;
        self.report.replayed_vectors += replayed_vectors;
        if !tombstones.is_empty() {
            store.write_blocking(|txn| rag_store::clear_tombstones(txn, &tombstones))?;
        }
        self.report.collections = collections.len();
        Ok(())
    }

    /// Chunk, embed, store and index a document, [`WRITE_BATCH`] chunks at a time. The first
    /// batch's write checks the per-user limits and reserves every chunk of the document; if a
    /// later step fails, what was written is rolled back.
    pub fn ingest(&self, store: &Store, request: IngestRequest) -> Result<IngestOutcome, RagError> {
        self.ingest_watched(store, request, &|_, _| true)
    }

    /// [`Rag::ingest`], telling `watch` the chunks embedded so far and the total, once chunking
    /// is done and after every batch; when it answers `false` the ingest stops with
    /// [`RagError::Cancelled`] and what it wrote is rolled back. Ingest jobs report progress and
    /// are cancelled through it.
    pub fn ingest_watched(
        &self,
        store: &Store,
        request: IngestRequest,
        watch: &(dyn Fn(usize, usize) -> bool + Sync),
    ) -> Result<IngestOutcome, RagError> {
        let IngestRequest { user_id, collection, content, strategy, metadata } = request;
        let name = collection.trim().to_string();
        if name.is_empty() {
            return Err(RagError::BadRequest("Collection name required".into()));
        }
        if content.trim().is_empty() {
            return Err(RagError::BadRequest("Content required".into()));
        }
        let metadata_json = Value::Object(metadata).to_string();
        if metadata_json.len() > self.config.max_metadata_bytes {
            return Err(RagError::BadRequest(format!(
                "Metadata too large: {} bytes of JSON (at most {})",
                metadata_json.len(),
                self.config.max_metadata_bytes
            )));
        }
        let limits = Limits {
            max_collections: self.config.max_collections_per_user,
            max_chunks: self.config.max_chunks_per_user,
        };
        let (existing, collections, held) = store.read_now(|txn| {
            Ok((
                rag_store::collection_by_name(txn, &user_id, &name)?,
                rag_store::collection_count(txn, &user_id)?,
                rag_store::user_chunks(txn, &user_id)?,
            ))
        })?;
        if let Some(collection) = &existing {
            self.check_embedder(collection)?;
        } else if collections >= limits.max_collections {
            // Early answer without chunking or embedding; the write below decides exactly.
            return Err(RagError::LimitReached(format!(
                "Collection limit reached: {} collections per user",
                limits.max_collections
            )));
        }
        let config = ChunkingConfig { chunk_size: self.config.chunk_size, chunk_overlap: self.config.chunk_overlap };
        let texts = chunking::chunk(&content, strategy, &config);
        drop(content);
        if texts.is_empty() {
            return Err(RagError::BadRequest("Content too small to chunk".into()));
        }
        let total = texts.len();
        if !watch(0, total) {
            return Err(RagError::Cancelled);
        }
        if held.saturating_add(total as u64) > limits.max_chunks {
            return Err(RagError::LimitReached(format!(
                "Chunk limit reached: this document has {total} chunks, {held} of {} per user are in use",
                limits.max_chunks
            )));
        }

        let document = Document {
            user_id: Arc::from(user_id),
            name: Arc::from(name),
            document_id: Arc::from(uuid::Uuid::new_v4().to_string()),
            metadata_json: Arc::from(metadata_json),
            total,
            limits,
            now: clock::now_unix(),
        };
        let mut begun = None;
        let outcome = self.write_batches(store, &document, texts, &mut begun, watch);
        if outcome.is_err()
            && let Some(collection_id) = begun
        {
            self.roll_back(store, collection_id, &document.document_id);
        }
        outcome
    }

    /// The batches of [`Rag::ingest`]; `begun` receives the collection id once the document's
    /// first write has committed (what a rollback needs).
    fn write_batches(
        &self,
        store: &Store,
        document: &Document,
        texts: Vec<String>,
        begun: &mut Option<u64>,
        watch: &(dyn Fn(usize, usize) -> bool + Sync),
    ) -> Result<IngestOutcome, RagError> {
        let mut chunk_ids = Vec::with_capacity(document.total);
        let mut collection = None;
        let mut texts = texts.into_iter();
        let mut index = 0usize;
        while index < document.total {
            let batch: Vec<String> = texts.by_ref().take(WRITE_BATCH).collect();
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            let embeddings = self.embedder.embed_blocking(&refs)?;
            drop(refs);
            let dimensions = embeddings.first().map_or(0, Vec::len) as u32;
            let collection_id = match &collection {
                Some(CollectionRecord { id, dimensions: expected, .. }) => {
                    if *expected != dimensions {
                        return Err(
                            EmbedError::Dimension { expected: *expected as usize, got: dimensions as usize }.into()
                        );
                    }
                    *id
                }
                None => {
                    let id = self.begin(store, document, dimensions)?.id;
                    *begun = Some(id);
                    id
                }
            };
            let first = index;
            let chunks: Arc<Vec<NewChunk>> = Arc::new(
                batch
                    .into_iter()
                    .zip(embeddings)
                    .enumerate()
                    .map(|(i, (content, embedding))| NewChunk {
                        chunk_id: format!("{}_{}", document.document_id, first + i),
                        index: (first + i) as u32,
                        content,
                        embedding,
                    })
                    .collect(),
            );
            index += chunks.len();
            let last = index >= document.total;
            let (written, last_seq) = self.write_batch(store, document, collection_id, &chunks, last)?;
            // Indexed in a round shared with concurrent ingests, or by the next search
            // ([`indexer`]); waits only when the indexes fall far behind.
            self.indexer.advance(collection_id, last_seq, store, &self.lexical, &self.vectors)?;
            collection = Some(written);
            chunk_ids.extend(chunks.iter().map(|c| c.chunk_id.clone()));
            if !last && !watch(index, document.total) {
                return Err(RagError::Cancelled);
            }
        }
        let collection = collection.ok_or_else(|| RagError::BadRequest("Content too small to chunk".into()))?;
        Ok(IngestOutcome { chunk_ids, collection })
    }

    /// The document's first write: limits, reservation, the collection and the metadata.
    fn begin(&self, store: &Store, document: &Document, dimensions: u32) -> Result<CollectionRecord, RagError> {
        let descriptor: Arc<str> = Arc::from(self.embedder.descriptor());
        let doc = (
            document.user_id.clone(),
            document.name.clone(),
            document.document_id.clone(),
            document.metadata_json.clone(),
            descriptor,
        );
        let (total, limits, now) = (document.total as u64, document.limits, document.now);
        let begun = store
            .write_wait(move |txn| {
                let (user_id, name, document_id, metadata_json, embedder) = &doc;
                let new = NewDocument {
                    user_id,
                    collection: name,
                    embedder,
                    dimensions,
                    document_id,
                    metadata_json,
                    chunks: total,
                };
                rag_store::begin_document(txn, &new, limits, now)
            })
            .map_err(|e| match e {
                store::Error::Conflict(_) => RagError::EmbedderMismatch {
                    collection: document.name.to_string(),
                    stored: "another embedder".into(),
                    configured: self.embedder.describe(),
                },
                other => RagError::Store(other),
            })?;
        match begun {
            Begun::Started(collection) => Ok(collection),
            Begun::LimitReached(message) => Err(RagError::LimitReached(message)),
        }
    }

    /// Commit one batch to redb; returns its last chunk's sequence number. Indexing is left to
    /// a round ([`indexer`]);
    /// while the vector builder is far behind, this first waits for room.
    fn write_batch(
        &self,
        store: &Store,
        document: &Document,
        collection_id: u64,
        chunks: &Arc<Vec<NewChunk>>,
        last: bool,
    ) -> Result<(CollectionRecord, u64), RagError> {
        self.vectors.wait_for_room(vectors::MAX_QUEUED_BYTES);
        let job_chunks = chunks.clone();
        let document_id = document.document_id.clone();
        let now = document.now;
        let (collection, seqs) = store
            .write_wait(move |txn| rag_store::append_batch(txn, collection_id, &document_id, &job_chunks, last, now))
            .map_err(|e| match e {
                store::Error::NotFound(_) => RagError::CollectionNotFound(document.name.to_string()),
                other => RagError::Store(other),
            })?;
        Ok((collection, seqs.last().copied().unwrap_or_default()))
    }

    /// Make everything committed so far searchable (module docs of [`indexer`]).
    fn flush(&self, store: &Store) -> Result<(), RagError> {
        self.indexer.flush(store, &self.lexical, &self.vectors)
    }

    /// Undo a failed ingest's committed batches. A failure here is logged: the document stays
    /// pending and start-up rolls it back.
    fn roll_back(&self, store: &Store, collection_id: u64, document_id: &Arc<str>) {
        let id = document_id.clone();
        let outcome = store
            .write_wait(move |txn| rag_store::abort_document(txn, collection_id, &id))
            .map_err(RagError::from)
            .and_then(|aborted| {
                // A collection the document created goes whole (its tombstone); otherwise its chunks.
                if aborted.collection.is_none() {
                    self.indexer.remove(&aborted.seqs);
                }
                self.flush(store)
            });
        if let Err(e) = outcome {
            tracing::warn!(error = %e, document_id = %document_id, "rolling back a failed ingest failed; start-up will");
        }
    }

    /// Collections embedded with another embedder than the configured one refuse searches
    /// and ingests until re-embedded: say so at start, once per embedder, with the fix.
    fn warn_of_stale_embedders(&self, collections: &[CollectionRecord]) {
        let configured = self.embedder.descriptor();
        let mut stale: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for collection in collections.iter().filter(|c| c.embedder != configured) {
            *stale.entry(collection.embedder.as_str()).or_default() += 1;
        }
        for (stored, count) in stale {
            tracing::warn!(
                collections = count, stored, configured = %configured,
                "collections were embedded with another embedder than the configured one and refuse searches \
                 and ingests until re-embedded: run `ares reindex` (with the server stopped)"
            );
        }
    }

    fn check_embedder(&self, collection: &CollectionRecord) -> Result<(), RagError> {
        let descriptor = self.embedder.descriptor();
        if collection.embedder != descriptor {
            return Err(RagError::EmbedderMismatch {
                collection: collection.name.clone(),
                stored: collection.embedder.clone(),
                configured: descriptor,
            });
        }
        Ok(())
    }

    /// Search one of the user's collections.
    pub fn search(&self, store: &Store, request: &SearchRequest) -> Result<SearchOutcome, RagError> {
        if request.query.trim().is_empty() {
            return Err(RagError::BadRequest("Query required".into()));
        }
        let collection = store
            .read_now(|txn| rag_store::collection_by_name(txn, &request.user_id, request.collection.trim()))?
            .ok_or_else(|| RagError::CollectionNotFound(request.collection.clone()))?;
        self.indexer.catch_up(collection.id, store, &self.lexical, &self.vectors)?;
        let top_k = request.top_k.max(1);
        let wide = (top_k * 4).max(MIN_CANDIDATES);
        let fetch = if request.rerank || request.strategy == SearchStrategy::Hybrid { wide } else { top_k };

        let semantic = |k: usize| -> Result<Vec<(u64, f32)>, RagError> {
            self.check_embedder(&collection)?;
            let query = self.embedder.embed_blocking(&[request.query.as_str()])?;
            let graph = self.vectors.open(collection.id, collection.dimensions as usize);
            let beam = self.config.search_beam();
            Ok(query.first().map(|q| graph.search(q, k, beam.max(k * 2))).unwrap_or_default())
        };
        let ranked: Vec<(u64, f32, Option<Components>)> = match request.strategy {
            SearchStrategy::Semantic => semantic(fetch)?.into_iter().map(|(s, v)| (s, v, None)).collect(),
            SearchStrategy::Bm25 => self
                .lexical
                .bm25(collection.id, &request.query, fetch)?
                .into_iter()
                .map(|(s, v)| (s, v, None))
                .collect(),
            SearchStrategy::Fuzzy => self
                .lexical
                .fuzzy(collection.id, &request.query, fetch)?
                .into_iter()
                .map(|(s, v)| (s, v, None))
                .collect(),
            SearchStrategy::Hybrid => {
                let dense = semantic(wide)?;
                let sparse = self.lexical.bm25(collection.id, &request.query, wide)?;
                let fusion = self.config.fusion();
                fusion::reciprocal_rank(&dense, &sparse, fusion.semantic_weight, fusion.bm25_weight, fusion.k)
                    .into_iter()
                    .map(|(s, v, parts)| (s, v, Some(parts)))
                    .collect()
            }
        };

        // Hydrate from redb; a chunk of another collection (a stale index entry) is dropped here
        // too, so isolation never rests on the index alone.
        let mut hits: Vec<Hit> = store.read_now(|txn| {
            let mut out = Vec::with_capacity(ranked.len());
            let mut documents: HashMap<String, Map<String, Value>> = HashMap::new();
            for (seq, score, components) in &ranked {
                if let Some(chunk) = rag_store::chunk(txn, *seq)?
                    && chunk.collection_id == collection.id
                {
                    let shared = match documents.get(&chunk.document_id) {
                        Some(shared) => shared,
                        None => {
                            let stored = rag_store::document(txn, collection.id, &chunk.document_id)?;
                            let parsed = stored
                                .and_then(|d| serde_json::from_str::<Map<String, Value>>(&d.metadata_json).ok())
                                .unwrap_or_default();
                            documents.entry(chunk.document_id.clone()).or_insert(parsed)
                        }
                    };
                    let metadata = chunk_metadata(shared, &chunk);
                    out.push(Hit { chunk, metadata, score: *score, components: *components, retrieval_score: None });
                }
            }
            Ok(out)
        })?;

        let reranked = request.rerank && !hits.is_empty();
        if reranked {
            let scores = match &self.config.rerank_url {
                Some(url) => {
                    let documents: Vec<&str> = hits.iter().map(|h| h.chunk.content.as_str()).collect();
                    fusion::remote_rerank(url, self.config.rerank_model.as_deref(), &request.query, &documents)?
                }
                None => {
                    let candidates: Vec<(String, f32)> =
                        hits.iter().map(|h| (h.chunk.content.clone(), h.score)).collect();
                    fusion::rescore(&request.query, &candidates)
                }
            };
            for (hit, score) in hits.iter_mut().zip(scores) {
                hit.retrieval_score = Some(hit.score);
                hit.score = score;
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        if let Some(threshold) = request.threshold {
            hits.retain(|h| h.score >= threshold);
        }
        hits.truncate(top_k);
        Ok(SearchOutcome { hits, collection: collection.name, reranked })
    }

    pub fn collections(&self, store: &Store, user_id: &str) -> Result<Vec<CollectionRecord>, RagError> {
        Ok(store.read_now(|txn| rag_store::collections_of(txn, user_id))?)
    }

    /// Delete a collection with every chunk and index entry.
    pub fn delete_collection(&self, store: &Store, user_id: &str, name: &str) -> Result<CollectionRecord, RagError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(RagError::BadRequest("Collection name required".into()));
        }
        let (user, collection) = (user_id.to_string(), name.to_string());
        let deleted = store.write_wait(move |txn| rag_store::delete_collection(txn, &user, &collection)).map_err(
            |e| match e {
                store::Error::NotFound(_) => RagError::CollectionNotFound(name.to_string()),
                other => RagError::Store(other),
            },
        )?;
        // The deletion left a tombstone; the round drops the collection's index entries.
        self.flush(store)?;
        Ok(deleted)
    }

    /// Index everything ingests have acknowledged (the periodic persist, so a bulk load's last
    /// chunks reach the vector builder without a search; a search does this for its collection).
    pub fn index_pending(&self, store: &Store) -> Result<(), RagError> {
        self.indexer.catch_up_all(store, &self.lexical, &self.vectors)
    }

    /// Write changed vector graphs to disk and sync the lexical index's deferred writes
    /// (periodically and at shutdown).
    pub fn persist(&self) -> Result<usize, RagError> {
        let synced = self.lexical.sync();
        let dumped = self.vectors.dump_dirty();
        synced?;
        Ok(dumped?)
    }

    /// [`Rag::persist`] at shutdown: the lexical index first lets its merges finish, so it is
    /// left fully synced.
    pub fn close(&self) -> Result<usize, RagError> {
        let closed = self.lexical.close();
        let dumped = self.vectors.dump_dirty();
        closed?;
        Ok(dumped?)
    }

    /// Wait until every queued vector is in its graph (`ares reindex` before its dump;
    /// benchmarks).
    pub fn wait_for_vectors(&self) {
        self.vectors.wait_until_built();
    }

    /// Vectors committed and due for a graph but not yet in it (searched by exact scan
    /// meanwhile).
    pub fn vectors_backlog(&self) -> usize {
        self.vectors.backlog()
    }
}

/// What every batch of one ingest shares (cheap to move into write jobs, which may run twice).
struct Document {
    user_id: Arc<str>,
    name: Arc<str>,
    document_id: Arc<str>,
    metadata_json: Arc<str>,
    /// Chunks of the whole document.
    total: usize,
    limits: Limits,
    now: i64,
}

/// A chunk's metadata as the API shows it: the document's, plus the chunk's own keys
/// (`rag_store::PER_CHUNK_METADATA_KEYS`), as they were stored with each chunk before schema 9.
pub fn chunk_metadata(document: &Map<String, Value>, chunk: &ChunkRecord) -> Map<String, Value> {
    let mut metadata = document.clone();
    metadata.insert("document_id".into(), Value::from(chunk.document_id.as_str()));
    metadata.insert("chunk_index".into(), Value::from(chunk.index));
    metadata.insert("created_at".into(), Value::from(clock::rfc3339(chunk.created_at)));
    metadata
}

/// `ares reindex`: re-embed collections whose embedder differs from the configured one, then
/// delete both derived indexes and rebuild them from redb. The server must be stopped (the
/// store's file lock guarantees it).
pub fn reindex(config: &RagConfig, data_dir: &Path, store: &Store, env: &EnvLookup) -> Result<ReindexReport, RagError> {
    let started = Instant::now();
    let embedder = Embedder::from_config(&config.embedder, env);
    let descriptor = embedder.descriptor();
    let collections = store.read_now(rag_store::all_collections)?;
    let mut reembedded = 0;
    for collection in collections.iter().filter(|c| c.embedder != descriptor) {
        let seqs = store.read_now(|txn| rag_store::collection_seqs_after(txn, collection.id, 0))?;
        let mut dimensions = 0;
        for batch in seqs.chunks(config.embedder.batch_size.max(1) * 4) {
            let chunks = store.read_now(|txn| {
                batch.iter().filter_map(|seq| rag_store::chunk(txn, *seq).transpose()).collect::<Result<Vec<_>, _>>()
            })?;
            let texts: Vec<&str> = chunks.iter().map(|c| c.content.as_str()).collect();
            let vectors = embedder.embed_blocking(&texts)?;
            dimensions = vectors.first().map_or(dimensions, Vec::len);
            store.write_blocking(|txn| {
                for (chunk, vector) in chunks.iter().zip(&vectors) {
                    rag_store::set_embedding(txn, chunk.seq, vector.clone())?;
                }
                Ok(())
            })?;
            reembedded += chunks.len();
        }
        store.write_blocking(|txn| rag_store::set_embedder(txn, collection.id, &descriptor, dimensions as u32))?;
    }
    for dir in [SEARCH_DIR, VECTORS_DIR] {
        let path: PathBuf = data_dir.join(dir);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    let rag = Rag::open(config, data_dir, store, env)?;
    rag.wait_for_vectors();
    rag.close()?;
    let report = rag.open_report();
    Ok(ReindexReport {
        collections: collections.len(),
        chunks: report.replayed_lexical,
        reembedded,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

#[derive(Debug)]
pub struct ReindexReport {
    pub collections: usize,
    pub chunks: usize,
    pub reembedded: usize,
    pub elapsed_ms: u64,
}

/// Start-up's lexical replay: one pass over every chunk after the index's watermark, applying
/// `tombstones` (deleted collections) with the first batch. Returns the chunks replayed.
fn replay_lexical(lexical: &LexicalIndex, store: &Store, tombstones: &[u64]) -> Result<usize, RagError> {
    let mut after = lexical.watermark();
    let mut pending_deletes = tombstones.to_vec();
    let mut replayed = 0;
    loop {
        let batch = store.read_now(|txn| rag_store::chunks_after(txn, after, REPLAY_BATCH))?;
        if batch.is_empty() {
            if !pending_deletes.is_empty() {
                lexical.apply(&[], &pending_deletes, &[], after)?;
            }
            return Ok(replayed);
        }
        let docs: Vec<LexicalDoc<'_>> =
            batch.iter().map(|c| LexicalDoc { seq: c.seq, collection_id: c.collection_id, text: &c.content }).collect();
        after = batch.last().map_or(after, |c| c.seq);
        lexical.apply(&docs, &pending_deletes, &[], after)?;
        replayed += docs.len();
        pending_deletes.clear();
    }
}

/// Start-up's vector replay: per collection, every chunk past its dump's watermark, queued for
/// the builder thread. Returns the vectors queued.
fn queue_missing_vectors(
    vectors: &VectorIndexes,
    store: &Store,
    collections: &[rag_store::CollectionRecord],
) -> Result<usize, RagError> {
    let mut queued = 0;
    for collection in collections {
        let graph = vectors.open(collection.id, collection.dimensions as usize);
        let seqs = store.read_now(|txn| rag_store::collection_seqs_after(txn, collection.id, graph.covered()))?;
        for batch in seqs.chunks(REPLAY_BATCH) {
            let chunks = store.read_now(|txn| {
                batch.iter().filter_map(|seq| rag_store::chunk(txn, *seq).transpose()).collect::<Result<Vec<_>, _>>()
            })?;
            let points: Vec<(u64, &[f32])> = chunks.iter().map(|c| (c.seq, c.embedding.as_slice())).collect();
            queued += vectors.queue(&graph, &points);
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::store::MigrationPolicy;

    fn ingest(rag: &Rag, store: &Store, collection: &str, content: &str) {
        let request = IngestRequest {
            user_id: "u1".into(),
            collection: collection.into(),
            content: content.into(),
            strategy: Strategy::Word,
            metadata: Map::new(),
        };
        rag.ingest(store, request).unwrap();
    }

    fn search(rag: &Rag, store: &Store, collection: &str, query: &str) -> usize {
        let request = SearchRequest {
            user_id: "u1".into(),
            collection: collection.into(),
            query: query.into(),
            strategy: SearchStrategy::Bm25,
            top_k: 5,
            threshold: None,
            rerank: false,
        };
        rag.search(store, &request).unwrap().hits.len()
    }

    /// A search waits for an indexing round only when its own collection has chunks the
    /// indexes do not hold yet; any other collection is answered while the round runs.
    #[test]
    fn a_search_of_another_collection_does_not_wait_for_a_running_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join(crate::store::DB_FILE), MigrationPolicy::Apply).unwrap());
        let rag = Arc::new(Rag::open(&RagConfig::default(), dir.path(), &store, &|_| None).unwrap());
        ingest(&rag, &store, "small", "the lighthouse keeper logs every passing ship");
        assert_eq!(search(&rag, &store, "small", "lighthouse"), 1);

        // Another caller leads a round; meanwhile an ingest into "big" commits. It does not
        // wait (a round is running), so its chunks are pending.
        rag.indexer.hold_round(true);
        ingest(&rag, &store, "big", "zzyzx appears only in the big collection");

        let (answered, answers) = mpsc::channel();
        for collection in ["small", "big"] {
            let (rag, store, answered) = (rag.clone(), store.clone(), answered.clone());
            let query = if collection == "small" { "lighthouse" } else { "zzyzx" };
            std::thread::spawn(move || answered.send((collection, search(&rag, &store, collection, query))));
        }
        let first = answers.recv_timeout(Duration::from_secs(10)).expect("a search answered while the round ran");
        assert_eq!(first, ("small", 1));
        assert!(
            answers.recv_timeout(Duration::from_millis(300)).is_err(),
            "a search of the collection with pending chunks answered before they were indexed"
        );
        // The round ends; the waiting search leads the next one and finds the new chunk.
        rag.indexer.hold_round(false);
        assert_eq!(answers.recv_timeout(Duration::from_secs(10)).unwrap(), ("big", 1));
    }
}
