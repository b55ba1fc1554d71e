//! `POST /api/admin/provision-client` (API.md §1.9.2): tenant + template agents + API key in one
//! transaction; the raw key is returned once.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::Context;
use crate::api::admin::tenants::{parse_tier, validate_name};
use crate::auth::api_keys::material;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::provisioning::{self, Step};
use crate::store::templates;
use crate::store::tenants::TenantRecord;

#[derive(Deserialize)]
struct ProvisionRequest {
    name: String,
    tier: String,
    product_type: String,
    api_key_name: String,
}

pub async fn provision_client(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: ProvisionRequest = ctx.json(request).await?;
    let name = validate_name(&body.name)?;
    let tier = parse_tier(&body.tier)?;
    let product_type = body.product_type.to_ascii_lowercase();
    let known = {
        let product = product_type.clone();
        ctx.app.store().read(move |txn| templates::has_product(txn, &product)).await?
    };
    if !known {
        return Err(ApiError::Unprocessable(format!(
            "Invalid product type: '{}'. Valid product types: {}",
            body.product_type,
            crate::agents::templates::PRODUCT_TYPES.join(", ")
        )));
    }
    let now = clock::now_unix();
    let tenant = TenantRecord::new(name, tier.as_str(), now);
    let entry = super::audit::entry(
        ctx,
        "provision_client",
        "tenant",
        &tenant.id,
        json!({ "tenant_name": tenant.name, "product_type": product_type, "tier": tenant.tier }),
    );
    let key_name = body.api_key_name;
    let product = product_type.clone();
    let done = ctx
        .app
        .store()
        .write(move |txn| {
            provisioning::provision(txn, &tenant, &product, &key_name, &entry, material, &mut |_step: Step| Ok(()))
        })
        .await?;
    Ok(response::json(
        StatusCode::CREATED,
        &json!({
            "tenant_id": done.tenant.id,
            "tenant_name": done.tenant.name,
            "tier": done.tenant.tier,
            "product_type": product_type,
            "api_key_id": done.key.id,
            "api_key_prefix": done.key.key_prefix,
            "raw_api_key": done.raw_key,
            "agents_created": done.agents,
            "created_at": clock::rfc3339(done.tenant.created_at),
        }),
    ))
}
