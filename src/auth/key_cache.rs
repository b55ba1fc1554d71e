//! API keys as their last lookup found them, so authenticating a known key is a hash-map
//! lookup instead of a redb read transaction.
//!
//! Every request with an API key looked its key and tenant up in redb: at 32 concurrent
//! `GET /v1/agents`, that read transaction was 5.7 % of the server's CPU and auth 10 % in all.
//! An entry is trusted only while the store's credentials generation is the one noted before
//! its read ([`Store::generation`](crate::store::Store::generation) of credentials),
//! which moves after every commit that changes a key or a tenant. So a revoked key, or a tenant
//! moved to another tier, is seen by the next request, exactly as without the cache. What a
//! request presents is still checked against the stored hash, and expiry against the clock,
//! every time: the cache only saves the read.

use std::sync::Arc;

use crate::store::api_keys::ApiKeyRecord;
use crate::store::generational::Generational;
use crate::store::tenants::TenantRecord;

/// Entries kept at most. Unknown prefixes are never cached, so only real keys fill it; past
/// this many (a deployment with more live keys than this) it starts over rather than grow.
const CAPACITY: usize = 10_000;

/// A key and its tenant, as one lookup found them.
pub type KeyAndTenant = Arc<(ApiKeyRecord, TenantRecord)>;

/// Keys by prefix, under the credentials generation their lookup began at.
pub type KeyCache = Generational<String, KeyAndTenant>;

pub fn new() -> KeyCache {
    Generational::new(CAPACITY)
}
