//! Agent templates per product type, cloned into a tenant's agents when it is provisioned.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::AGENT_TEMPLATES;
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRecord {
    pub id: String,
    pub product_type: String,
    pub agent_name: String,
    pub display_name: String,
    pub description: Option<String>,
    /// A JSON object, as text.
    pub config_json: String,
    pub created_at: i64,
}

impl Record for TemplateRecord {
    const TABLE: &'static str = "agent_templates";
    const VERSION: u8 = 1;
}

/// Insert templates that are missing; existing rows (operator edits, imported rows) are kept.
/// A row stored under `legacy_name` is renamed to the template's name instead of duplicated.
/// Returns how many rows were inserted or renamed.
pub fn seed(txn: &WriteTransaction, seeds: &[(TemplateRecord, Option<&str>)]) -> Result<usize, Error> {
    let mut table = txn.open_table(AGENT_TEMPLATES)?;
    let mut changed = 0;
    for (template, legacy_name) in seeds {
        let key = (template.product_type.as_str(), template.agent_name.as_str());
        if table.get(key)?.is_some() {
            continue;
        }
        let legacy = match legacy_name {
            Some(old) => {
                table.remove((template.product_type.as_str(), *old))?.map(|v| decode::<TemplateRecord>(v.value()))
            }
            None => None,
        };
        let row = match legacy {
            Some(old) => TemplateRecord { agent_name: template.agent_name.clone(), ..old? },
            None => template.clone(),
        };
        table.insert(key, encode(&row)?.as_slice())?;
        changed += 1;
    }
    Ok(changed)
}

/// Templates ordered by (product type, name); `product_type` filters (case-insensitively).
pub fn list(txn: &ReadTransaction, product_type: Option<&str>) -> Result<Vec<TemplateRecord>, Error> {
    let table = txn.open_table(AGENT_TEMPLATES)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        let template: TemplateRecord = decode(value.value())?;
        if product_type.is_none_or(|p| template.product_type.eq_ignore_ascii_case(p)) {
            out.push(template);
        }
    }
    Ok(out)
}

/// Whether any template exists for this product type.
pub fn has_product(txn: &ReadTransaction, product_type: &str) -> Result<bool, Error> {
    Ok(!list(txn, Some(product_type))?.is_empty())
}

/// Insert or replace a template (import).
pub fn put(txn: &WriteTransaction, template: &TemplateRecord) -> Result<(), Error> {
    let key = (template.product_type.as_str(), template.agent_name.as_str());
    txn.open_table(AGENT_TEMPLATES)?.insert(key, encode(template)?.as_slice())?;
    Ok(())
}
