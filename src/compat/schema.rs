//! The reference server's Postgres tables (API.md §7.1, §7.2): columns in `CREATE TABLE` order
//! and primary keys, in an order that satisfies the foreign keys when loading.

pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub primary_key: &'static [&'static str],
}

const fn table(name: &'static str, columns: &'static [&'static str], primary_key: &'static [&'static str]) -> Table {
    Table { name, columns, primary_key }
}

/// Every table, parents before children. `_sqlx_migrations` is imported (kept verbatim) but
/// never exported: the reference server's migrator owns it.
pub const TABLES: &[Table] = &[
    table(
        "_sqlx_migrations",
        &["version", "description", "installed_on", "success", "checksum", "execution_time"],
        &["version"],
    ),
    table("tenants", &["id", "name", "tier", "created_at", "updated_at"], &["id"]),
    table("users", &["id", "email", "password_hash", "name", "created_at", "updated_at"], &["id"]),
    table("sessions", &["id", "user_id", "token_hash", "expires_at", "created_at"], &["id"]),
    table(
        "api_keys",
        &["id", "tenant_id", "key_hash", "key_prefix", "name", "is_active", "created_at", "expires_at"],
        &["id"],
    ),
    table(
        "usage_events",
        &[
            "id",
            "tenant_id",
            "source",
            "request_count",
            "token_count",
            "operation",
            "tokens_used",
            "effective_tokens",
            "success",
            "duration_ms",
            "created_at",
        ],
        &["id"],
    ),
    table(
        "monthly_usage_cache",
        &["tenant_id", "usage_month", "request_count", "token_count"],
        &["tenant_id", "usage_month"],
    ),
    table("daily_rate_limits", &["tenant_id", "usage_date", "request_count"], &["tenant_id", "usage_date"]),
    table(
        "kasno_devices",
        &["id", "tenant_id", "name", "device_token", "status", "block_mode", "last_seen", "created_at", "updated_at"],
        &["id"],
    ),
    table(
        "kasno_events",
        &[
            "id",
            "tenant_id",
            "device_id",
            "event_type",
            "severity",
            "source",
            "domain",
            "app_package",
            "content",
            "gambling_score",
            "action_taken",
            "metadata",
            "created_at",
        ],
        &["id"],
    ),
    table(
        "kasno_risk_scores",
        &["id", "tenant_id", "device_id", "score_date", "risk_score", "factors", "trend", "summary", "computed_at"],
        &["id"],
    ),
    table(
        "kasno_rules",
        &["id", "tenant_id", "rule_type", "pattern", "action", "source", "enabled", "hits", "created_at", "updated_at"],
        &["id"],
    ),
    table(
        "agent_templates",
        &["id", "product_type", "agent_name", "display_name", "description", "config", "created_at"],
        &["id"],
    ),
    table(
        "tenant_agents",
        &[
            "id",
            "tenant_id",
            "agent_name",
            "display_name",
            "description",
            "config",
            "enabled",
            "created_at",
            "updated_at",
        ],
        &["id"],
    ),
    table(
        "agent_runs",
        &[
            "id",
            "tenant_id",
            "agent_name",
            "user_id",
            "status",
            "input_tokens",
            "output_tokens",
            "duration_ms",
            "error",
            "created_at",
        ],
        &["id"],
    ),
    table(
        "alerts",
        &["id", "severity", "source", "title", "message", "resolved", "created_at", "resolved_at", "resolved_by"],
        &["id"],
    ),
    table(
        "admin_audit_log",
        &["id", "action", "resource_type", "resource_id", "details", "admin_ip", "created_at"],
        &["id"],
    ),
    table("conversations", &["id", "user_id", "title", "created_at", "updated_at"], &["id"]),
    table("messages", &["id", "conversation_id", "role", "content", "timestamp"], &["id"]),
    table(
        "memory_facts",
        &["id", "user_id", "category", "fact_key", "fact_value", "confidence", "created_at", "updated_at"],
        &["id"],
    ),
    table(
        "preferences",
        &["id", "user_id", "category", "key", "value", "confidence", "created_at"],
        &["user_id", "category", "key"],
    ),
    table(
        "user_agents",
        &[
            "id",
            "user_id",
            "name",
            "display_name",
            "description",
            "model",
            "system_prompt",
            "tools",
            "max_tool_iterations",
            "parallel_tools",
            "extra",
            "is_public",
            "usage_count",
            "rating_sum",
            "rating_count",
            "source",
            "created_at",
            "updated_at",
        ],
        &["id"],
    ),
    table(
        "agent_config_versions",
        &["id", "agent_id", "version", "config_json", "is_active", "change_source", "created_at"],
        &["id"],
    ),
];

pub fn find(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The key a row is kept under: its primary-key values joined by U+001F.
pub fn row_key(table: &Table, value: impl Fn(&str) -> Option<String>) -> String {
    table.primary_key.iter().map(|c| value(c).unwrap_or_default()).collect::<Vec<_>>().join("\u{1f}")
}

/// Verbatim rows of a table that import could not turn into records (e.g. an agent of a tenant
/// that no longer exists) are kept under this name, so export still writes them.
pub fn raw_only(table: &str) -> String {
    format!("{table}#raw-only")
}
