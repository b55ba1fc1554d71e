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
