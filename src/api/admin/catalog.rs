//! `GET /api/admin/agent-templates`, `GET /api/admin/models` (API.md §1.9.5),
//! `GET /api/admin/providers` and `POST /api/admin/config/reload`.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::context::query;
use crate::api::{Context, views};
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::reload::{ReloadError, Trigger};
use crate::store::templates;

#[derive(Default, Deserialize)]
struct TemplateQuery {
    product_type: Option<String>,
}

pub async fn templates(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let filter: TemplateQuery = query(request)?;
    let rows = ctx.app.store().read(move |txn| templates::list(txn, filter.product_type.as_deref())).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|t| {
            let config = views::config_value(&t.config_json);
            json!({
                "id": t.id,
                "name": t.agent_name,
                "agent_name": t.agent_name,
                "agent_type": views::agent_type(&t.agent_name, &config),
                "product_type": t.product_type,
                "display_name": t.display_name,
                "description": t.description,
                "config": config,
                "created_at": clock::rfc3339(t.created_at),
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &json!({ "templates": items })))
}

/// Every configured model (top-level `[[models]]` and each provider's `[[providers.models]]`),
/// as the registry resolved them.
pub fn models(ctx: &Context) -> Response {
    let items: Vec<Value> = ctx
        .app
        .llm()
        .models()
        .iter()
        .map(|m| {
            json!({
                "id": m.name, "name": m.name, "provider": m.provider.name, "model": m.model_id,
                "tier": m.tier.map(|t| t.as_str()), "context_length": m.context_length,
                "supports_tools": m.supports_tools, "available": m.provider.disabled_reason().is_none(),
            })
        })
        .collect();
    response::json(StatusCode::OK, &json!({ "models": items }))
}

/// Every provider with the deployments on it and their circuits: which upstreams are taking
/// traffic, which are cooling down and why (issue 15).
pub fn providers(ctx: &Context) -> Response {
    let time = |unix: Option<i64>| unix.map(clock::rfc3339);
    let items: Vec<Value> = ctx
        .app
        .llm()
        .providers()
        .iter()
        .map(|entry| {
            let provider = &entry.provider;
            let deployments: Vec<Value> = entry
                .deployments
                .iter()
                .map(|(model, deployment)| {
                    let health = deployment.health.view();
                    json!({
                        "model": model, "model_id": deployment.model_id, "weight": deployment.weight,
                        "circuit": health.circuit.as_str(), "consecutive_failures": health.consecutive_failures,
                        "in_flight": health.in_flight, "last_error": health.last_error,
                        "last_failure_at": time(health.last_failure_unix), "retry_at": time(health.retry_at_unix),
                    })
                })
                .collect();
            json!({
                "name": provider.name, "type": provider.kind.as_str(), "base_url": provider.base_url(),
                "available": provider.disabled_reason().is_none(), "disabled_reason": provider.disabled_reason(),
                "deployments": deployments,
            })
        })
        .collect();
    response::json(StatusCode::OK, &json!({ "providers": items }))
}

/// Re-read the config and swap providers, models, agents, tools and workflows: 200 with what
/// changed, or 422 with what is wrong (and nothing changed).
pub async fn reload(ctx: &Context) -> Result<Response, ApiError> {
    match ctx.app.reload(Trigger::Api).await {
        Ok(report) => Ok(response::json(
            StatusCode::OK,
            &json!({
                "reloaded": true, "at": clock::rfc3339(clock::now_unix()),
                "changes": report.changes, "restart_required": report.restart_required,
            }),
        )),
        Err(ReloadError::Config(e)) => Err(ApiError::Unprocessable(format!("Invalid configuration: {e}"))),
        Err(ReloadError::NoSource) => Err(ApiError::Conflict(
            "This server was not started from a config file it can re-read; restart it to change its configuration"
                .into(),
        )),
        Err(e @ ReloadError::Internal(_)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// `GET /api/admin/migrations`: every schema migration of the open database with its applied
/// time (`null`: pending), for `ares migrate status` while the server holds the file.
pub async fn migrations(ctx: &Context) -> Result<Response, ApiError> {
    let rows = ctx.app.store().migration_status()?;
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|row| {
            serde_json::json!({
                "version": row.version,
                "description": row.description,
                "applied_at": row.applied_at.map(crate::clock::rfc3339),
                "applied_at_unix": row.applied_at,
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &serde_json::json!({ "migrations": rows })))
}
