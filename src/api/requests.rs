//! The request log, read: `GET /api/admin/requests` (everyone's, filtered) and
//! `GET /v1/requests` (the calling tenant's own). Newest first, with an opaque cursor.
//!
//! Query parameters: `from`, `to` (RFC 3339 or Unix seconds; `to` exclusive), `tenant_id`
//! (admin only), `status` (`2xx`, `4xx`, `5xx`), `route` (a route pattern such as
//! `/v1/chat/completions`), `model`, `q` (text in the error code or message), `limit` (1–500,
//! default 50) and `cursor` (the previous page's `next_cursor`).

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::Context;
use crate::api::context::query;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::request_log::{self, Cursor, Filter, RequestLogRecord};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

#[derive(Default, Deserialize)]
struct Params {
    from: Option<serde_json::Value>,
    to: Option<serde_json::Value>,
    tenant_id: Option<String>,
    status: Option<serde_json::Value>,
    route: Option<String>,
    model: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct RequestView {
    timestamp: String,
    request_id: String,
    route: String,
    method: String,
    status: u16,
    duration_ms: f64,
    principal: String,
    tenant_id: Option<String>,
    user_id: Option<String>,
    api_key_prefix: Option<String>,
    agent: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    attempts: u32,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    /// Dollars, to the micro-dollar (`"0.000123"`).
    cost_usd: String,
    ttft_ms: Option<f64>,
    error_code: Option<String>,
    error: Option<String>,
}

impl From<RequestLogRecord> for RequestView {
    fn from(record: RequestLogRecord) -> Self {
        RequestView {
            timestamp: clock::rfc3339_millis(record.at_ms),
            request_id: record.request_id,
            route: record.route,
            method: record.method,
            status: record.status,
            duration_ms: record.duration_us as f64 / 1000.0,
            principal: record.principal,
            tenant_id: record.tenant_id,
            user_id: record.user_id,
            api_key_prefix: record.key_prefix,
            agent: record.agent,
            model: record.model,
            provider: record.provider,
            attempts: record.attempts,
            input_tokens: record.input_tokens,
            output_tokens: record.output_tokens,
            cached_input_tokens: record.cached_input_tokens,
            cost_usd: crate::metering::cost::usd(record.cost_micros),
            ttft_ms: record.ttft_us.map(|us| us as f64 / 1000.0),
            error_code: record.error_code,
            error: record.error,
        }
    }
}

/// `GET /api/admin/requests`.
pub async fn admin_list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let params: Params = query(request)?;
    let tenant = params.tenant_id.clone().filter(|t| !t.is_empty());
    list(ctx, params, tenant).await
}

/// `GET /v1/requests`: the tenant's own, whatever `tenant_id` says.
pub async fn tenant_list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let params: Params = query(request)?;
    let tenant = ctx.tenant()?.tenant_id.clone();
    list(ctx, params, Some(tenant)).await
}

async fn list(ctx: &Context, params: Params, tenant_id: Option<String>) -> Result<Response, ApiError> {
    let filter = Filter {
        from_ms: params.from.as_ref().map(|v| time_param("from", v)).transpose()?,
        to_ms: params.to.as_ref().map(|v| time_param("to", v)).transpose()?,
        tenant_id,
        status_class: params.status.as_ref().map(status_param).transpose()?,
        route: params.route.filter(|r| !r.is_empty()),
        model: params.model.filter(|m| !m.is_empty()),
        error_text: params.q.filter(|q| !q.is_empty()),
    };
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(limit @ 1..=MAX_LIMIT) => limit,
        Some(_) => return Err(ApiError::Unprocessable(format!("limit must be between 1 and {MAX_LIMIT}"))),
    };
    let before = params.cursor.as_deref().filter(|c| !c.is_empty()).map(parse_cursor).transpose()?;
    let app = ctx.app.clone();
    app.telemetry().flush(app.store()).await?;
    let page = app.store().read(move |txn| request_log::page(txn, &filter, before, limit)).await?;
    let requests: Vec<RequestView> = page.records.into_iter().map(RequestView::from).collect();
    let next_cursor = page.next.map(|(at, seq)| format!("{at}-{seq}"));
    Ok(response::json(StatusCode::OK, &serde_json::json!({ "requests": requests, "next_cursor": next_cursor })))
}

fn time_param(name: &str, value: &serde_json::Value) -> Result<i64, ApiError> {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    clock::parse_time_ms(&text).ok_or_else(|| {
        ApiError::Unprocessable(format!("{name} must be an RFC 3339 time or Unix seconds, not '{text}'"))
    })
}

fn status_param(value: &serde_json::Value) -> Result<u16, ApiError> {
    let text = match value {
        serde_json::Value::String(text) => text.to_ascii_lowercase(),
        other => other.to_string(),
    };
    match text.as_str() {
        "2xx" | "2" => Ok(2),
        "3xx" | "3" => Ok(3),
        "4xx" | "4" => Ok(4),
        "5xx" | "5" => Ok(5),
        _ => Err(ApiError::Unprocessable(format!("status must be 2xx, 3xx, 4xx or 5xx, not '{text}'"))),
    }
}

fn parse_cursor(text: &str) -> Result<Cursor, ApiError> {
    let invalid = || ApiError::BadRequest(format!("Invalid cursor: {text}"));
    let (at, seq) = text.split_once('-').ok_or_else(invalid)?;
    Ok((at.parse().map_err(|_| invalid())?, seq.parse().map_err(|_| invalid())?))
}
