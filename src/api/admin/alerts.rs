//! `GET /api/admin/alerts`, `POST /api/admin/alerts/{alert_id}/resolve` (API.md §1.9.7).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Context;
use crate::api::context::query;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, body, response};
use crate::store::alerts::{self, AlertRecord};
use crate::store::audit;

#[derive(Default, Deserialize)]
struct AlertQuery {
    severity: Option<String>,
    resolved: Option<Value>,
    limit: Option<usize>,
}

fn view(alert: &AlertRecord) -> Value {
    json!({
        "id": alert.id,
        "severity": alert.severity,
        "source": alert.source,
        "title": alert.title,
        "message": alert.message,
        "tenant_id": alert.tenant_id,
        "resolved": alert.resolved,
        "created_at": clock::rfc3339(alert.created_at),
        "resolved_at": alert.resolved_at.map(clock::rfc3339),
        "resolved_by": alert.resolved_by,
    })
}

pub async fn list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let filter: AlertQuery = query(request)?;
    let resolved = match filter.resolved {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => {
            return Err(ApiError::BadRequest("Invalid value for query parameter: resolved (true or false)".into()));
        }
    };
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let severity = filter.severity;
    let rows = ctx.app.store().read(move |txn| alerts::list(txn, severity.as_deref(), resolved, limit)).await?;
    let items: Vec<Value> = rows.iter().map(view).collect();
    Ok(response::json(StatusCode::OK, &json!({ "alerts": items })))
}

#[derive(Default, Deserialize)]
struct ResolveRequest {
    resolved_by: Option<String>,
}

/// Resolve an alert; the body is optional. Returns the alert (unchanged if already resolved).
pub async fn resolve(ctx: &Context, alert_id: &str, request: Request) -> Result<Response, ApiError> {
    let bytes = ctx.body(request).await?;
    let body: ResolveRequest =
        if bytes.iter().all(u8::is_ascii_whitespace) { ResolveRequest::default() } else { body::parse_json(&bytes)? };
    let by = body.resolved_by.unwrap_or_else(|| "admin".to_string());
    let entry = super::audit::entry(ctx, "resolve_alert", "alert", alert_id, json!({ "resolved_by": by }));
    let (id, now) = (alert_id.to_string(), clock::now_unix());
    let alert = ctx
        .app
        .store()
        .write(move |txn| {
            let (alert, changed) = alerts::resolve(txn, &id, Some(by.clone()), now)?;
            if changed {
                audit::append(txn, &entry)?;
            }
            Ok(alert)
        })
        .await?;
    Ok(response::json(StatusCode::OK, &view(&alert)))
}
