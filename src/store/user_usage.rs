//! A JWT user's metered requests and tokens per UTC month and day (`[quotas.users]`): what the
//! in-memory user meter is seeded from on a user's first metered request after a start.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable as _, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{USER_USAGE_DAILY, USER_USAGE_MONTHLY};
use super::{Error, Record, decode, encode};

/// Requests and tokens of one user in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUsageRecord {
    pub requests: u64,
    pub tokens: u64,
}

impl Record for UserUsageRecord {
    const TABLE: &'static str = "user_usage_monthly";
    const VERSION: u8 = 1;
}

/// Usage to add to a user's counters, as buffered by the usage recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsageDelta {
    pub user_id: String,
    pub requests: u64,
    pub tokens: u64,
    pub created_at: i64,
}

/// Add the summed deltas of each `(user, period start)` to the counters of `table`: one read
/// and one write per counter touched, however many deltas the batch holds.
fn add_all(
    txn: &WriteTransaction,
    table: TableDefinition<(&str, i64), &[u8]>,
    sums: BTreeMap<(&str, i64), UserUsageRecord>,
) -> Result<(), Error> {
    let mut table = txn.open_table(table)?;
    for ((user_id, period_start), added) in sums {
        let mut record: UserUsageRecord =
            table.get((user_id, period_start))?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
        record.requests += added.requests;
        record.tokens += added.tokens;
        table.insert((user_id, period_start), encode(&record)?.as_slice())?;
    }
    Ok(())
}

/// Add each delta to its user's month and day.
pub fn record_all(txn: &WriteTransaction, deltas: &[UserUsageDelta]) -> Result<(), Error> {
    let mut months: BTreeMap<(&str, i64), UserUsageRecord> = BTreeMap::new();
    let mut days: BTreeMap<(&str, i64), UserUsageRecord> = BTreeMap::new();
    for delta in deltas {
        let periods = [
            (&mut months, crate::metering::periods::month_start(delta.created_at)),
            (&mut days, crate::metering::periods::day_start(delta.created_at)),
        ];
        for (sums, start) in periods {
            let sum = sums.entry((delta.user_id.as_str(), start)).or_default();
            sum.requests += delta.requests;
            sum.tokens += delta.tokens;
        }
    }
    if !months.is_empty() {
        add_all(txn, USER_USAGE_MONTHLY, months)?;
        add_all(txn, USER_USAGE_DAILY, days)?;
    }
    Ok(())
}

pub fn monthly(txn: &ReadTransaction, user_id: &str, month_start: i64) -> Result<UserUsageRecord, Error> {
    let value = txn.open_table(USER_USAGE_MONTHLY)?.get((user_id, month_start))?.map(|v| decode(v.value()));
    Ok(value.transpose()?.unwrap_or_default())
}

pub fn daily(txn: &ReadTransaction, user_id: &str, day_start: i64) -> Result<UserUsageRecord, Error> {
    let value = txn.open_table(USER_USAGE_DAILY)?.get((user_id, day_start))?.map(|v| decode(v.value()));
    Ok(value.transpose()?.unwrap_or_default())
}
