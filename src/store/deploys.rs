//! Deployment records: what ran, how it ended, and its (capped) output.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{DEPLOYS, DEPLOYS_BY_TIME};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    pub id: String,
    pub target: String,
    /// `running`, `success` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// stdout and stderr interleaved in arrival order; the tail when capped.
    pub output: String,
    pub exit_code: Option<i32>,
    /// Why it ended other than by its commands: cancelled, timed out, interrupted by restart.
    pub note: Option<String>,
}

impl Record for DeployRecord {
    const TABLE: &'static str = "deploys";
    const VERSION: u8 = 1;
}

pub fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Deploy '{id}' not found"))
}

/// The part of an id that orders deploys within a second (`<target>-<uuidv7>` → the uuid).
fn order_key(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// Insert or replace a record.
pub fn put(txn: &WriteTransaction, record: &DeployRecord) -> Result<(), Error> {
    txn.open_table(DEPLOYS)?.insert(record.id.as_str(), encode(record)?.as_slice())?;
    txn.open_table(DEPLOYS_BY_TIME)?.insert((record.started_at, order_key(&record.id)), record.id.as_str())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<DeployRecord>, Error> {
    txn.open_table(DEPLOYS)?.get(id)?.map(|v| decode(v.value())).transpose()
}

/// The `limit` most recent records, newest first.
pub fn recent(txn: &ReadTransaction, limit: usize) -> Result<Vec<DeployRecord>, Error> {
    let index = txn.open_table(DEPLOYS_BY_TIME)?;
    let table = txn.open_table(DEPLOYS)?;
    let mut out = Vec::new();
    for entry in index.iter()?.rev() {
        if out.len() >= limit {
            break;
        }
        let (_, id) = entry?;
        if let Some(value) = table.get(id.value())? {
            out.push(decode(value.value())?);
        }
    }
    Ok(out)
}

/// Remove a finished record; a running one is a conflict.
pub fn delete(txn: &WriteTransaction, id: &str) -> Result<DeployRecord, Error> {
    let mut table = txn.open_table(DEPLOYS)?;
    let record: DeployRecord = match table.get(id)? {
        Some(value) => decode(value.value())?,
        None => return Err(not_found(id)),
    };
    if record.status == "running" {
        return Err(Error::Conflict(format!("Deploy '{id}' is still running; cancel it first")));
    }
    table.remove(id)?;
    txn.open_table(DEPLOYS_BY_TIME)?.remove((record.started_at, order_key(id)))?;
    Ok(record)
}

/// At start-up: every record still `running` belonged to a previous process. Returns how many
/// were marked failed.
pub fn mark_interrupted(txn: &WriteTransaction, now: i64) -> Result<usize, Error> {
    let mut table = txn.open_table(DEPLOYS)?;
    let stale: Vec<DeployRecord> = table
        .iter()?
        .filter_map(|entry| entry.ok().and_then(|(_, v)| decode::<DeployRecord>(v.value()).ok()))
        .filter(|r| r.status == "running")
        .collect();
    for mut record in stale.iter().cloned() {
        record.status = "failed".into();
        record.finished_at = Some(now);
        record.note = Some("interrupted by restart".into());
        record.output.push_str("\n[deploy interrupted by restart]\n");
        table.insert(record.id.as_str(), encode(&record)?.as_slice())?;
    }
    Ok(stale.len())
}
