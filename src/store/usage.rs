//! Metering: an append-only usage log plus the per-month and per-day counters that quota checks
//! read, all written in one transaction so a counter never disagrees with the log.

use std::collections::BTreeMap;

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

/// Append a batch of usage events and add them to their tenants' month and day counters (and
/// the platform's day), each in its own UTC month and day.
///
/// The recorder hands over every event of its flush interval at once, so the counters are
/// summed first and each touched counter is read and written once per batch, not once per
/// event: at a few thousand requests a second that was a third of the writer's work.
pub fn record_all(txn: &WriteTransaction, events: &[UsageEventRecord]) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut months: BTreeMap<(&str, i64), UsageCounterRecord> = BTreeMap::new();
    let mut days: BTreeMap<(&str, i64), UsageCounterRecord> = BTreeMap::new();
    let mut log = txn.open_table(USAGE_EVENTS)?;
    for event in events {
        let tenant = event.tenant_id.as_str();
        log.insert((tenant, event.created_at, event.id.as_str()), encode(event)?.as_slice())?;
        for sum in [
            months.entry((tenant, crate::metering::periods::month_start(event.created_at))).or_default(),
            days.entry((tenant, crate::metering::periods::day_start(event.created_at))).or_default(),
        ] {
            sum.requests += event.request_count;
            sum.tokens += event.token_count;
        }
    }
    let mut monthly_table = txn.open_table(USAGE_MONTHLY)?;
    for ((tenant, month_start), added) in months {
        let mut monthly: UsageCounterRecord =
            monthly_table.get((tenant, month_start))?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
        monthly.requests += added.requests;
        monthly.tokens += added.tokens;
        monthly_table.insert((tenant, month_start), encode(&monthly)?.as_slice())?;
    }
    for ((tenant, day_start), added) in days {
        update_daily(txn, tenant, day_start, |d| {
            d.requests += added.requests;
            d.tokens += added.tokens;
        })?;
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
