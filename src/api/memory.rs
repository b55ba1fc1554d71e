//! `GET /api/memory` (API.md §1.4): what the server has learned about the caller — only the
//! caller (see `crate::memory` for how it is learned).

use http::StatusCode;
use serde_json::json;

use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Response, response};
use crate::store::memory;

pub async fn get(ctx: &Context) -> Result<Response, ApiError> {
    let user_id = ctx.user()?.user_id.clone();
    let id = user_id.clone();
    let (facts, preferences) =
        ctx.app.store().read(move |txn| Ok((memory::facts(txn, &id)?, memory::preferences(txn, &id)?))).await?;
    let preferences: Vec<_> = preferences
        .iter()
        .map(|p| json!({ "category": p.category, "key": p.key, "value": p.value, "confidence": p.confidence }))
        .collect();
    let facts: Vec<_> = facts
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "user_id": f.user_id,
                "category": f.category,
                "fact_key": f.fact_key,
                "fact_value": f.fact_value,
                "confidence": f.confidence,
                "created_at": clock::rfc3339(f.created_at),
                "updated_at": clock::rfc3339(f.updated_at),
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &json!({ "user_id": user_id, "preferences": preferences, "facts": facts })))
}
