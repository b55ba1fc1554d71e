//! `GET /v1/agents`, `/v1/agents/{name}`, `/v1/agents/{name}/runs`, `/v1/agents/{name}/logs`
//! (API.md §1.10), scoped to the key's tenant.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::{PageQuery, total_pages};
use crate::api::context::query;
use crate::api::{Context, views};
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::generational::Generational;
use crate::store::{Watched, agents, runs};

/// Rendered pages of `GET /v1/agents` by (tenant, page, per_page), each under the agents
/// generation its read began at: a change to an agent, or any run recorded, moves it, so the
/// next listing after one renders afresh. Rendering a page (a read transaction, each agent's run
/// stats, the JSON) was 26 % of the server's CPU under 32 concurrent listings.
pub type AgentPages = Generational<(String, u64, u64), Bytes>;

/// Pages kept at most, and the largest page kept (100 agents of long prompts are not): at most
/// 8 MiB of the server's memory.
pub const AGENT_PAGES_CAPACITY: usize = 512;
const LARGEST_CACHED_PAGE: usize = 16 * 1024;

fn agent_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Agent not found: {name}"))
}

pub async fn list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let (page, per_page) = query::<PageQuery>(request)?.resolve(20)?;
    let tenant = ctx.tenant()?.tenant_id.clone();
    // Run records are written without waiting for their commit (see `chat::journal`).
    ctx.app.journal().settle(ctx.app.store()).await;
    // Noted before the read: a change committed after it leaves the page cached stale.
    let generation = ctx.app.store().generation(Watched::Agents);
    let cache_key = (tenant, page, per_page);
    if let Some(body) = ctx.app.agent_pages().get(&cache_key, generation) {
        return Ok(response::json_bytes(StatusCode::OK, body));
    }
    let tenant = &cache_key.0;
    let (items, total) = ctx.app.store().read_now(|txn| {
        let all = agents::list(txn, tenant)?;
        let total = all.len() as u64;
        let skip = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        for agent in all.iter().skip(skip).take(per_page as usize) {
            items.push(views::v1_agent(agent, &runs::stats(txn, tenant, &agent.agent_name)?));
        }
        Ok((items, total))
    })?;
    let body = json!({
        "agents": items, "items": items, "total": total, "page": page, "per_page": per_page,
        "total_pages": total_pages(total, per_page),
    });
    let body = Bytes::from(
        serde_json::to_vec(&body).map_err(|e| ApiError::Internal(format!("cannot serialize response: {e}")))?,
    );
    if body.len() <= LARGEST_CACHED_PAGE {
        ctx.app.agent_pages().put(cache_key, generation, body.clone());
    }
    Ok(response::json_bytes(StatusCode::OK, body))
}

pub async fn get(ctx: &Context, name: &str) -> Result<Response, ApiError> {
    let (tenant, agent_name) = (ctx.tenant()?.tenant_id.clone(), name.to_string());
    // Run records are written without waiting for their commit (see `chat::journal`).
    ctx.app.journal().settle(ctx.app.store()).await;
    let found = ctx.app.store().read_now(|txn| match agents::get(txn, &tenant, &agent_name)? {
        Some(agent) => Ok(Some(views::v1_agent(&agent, &runs::stats(txn, &tenant, &agent_name)?))),
        None => Ok(None),
    })?;
    found.map(|view| response::json(StatusCode::OK, &view)).ok_or_else(|| agent_not_found(name))
}

pub async fn runs(ctx: &Context, name: &str, request: &Request) -> Result<Response, ApiError> {
    let (page, per_page) = query::<PageQuery>(request)?.resolve(20)?;
    let (tenant, agent_name) = (ctx.tenant()?.tenant_id.clone(), name.to_string());
    // Run records are written without waiting for their commit (see `chat::journal`).
    ctx.app.journal().settle(ctx.app.store()).await;
    let found = ctx.app.store().read_now(|txn| {
        if agents::get(txn, &tenant, &agent_name)?.is_none() {
            return Ok(None);
        }
        let offset = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
        Ok(Some(runs::page_for_agent(txn, &tenant, &agent_name, per_page as usize, offset)?))
    })?;
    let (items, total) = found.ok_or_else(|| agent_not_found(name))?;
    let items: Vec<Value> = items.iter().map(views::v1_run).collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "runs": items, "items": items, "total": total, "page": page, "per_page": per_page,
            "total_pages": total_pages(total, per_page),
        }),
    ))
}

/// Agents keep no log lines of their own yet, so the page is empty — but it is the caller's
/// agent's page: unknown agents are 404.
pub async fn logs(ctx: &Context, name: &str, request: &Request) -> Result<Response, ApiError> {
    let (page, per_page) = query::<PageQuery>(request)?.resolve(50)?;
    let (tenant, agent_name) = (ctx.tenant()?.tenant_id.clone(), name.to_string());
    let exists = ctx.app.store().read_now(|txn| Ok(agents::get(txn, &tenant, &agent_name)?.is_some()))?;
    if !exists {
        return Err(agent_not_found(name));
    }
    Ok(response::json(
        StatusCode::OK,
        &json!({ "logs": [], "items": [], "total": 0, "page": page, "per_page": per_page, "total_pages": 0 }),
    ))
}
