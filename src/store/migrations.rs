//! Versioned schema migrations, the embedded replacement for Postgres migration files.
//!
//! Each migration has a version, a description and a `definition`: a canonical text of what it
//! does, hashed into the checksum recorded with it. Editing a released migration changes the
//! checksum and the binary refuses the file, which is the point: released migrations are
//! append-only. All pending migrations run in one write transaction, so a file is always at
//! exactly one recorded version.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable as _, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tables::{AUDIT_LOG, META, SCHEMA_MIGRATIONS, TENANT_AGENTS, TENANT_BY_NAME, TENANTS};
use super::{Error, Record, decode, encode};

/// One step of the schema's history.
#[derive(Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    /// What the migration does, in words and table names; part of the checksum.
    pub definition: &'static str,
    pub apply: fn(&WriteTransaction) -> Result<(), Error>,
}

impl Migration {
    /// Hex SHA-256 of version, description and definition.
    pub fn checksum(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.version.to_be_bytes());
        hasher.update(self.description.as_bytes());
        hasher.update([0]);
        hasher.update(self.definition.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// The built-in history, oldest first. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema: meta, tenants, tenant name index, tenant agents, audit log",
        definition: "create meta(&str->bytes); tenants(&str->TenantRecord v1); \
                     tenant_by_name((&str,&str)->()); tenant_agents((&str,&str)->TenantAgentRecord v1); \
                     audit_log((i64,&str)->AuditRecord v1); meta.created_by = crate version",
        apply: initial_schema,
    },
    Migration {
        version: 2,
        description: "identity and metering: users, sessions, api keys, templates, usage, runs, alerts",
        definition: "create users(&str->UserRecord v1); user_by_email(&str->&str); sessions(&str->SessionRecord v1); \
                     api_keys(&str->ApiKeyRecord v1); api_key_by_prefix(&str->&str); tenant_api_keys((&str,&str)->()); \
                     agent_templates((&str,&str)->TemplateRecord v1); usage_events((&str,i64,&str)->UsageEventRecord v1); \
                     usage_monthly((&str,i64)->UsageCounterRecord v1); usage_daily((&str,i64)->DailyUsageRecord v1); \
                     platform_daily(i64->DailyUsageRecord v1); agent_runs((&str,i64,&str)->AgentRunRecord v1); \
                     agent_runs_by_agent((&str,&str,i64,&str)->()); agent_run_stats((&str,&str)->AgentRunStatsRecord v1); \
                     tenant_totals(&str->TenantTotalsRecord v1); alerts(&str->AlertRecord v1); \
                     alerts_by_time((i64,&str)->()); alert_marks(&str->&str)",
        apply: identity_and_metering,
    },
    Migration {
        version: 3,
        description: "conversations and their messages",
        definition: "create conversations(&str->ConversationRecord v1); owner_conversations((&str,&str)->()); \
                     messages((&str,u32)->MessageRecord v1)",
        apply: conversations,
    },
    Migration {
        version: 4,
        description: "deployment records",
        definition: "create deploys(&str->DeployRecord v1); deploys_by_time((i64,&str)->&str)",
        apply: deployments,
    },
    Migration {
        version: 5,
        description: "user agents",
        definition: "create user_agents((&str,&str)->UserAgentRecord v1)",
        apply: user_agents,
    },
    Migration {
        version: 6,
        description: "user memory: facts and preferences",
        definition: "create memory_facts((&str,&str)->FactRecord v1); preferences((&str,&str,&str)->PreferenceRecord v1)",
        apply: user_memory,
    },
    Migration {
        version: 7,
        description: "RAG collections and chunks",
        definition: "create rag_collections(u64->CollectionRecord v1); rag_collection_by_name((&str,&str)->u64); \
                     rag_chunks(u64->ChunkRecord v1); rag_collection_chunks((u64,u64)->()); rag_counters(&str->u64); \
                     rag_tombstones(u64->())",
        apply: rag,
    },
    Migration {
        version: 8,
        description: "rows imported from a Postgres ARES database",
        definition: "create compat_rows((&str,&str)->&str JSON object of text values)",
        apply: compat_rows,
    },
    Migration {
        version: 9,
        description: "RAG metadata once per document; per-user chunk counts; unfinished ingests",
        definition: "create rag_documents((u64,&str)->DocumentRecord v1); rag_user_chunks(&str->u64); \
                     rag_pending_documents((u64,&str)->PendingDocumentRecord v1); \
                     rewrite rag_chunks ChunkRecord v1 -> v2 without metadata_json, the metadata of each \
                     (collection_id, document_id) moved once to rag_documents from its first chunk minus \
                     document_id, chunk_index and created_at; rag_user_chunks = sum of chunk_count per user",
        apply: super::rag::migrate_chunks_to_documents,
    },
    Migration {
        version: 10,
        description: "session ids for access-token revocation, per-user usage counters",
        definition: "create session_ids(&str->&str) backfilled from sessions (SessionRecord.id -> token hash); \
                     user_usage_monthly((&str,i64)->UserUsageRecord v1); user_usage_daily((&str,i64)->UserUsageRecord v1)",
        apply: sessions_and_user_usage,
    },
    Migration {
        version: 11,
        description: "runs record which deployment answered and after how many attempts",
        definition: "rewrite agent_runs AgentRunRecord v1 -> v2 with served_by: None, attempts: 0",
        apply: super::runs::migrate_runs_to_v2,
    },
    Migration {
        version: 12,
        description: "the request log",
        definition: "create request_log((i64,u64)->RequestLogRecord v1); request_log_by_tenant((&str,i64,u64)->())",
        apply: request_log,
    },
    Migration {
        version: 13,
        description: "costs: rollups per tenant, key and model; runs record what they cost; budgets",
        definition: "create cost_rollups((&str,&str,i64,&str)->CostRecord v1); budgets(&str->BudgetRecord v1); \
                     rewrite agent_runs AgentRunRecord v2 -> v3 with cost_micros: 0",
        apply: costs,
    },
    Migration {
        version: 14,
        description: "asynchronous RAG ingest jobs",
        definition: "create rag_jobs(&str->RagJobRecord v1)",
        apply: rag_jobs,
    },
];

fn rag_jobs(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::tables::RAG_JOBS)?;
    Ok(())
}

fn costs(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::tables::COST_ROLLUPS)?;
    txn.open_table(super::tables::BUDGETS)?;
    super::runs::migrate_runs_to_v3(txn)
}

fn request_log(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::tables::REQUEST_LOG)?;
    txn.open_table(super::tables::REQUEST_LOG_BY_TENANT)?;
    Ok(())
}

fn initial_schema(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(TENANTS)?;
    txn.open_table(TENANT_BY_NAME)?;
    txn.open_table(TENANT_AGENTS)?;
    txn.open_table(AUDIT_LOG)?;
    let mut meta = txn.open_table(META)?;
    if meta.get("created_by")?.is_none() {
        meta.insert("created_by", concat!("ares ", env!("CARGO_PKG_VERSION")).as_bytes())?;
    }
    Ok(())
}

fn identity_and_metering(txn: &WriteTransaction) -> Result<(), Error> {
    use super::tables::*;
    txn.open_table(USERS)?;
    txn.open_table(USER_BY_EMAIL)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(API_KEYS)?;
    txn.open_table(API_KEY_BY_PREFIX)?;
    txn.open_table(TENANT_API_KEYS)?;
    txn.open_table(AGENT_TEMPLATES)?;
    txn.open_table(USAGE_EVENTS)?;
    txn.open_table(USAGE_MONTHLY)?;
    txn.open_table(USAGE_DAILY)?;
    txn.open_table(PLATFORM_DAILY)?;
    txn.open_table(AGENT_RUNS)?;
    txn.open_table(AGENT_RUNS_BY_AGENT)?;
    txn.open_table(AGENT_RUN_STATS)?;
    txn.open_table(TENANT_TOTALS)?;
    txn.open_table(ALERTS)?;
    txn.open_table(ALERTS_BY_TIME)?;
    txn.open_table(ALERT_MARKS)?;
    Ok(())
}

fn conversations(txn: &WriteTransaction) -> Result<(), Error> {
    use super::tables::{CONVERSATIONS, MESSAGES, OWNER_CONVERSATIONS};
    txn.open_table(CONVERSATIONS)?;
    txn.open_table(OWNER_CONVERSATIONS)?;
    txn.open_table(MESSAGES)?;
    Ok(())
}

fn deployments(txn: &WriteTransaction) -> Result<(), Error> {
    use super::tables::{DEPLOYS, DEPLOYS_BY_TIME};
    txn.open_table(DEPLOYS)?;
    txn.open_table(DEPLOYS_BY_TIME)?;
    Ok(())
}

fn user_agents(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::tables::USER_AGENTS)?;
    Ok(())
}

fn compat_rows(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::tables::COMPAT_ROWS)?;
    Ok(())
}

fn rag(txn: &WriteTransaction) -> Result<(), Error> {
    use super::tables::*;
    txn.open_table(RAG_COLLECTIONS)?;
    txn.open_table(RAG_COLLECTION_BY_NAME)?;
    txn.open_table(RAG_CHUNKS)?;
    txn.open_table(RAG_COLLECTION_CHUNKS)?;
    txn.open_table(RAG_COUNTERS)?;
    txn.open_table(RAG_TOMBSTONES)?;
    Ok(())
}

fn sessions_and_user_usage(txn: &WriteTransaction) -> Result<(), Error> {
    use super::tables::{SESSION_IDS, SESSIONS, USER_USAGE_DAILY, USER_USAGE_MONTHLY};
    txn.open_table(USER_USAGE_MONTHLY)?;
    txn.open_table(USER_USAGE_DAILY)?;
    let sessions = txn.open_table(SESSIONS)?;
    let mut ids = txn.open_table(SESSION_IDS)?;
    for entry in sessions.iter()? {
        let (hash, value) = entry?;
        let session: super::users::SessionRecord = decode(value.value())?;
        ids.insert(session.id.as_str(), hash.value())?;
    }
    Ok(())
}

fn user_memory(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::tables::MEMORY_FACTS)?;
    txn.open_table(super::tables::PREFERENCES)?;
    Ok(())
}

/// What `schema_migrations` holds per applied version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MigrationRecord {
    description: String,
    checksum: String,
    /// Unix seconds.
    applied_at: i64,
}

impl Record for MigrationRecord {
    const TABLE: &'static str = "schema_migrations";
    const VERSION: u8 = 1;
}

/// One line of `ares migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: u32,
    pub description: String,
    pub checksum: String,
    /// Unix seconds, or `None` while pending.
    pub applied_at: Option<i64>,
}

/// The latest version this binary knows.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

fn history(db: &impl ReadableDatabase) -> Result<BTreeMap<u32, MigrationRecord>, Error> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(SCHEMA_MIGRATIONS) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = BTreeMap::new();
    for entry in table.iter()? {
        let (version, value) = entry?;
        out.insert(version.value(), decode::<MigrationRecord>(value.value())?);
    }
    Ok(out)
}

/// Refuse files from newer binaries and files whose recorded migrations differ from ours.
pub(super) fn check_history(db: &impl ReadableDatabase, migrations: &[Migration]) -> Result<(), Error> {
    let recorded = history(db)?;
    let supported = latest(migrations);
    if let Some((&found, _)) = recorded.iter().next_back()
        && found > supported
    {
        return Err(Error::NewerSchema { found, supported });
    }
    for migration in migrations {
        if let Some(record) = recorded.get(&migration.version) {
            let expected = migration.checksum();
            if record.checksum != expected {
                return Err(Error::ChecksumMismatch {
                    version: migration.version,
                    recorded: record.checksum.clone(),
                    expected,
                });
            }
        }
    }
    Ok(())
}

/// Apply every pending migration, in version order, in one transaction. Returns the versions
/// applied (empty when the file was current).
pub fn apply_pending(db: &Database, migrations: &[Migration]) -> Result<Vec<u32>, Error> {
    check_history(db, migrations)?;
    let recorded = history(db)?;
    let mut pending: Vec<&Migration> = migrations.iter().filter(|m| !recorded.contains_key(&m.version)).collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    pending.sort_by_key(|m| m.version);
    let now = crate::clock::now_unix();
    let txn = db.begin_write()?;
    {
        for migration in &pending {
            (migration.apply)(&txn)?;
            let record = MigrationRecord {
                description: migration.description.to_string(),
                checksum: migration.checksum(),
                applied_at: now,
            };
            txn.open_table(SCHEMA_MIGRATIONS)?.insert(migration.version, encode(&record)?.as_slice())?;
        }
    }
    txn.commit()?;
    let applied: Vec<u32> = pending.iter().map(|m| m.version).collect();
    tracing::info!(?applied, "applied schema migrations");
    Ok(applied)
}

/// Every known migration with its applied time (or pending), plus recorded versions this
/// binary does not know (which `check_history` would have refused).
pub fn status(db: &impl ReadableDatabase, migrations: &[Migration]) -> Result<Vec<MigrationStatus>, Error> {
    let recorded = history(db)?;
    let mut out: Vec<MigrationStatus> = migrations
        .iter()
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            checksum: m.checksum(),
            applied_at: recorded.get(&m.version).map(|r| r.applied_at),
        })
        .collect();
    out.sort_by_key(|s| s.version);
    Ok(out)
}

/// Status for a data dir whose database file does not exist yet: everything pending.
pub fn status_of_missing_file(migrations: &[Migration]) -> Vec<MigrationStatus> {
    let mut out: Vec<MigrationStatus> = migrations
        .iter()
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            checksum: m.checksum(),
            applied_at: None,
        })
        .collect();
    out.sort_by_key(|s| s.version);
    out
}
