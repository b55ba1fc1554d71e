//! Moving between Postgres-backed ARES and this server (API.md §7, DESIGN.md §8):
//! `ares import-postgres DUMP.sql` and `ares export-postgres OUT.sql`.
//!
//! The reference schema is described once, in [`schema`]: table names, columns in order and
//! primary keys. Import keeps every row of a known table verbatim (`store::compat`) *and* turns
//! it into this server's records, so clients keep working; export writes this server's records
//! back in the reference's columns, filling what it does not model from the verbatim rows.

pub mod export;
pub mod import;
pub mod pgsql;
pub mod schema;

/// One imported row: column → text value (PostgreSQL text form; `None` = NULL), plus the dump
/// line it came from (orders rows that share a sort key, e.g. messages in the same second).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawRow {
    pub line: usize,
    pub values: std::collections::BTreeMap<String, Option<String>>,
}

impl RawRow {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.values.get(column).and_then(|v| v.as_deref())
    }
}
