//! `GET /v1/models` and `GET /v1/models/{id}`: every name the key can put in `model` — the
//! configured models, the tiers some model serves, and `agent:<name>` for each agent the key's
//! tenant may run (the platform's, minus the router, and its own enabled agents; a disabled
//! tenant agent hides the platform agent of its name, as it does when run).

use http::StatusCode;
use serde_json::{Value, json};

use crate::api::Context;
use crate::error::ApiError;
use crate::http::Response;
use crate::http::response;
use crate::store::agents as tenant_agents;

/// The prefix that makes a model name mean an ARES agent.
pub const AGENT_PREFIX: &str = "agent:";

fn entry(id: &str, created: i64, owned_by: &str) -> Value {
    json!({ "id": id, "object": "model", "created": created, "owned_by": owned_by })
}

/// Every model entry the caller may use, in a stable order: models, tiers, agents.
fn catalog(ctx: &Context) -> Result<Vec<Value>, ApiError> {
    let tenant_id = ctx.tenant()?.tenant_id.clone();
    // Configured models and tiers exist since the process started with this config.
    let created = ctx.app.started_unix();
    let registry = ctx.app.llm();
    let mut out: Vec<Value> = registry.models().iter().map(|m| entry(&m.name, created, &m.provider.name)).collect();
    for tier in registry.tiers() {
        if !registry.models().iter().any(|m| m.name == tier.as_str()) {
            out.push(entry(tier.as_str(), created, "ares"));
        }
    }
    let own = ctx.app.store().read_now(|txn| tenant_agents::list(txn, &tenant_id))?;
    for platform in ctx.app.agents().all() {
        let shadowed = own.iter().any(|a| a.agent_name == platform.name);
        if platform.name != "router" && !shadowed {
            out.push(entry(&format!("{AGENT_PREFIX}{}", platform.name), created, "ares"));
        }
    }
    for agent in own.iter().filter(|a| a.enabled) {
        out.push(entry(&format!("{AGENT_PREFIX}{}", agent.agent_name), agent.created_at, "tenant"));
    }
    Ok(out)
}

pub async fn list(ctx: &Context) -> Result<Response, ApiError> {
    let data = catalog(ctx)?;
    Ok(response::json(StatusCode::OK, &json!({ "object": "list", "data": data })))
}

pub async fn get(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let found = catalog(ctx)?.into_iter().find(|m| m["id"] == id);
    match found {
        Some(model) => Ok(response::json(StatusCode::OK, &model)),
        // A provider-side id or any other name `lookup` accepts is usable too.
        None => match ctx.app.llm().lookup(id) {
            Some(model) => Ok(response::json(StatusCode::OK, &entry(id, ctx.app.started_unix(), &model.provider.name))),
            None => Err(ApiError::ModelNotFound(id.to_string())),
        },
    }
}
