//! `PUT /api/admin/tenants/{id}/budget` and `PUT /api/admin/tenants/{id}/api-keys/{key_id}/budget`:
//! dollar limits per UTC month (`monthly_usd`) and day (`daily_usd`). A field left out keeps
//! its value, `null` removes it; the next request is checked against the new limits.

use http::StatusCode;
use serde_json::{Value, json};

use super::tenants::tenant_not_found;
use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::metering::cost::usd;
use crate::metering::periods::{day_start, month_start};
use crate::store::budgets;
use crate::store::costs::{self, Period};
use crate::store::{Error, api_keys, audit, tenants};

/// The largest budget accepted: a typo guard far above any real monthly spend.
const MAX_USD: f64 = 1e9;

pub async fn set(ctx: &Context, tenant_id: &str, key_id: Option<&str>, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let object = body.as_object().ok_or_else(|| ApiError::BadRequest("Expected a JSON object".into()))?;
    if !object.contains_key("monthly_usd") && !object.contains_key("daily_usd") {
        return Err(ApiError::MissingField("monthly_usd".into()));
    }
    let monthly = limit(object.get("monthly_usd"), "monthly_usd")?;
    let daily = limit(object.get("daily_usd"), "daily_usd")?;
    let subject = match key_id {
        Some(key) => budgets::key_subject(key),
        None => budgets::tenant_subject(tenant_id),
    };
    let details =
        json!({ "key_id": key_id, "monthly_usd": object.get("monthly_usd"), "daily_usd": object.get("daily_usd") });
    let entry = super::audit::entry(ctx, "set_budget", "tenant", tenant_id, details);
    let (tenant, key, stored_subject) = (tenant_id.to_string(), key_id.map(str::to_string), subject.clone());
    let now = clock::now_unix();
    let updated = ctx
        .app
        .store()
        .write(move |txn| {
            if !tenants::exists(txn, &tenant)? {
                return Err(Error::NotFound("Tenant not found".into()));
            }
            if let Some(key) = &key
                && !api_keys::belongs(txn, &tenant, key)?
            {
                return Err(Error::NotFound(format!("API key not found: {key}")));
            }
            let mut budget = budgets::get_for_update(txn, &stored_subject)?.unwrap_or_default();
            if let Some(monthly) = monthly {
                budget.monthly_micros = monthly;
            }
            if let Some(daily) = daily {
                budget.daily_micros = daily;
            }
            budget.updated_at = now;
            budgets::put(txn, &stored_subject, &budget)?;
            audit::append(txn, &entry)?;
            Ok(budget)
        })
        .await
        .map_err(|e| match e {
            Error::NotFound(message) if message == "Tenant not found" => tenant_not_found(),
            Error::NotFound(message) => ApiError::NotFound(message),
            other => ApiError::from(other),
        })?;
    ctx.app.budgets().set_limits(&subject, updated);
    ctx.app.telemetry().flush(ctx.app.store()).await?;
    let (tenant, key) = (tenant_id.to_string(), key_id.map(str::to_string));
    let view = ctx.app.store().read(move |txn| view(txn, &tenant, key.as_deref(), clock::now_unix())).await?;
    Ok(response::json(StatusCode::OK, &view))
}

/// `None`: leave it as it is; `Some(None)`: remove it; `Some(Some(micros))`: set it.
#[allow(clippy::option_option)]
fn limit(value: Option<&Value>, field: &str) -> Result<Option<Option<u64>>, ApiError> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(value) => match value.as_f64() {
            Some(usd) if usd.is_finite() && (0.0..=MAX_USD).contains(&usd) => {
                Ok(Some(Some((usd * 1e6).round() as u64)))
            }
            _ => Err(ApiError::Unprocessable(format!("{field} must be a number of dollars from 0 to 1e9, or null"))),
        },
    }
}

/// A tenant's or key's budget with what it has spent this month and today (`budget: null`
/// parts when unset).
pub fn view(txn: &redb::ReadTransaction, tenant_id: &str, key_id: Option<&str>, now: i64) -> Result<Value, Error> {
    let (subject, rollup) = match key_id {
        Some(key) => (budgets::key_subject(key), costs::key_subject(key)),
        None => (budgets::tenant_subject(tenant_id), costs::TENANT.to_string()),
    };
    let budget = budgets::get(txn, &subject)?.unwrap_or_default();
    let month = costs::get(txn, tenant_id, &rollup, Period::Month, month_start(now))?;
    let today = costs::get(txn, tenant_id, &rollup, Period::Day, day_start(now))?;
    let dollars = |micros: Option<u64>| micros.map(|m| m as f64 / 1e6);
    let mut view = json!({
        "tenant_id": tenant_id,
        "monthly_usd": dollars(budget.monthly_micros),
        "daily_usd": dollars(budget.daily_micros),
        "spent_this_month_usd": usd(month.cost_micros),
        "spent_today_usd": usd(today.cost_micros),
    });
    if let Some(key) = key_id {
        view["key_id"] = key.into();
    }
    Ok(view)
}
