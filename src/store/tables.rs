//! Every table of the database, in one place. Keys and value versions are documented in
//! docs/storage.md; change both together.
//!
//! Values are `&[u8]` holding a versioned postcard record ([`super::Record`]) so that a redb
//! upgrade never reinterprets our data, and a record change is a migration we control.

use redb::TableDefinition;

/// `version → MigrationRecord`: which migrations this file has had.
pub const SCHEMA_MIGRATIONS: TableDefinition<u32, &[u8]> = TableDefinition::new("schema_migrations");

/// `key → bytes`: small singletons (e.g. `created_by`, the binary version that created the file).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// `tenant_id → TenantRecord`.
pub const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");

/// `(name, tenant_id) → ()`: find tenants by name. Not unique by construction, because an
/// imported Postgres database may already hold duplicate names (API.md §1.9.1); new names are
/// checked in code.
pub const TENANT_BY_NAME: TableDefinition<(&str, &str), ()> = TableDefinition::new("tenant_by_name");

/// `(tenant_id, agent_name) → TenantAgentRecord` (written by the identity layer).
pub const TENANT_AGENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("tenant_agents");

/// `(created_at, entry_id) → AuditRecord`: newest first is a reverse range scan, also for
/// imported rows whose ids are random UUIDs.
pub const AUDIT_LOG: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("audit_log");

// ---- Schema version 2: identity, keys, templates, metering, runs, alerts ----

/// `user_id → UserRecord`.
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");

/// `email → user_id`. Emails are matched verbatim and case-sensitively (API.md §3.4).
pub const USER_BY_EMAIL: TableDefinition<&str, &str> = TableDefinition::new("user_by_email");

/// `sha256_hex(refresh token) → SessionRecord`.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

/// `key_id → ApiKeyRecord` (hash only, never the raw key).
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

/// `key_prefix → key_id`: the lookup of API.md §3.5 (prefixes are unique).
pub const API_KEY_BY_PREFIX: TableDefinition<&str, &str> = TableDefinition::new("api_key_by_prefix");

/// `(tenant_id, key_id) → ()`: a tenant's keys.
pub const TENANT_API_KEYS: TableDefinition<(&str, &str), ()> = TableDefinition::new("tenant_api_keys");

/// `(product_type, agent_name) → TemplateRecord`.
pub const AGENT_TEMPLATES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("agent_templates");

/// `(tenant_id, created_at, event_id) → UsageEventRecord`: append-only metering log.
pub const USAGE_EVENTS: TableDefinition<(&str, i64, &str), &[u8]> = TableDefinition::new("usage_events");

/// `(tenant_id, month_start) → UsageCounterRecord`: metered requests and tokens per UTC month.
pub const USAGE_MONTHLY: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("usage_monthly");

/// `(tenant_id, day_start) → DailyUsageRecord`: metered requests, runs and run tokens per UTC day.
pub const USAGE_DAILY: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("usage_daily");

/// `day_start → DailyUsageRecord`: the same, summed over every tenant (platform stats).
pub const PLATFORM_DAILY: TableDefinition<i64, &[u8]> = TableDefinition::new("platform_daily");

/// `(tenant_id, created_at, run_id) → AgentRunRecord`.
pub const AGENT_RUNS: TableDefinition<(&str, i64, &str), &[u8]> = TableDefinition::new("agent_runs");

/// `(tenant_id, agent_name, created_at, run_id) → ()`: one agent's runs, newest last.
pub const AGENT_RUNS_BY_AGENT: TableDefinition<(&str, &str, i64, &str), ()> =
    TableDefinition::new("agent_runs_by_agent");

/// `(tenant_id, agent_name) → AgentRunStatsRecord`: rollup kept with every run.
pub const AGENT_RUN_STATS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("agent_run_stats");

/// `tenant_id → TenantTotalsRecord`: all-time runs and tokens.
pub const TENANT_TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_totals");

/// `alert_id → AlertRecord`.
pub const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");

/// `(created_at, alert_id) → ()`: newest first by reverse scan.
pub const ALERTS_BY_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("alerts_by_time");

/// `dedupe key → alert_id`: a system alert is raised once per tenant, dimension, period and
/// threshold.
pub const ALERT_MARKS: TableDefinition<&str, &str> = TableDefinition::new("alert_marks");

// ---- Schema version 3: conversations ----

/// `conversation_id → ConversationRecord`.
pub const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");

/// `(owner, conversation_id) → ()`: an owner's conversations. Owners are `user:<id>` (JWT chats)
/// or `tenant:<id>` (API-key chats).
pub const OWNER_CONVERSATIONS: TableDefinition<(&str, &str), ()> = TableDefinition::new("owner_conversations");

/// `(conversation_id, sequence) → MessageRecord`: messages in order.
pub const MESSAGES: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("messages");

// ---- Schema version 4: deployments ----

/// `deploy_id → DeployRecord`.
pub const DEPLOYS: TableDefinition<&str, &[u8]> = TableDefinition::new("deploys");

/// `(started_at, order key) → deploy_id`: newest first by reverse scan. The order key is the
/// id's time-ordered (UUIDv7) suffix, so deploys started in the same second keep their order.
pub const DEPLOYS_BY_TIME: TableDefinition<(i64, &str), &str> = TableDefinition::new("deploys_by_time");

// ---- Schema version 5: user agents ----

/// `(user_id, agent_name) → UserAgentRecord`.
pub const USER_AGENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("user_agents");

// ---- Schema version 6: user memory ----

/// `(user_id, fact_id) → FactRecord`.
pub const MEMORY_FACTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("memory_facts");

/// `(user_id, category, key) → PreferenceRecord`.
pub const PREFERENCES: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("preferences");

// ---- Schema version 7: RAG ----

/// `collection_id → CollectionRecord`.
pub const RAG_COLLECTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("rag_collections");

/// `(user_id, name) → collection_id`: names are per user.
pub const RAG_COLLECTION_BY_NAME: TableDefinition<(&str, &str), u64> = TableDefinition::new("rag_collection_by_name");

/// `seq → ChunkRecord`; `seq` only grows, so it is the derived indexes' watermark.
pub const RAG_CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("rag_chunks");

/// `(collection_id, seq) → ()`: one collection's chunks in order.
pub const RAG_COLLECTION_CHUNKS: TableDefinition<(u64, u64), ()> = TableDefinition::new("rag_collection_chunks");

/// Counters (`next_chunk_seq`, `next_collection_id`).
pub const RAG_COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("rag_counters");

/// `collection_id → ()`: deleted collections whose lexical-index documents may remain.
pub const RAG_TOMBSTONES: TableDefinition<u64, ()> = TableDefinition::new("rag_tombstones");

// ---- Schema version 8: rows imported from a Postgres ARES database ----

/// `(pg table, primary key) → the row as a JSON object of text values`: every imported row,
/// verbatim, so `export-postgres` can give back columns (and tables) this server does not model.
pub const COMPAT_ROWS: TableDefinition<(&str, &str), &str> = TableDefinition::new("compat_rows");

// ---- Schema version 9: RAG documents, per-user chunk counts, unfinished ingests ----

/// `(collection_id, document_id) → DocumentRecord`: metadata stored once per ingested document
/// (chunks no longer carry a copy).
pub const RAG_DOCUMENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("rag_documents");

/// `user_id → chunks`: a user's chunks across collections plus those reserved by ingests still
/// running, so `[rag].max_chunks_per_user` is checked in one lookup inside the write.
pub const RAG_USER_CHUNKS: TableDefinition<&str, u64> = TableDefinition::new("rag_user_chunks");

/// `(collection_id, document_id) → PendingDocumentRecord`: ingests written in batches that have
/// not committed their last batch; removed at the end, rolled back at start-up after a crash.
pub const RAG_PENDING_DOCUMENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("rag_pending_documents");

// ---- Schema version 10: session ids, per-user usage ----

/// `session id → sha256_hex(refresh token)`: finds the session an access token's `sid` claim
/// names (access tokens carry the session id, never the refresh token or its hash).
pub const SESSION_IDS: TableDefinition<&str, &str> = TableDefinition::new("session_ids");

/// `(user_id, month_start) → UserUsageRecord`: a JWT user's metered requests and tokens per UTC
/// month (`[quotas.users]`).
pub const USER_USAGE_MONTHLY: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("user_usage_monthly");

/// `(user_id, day_start) → UserUsageRecord`: the same per UTC day.
pub const USER_USAGE_DAILY: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("user_usage_daily");

// ---- Schema version 12: the request log ----

/// `(at_ms, seq) → RequestLogRecord`: one record per API request, newest first by a reverse
/// scan; `seq` orders records of the same millisecond and is unique per server process.
pub const REQUEST_LOG: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("request_log");

/// `(tenant_id, at_ms, seq) → ()`: a tenant's requests, for `GET /v1/requests` and the admin's
/// tenant filter without scanning everyone's.
pub const REQUEST_LOG_BY_TENANT: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("request_log_by_tenant");

// ---- Schema version 13: costs ----

/// `(tenant_id, "day" | "month", period start, subject) → CostRecord`: spending rolled up per
/// UTC day and month, for the tenant (`tenant`), each API key (`key:<id>`) and each model
/// (`model:<name>`).
pub const COST_ROLLUPS: TableDefinition<(&str, &str, i64, &str), &[u8]> = TableDefinition::new("cost_rollups");

/// `"tenant:<id>" | "key:<id>" → BudgetRecord`: spending limits set by the admin.
pub const BUDGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("budgets");

// ---- Schema version 14: RAG ingest jobs ----

/// `job id → RagJobRecord`: asynchronous ingests, with the document until it is done.
pub const RAG_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("rag_jobs");
