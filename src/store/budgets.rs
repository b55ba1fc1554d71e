//! Spending limits set by the admin on a tenant or on one of its API keys, in micro-dollars.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::BUDGETS;
use super::{Error, Record, decode, encode};

/// The subject of a tenant's budget.
pub fn tenant_subject(tenant_id: &str) -> String {
    format!("tenant:{tenant_id}")
}

/// The subject of an API key's budget.
pub fn key_subject(key_id: &str) -> String {
    format!("key:{key_id}")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRecord {
    /// Per UTC month; `None`: no monthly limit.
    pub monthly_micros: Option<u64>,
    /// Per UTC day; `None`: no daily limit.
    pub daily_micros: Option<u64>,
    pub updated_at: i64,
}

impl Record for BudgetRecord {
    const TABLE: &'static str = "budgets";
    const VERSION: u8 = 1;
}

impl BudgetRecord {
    pub fn is_empty(&self) -> bool {
        self.monthly_micros.is_none() && self.daily_micros.is_none()
    }
}

pub fn get(txn: &ReadTransaction, subject: &str) -> Result<Option<BudgetRecord>, Error> {
    match txn.open_table(BUDGETS)?.get(subject)? {
        Some(value) => Ok(Some(decode(value.value())?)),
        None => Ok(None),
    }
}

/// [`get`] inside a write.
pub fn get_for_update(txn: &WriteTransaction, subject: &str) -> Result<Option<BudgetRecord>, Error> {
    match txn.open_table(BUDGETS)?.get(subject)? {
        Some(value) => Ok(Some(decode(value.value())?)),
        None => Ok(None),
    }
}

/// Set `subject`'s budget; one without limits is removed.
pub fn put(txn: &WriteTransaction, subject: &str, budget: &BudgetRecord) -> Result<(), Error> {
    let mut table = txn.open_table(BUDGETS)?;
    if budget.is_empty() {
        table.remove(subject)?;
    } else {
        table.insert(subject, encode(budget)?.as_slice())?;
    }
    Ok(())
}
