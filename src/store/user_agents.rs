//! Agents users define for themselves (API.md §1.6), keyed by owner and name. Public ones are
//! visible to other users as "community" agents.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::USER_AGENTS;
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAgentRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub model: String,
    pub system_prompt: Option<String>,
    pub tools: Vec<String>,
    pub max_tool_iterations: u32,
    pub parallel_tools: bool,
    pub is_public: bool,
    pub usage_count: u64,
    pub rating_sum: f64,
    pub rating_count: u64,
    /// Unknown document keys, as a JSON object (kept, exported after the known fields).
    pub extra_json: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for UserAgentRecord {
    const TABLE: &'static str = "user_agents";
    const VERSION: u8 = 1;
}

pub fn not_found(name: &str) -> Error {
    Error::NotFound(format!("Agent '{name}' not found"))
}

pub fn already_exists(name: &str) -> Error {
    Error::Conflict(format!("Agent '{name}' already exists"))
}

pub fn insert(txn: &WriteTransaction, agent: &UserAgentRecord) -> Result<(), Error> {
    let mut table = txn.open_table(USER_AGENTS)?;
    let key = (agent.user_id.as_str(), agent.name.as_str());
    if table.get(key)?.is_some() {
        return Err(already_exists(&agent.name));
    }
    table.insert(key, encode(agent)?.as_slice())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, user_id: &str, name: &str) -> Result<Option<UserAgentRecord>, Error> {
    txn.open_table(USER_AGENTS)?.get((user_id, name))?.map(|v| decode(v.value())).transpose()
}

/// A user's agents, by name.
pub fn list(txn: &ReadTransaction, user_id: &str) -> Result<Vec<UserAgentRecord>, Error> {
    let table = txn.open_table(USER_AGENTS)?;
    let mut out = Vec::new();
    for entry in table.range((user_id, "")..)? {
        let (key, value) = entry?;
        if key.value().0 != user_id {
            break;
        }
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// Other users' public agents, by name (then owner), skipping `exclude` names.
pub fn public_of_others(txn: &ReadTransaction, user_id: &str) -> Result<Vec<UserAgentRecord>, Error> {
    let table = txn.open_table(USER_AGENTS)?;
    let mut out: Vec<UserAgentRecord> = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        if key.value().0 == user_id {
            continue;
        }
        let agent: UserAgentRecord = decode(value.value())?;
        if agent.is_public {
            out.push(agent);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.created_at.cmp(&b.created_at)));
    Ok(out)
}

/// The public agent named `name` of a user other than `user_id` (the earliest created when
/// several users share it). Only matching keys are decoded.
pub fn public_named(txn: &ReadTransaction, user_id: &str, name: &str) -> Result<Option<UserAgentRecord>, Error> {
    let table = txn.open_table(USER_AGENTS)?;
    let mut found: Option<UserAgentRecord> = None;
    for entry in table.iter()? {
        let (key, value) = entry?;
        let (owner, agent_name) = key.value();
        if owner == user_id || agent_name != name {
            continue;
        }
        let agent: UserAgentRecord = decode(value.value())?;
        if agent.is_public && found.as_ref().is_none_or(|f| agent.created_at < f.created_at) {
            found = Some(agent);
        }
    }
    Ok(found)
}

pub fn update(
    txn: &WriteTransaction,
    user_id: &str,
    name: &str,
    change: impl FnOnce(&mut UserAgentRecord),
) -> Result<UserAgentRecord, Error> {
    let mut table = txn.open_table(USER_AGENTS)?;
    let mut agent: UserAgentRecord = match table.get((user_id, name))? {
        Some(value) => decode(value.value())?,
        None => return Err(not_found(name)),
    };
    change(&mut agent);
    table.insert((user_id, name), encode(&agent)?.as_slice())?;
    Ok(agent)
}

pub fn delete(txn: &WriteTransaction, user_id: &str, name: &str) -> Result<(), Error> {
    match txn.open_table(USER_AGENTS)?.remove((user_id, name))? {
        Some(_) => Ok(()),
        None => Err(not_found(name)),
    }
}

/// Every record (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<UserAgentRecord>, Error> {
    super::all_values(txn, USER_AGENTS)
}
