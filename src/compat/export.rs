//! `ares export-postgres OUT.sql`: this server's data as COPY blocks for the reference schema,
//! loadable with `psql -v ON_ERROR_STOP=1 -f OUT.sql` into a database that has that schema (as
//! the reference server's migrations create it).
//!
//! Rows come from this server's records; columns it does not model (e.g. `usage_events.operation`)
//! come from the row kept at import time when there is one, else the reference's defaults.
//! Tables no API uses (`kasno_*`, `agent_config_versions`) are written back verbatim.
//! `monthly_usage_cache` and `daily_rate_limits` are this server's counters. Conversations of
//! API-key callers (`/v1/chat`) have no place in the reference schema and are left out (counted
//! in the report).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use super::RawRow;
use super::pgsql::write_copy;
use super::schema::{self, TABLES, Table};
use crate::store::{self, Store};

type Columns = BTreeMap<String, Option<String>>;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Default)]
pub struct ExportReport {
    pub rows: BTreeMap<String, usize>,
    /// Conversations owned by API keys, not representable in the reference schema.
    pub skipped_tenant_conversations: usize,
}

fn n(value: impl ToString) -> Option<String> {
    Some(value.to_string())
}

fn b(value: bool) -> Option<String> {
    Some(if value { "t" } else { "f" }.to_string())
}

fn map(pairs: Vec<(&str, Option<String>)>) -> Columns {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Reference defaults for columns this server never stores.
fn default_for(table: &str, column: &str) -> Option<String> {
    let value = match (table, column) {
        ("usage_events", "tokens_used" | "effective_tokens" | "duration_ms") => "0",
        ("usage_events", "success") => "t",
        ("user_agents", "source") => "user",
        _ => return None,
    };
    Some(value.to_string())
}

/// Write everything to `out`.
pub fn export(store: &Store, out: &mut impl Write) -> Result<ExportReport, ExportError> {
    let mut report = ExportReport::default();
    writeln!(
        out,
        "-- Written by ares export-postgres {} at {}",
        env!("CARGO_PKG_VERSION"),
        crate::clock::rfc3339(crate::clock::now_unix())
    )?;
    writeln!(out, "-- Load into a database with the reference ARES schema: psql -v ON_ERROR_STOP=1 -f <this file>")?;
    writeln!(out, "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nBEGIN;\n")?;
    for table in TABLES.iter().filter(|t| t.name != "_sqlx_migrations") {
        let native = native_rows(store, table.name, &mut report)?;
        let rows = merge(store, table, native)?;
        let count = write_copy(
            out,
            table.name,
            table.columns,
            rows.into_iter().map(|row| table.columns.iter().map(|c| row.get(*c).cloned().flatten()).collect()),
        )?;
        writeln!(out)?;
        report.rows.insert(table.name.to_string(), count);
    }
    writeln!(out, "COMMIT;")?;
    out.flush()?;
    Ok(report)
}

/// Native rows completed from the kept import rows, then the rows kept only verbatim. `None`
/// native rows means the table is not modelled: every kept row is written as it was.
fn merge(store: &Store, table: &Table, native: Option<Vec<Columns>>) -> Result<Vec<Columns>, ExportError> {
    let decode = |json: &str| serde_json::from_str::<RawRow>(json).map(|r| r.values).unwrap_or_default();
    let Some(native) = native else {
        let kept = store.read_now(|txn| store::compat::rows(txn, table.name))?;
        return Ok(kept.iter().map(|(_, json)| decode(json)).collect());
    };
    let mut out = Vec::with_capacity(native.len());
    let mut keys = HashSet::new();
    store.read_now(|txn| {
        for mut row in native {
            let key = schema::row_key(table, |c| row.get(c).cloned().flatten());
            let kept = store::compat::get(txn, table.name, &key)?.map(|json| decode(&json));
            for column in table.columns {
                if !row.contains_key(*column) {
                    let value = match &kept {
                        Some(kept) => kept.get(*column).cloned().flatten(),
                        None => default_for(table.name, column),
                    };
                    row.insert(column.to_string(), value);
                }
            }
            keys.insert(key);
            out.push(row);
        }
        for (key, json) in store::compat::rows(txn, &schema::raw_only(table.name))? {
            if !keys.contains(&key) {
                out.push(decode(&json));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// This server's records of `table` as reference columns; `None` for tables it does not model.
fn native_rows(store: &Store, table: &str, report: &mut ExportReport) -> Result<Option<Vec<Columns>>, ExportError> {
    use crate::store::{
        agents, alerts, api_keys, audit, conversations, memory, runs, templates, tenants, usage, user_agents, users,
    };
    let rows = store.read_now(|txn| {
        Ok(Some(match table {
            "tenants" => tenants::all(txn)?
                .into_iter()
                .map(|t| {
                    map(vec![
                        ("id", n(t.id)),
                        ("name", n(t.name)),
                        ("tier", n(t.tier)),
                        ("created_at", n(t.created_at)),
                        ("updated_at", n(t.updated_at)),
                    ])
                })
                .collect(),
            "users" => users::all(txn)?
                .into_iter()
                .map(|u| {
                    map(vec![
                        ("id", n(u.id)),
                        ("email", n(u.email)),
                        ("password_hash", n(u.password_hash)),
                        ("name", n(u.name)),
                        ("created_at", n(u.created_at)),
                        ("updated_at", n(u.updated_at)),
                    ])
                })
                .collect(),
            "sessions" => users::all_sessions(txn)?
                .into_iter()
                .map(|(hash, s)| {
                    map(vec![
                        ("id", n(s.id)),
                        ("user_id", n(s.user_id)),
                        ("token_hash", n(hash)),
                        ("expires_at", n(s.expires_at)),
                        ("created_at", n(s.created_at)),
                    ])
                })
                .collect(),
            "api_keys" => api_keys::all(txn)?
                .into_iter()
                .map(|k| {
                    map(vec![
                        ("id", n(k.id)),
                        ("tenant_id", n(k.tenant_id)),
                        ("key_hash", n(k.key_hash)),
                        ("key_prefix", n(k.key_prefix)),
                        ("name", n(k.name)),
                        ("is_active", n(if k.is_active { 1 } else { 0 })),
                        ("created_at", n(k.created_at)),
                        ("expires_at", k.expires_at.map(|e| e.to_string())),
                    ])
                })
                .collect(),
            "usage_events" => usage::all(txn)?
                .0
                .into_iter()
                .map(|e| {
                    map(vec![
                        ("id", n(e.id)),
                        ("tenant_id", n(e.tenant_id)),
                        ("source", n(e.source)),
                        ("request_count", n(e.request_count)),
                        ("token_count", n(e.token_count)),
                        ("created_at", n(e.created_at)),
                    ])
                })
                .collect(),
            "monthly_usage_cache" => usage::all(txn)?
                .1
                .into_iter()
                .map(|(tenant, month, c)| {
                    map(vec![
                        ("tenant_id", n(tenant)),
                        ("usage_month", n(month)),
                        ("request_count", n(c.requests)),
                        ("token_count", n(c.tokens)),
                    ])
                })
                .collect(),
            "daily_rate_limits" => usage::all(txn)?
                .2
                .into_iter()
                .filter(|(_, _, d)| d.requests > 0)
                .map(|(tenant, day, d)| {
                    map(vec![("tenant_id", n(tenant)), ("usage_date", n(day)), ("request_count", n(d.requests))])
                })
                .collect(),
            "agent_templates" => templates::list(txn, None)?
                .into_iter()
                .map(|t| {
                    map(vec![
                        ("id", n(t.id)),
                        ("product_type", n(t.product_type)),
                        ("agent_name", n(t.agent_name)),
                        ("display_name", n(t.display_name)),
                        ("description", t.description),
                        ("config", n(t.config_json)),
                        ("created_at", n(t.created_at)),
                    ])
                })
                .collect(),
            "tenant_agents" => agents::list_all(txn)?
                .into_iter()
                .map(|(_, a)| {
                    map(vec![
                        ("id", n(a.id)),
                        ("tenant_id", n(a.tenant_id)),
                        ("agent_name", n(a.agent_name)),
                        ("display_name", n(a.display_name)),
                        ("description", a.description),
                        ("config", n(a.config_json)),
                        ("enabled", b(a.enabled)),
                        ("created_at", n(a.created_at)),
                        ("updated_at", n(a.updated_at)),
                    ])
                })
                .collect(),
            "agent_runs" => runs::all(txn)?
                .into_iter()
                .map(|r| {
                    map(vec![
                        ("id", n(r.id)),
                        ("tenant_id", n(r.tenant_id)),
                        ("agent_name", n(r.agent_name)),
                        ("user_id", r.user_id),
                        ("status", n(r.status)),
                        ("input_tokens", n(r.input_tokens)),
                        ("output_tokens", n(r.output_tokens)),
                        ("duration_ms", n(r.duration_ms)),
                        ("error", r.error),
                        ("created_at", n(r.created_at)),
                    ])
                })
                .collect(),
            "alerts" => alerts::all(txn)?
                .into_iter()
                .map(|a| {
                    map(vec![
                        ("id", n(a.id)),
                        ("severity", n(a.severity)),
                        ("source", n(a.source)),
                        ("title", n(a.title)),
                        ("message", n(a.message)),
                        ("resolved", b(a.resolved)),
                        ("created_at", n(a.created_at)),
                        ("resolved_at", a.resolved_at.map(|t| t.to_string())),
                        ("resolved_by", a.resolved_by),
                    ])
                })
                .collect(),
            "admin_audit_log" => audit::page(txn, usize::MAX, 0)?
                .into_iter()
                .map(|a| {
                    map(vec![
                        ("id", n(a.id)),
                        ("action", n(a.action)),
                        ("resource_type", n(a.resource_type)),
                        ("resource_id", n(a.resource_id.unwrap_or_default())),
                        ("details", a.details),
                        ("admin_ip", a.admin_ip),
                        ("created_at", n(a.created_at)),
                    ])
                })
                .collect(),
            "conversations" => conversations::all(txn)?
                .into_iter()
                .filter_map(|c| {
                    let user = c.owner.strip_prefix("user:")?.to_string();
                    Some(map(vec![
                        ("id", n(c.id)),
                        ("user_id", n(user)),
                        ("title", c.title),
                        ("created_at", n(c.created_at)),
                        ("updated_at", n(c.updated_at)),
                    ]))
                })
                .collect(),
            "messages" => {
                let mut out = Vec::new();
                for c in conversations::all(txn)?.into_iter().filter(|c| c.owner.starts_with("user:")) {
                    for m in conversations::messages(txn, &c.id)? {
                        out.push(map(vec![
                            ("id", n(m.id)),
                            ("conversation_id", n(&c.id)),
                            ("role", n(m.role)),
                            ("content", n(m.content)),
                            ("timestamp", n(m.created_at)),
                        ]));
                    }
                }
                out
            }
            "memory_facts" => memory::all(txn)?
                .0
                .into_iter()
                .map(|f| {
                    map(vec![
                        ("id", n(f.id)),
                        ("user_id", n(f.user_id)),
                        ("category", n(f.category)),
                        ("fact_key", n(f.fact_key)),
                        ("fact_value", n(f.fact_value)),
                        ("confidence", n(f.confidence)),
                        ("created_at", n(f.created_at)),
                        ("updated_at", n(f.updated_at)),
                    ])
                })
                .collect(),
            "preferences" => memory::all(txn)?
                .1
                .into_iter()
                .map(|p| {
                    map(vec![
                        ("id", n(p.id)),
                        ("user_id", n(p.user_id)),
                        ("category", n(p.category)),
                        ("key", n(p.key)),
                        ("value", n(p.value)),
                        ("confidence", n(p.confidence)),
                        ("created_at", n(p.created_at)),
                    ])
                })
                .collect(),
            "user_agents" => user_agents::all(txn)?
                .into_iter()
                .map(|a| {
                    map(vec![
                        ("id", n(a.id)),
                        ("user_id", n(a.user_id)),
                        ("name", n(a.name)),
                        ("display_name", a.display_name),
                        ("description", a.description),
                        ("model", n(a.model)),
                        ("system_prompt", a.system_prompt),
                        ("tools", n(serde_json::Value::from(a.tools).to_string())),
                        ("max_tool_iterations", n(a.max_tool_iterations)),
                        ("parallel_tools", b(a.parallel_tools)),
                        ("extra", n(a.extra_json)),
                        ("is_public", b(a.is_public)),
                        ("usage_count", n(a.usage_count)),
                        ("rating_sum", n(a.rating_sum.round() as i64)),
                        ("rating_count", n(a.rating_count)),
                        ("created_at", n(a.created_at)),
                        ("updated_at", n(a.updated_at)),
                    ])
                })
                .collect(),
            _ => return Ok(None),
        }))
    })?;
    if table == "conversations" {
        let all = store.read_now(conversations_count)?;
        report.skipped_tenant_conversations = all.saturating_sub(rows.as_ref().map_or(0, Vec::len));
    }
    Ok(rows)
}

fn conversations_count(txn: &redb::ReadTransaction) -> Result<usize, store::Error> {
    Ok(store::conversations::all(txn)?.len())
}
