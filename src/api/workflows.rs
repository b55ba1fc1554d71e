//! `GET /api/workflows` and `POST /api/workflows/{name}` (API.md §1.5, C7, C8).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::Context;
use crate::api::context::query;
use crate::chat::Caller;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::orchestration::{Spend, workflow};

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    detailed: bool,
}

/// Names sorted ([D]); `?detailed=true` gives the reference's objects.
pub fn list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let params: ListQuery = query(request)?;
    let live = ctx.app.workflows();
    let workflows = live.all();
    let body: Vec<Value> = if params.detailed {
        workflows
            .iter()
            .map(|w| {
                json!({
                    "name": w.name,
                    "entry_agent": w.entry_agent,
                    "fallback_agent": w.fallback_agent,
                    "max_depth": w.max_depth,
                    "max_iterations": w.max_iterations,
                    "parallel_subagents": w.parallel_subagents,
                })
            })
            .collect()
    } else {
        workflows.iter().map(|w| Value::from(w.name.as_str())).collect()
    };
    Ok(response::json(StatusCode::OK, &body))
}

#[derive(Deserialize)]
struct RunBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    context: Option<Value>,
}

pub async fn run(ctx: &Context, name: &str, request: Request) -> Result<Response, ApiError> {
    let user_id = ctx.user()?.user_id.clone();
    let definition = ctx
        .app
        .workflows()
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("Workflow '{name}' not found")))?;
    let body: RunBody = ctx.json(request).await?;
    let query = body.query.filter(|q| !q.trim().is_empty()).ok_or_else(|| ApiError::MissingField("query".into()))?;
    let context: Map<String, Value> = match body.context {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::Unprocessable("context must be a JSON object".into())),
    };
    let spend = Spend::default();
    let outcome = workflow::run(&ctx.app, &Caller::User { user_id }, &definition, &query, &context, &spend).await;
    ctx.add_tokens(spend.tokens());
    let outcome = outcome?;
    Ok(response::json(StatusCode::OK, &outcome.to_json()))
}
