//! Agent runs and their rollups (per agent, per tenant, per day), kept in the same transaction
//! as the run so analytics never scan the run log.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{AGENT_RUN_STATS, AGENT_RUNS, AGENT_RUNS_BY_AGENT, TENANT_TOTALS};
use super::usage::update_daily;
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRunRecord {
    pub id: String,
    pub tenant_id: String,
    pub agent_name: String,
    pub user_id: Option<String>,
    /// `completed` or `failed` (imported rows may hold others).
    pub status: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub created_at: i64,
}

impl Record for AgentRunRecord {
    const TABLE: &'static str = "agent_runs";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRunStatsRecord {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub duration_ms_sum: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub last_run: Option<i64>,
}

impl Record for AgentRunStatsRecord {
    const TABLE: &'static str = "agent_run_stats";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantTotalsRecord {
    pub runs: u64,
    pub tokens: u64,
}

impl Record for TenantTotalsRecord {
    const TABLE: &'static str = "tenant_totals";
    const VERSION: u8 = 1;
}

/// Store a finished run and fold it into every rollup.
pub fn record(txn: &WriteTransaction, run: &AgentRunRecord, day_start: i64) -> Result<(), Error> {
    let tenant = run.tenant_id.as_str();
    let agent = run.agent_name.as_str();
    let tokens = run.input_tokens + run.output_tokens;
    txn.open_table(AGENT_RUNS)?.insert((tenant, run.created_at, run.id.as_str()), encode(run)?.as_slice())?;
    txn.open_table(AGENT_RUNS_BY_AGENT)?.insert((tenant, agent, run.created_at, run.id.as_str()), ())?;

    let mut stats_table = txn.open_table(AGENT_RUN_STATS)?;
    let mut stats: AgentRunStatsRecord =
        stats_table.get((tenant, agent))?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
    stats.total += 1;
    match run.status.as_str() {
        "completed" => stats.completed += 1,
        "failed" => stats.failed += 1,
        _ => {}
    }
    stats.duration_ms_sum += run.duration_ms;
    stats.input_tokens += run.input_tokens;
    stats.output_tokens += run.output_tokens;
    stats.last_run = Some(stats.last_run.map_or(run.created_at, |last| last.max(run.created_at)));
    stats_table.insert((tenant, agent), encode(&stats)?.as_slice())?;

    let mut totals_table = txn.open_table(TENANT_TOTALS)?;
    let mut totals: TenantTotalsRecord =
        totals_table.get(tenant)?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
    totals.runs += 1;
    totals.tokens += tokens;
    totals_table.insert(tenant, encode(&totals)?.as_slice())?;

    update_daily(txn, tenant, day_start, |d| {
        d.runs += 1;
        d.run_tokens += tokens;
    })
}

pub fn stats(txn: &ReadTransaction, tenant: &str, agent: &str) -> Result<AgentRunStatsRecord, Error> {
    Ok(txn
        .open_table(AGENT_RUN_STATS)?
        .get((tenant, agent))?
        .map(|v| decode(v.value()))
        .transpose()?
        .unwrap_or_default())
}

pub fn totals(txn: &ReadTransaction, tenant: &str) -> Result<TenantTotalsRecord, Error> {
    Ok(txn.open_table(TENANT_TOTALS)?.get(tenant)?.map(|v| decode(v.value())).transpose()?.unwrap_or_default())
}

/// One agent's runs, newest first: `limit` after skipping `offset`, plus the total count.
pub fn page_for_agent(
    txn: &ReadTransaction,
    tenant: &str,
    agent: &str,
    limit: usize,
    offset: usize,
) -> Result<(Vec<AgentRunRecord>, u64), Error> {
    let total = stats(txn, tenant, agent)?.total;
    let index = txn.open_table(AGENT_RUNS_BY_AGENT)?;
    let runs = txn.open_table(AGENT_RUNS)?;
    let mut out = Vec::with_capacity(limit.min(256));
    let range = index.range((tenant, agent, i64::MIN, "")..(tenant, agent, i64::MAX, "\u{10FFFF}"))?;
    for entry in range.rev().skip(offset).take(limit) {
        let (key, _) = entry?;
        let (_, _, created_at, run_id) = key.value();
        if let Some(value) = runs.get((tenant, created_at, run_id))? {
            out.push(decode(value.value())?);
        }
    }
    Ok((out, total))
}

/// Every record (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<AgentRunRecord>, Error> {
    super::all_values(txn, AGENT_RUNS)
}
