//! Rows imported from a Postgres ARES database, kept verbatim (API.md §7): the exporter gives
//! back the columns and tables this server does not model, so a round trip loses nothing.

use redb::{ReadTransaction, WriteTransaction};

use super::Error;
use super::tables::COMPAT_ROWS;

/// Store one row (a JSON object of text-or-null values) under its table and primary key.
pub fn put(txn: &WriteTransaction, table: &str, key: &str, row_json: &str) -> Result<(), Error> {
    txn.open_table(COMPAT_ROWS)?.insert((table, key), row_json)?;
    Ok(())
}

/// A table's rows as `(primary key, JSON)`, in key order.
pub fn rows(txn: &ReadTransaction, table: &str) -> Result<Vec<(String, String)>, Error> {
    let rows = txn.open_table(COMPAT_ROWS)?;
    let mut out = Vec::new();
    for entry in rows.range((table, "")..)? {
        let (key, value) = entry?;
        let (row_table, row_key) = key.value();
        if row_table != table {
            break;
        }
        out.push((row_key.to_string(), value.value().to_string()));
    }
    Ok(out)
}

pub fn get(txn: &ReadTransaction, table: &str, key: &str) -> Result<Option<String>, Error> {
    Ok(txn.open_table(COMPAT_ROWS)?.get((table, key))?.map(|v| v.value().to_string()))
}
