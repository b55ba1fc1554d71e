//! The lexical index (`data/search/`): BM25 and fuzzy matching over chunk text with tantivy.
//!
//! One index holds every collection; each document carries its collection's scope term, and
//! every query is ANDed with it, so a search never sees another collection's chunks. The text is
//! indexed twice: stemmed with English stop words removed (BM25), and only lower-cased (fuzzy
//! matching, where stemming would distort edit distances). Only the chunk's sequence number is
//! stored — the text lives in redb.
//!
//! Each commit carries the highest sequence number indexed so far as its payload: the watermark
//! start-up replays from. Commits do not wait for the disk ([`super::deferred_sync`]):
//! [`LexicalIndex::sync`] makes them durable at shutdown and periodically, and an index whose
//! unsynced writes a machine crash may have lost is rebuilt at open.

use std::cmp::Reverse;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::deferred_sync::{self, DeferredSyncDirectory, Trust};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument, Term};

const STEMMED: &str = "ares_en_stem";
const EXACT: &str = "ares_exact";
/// Indexing memory; tantivy flushes a segment when it is reached.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LexicalError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Directory(String),
    #[error("the search index writer could not be re-created after a merge; restart the server")]
    WriterGone,
    #[error("search index writer lock poisoned")]
    Poisoned,
    #[error("the machine went down while search index writes were not yet on disk")]
    Unsynced,
}

/// A chunk as the lexical index sees it.
pub struct LexicalDoc<'a> {
    pub seq: u64,
    pub collection_id: u64,
    pub text: &'a str,
}

pub struct LexicalIndex {
    index: Index,
    directory: DeferredSyncDirectory,
    reader: IndexReader,
    /// `None` only if re-creating the writer after a purge failed (see [`Self::purge_deletions`]).
    writer: Mutex<Option<IndexWriter>>,
    seq: Field,
    scope: Field,
    stemmed: Field,
    exact: Field,
    /// Highest sequence number committed.
    watermark: Mutex<u64>,
}

fn schema() -> (Schema, [Field; 4]) {
    let mut builder = Schema::builder();
    let seq = builder.add_u64_field("seq", INDEXED | FAST);
    let scope = builder.add_text_field("scope", STRING);
    let indexing = |tokenizer: &str, record: IndexRecordOption| {
        TextOptions::default()
            .set_indexing_options(TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record))
    };
    let stemmed = builder.add_text_field("text", indexing(STEMMED, IndexRecordOption::WithFreqs));
    let exact = builder.add_text_field("exact", indexing(EXACT, IndexRecordOption::WithFreqs));
    (builder.build(), [seq, scope, stemmed, exact])
}

fn register_analyzers(index: &Index) {
    let stop_words = StopWordFilter::new(Language::English);
    let mut stemmed = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    if let Some(stop) = stop_words {
        stemmed = stemmed.filter_dynamic(stop);
    }
    index.tokenizers().register(STEMMED, stemmed.filter_dynamic(Stemmer::new(Language::English)).build());
    index.tokenizers().register(
        EXACT,
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .build(),
    );
}

fn scope_key(collection_id: u64) -> String {
    format!("c{collection_id}")
}

impl LexicalIndex {
    /// Open the index in `dir`, creating it when absent. An index that cannot be opened (or has
    /// another schema) is the caller's cue to delete the directory and rebuild.
    pub fn open(dir: &Path) -> Result<LexicalIndex, LexicalError> {
        std::fs::create_dir_all(dir).map_err(|e| LexicalError::Directory(format!("{}: {e}", dir.display())))?;
        let (schema, [seq, scope, stemmed, exact]) = schema();
        if deferred_sync::trust(dir) == Trust::Lost {
            return Err(LexicalError::Unsynced);
        }
        let directory = DeferredSyncDirectory::open(dir).map_err(|e| LexicalError::Directory(e.to_string()))?;
        let index = Index::open_or_create(directory.clone(), schema)?;
        register_analyzers(&index);
        let watermark = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v.get("watermark").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(LexicalIndex {
            index,
            directory,
            reader,
            writer: Mutex::new(Some(writer)),
            seq,
            scope,
            stemmed,
            exact,
            watermark: Mutex::new(watermark),
        })
    }

    /// Make every commit so far durable (module docs). Background merges may keep the index
    /// marked unsynced until a later sync; [`Self::close`] waits for them.
    pub fn sync(&self) -> Result<(), LexicalError> {
        let _writer = self.writer.lock().map_err(|_| LexicalError::Poisoned)?;
        self.directory.sync().map_err(|e| LexicalError::Directory(e.to_string()))?;
        Ok(())
    }

    /// At shutdown: let running merges finish, then sync everything. The writer is re-created,
    /// so the index stays usable.
    pub fn close(&self) -> Result<(), LexicalError> {
        let mut guard = self.writer.lock().map_err(|_| LexicalError::Poisoned)?;
        if let Some(writer) = guard.take() {
            writer.wait_merging_threads()?;
        }
        let synced = self.directory.sync().map_err(|e| LexicalError::Directory(e.to_string()));
        *guard = Some(self.index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?);
        if !synced? {
            tracing::warn!("search index writes were under way at shutdown; it will be rebuilt after a machine crash");
        }
        Ok(())
    }

    /// Every chunk with a sequence number up to this is indexed.
    pub fn watermark(&self) -> u64 {
        self.watermark.lock().map_or(0, |w| *w)
    }

    /// Add documents, drop deleted collections' documents and single removed chunks (those of
    /// a rolled-back ingest), then commit with `watermark` (which must cover every chunk
    /// committed to redb before these) and make the result searchable. Deletions apply to
    /// documents added before this call, not to `docs`.
    pub fn apply(
        &self,
        docs: &[LexicalDoc<'_>],
        deleted: &[u64],
        removed: &[u64],
        watermark: u64,
    ) -> Result<(), LexicalError> {
        let mut guard = self.writer.lock().map_err(|_| LexicalError::Poisoned)?;
        let writer = guard.as_mut().ok_or(LexicalError::WriterGone)?;
        for collection_id in deleted {
            writer.delete_term(Term::from_field_text(self.scope, &scope_key(*collection_id)));
        }
        for seq in removed {
            writer.delete_term(Term::from_field_u64(self.seq, *seq));
        }
        for doc in docs {
            let mut document = TantivyDocument::default();
            document.add_u64(self.seq, doc.seq);
            document.add_text(self.scope, scope_key(doc.collection_id));
            document.add_text(self.stemmed, doc.text);
            document.add_text(self.exact, doc.text);
            writer.add_document(document)?;
        }
        self.commit(&mut guard, watermark)?;
        if !deleted.is_empty() || !removed.is_empty() {
            self.purge_deletions(&mut guard)?;
        }
        Ok(())
    }

    /// Merge away every deleted document now. Until a merge drops them, deleted documents still
    /// count in BM25's statistics (document frequencies, field lengths), so scores would depend
    /// on whether a background merge had run, and differ from the same data indexed afresh
    /// (`ares reindex`, a rebuild at start). Deletions are rare (a collection deleted, an
    /// ingest rolled back), so they pay for it: wait for the merges in flight (the only way
    /// tantivy offers ends the writer), then merge each segment holding deletions with a new one.
    fn purge_deletions(&self, guard: &mut MutexGuard<'_, Option<IndexWriter>>) -> Result<(), LexicalError> {
        if let Some(writer) = guard.take() {
            writer.wait_merging_threads()?;
        }
        let mut writer = self.index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let with_deletes: Vec<_> =
            self.index.searchable_segment_metas()?.iter().filter(|m| m.has_deletes()).map(|m| m.id()).collect();
        let merged = if with_deletes.is_empty() { Ok(None) } else { writer.merge(&with_deletes).wait() };
        **guard = Some(writer);
        merged?;
        self.reader.reload()?;
        Ok(())
    }

    /// Commit what `writer` holds with the watermark raised to `watermark`, and reload.
    fn commit(&self, guard: &mut MutexGuard<'_, Option<IndexWriter>>, watermark: u64) -> Result<(), LexicalError> {
        let writer = guard.as_mut().ok_or(LexicalError::WriterGone)?;
        let mut current = self.watermark.lock().map_err(|_| LexicalError::Poisoned)?;
        let new_watermark = (*current).max(watermark);
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&serde_json::json!({ "watermark": new_watermark }).to_string());
        prepared.commit()?;
        *current = new_watermark;
        drop(current);
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 over the stemmed text: `(seq, score)` best first.
    pub fn bm25(&self, collection_id: u64, query: &str, limit: usize) -> Result<Vec<(u64, f32)>, LexicalError> {
        let terms = self.terms(self.stemmed, query)?;
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|t| (Occur::Should, Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>))
            .collect();
        self.search(collection_id, clauses, limit)
    }

    /// Fuzzy matching over the lower-cased text: each query term matches terms within an edit
    /// distance that grows with its length (0 up to 2 letters, 1 up to 5, else 2; a
    /// transposition costs one). Exact matches score BM25 on top, so they rank first.
    pub fn fuzzy(&self, collection_id: u64, query: &str, limit: usize) -> Result<Vec<(u64, f32)>, LexicalError> {
        let terms = self.terms(self.exact, query)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for term in terms {
            let length = term.value().as_str().map_or(0, |s| s.chars().count());
            clauses.push((Occur::Should, Box::new(FuzzyTermQuery::new(term.clone(), edit_distance(length), true))));
            clauses.push((Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))));
        }
        self.search(collection_id, clauses, limit)
    }

    fn search(
        &self,
        collection_id: u64,
        clauses: Vec<(Occur, Box<dyn Query>)>,
        limit: usize,
    ) -> Result<Vec<(u64, f32)>, LexicalError> {
        if clauses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let scope =
            TermQuery::new(Term::from_field_text(self.scope, &scope_key(collection_id)), IndexRecordOption::Basic);
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(ConstScoreQuery::new(Box::new(scope), 0.0))),
            (Occur::Must, Box::new(BooleanQuery::new(clauses))),
        ]);
        // Equal scores (the same text ingested twice) go to the older chunk: a total order, so
        // neither the cut at `limit` nor the order depends on how the index is split into
        // segments, which changes with merges and rebuilds.
        let collector = TopDocs::with_limit(limit).tweak_score(|segment: &SegmentReader| {
            let seqs = segment.fast_fields().u64("seq").ok();
            move |doc: DocId, score: Score| (score, Reverse(seqs.as_ref().and_then(|column| column.first(doc))))
        });
        let hits = self.reader.searcher().search(&query, &collector)?;
        Ok(hits.into_iter().filter_map(|((score, Reverse(seq)), _)| Some((seq?, score))).collect())
    }

    /// The query's distinct terms as `field`'s analyzer produces them.
    fn terms(&self, field: Field, query: &str) -> Result<Vec<Term>, LexicalError> {
        let mut analyzer = self.index.tokenizer_for_field(field)?;
        let mut stream = analyzer.token_stream(query);
        let mut out: Vec<Term> = Vec::new();
        while stream.advance() {
            let term = Term::from_field_text(field, &stream.token().text);
            if !out.contains(&term) {
                out.push(term);
            }
        }
        Ok(out)
    }

    /// Documents in the index (tests and start-up diagnostics).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Edits allowed for a query term of `length` characters.
pub fn edit_distance(length: usize) -> u8 {
    match length {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}
