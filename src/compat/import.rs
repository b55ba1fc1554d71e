//! `ares import-postgres DUMP.sql`: a plain `pg_dump` of a reference ARES database into a new
//! data dir.
//!
//! Two passes over a staging file (`ares.redb.importing`) that is renamed into place only at
//! the end, so a failure leaves the data dir as it was:
//!
//! 1. stream the dump; every row of a known table is checked (it must convert into this server's
//!    records — a bad value stops the import naming its line) and kept verbatim;
//! 2. read the kept rows back table by table, parents first, and write the records (tenants,
//!    users, sessions, API keys, agents, conversations in message order, memory, usage, runs,
//!    alerts, audit). Rows that cannot become records (an agent of a deleted tenant) stay
//!    verbatim for export.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use super::RawRow;
use super::pgsql::{DumpError, DumpReader, Row};
use super::schema::{self, TABLES};
use crate::metering::periods::{day_start, month_start};
use crate::store::agents::TenantAgentRecord;
use crate::store::alerts::AlertRecord;
use crate::store::api_keys::ApiKeyRecord;
use crate::store::audit::AuditRecord;
use crate::store::conversations::{ConversationRecord, MessageRecord};
use crate::store::memory::{FactRecord, PreferenceRecord};
use crate::store::runs::AgentRunRecord;
use crate::store::templates::TemplateRecord;
use crate::store::tenants::TenantRecord;
use crate::store::usage::{UsageCounterRecord, UsageEventRecord};
use crate::store::user_agents::UserAgentRecord;
use crate::store::users::{SessionRecord, UserRecord};
use crate::store::{self, MigrationPolicy, Store};

/// Rows written per transaction.
const BATCH: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "{} already holds data; import into an empty data dir, or pass --force to replace it (the current database is kept beside it)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Dump(#[from] DumpError),
    #[error("line {line}: table {table}: {message}")]
    Row { line: usize, table: String, message: String },
    #[error(transparent)]
    Store(#[from] store::Error),
}

#[derive(Debug, Default)]
pub struct ImportReport {
    /// Rows read per known table.
    pub rows: BTreeMap<String, u64>,
    /// Rows of tables this server does not know, per table (reported, not imported).
    pub unknown_tables: BTreeMap<String, u64>,
    /// Rows kept only verbatim, per table, with why.
    pub raw_only: BTreeMap<String, (u64, &'static str)>,
    /// Where a replaced database was moved (`--force`).
    pub previous: Option<PathBuf>,
    pub elapsed_ms: u64,
}

/// Import `dump` into `data_dir`. `progress(bytes_read)` is called as the dump is read.
pub fn import(
    dump: &Path,
    data_dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { path, source }
    };
    if holds_data(data_dir) && !force {
        return Err(ImportError::NotEmpty(data_dir.to_path_buf()));
    }
    let file = std::fs::File::open(dump).map_err(io(dump))?;
    let created_dir = !data_dir.exists();
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let staging = data_dir.join(format!("{}.importing", store::DB_FILE));
    if staging.exists() {
        std::fs::remove_file(&staging).map_err(io(&staging))?;
    }

    let outcome = (|| {
        let store = Store::open(&staging, MigrationPolicy::Apply)?;
        let mut report = ImportReport::default();
        let result = keep_rows(&store, std::io::BufReader::with_capacity(1 << 20, file), &mut report, progress)
            .and_then(|()| write_records(&store, &mut report));
        store.close();
        result.map(|()| report)
    })();
    let mut report = match outcome {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            if created_dir {
                // Only removes it if nothing else appeared in it meanwhile.
                let _ = std::fs::remove_dir(data_dir);
            }
            return Err(e);
        }
    };

    let target = data_dir.join(store::DB_FILE);
    if target.exists() {
        // Fails at once while a server holds the file.
        Store::open(&target, MigrationPolicy::Inspect)?.close();
        let kept = data_dir.join(format!("{}.before-import-{}", store::DB_FILE, crate::clock::now_unix()));
        std::fs::rename(&target, &kept).map_err(io(&target))?;
        report.previous = Some(kept);
    }
    std::fs::File::open(&staging).and_then(|f| f.sync_all()).map_err(io(&staging))?;
    std::fs::rename(&staging, &target).map_err(io(&target))?;
    for derived in [crate::rag::SEARCH_DIR, crate::rag::VECTORS_DIR] {
        let dir = data_dir.join(derived);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// A data dir holds data when it has anything besides generated secrets.
fn holds_data(data_dir: &Path) -> bool {
    match std::fs::read_dir(data_dir) {
        Ok(entries) => entries.filter_map(Result::ok).any(|e| e.file_name() != "secrets"),
        Err(_) => false,
    }
}

/// Pass 1: check and keep every row.
fn keep_rows(
    store: &Store,
    reader: impl BufRead,
    report: &mut ImportReport,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ImportError> {
    let mut rows = DumpReader::new(reader);
    let mut batch: Vec<(String, String, String)> = Vec::with_capacity(BATCH);
    let mut last_progress = 0;
    while let Some(row) = rows.next() {
        let row: Row = row?;
        if rows.bytes_read() - last_progress > (1 << 20) {
            last_progress = rows.bytes_read();
            progress(last_progress);
        }
        let Some(table) = schema::find(&row.table) else {
            *report.unknown_tables.entry(row.table.clone()).or_default() += 1;
            continue;
        };
        let raw =
            RawRow { line: row.line, values: row.columns.iter().cloned().zip(row.values.iter().cloned()).collect() };
        convert(table.name, &raw).map_err(|message| ImportError::Row {
            line: row.line,
            table: table.name.to_string(),
            message,
        })?;
        let key = schema::row_key(table, |c| raw.get(c).map(str::to_string));
        let json = serde_json::to_string(&raw).map_err(|e| store::Error::Internal(e.to_string()))?;
        batch.push((table.name.to_string(), key, json));
        *report.rows.entry(table.name.to_string()).or_default() += 1;
        if batch.len() == BATCH {
            flush(store, &mut batch)?;
        }
    }
    flush(store, &mut batch)?;
    progress(rows.bytes_read());
    Ok(())
}

fn flush(store: &Store, batch: &mut Vec<(String, String, String)>) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    store.write_blocking(|txn| {
        for (table, key, json) in batch.iter() {
            store::compat::put(txn, table, key, json)?;
        }
        Ok(())
    })?;
    batch.clear();
    Ok(())
}

fn kept(store: &Store, table: &str) -> Result<Vec<RawRow>, ImportError> {
    let rows = store.read_now(|txn| store::compat::rows(txn, table))?;
    rows.into_iter()
        .map(|(_, json)| {
            serde_json::from_str(&json).map_err(|e| ImportError::Store(store::Error::Internal(e.to_string())))
        })
        .collect()
}

/// Pass 2: records, parents first.
fn write_records(store: &Store, report: &mut ImportReport) -> Result<(), ImportError> {
    for table in TABLES {
        if table.name == "messages" {
            continue; // written with their conversations
        }
        let rows = kept(store, table.name)?;
        if rows.is_empty() {
            continue;
        }
        if table.name == "conversations" {
            write_conversations(store, rows)?;
            continue;
        }
        for chunk in rows.chunks(BATCH) {
            let mut raw_only: Vec<&RawRow> = Vec::new();
            store.write_blocking(|txn| {
                raw_only.clear();
                for row in chunk {
                    let record = convert(table.name, row).map_err(store::Error::Internal)?;
                    if !write_one(txn, record)? {
                        raw_only.push(row);
                    }
                }
                for row in &raw_only {
                    let key = schema::row_key(table, |c| row.get(c).map(str::to_string));
                    let json = serde_json::to_string(row).map_err(|e| store::Error::Internal(e.to_string()))?;
                    store::compat::put(txn, &schema::raw_only(table.name), &key, &json)?;
                }
                Ok(())
            })?;
            if !raw_only.is_empty() {
                let entry = report.raw_only.entry(table.name.to_string()).or_insert((0, "its tenant does not exist"));
                entry.0 += raw_only.len() as u64;
            }
        }
    }
    Ok(())
}

/// Conversations with their messages ordered by timestamp, then by their order in the dump.
fn write_conversations(store: &Store, conversations: Vec<RawRow>) -> Result<(), ImportError> {
    let mut messages: HashMap<String, Vec<(i64, usize, MessageRecord)>> = HashMap::new();
    for row in kept(store, "messages")? {
        let Record::Message { conversation_id, message } = convert("messages", &row).map_err(store::Error::Internal)?
        else {
            continue;
        };
        messages.entry(conversation_id).or_default().push((message.created_at, row.line, message));
    }
    for chunk in conversations.chunks(256) {
        store.write_blocking(|txn| {
            for row in chunk {
                let Record::Conversation(conversation) =
                    convert("conversations", row).map_err(store::Error::Internal)?
                else {
                    continue;
                };
                let mut list = messages.get(&conversation.id).cloned().unwrap_or_default();
                list.sort_by_key(|(at, line, _)| (*at, *line));
                let ordered: Vec<MessageRecord> = list.into_iter().map(|(_, _, m)| m).collect();
                store::conversations::import(txn, &conversation, &ordered)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// What one row becomes.
enum Record {
    Tenant(TenantRecord),
    User(UserRecord),
    Session(String, SessionRecord),
    ApiKey(ApiKeyRecord),
    UsageEvent(UsageEventRecord),
    Month(String, i64, UsageCounterRecord),
    Day(String, i64, u64),
    Template(TemplateRecord),
    TenantAgent(TenantAgentRecord),
    Run(AgentRunRecord),
    Alert(AlertRecord),
    Audit(AuditRecord),
    Conversation(ConversationRecord),
    Message {
        conversation_id: String,
        message: MessageRecord,
    },
    Fact(FactRecord),
    Preference(PreferenceRecord),
    UserAgent(UserAgentRecord),
    /// Kept only verbatim (tables no API uses).
    Verbatim,
}

/// Write a record; `false` when it cannot exist here (its parent is missing).
fn write_one(txn: &redb::WriteTransaction, record: Record) -> Result<bool, store::Error> {
    use crate::store::{agents, alerts, api_keys, audit, memory, runs, templates, tenants, usage, user_agents, users};
    let orphan = |e: store::Error| match e {
        store::Error::NotFound(_) => Ok(false),
        other => Err(other),
    };
    match record {
        Record::Tenant(r) => tenants::import(txn, &r)?,
        Record::User(r) => users::insert(txn, &r)?,
        Record::Session(hash, r) => users::insert_session(txn, &hash, &r)?,
        Record::ApiKey(r) => return api_keys::insert(txn, &r).map(|()| true).or_else(orphan),
        Record::UsageEvent(r) => usage::record_all(txn, std::slice::from_ref(&r))?,
        Record::Month(tenant, month, counter) => usage::set_monthly(txn, &tenant, month, &counter)?,
        Record::Day(tenant, day, requests) => usage::set_daily_requests(txn, &tenant, day, requests)?,
        Record::Template(r) => templates::put(txn, &r)?,
        Record::TenantAgent(r) => return agents::insert(txn, &r).map(|()| true).or_else(orphan),
        Record::Run(r) => runs::record(txn, &r)?,
        Record::Alert(r) => {
            alerts::raise_once(txn, &format!("import:{}", r.id), &r)?;
        }
        Record::Audit(r) => audit::append(txn, &r)?,
        Record::Fact(r) => memory::import_fact(txn, &r)?,
        Record::Preference(r) => memory::learn_preference(txn, &r)?,
        Record::UserAgent(r) => user_agents::insert(txn, &r)?,
        Record::Conversation(_) | Record::Message { .. } | Record::Verbatim => {}
    }
    Ok(true)
}

// ---- Conversion: reference columns → records ----------------------------------------------

fn text(row: &RawRow, column: &str) -> Result<String, String> {
    row.get(column).map(str::to_string).ok_or_else(|| format!("column {column} is missing or NULL"))
}

fn opt_text(row: &RawRow, column: &str) -> Option<String> {
    row.get(column).map(str::to_string)
}

fn int(row: &RawRow, column: &str) -> Result<i64, String> {
    let raw = row.get(column).ok_or_else(|| format!("column {column} is missing or NULL"))?;
    raw.trim().parse::<i64>().map_err(|_| format!("column {column}: expected an integer, got {raw:?}"))
}

fn opt_int(row: &RawRow, column: &str) -> Result<Option<i64>, String> {
    match row.get(column) {
        None => Ok(None),
        Some(_) => int(row, column).map(Some),
    }
}

fn count(row: &RawRow, column: &str) -> Result<u64, String> {
    match row.get(column) {
        None => Ok(0),
        Some(_) => Ok(int(row, column)?.max(0) as u64),
    }
}

fn float(row: &RawRow, column: &str) -> Result<f64, String> {
    let raw = row.get(column).ok_or_else(|| format!("column {column} is missing or NULL"))?;
    raw.trim().parse::<f64>().map_err(|_| format!("column {column}: expected a number, got {raw:?}"))
}

fn boolean(row: &RawRow, column: &str, default: bool) -> Result<bool, String> {
    match row.get(column).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "t" | "true" | "1" | "yes" | "on" => Ok(true),
            "f" | "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("column {column}: expected a boolean, got {v:?}")),
        },
    }
}

/// A JSON column (JSONB, or JSON kept in TEXT), checked and kept as written so export gives
/// the same text back; invalid JSON is refused.
fn json_text(row: &RawRow, column: &str, default: &str) -> Result<String, String> {
    match row.get(column) {
        None => Ok(default.to_string()),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(_) => Ok(raw.to_string()),
            Err(e) => Err(format!("column {column}: invalid JSON ({e})")),
        },
    }
}

fn convert(table: &str, row: &RawRow) -> Result<Record, String> {
    Ok(match table {
        "tenants" => Record::Tenant(TenantRecord {
            id: text(row, "id")?,
            name: text(row, "name")?,
            tier: opt_text(row, "tier").unwrap_or_else(|| "free".into()),
            created_at: int(row, "created_at")?,
            updated_at: int(row, "updated_at")?,
        }),
        "users" => Record::User(UserRecord {
            id: text(row, "id")?,
            email: text(row, "email")?,
            password_hash: text(row, "password_hash")?,
            name: text(row, "name")?,
            created_at: int(row, "created_at")?,
            updated_at: int(row, "updated_at")?,
        }),
        "sessions" => Record::Session(
            text(row, "token_hash")?,
            SessionRecord {
                id: text(row, "id")?,
                user_id: text(row, "user_id")?,
                expires_at: int(row, "expires_at")?,
                created_at: int(row, "created_at")?,
            },
        ),
        "api_keys" => Record::ApiKey(ApiKeyRecord {
            id: text(row, "id")?,
            tenant_id: text(row, "tenant_id")?,
            name: opt_text(row, "name").unwrap_or_else(|| "default".into()),
            key_prefix: text(row, "key_prefix")?,
            key_hash: text(row, "key_hash")?,
            is_active: match row.get("is_active") {
                None => true,
                Some(v) => {
                    v.trim() != "0" && !v.trim().eq_ignore_ascii_case("f") && !v.trim().eq_ignore_ascii_case("false")
                }
            },
            created_at: int(row, "created_at")?,
            expires_at: opt_int(row, "expires_at")?,
            last_used: opt_int(row, "last_used")?,
        }),
        "usage_events" => Record::UsageEvent(UsageEventRecord {
            id: text(row, "id")?,
            tenant_id: text(row, "tenant_id")?,
            source: opt_text(row, "source").unwrap_or_else(|| "http".into()),
            request_count: count(row, "request_count")?,
            token_count: count(row, "token_count")?,
            created_at: int(row, "created_at")?,
        }),
        "monthly_usage_cache" => Record::Month(
            text(row, "tenant_id")?,
            month_start(int(row, "usage_month")?),
            UsageCounterRecord { requests: count(row, "request_count")?, tokens: count(row, "token_count")? },
        ),
        "daily_rate_limits" => {
            Record::Day(text(row, "tenant_id")?, day_start(int(row, "usage_date")?), count(row, "request_count")?)
        }
        "agent_templates" => Record::Template(TemplateRecord {
            id: text(row, "id")?,
            product_type: text(row, "product_type")?,
            agent_name: text(row, "agent_name")?,
            display_name: text(row, "display_name")?,
            description: opt_text(row, "description"),
            config_json: json_text(row, "config", "{}")?,
            created_at: int(row, "created_at")?,
        }),
        "tenant_agents" => Record::TenantAgent(TenantAgentRecord {
            id: text(row, "id")?,
            tenant_id: text(row, "tenant_id")?,
            agent_name: text(row, "agent_name")?,
            display_name: text(row, "display_name")?,
            description: opt_text(row, "description"),
            config_json: json_text(row, "config", "{}")?,
            enabled: boolean(row, "enabled", true)?,
            created_at: int(row, "created_at")?,
            updated_at: int(row, "updated_at")?,
        }),
        "agent_runs" => Record::Run(AgentRunRecord {
            id: text(row, "id")?,
            tenant_id: text(row, "tenant_id")?,
            agent_name: text(row, "agent_name")?,
            user_id: opt_text(row, "user_id"),
            status: opt_text(row, "status").unwrap_or_else(|| "completed".into()),
            input_tokens: count(row, "input_tokens")?,
            output_tokens: count(row, "output_tokens")?,
            duration_ms: count(row, "duration_ms")?,
            error: opt_text(row, "error"),
            created_at: int(row, "created_at")?,
            // The reference does not record who answered.
            served_by: None,
            attempts: 0,
            cost_micros: 0,
        }),
        "alerts" => Record::Alert(AlertRecord {
            id: text(row, "id")?,
            severity: opt_text(row, "severity").unwrap_or_else(|| "info".into()),
            source: text(row, "source")?,
            title: text(row, "title")?,
            message: text(row, "message")?,
            tenant_id: opt_text(row, "tenant_id"),
            resolved: boolean(row, "resolved", false)?,
            created_at: int(row, "created_at")?,
            resolved_at: opt_int(row, "resolved_at")?,
            resolved_by: opt_text(row, "resolved_by"),
        }),
        "admin_audit_log" => Record::Audit(AuditRecord {
            id: text(row, "id")?,
            action: text(row, "action")?,
            resource_type: text(row, "resource_type")?,
            resource_id: opt_text(row, "resource_id"),
            details: opt_text(row, "details"),
            admin_ip: opt_text(row, "admin_ip"),
            created_at: int(row, "created_at")?,
        }),
        "conversations" => Record::Conversation(ConversationRecord {
            id: text(row, "id")?,
            owner: format!("user:{}", text(row, "user_id")?),
            title: opt_text(row, "title"),
            created_at: int(row, "created_at")?,
            updated_at: int(row, "updated_at")?,
            message_count: 0,
        }),
        "messages" => Record::Message {
            conversation_id: text(row, "conversation_id")?,
            message: MessageRecord {
                id: text(row, "id")?,
                role: text(row, "role")?,
                content: text(row, "content")?,
                created_at: int(row, "timestamp")?,
            },
        },
        "memory_facts" => Record::Fact(FactRecord {
            id: text(row, "id")?,
            user_id: text(row, "user_id")?,
            category: text(row, "category")?,
            fact_key: text(row, "fact_key")?,
            fact_value: text(row, "fact_value")?,
            confidence: match row.get("confidence") {
                None => 1.0,
                Some(_) => float(row, "confidence")?,
            },
            created_at: int(row, "created_at")?,
            updated_at: int(row, "updated_at")?,
        }),
        "preferences" => Record::Preference(PreferenceRecord {
            id: text(row, "id")?,
            user_id: text(row, "user_id")?,
            category: text(row, "category")?,
            key: text(row, "key")?,
            value: text(row, "value")?,
            confidence: float(row, "confidence")?,
            created_at: int(row, "created_at")?,
            updated_at: int(row, "created_at")?,
        }),
        "user_agents" => {
            let tools: Vec<String> = match row.get("tools") {
                None => Vec::new(),
                Some(raw) => serde_json::from_str(raw)
                    .map_err(|e| format!("column tools: expected a JSON array of names ({e})"))?,
            };
            Record::UserAgent(UserAgentRecord {
                id: text(row, "id")?,
                user_id: text(row, "user_id")?,
                name: text(row, "name")?,
                display_name: opt_text(row, "display_name"),
                description: opt_text(row, "description"),
                model: text(row, "model")?,
                system_prompt: opt_text(row, "system_prompt"),
                tools,
                max_tool_iterations: count(row, "max_tool_iterations")? as u32,
                parallel_tools: boolean(row, "parallel_tools", false)?,
                is_public: boolean(row, "is_public", false)?,
                usage_count: count(row, "usage_count")?,
                rating_sum: match row.get("rating_sum") {
                    None => 0.0,
                    Some(_) => float(row, "rating_sum")?,
                },
                rating_count: count(row, "rating_count")?,
                extra_json: json_text(row, "extra", "{}")?,
                created_at: int(row, "created_at")?,
                updated_at: int(row, "updated_at")?,
            })
        }
        _ => Record::Verbatim,
    })
}
