//! `GET /api/admin/audit-log?limit&offset` (API.md §1.9.8): newest first, in the documented
//! shape with the reference's fields alongside.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::Context;
use crate::api::context::query;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::audit::{self, AuditRecord};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

#[derive(Default, Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
struct AuditEntryView {
    id: String,
    action: String,
    actor: String,
    details: serde_json::Value,
    timestamp: String,
    legacy_action: String,
    resource_type: String,
    resource_id: Option<String>,
    admin_ip: Option<String>,
}

impl From<AuditRecord> for AuditEntryView {
    fn from(record: AuditRecord) -> Self {
        let details = match record.details {
            None => serde_json::json!({}),
            Some(text) => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        };
        let actor = details.get("actor").and_then(serde_json::Value::as_str).unwrap_or("admin").to_string();
        AuditEntryView {
            id: record.id,
            action: documented_action(&record.action).to_string(),
            actor,
            details,
            timestamp: clock::rfc3339(record.created_at),
            legacy_action: record.action,
            resource_type: record.resource_type,
            resource_id: record.resource_id,
            admin_ip: record.admin_ip,
        }
    }
}

/// The reference stores `create_tenant`; the docs show `tenant.created`.
fn documented_action(stored: &str) -> &str {
    match stored {
        "create_tenant" => "tenant.created",
        "update_quota" => "tenant.quota_updated",
        "provision_client" => "tenant.provisioned",
        "create_api_key" => "api_key.created",
        "revoke_api_key" => "api_key.revoked",
        "create_agent" => "agent.created",
        "update_agent" => "agent.updated",
        "delete_agent" => "agent.deleted",
        "resolve_alert" => "alert.resolved",
        "trigger_deploy" => "deploy.triggered",
        "cancel_deploy" => "deploy.cancelled",
        "delete_deploy" => "deploy.deleted",
        "create_user" => "user.created",
        "open_circuit" => "provider.circuit_opened",
        "close_circuit" => "provider.circuit_closed",
        other => other,
    }
}

pub async fn list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let page: Page = query(request)?;
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let offset = page.offset.unwrap_or(0);
    let records = ctx.app.store().read(move |txn| audit::page(txn, limit, offset)).await?;
    let entries: Vec<AuditEntryView> = records.into_iter().map(AuditEntryView::from).collect();
    Ok(response::json(StatusCode::OK, &serde_json::json!({ "entries": entries })))
}

/// An audit entry for a mutation made by the admin calling `ctx` (written by the caller in the
/// same transaction as the mutation).
pub fn entry(
    ctx: &Context,
    action: &str,
    resource_type: &str,
    resource_id: impl Into<String>,
    details: serde_json::Value,
) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        resource_id: Some(resource_id.into()),
        details: Some(details.to_string()),
        admin_ip: Some(ctx.client_ip.to_string()),
        created_at: clock::now_unix(),
    }
}
