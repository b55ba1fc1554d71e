//! A route called by the server itself on a tenant's behalf. An MCP tool (`mcp::server`) runs
//! an agent, a chat, RAG or research through the very handler an HTTP client would reach, with
//! the same quota reservation and settlement (the usage event's `source` is `"mcp"`), budget,
//! run record, metrics and request-log record — so a tool call cannot cost less governance
//! than the request it stands for.

use std::net::IpAddr;
use std::sync::Arc;

use http::Method;
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::{Context, metered, routes::Route};
use crate::app::App;
use crate::auth::{Principal, TenantPrincipal};
use crate::error::ApiError;
use crate::http::body::TimedBody;
use crate::telemetry::scope::{self, Scope};

/// One call: the route, its JSON body, and the name metrics and the request log give it
/// (`mcp:run_agent`): the route's own pattern would mix tool calls with HTTP clients' requests.
/// No route: work done by the caller itself (the calculator), admitted and counted as one
/// request all the same.
pub(crate) struct Call {
    pub route: Option<Route>,
    pub method: Method,
    pub body: Option<Value>,
    pub label: &'static str,
}

/// Run `call` for `tenant`; the handler's JSON answer, or its error.
pub(crate) async fn call(
    app: &Arc<App>,
    tenant: &TenantPrincipal,
    client_ip: IpAddr,
    call: Call,
) -> Result<Value, ApiError> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = std::time::Instant::now();
    let scope = Arc::new(Scope::new(request_id.as_str().into(), None, app.telemetry().clone(), call.method.as_str()));
    let principal = Principal::Tenant(tenant.clone());
    scope.note_route(call.label);
    scope.note_principal(&principal);
    let limit = call.route.as_ref().map_or(app.config().server.max_body_bytes, |r| r.body_limit(&app.config()));
    let ctx = Context::new(app.clone(), principal, client_ip, &request_id, limit);
    let body = call.body.map(|b| b.to_string()).unwrap_or_default();
    let request = http::Request::builder()
        .method(call.method.clone())
        // Handlers take their parameters from the route and the body; the path is only a name.
        .uri("/mcp")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(TimedBody::complete(body.into()))
        .map_err(|e| ApiError::Internal(format!("internal request: {e}")))?;

    let mut quota_headers = Vec::new();
    let work = async {
        match call.route {
            Some(route) => metered::run_as(&ctx, route, request, &mut quota_headers, "mcp").await,
            None => {
                metered::admit(&ctx, &mut quota_headers).await?;
                metered::settle(&ctx, "mcp")?;
                Ok(crate::http::response::json(http::StatusCode::OK, &Value::Null))
            }
        }
    };
    let outcome = scope::within(Some(scope.clone()), work).await;
    let (status, error, answer) = match outcome {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.into_body().collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    let value = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                    (status, None, Ok(value))
                }
                Err(e) => {
                    let error = ApiError::Internal(format!("reading the answer: {e}"));
                    (500, Some((error.status_and_code().1, error.to_string())), Err(error))
                }
            }
        }
        Err(error) => {
            let (status, code) = error.status_and_code();
            (status.as_u16(), Some((code, error.to_string())), Err(error))
        }
    };
    super::close_account(app, &scope, call.label, &call.method, status, error, started.elapsed());
    answer
}
