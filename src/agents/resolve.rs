//! Which agent a name means for a caller — the one rule behind running an agent (chat, the
//! router, workflows, research) and reading one (`GET /api/user/agents/{name}`, export).
//!
//! An agent may shadow a platform agent (built in or configured) only for its owner: a user's
//! own agent for that user, a tenant agent for that tenant's keys. Another user's public
//! ("community") agent is reached only when the caller names it and no platform agent has that
//! name (ignoring case); names the router or a workflow picks never reach it. So nothing one
//! user stores can change what another user's request runs.

use std::sync::Arc;

use super::catalog::Catalog;
use super::spec::{AgentSource, AgentSpec};
use crate::store::agents::TenantAgentRecord;
use crate::store::generational::Generational;
use crate::store::user_agents::{self, UserAgentRecord};
use crate::store::{self, Store, Watched, agents as tenant_agents};

/// How a name reached the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The caller typed it (`agent_type`, a path segment): community agents are eligible.
    Named,
    /// The router or a workflow definition chose it: platform agents and the caller's own only.
    Picked,
}

/// A user's view of a name.
#[derive(Debug, Clone)]
pub enum Found {
    /// The caller's own agent, which may shadow a platform agent of the same name.
    Own(UserAgentRecord),
    Platform(AgentSpec),
    /// Another user's public agent; never one whose name a platform agent holds.
    Community(UserAgentRecord),
}

impl Found {
    /// The agent to run.
    pub fn into_spec(self) -> AgentSpec {
        match self {
            Found::Own(agent) => AgentSpec::from_user_agent(&agent, AgentSource::User),
            Found::Platform(spec) => spec,
            Found::Community(agent) => AgentSpec::from_user_agent(&agent, AgentSource::Community),
        }
    }
}

/// `name` for the user `user_id`: own → platform → (named only) community. Reads the user-agent
/// table on the blocking pool (the community lookup walks its keys).
pub async fn for_user(
    store: &Store,
    catalog: &Catalog,
    user_id: &str,
    name: &str,
    choice: Choice,
) -> Result<Option<Found>, store::Error> {
    let platform = catalog.named(name).cloned();
    // The community tier is closed for every name the platform holds in any letter case.
    let community_open = choice == Choice::Named && catalog.reserving(name).is_none();
    let (user, wanted) = (user_id.to_string(), name.to_string());
    store
        .read(move |txn| {
            if let Some(agent) = user_agents::get(txn, &user, &wanted)? {
                return Ok(Some(Found::Own(agent)));
            }
            if let Some(spec) = platform {
                return Ok(Some(Found::Platform(spec)));
            }
            if !community_open {
                return Ok(None);
            }
            Ok(user_agents::public_named(txn, &user, &wanted)?.map(Found::Community))
        })
        .await
}

/// What the last read of a tenant's agent name found (`None`: the tenant has no agent of that
/// name), under the [`Watched::TenantAgents`] generation it began at.
///
/// Every tenant chat looked its agent up in redb, almost always to find no tenant agent and
/// fall through to the platform's: at 32 concurrent chats that read transaction was 2.5 % of
/// the server's CPU. Only writes of tenant agents move the generation (a chat's run statistics
/// do not), so an entry stays good until an agent of any tenant is created, changed or deleted,
/// and a hit never answers what a fresh read would not.
pub type TenantAgentCache = Generational<String, Option<Arc<TenantAgentRecord>>>;

/// Entries kept at most; unknown names are cached too, so past this many the map starts over.
const TENANT_AGENT_CACHE_CAPACITY: usize = 10_000;

pub fn tenant_agent_cache() -> TenantAgentCache {
    Generational::new(TENANT_AGENT_CACHE_CAPACITY)
}

/// `name` for the tenant `tenant_id`: its own agent (a disabled one hides the name rather than
/// falling through), else the platform's. Tenants never see user agents. A single-key read, so
/// inline, and usually not even that (`cache`).
pub fn for_tenant(
    store: &Store,
    cache: &TenantAgentCache,
    catalog: &Catalog,
    tenant_id: &str,
    name: &str,
) -> Result<Option<AgentSpec>, store::Error> {
    // Tenant ids never hold a NUL, so the joined key names one (tenant, name) pair.
    let key = format!("{tenant_id}\0{name}");
    let generation = store.generation(Watched::TenantAgents);
    let stored = match cache.get(key.as_str(), generation) {
        Some(stored) => stored,
        None => {
            let stored = store.read_now(|txn| tenant_agents::get(txn, tenant_id, name))?.map(Arc::new);
            cache.put(key, generation, stored.clone());
            stored
        }
    };
    match stored {
        Some(agent) if agent.enabled => Ok(Some(AgentSpec::from_tenant_agent(&agent))),
        Some(_) => Ok(None),
        None => Ok(catalog.named(name).cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::runs::{self, AgentRunRecord};
    use crate::store::tenants::{self, TenantRecord};
    use crate::store::{DB_FILE, MigrationPolicy};

    fn tenant_agent(enabled: bool) -> TenantAgentRecord {
        TenantAgentRecord {
            id: "agent-1".into(),
            tenant_id: "t1".into(),
            agent_name: "product".into(),
            display_name: "Ours".into(),
            description: None,
            config_json: r#"{"system_prompt": "tenant prompt"}"#.into(),
            enabled,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn a_cached_lookup_sees_every_change_to_tenant_agents_but_survives_chat_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Apply).unwrap();
        let catalog = Catalog::new(&Config::default());
        let cache = tenant_agent_cache();
        let tenant =
            TenantRecord { id: "t1".into(), name: "one".into(), tier: "free".into(), created_at: 1, updated_at: 1 };
        store.write_blocking(|txn| tenants::insert(txn, &tenant)).unwrap();
        let lookup = || for_tenant(&store, &cache, &catalog, "t1", "product").unwrap().map(|spec| spec.source);

        assert_eq!(lookup(), Some(AgentSource::System), "no tenant agent: the platform's");
        let generation = store.generation(Watched::TenantAgents);
        let run = AgentRunRecord {
            id: "run-1".into(),
            tenant_id: "t1".into(),
            agent_name: "product".into(),
            user_id: None,
            status: "completed".into(),
            input_tokens: 1,
            output_tokens: 1,
            duration_ms: 1,
            error: None,
            created_at: 1,
            served_by: None,
            attempts: 1,
            cost_micros: 0,
        };
        store.write_blocking(|txn| runs::record_all(txn, [&run])).unwrap();
        assert_eq!(store.generation(Watched::TenantAgents), generation, "a chat's run keeps the cache");
        assert!(cache.get("t1\0product", generation).is_some());

        store.write_blocking(|txn| tenant_agents::insert(txn, &tenant_agent(true))).unwrap();
        assert_eq!(lookup(), Some(AgentSource::Tenant), "the new tenant agent shadows the platform's");
        store.write_blocking(|txn| tenant_agents::update(txn, "t1", "product", |a| a.enabled = false)).unwrap();
        assert_eq!(lookup(), None, "a disabled tenant agent hides the name");
        store.write_blocking(|txn| tenant_agents::delete(txn, "t1", "product")).unwrap();
        assert_eq!(lookup(), Some(AgentSource::System), "deleted: the platform's again");
        assert_eq!(
            for_tenant(&store, &cache, &catalog, "t2", "product").unwrap().map(|s| s.source),
            Some(AgentSource::System)
        );
    }
}
