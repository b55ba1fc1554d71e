//! Record encoding: one version byte, then postcard.
//!
//! postcard has no field tags, so a struct change is a new version number plus a migration
//! that rewrites old records (see docs/storage.md). Decoding refuses versions it does not know
//! rather than misreading bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;

/// A value stored in a table.
pub trait Record: Serialize + DeserializeOwned {
    /// Table name, for error messages.
    const TABLE: &'static str;
    /// Current value version; bump it (and add a migration) when the struct changes.
    const VERSION: u8;
}

/// Room a new encoding starts with: most records (a run, a usage event, a request-log line)
/// fit, so they are written into one allocation rather than grown into one and copied behind
/// the version byte.
const INITIAL_CAPACITY: usize = 256;

pub fn encode<T: Record>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(INITIAL_CAPACITY);
    out.push(T::VERSION);
    postcard::to_extend(value, out).map_err(|e| Error::Codec { table: T::TABLE, message: e.to_string() })
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.split_first() {
        Some((&version, body)) if version == T::VERSION => {
            postcard::from_bytes(body).map_err(|e| Error::Codec { table: T::TABLE, message: e.to_string() })
        }
        Some((&version, _)) => Err(Error::UnknownRecordVersion { table: T::TABLE, version }),
        None => Err(Error::Codec { table: T::TABLE, message: "empty value".into() }),
    }
}

/// Every value of a `key → record` table, in key order (export and start-up scans).
pub fn all_values<K: redb::Key + 'static, T: Record>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<K, &[u8]>,
) -> Result<Vec<T>, Error> {
    use redb::ReadableTable as _;
    let mut out = Vec::new();
    for entry in txn.open_table(table)?.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    Ok(out)
}
