//! RAG collections and chunks (API.md §1.8) — the source of truth the search indexes are built
//! from (DESIGN.md §4).
//!
//! Every chunk gets a sequence number from a counter that only grows, even across deletions, so
//! "every chunk up to N" is a meaningful watermark for a derived index. A collection is owned by
//! one user; its name is unique per user and another user's collection of the same name is a
//! different collection with a different id. Deleting a collection leaves a tombstone until the
//! lexical index has dropped its documents too.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{
    RAG_CHUNKS, RAG_COLLECTION_BY_NAME, RAG_COLLECTION_CHUNKS, RAG_COLLECTIONS, RAG_COUNTERS, RAG_TOMBSTONES,
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
    /// A JSON object: the request's metadata plus title, source and tags.
    pub metadata_json: String,
    pub embedding: Vec<f32>,
    pub created_at: i64,
}

impl Record for ChunkRecord {
    const TABLE: &'static str = "rag_chunks";
    const VERSION: u8 = 1;
}

const NEXT_SEQ: &str = "next_chunk_seq";
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

/// A chunk to store; its sequence number is assigned by [`append`].
pub struct NewChunk {
    pub chunk_id: String,
    pub document_id: String,
    pub index: u32,
    pub content: String,
    pub metadata_json: String,
    pub embedding: Vec<f32>,
}

/// Store `chunks` in the user's collection `name`, creating it (with `embedder`/`dimensions`)
/// when missing. Returns the collection and the sequence numbers given, in order.
///
/// The caller has checked compatibility; a collection created concurrently with another
/// embedder is still refused here, inside the transaction.
pub fn append(
    txn: &WriteTransaction,
    user_id: &str,
    name: &str,
    embedder: &str,
    dimensions: u32,
    chunks: &[NewChunk],
    now: i64,
) -> Result<(CollectionRecord, Vec<u64>), Error> {
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
    let mut collection = match existing {
        Some(c) if c.embedder != embedder || c.dimensions != dimensions => {
            return Err(Error::Conflict(format!("Collection '{name}' uses another embedder ({})", c.embedder)));
        }
        Some(c) => c,
        None => {
            let id = next(txn, NEXT_COLLECTION)?;
            txn.open_table(RAG_COLLECTION_BY_NAME)?.insert((user_id, name), id)?;
            CollectionRecord {
                id,
                user_id: user_id.to_string(),
                name: name.to_string(),
                embedder: embedder.to_string(),
                dimensions,
                chunk_count: 0,
                document_count: 0,
                created_at: now,
                updated_at: now,
            }
        }
    };

    let mut seqs = Vec::with_capacity(chunks.len());
    {
        let mut table = txn.open_table(RAG_CHUNKS)?;
        let mut by_collection = txn.open_table(RAG_COLLECTION_CHUNKS)?;
        let first = next(txn, NEXT_SEQ)?;
        for (i, chunk) in chunks.iter().enumerate() {
            let seq = first + i as u64;
            let record = ChunkRecord {
                seq,
                collection_id: collection.id,
                chunk_id: chunk.chunk_id.clone(),
                document_id: chunk.document_id.clone(),
                index: chunk.index,
                content: chunk.content.clone(),
                metadata_json: chunk.metadata_json.clone(),
                embedding: chunk.embedding.clone(),
                created_at: now,
            };
            table.insert(seq, encode(&record)?.as_slice())?;
            by_collection.insert((collection.id, seq), ())?;
            seqs.push(seq);
        }
        if let Some(last) = seqs.last() {
            txn.open_table(RAG_COUNTERS)?.insert(NEXT_SEQ, last + 1)?;
        }
    }
    collection.chunk_count += chunks.len() as u64;
    collection.document_count += 1;
    collection.updated_at = now;
    txn.open_table(RAG_COLLECTIONS)?.insert(collection.id, encode(&collection)?.as_slice())?;
    Ok((collection, seqs))
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
