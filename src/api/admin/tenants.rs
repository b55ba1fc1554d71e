//! `POST /api/admin/tenants`, `GET /api/admin/tenants` (API.md §1.9.1).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::metering::TenantTier;
use crate::store::audit;
use crate::store::tenants::{self, TenantRecord, TenantSummary};
use crate::store::{api_keys, runs};

#[derive(Deserialize)]
struct CreateTenantRequest {
    name: String,
    tier: String,
}

#[derive(Serialize)]
struct TenantView {
    id: String,
    name: String,
    tier: &'static str,
    agent_count: u64,
    created_at: String,
    updated_at: String,
}

impl TenantView {
    fn new(tenant: &TenantRecord, agent_count: u64) -> Self {
        TenantView {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
            tier: TenantTier::from_stored(&tenant.tier).as_str(),
            agent_count,
            created_at: clock::rfc3339(tenant.created_at),
            updated_at: clock::rfc3339(tenant.updated_at),
        }
    }
}

pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: CreateTenantRequest = ctx.json(request).await?;
    let name = validate_name(&body.name)?;
    let tier = parse_tier(&body.tier)?;
    let now = clock::now_unix();
    let tenant = TenantRecord::new(name, tier.as_str(), now);
    let entry = super::audit::entry(
        ctx,
        "create_tenant",
        "tenant",
        &tenant.id,
        json!({ "tenant_name": tenant.name, "tier": tenant.tier }),
    );
    // A taken name is refused before the writer, where a failing job costs its batch a replay.
    ctx.app.store().read_now(|txn| tenants::check_name_free(txn, &tenant.name))?;
    let stored = tenant.clone();
    ctx.app
        .store()
        .write(move |txn| {
            tenants::insert(txn, &stored)?;
            audit::append(txn, &entry)
        })
        .await?;
    Ok(response::json(StatusCode::CREATED, &TenantView::new(&tenant, 0)))
}

pub async fn list(ctx: &Context) -> Result<Response, ApiError> {
    let summaries = ctx.app.store().read(tenants::list).await?;
    let views: Vec<TenantView> =
        summaries.iter().map(|TenantSummary { tenant, agent_count }| TenantView::new(tenant, *agent_count)).collect();
    Ok(response::json(StatusCode::OK, &json!({ "tenants": views })))
}

/// One tenant with its key, run and token totals.
pub async fn get(ctx: &Context, tenant_id: &str) -> Result<Response, ApiError> {
    Ok(response::json(StatusCode::OK, &detail(ctx, tenant_id).await?))
}

async fn detail(ctx: &Context, tenant_id: &str) -> Result<serde_json::Value, ApiError> {
    let id = tenant_id.to_string();
    let found = ctx
        .app
        .store()
        .read(move |txn| {
            let Some(tenant) = tenants::get(txn, &id)? else { return Ok(None) };
            let agent_count = crate::store::agents::list(txn, &id)?.len() as u64;
            let key_count = api_keys::count_active(txn, &id, clock::now_unix())?;
            let totals = runs::totals(txn, &id)?;
            let budget = super::budgets::view(txn, &id, None, clock::now_unix())?;
            Ok(Some((tenant, agent_count, key_count, totals, budget)))
        })
        .await?;
    let (tenant, agent_count, api_key_count, totals, budget) = found.ok_or_else(tenant_not_found)?;
    let mut view =
        serde_json::to_value(TenantView::new(&tenant, agent_count)).map_err(|e| ApiError::Internal(e.to_string()))?;
    view["api_key_count"] = api_key_count.into();
    view["total_runs"] = totals.runs.into();
    view["total_tokens"] = totals.tokens.into();
    view["budget"] = budget;
    Ok(view)
}

#[derive(Deserialize)]
struct UpdateQuotaRequest {
    tier: String,
}

/// Change a tenant's tier; the next request of its keys is checked against the new limits.
pub async fn update_quota(ctx: &Context, tenant_id: &str, request: Request) -> Result<Response, ApiError> {
    let body: UpdateQuotaRequest = ctx.json(request).await?;
    let tier = parse_tier(&body.tier)?;
    let entry = super::audit::entry(ctx, "update_quota", "tenant", tenant_id, json!({ "new_tier": body.tier }));
    let id = tenant_id.to_string();
    let now = clock::now_unix();
    ctx.app
        .store()
        .write(move |txn| {
            tenants::update(txn, &id, |t| {
                t.tier = tier.as_str().to_string();
                t.updated_at = now;
            })?;
            audit::append(txn, &entry)
        })
        .await?;
    get(ctx, tenant_id).await
}

pub(crate) fn tenant_not_found() -> ApiError {
    ApiError::NotFound("Tenant not found".into())
}

/// Tenant names: lowercase alphanumerics and hyphens, starting alphanumeric (API.md §1.9.2).
pub(crate) fn validate_name(name: &str) -> Result<String, ApiError> {
    let valid = name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(ApiError::BadRequest("Invalid tenant name: must be lowercase alphanumeric and hyphens".into()))
    }
}

pub(crate) fn parse_tier(tier: &str) -> Result<TenantTier, ApiError> {
    TenantTier::parse(tier).ok_or_else(|| {
        ApiError::Unprocessable(format!("Invalid tier: '{tier}'. Valid tiers: free, dev, pro, enterprise"))
    })
}
