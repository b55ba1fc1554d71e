//! The admin audit log: append-only, read newest first.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::AUDIT_LOG;
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    /// The reference's action names (`create_tenant`, …); the API translates on read.
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    /// JSON text, as the reference stores it.
    pub details: Option<String>,
    pub admin_ip: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl Record for AuditRecord {
    const TABLE: &'static str = "audit_log";
    const VERSION: u8 = 1;
}

pub fn append(txn: &WriteTransaction, entry: &AuditRecord) -> Result<(), Error> {
    let mut table = txn.open_table(AUDIT_LOG)?;
    table.insert((entry.created_at, entry.id.as_str()), encode(entry)?.as_slice())?;
    Ok(())
}

/// Newest first, skipping `offset` and returning at most `limit` entries.
pub fn page(txn: &ReadTransaction, limit: usize, offset: usize) -> Result<Vec<AuditRecord>, Error> {
    let table = txn.open_table(AUDIT_LOG)?;
    let mut out = Vec::with_capacity(limit.min(256));
    for entry in table.iter()?.rev().skip(offset).take(limit) {
        let (_, value) = entry?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}
