//! Which agent a name means for a caller — the one rule behind running an agent (chat, the
//! router, workflows, research) and reading one (`GET /api/user/agents/{name}`, export).
//!
//! An agent may shadow a platform agent (built in or configured) only for its owner: a user's
//! own agent for that user, a tenant agent for that tenant's keys. Another user's public
//! ("community") agent is reached only when the caller names it and no platform agent has that
//! name (ignoring case); names the router or a workflow picks never reach it. So nothing one
//! user stores can change what another user's request runs.

use super::catalog::Catalog;
use super::spec::{AgentSource, AgentSpec};
use crate::store::user_agents::{self, UserAgentRecord};
use crate::store::{self, Store, agents as tenant_agents};

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

/// `name` for the tenant `tenant_id`: its own agent (a disabled one hides the name rather than
/// falling through), else the platform's. Tenants never see user agents. A single-key read, so
/// inline.
pub fn for_tenant(
    store: &Store,
    catalog: &Catalog,
    tenant_id: &str,
    name: &str,
) -> Result<Option<AgentSpec>, store::Error> {
    match store.read_now(|txn| tenant_agents::get(txn, tenant_id, name))? {
        Some(agent) if agent.enabled => Ok(Some(AgentSpec::from_tenant_agent(&agent))),
        Some(_) => Ok(None),
        None => Ok(catalog.named(name).cloned()),
    }
}
