//! Tenants: the organisations that own API keys, agents and usage.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{TENANT_AGENTS, TENANT_BY_NAME, TENANTS};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    /// Stored as written (lower-case for new tenants); an unknown value reads as `free`
    /// (imported databases may hold anything).
    pub tier: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl TenantRecord {
    /// A new tenant with a fresh, time-ordered id.
    pub fn new(name: String, tier: &str, now: i64) -> TenantRecord {
        TenantRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            tier: tier.to_string(),
            created_at: now,
            updated_at: now,
        }
    }
}

impl Record for TenantRecord {
    const TABLE: &'static str = "tenants";
    const VERSION: u8 = 1;
}

/// A tenant plus the counts the list view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub tenant: TenantRecord,
    pub agent_count: u64,
}

/// Insert a new tenant; its name must not be taken (case-sensitive, as stored).
pub fn insert(txn: &WriteTransaction, tenant: &TenantRecord) -> Result<(), Error> {
    let mut by_name = txn.open_table(TENANT_BY_NAME)?;
    let name = tenant.name.as_str();
    name_free(&by_name, name)?;
    let mut tenants = txn.open_table(TENANTS)?;
    if tenants.get(tenant.id.as_str())?.is_some() {
        return Err(Error::Conflict(format!("Tenant with id '{}' already exists", tenant.id)));
    }
    super::note_changed(super::Watched::Credentials);
    tenants.insert(tenant.id.as_str(), encode(tenant)?.as_slice())?;
    by_name.insert((name, tenant.id.as_str()), ())?;
    Ok(())
}

/// The same name check as [`insert`] against a read snapshot, so a request for a taken name is
/// refused before it reaches the writer (where a failure costs its batch a replay). `insert`
/// checks again: the snapshot may be stale.
pub fn check_name_free(txn: &ReadTransaction, name: &str) -> Result<(), Error> {
    name_free(&txn.open_table(TENANT_BY_NAME)?, name)
}

fn name_free(by_name: &impl ReadableTable<(&'static str, &'static str), ()>, name: &str) -> Result<(), Error> {
    if by_name.range((name, "")..)?.next().transpose()?.is_some_and(|(key, _)| key.value().0 == name) {
        return Err(Error::Conflict(format!("Tenant with name '{name}' already exists")));
    }
    Ok(())
}

/// Insert an imported tenant. The reference never made names unique, so an imported database
/// may hold two tenants with one name; both are kept (new tenants still get unique names).
pub fn import(txn: &WriteTransaction, tenant: &TenantRecord) -> Result<(), Error> {
    super::note_changed(super::Watched::Credentials);
    txn.open_table(TENANTS)?.insert(tenant.id.as_str(), encode(tenant)?.as_slice())?;
    txn.open_table(TENANT_BY_NAME)?.insert((tenant.name.as_str(), tenant.id.as_str()), ())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<TenantRecord>, Error> {
    let tenants = txn.open_table(TENANTS)?;
    tenants.get(id)?.map(|v| decode(v.value())).transpose()
}

/// Every tenant, newest first, with its agent count.
pub fn list(txn: &ReadTransaction) -> Result<Vec<TenantSummary>, Error> {
    let tenants = txn.open_table(TENANTS)?;
    let agents = txn.open_table(TENANT_AGENTS)?;
    let mut out = Vec::new();
    for entry in tenants.iter()? {
        let (_, value) = entry?;
        let tenant: TenantRecord = decode(value.value())?;
        let mut agent_count = 0;
        for agent in agents.range((tenant.id.as_str(), "")..)? {
            let (key, _) = agent?;
            if key.value().0 != tenant.id {
                break;
            }
            agent_count += 1;
        }
        out.push(TenantSummary { tenant, agent_count });
    }
    out.sort_by(|a, b| b.tenant.created_at.cmp(&a.tenant.created_at).then_with(|| b.tenant.id.cmp(&a.tenant.id)));
    Ok(out)
}

/// Apply `change` to a tenant and store it; 404 `Tenant not found`.
pub fn update(txn: &WriteTransaction, id: &str, change: impl FnOnce(&mut TenantRecord)) -> Result<TenantRecord, Error> {
    let mut table = txn.open_table(TENANTS)?;
    let mut tenant: TenantRecord = match table.get(id)? {
        Some(value) => decode(value.value())?,
        None => return Err(Error::NotFound("Tenant not found".into())),
    };
    let name_before = tenant.name.clone();
    change(&mut tenant);
    if tenant.name != name_before {
        return Err(Error::Internal("tenant names cannot be changed".into()));
    }
    super::note_changed(super::Watched::Credentials);
    table.insert(id, encode(&tenant)?.as_slice())?;
    Ok(tenant)
}

/// Whether a tenant exists (inside a write transaction).
pub fn exists(txn: &WriteTransaction, id: &str) -> Result<bool, Error> {
    Ok(txn.open_table(TENANTS)?.get(id)?.is_some())
}

/// Number of tenants.
pub fn count(txn: &ReadTransaction) -> Result<u64, Error> {
    use redb::ReadableTableMetadata as _;
    Ok(txn.open_table(TENANTS)?.len()?)
}

/// Every record (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<TenantRecord>, Error> {
    super::all_values(txn, TENANTS)
}
