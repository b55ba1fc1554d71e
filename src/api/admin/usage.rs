//! Usage and analytics for the operator (API.md §1.9.6, §4.4).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Context;
use crate::api::admin::tenants::tenant_not_found;
use crate::api::context::query;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::metering::TenantTier;
use crate::metering::periods::{date_label, day_start, month_start, next_month_start};
use crate::store::{agents, alerts, tenants, usage};

const DAY: i64 = 86_400;

#[derive(Default, Deserialize)]
struct MonthQuery {
    /// `YYYY-MM`: a past month instead of the current one (e.g. imported history).
    month: Option<String>,
}

/// The start of `YYYY-MM` (UTC), or a 400 naming the parameter.
fn parse_month(raw: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::BadRequest(format!("Invalid month '{raw}': expected YYYY-MM"));
    let (year, month) = raw.split_once('-').ok_or_else(invalid)?;
    let year: i32 = year.parse().map_err(|_| invalid())?;
    let month: u8 = month.parse().map_err(|_| invalid())?;
    let month = time::Month::try_from(month).map_err(|_| invalid())?;
    let date = time::Date::from_calendar_date(year, month, 1).map_err(|_| invalid())?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}

/// A tenant's usage in the current UTC month (or `?month=YYYY-MM`) and today, from committed
/// counters.
pub async fn tenant_usage(ctx: &Context, tenant_id: &str, request: &Request) -> Result<Response, ApiError> {
    let params: MonthQuery = query(request)?;
    ctx.app.flush_usage().await?;
    let now = clock::now_unix();
    let month = match params.month.as_deref() {
        Some(raw) => parse_month(raw)?,
        None => month_start(now),
    };
    let today = day_start(now);
    let last_day = day_start(next_month_start(month) - 1).min(today.max(month));
    let id = tenant_id.to_string();
    let found = ctx
        .app
        .store()
        .read(move |txn| {
            let Some(tenant) = tenants::get(txn, &id)? else { return Ok(None) };
            let monthly = usage::monthly(txn, &id, month)?;
            let daily = usage::daily(txn, &id, today)?;
            let runs = usage::runs_between(txn, &id, month, last_day)?;
            let cost = crate::store::costs::summary(txn, &id, month, today)?;
            Ok(Some((tenant, monthly, daily, runs, cost)))
        })
        .await?;
    let (tenant, monthly, daily, runs, cost) = found.ok_or_else(tenant_not_found)?;
    let tier = TenantTier::from_stored(&tenant.tier);
    let limits = ctx.app.meter().limits(tier);
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "tenant_id": tenant.id,
            "tenant_name": tenant.name,
            "tier": tier.as_str(),
            "period_start": clock::rfc3339(month),
            "period_end": clock::rfc3339(next_month_start(month) - 1),
            "total_runs": runs,
            "total_tokens": monthly.tokens,
            "total_api_calls": monthly.requests,
            "quota_runs": limits.monthly_requests.value(),
            "quota_tokens": limits.monthly_tokens.value(),
            "quota_requests_per_day": limits.daily_requests.value(),
            "monthly_requests": monthly.requests,
            "monthly_tokens": monthly.tokens,
            "total_cost_usd": crate::metering::cost::usd(cost.month.cost_micros),
            "cost": crate::api::views::cost_view(&cost),
            "daily_requests": daily.requests,
        }),
    ))
}

#[derive(Default, Deserialize)]
struct DaysQuery {
    days: Option<i64>,
}

/// One entry per day with activity in the last `days` days (default 30, max 90), newest first.
pub async fn daily(ctx: &Context, tenant_id: &str, request: &Request) -> Result<Response, ApiError> {
    let days = query::<DaysQuery>(request)?.days.unwrap_or(30).clamp(1, 90);
    ctx.app.flush_usage().await?;
    let today = day_start(clock::now_unix());
    let from = today - (days - 1) * DAY;
    let id = tenant_id.to_string();
    let rows = ctx
        .app
        .store()
        .read(move |txn| match tenants::get(txn, &id)? {
            Some(_) => Ok(Some(usage::daily_range(txn, &id, from, today)?)),
            None => Ok(None),
        })
        .await?
        .ok_or_else(tenant_not_found)?;
    let daily: Vec<Value> = rows
        .iter()
        .map(|(day, d)| {
            json!({ "date": date_label(*day), "runs": d.runs, "tokens": d.run_tokens, "requests": d.requests, "api_calls": d.requests })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &json!({ "daily": daily })))
}

/// Platform totals: tenants, agents, today's runs and tokens, unresolved alerts.
pub async fn platform_stats(ctx: &Context) -> Result<Response, ApiError> {
    ctx.app.flush_usage().await?;
    let today = day_start(clock::now_unix());
    let stats = ctx
        .app
        .store()
        .read(move |txn| {
            let day = usage::platform_day(txn, today)?;
            Ok(json!({
                "total_tenants": tenants::count(txn)?,
                "total_agents": agents::count_all(txn)?,
                "total_runs_today": day.runs,
                "total_tokens_today": day.run_tokens,
                "total_requests_today": day.requests,
                "active_alerts": alerts::count_unresolved(txn)?,
            }))
        })
        .await?;
    Ok(response::json(StatusCode::OK, &stats))
}

#[derive(Default, Deserialize)]
struct SpendQuery {
    /// `YYYY-MM`: that month instead of the current one.
    month: Option<String>,
    /// `YYYY-MM-DD`: that day instead of the month.
    date: Option<String>,
}

/// `GET /api/admin/usage[?month=YYYY-MM | ?date=YYYY-MM-DD]`: what the platform's tenants spent
/// in a UTC month (the current one by default) or day, per tenant and per model, from the cost
/// rollups.
pub async fn spending(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    use crate::metering::cost::usd;
    use crate::store::costs::{self, CostRecord, Period};
    let params: SpendQuery = query(request)?;
    let now = clock::now_unix();
    let (period, start) = match (&params.date, &params.month) {
        (Some(date), _) => (Period::Day, parse_date(date)?),
        (None, Some(month)) => (Period::Month, parse_month(month)?),
        (None, None) => (Period::Month, month_start(now)),
    };
    ctx.app.flush_usage().await?;
    let (tenants, models) = ctx
        .app
        .store()
        .read(move |txn| {
            let mut spent = Vec::new();
            let mut models: std::collections::BTreeMap<String, CostRecord> = std::collections::BTreeMap::new();
            for tenant in tenants::all(txn)? {
                let total = costs::get(txn, &tenant.id, costs::TENANT, period, start)?;
                if total.requests == 0 {
                    continue;
                }
                for (subject, record) in costs::breakdown(txn, &tenant.id, period, start)? {
                    if let Some(model) = subject.strip_prefix("model:") {
                        let sum = models.entry(model.to_string()).or_default();
                        sum.cost_micros += record.cost_micros;
                        sum.requests += record.requests;
                        sum.input_tokens += record.input_tokens;
                        sum.output_tokens += record.output_tokens;
                        sum.cached_input_tokens += record.cached_input_tokens;
                    }
                }
                spent.push((tenant, total));
            }
            Ok((spent, models))
        })
        .await?;
    let total: u64 = tenants.iter().map(|(_, c)| c.cost_micros).sum();
    let requests: u64 = tenants.iter().map(|(_, c)| c.requests).sum();
    let mut tenants = tenants;
    tenants.sort_by(|a, b| b.1.cost_micros.cmp(&a.1.cost_micros).then_with(|| a.0.name.cmp(&b.0.name)));
    let tenant_views: Vec<Value> = tenants
        .iter()
        .map(|(tenant, c)| {
            let mut view = crate::api::views::spend_view("tenant_id", &tenant.id, c);
            view["tenant_name"] = tenant.name.clone().into();
            view
        })
        .collect();
    let model_views: Vec<Value> =
        models.iter().map(|(model, c)| crate::api::views::spend_view("model", model, c)).collect();
    let end = match period {
        Period::Day => start + DAY - 1,
        Period::Month => next_month_start(start) - 1,
    };
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "period": if period == Period::Day { "day" } else { "month" },
            "period_start": clock::rfc3339(start),
            "period_end": clock::rfc3339(end),
            "total_cost_usd": usd(total),
            "requests": requests,
            "tenants": tenant_views,
            "models": model_views,
        }),
    ))
}

/// The start of `YYYY-MM-DD` (UTC), or a 400 naming the parameter.
fn parse_date(raw: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::BadRequest(format!("Invalid date '{raw}': expected YYYY-MM-DD"));
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw, &format).map_err(|_| invalid())?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}
