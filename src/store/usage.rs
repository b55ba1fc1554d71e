//! Metering: an append-only usage log plus the per-month and per-day counters that quota checks
//! read, all written in one transaction so a counter never disagrees with the log.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{PLATFORM_DAILY, USAGE_DAILY, USAGE_EVENTS, USAGE_MONTHLY};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEventRecord {
    pub id: String,
    pub tenant_id: String,
    /// `http` for API calls (`mcp` rows may come from an imported database).
    pub source: String,
    pub request_count: u64,
    pub token_count: u64,
    pub created_at: i64,
}

impl Record for UsageEventRecord {
    const TABLE: &'static str = "usage_events";
    const VERSION: u8 = 1;
}

/// Metered requests and tokens of one tenant in one UTC month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounterRecord {
    pub requests: u64,
    pub tokens: u64,
}

impl Record for UsageCounterRecord {
    const TABLE: &'static str = "usage_monthly";
    const VERSION: u8 = 1;
}

/// One UTC day: metered requests and tokens, and agent runs with their tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyUsageRecord {
    pub requests: u64,
    pub tokens: u64,
    pub runs: u64,
    pub run_tokens: u64,
}

impl Record for DailyUsageRecord {
    const TABLE: &'static str = "usage_daily";
    const VERSION: u8 = 1;
}

/// Append a usage event and add it to the tenant's month and day counters.
pub fn record(txn: &WriteTransaction, event: &UsageEventRecord, month_start: i64, day_start: i64) -> Result<(), Error> {
    let tenant = event.tenant_id.as_str();
    txn.open_table(USAGE_EVENTS)?.insert((tenant, event.created_at, event.id.as_str()), encode(event)?.as_slice())?;

    let mut monthly_table = txn.open_table(USAGE_MONTHLY)?;
    let mut monthly: UsageCounterRecord =
        monthly_table.get((tenant, month_start))?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
    monthly.requests += event.request_count;
    monthly.tokens += event.token_count;
    monthly_table.insert((tenant, month_start), encode(&monthly)?.as_slice())?;

    update_daily(txn, tenant, day_start, |d| {
        d.requests += event.request_count;
        d.tokens += event.token_count;
    })
}

/// Record a batch of events, each in its own UTC month and day.
pub fn record_all(txn: &WriteTransaction, events: &[UsageEventRecord]) -> Result<(), Error> {
    for event in events {
        let month = crate::metering::periods::month_start(event.created_at);
        let day = crate::metering::periods::day_start(event.created_at);
        record(txn, event, month, day)?;
    }
    Ok(())
}

/// Change a tenant's day record and the platform's day record the same way.
pub(super) fn update_daily(
    txn: &WriteTransaction,
    tenant: &str,
    day_start: i64,
    change: impl Fn(&mut DailyUsageRecord),
) -> Result<(), Error> {
    let mut daily_table = txn.open_table(USAGE_DAILY)?;
    let mut daily: DailyUsageRecord =
        daily_table.get((tenant, day_start))?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
    change(&mut daily);
    daily_table.insert((tenant, day_start), encode(&daily)?.as_slice())?;

    let mut platform_table = txn.open_table(PLATFORM_DAILY)?;
    let mut platform: DailyUsageRecord =
        platform_table.get(day_start)?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
    change(&mut platform);
    platform_table.insert(day_start, encode(&platform)?.as_slice())?;
    Ok(())
}

pub fn monthly(txn: &ReadTransaction, tenant: &str, month_start: i64) -> Result<UsageCounterRecord, Error> {
    Ok(txn
        .open_table(USAGE_MONTHLY)?
        .get((tenant, month_start))?
        .map(|v| decode(v.value()))
        .transpose()?
        .unwrap_or_default())
}

pub fn daily(txn: &ReadTransaction, tenant: &str, day_start: i64) -> Result<DailyUsageRecord, Error> {
    Ok(txn
        .open_table(USAGE_DAILY)?
        .get((tenant, day_start))?
        .map(|v| decode(v.value()))
        .transpose()?
        .unwrap_or_default())
}

/// Days with activity in `[from_day, to_day]`, newest first.
pub fn daily_range(
    txn: &ReadTransaction,
    tenant: &str,
    from_day: i64,
    to_day: i64,
) -> Result<Vec<(i64, DailyUsageRecord)>, Error> {
    let table = txn.open_table(USAGE_DAILY)?;
    let mut out = Vec::new();
    for entry in table.range((tenant, from_day)..=(tenant, to_day))? {
        let (key, value) = entry?;
        out.push((key.value().1, decode(value.value())?));
    }
    out.reverse();
    Ok(out)
}

/// Runs of a tenant in the days `[from_day, to_day]` (e.g. the current month).
pub fn runs_between(txn: &ReadTransaction, tenant: &str, from_day: i64, to_day: i64) -> Result<u64, Error> {
    Ok(daily_range(txn, tenant, from_day, to_day)?.iter().map(|(_, d)| d.runs).sum())
}

pub fn platform_day(txn: &ReadTransaction, day_start: i64) -> Result<DailyUsageRecord, Error> {
    Ok(txn.open_table(PLATFORM_DAILY)?.get(day_start)?.map(|v| decode(v.value())).transpose()?.unwrap_or_default())
}

/// Set a tenant's month counters (import: the reference's `monthly_usage_cache` is authoritative).
pub fn set_monthly(
    txn: &WriteTransaction,
    tenant: &str,
    month_start: i64,
    counter: &UsageCounterRecord,
) -> Result<(), Error> {
    txn.open_table(USAGE_MONTHLY)?.insert((tenant, month_start), encode(counter)?.as_slice())?;
    Ok(())
}

/// Set a tenant's request count for a day (import: the reference's `daily_rate_limits`).
pub fn set_daily_requests(txn: &WriteTransaction, tenant: &str, day_start: i64, requests: u64) -> Result<(), Error> {
    let mut table = txn.open_table(USAGE_DAILY)?;
    let mut daily: DailyUsageRecord =
        table.get((tenant, day_start))?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
    daily.requests = requests;
    table.insert((tenant, day_start), encode(&daily)?.as_slice())?;
    Ok(())
}

/// Every event, month counter and day counter (export).
#[allow(clippy::type_complexity)]
pub fn all(
    txn: &ReadTransaction,
) -> Result<(Vec<UsageEventRecord>, Vec<(String, i64, UsageCounterRecord)>, Vec<(String, i64, DailyUsageRecord)>), Error>
{
    let events = super::all_values(txn, USAGE_EVENTS)?;
    let mut months = Vec::new();
    for entry in txn.open_table(USAGE_MONTHLY)?.iter()? {
        let (key, value) = entry?;
        let (tenant, month) = key.value();
        months.push((tenant.to_string(), month, decode(value.value())?));
    }
    let mut days = Vec::new();
    for entry in txn.open_table(USAGE_DAILY)?.iter()? {
        let (key, value) = entry?;
        let (tenant, day) = key.value();
        days.push((tenant.to_string(), day, decode(value.value())?));
    }
    Ok((events, months, days))
}
