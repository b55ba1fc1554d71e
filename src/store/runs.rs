//! Agent runs and their rollups (per agent, per tenant, per day), kept in the same transaction
//! as the run so analytics never scan the run log.

use std::collections::BTreeMap;

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
    /// `provider/model_id` of the deployment that answered; `None` when nothing answered, and
    /// for runs recorded before schema 11 or imported.
    pub served_by: Option<String>,
    /// Upstream requests made for the answer (retries and failovers included); 0 when unknown.
    pub attempts: u32,
    /// What the run's model calls cost, in micro-dollars; 0 for runs before schema 13, imported
    /// ones, and models without prices.
    pub cost_micros: u64,
}

impl Record for AgentRunRecord {
    const TABLE: &'static str = "agent_runs";
    const VERSION: u8 = 3;
}

/// A run as schemas 11 and 12 stored it (before `cost_micros`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AgentRunRecordV2 {
    id: String,
    tenant_id: String,
    agent_name: String,
    user_id: Option<String>,
    status: String,
    input_tokens: u64,
    output_tokens: u64,
    duration_ms: u64,
    error: Option<String>,
    created_at: i64,
    served_by: Option<String>,
    attempts: u32,
}

impl Record for AgentRunRecordV2 {
    const TABLE: &'static str = "agent_runs";
    const VERSION: u8 = 2;
}

/// A run as schemas 3 to 10 stored it (before `served_by` and `attempts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AgentRunRecordV1 {
    id: String,
    tenant_id: String,
    agent_name: String,
    user_id: Option<String>,
    status: String,
    input_tokens: u64,
    output_tokens: u64,
    duration_ms: u64,
    error: Option<String>,
    created_at: i64,
}

impl Record for AgentRunRecordV1 {
    const TABLE: &'static str = "agent_runs";
    const VERSION: u8 = 1;
}

/// Runs rewritten per step of the run migrations (a range cannot stay open while its table is
/// written).
const MIGRATION_BATCH: usize = 1024;

/// Migration 11: v1 runs gain `served_by` and `attempts` (written as the current record, so a
/// file migrated from before 11 skips the later rewrites).
pub(super) fn migrate_runs_to_v2(txn: &WriteTransaction) -> Result<(), Error> {
    rewrite_runs(txn, AgentRunRecordV1::VERSION, |bytes| {
        let old: AgentRunRecordV1 = decode(bytes)?;
        Ok(AgentRunRecord {
            id: old.id,
            tenant_id: old.tenant_id,
            agent_name: old.agent_name,
            user_id: old.user_id,
            status: old.status,
            input_tokens: old.input_tokens,
            output_tokens: old.output_tokens,
            duration_ms: old.duration_ms,
            error: old.error,
            created_at: old.created_at,
            served_by: None,
            attempts: 0,
            cost_micros: 0,
        })
    })
}

/// Migration 13: v2 runs gain `cost_micros` (0: their cost was not recorded).
pub(super) fn migrate_runs_to_v3(txn: &WriteTransaction) -> Result<(), Error> {
    rewrite_runs(txn, AgentRunRecordV2::VERSION, |bytes| {
        let old: AgentRunRecordV2 = decode(bytes)?;
        Ok(AgentRunRecord {
            id: old.id,
            tenant_id: old.tenant_id,
            agent_name: old.agent_name,
            user_id: old.user_id,
            status: old.status,
            input_tokens: old.input_tokens,
            output_tokens: old.output_tokens,
            duration_ms: old.duration_ms,
            error: old.error,
            created_at: old.created_at,
            served_by: old.served_by,
            attempts: old.attempts,
            cost_micros: 0,
        })
    })
}

/// Rewrite every run stored at version `from` with `upgrade`, in batches (a range cannot stay
/// open while its table is written).
fn rewrite_runs(
    txn: &WriteTransaction,
    from: u8,
    upgrade: impl Fn(&[u8]) -> Result<AgentRunRecord, Error>,
) -> Result<(), Error> {
    let mut after: Option<(String, i64, String)> = None;
    loop {
        let batch: Vec<((String, i64, String), Vec<u8>)> = {
            let table = txn.open_table(AGENT_RUNS)?;
            let range = match &after {
                Some((tenant, created_at, id)) => table.range((tenant.as_str(), *created_at, id.as_str())..)?,
                None => table.iter()?,
            };
            let mut out = Vec::with_capacity(MIGRATION_BATCH);
            for entry in range {
                let (key, value) = entry?;
                let (tenant, created_at, id) = key.value();
                let key = (tenant.to_string(), created_at, id.to_string());
                if after.as_ref() == Some(&key) {
                    continue;
                }
                out.push((key, value.value().to_vec()));
                if out.len() == MIGRATION_BATCH {
                    break;
                }
            }
            out
        };
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        let mut table = txn.open_table(AGENT_RUNS)?;
        for ((tenant, created_at, id), bytes) in batch {
            if bytes.first() != Some(&from) {
                continue;
            }
            let run = upgrade(&bytes)?;
            table.insert((tenant.as_str(), created_at, id.as_str()), encode(&run)?.as_slice())?;
        }
    }
    Ok(())
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
pub fn record(txn: &WriteTransaction, run: &AgentRunRecord) -> Result<(), Error> {
    record_all(txn, [run])
}

/// [`record`] for a batch: each run is logged, and each rollup touched (an agent's stats, a
/// tenant's totals, a day) is read and written once however many of the batch's runs it counts.
pub fn record_all<'a>(txn: &WriteTransaction, runs: impl IntoIterator<Item = &'a AgentRunRecord>) -> Result<(), Error> {
    let mut runs = runs.into_iter().peekable();
    if runs.peek().is_none() {
        return Ok(());
    }
    let mut agents: BTreeMap<(&str, &str), AgentRunStatsRecord> = BTreeMap::new();
    let mut tenants: BTreeMap<&str, TenantTotalsRecord> = BTreeMap::new();
    let mut days: BTreeMap<(&str, i64), TenantTotalsRecord> = BTreeMap::new();
    let mut log = txn.open_table(AGENT_RUNS)?;
    let mut by_agent = txn.open_table(AGENT_RUNS_BY_AGENT)?;
    for run in runs {
        let (tenant, agent) = (run.tenant_id.as_str(), run.agent_name.as_str());
        let tokens = run.input_tokens + run.output_tokens;
        log.insert((tenant, run.created_at, run.id.as_str()), encode(run)?.as_slice())?;
        by_agent.insert((tenant, agent, run.created_at, run.id.as_str()), ())?;
        let stats = agents.entry((tenant, agent)).or_default();
        stats.total += 1;
        match run.status.as_str() {
            "completed" => stats.completed += 1,
            "failed" => stats.failed += 1,
            _ => {}
        }
        stats.duration_ms_sum += run.duration_ms;
        stats.input_tokens += run.input_tokens;
        stats.output_tokens += run.output_tokens;
        stats.last_run = stats.last_run.max(Some(run.created_at));
        for totals in [
            tenants.entry(tenant).or_default(),
            days.entry((tenant, crate::metering::periods::day_start(run.created_at))).or_default(),
        ] {
            totals.runs += 1;
            totals.tokens += tokens;
        }
    }

    let mut stats_table = txn.open_table(AGENT_RUN_STATS)?;
    super::note_changed(super::Watched::Agents);
    for (key, added) in agents {
        let mut stats: AgentRunStatsRecord =
            stats_table.get(key)?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
        stats.total += added.total;
        stats.completed += added.completed;
        stats.failed += added.failed;
        stats.duration_ms_sum += added.duration_ms_sum;
        stats.input_tokens += added.input_tokens;
        stats.output_tokens += added.output_tokens;
        stats.last_run = stats.last_run.max(added.last_run);
        stats_table.insert(key, encode(&stats)?.as_slice())?;
    }

    let mut totals_table = txn.open_table(TENANT_TOTALS)?;
    for (tenant, added) in tenants {
        let mut totals: TenantTotalsRecord =
            totals_table.get(tenant)?.map(|v| decode(v.value())).transpose()?.unwrap_or_default();
        totals.runs += added.runs;
        totals.tokens += added.tokens;
        totals_table.insert(tenant, encode(&totals)?.as_slice())?;
    }

    for ((tenant, day_start), added) in days {
        update_daily(txn, tenant, day_start, |d| {
            d.runs += added.runs;
            d.run_tokens += added.tokens;
        })?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase as _};

    use super::*;

    #[test]
    fn migrations_11_and_13_rewrite_every_older_run_across_batches_keeping_its_fields() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("runs.redb")).unwrap();
        let count = MIGRATION_BATCH * 2 + 7;
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(AGENT_RUNS).unwrap();
            for i in 0..count {
                let old = AgentRunRecordV1 {
                    id: format!("run-{i:05}"),
                    tenant_id: format!("t{}", i % 3),
                    agent_name: "assistant".into(),
                    user_id: None,
                    status: "completed".into(),
                    input_tokens: i as u64,
                    output_tokens: 1,
                    duration_ms: 5,
                    error: None,
                    created_at: 1_000 + (i % 10) as i64,
                };
                table
                    .insert((old.tenant_id.as_str(), old.created_at, old.id.as_str()), encode(&old).unwrap().as_slice())
                    .unwrap();
            }
            let current = AgentRunRecordV2 {
                id: "run-new".into(),
                tenant_id: "t0".into(),
                agent_name: "assistant".into(),
                user_id: None,
                status: "completed".into(),
                input_tokens: 1,
                output_tokens: 1,
                duration_ms: 1,
                error: None,
                created_at: 2_000,
                served_by: Some("p/m".into()),
                attempts: 2,
            };
            table.insert(("t0", 2_000, "run-new"), encode(&current).unwrap().as_slice()).unwrap();
        }
        migrate_runs_to_v2(&txn).unwrap();
        migrate_runs_to_v3(&txn).unwrap();
        txn.commit().unwrap();

        let read = db.begin_read().unwrap();
        let table = read.open_table(AGENT_RUNS).unwrap();
        let runs: Vec<AgentRunRecord> = table.iter().unwrap().map(|e| decode(e.unwrap().1.value()).unwrap()).collect();
        assert_eq!(runs.len(), count + 1);
        let migrated: Vec<&AgentRunRecord> = runs.iter().filter(|r| r.id != "run-new").collect();
        assert!(migrated.iter().all(|r| r.served_by.is_none() && r.attempts == 0));
        let tokens: u64 = migrated.iter().map(|r| r.input_tokens).sum();
        assert_eq!(tokens, (0..count as u64).sum::<u64>(), "every run kept its fields");
        let kept = runs.iter().find(|r| r.id == "run-new").unwrap();
        assert_eq!((kept.served_by.as_deref(), kept.attempts, kept.cost_micros), (Some("p/m"), 2, 0));
        assert!(
            table.iter().unwrap().all(|e| e.unwrap().1.value().first() == Some(&AgentRunRecord::VERSION)),
            "every run is at the current version"
        );
    }
}
