//! Operator alerts, raised by the system (quota thresholds) and resolved by an admin.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{ALERT_MARKS, ALERTS, ALERTS_BY_TIME};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub source: String,
    pub title: String,
    pub message: String,
    pub tenant_id: Option<String>,
    pub resolved: bool,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
}

impl Record for AlertRecord {
    const TABLE: &'static str = "alerts";
    const VERSION: u8 = 1;
}

/// Store `alert` unless an alert with the same `dedupe_key` was raised before. Returns whether
/// it was stored.
pub fn raise_once(txn: &WriteTransaction, dedupe_key: &str, alert: &AlertRecord) -> Result<bool, Error> {
    let mut marks = txn.open_table(ALERT_MARKS)?;
    if marks.get(dedupe_key)?.is_some() {
        return Ok(false);
    }
    marks.insert(dedupe_key, alert.id.as_str())?;
    txn.open_table(ALERTS)?.insert(alert.id.as_str(), encode(alert)?.as_slice())?;
    txn.open_table(ALERTS_BY_TIME)?.insert((alert.created_at, alert.id.as_str()), ())?;
    Ok(true)
}

/// Newest first, filtered, at most `limit`.
pub fn list(
    txn: &ReadTransaction,
    severity: Option<&str>,
    resolved: Option<bool>,
    limit: usize,
) -> Result<Vec<AlertRecord>, Error> {
    let index = txn.open_table(ALERTS_BY_TIME)?;
    let alerts = txn.open_table(ALERTS)?;
    let mut out = Vec::new();
    for entry in index.iter()?.rev() {
        if out.len() >= limit {
            break;
        }
        let (key, _) = entry?;
        let Some(value) = alerts.get(key.value().1)? else { continue };
        let alert: AlertRecord = decode(value.value())?;
        if severity.is_some_and(|s| alert.severity != s) || resolved.is_some_and(|r| alert.resolved != r) {
            continue;
        }
        out.push(alert);
    }
    Ok(out)
}

/// Mark resolved. An already resolved alert is returned unchanged, with `false`.
pub fn resolve(txn: &WriteTransaction, id: &str, by: Option<String>, now: i64) -> Result<(AlertRecord, bool), Error> {
    let mut alerts = txn.open_table(ALERTS)?;
    let mut alert: AlertRecord = match alerts.get(id)? {
        Some(value) => decode(value.value())?,
        None => return Err(Error::NotFound("Alert not found".into())),
    };
    if alert.resolved {
        return Ok((alert, false));
    }
    alert.resolved = true;
    alert.resolved_at = Some(now);
    alert.resolved_by = by;
    alerts.insert(id, encode(&alert)?.as_slice())?;
    Ok((alert, true))
}

pub fn count_unresolved(txn: &ReadTransaction) -> Result<u64, Error> {
    let mut count = 0;
    for entry in txn.open_table(ALERTS)?.iter()? {
        let (_, value) = entry?;
        if !decode::<AlertRecord>(value.value())?.resolved {
            count += 1;
        }
    }
    Ok(count)
}

/// Every record (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<AlertRecord>, Error> {
    super::all_values(txn, ALERTS)
}
