//! The governed path of `/v1` requests (API.md §4.3): quota reservation before the handler,
//! settlement, usage recording and quota headers after it — on every authenticated response,
//! errors and 429s included. JWT users' model-running requests take the same path against
//! `[quotas.users]` ([`run_user`]), so a free sign-up cannot buy unlimited upstream calls.

use crate::api::{Context, ExtraHeaders, dispatch, routes::Route};
use crate::app::App;
use crate::auth::{TenantPrincipal, UserPrincipal};
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::metering::periods::{day_start, month_start};
use crate::metering::{Crossing, StoredUsage};
use crate::store::alerts::{self, AlertRecord};
use crate::store::usage;
use crate::store::user_usage::{self, UserUsageDelta};

pub(super) async fn run(
    ctx: &Context,
    route: Route,
    request: Request,
    extra_headers: &mut ExtraHeaders,
) -> Result<Response, ApiError> {
    run_as(ctx, route, request, extra_headers, "http").await
}

/// [`run`], with the usage event's `source`: `"mcp"` for a call made by an MCP tool.
pub(super) async fn run_as(
    ctx: &Context,
    route: Route,
    request: Request,
    extra_headers: &mut ExtraHeaders,
    source: &'static str,
) -> Result<Response, ApiError> {
    admit(ctx, extra_headers).await?;
    let mut admitted = Unsettled { ctx, admission: Some(Admission::Tenant { source }) };
    let outcome = dispatch(ctx, route, request).await;
    admitted.admission = None;
    settle(ctx, source)?;
    outcome
}

/// Settles an admitted request whose handler is dropped because its client left before the
/// answer: it was counted against the quota when admitted and its model call may have run, so
/// its usage event is recorded like any other's (with the tokens known by then), not lost.
struct Unsettled<'a> {
    ctx: &'a Context,
    /// `None` once the handler returned: the caller settles, with its errors.
    admission: Option<Admission<'a>>,
}

/// Whose quota an admitted request was counted against.
enum Admission<'a> {
    /// The tenant's, with the usage event's `source`.
    Tenant { source: &'a str },
    /// A JWT user's `[quotas.users]`, admitted at `now`.
    User { user: &'a UserPrincipal, now: i64 },
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        match self.admission.take() {
            None => {}
            Some(Admission::Tenant { source }) => {
                let _ = settle(self.ctx, source);
            }
            Some(Admission::User { user, now }) => settle_user(self.ctx, user, now),
        }
    }
}

/// Reserve one request of the tenant's quota (429 when it is used up).
pub(super) async fn admit(ctx: &Context, extra_headers: &mut ExtraHeaders) -> Result<(), ApiError> {
    let tenant = ctx.tenant()?;
    let now = clock::now_unix();
    ensure_loaded(ctx, &tenant.tenant_id, now).await?;

    let meter = ctx.app.meter();
    let (verdict, snapshot) = meter.reserve(&tenant.tenant_id, tenant.tier, now);
    extra_headers.extend(snapshot.headers());
    let crossings = match verdict {
        Ok(crossings) => crossings,
        Err(exceeded) => {
            ctx.app.telemetry().metrics.quota_rejected(tenant.tier.as_str(), exceeded.reason());
            return Err(ApiError::QuotaExceeded {
                message: exceeded.message(),
                retry_after_secs: exceeded.retry_after(now),
            });
        }
    };
    raise_alerts(&ctx.app, tenant, &crossings, now);
    Ok(())
}

/// Settle an admitted request with the tokens it used, and record its usage event.
pub(super) fn settle(ctx: &Context, source: &str) -> Result<(), ApiError> {
    let tenant = ctx.tenant()?;
    let now = clock::now_unix();
    let tokens = ctx.tokens_used();
    let token_crossings = ctx.app.meter().settle(&tenant.tenant_id, tenant.tier, tokens, now);
    raise_alerts(&ctx.app, tenant, &token_crossings, now);
    record_usage(&ctx.app, &tenant.tenant_id, 1, tokens, now, source);
    Ok(())
}

/// A JWT user's request that runs a model: reserve one request of `[quotas.users]` (429 with
/// the quota headers when exhausted), run, settle its tokens; counts persist like tenants'.
pub(super) async fn run_user(
    ctx: &Context,
    route: Route,
    request: Request,
    extra_headers: &mut ExtraHeaders,
) -> Result<Response, ApiError> {
    let user = ctx.user()?.clone();
    let now = clock::now_unix();
    ensure_user_loaded(ctx, &user.user_id, now)?;
    let limits = ctx.app.config().quotas.users;
    let meter = ctx.app.user_meter();
    let (verdict, snapshot) = meter.reserve_within(&user.user_id, limits, now);
    extra_headers.extend(snapshot.headers());
    if let Err(exceeded) = verdict {
        ctx.app.telemetry().metrics.quota_rejected("user", exceeded.reason());
        return Err(ApiError::QuotaExceeded {
            message: exceeded.message(),
            retry_after_secs: exceeded.retry_after(now),
        });
    }
    let mut admitted = Unsettled { ctx, admission: Some(Admission::User { user: &user, now }) };
    let outcome = dispatch(ctx, route, request).await;
    admitted.admission = None;
    settle_user(ctx, &user, now);
    outcome
}

/// Settle a JWT user's admitted request with the tokens it used, and record its usage.
fn settle_user(ctx: &Context, user: &UserPrincipal, now: i64) {
    let tokens = ctx.tokens_used();
    ctx.app.user_meter().settle_within(&user.user_id, ctx.app.config().quotas.users, tokens, now);
    record_user_usage(&ctx.app, &user.user_id, 1, tokens, now);
}

/// Tokens of a user's stream, counted when it ends (the request was counted when admitted).
pub(crate) fn record_user_stream_tokens(app: &App, user: &UserPrincipal, tokens: u64) {
    let now = clock::now_unix();
    app.user_meter().settle_within(&user.user_id, app.config().quotas.users, tokens, now);
    record_user_usage(app, &user.user_id, 0, tokens, now);
}

/// Seed a user's counters from `user_usage_*` the first time the process meters them.
fn ensure_user_loaded(ctx: &Context, user_id: &str, now: i64) -> Result<(), ApiError> {
    if ctx.app.user_meter().is_loaded(user_id) {
        return Ok(());
    }
    let stored = ctx.app.store().read_now(|txn| {
        let monthly = user_usage::monthly(txn, user_id, month_start(now))?;
        let daily = user_usage::daily(txn, user_id, day_start(now))?;
        Ok(StoredUsage {
            monthly_requests: monthly.requests,
            monthly_tokens: monthly.tokens,
            daily_requests: daily.requests,
        })
    })?;
    ctx.app.user_meter().load(user_id, stored, now);
    Ok(())
}

fn record_user_usage(app: &App, user_id: &str, requests: u64, tokens: u64, now: i64) {
    if requests == 0 && tokens == 0 {
        return;
    }
    app.usage().push_user(UserUsageDelta { user_id: user_id.to_string(), requests, tokens, created_at: now });
}

/// Tokens of a stream that ended after its response was sent: the request itself was counted
/// when it was admitted, so this records tokens only.
pub(crate) fn record_stream_tokens(app: &App, tenant: &TenantPrincipal, tokens: u64) {
    let now = clock::now_unix();
    let crossings = app.meter().settle(&tenant.tenant_id, tenant.tier, tokens, now);
    raise_alerts(app, tenant, &crossings, now);
    record_usage(app, &tenant.tenant_id, 0, tokens, now, "http");
}

/// Seed the in-memory counters from the store the first time a tenant is seen (two point reads).
async fn ensure_loaded(ctx: &Context, tenant_id: &str, now: i64) -> Result<(), ApiError> {
    if ctx.app.meter().is_loaded(tenant_id) {
        return Ok(());
    }
    let id = tenant_id.to_string();
    let stored = ctx.app.store().read_now(|txn| {
        let monthly = usage::monthly(txn, &id, month_start(now))?;
        let daily = usage::daily(txn, &id, day_start(now))?;
        Ok(StoredUsage {
            monthly_requests: monthly.requests,
            monthly_tokens: monthly.tokens,
            daily_requests: daily.requests,
        })
    })?;
    ctx.app.meter().load(tenant_id, stored, now);
    Ok(())
}

/// Usage, committed with the next usage batch.
fn record_usage(app: &App, tenant_id: &str, requests: u64, tokens: u64, now: i64, source: &str) {
    if requests == 0 && tokens == 0 {
        return;
    }
    app.usage().record(tenant_id, source, requests, tokens, now);
}

/// A warning at 80 % and a critical alert at 100 % of each quota, once per period.
fn raise_alerts(app: &App, tenant: &TenantPrincipal, crossings: &[Crossing], now: i64) {
    for crossing in crossings {
        let what = match crossing.dimension {
            "monthly_requests" => "monthly request quota",
            "daily_requests" => "daily request limit",
            _ => "monthly token quota",
        };
        let (severity, verb) =
            if crossing.percent >= 100 { ("critical", "reached") } else { ("warning", "is at 80% of") };
        let alert = AlertRecord {
            id: uuid::Uuid::now_v7().to_string(),
            severity: severity.into(),
            source: "quota".into(),
            title: format!("Tenant '{}' {verb} its {what}", tenant.tenant_name),
            message: format!(
                "Tenant '{}' ({}) has used {} of {} ({}%) of its {what} on tier {}.",
                tenant.tenant_name,
                tenant.tenant_id,
                crossing.used,
                crossing.limit,
                crossing.percent,
                tenant.tier.as_str()
            ),
            tenant_id: Some(tenant.tenant_id.clone()),
            resolved: false,
            created_at: now,
            resolved_at: None,
            resolved_by: None,
        };
        let key =
            format!("quota:{}:{}:{}:{}", tenant.tenant_id, crossing.dimension, crossing.period_start, crossing.percent);
        app.store().write_detached(move |txn| alerts::raise_once(txn, &key, &alert));
    }
}
