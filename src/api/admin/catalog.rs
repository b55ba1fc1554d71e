//! `GET /api/admin/agent-templates` and `GET /api/admin/models` (API.md §1.9.5).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::context::query;
use crate::api::{Context, views};
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
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
