//! Tenant agents for the operator (API.md §1.9.4, §1.9.6): CRUD, runs, stats, and the
//! cross-tenant list. Data only; running agents is the LLM layer's job.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::admin::tenants::tenant_not_found;
use crate::api::context::query;
use crate::api::{Context, views};
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::agents::{self, TenantAgentRecord};
use crate::store::{audit, runs, tenants};

#[derive(Deserialize)]
struct CreateAgentRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    agent_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    agent_type: Option<String>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct UpdateAgentRequest {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    agent_type: Option<String>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// Agent names as path segments and TOON names allow: letters, digits, `-`, `_`, `.`.
fn validate_agent_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest("Invalid agent name: use 1-128 letters, digits, '-', '_' or '.'".into()))
    }
}

/// A tenant agent's `config` object. Its tool-round keys (`max_tool_iterations`, or
/// `max_iterations`, which the runtime also reads) must be integers within
/// `[limits].max_tool_iterations`: the cap bounds the model calls one request can buy.
fn config_object(ctx: &Context, config: Option<Value>) -> Result<serde_json::Map<String, Value>, ApiError> {
    let map = match config {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::InvalidField("config".into())),
    };
    if let Some(Value::Array(tools)) = map.get("tools") {
        let tools: Vec<String> = tools.iter().filter_map(Value::as_str).map(str::to_string).collect();
        if let Some(server) = ctx.app.tools().forbidden_for_tenants(&tools) {
            return Err(ApiError::Forbidden(format!(
                "MCP server '{server}' is not available to tenant or user agents"
            )));
        }
    }
    let cap = ctx.app.config().limits.max_tool_iterations;
    for key in ["max_tool_iterations", "max_iterations"] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(value) if value.as_u64().is_some_and(|n| (1..=u64::from(cap)).contains(&n)) => {}
            Some(value) => {
                return Err(ApiError::Unprocessable(format!(
                    "config.{key} must be an integer between 1 and {cap}, got {value}"
                )));
            }
        }
    }
    Ok(map)
}

pub async fn list(ctx: &Context, tenant_id: &str) -> Result<Response, ApiError> {
    let id = tenant_id.to_string();
    let items = ctx
        .app
        .store()
        .read(move |txn| {
            if tenants::get(txn, &id)?.is_none() {
                return Ok(None);
            }
            let mut items = Vec::new();
            for agent in agents::list(txn, &id)? {
                let stats = runs::stats(txn, &id, &agent.agent_name)?;
                items.push(views::tenant_agent(&agent, &stats));
            }
            Ok(Some(items))
        })
        .await?
        .ok_or_else(tenant_not_found)?;
    Ok(response::json(StatusCode::OK, &json!({ "agents": items })))
}

pub async fn create(ctx: &Context, tenant_id: &str, request: Request) -> Result<Response, ApiError> {
    let body: CreateAgentRequest = ctx.json(request).await?;
    let name = body.name.or(body.agent_name).ok_or_else(|| ApiError::MissingField("name".into()))?;
    validate_agent_name(&name)?;
    let mut config = config_object(ctx, body.config)?;
    if let Some(kind) = body.agent_type {
        config.insert("agent_type".into(), Value::String(kind));
    }
    let now = clock::now_unix();
    let agent = TenantAgentRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant_id.to_string(),
        display_name: body.display_name.unwrap_or_else(|| name.clone()),
        agent_name: name,
        description: body.description,
        config_json: Value::Object(config).to_string(),
        enabled: body.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    // A taken name is refused before the writer, where a failing job costs its batch a replay;
    // `insert` checks again against the committed state.
    if ctx.app.store().read_now(|txn| agents::get(txn, tenant_id, &agent.agent_name))?.is_some() {
        return Err(agents::already_exists(&agent.agent_name).into());
    }
    let entry = super::audit::entry(
        ctx,
        "create_agent",
        "agent",
        &agent.id,
        json!({ "tenant_id": tenant_id, "agent_name": agent.agent_name }),
    );
    let stored = agent.clone();
    ctx.app
        .store()
        .write(move |txn| {
            agents::insert(txn, &stored)?;
            audit::append(txn, &entry)
        })
        .await?;
    Ok(response::json(StatusCode::CREATED, &views::tenant_agent(&agent, &Default::default())))
}

/// Merge the given fields; `config` replaces the stored config as a whole (API.md §1.9.4).
pub async fn update(ctx: &Context, tenant_id: &str, name: &str, request: Request) -> Result<Response, ApiError> {
    let mut body: UpdateAgentRequest = ctx.json(request).await?;
    let replacement = match body.config.take() {
        Some(config) => Some(config_object(ctx, Some(config))?),
        None => None,
    };
    let now = clock::now_unix();
    let entry =
        super::audit::entry(ctx, "update_agent", "agent", "", json!({ "tenant_id": tenant_id, "agent_name": name }));
    let (tenant, agent_name) = (tenant_id.to_string(), name.to_string());
    let updated = ctx
        .app
        .store()
        .write(move |txn| {
            let updated =
                agents::update(txn, &tenant, &agent_name, |agent| apply_update(agent, &body, &replacement, now))?;
            let mut entry = entry.clone();
            entry.resource_id = Some(updated.id.clone());
            audit::append(txn, &entry)?;
            Ok(updated)
        })
        .await?;
    let (t, n) = (tenant_id.to_string(), name.to_string());
    let stats = ctx.app.store().read(move |txn| runs::stats(txn, &t, &n)).await?;
    Ok(response::json(StatusCode::OK, &views::tenant_agent(&updated, &stats)))
}

fn apply_update(
    agent: &mut TenantAgentRecord,
    body: &UpdateAgentRequest,
    replacement: &Option<serde_json::Map<String, Value>>,
    now: i64,
) {
    let mut config = match replacement {
        Some(map) => map.clone(),
        None => views::config_value(&agent.config_json).as_object().cloned().unwrap_or_default(),
    };
    if let Some(kind) = &body.agent_type {
        config.insert("agent_type".into(), Value::String(kind.clone()));
    }
    agent.config_json = Value::Object(config).to_string();
    if let Some(display_name) = &body.display_name {
        agent.display_name = display_name.clone();
    }
    if let Some(description) = &body.description {
        agent.description = Some(description.clone());
    }
    if let Some(enabled) = body.enabled {
        agent.enabled = enabled;
    }
    agent.updated_at = now;
}

pub async fn delete(ctx: &Context, tenant_id: &str, name: &str) -> Result<Response, ApiError> {
    let entry = super::audit::entry(
        ctx,
        "delete_agent",
        "agent",
        format!("{tenant_id}:{name}"),
        json!({ "tenant_id": tenant_id, "agent_name": name }),
    );
    let (tenant, agent_name) = (tenant_id.to_string(), name.to_string());
    ctx.app
        .store()
        .write(move |txn| {
            agents::delete(txn, &tenant, &agent_name)?;
            audit::append(txn, &entry)
        })
        .await?;
    Ok(response::no_content())
}

#[derive(Default, Deserialize)]
struct RunsQuery {
    limit: Option<usize>,
    offset: Option<usize>,
}

pub async fn runs(ctx: &Context, tenant_id: &str, name: &str, request: &Request) -> Result<Response, ApiError> {
    let page: RunsQuery = query(request)?;
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let offset = page.offset.unwrap_or(0);
    let (tenant, agent) = (tenant_id.to_string(), name.to_string());
    let (items, total) = ctx
        .app
        .store()
        .read(move |txn| match tenants::get(txn, &tenant)? {
            Some(_) => Ok(Some(runs::page_for_agent(txn, &tenant, &agent, limit, offset)?)),
            None => Ok(None),
        })
        .await?
        .ok_or_else(tenant_not_found)?;
    let items: Vec<Value> = items.iter().map(views::admin_run).collect();
    Ok(response::json(StatusCode::OK, &json!({ "runs": items, "total": total, "limit": limit, "offset": offset })))
}

/// Run statistics; zeros when the agent never ran (never 404, as the reference).
pub async fn stats(ctx: &Context, tenant_id: &str, name: &str) -> Result<Response, ApiError> {
    let (tenant, agent) = (tenant_id.to_string(), name.to_string());
    let stats = ctx.app.store().read(move |txn| runs::stats(txn, &tenant, &agent)).await?;
    let tokens = stats.input_tokens + stats.output_tokens;
    let per_run = |value: u64| value.checked_div(stats.total).unwrap_or(0);
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "agent_name": name,
            "total_runs": stats.total,
            "successful_runs": stats.completed,
            "failed_runs": stats.failed,
            "success_count": stats.completed,
            "failed_count": stats.failed,
            "success_rate": if stats.total == 0 { 0.0 } else { stats.completed as f64 / stats.total as f64 },
            "avg_duration_ms": per_run(stats.duration_ms_sum),
            "avg_tokens": per_run(tokens),
            "total_input_tokens": stats.input_tokens,
            "total_output_tokens": stats.output_tokens,
            "last_run": stats.last_run.map(clock::rfc3339),
        }),
    ))
}

/// Every tenant's agents, ordered by tenant name then agent name.
pub async fn list_all(ctx: &Context) -> Result<Response, ApiError> {
    let items = ctx
        .app
        .store()
        .read(|txn| {
            let mut items = Vec::new();
            for (tenant, agent) in agents::list_all(txn)? {
                let stats = runs::stats(txn, &tenant.id, &agent.agent_name)?;
                let config = views::config_value(&agent.config_json);
                items.push(json!({
                    "tenant_id": tenant.id,
                    "tenant_name": tenant.name,
                    "name": agent.agent_name,
                    "agent_name": agent.agent_name,
                    "display_name": agent.display_name,
                    "agent_type": views::agent_type(&agent.agent_name, &config),
                    "model": config.get("model").and_then(Value::as_str).unwrap_or("unknown"),
                    "enabled": agent.enabled,
                    "status": if agent.enabled { "active" } else { "disabled" },
                    "total_runs": stats.total,
                    "last_run": stats.last_run.map(clock::rfc3339),
                    "last_run_at": stats.last_run,
                }));
            }
            Ok(items)
        })
        .await?;
    Ok(response::json(StatusCode::OK, &json!({ "agents": items })))
}
