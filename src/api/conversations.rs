//! `GET /api/conversations`, `GET|PUT|DELETE /api/conversations/{id}` (API.md §1.7): only the
//! caller's conversations; anybody else's is 404, exactly like a missing one.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::conversations;

fn owner(ctx: &Context) -> Result<String, ApiError> {
    Ok(format!("user:{}", ctx.user()?.user_id))
}

fn not_found() -> ApiError {
    ApiError::NotFound("Conversation not found".into())
}

pub async fn list(ctx: &Context) -> Result<Response, ApiError> {
    let owner = owner(ctx)?;
    let rows = ctx.app.store().read(move |txn| conversations::list(txn, &owner)).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "title": c.title.clone().unwrap_or_default(),
                "message_count": c.message_count,
                "created_at": clock::rfc3339(c.created_at),
                "updated_at": clock::rfc3339(c.updated_at),
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &Value::Array(items)))
}

pub async fn get(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let (owner, id) = (owner(ctx)?, id.to_string());
    let found = ctx
        .app
        .store()
        .read(move |txn| match conversations::get(txn, &owner, &id)? {
            Some(c) => Ok(Some((c, conversations::messages(txn, &id)?))),
            None => Ok(None),
        })
        .await?;
    let (conversation, messages) = found.ok_or_else(not_found)?;
    let messages: Vec<Value> = messages
        .iter()
        .map(
            |m| json!({ "id": m.id, "role": m.role, "content": m.content, "created_at": clock::rfc3339(m.created_at) }),
        )
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "id": conversation.id,
            "title": conversation.title,
            "messages": messages,
            "message_count": conversation.message_count,
            "created_at": clock::rfc3339(conversation.created_at),
            "updated_at": clock::rfc3339(conversation.updated_at),
        }),
    ))
}

#[derive(Deserialize)]
struct RenameBody {
    #[serde(default)]
    title: Option<String>,
}

pub async fn rename(ctx: &Context, id: &str, request: Request) -> Result<Response, ApiError> {
    let body: RenameBody = ctx.json(request).await?;
    let (owner, id, now) = (owner(ctx)?, id.to_string(), clock::now_unix());
    let updated =
        ctx.app.store().write(move |txn| conversations::rename(txn, &owner, &id, body.title.clone(), now)).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "success": true,
            "id": updated.id,
            "title": updated.title,
            "message_count": updated.message_count,
            "updated_at": clock::rfc3339(updated.updated_at),
        }),
    ))
}

pub async fn delete(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let (owner, id) = (owner(ctx)?, id.to_string());
    ctx.app.store().write(move |txn| conversations::delete(txn, &owner, &id)).await?;
    Ok(response::no_content())
}
