//! Retrieval-augmented generation: ingest documents into per-user collections and search them
//! lexically (BM25, fuzzy), semantically (HNSW over embeddings) or both (hybrid), with optional
//! reranking (DESIGN.md §4, API.md §1.8).
//!
//! redb holds collections, chunks and embeddings; the tantivy index (`data/search/`) and the
//! HNSW graphs (`data/vectors/`) are derived from it. Writes go "redb commit, then indexes"
//! under one lock, so each index's watermark (highest chunk sequence number it holds) always
//! means "everything up to here". [`Rag::open`] replays what an index is missing after a crash;
//! `ares reindex` deletes both and rebuilds them.
//!
//! Everything here blocks (tantivy, hnsw_rs, redb, outbound embedding calls); handlers call it
//! on the blocking pool so a 10 MB ingest never holds up the async workers.

pub mod chunking;
pub mod embedder;
pub mod fusion;
pub mod lexical;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::clock;
use crate::config::{EnvLookup, RagConfig};
use crate::store::rag::{self as rag_store, ChunkRecord, CollectionRecord, NewChunk};
use crate::store::{self, Store};
use chunking::{ChunkingConfig, Strategy};
use embedder::{EmbedError, Embedder};
use fusion::{Components, RerankError};
use lexical::{LexicalDoc, LexicalError, LexicalIndex};
use vectors::VectorIndexes;

/// A panic while holding the write lock (a bug) leaves it poisoned: report a server error.
fn poisoned() -> RagError {
    RagError::Io(std::io::Error::other("the RAG write lock is poisoned"))
}

/// Directory names under the data dir.
pub const SEARCH_DIR: &str = "search";
pub const VECTORS_DIR: &str = "vectors";
/// Chunks replayed per redb read at start-up.
const REPLAY_BATCH: usize = 2048;
/// Candidates fetched per ranking for hybrid search and reranking, at least.
const MIN_CANDIDATES: usize = 50;

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
    /// Held from the redb commit until both indexes have the new chunks (module docs).
    write_lock: Mutex<()>,
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
            vectors: VectorIndexes::new(&data_dir.join(VECTORS_DIR))?,
            write_lock: Mutex::new(()),
            report: OpenReport::default(),
        };
        rag.catch_up(store)?;
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
        let _guard = self.write_lock.lock().map_err(|_| poisoned())?;
        let (tombstones, collections) =
            store.read_now(|txn| Ok((rag_store::tombstones(txn)?, rag_store::all_collections(txn)?)))?;
        let live: Vec<u64> = collections.iter().map(|c| c.id).collect();
        self.vectors.remove_stale(&live)?;

        // Lexical: one pass over every chunk after the watermark.
        let mut after = self.lexical.watermark();
        let mut pending_deletes = tombstones.clone();
        loop {
            let batch = store.read_now(|txn| rag_store::chunks_after(txn, after, REPLAY_BATCH))?;
            if batch.is_empty() {
                if !pending_deletes.is_empty() {
                    self.lexical.apply(&[], &pending_deletes, after)?;
                }
                break;
            }
            let docs: Vec<LexicalDoc<'_>> = batch
                .iter()
                .map(|c| LexicalDoc { seq: c.seq, collection_id: c.collection_id, text: &c.content })
                .collect();
            after = batch.last().map_or(after, |c| c.seq);
            self.lexical.apply(&docs, &pending_deletes, after)?;
            self.report.replayed_lexical += docs.len();
            pending_deletes.clear();
        }
        if !tombstones.is_empty() {
            store.write_blocking(|txn| rag_store::clear_tombstones(txn, &tombstones))?;
        }

        // Vectors: per collection, from its dump's watermark.
        for collection in &collections {
            let graph =
                self.vectors.open(collection.id, collection.dimensions as usize, collection.chunk_count as usize);
            let seqs = store.read_now(|txn| rag_store::collection_seqs_after(txn, collection.id, graph.watermark()))?;
            for batch in seqs.chunks(REPLAY_BATCH) {
                let chunks = store.read_now(|txn| {
                    batch
                        .iter()
                        .filter_map(|seq| rag_store::chunk(txn, *seq).transpose())
                        .collect::<Result<Vec<_>, _>>()
                })?;
                let points: Vec<(u64, &[f32])> = chunks.iter().map(|c| (c.seq, c.embedding.as_slice())).collect();
                graph.insert(&points);
                self.report.replayed_vectors += points.len();
            }
        }
        self.report.collections = collections.len();
        if self.report.replayed_vectors > 0 {
            self.vectors.dump_dirty()?;
        }
        Ok(())
    }

    /// Chunk, embed, store and index a document.
    pub fn ingest(&self, store: &Store, request: IngestRequest) -> Result<IngestOutcome, RagError> {
        let name = request.collection.trim().to_string();
        if name.is_empty() {
            return Err(RagError::BadRequest("Collection name required".into()));
        }
        if request.content.trim().is_empty() {
            return Err(RagError::BadRequest("Content required".into()));
        }
        let existing = store.read_now(|txn| rag_store::collection_by_name(txn, &request.user_id, &name))?;
        if let Some(collection) = &existing {
            self.check_embedder(collection)?;
        }
        let config = ChunkingConfig { chunk_size: self.config.chunk_size, chunk_overlap: self.config.chunk_overlap };
        let texts = chunking::chunk(&request.content, request.strategy, &config);
        if texts.is_empty() {
            return Err(RagError::BadRequest("Content too small to chunk".into()));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embeddings = self.embedder.embed_blocking(&refs)?;
        let dimensions = embeddings.first().map_or(0, Vec::len) as u32;

        let document_id = uuid::Uuid::new_v4().to_string();
        let now = clock::now_unix();
        let chunks: Vec<NewChunk> = texts
            .into_iter()
            .zip(embeddings)
            .enumerate()
            .map(|(i, (content, embedding))| {
                let mut metadata = request.metadata.clone();
                metadata.insert("document_id".into(), Value::from(document_id.as_str()));
                metadata.insert("chunk_index".into(), Value::from(i));
                metadata.insert("created_at".into(), Value::from(clock::rfc3339(now)));
                NewChunk {
                    chunk_id: format!("{document_id}_{i}"),
                    document_id: document_id.clone(),
                    index: i as u32,
                    content,
                    metadata_json: Value::Object(metadata).to_string(),
                    embedding,
                }
            })
            .collect();

        let descriptor = self.embedder.descriptor();
        let _guard = self.write_lock.lock().map_err(|_| poisoned())?;
        let (collection, seqs) = store
            .write_blocking(|txn| {
                rag_store::append(txn, &request.user_id, &name, &descriptor, dimensions, &chunks, now)
            })
            .map_err(|e| match e {
                store::Error::Conflict(_) => RagError::EmbedderMismatch {
                    collection: name.clone(),
                    stored: "another embedder".into(),
                    configured: self.embedder.describe(),
                },
                other => RagError::Store(other),
            })?;
        let watermark = seqs.last().copied().unwrap_or(0);
        let docs: Vec<LexicalDoc<'_>> = chunks
            .iter()
            .zip(&seqs)
            .map(|(c, seq)| LexicalDoc { seq: *seq, collection_id: collection.id, text: &c.content })
            .collect();
        self.lexical.apply(&docs, &[], watermark)?;
        let graph = self.vectors.open(collection.id, dimensions as usize, chunks.len());
        let points: Vec<(u64, &[f32])> =
            seqs.iter().zip(&chunks).map(|(seq, c)| (*seq, c.embedding.as_slice())).collect();
        graph.insert(&points);
        Ok(IngestOutcome { chunk_ids: chunks.into_iter().map(|c| c.chunk_id).collect(), collection })
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
        let top_k = request.top_k.max(1);
        let wide = (top_k * 4).max(MIN_CANDIDATES);
        let fetch = if request.rerank || request.strategy == SearchStrategy::Hybrid { wide } else { top_k };

        let semantic = |k: usize| -> Result<Vec<(u64, f32)>, RagError> {
            self.check_embedder(&collection)?;
            let query = self.embedder.embed_blocking(&[request.query.as_str()])?;
            let graph =
                self.vectors.open(collection.id, collection.dimensions as usize, collection.chunk_count as usize);
            Ok(query.first().map(|q| graph.search(q, k)).unwrap_or_default())
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
                fusion::reciprocal_rank(
                    &dense,
                    &sparse,
                    self.config.hybrid_semantic_weight,
                    self.config.hybrid_bm25_weight,
                    self.config.rrf_k,
                )
                .into_iter()
                .map(|(s, v, parts)| (s, v, Some(parts)))
                .collect()
            }
        };

        // Hydrate from redb; a chunk of another collection (a stale index entry) is dropped here
        // too, so isolation never rests on the index alone.
        let mut hits: Vec<Hit> = store.read_now(|txn| {
            let mut out = Vec::with_capacity(ranked.len());
            for (seq, score, components) in &ranked {
                if let Some(chunk) = rag_store::chunk(txn, *seq)?
                    && chunk.collection_id == collection.id
                {
                    out.push(Hit { chunk, score: *score, components: *components, retrieval_score: None });
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
        let _guard = self.write_lock.lock().map_err(|_| poisoned())?;
        let deleted =
            store.write_blocking(|txn| rag_store::delete_collection(txn, user_id, name)).map_err(|e| match e {
                store::Error::NotFound(_) => RagError::CollectionNotFound(name.to_string()),
                other => RagError::Store(other),
            })?;
        self.vectors.drop_collection(deleted.id)?;
        self.lexical.apply(&[], &[deleted.id], self.lexical.watermark())?;
        store.write_blocking(|txn| rag_store::clear_tombstones(txn, &[deleted.id]))?;
        Ok(deleted)
    }

    /// Write changed vector graphs to disk (periodically and at shutdown).
    pub fn persist(&self) -> Result<usize, RagError> {
        let _guard = self.write_lock.lock().map_err(|_| poisoned())?;
        Ok(self.vectors.dump_dirty()?)
    }
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
    rag.persist()?;
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
