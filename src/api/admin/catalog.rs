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

/// Every configured model: top-level `[[models]]` and each provider's `[[providers.models]]`.
pub fn models(ctx: &Context) -> Response {
    let config = ctx.app.config();
    let mut items: Vec<Value> = config
        .models
        .iter()
        .map(|m| {
            let context_length = m.context_length.or_else(|| {
                config
                    .providers
                    .iter()
                    .filter(|p| p.name == m.provider)
                    .flat_map(|p| &p.models)
                    .find(|pm| pm.id == m.model_id)
                    .and_then(|pm| pm.context_length)
            });
            json!({
                "id": m.name, "name": m.name, "provider": m.provider, "model": m.model_id,
                "tier": m.tier.map(|t| t.as_str()), "context_length": context_length, "supports_tools": m.supports_tools,
            })
        })
        .collect();
    for provider in &config.providers {
        for m in &provider.models {
            let name = m.name.clone().unwrap_or_else(|| m.id.clone());
            if items.iter().any(|i| i["name"] == name.as_str()) {
                continue;
            }
            items.push(json!({
                "id": name, "name": name, "provider": provider.name, "model": m.id,
                "tier": m.tier.map(|t| t.as_str()), "context_length": m.context_length, "supports_tools": m.supports_tools,
            }));
        }
    }
    response::json(StatusCode::OK, &json!({ "models": items }))
}
