//! Asynchronous RAG ingests: the job, its progress, and the document it ingests until it is
//! done (so a job interrupted by a restart runs again from what the database holds).

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::RAG_JOBS;
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Cancelled)
    }
}

/// The ingest request a job runs, kept until the job ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDocument {
    pub content: String,
    /// The chunking strategy's name.
    pub strategy: String,
    pub metadata_json: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RagJobRecord {
    pub id: String,
    /// The user id, or a tenant's `tenant:<id>` namespace.
    pub owner: String,
    pub collection: String,
    pub state: JobState,
    pub chunks_total: u64,
    pub chunks_embedded: u64,
    pub error: Option<String>,
    /// The chunk ids, once completed.
    pub chunk_ids: Vec<String>,
    /// `None` once the job has ended: the text is not kept twice.
    pub document: Option<JobDocument>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl Record for RagJobRecord {
    const TABLE: &'static str = "rag_jobs";
    const VERSION: u8 = 1;
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<RagJobRecord>, Error> {
    match txn.open_table(RAG_JOBS)?.get(id)? {
        Some(value) => Ok(Some(decode(value.value())?)),
        None => Ok(None),
    }
}

pub fn put(txn: &WriteTransaction, job: &RagJobRecord) -> Result<(), Error> {
    txn.open_table(RAG_JOBS)?.insert(job.id.as_str(), encode(job)?.as_slice())?;
    Ok(())
}

/// Change a job in place; `None` when it does not exist.
pub fn update(
    txn: &WriteTransaction,
    id: &str,
    change: impl FnOnce(&mut RagJobRecord),
) -> Result<Option<RagJobRecord>, Error> {
    let mut table = txn.open_table(RAG_JOBS)?;
    let Some(mut job) = table.get(id)?.map(|v| decode::<RagJobRecord>(v.value())).transpose()? else {
        return Ok(None);
    };
    change(&mut job);
    table.insert(id, encode(&job)?.as_slice())?;
    Ok(Some(job))
}

/// Jobs not yet ended (queued or running when the server stopped), oldest first.
pub fn unfinished(txn: &ReadTransaction) -> Result<Vec<RagJobRecord>, Error> {
    let table = txn.open_table(RAG_JOBS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        let job: RagJobRecord = decode(value.value())?;
        if !job.state.is_final() {
            out.push(job);
        }
    }
    out.sort_by_key(|j| j.created_at);
    Ok(out)
}
