//! API keys as their last lookup found them, so authenticating a known key is a hash-map
//! lookup instead of a redb read transaction.
//!
//! Every request with an API key looked its key and tenant up in redb: at 32 concurrent
//! `GET /v1/agents`, that read transaction was 5.7 % of the server's CPU and auth 10 % in all.
//! An entry is trusted only while the store's credentials generation is the one noted before
//! its read ([`Store::credentials_generation`](crate::store::Store::credentials_generation)),
//! which moves after every commit that changes a key or a tenant. So a revoked key, or a tenant
//! moved to another tier, is seen by the next request, exactly as without the cache. What a
//! request presents is still checked against the stored hash, and expiry against the clock,
//! every time: the cache only saves the read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::api_keys::ApiKeyRecord;
use crate::store::tenants::TenantRecord;

/// Entries kept at most. Unknown prefixes are never cached, so only real keys fill it; past
/// this many (a deployment with more live keys than this) it starts over rather than grow.
const CAPACITY: usize = 10_000;

/// A key and its tenant, as one lookup found them.
pub type KeyAndTenant = Arc<(ApiKeyRecord, TenantRecord)>;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (u64, KeyAndTenant)>>,
}

impl KeyCache {
    /// The key with `prefix`, if it was found while the credentials generation was `generation`.
    pub fn get(&self, prefix: &str, generation: u64) -> Option<KeyAndTenant> {
        let entries = self.entries.lock().ok()?;
        let (noted, found) = entries.get(prefix)?;
        (*noted == generation).then(|| found.clone())
    }

    /// Remember what a lookup begun at `generation` found.
    pub fn put(&self, prefix: &str, generation: u64, found: KeyAndTenant) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY && !entries.contains_key(prefix) {
                entries.clear();
            }
            entries.insert(prefix.to_string(), (generation, found));
        }
    }
}
