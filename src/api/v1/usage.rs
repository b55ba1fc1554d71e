//! `GET /v1/usage` (API.md §1.10, §4.4): the caller's month so far, with a daily breakdown.

use http::StatusCode;
use serde_json::{Value, json};

use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Response, response};
use crate::metering::cost;
use crate::metering::periods::{date_label, day_start, month_start, next_month_start};
use crate::store::{costs, usage};

pub async fn get(ctx: &Context) -> Result<Response, ApiError> {
    let tenant = ctx.tenant()?.clone();
    ctx.app.flush_usage().await?;
    let now = clock::now_unix();
    let (month, today) = (month_start(now), day_start(now));
    let id = tenant.tenant_id.clone();
    let (monthly, days, cost) = ctx
        .app
        .store()
        .read(move |txn| {
            let days = usage::daily_range(txn, &id, month, today)?
                .into_iter()
                .map(|(day, d)| Ok((day, d, costs::get(txn, &id, costs::TENANT, costs::Period::Day, day)?.cost_micros)))
                .collect::<Result<Vec<_>, crate::store::Error>>()?;
            Ok((usage::monthly(txn, &id, month)?, days, costs::summary(txn, &id, month, today)?))
        })
        .await?;
    let limits = ctx.app.meter().limits(tenant.tier);
    let runs: u64 = days.iter().map(|(_, d, _)| d.runs).sum();
    let daily: Vec<Value> = days
        .iter()
        .map(|(day, d, spent)| {
            json!({
                "date": date_label(*day), "runs": d.runs, "tokens": d.run_tokens, "api_calls": d.requests,
                "cost_usd": cost::usd(*spent),
            })
        })
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "period_start": clock::rfc3339(month),
            "period_end": clock::rfc3339(next_month_start(now) - 1),
            "total_runs": runs,
            "total_tokens": monthly.tokens,
            "total_api_calls": monthly.requests,
            "quota_runs": limits.monthly_requests.value(),
            "quota_tokens": limits.monthly_tokens.value(),
            "daily_usage": daily,
            "total_cost_usd": cost::usd(cost.month.cost_micros),
            "cost": crate::api::views::cost_view(&cost),
        }),
    ))
}
