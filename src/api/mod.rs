//! The API: the request pipeline, the route table and one handler module per resource.
//!
//! `handle` is the whole flow of API.md/DESIGN §2 in order: request id → IP rate limit → CORS
//! preflight → route → authenticate → handler → error rendering. Handlers receive a
//! [`Context`] with the resolved principal and never parse auth headers or format errors.

mod admin;
mod agents;
mod anthropic;
mod chat;
mod context;
mod conversations;
mod health;
pub(crate) mod internal;
mod memory;
pub(crate) mod metered;
mod openai;
pub mod openapi;
mod rag;
pub mod rag_jobs;
mod requests;
mod research;
pub mod routes;
mod streaming;
pub(crate) mod user_agents;
mod users;
pub(crate) mod v1;
mod views;
mod workflows;

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::FutureExt as _;
use http::{HeaderValue, Method};

pub use context::Context;

use crate::app::App;
use crate::auth::failures::Attempt;
use crate::auth::{self, AuthRequirement};
use crate::error::{ApiError, Dialect};
use crate::http::cors::CorsPolicy;
use crate::http::{Request, Response, client_ip, response};
use crate::telemetry::scope::{self, Scope};
use routes::{Resolution, Route};

/// Serve one request. Never fails: every error, including a panic in a handler, becomes a
/// JSON error response.
pub async fn handle(app: Arc<App>, request: Request, peer: IpAddr) -> Response {
    let started = std::time::Instant::now();
    let request = without_base_path(request, app.console().base_path());
    let request_id = request_id(request.headers());
    let method = request.method().clone();
    let dialect = routes::dialect_of_path(request.uri().path());
    let origin = request.headers().get(http::header::ORIGIN).cloned();
    let http1 = request.version() < http::Version::HTTP_2;
    let has_body = !http_body::Body::is_end_stream(request.body());
    let client_ip = client_ip::client_ip(peer, request.headers(), &app.config().server.trusted_proxies);

    let parent = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(scope::parse_traceparent);
    let scope = Arc::new(Scope::new(request_id.as_str().into(), parent, app.telemetry().clone(), method.as_str()));

    let mut extra_headers = Vec::new();
    let mut route = UNMATCHED;
    let outcome = std::panic::AssertUnwindSafe(scope::within(
        Some(scope.clone()),
        pipeline(&app, &scope, request, client_ip, &request_id, &mut extra_headers, &mut route),
    ))
    .catch_unwind()
    .await;
    let mut error = None;
    let mut failed = |err: ApiError| {
        let response = render_error(&err, dialect, &scope, &method, route);
        error = Some((err.status_and_code().1, err.to_string()));
        response
    };
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => failed(err),
        Err(_) => failed(ApiError::Internal("handler panicked".into())),
    };

    // The rest of an oversized or stalled body is never read, so the connection cannot be
    // reused: say so, or a client may send its next request into a connection the server is
    // closing. The same goes for any refusal of a request with a body: one refused on its head
    // (a bad key, a rate limit) is answered before its body has arrived, and hyper closes a
    // connection whose unread body is not already buffered — an SDK that reused it saw a
    // connection error instead of its next answer.
    let status = response.status();
    let close = http1
        && (matches!(status, http::StatusCode::PAYLOAD_TOO_LARGE | http::StatusCode::REQUEST_TIMEOUT)
            || (has_body && (status.is_client_error() || status.is_server_error())));
    let headers = response.headers_mut();
    if close {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (name, value) in extra_headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    if let Some(origin) = origin {
        let mut request_headers = http::HeaderMap::new();
        request_headers.insert(http::header::ORIGIN, origin);
        app.cors().decorate(&request_headers, headers);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    account_for(&app, &scope, &mut response, route, &method, error, elapsed);
    // One line per request: at INFO for JSON logs (an access log for shippers), else DEBUG. The
    // raw path is not logged: it may hold ids; the route pattern says what was called.
    let access_log = crate::logs::access_log();
    let wanted =
        if access_log { tracing::enabled!(tracing::Level::INFO) } else { tracing::enabled!(tracing::Level::DEBUG) };
    if wanted {
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let tenant = scope.tenant();
        let tenant_id = tenant.as_deref().unwrap_or("-");
        if access_log {
            tracing::info!(%request_id, %method, route, status, duration_ms, tenant_id, "request");
        } else {
            tracing::debug!(%request_id, %method, route, status, duration_ms, tenant_id, "request");
        }
    }
    response
}

/// A reverse proxy that passes `[server].public_base_path` on gets the answers of one that
/// strips it: `/ares/health` is `/health`, `/ares` and `/ares/` are the console's page.
fn without_base_path(mut request: Request, base: &str) -> Request {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        return request;
    }
    let rest = match request.uri().path().strip_prefix(base) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// Close the request's account: the cost and budget headers, its metrics, and what the request
/// log and traces will say of it (`error`: the code and message the client got).
fn account_for(
    app: &App,
    scope: &Scope,
    response: &mut Response,
    route: &'static str,
    method: &Method,
    error: Option<(&'static str, String)>,
    elapsed: std::time::Duration,
) {
    let headers = response.headers_mut();
    // What the answer cost, when it called a model and is complete (a stream's calls end after
    // its head: its cost is in the request log and its run).
    let streamed =
        headers.get(http::header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if scope.called_upstream()
        && !streamed
        && let Ok(value) = HeaderValue::from_str(&crate::metering::cost::usd(scope.cost().micros()))
    {
        headers.insert("x-ares-cost-usd", value);
    }
    if let Some(remaining) = scope.budget_remaining()
        && let Ok(value) = HeaderValue::from_str(&crate::metering::cost::usd(remaining))
    {
        headers.insert("x-budget-remaining-usd", value);
    }
    close_account(app, scope, route, method, response.status().as_u16(), error, elapsed);
}

/// What the request log, traces and metrics say of an answered request (also of an MCP tool's
/// call of a route, which has no response of its own to decorate).
pub(crate) fn close_account(
    app: &App,
    scope: &Scope,
    route: &'static str,
    method: &Method,
    status: u16,
    error: Option<(&'static str, String)>,
    elapsed: std::time::Duration,
) {
    let waited = scope.note_answer(route, method.as_str(), status, error);
    let metrics = &app.telemetry().metrics;
    let tenant = if metrics.per_tenant() { scope.tenant() } else { None };
    metrics.http_request(route, method.as_str(), status, elapsed, tenant.as_deref());
    if let Some(waited) = waited {
        metrics.gateway_overhead(elapsed.saturating_sub(waited));
    }
}

/// Headers added to the response whatever it turns out to be (quota headers on /v1).
pub type ExtraHeaders = Vec<(&'static str, String)>;

/// What logs name a request that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

async fn pipeline(
    app: &Arc<App>,
    scope: &Scope,
    request: Request,
    client_ip: IpAddr,
    request_id: &str,
    extra_headers: &mut ExtraHeaders,
    route_pattern: &mut &'static str,
) -> Result<Response, ApiError> {
    if let Some(limiter) = app.rate_limiter() {
        limiter.check(client_ip).map_err(|retry_after_secs| {
            app.telemetry().metrics.rate_limited();
            ApiError::RateLimited { retry_after_secs }
        })?;
    }
    if CorsPolicy::is_preflight(request.method(), request.headers()) {
        return Ok(app.cors().preflight(request.headers()));
    }
    let route = match routes::resolve(request.method(), request.uri().path()) {
        Resolution::Found(route) => {
            *route_pattern = route.pattern();
            scope.note_route(route.pattern());
            if matches!(route, Route::Console { .. }) {
                scope.note_static_file();
            }
            route
        }
        Resolution::MethodNotAllowed { allow, auth } => {
            auth::authenticate(app, auth, request.headers()).await?;
            return Err(ApiError::MethodNotAllowed { allow });
        }
        Resolution::NotFound => {
            return Err(ApiError::NotFound(format!("No route for {} {}", request.method(), request.uri().path())));
        }
    };
    let principal = match auth::authenticate(app, route.auth(), request.headers()).await {
        Ok(principal) => principal,
        Err(error) => {
            let attempt = match &error {
                ApiError::InvalidAdminSecret => Some(Attempt::AdminSecret),
                ApiError::AuthenticationFailed(_) if route.auth() == AuthRequirement::ApiKey => Some(Attempt::ApiKey),
                _ => None,
            };
            if let Some(attempt) = attempt {
                app.failed_attempts().note(client_ip, attempt, request.uri().path());
            }
            return Err(error);
        }
    };
    scope.note_principal(&principal);
    let context = Context::new(app.clone(), principal, client_ip, request_id, route.body_limit(&app.config()));
    let outcome = match &context.principal {
        // An MCP message is not a request to meter: each tool call it makes is (`internal`).
        auth::Principal::Tenant(_) if route == Route::Mcp => dispatch(&context, route, request).await,
        auth::Principal::Tenant(_) => metered::run(&context, route, request, extra_headers).await,
        auth::Principal::User(_) if route.metered_for_users(&app.config()) => {
            metered::run_user(&context, route, request, extra_headers).await
        }
        _ => dispatch(&context, route, request).await,
    };
    if let Some(served) = context.served() {
        extra_headers.extend(streaming::served_headers(&served));
    }
    outcome
}

/// The one match from route to handler.
///
/// Each handler's future is boxed. Unboxed, this state machine is as large as the largest
/// handler's (12 KiB, an MCP or OpenAI call), and every request carries it for its whole life,
/// a stream's until its first token: on the heap a request holds only its own handler's.
pub(crate) async fn dispatch(ctx: &Context, route: Route, request: Request) -> Result<Response, ApiError> {
    match route {
        Route::Health => Ok(health::health()),
        Route::Console { file } => ctx
            .app
            .console()
            .serve(file.as_deref(), request.headers())
            .ok_or_else(|| ApiError::NotFound(format!("No console file {}", file.as_deref().unwrap_or("/")))),
        Route::OpenApi => Ok(crate::http::response::text_owned(
            http::StatusCode::OK,
            "application/json",
            openapi::document().to_string(),
        )),
        Route::Metrics => Ok(crate::http::response::text_owned(
            http::StatusCode::OK,
            crate::telemetry::metrics::CONTENT_TYPE,
            ctx.app.telemetry().metrics.render(),
        )),
        Route::HealthDetailed => Box::pin(health::detailed(ctx)).await,
        Route::ConfigInfo => Ok(health::config_info(ctx)),

        Route::AuthRegister => Box::pin(users::register(ctx, request)).await,
        Route::AuthLogin => Box::pin(users::login(ctx, request)).await,
        Route::AuthRefresh => Box::pin(users::refresh(ctx, request)).await,
        Route::AuthLogout => Box::pin(users::logout(ctx, request)).await,
        Route::ListPlatformAgents => Ok(agents::list(ctx)),

        Route::Chat | Route::V1Chat => Box::pin(chat::chat(ctx, request)).await,
        Route::ChatStream | Route::V1ChatStream => Box::pin(chat::stream(ctx, request)).await,
        Route::Research => Box::pin(research::research(ctx, request)).await,
        Route::GetMemory => Box::pin(memory::get(ctx)).await,
        Route::ListWorkflows => workflows::list(ctx, &request),
        Route::RunWorkflow { workflow } => Box::pin(workflows::run(ctx, &workflow, request)).await,
        Route::RagIngest => Box::pin(rag::ingest(ctx, request)).await,
        Route::RagSearch => Box::pin(rag::search(ctx, request)).await,
        Route::RagListCollections => Box::pin(rag::collections(ctx)).await,
        Route::RagDeleteCollection => Box::pin(rag::delete_collection(ctx, request)).await,
        Route::RagGetJob { id } => Box::pin(rag_jobs::get(ctx, &id)).await,
        Route::RagCancelJob { id } => Box::pin(rag_jobs::cancel(ctx, &id)).await,
        Route::ListConversations => Box::pin(conversations::list(ctx)).await,
        Route::GetConversation { id } => Box::pin(conversations::get(ctx, &id)).await,
        Route::RenameConversation { id } => Box::pin(conversations::rename(ctx, &id, request)).await,
        Route::DeleteConversation { id } => Box::pin(conversations::delete(ctx, &id)).await,
        Route::V1RunAgent { name } => Box::pin(v1::runs::run(ctx, &name, request)).await,
        Route::ListUserAgents => Box::pin(user_agents::list(ctx, &request)).await,
        Route::CreateUserAgent => Box::pin(user_agents::create(ctx, request)).await,
        Route::ImportUserAgent => Box::pin(user_agents::import(ctx, request)).await,
        Route::GetUserAgent { name } => Box::pin(user_agents::get(ctx, &name, &request)).await,
        Route::UpdateUserAgent { name } => Box::pin(user_agents::update(ctx, &name, request)).await,
        Route::DeleteUserAgent { name } => Box::pin(user_agents::delete(ctx, &name)).await,
        Route::ExportUserAgent { name } => Box::pin(user_agents::export(ctx, &name)).await,

        Route::AdminCreateUser => Box::pin(users::admin_create(ctx, request)).await,
        Route::AdminCreateTenant => Box::pin(admin::tenants::create(ctx, request)).await,
        Route::AdminListTenants => Box::pin(admin::tenants::list(ctx)).await,
        Route::AdminGetTenant { tenant_id } => Box::pin(admin::tenants::get(ctx, &tenant_id)).await,
        Route::AdminUpdateQuota { tenant_id } => Box::pin(admin::tenants::update_quota(ctx, &tenant_id, request)).await,
        Route::AdminListRequests => Box::pin(requests::admin_list(ctx, &request)).await,
        Route::AdminSpending => Box::pin(admin::usage::spending(ctx, &request)).await,
        Route::AdminMigrations => Box::pin(admin::catalog::migrations(ctx)).await,
        Route::AdminSetTenantBudget { tenant_id } => {
            Box::pin(admin::budgets::set(ctx, &tenant_id, None, request)).await
        }
        Route::AdminSetKeyBudget { tenant_id, key_id } => {
            Box::pin(admin::budgets::set(ctx, &tenant_id, Some(&key_id), request)).await
        }
        Route::AdminProvisionClient => Box::pin(admin::provision::provision_client(ctx, request)).await,
        Route::AdminCreateApiKey { tenant_id } => Box::pin(admin::api_keys::create(ctx, &tenant_id, request)).await,
        Route::AdminRevokeApiKey { tenant_id, key_id } => {
            Box::pin(admin::api_keys::revoke(ctx, &tenant_id, &key_id)).await
        }
        Route::AdminListApiKeys { tenant_id } => Box::pin(admin::api_keys::list(ctx, &tenant_id)).await,
        Route::AdminListTenantAgents { tenant_id } => Box::pin(admin::agents::list(ctx, &tenant_id)).await,
        Route::AdminCreateTenantAgent { tenant_id } => Box::pin(admin::agents::create(ctx, &tenant_id, request)).await,
        Route::AdminUpdateTenantAgent { tenant_id, agent_name } => {
            Box::pin(admin::agents::update(ctx, &tenant_id, &agent_name, request)).await
        }
        Route::AdminDeleteTenantAgent { tenant_id, agent_name } => {
            Box::pin(admin::agents::delete(ctx, &tenant_id, &agent_name)).await
        }
        Route::AdminListAgentTemplates => Box::pin(admin::catalog::templates(ctx, &request)).await,
        Route::AdminListModels => Ok(admin::catalog::models(ctx)),
        Route::AdminListProviders => Ok(admin::catalog::providers(ctx)),
        Route::AdminReloadConfig => Box::pin(admin::catalog::reload(ctx)).await,
        Route::AdminTenantUsage { tenant_id } => Box::pin(admin::usage::tenant_usage(ctx, &tenant_id, &request)).await,
        Route::AdminTenantDailyUsage { tenant_id } => Box::pin(admin::usage::daily(ctx, &tenant_id, &request)).await,
        Route::AdminAgentRuns { tenant_id, agent_name } => {
            Box::pin(admin::agents::runs(ctx, &tenant_id, &agent_name, &request)).await
        }
        Route::AdminAgentStats { tenant_id, agent_name } => {
            Box::pin(admin::agents::stats(ctx, &tenant_id, &agent_name)).await
        }
        Route::AdminListAllAgents => Box::pin(admin::agents::list_all(ctx)).await,
        Route::AdminStats => Box::pin(admin::usage::platform_stats(ctx)).await,
        Route::AdminListAlerts => Box::pin(admin::alerts::list(ctx, &request)).await,
        Route::AdminResolveAlert { alert_id } => Box::pin(admin::alerts::resolve(ctx, &alert_id, request)).await,
        Route::AdminAuditLog => Box::pin(admin::audit::list(ctx, &request)).await,
        Route::AdminBackup => Box::pin(admin::backup::create(ctx)).await,
        Route::AdminStartDeploy => Box::pin(admin::deploy::start(ctx, request)).await,
        Route::AdminGetDeploy { deploy_id } => Box::pin(admin::deploy::get(ctx, &deploy_id)).await,
        Route::AdminListDeploys => Box::pin(admin::deploy::list(ctx)).await,
        Route::AdminDeployEvents { deploy_id } => Box::pin(admin::deploy::events(ctx, &deploy_id)).await,
        Route::AdminCancelDeploy { deploy_id } => Box::pin(admin::deploy::cancel(ctx, &deploy_id)).await,
        Route::AdminDeleteDeploy { deploy_id } => Box::pin(admin::deploy::delete(ctx, &deploy_id)).await,
        Route::AdminListServices => Box::pin(admin::deploy::services(ctx)).await,
        Route::AdminServiceLogs { service_name } => Box::pin(admin::deploy::logs(ctx, &service_name, &request)).await,

        Route::V1ListAgents => Box::pin(v1::agents::list(ctx, &request)).await,
        Route::V1GetAgent { name } => Box::pin(v1::agents::get(ctx, &name)).await,
        Route::V1ListAgentRuns { name } => Box::pin(v1::agents::runs(ctx, &name, &request)).await,
        Route::V1ListAgentLogs { name } => Box::pin(v1::agents::logs(ctx, &name, &request)).await,
        Route::V1GetUsage => Box::pin(v1::usage::get(ctx)).await,
        Route::V1ListRequests => Box::pin(requests::tenant_list(ctx, &request)).await,
        Route::V1ListApiKeys => Box::pin(v1::api_keys::list(ctx)).await,
        Route::V1CreateApiKey => Box::pin(v1::api_keys::create(ctx, request)).await,
        Route::V1RevokeApiKey { id } => Box::pin(v1::api_keys::revoke(ctx, &id)).await,

        Route::OpenAiChatCompletions => Box::pin(openai::chat::completions(ctx, request)).await,
        Route::OpenAiCompletions => Box::pin(openai::completions::create(ctx, request)).await,
        Route::OpenAiResponses => Box::pin(openai::responses::create(ctx, request)).await,
        Route::OpenAiEmbeddings => Box::pin(openai::embeddings::create(ctx, request)).await,
        Route::OpenAiListModels => Box::pin(openai::models::list(ctx)).await,
        Route::OpenAiGetModel { id } => Box::pin(openai::models::get(ctx, &id)).await,
        Route::AnthropicMessages => Box::pin(anthropic::messages::create(ctx, request)).await,
        Route::AnthropicCountTokens => Box::pin(anthropic::messages::count_tokens(ctx, request)).await,
        Route::Mcp => Box::pin(crate::mcp::server::serve(ctx, request)).await,
    }
}

/// `route` is the route-table pattern (`/api/conversations/{id}`), never the raw path.
fn render_error(err: &ApiError, dialect: Dialect, scope: &Scope, method: &Method, route: &str) -> Response {
    // Every 5xx is trouble an operator should see at the default level; 4xx are the client's.
    let (status, code) = err.status_and_code();
    let request_id = &*scope.id;
    // A failed storage refuses every write alike; the store's writer logged it once.
    if status.is_server_error() && !matches!(err, ApiError::StorageStopped) {
        let provider = scope.last_provider().unwrap_or_else(|| "-".into());
        let cause = err.internal_cause().unwrap_or_else(|| err.to_string());
        tracing::warn!(%request_id, %method, route, status = status.as_u16(), code, %provider, %cause, "request failed");
    } else {
        tracing::debug!(%request_id, %method, route, error = %err, "request rejected");
    }
    response::error_in(err, dialect)
}

/// The caller's `X-Request-Id` when it is short and printable, else a fresh UUID.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
