//! `GET /api/agents` (no auth, API.md §1.3): the platform agents, in the superset shape.

use http::StatusCode;
use serde_json::{Value, json};

use crate::api::Context;
use crate::http::{Response, response};

pub fn list(ctx: &Context) -> Response {
    let items: Vec<Value> = ctx
        .app
        .agents()
        .all()
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "agent_type": a.name,
                "display_name": a.display_name,
                "description": a.description,
                "model": a.model,
                "tools": a.tools,
            })
        })
        .collect();
    response::json(StatusCode::OK, &Value::Array(items))
}
