//! Tenant agents: per-tenant agent definitions (config is JSON text, as the reference stores
//! JSONB). Running them is the LLM layer's job.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{TENANT_AGENTS, TENANTS};
use super::tenants::TenantRecord;
use super::{Error, Record, Watched, decode, encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantAgentRecord {
    pub id: String,
    pub tenant_id: String,
    pub agent_name: String,
    pub display_name: String,
    pub description: Option<String>,
    /// A JSON object, as text (postcard cannot hold free-form JSON).
    pub config_json: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for TenantAgentRecord {
    const TABLE: &'static str = "tenant_agents";
    const VERSION: u8 = 1;
}

fn tenant_exists(txn: &WriteTransaction, tenant_id: &str) -> Result<bool, Error> {
    Ok(txn.open_table(TENANTS)?.get(tenant_id)?.is_some())
}

pub fn already_exists(name: &str) -> Error {
    Error::Conflict(format!("Agent with name '{name}' already exists for this tenant"))
}

/// Insert a new agent; 404 for an unknown tenant, 409 for a taken name.
pub fn insert(txn: &WriteTransaction, agent: &TenantAgentRecord) -> Result<(), Error> {
    if !tenant_exists(txn, &agent.tenant_id)? {
        return Err(Error::NotFound("Tenant not found".into()));
    }
    let mut table = txn.open_table(TENANT_AGENTS)?;
    let key = (agent.tenant_id.as_str(), agent.agent_name.as_str());
    if table.get(key)?.is_some() {
        return Err(already_exists(&agent.agent_name));
    }
    table.insert(key, encode(agent)?.as_slice())?;
    super::note_changed(Watched::Agents);
    super::note_changed(Watched::TenantAgents);
    Ok(())
}

/// Insert unless the name is taken (provisioning: never overwrite); returns whether inserted.
pub fn insert_if_absent(txn: &WriteTransaction, agent: &TenantAgentRecord) -> Result<bool, Error> {
    let mut table = txn.open_table(TENANT_AGENTS)?;
    let key = (agent.tenant_id.as_str(), agent.agent_name.as_str());
    if table.get(key)?.is_some() {
        return Ok(false);
    }
    table.insert(key, encode(agent)?.as_slice())?;
    super::note_changed(Watched::Agents);
    super::note_changed(Watched::TenantAgents);
    Ok(true)
}

pub fn get(txn: &ReadTransaction, tenant_id: &str, name: &str) -> Result<Option<TenantAgentRecord>, Error> {
    txn.open_table(TENANT_AGENTS)?.get((tenant_id, name))?.map(|v| decode(v.value())).transpose()
}

/// A tenant's agents ordered by name.
pub fn list(txn: &ReadTransaction, tenant_id: &str) -> Result<Vec<TenantAgentRecord>, Error> {
    let table = txn.open_table(TENANT_AGENTS)?;
    let mut out = Vec::new();
    for entry in table.range((tenant_id, "")..)? {
        let (key, value) = entry?;
        if key.value().0 != tenant_id {
            break;
        }
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// Apply `change` to an existing agent and store it; 404 names the agent and tenant.
pub fn update(
    txn: &WriteTransaction,
    tenant_id: &str,
    name: &str,
    change: impl FnOnce(&mut TenantAgentRecord),
) -> Result<TenantAgentRecord, Error> {
    let mut table = txn.open_table(TENANT_AGENTS)?;
    let mut agent: TenantAgentRecord = match table.get((tenant_id, name))? {
        Some(value) => decode(value.value())?,
        None => return Err(not_found(tenant_id, name)),
    };
    change(&mut agent);
    table.insert((tenant_id, name), encode(&agent)?.as_slice())?;
    super::note_changed(Watched::Agents);
    super::note_changed(Watched::TenantAgents);
    Ok(agent)
}

pub fn delete(txn: &WriteTransaction, tenant_id: &str, name: &str) -> Result<TenantAgentRecord, Error> {
    super::note_changed(Watched::Agents);
    super::note_changed(Watched::TenantAgents);
    let removed = txn.open_table(TENANT_AGENTS)?.remove((tenant_id, name))?.map(|v| decode(v.value())).transpose()?;
    removed.ok_or_else(|| not_found(tenant_id, name))
}

pub fn not_found(tenant_id: &str, name: &str) -> Error {
    Error::NotFound(format!("Agent '{name}' not found for tenant '{tenant_id}'"))
}

/// Every agent of every tenant, ordered by tenant name then agent name.
pub fn list_all(txn: &ReadTransaction) -> Result<Vec<(TenantRecord, TenantAgentRecord)>, Error> {
    let tenants = txn.open_table(TENANTS)?;
    let agents = txn.open_table(TENANT_AGENTS)?;
    let mut out = Vec::new();
    for entry in agents.iter()? {
        let (_, value) = entry?;
        let agent: TenantAgentRecord = decode(value.value())?;
        // Imported databases may hold orphan rows (no FK in the reference); skip them.
        if let Some(tenant) = tenants.get(agent.tenant_id.as_str())? {
            out.push((decode::<TenantRecord>(tenant.value())?, agent));
        }
    }
    out.sort_by(|(ta, a), (tb, b)| ta.name.cmp(&tb.name).then_with(|| a.agent_name.cmp(&b.agent_name)));
    Ok(out)
}

/// Number of agent rows of all tenants.
pub fn count_all(txn: &ReadTransaction) -> Result<u64, Error> {
    use redb::ReadableTableMetadata as _;
    Ok(txn.open_table(TENANT_AGENTS)?.len()?)
}
