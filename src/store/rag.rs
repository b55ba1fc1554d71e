//! RAG collections and chunks (API.md §1.8) — the source of truth the search indexes are built
//! from (DESIGN.md §4).
//!
//! Every chunk gets a sequence number from a counter that only grows, even across deletions, so
//! "every chunk up to N" is a meaningful watermark for a derived index. A collection is owned by
//! one user; its name is unique per user and another user's collection of the same name is a
//! different collection with a different id. Deleting a collection leaves a tombstone until the
//! lexical index has dropped its documents too.
//!
//! An ingested document's metadata is stored once (`rag_documents`), not in each of its chunks:
//! copied per chunk, 500 KB of metadata on a 1 MB document cost 1.4 GB. A document is written in
//! bounded batches so other writers interleave: [`begin_document`] checks the per-user limits and
//! reserves the document's chunks (exact under concurrency, because every write runs on the one
//! writer thread), [`append_batch`] adds chunks, and the last batch clears the pending record.
//! An ingest that fails or is cut by a crash is rolled back by [`abort_document`].

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{
    RAG_CHUNKS, RAG_COLLECTION_BY_NAME, RAG_COLLECTION_CHUNKS, RAG_COLLECTIONS, RAG_COUNTERS, RAG_DOCUMENTS,
    RAG_PENDING_DOCUMENTS, RAG_TOMBSTONES, RAG_USER_CHUNKS,
};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRecord {
    pub id: u64,
    pub user_id: String,
    pub name: String,
    /// The embedder's descriptor (`hash-v1:384`, `ollama:nomic-embed-text`, …).
    pub embedder: String,
    pub dimensions: u32,
    pub chunk_count: u64,
    /// Ingest calls (source documents) that contributed chunks.
    pub document_count: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for CollectionRecord {
    const TABLE: &'static str = "rag_collections";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub seq: u64,
    pub collection_id: u64,
    /// `<document uuid>_<index>`, as the reference returns them.
    pub chunk_id: String,
    pub document_id: String,
    pub index: u32,
    pub content: String,
    pub embedding: Vec<f32>,
    pub created_at: i64,
}

impl Record for ChunkRecord {
    const TABLE: &'static str = "rag_chunks";
    /// Version 1 carried the document's metadata in every chunk (see [`ChunkRecordV1`]).
    const VERSION: u8 = 2;
}

/// A chunk as schema versions 7 and 8 stored it, with its own copy of the metadata; read only
/// by migration 9, which moves the metadata to `rag_documents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecordV1 {
    pub seq: u64,
    pub collection_id: u64,
    pub chunk_id: String,
    pub document_id: String,
    pub index: u32,
    pub content: String,
    /// The request's metadata plus `document_id`, `chunk_index` and `created_at`.
    pub metadata_json: String,
    pub embedding: Vec<f32>,
    pub created_at: i64,
}

impl Record for ChunkRecordV1 {
    const TABLE: &'static str = "rag_chunks";
    const VERSION: u8 = 1;
}

/// One ingested document: what its chunks share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub collection_id: u64,
    pub document_id: String,
    /// A JSON object: the request's metadata plus title, source, tags and chunking strategy.
    /// Each chunk's `document_id`, `chunk_index` and `created_at` are added when it is read.
    pub metadata_json: String,
    pub created_at: i64,
}

impl Record for DocumentRecord {
    const TABLE: &'static str = "rag_documents";
    const VERSION: u8 = 1;
}

/// An ingest whose last batch has not been committed yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDocumentRecord {
    pub user_id: String,
    /// Chunks reserved against the user's limit when the ingest began.
    pub reserved: u64,
    /// Chunks committed so far.
    pub written: u64,
    /// The ingest created the collection: rolling it back removes the collection when empty.
    pub created_collection: bool,
}

impl Record for PendingDocumentRecord {
    const TABLE: &'static str = "rag_pending_documents";
    const VERSION: u8 = 1;
}

pub(crate) const NEXT_SEQ: &str = "next_chunk_seq";
const NEXT_COLLECTION: &str = "next_collection_id";

fn next(txn: &WriteTransaction, counter: &str) -> Result<u64, Error> {
    let mut table = txn.open_table(RAG_COUNTERS)?;
    let value = table.get(counter)?.map_or(1, |v| v.value());
    table.insert(counter, value + 1)?;
    Ok(value)
}

pub fn collection_by_name(txn: &ReadTransaction, user_id: &str, name: &str) -> Result<Option<CollectionRecord>, Error> {
    let Some(id) = txn.open_table(RAG_COLLECTION_BY_NAME)?.get((user_id, name))?.map(|v| v.value()) else {
        return Ok(None);
    };
    collection(txn, id)
}

pub fn collection(txn: &ReadTransaction, id: u64) -> Result<Option<CollectionRecord>, Error> {
    txn.open_table(RAG_COLLECTIONS)?.get(id)?.map(|v| decode(v.value())).transpose()
}

/// A user's collections by name.
pub fn collections_of(txn: &ReadTransaction, user_id: &str) -> Result<Vec<CollectionRecord>, Error> {
    let names = txn.open_table(RAG_COLLECTION_BY_NAME)?;
    let mut out = Vec::new();
    for entry in names.range((user_id, "")..)? {
        let (key, id) = entry?;
        if key.value().0 != user_id {
            break;
        }
        if let Some(record) = collection(txn, id.value())? {
            out.push(record);
        }
    }
    Ok(out)
}

/// Every collection (start-up and reindex).
pub fn all_collections(txn: &ReadTransaction) -> Result<Vec<CollectionRecord>, Error> {
    super::all_values(txn, RAG_COLLECTIONS)
}

/// A chunk to store; its sequence number is assigned by [`append_batch`].
pub struct NewChunk {
    pub chunk_id: String,
    pub index: u32,
    pub content: String,
    pub embedding: Vec<f32>,
}

/// Per-user limits checked by [`begin_document`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_collections: usize,
    pub max_chunks: u64,
}

/// What [`begin_document`] decided. A refusal writes nothing.
#[derive(Debug)]
pub enum Begun {
    Started(CollectionRecord),
    /// A per-user limit would be exceeded; the message is safe to show to clients.
    LimitReached(String),
}

/// A document to begin; see [`begin_document`].
pub struct NewDocument<'a> {
    pub user_id: &'a str,
    pub collection: &'a str,
    pub embedder: &'a str,
    pub dimensions: u32,
    pub document_id: &'a str,
    pub metadata_json: &'a str,
    pub chunks: u64,
}

fn user_chunks_of(txn: &WriteTransaction, user_id: &str) -> Result<u64, Error> {
    Ok(txn.open_table(RAG_USER_CHUNKS)?.get(user_id)?.map_or(0, |v| v.value()))
}

fn adjust_user_chunks(txn: &WriteTransaction, user_id: &str, add: u64, remove: u64) -> Result<(), Error> {
    let mut table = txn.open_table(RAG_USER_CHUNKS)?;
    let current = table.get(user_id)?.map_or(0, |v| v.value());
    let next = current.saturating_add(add).saturating_sub(remove);
    if next == 0 {
        table.remove(user_id)?;
    } else {
        table.insert(user_id, next)?;
    }
    Ok(())
}

/// The user's chunks, including those reserved by ingests still running.
pub fn user_chunks(txn: &ReadTransaction, user_id: &str) -> Result<u64, Error> {
    Ok(txn.open_table(RAG_USER_CHUNKS)?.get(user_id)?.map_or(0, |v| v.value()))
}

/// How many collections the user owns.
pub fn collection_count(txn: &ReadTransaction, user_id: &str) -> Result<usize, Error> {
    count_names(&txn.open_table(RAG_COLLECTION_BY_NAME)?, user_id)
}

fn count_names(names: &impl ReadableTable<(&'static str, &'static str), u64>, user_id: &str) -> Result<usize, Error> {
    let mut count = 0;
    for entry in names.range((user_id, "")..)? {
        if entry?.0.value().0 != user_id {
            break;
        }
        count += 1;
    }
    Ok(count)
}

/// Start a document of `chunks` chunks in the user's collection, creating the collection (with
/// `embedder`/`dimensions`) when missing: checks the per-user limits against committed and
/// reserved chunks, reserves this document's, and stores its metadata once. Chunks follow with
/// [`append_batch`].
///
/// The caller has checked compatibility; a collection created concurrently with another
/// embedder is still refused here, inside the transaction.
pub fn begin_document(
    txn: &WriteTransaction,
    document: &NewDocument<'_>,
    limits: Limits,
    now: i64,
) -> Result<Begun, Error> {
    let NewDocument { user_id, collection: name, embedder, dimensions, document_id, metadata_json, chunks } = *document;
    let existing = {
        let names = txn.open_table(RAG_COLLECTION_BY_NAME)?;
        let id = names.get((user_id, name))?.map(|v| v.value());
        match id {
            Some(id) => {
                txn.open_table(RAG_COLLECTIONS)?.get(id)?.map(|v| decode::<CollectionRecord>(v.value())).transpose()?
            }
            None => None,
        }
    };
    if let Some(c) = &existing
        && (c.embedder != embedder || c.dimensions != dimensions)
    {
        return Err(Error::Conflict(format!("Collection '{name}' uses another embedder ({})", c.embedder)));
    }
    if existing.is_none() && count_names(&txn.open_table(RAG_COLLECTION_BY_NAME)?, user_id)? >= limits.max_collections {
        return Ok(Begun::LimitReached(format!(
            "Collection limit reached: {} collections per user",
            limits.max_collections
        )));
    }
    let held = user_chunks_of(txn, user_id)?;
    if held.saturating_add(chunks) > limits.max_chunks {
        return Ok(Begun::LimitReached(format!(
            "Chunk limit reached: this document has {chunks} chunks, {held} of {} per user are in use",
            limits.max_chunks
        )));
    }
    let created_collection = existing.is_none();
    let collection = match existing {
        Some(c) => c,
        None => {
            let id = next(txn, NEXT_COLLECTION)?;
            txn.open_table(RAG_COLLECTION_BY_NAME)?.insert((user_id, name), id)?;
            let record = CollectionRecord {
                id,
                user_id: user_id.to_string(),
                name: name.to_string(),
                embedder: embedder.to_string(),
                dimensions,
                chunk_count: 0,
                document_count: 0,
                created_at: now,
                updated_at: now,
            };
            txn.open_table(RAG_COLLECTIONS)?.insert(id, encode(&record)?.as_slice())?;
            record
        }
    };
    adjust_user_chunks(txn, user_id, chunks, 0)?;
    let pending =
        PendingDocumentRecord { user_id: user_id.to_string(), reserved: chunks, written: 0, created_collection };
    txn.open_table(RAG_PENDING_DOCUMENTS)?.insert((collection.id, document_id), encode(&pending)?.as_slice())?;
    let record = DocumentRecord {
        collection_id: collection.id,
        document_id: document_id.to_string(),
        metadata_json: metadata_json.to_string(),
        created_at: now,
    };
    txn.open_table(RAG_DOCUMENTS)?.insert((collection.id, document_id), encode(&record)?.as_slice())?;
    Ok(Begun::Started(collection))
}

/// Append a batch of a begun document's chunks; `last` completes the document. Returns the
/// collection and the sequence numbers given, in order. Fails with `NotFound` when the document
/// is no longer pending (its collection was deleted meanwhile) and with `Conflict` when the
/// batch would exceed what [`begin_document`] reserved.
pub fn append_batch(
    txn: &WriteTransaction,
    collection_id: u64,
    document_id: &str,
    chunks: &[NewChunk],
    last: bool,
    now: i64,
) -> Result<(CollectionRecord, Vec<u64>), Error> {
    let gone = || Error::NotFound("The collection was deleted during the ingest".into());
    let mut pending: PendingDocumentRecord = txn
        .open_table(RAG_PENDING_DOCUMENTS)?
        .get((collection_id, document_id))?
        .map(|v| decode(v.value()))
        .transpose()?
        .ok_or_else(gone)?;
    let mut collection: CollectionRecord = txn
        .open_table(RAG_COLLECTIONS)?
        .get(collection_id)?
        .map(|v| decode(v.value()))
        .transpose()?
        .ok_or_else(gone)?;
    let count = chunks.len() as u64;
    if pending.written + count > pending.reserved {
        return Err(Error::Conflict("an ingest wrote more chunks than it reserved".into()));
    }

    let mut seqs = Vec::with_capacity(chunks.len());
    {
        let mut table = txn.open_table(RAG_CHUNKS)?;
        let mut by_collection = txn.open_table(RAG_COLLECTION_CHUNKS)?;
        let first = next(txn, NEXT_SEQ)?;
        for (i, chunk) in chunks.iter().enumerate() {
            let seq = first + i as u64;
            let record = ChunkRecord {
                seq,
                collection_id,
                chunk_id: chunk.chunk_id.clone(),
                document_id: document_id.to_string(),
                index: chunk.index,
                content: chunk.content.clone(),
                embedding: chunk.embedding.clone(),
                created_at: now,
            };
            table.insert(seq, encode(&record)?.as_slice())?;
            by_collection.insert((collection_id, seq), ())?;
            seqs.push(seq);
        }
        if let Some(last) = seqs.last() {
            txn.open_table(RAG_COUNTERS)?.insert(NEXT_SEQ, last + 1)?;
        }
    }
    pending.written += count;
    collection.chunk_count += count;
    collection.updated_at = now;
    let mut pending_table = txn.open_table(RAG_PENDING_DOCUMENTS)?;
    if last {
        pending_table.remove((collection_id, document_id))?;
        collection.document_count += 1;
        // Chunks reserved but never produced (none when the caller counted right) are released.
        adjust_user_chunks(txn, &pending.user_id, 0, pending.reserved.saturating_sub(pending.written))?;
    } else {
        pending_table.insert((collection_id, document_id), encode(&pending)?.as_slice())?;
    }
    txn.open_table(RAG_COLLECTIONS)?.insert(collection_id, encode(&collection)?.as_slice())?;
    Ok((collection, seqs))
}

/// What [`abort_document`] removed, for the derived indexes.
#[derive(Debug, Default)]
pub struct Aborted {
    /// Sequence numbers of the chunks deleted.
    pub seqs: Vec<u64>,
    /// The collection the ingest had created, now deleted (with a tombstone).
    pub collection: Option<CollectionRecord>,
}

/// Roll back an unfinished document: delete its chunks and metadata, release its reservation,
/// and remove the collection it created when nothing else is in it (leaving a tombstone for
/// the indexes). A document that is not pending (it completed, or its collection was deleted)
/// is left alone.
pub fn abort_document(txn: &WriteTransaction, collection_id: u64, document_id: &str) -> Result<Aborted, Error> {
    let Some(pending) = txn
        .open_table(RAG_PENDING_DOCUMENTS)?
        .remove((collection_id, document_id))?
        .map(|v| decode::<PendingDocumentRecord>(v.value()))
        .transpose()?
    else {
        return Ok(Aborted::default());
    };
    txn.open_table(RAG_DOCUMENTS)?.remove((collection_id, document_id))?;
    let Some(mut collection) = txn
        .open_table(RAG_COLLECTIONS)?
        .get(collection_id)?
        .map(|v| decode::<CollectionRecord>(v.value()))
        .transpose()?
    else {
        // Deleted meanwhile: its deletion released the chunks written so far.
        adjust_user_chunks(txn, &pending.user_id, 0, pending.reserved.saturating_sub(pending.written))?;
        return Ok(Aborted::default());
    };
    adjust_user_chunks(txn, &pending.user_id, 0, pending.reserved)?;
    let mut doomed = Vec::new();
    if pending.written > 0 {
        // This document's chunks are the collection's newest; a scan from the end finds them.
        {
            let by_collection = txn.open_table(RAG_COLLECTION_CHUNKS)?;
            let chunks = txn.open_table(RAG_CHUNKS)?;
            for entry in by_collection.range((collection_id, 0)..=(collection_id, u64::MAX))?.rev() {
                let seq = entry?.0.value().1;
                let Some(chunk) = chunks.get(seq)?.map(|v| decode::<ChunkRecord>(v.value())).transpose()? else {
                    continue;
                };
                if chunk.document_id == document_id {
                    doomed.push(seq);
                    if doomed.len() as u64 == pending.written {
                        break;
                    }
                }
            }
        }
        let mut chunks = txn.open_table(RAG_CHUNKS)?;
        let mut by_collection = txn.open_table(RAG_COLLECTION_CHUNKS)?;
        for seq in &doomed {
            chunks.remove(*seq)?;
            by_collection.remove((collection_id, *seq))?;
        }
        collection.chunk_count = collection.chunk_count.saturating_sub(doomed.len() as u64);
    }
    let others_pending = txn
        .open_table(RAG_PENDING_DOCUMENTS)?
        .range((collection_id, "")..)?
        .next()
        .transpose()?
        .is_some_and(|(key, _)| key.value().0 == collection_id);
    if pending.created_collection && collection.chunk_count == 0 && collection.document_count == 0 && !others_pending {
        let removed = delete_collection(txn, &collection.user_id, &collection.name)?;
        return Ok(Aborted { seqs: doomed, collection: Some(removed) });
    }
    txn.open_table(RAG_COLLECTIONS)?.insert(collection_id, encode(&collection)?.as_slice())?;
    Ok(Aborted { seqs: doomed, collection: None })
}

/// Documents whose ingest never finished (start-up rolls them back).
pub fn pending_documents(txn: &ReadTransaction) -> Result<Vec<(u64, String)>, Error> {
    let table = txn.open_table(RAG_PENDING_DOCUMENTS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, _) = entry?;
        let (collection_id, document_id) = key.value();
        out.push((collection_id, document_id.to_string()));
    }
    Ok(out)
}

/// A document's stored metadata.
pub fn document(txn: &ReadTransaction, collection_id: u64, document_id: &str) -> Result<Option<DocumentRecord>, Error> {
    txn.open_table(RAG_DOCUMENTS)?.get((collection_id, document_id))?.map(|v| decode(v.value())).transpose()
}

pub fn chunk(txn: &ReadTransaction, seq: u64) -> Result<Option<ChunkRecord>, Error> {
    txn.open_table(RAG_CHUNKS)?.get(seq)?.map(|v| decode(v.value())).transpose()
}

/// Chunks with a sequence number above `after`, in order, at most `limit` (replay in batches).
pub fn chunks_after(txn: &ReadTransaction, after: u64, limit: usize) -> Result<Vec<ChunkRecord>, Error> {
    let table = txn.open_table(RAG_CHUNKS)?;
    let mut out = Vec::new();
    for entry in table.range(after.saturating_add(1)..)? {
        out.push(decode(entry?.1.value())?);
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// A collection's chunk sequence numbers above `after`, in order.
pub fn collection_seqs_after(txn: &ReadTransaction, collection_id: u64, after: u64) -> Result<Vec<u64>, Error> {
    let table = txn.open_table(RAG_COLLECTION_CHUNKS)?;
    let mut out = Vec::new();
    for entry in table.range((collection_id, after.saturating_add(1))..=(collection_id, u64::MAX))? {
        out.push(entry?.0.value().1);
    }
    Ok(out)
}

/// The highest sequence number ever given (0 when none).
pub fn last_seq(txn: &ReadTransaction) -> Result<u64, Error> {
    Ok(txn.open_table(RAG_COUNTERS)?.get(NEXT_SEQ)?.map_or(0, |v| v.value().saturating_sub(1)))
}

/// Delete a user's collection and every chunk of it, leaving a tombstone for the indexes.
/// Returns the deleted collection.
pub fn delete_collection(txn: &WriteTransaction, user_id: &str, name: &str) -> Result<CollectionRecord, Error> {
    let id = txn
        .open_table(RAG_COLLECTION_BY_NAME)?
        .remove((user_id, name))?
        .map(|v| v.value())
        .ok_or_else(|| Error::NotFound(format!("Collection '{name}' not found")))?;
    let collection: CollectionRecord = txn
        .open_table(RAG_COLLECTIONS)?
        .remove(id)?
        .map(|v| decode(v.value()))
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("Collection '{name}' not found")))?;
    let seqs: Vec<u64> = {
        let table = txn.open_table(RAG_COLLECTION_CHUNKS)?;
        let mut seqs = Vec::new();
        for entry in table.range((id, 0)..=(id, u64::MAX))? {
            seqs.push(entry?.0.value().1);
        }
        seqs
    };
    let mut chunks = txn.open_table(RAG_CHUNKS)?;
    let mut by_collection = txn.open_table(RAG_COLLECTION_CHUNKS)?;
    for seq in seqs {
        chunks.remove(seq)?;
        by_collection.remove((id, seq))?;
    }
    // An ingest still running into it keeps its reservation until it sees the collection gone
    // and rolls back; only committed chunks are released here.
    adjust_user_chunks(txn, user_id, 0, collection.chunk_count)?;
    let mut documents = txn.open_table(RAG_DOCUMENTS)?;
    let pending = txn.open_table(RAG_PENDING_DOCUMENTS)?;
    let mut finished = Vec::new();
    for entry in documents.range((id, "")..)? {
        let (key, _) = entry?;
        let (collection_id, document_id) = key.value();
        if collection_id != id {
            break;
        }
        if pending.get((id, document_id))?.is_none() {
            finished.push(document_id.to_string());
        }
    }
    for document_id in &finished {
        documents.remove((id, document_id.as_str()))?;
    }
    txn.open_table(RAG_TOMBSTONES)?.insert(id, ())?;
    Ok(collection)
}

/// Collections deleted whose index entries may still exist.
pub fn tombstones(txn: &ReadTransaction) -> Result<Vec<u64>, Error> {
    let table = txn.open_table(RAG_TOMBSTONES)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(entry?.0.value());
    }
    Ok(out)
}

pub fn clear_tombstones(txn: &WriteTransaction, ids: &[u64]) -> Result<(), Error> {
    let mut table = txn.open_table(RAG_TOMBSTONES)?;
    for id in ids {
        table.remove(*id)?;
    }
    Ok(())
}

/// Replace a chunk's embedding (re-embedding by `ares reindex`).
pub fn set_embedding(txn: &WriteTransaction, seq: u64, embedding: Vec<f32>) -> Result<(), Error> {
    let mut table = txn.open_table(RAG_CHUNKS)?;
    let Some(mut record) = table.get(seq)?.map(|v| decode::<ChunkRecord>(v.value())).transpose()? else {
        return Ok(());
    };
    record.embedding = embedding;
    table.insert(seq, encode(&record)?.as_slice())?;
    Ok(())
}

/// Record a collection's new embedder after re-embedding.
pub fn set_embedder(txn: &WriteTransaction, id: u64, embedder: &str, dimensions: u32) -> Result<(), Error> {
    let mut table = txn.open_table(RAG_COLLECTIONS)?;
    let Some(mut record) = table.get(id)?.map(|v| decode::<CollectionRecord>(v.value())).transpose()? else {
        return Ok(());
    };
    record.embedder = embedder.to_string();
    record.dimensions = dimensions;
    table.insert(id, encode(&record)?.as_slice())?;
    Ok(())
}

/// Keys each chunk's metadata carried in schema versions 7 and 8 that are now derived from the
/// chunk when it is read.
pub const PER_CHUNK_METADATA_KEYS: [&str; 3] = ["document_id", "chunk_index", "created_at"];

/// Chunks rewritten per step of migration 9 (a range cannot stay open while its table is
/// written).
const MIGRATION_BATCH: usize = 1024;

/// Migration 9: rewrite every `ChunkRecord` v1 as v2, moving its metadata to one
/// `DocumentRecord` per document (taken from the document's first chunk, without the per-chunk
/// keys), and count each user's chunks into `rag_user_chunks`.
pub(super) fn migrate_chunks_to_documents(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(RAG_DOCUMENTS)?;
    txn.open_table(RAG_USER_CHUNKS)?;
    txn.open_table(RAG_PENDING_DOCUMENTS)?;
    let mut after: Option<u64> = None;
    loop {
        let batch: Vec<(u64, Vec<u8>)> = {
            let table = txn.open_table(RAG_CHUNKS)?;
            let range = match after {
                Some(seq) => table.range(seq.saturating_add(1)..)?,
                None => table.range(0..)?,
            };
            let mut out = Vec::with_capacity(MIGRATION_BATCH);
            for entry in range.take(MIGRATION_BATCH) {
                let (key, value) = entry?;
                out.push((key.value(), value.value().to_vec()));
            }
            out
        };
        let Some((last, _)) = batch.last() else { break };
        after = Some(*last);
        let mut chunks = txn.open_table(RAG_CHUNKS)?;
        let mut documents = txn.open_table(RAG_DOCUMENTS)?;
        for (seq, bytes) in batch {
            if bytes.first() == Some(&ChunkRecord::VERSION) {
                continue;
            }
            let old: ChunkRecordV1 = decode(&bytes)?;
            if documents.get((old.collection_id, old.document_id.as_str()))?.is_none() {
                let metadata_json = match serde_json::from_str::<serde_json::Value>(&old.metadata_json) {
                    Ok(serde_json::Value::Object(mut map)) => {
                        for key in PER_CHUNK_METADATA_KEYS {
                            map.remove(key);
                        }
                        serde_json::Value::Object(map).to_string()
                    }
                    _ => "{}".to_string(),
                };
                let document = DocumentRecord {
                    collection_id: old.collection_id,
                    document_id: old.document_id.clone(),
                    metadata_json,
                    created_at: old.created_at,
                };
                documents.insert((old.collection_id, old.document_id.as_str()), encode(&document)?.as_slice())?;
            }
            let record = ChunkRecord {
                seq: old.seq,
                collection_id: old.collection_id,
                chunk_id: old.chunk_id,
                document_id: old.document_id,
                index: old.index,
                content: old.content,
                embedding: old.embedding,
                created_at: old.created_at,
            };
            chunks.insert(seq, encode(&record)?.as_slice())?;
        }
    }
    let collections: Vec<CollectionRecord> = {
        let table = txn.open_table(RAG_COLLECTIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        out
    };
    for collection in collections {
        adjust_user_chunks(txn, &collection.user_id, collection.chunk_count, 0)?;
    }
    Ok(())
}
