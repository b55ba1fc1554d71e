//! `POST /api/admin/tenants`, `GET /api/admin/tenants` (API.md §1.9.1).

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::metering::TenantTier;
use crate::store::audit::{self, AuditRecord};
use crate::store::tenants::{self, TenantRecord, TenantSummary};

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
    let tenant = TenantRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        tier: tier.as_str().to_string(),
        created_at: now,
        updated_at: now,
    };
    let entry = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        action: "create_tenant".into(),
        resource_type: "tenant".into(),
        resource_id: Some(tenant.id.clone()),
        details: Some(serde_json::json!({ "tenant_name": tenant.name, "tier": tenant.tier }).to_string()),
        admin_ip: Some(ctx.client_ip.to_string()),
        created_at: now,
    };
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
    Ok(response::json(StatusCode::OK, &serde_json::json!({ "tenants": views })))
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
