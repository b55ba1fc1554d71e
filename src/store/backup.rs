//! Consistent snapshots of the database while it serves: every table copied from ONE read
//! transaction into a fresh redb file, so the copy holds exactly the writes committed before
//! that transaction began — never half of a later one — and writers are not blocked.

use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableHandle as _, Value,
};

use super::Error;
use super::tables::*;

/// Rows copied per table, for the manifest.
pub type TableCounts = Vec<(String, u64)>;

/// Copy one table in its own write transaction on the target, so a large database is never
/// held in memory as one transaction's dirty pages (the copy is consistent anyway: every table
/// is read from the same source transaction).
fn copy<K: Key + 'static, V: Value + 'static>(
    source: &ReadTransaction,
    target: &Database,
    definition: TableDefinition<K, V>,
    counts: &mut TableCounts,
) -> Result<(), Error> {
    let from = match source.open_table(definition) {
        Ok(table) => table,
        // A table no migration has created yet in this file.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let write = target.begin_write()?;
    let mut rows = 0;
    {
        let mut to = write.open_table(definition)?;
        for entry in from.iter()? {
            let (key, value) = entry?;
            to.insert(key.value(), value.value())?;
            rows += 1;
        }
    }
    write.commit()?;
    counts.push((definition.name().to_string(), rows));
    Ok(())
}

/// Copy every table of `source` into a new database at `path` (which must not exist).
pub fn snapshot(source: &Database, path: &Path) -> Result<TableCounts, Error> {
    let read = source.begin_read()?;
    let target = Database::create(path)?;
    let mut counts = TableCounts::new();
    macro_rules! copy_all {
        ($($table:ident),* $(,)?) => {$( copy(&read, &target, $table, &mut counts)?; )*};
    }
    copy_all!(
        SCHEMA_MIGRATIONS,
        META,
        TENANTS,
        TENANT_BY_NAME,
        TENANT_AGENTS,
        AUDIT_LOG,
        USERS,
        USER_BY_EMAIL,
        SESSIONS,
        API_KEYS,
        API_KEY_BY_PREFIX,
        TENANT_API_KEYS,
        AGENT_TEMPLATES,
        USAGE_EVENTS,
        USAGE_MONTHLY,
        USAGE_DAILY,
        PLATFORM_DAILY,
        AGENT_RUNS,
        AGENT_RUNS_BY_AGENT,
        AGENT_RUN_STATS,
        TENANT_TOTALS,
        ALERTS,
        ALERTS_BY_TIME,
        ALERT_MARKS,
        CONVERSATIONS,
        OWNER_CONVERSATIONS,
        MESSAGES,
        DEPLOYS,
        DEPLOYS_BY_TIME,
        USER_AGENTS,
        MEMORY_FACTS,
        PREFERENCES,
        RAG_COLLECTIONS,
        RAG_COLLECTION_BY_NAME,
        RAG_CHUNKS,
        RAG_COLLECTION_CHUNKS,
        RAG_COUNTERS,
        RAG_TOMBSTONES,
        COMPAT_ROWS,
        RAG_DOCUMENTS,
        RAG_USER_CHUNKS,
        RAG_PENDING_DOCUMENTS,
        SESSION_IDS,
        USER_USAGE_MONTHLY,
        USER_USAGE_DAILY,
        REQUEST_LOG,
        REQUEST_LOG_BY_TENANT,
        COST_ROLLUPS,
        BUDGETS,
        RAG_JOBS,
    );
    // Every table of the source must have been copied: a table added to tables.rs but not to the
    // list above would otherwise be silently missing from backups.
    let copied: Vec<&str> = counts.iter().map(|(name, _)| name.as_str()).collect();
    for handle in read.list_tables()? {
        let name = handle.name().to_string();
        if !copied.contains(&name.as_str()) {
            return Err(Error::Internal(format!("snapshot does not know table '{name}'")));
        }
    }
    drop(target);
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io)?;
    Ok(counts)
}
