//! What tenants spend: per tenant, per API key and per model, per UTC day and month, in
//! micro-dollars. Rollups only (the request log has each request, for its retention); written
//! in the usage batches, summed first so each row is read and written once per batch.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::COST_ROLLUPS;
use super::{Error, Record, decode, encode};
use crate::metering::periods::{day_start, month_start};

/// The rollup of a tenant as a whole.
pub const TENANT: &str = "tenant";

/// A rollup row's subject within its tenant: the tenant itself, one of its keys, or a model.
pub fn key_subject(key_id: &str) -> String {
    format!("key:{key_id}")
}

pub fn model_subject(model: &str) -> String {
    format!("model:{model}")
}

/// `day` or `month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The start of the period holding `unix` seconds.
    pub fn start(self, unix: i64) -> i64 {
        match self {
            Period::Day => day_start(unix),
            Period::Month => month_start(unix),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostRecord {
    pub cost_micros: u64,
    /// Requests that called a model.
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
}

impl Record for CostRecord {
    const TABLE: &'static str = "cost_rollups";
    const VERSION: u8 = 1;
}

impl CostRecord {
    fn add(&mut self, other: &CostRecord) {
        self.cost_micros += other.cost_micros;
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
    }
}

/// One request's spending: the whole request for its tenant and key, and each model's share.
#[derive(Debug, Clone)]
pub struct Spend {
    pub tenant_id: String,
    pub key_id: Option<String>,
    /// Unix seconds.
    pub at: i64,
    pub total: CostRecord,
    /// Per configured model name (a request may call several: a router agent, fallbacks).
    pub models: Vec<(String, CostRecord)>,
}

/// A rollup row's subject while a batch is summed: borrowed from the spends, so summing a
/// batch allocates nothing per request; the row's subject text is made once per row.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Subject<'a> {
    Tenant,
    Key(&'a str),
    Model(&'a str),
}

impl Subject<'_> {
    fn text(self) -> String {
        match self {
            Subject::Tenant => TENANT.to_string(),
            Subject::Key(key) => key_subject(key),
            Subject::Model(model) => model_subject(model),
        }
    }
}

/// Add a batch of requests' spending to their rollups.
pub fn record_all(txn: &WriteTransaction, spends: &[Spend]) -> Result<(), Error> {
    let mut sums: BTreeMap<(&str, Subject, Period, i64), CostRecord> = BTreeMap::new();
    for spend in spends {
        for period in [Period::Day, Period::Month] {
            let start = period.start(spend.at);
            let mut add = |subject, delta: &CostRecord| {
                sums.entry((spend.tenant_id.as_str(), subject, period, start)).or_default().add(delta);
            };
            add(Subject::Tenant, &spend.total);
            if let Some(key) = &spend.key_id {
                add(Subject::Key(key), &spend.total);
            }
            for (model, delta) in &spend.models {
                add(Subject::Model(model), delta);
            }
        }
    }
    let mut table = txn.open_table(COST_ROLLUPS)?;
    for ((tenant, subject, period, start), delta) in sums {
        let subject = subject.text();
        let key = (tenant, period.as_str(), start, subject.as_str());
        let mut current: CostRecord = match table.get(key)? {
            Some(value) => decode(value.value())?,
            None => CostRecord::default(),
        };
        current.add(&delta);
        table.insert(key, encode(&current)?.as_slice())?;
    }
    Ok(())
}

/// One rollup row.
pub fn get(
    txn: &ReadTransaction,
    tenant_id: &str,
    subject: &str,
    period: Period,
    start: i64,
) -> Result<CostRecord, Error> {
    let table = txn.open_table(COST_ROLLUPS)?;
    match table.get((tenant_id, period.as_str(), start, subject))? {
        Some(value) => decode(value.value()),
        None => Ok(CostRecord::default()),
    }
}

/// Every subject of a tenant with spending in the period starting at `start` (keys and models
/// by their `key:` / `model:` subjects).
pub fn breakdown(
    txn: &ReadTransaction,
    tenant_id: &str,
    period: Period,
    start: i64,
) -> Result<Vec<(String, CostRecord)>, Error> {
    let table = txn.open_table(COST_ROLLUPS)?;
    let mut out = Vec::new();
    let range = (tenant_id, period.as_str(), start, "")..=(tenant_id, period.as_str(), start, "\u{10ffff}");
    for entry in table.range(range)? {
        let (key, value) = entry?;
        let (_, _, _, subject) = key.value();
        if subject != TENANT {
            out.push((subject.to_string(), decode(value.value())?));
        }
    }
    Ok(out)
}

/// A tenant's spending for a usage view: this month, today, and this month by key and by model.
pub struct Summary {
    pub month: CostRecord,
    pub today: CostRecord,
    pub keys: Vec<(String, CostRecord)>,
    pub models: Vec<(String, CostRecord)>,
}

pub fn summary(txn: &ReadTransaction, tenant_id: &str, month: i64, today: i64) -> Result<Summary, Error> {
    let mut keys = Vec::new();
    let mut models = Vec::new();
    for (subject, record) in breakdown(txn, tenant_id, Period::Month, month)? {
        if let Some(key) = subject.strip_prefix("key:") {
            keys.push((key.to_string(), record));
        } else if let Some(model) = subject.strip_prefix("model:") {
            models.push((model.to_string(), record));
        }
    }
    Ok(Summary {
        month: get(txn, tenant_id, TENANT, Period::Month, month)?,
        today: get(txn, tenant_id, TENANT, Period::Day, today)?,
        keys,
        models,
    })
}
