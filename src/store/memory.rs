//! What the server has learned about each user (API.md §1.4 `GET /api/memory`): facts and
//! preferences, keyed by user first so one user's memory is one range and never another's.
//!
//! Shapes follow the reference's `memory_facts` and `preferences` tables (API.md §7.2), so a
//! Postgres import carries them over. A fact is unique per (user, category, key) here — learning
//! the same key again updates it — while imported rows keep their ids.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{MEMORY_FACTS, PREFERENCES};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactRecord {
    pub id: String,
    pub user_id: String,
    pub category: String,
    pub fact_key: String,
    pub fact_value: String,
    pub confidence: f64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for FactRecord {
    const TABLE: &'static str = "memory_facts";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceRecord {
    pub id: String,
    pub user_id: String,
    pub category: String,
    pub key: String,
    pub value: String,
    pub confidence: f64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for PreferenceRecord {
    const TABLE: &'static str = "preferences";
    const VERSION: u8 = 1;
}

/// Most facts or preferences kept per user; learning beyond it replaces the least recently
/// updated entry, so a chatty user cannot grow their memory without bound.
pub const MAX_ENTRIES_PER_USER: usize = 500;

/// A user's facts, oldest first.
pub fn facts(txn: &ReadTransaction, user_id: &str) -> Result<Vec<FactRecord>, Error> {
    let table = txn.open_table(MEMORY_FACTS)?;
    let mut out: Vec<FactRecord> = Vec::new();
    for entry in table.range((user_id, "")..)? {
        let (key, value) = entry?;
        if key.value().0 != user_id {
            break;
        }
        out.push(decode(value.value())?);
    }
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

/// A user's preferences by category and key.
pub fn preferences(txn: &ReadTransaction, user_id: &str) -> Result<Vec<PreferenceRecord>, Error> {
    let table = txn.open_table(PREFERENCES)?;
    let mut out = Vec::new();
    for entry in table.range((user_id, "", "")..)? {
        let (key, value) = entry?;
        if key.value().0 != user_id {
            break;
        }
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// Insert a fact, or update the value and confidence of the user's fact with the same category
/// and key (keeping its id and `created_at`).
pub fn learn_fact(txn: &WriteTransaction, fact: &FactRecord) -> Result<(), Error> {
    let mut table = txn.open_table(MEMORY_FACTS)?;
    let mut existing: Vec<FactRecord> = Vec::new();
    for entry in table.range((fact.user_id.as_str(), "")..)? {
        let (key, value) = entry?;
        if key.value().0 != fact.user_id {
            break;
        }
        existing.push(decode(value.value())?);
    }
    let record = match existing.iter().find(|f| f.category == fact.category && f.fact_key == fact.fact_key) {
        Some(old) => FactRecord { id: old.id.clone(), created_at: old.created_at, ..fact.clone() },
        None => {
            if existing.len() >= MAX_ENTRIES_PER_USER
                && let Some(stalest) = existing.iter().min_by_key(|f| (f.updated_at, f.id.clone()))
            {
                table.remove((fact.user_id.as_str(), stalest.id.as_str()))?;
            }
            fact.clone()
        }
    };
    table.insert((record.user_id.as_str(), record.id.as_str()), encode(&record)?.as_slice())?;
    Ok(())
}

/// Insert or replace a preference (the first `created_at` and id are kept).
pub fn learn_preference(txn: &WriteTransaction, preference: &PreferenceRecord) -> Result<(), Error> {
    let mut table = txn.open_table(PREFERENCES)?;
    let key = (preference.user_id.as_str(), preference.category.as_str(), preference.key.as_str());
    let old: Option<PreferenceRecord> = table.get(key)?.map(|v| decode(v.value())).transpose()?;
    let record = match old {
        Some(old) => PreferenceRecord { id: old.id, created_at: old.created_at, ..preference.clone() },
        None => {
            let mut count = 0;
            let mut stalest: Option<PreferenceRecord> = None;
            for entry in table.range((preference.user_id.as_str(), "", "")..)? {
                let (k, v) = entry?;
                if k.value().0 != preference.user_id {
                    break;
                }
                count += 1;
                let current: PreferenceRecord = decode(v.value())?;
                if stalest.as_ref().is_none_or(|s| current.updated_at < s.updated_at) {
                    stalest = Some(current);
                }
            }
            if count >= MAX_ENTRIES_PER_USER
                && let Some(stalest) = stalest
            {
                table.remove((stalest.user_id.as_str(), stalest.category.as_str(), stalest.key.as_str()))?;
            }
            preference.clone()
        }
    };
    table.insert(
        (record.user_id.as_str(), record.category.as_str(), record.key.as_str()),
        encode(&record)?.as_slice(),
    )?;
    Ok(())
}

/// Remove the user's facts with `fact_key` (any category); returns how many went.
pub fn forget_fact(txn: &WriteTransaction, user_id: &str, fact_key: &str) -> Result<usize, Error> {
    let mut table = txn.open_table(MEMORY_FACTS)?;
    let mut doomed = Vec::new();
    for entry in table.range((user_id, "")..)? {
        let (key, value) = entry?;
        if key.value().0 != user_id {
            break;
        }
        let fact: FactRecord = decode(value.value())?;
        if fact.fact_key == fact_key {
            doomed.push(fact.id);
        }
    }
    for id in &doomed {
        table.remove((user_id, id.as_str()))?;
    }
    Ok(doomed.len())
}

/// Store an imported fact as it is (no merging by key).
pub fn import_fact(txn: &WriteTransaction, fact: &FactRecord) -> Result<(), Error> {
    txn.open_table(MEMORY_FACTS)?.insert((fact.user_id.as_str(), fact.id.as_str()), encode(fact)?.as_slice())?;
    Ok(())
}

/// Every fact and preference (export).
pub fn all(txn: &ReadTransaction) -> Result<(Vec<FactRecord>, Vec<PreferenceRecord>), Error> {
    Ok((super::all_values(txn, MEMORY_FACTS)?, super::all_values(txn, PREFERENCES)?))
}
