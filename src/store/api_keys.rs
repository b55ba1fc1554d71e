//! Tenant API keys: hashes, prefixes and their tenant (API.md §3.5). Raw keys never reach here.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{API_KEY_BY_PREFIX, API_KEYS, TENANT_API_KEYS, TENANTS};
use super::tenants::TenantRecord;
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// `ares_` + 8 hex: the lookup key.
    pub key_prefix: String,
    /// Hex SHA-256 (see `auth::api_keys`).
    pub key_hash: String,
    pub is_active: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used: Option<i64>,
}

impl ApiKeyRecord {
    /// Not revoked and not past its expiry.
    pub fn is_usable(&self, now: i64) -> bool {
        self.is_active && self.expires_at.is_none_or(|expires| now <= expires)
    }
}

impl Record for ApiKeyRecord {
    const TABLE: &'static str = "api_keys";
    const VERSION: u8 = 1;
}

/// Insert a key for an existing tenant. A prefix collision (one in 4 billion) is a conflict the
/// caller retries with a new key.
pub fn insert(txn: &WriteTransaction, key: &ApiKeyRecord) -> Result<(), Error> {
    if txn.open_table(TENANTS)?.get(key.tenant_id.as_str())?.is_none() {
        return Err(Error::NotFound("Tenant not found".into()));
    }
    let mut by_prefix = txn.open_table(API_KEY_BY_PREFIX)?;
    if by_prefix.get(key.key_prefix.as_str())?.is_some() {
        return Err(Error::Conflict(format!("API key prefix {} is taken", key.key_prefix)));
    }
    super::note_changed(super::Watched::Credentials);
    by_prefix.insert(key.key_prefix.as_str(), key.id.as_str())?;
    txn.open_table(API_KEYS)?.insert(key.id.as_str(), encode(key)?.as_slice())?;
    txn.open_table(TENANT_API_KEYS)?.insert((key.tenant_id.as_str(), key.id.as_str()), ())?;
    Ok(())
}

/// The key with this prefix and its tenant, if both exist.
pub fn by_prefix(txn: &ReadTransaction, prefix: &str) -> Result<Option<(ApiKeyRecord, TenantRecord)>, Error> {
    let Some(id) = txn.open_table(API_KEY_BY_PREFIX)?.get(prefix)?.map(|v| v.value().to_string()) else {
        return Ok(None);
    };
    let Some(key) =
        txn.open_table(API_KEYS)?.get(id.as_str())?.map(|v| decode::<ApiKeyRecord>(v.value())).transpose()?
    else {
        return Ok(None);
    };
    let tenant =
        txn.open_table(TENANTS)?.get(key.tenant_id.as_str())?.map(|v| decode::<TenantRecord>(v.value())).transpose()?;
    Ok(tenant.map(|tenant| (key, tenant)))
}

/// A tenant's keys, newest first; `active_only` hides revoked keys and keys expired at `now`.
pub fn list(txn: &ReadTransaction, tenant_id: &str, active_only: bool, now: i64) -> Result<Vec<ApiKeyRecord>, Error> {
    let index = txn.open_table(TENANT_API_KEYS)?;
    let keys = txn.open_table(API_KEYS)?;
    let mut out = Vec::new();
    for entry in index.range((tenant_id, "")..)? {
        let (k, _) = entry?;
        let (owner, key_id) = k.value();
        if owner != tenant_id {
            break;
        }
        if let Some(value) = keys.get(key_id)? {
            let key: ApiKeyRecord = decode(value.value())?;
            if !active_only || key.is_usable(now) {
                out.push(key);
            }
        }
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// Active, unexpired keys of a tenant (for `api_key_count`).
/// One key by id.
pub fn by_id(txn: &ReadTransaction, key_id: &str) -> Result<Option<ApiKeyRecord>, Error> {
    match txn.open_table(API_KEYS)?.get(key_id)? {
        Some(value) => Ok(Some(decode(value.value())?)),
        None => Ok(None),
    }
}

pub fn count_active(txn: &ReadTransaction, tenant_id: &str, now: i64) -> Result<u64, Error> {
    Ok(list(txn, tenant_id, true, now)?.len() as u64)
}

/// Deactivate a key of `tenant_id`; a key of another tenant is "not found". Idempotent.
pub fn revoke(txn: &WriteTransaction, tenant_id: &str, key_id: &str) -> Result<ApiKeyRecord, Error> {
    let not_found = || Error::NotFound(format!("API key '{key_id}' not found for tenant '{tenant_id}'"));
    let mut keys = txn.open_table(API_KEYS)?;
    let mut key: ApiKeyRecord = match keys.get(key_id)? {
        Some(value) => decode(value.value())?,
        None => return Err(not_found()),
    };
    if key.tenant_id != tenant_id {
        return Err(not_found());
    }
    key.is_active = false;
    super::note_changed(super::Watched::Credentials);
    keys.insert(key_id, encode(&key)?.as_slice())?;
    Ok(key)
}

/// Whether `key_id` is one of `tenant_id`'s keys (revoked ones included).
pub fn belongs(txn: &WriteTransaction, tenant_id: &str, key_id: &str) -> Result<bool, Error> {
    Ok(txn.open_table(TENANT_API_KEYS)?.get((tenant_id, key_id))?.is_some())
}

/// Record when a key was last used (best effort; called at most once a minute per key).
pub fn touch(txn: &WriteTransaction, key_id: &str, now: i64) -> Result<(), Error> {
    let mut keys = txn.open_table(API_KEYS)?;
    let Some(mut key) = keys.get(key_id)?.map(|v| decode::<ApiKeyRecord>(v.value())).transpose()? else {
        return Ok(());
    };
    key.last_used = Some(now);
    keys.insert(key_id, encode(&key)?.as_slice())?;
    Ok(())
}

/// A new key's secret parts, from the auth layer's generator.
pub struct NewKeyMaterial {
    pub raw: String,
    pub prefix: String,
    pub hash: String,
}

/// Create a key for `tenant_id` with material from `generate`, drawing again on the (very
/// unlikely) prefix collision. Returns the raw key (to show once) and the stored record.
pub fn insert_generated(
    txn: &WriteTransaction,
    tenant_id: &str,
    name: &str,
    now: i64,
    expires_at: Option<i64>,
    generate: impl Fn() -> NewKeyMaterial,
) -> Result<(String, ApiKeyRecord), Error> {
    for _ in 0..8 {
        let material = generate();
        let record = ApiKeyRecord {
            // Time-ordered, so keys created within the same second still list newest first.
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant_id.to_string(),
            name: name.to_string(),
            key_prefix: material.prefix,
            key_hash: material.hash,
            is_active: true,
            created_at: now,
            expires_at,
            last_used: None,
        };
        match insert(txn, &record) {
            Ok(()) => return Ok((material.raw, record)),
            Err(Error::Conflict(_)) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(Error::Internal("could not find a free API key prefix".into()))
}

/// Every record (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<ApiKeyRecord>, Error> {
    super::all_values(txn, API_KEYS)
}
