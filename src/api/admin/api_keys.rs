//! `POST|GET /api/admin/tenants/{tenant_id}/api-keys` (API.md §1.9.3), and
//! `DELETE /api/admin/tenants/{tenant_id}/api-keys/{key_id}`: the operator's counterpart of a
//! tenant's `DELETE /v1/api-keys/{id}`, for a key that leaked or whose holder is gone.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::Context;
use crate::api::admin::tenants::tenant_not_found;
use crate::api::views;
use crate::auth::api_keys::material;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::{api_keys, audit, tenants};

#[derive(Deserialize)]
struct CreateKeyRequest {
    name: String,
}

const WARNING: &str = "Store this raw key securely. You will not be able to retrieve it again.";

pub async fn create(ctx: &Context, tenant_id: &str, request: Request) -> Result<Response, ApiError> {
    let body: CreateKeyRequest = ctx.json(request).await?;
    let now = clock::now_unix();
    let (tenant, name) = (tenant_id.to_string(), body.name);
    let mut entry =
        super::audit::entry(ctx, "create_api_key", "api_key", "", json!({ "tenant_id": tenant_id, "name": name }));
    let (raw, key) = ctx
        .app
        .store()
        .write(move |txn| {
            let (raw, key) = api_keys::insert_generated(txn, &tenant, &name, now, None, material)?;
            entry.resource_id = Some(key.id.clone());
            audit::append(txn, &entry)?;
            Ok((raw, key))
        })
        .await?;
    let mut view = views::api_key(&key);
    view["raw_key"] = raw.into();
    view["warning"] = WARNING.into();
    view["api_key"] = views::api_key(&key);
    Ok(response::json(StatusCode::CREATED, &view))
}

/// Revoke one of a tenant's keys; its next request is refused (keys are checked against the
/// store on every request).
pub async fn revoke(ctx: &Context, tenant_id: &str, key_id: &str) -> Result<Response, ApiError> {
    let entry = super::audit::entry(ctx, "revoke_api_key", "api_key", key_id, json!({ "tenant_id": tenant_id }));
    revoke_audited(ctx, tenant_id, key_id, entry).await
}

/// Revoke the key and append its audit entry in one transaction (the operator's revocation and
/// a tenant's own, `DELETE /v1/api-keys/{id}`, differ only in the entry).
pub(crate) async fn revoke_audited(
    ctx: &Context,
    tenant_id: &str,
    key_id: &str,
    entry: audit::AuditRecord,
) -> Result<Response, ApiError> {
    let (tenant, id) = (tenant_id.to_string(), key_id.to_string());
    ctx.app
        .store()
        .write(move |txn| {
            api_keys::revoke(txn, &tenant, &id)?;
            audit::append(txn, &entry)
        })
        .await?;
    Ok(response::no_content())
}

/// All keys of a tenant, revoked ones included, newest first.
pub async fn list(ctx: &Context, tenant_id: &str) -> Result<Response, ApiError> {
    let id = tenant_id.to_string();
    let keys = ctx
        .app
        .store()
        .read(move |txn| match tenants::get(txn, &id)? {
            Some(_) => {
                let now = clock::now_unix();
                let keys = api_keys::list(txn, &id, false, now)?;
                let budgets = keys
                    .iter()
                    .map(|key| super::budgets::view(txn, &id, Some(&key.id), now))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some((keys, budgets)))
            }
            None => Ok(None),
        })
        .await?
        .ok_or_else(tenant_not_found)?;
    let (keys, budgets) = keys;
    let keys: Vec<_> = keys
        .iter()
        .zip(budgets)
        .map(|(key, budget)| {
            let mut view = views::api_key(key);
            view["budget"] = budget;
            view
        })
        .collect();
    Ok(response::json(StatusCode::OK, &json!({ "keys": keys })))
}
