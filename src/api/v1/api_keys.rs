//! `GET|POST /v1/api-keys`, `DELETE /v1/api-keys/{id}` (API.md §1.10).

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::Context;
use crate::auth::api_keys::material;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::{api_keys, audit};

#[derive(Deserialize)]
struct CreateKeyRequest {
    name: String,
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// The caller's active keys.
pub async fn list(ctx: &Context) -> Result<Response, ApiError> {
    let tenant = ctx.tenant()?.tenant_id.clone();
    let keys = ctx.app.store().read_now(|txn| api_keys::list(txn, &tenant, true, clock::now_unix()))?;
    let keys: Vec<_> = keys.iter().map(v1_key).collect();
    Ok(response::json(StatusCode::OK, &json!({ "keys": keys })))
}

fn v1_key(key: &api_keys::ApiKeyRecord) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.key_prefix,
        "created_at": clock::rfc3339(key.created_at),
        "last_used": key.last_used.map(clock::rfc3339),
        "expires_at": key.expires_at.map(clock::rfc3339),
    })
}

/// A new key for the caller's tenant; `key` is the id string ([D]), the object is `api_key`.
pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: CreateKeyRequest = ctx.json(request).await?;
    if body.name.trim().is_empty() {
        return Err(ApiError::BadRequest("API key name must not be empty".into()));
    }
    let now = clock::now_unix();
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days) if (1..=36_500).contains(&days) => Some(now + days * 86_400),
        Some(_) => return Err(ApiError::Unprocessable("expires_in_days must be between 1 and 36500".into())),
    };
    let (tenant, name) = (ctx.tenant()?.tenant_id.clone(), body.name);
    let mut entry = tenant_audit(ctx, "create_api_key", json!({ "name": name, "expires_at": expires_at }))?;
    let (raw, key) = ctx
        .app
        .store()
        .write(move |txn| {
            let (raw, key) = api_keys::insert_generated(txn, &tenant, &name, now, expires_at, material)?;
            entry.resource_id = Some(key.id.clone());
            audit::append(txn, &entry)?;
            Ok((raw, key))
        })
        .await?;
    let object = v1_key(&key);
    let mut view = object.clone();
    view["key"] = key.id.clone().into();
    view["secret"] = raw.into();
    view["api_key"] = object;
    Ok(response::json(StatusCode::CREATED, &view))
}

/// Deactivate one of the caller's keys (also the key in use). Idempotent; foreign ids are 404.
pub async fn revoke(ctx: &Context, key_id: &str) -> Result<Response, ApiError> {
    let tenant = ctx.tenant()?.tenant_id.clone();
    let mut entry = tenant_audit(ctx, "revoke_api_key", json!({}))?;
    entry.resource_id = Some(key_id.to_string());
    crate::api::admin::api_keys::revoke_audited(ctx, &tenant, key_id, entry).await
}

/// An audit entry for a key change made by a tenant through its own key.
fn tenant_audit(ctx: &Context, action: &str, mut details: serde_json::Value) -> Result<audit::AuditRecord, ApiError> {
    let tenant = ctx.tenant()?;
    details["actor"] = format!("tenant:{}", tenant.tenant_id).into();
    details["tenant_id"] = tenant.tenant_id.clone().into();
    details["via_key"] = tenant.key_id.clone().into();
    Ok(audit::AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        action: action.to_string(),
        resource_type: "api_key".into(),
        resource_id: None,
        details: Some(details.to_string()),
        admin_ip: Some(ctx.client_ip.to_string()),
        created_at: clock::now_unix(),
    })
}
