//! Provisioning a client in one transaction: tenant, its agents cloned from the product's
//! templates, an API key, and the audit entry — all or nothing (API.md §1.9.2).

use redb::{ReadableTable as _, WriteTransaction};

use super::agents::{self, TenantAgentRecord};
use super::api_keys::{self, ApiKeyRecord, NewKeyMaterial};
use super::audit::{self, AuditRecord};
use super::tables::AGENT_TEMPLATES;
use super::templates::TemplateRecord;
use super::tenants::{self, TenantRecord};
use super::{Error, decode};

/// Points between the steps, reported to an observer; a test observer fails at one of them to
/// prove that nothing of the earlier steps survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    TenantWritten,
    AgentsCloned,
    KeyIssued,
}

pub struct Provisioned {
    pub tenant: TenantRecord,
    pub agents: Vec<String>,
    pub raw_key: String,
    pub key: ApiKeyRecord,
}

/// Run every step in `txn`. Any error (including one from `observe`) fails the job, and the
/// group-commit writer discards all of its writes.
pub fn provision(
    txn: &WriteTransaction,
    tenant: &TenantRecord,
    product_type: &str,
    key_name: &str,
    audit_entry: &AuditRecord,
    generate_key: impl Fn() -> NewKeyMaterial,
    observe: &mut dyn FnMut(Step) -> Result<(), Error>,
) -> Result<Provisioned, Error> {
    tenants::insert(txn, tenant)?;
    observe(Step::TenantWritten)?;

    let templates = templates_of(txn, product_type)?;
    let mut created = Vec::with_capacity(templates.len());
    for template in &templates {
        let agent = TenantAgentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant.id.clone(),
            agent_name: template.agent_name.clone(),
            display_name: template.display_name.clone(),
            description: template.description.clone(),
            config_json: template.config_json.clone(),
            enabled: true,
            created_at: tenant.created_at,
            updated_at: tenant.created_at,
        };
        if agents::insert_if_absent(txn, &agent)? {
            created.push(agent.agent_name);
        }
    }
    observe(Step::AgentsCloned)?;

    let (raw_key, key) = api_keys::insert_generated(txn, &tenant.id, key_name, tenant.created_at, None, generate_key)?;
    observe(Step::KeyIssued)?;

    let mut entry = audit_entry.clone();
    entry.resource_id = Some(tenant.id.clone());
    audit::append(txn, &entry)?;
    Ok(Provisioned { tenant: tenant.clone(), agents: created, raw_key, key })
}

/// Templates of a product type in shipping order (kasino: classifier, risk, transaction,
/// report), case-insensitively.
fn templates_of(txn: &WriteTransaction, product_type: &str) -> Result<Vec<TemplateRecord>, Error> {
    let table = txn.open_table(AGENT_TEMPLATES)?;
    let mut out: Vec<TemplateRecord> = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        let template: TemplateRecord = decode(value.value())?;
        if template.product_type.eq_ignore_ascii_case(product_type) {
            out.push(template);
        }
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase as _, ReadableTableMetadata as _, TableDefinition};

    use super::*;
    use crate::store::tables::{API_KEYS, AUDIT_LOG, TENANT_AGENTS, TENANT_BY_NAME, TENANTS};
    use crate::store::{MigrationPolicy, Store, templates};

    fn key_material() -> NewKeyMaterial {
        let key = crate::auth::api_keys::generate();
        NewKeyMaterial { raw: key.raw, prefix: key.prefix, hash: key.hash }
    }

    fn fixture() -> (tempfile::TempDir, Store, TenantRecord, AuditRecord) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("ares.redb"), MigrationPolicy::Apply).unwrap();
        store.write_blocking(|txn| templates::seed(txn, &crate::agents::templates::builtin(100))).unwrap();
        let tenant =
            TenantRecord { id: "t-1".into(), name: "kas".into(), tier: "pro".into(), created_at: 200, updated_at: 200 };
        let audit = AuditRecord {
            id: "a-1".into(),
            action: "provision_client".into(),
            resource_type: "tenant".into(),
            resource_id: None,
            details: None,
            admin_ip: None,
            created_at: 200,
        };
        (dir, store, tenant, audit)
    }

    fn rows(store: &Store, table: TableDefinition<&str, &[u8]>) -> u64 {
        store.database().begin_read().unwrap().open_table(table).unwrap().len().unwrap()
    }

    fn count_all(store: &Store) -> [u64; 5] {
        let txn = store.database().begin_read().unwrap();
        [
            rows(store, TENANTS),
            txn.open_table(TENANT_BY_NAME).unwrap().len().unwrap(),
            txn.open_table(TENANT_AGENTS).unwrap().len().unwrap(),
            rows(store, API_KEYS),
            txn.open_table(AUDIT_LOG).unwrap().len().unwrap(),
        ]
    }

    #[test]
    fn a_failure_at_any_step_leaves_nothing_behind() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for failing in [Step::TenantWritten, Step::AgentsCloned, Step::KeyIssued] {
            let (_dir, store, tenant, audit) = fixture();
            let result = runtime.block_on(store.write(move |txn| {
                provision(txn, &tenant, "kasino", "prod", &audit, key_material, &mut |step| {
                    if step == failing { Err(Error::Internal(format!("injected failure at {step:?}"))) } else { Ok(()) }
                })
            }));
            assert!(matches!(result, Err(Error::Internal(ref m)) if m.contains("injected")), "{failing:?}");
            assert_eq!(count_all(&store), [0, 0, 0, 0, 0], "rows left behind after a failure at {failing:?}");
        }
    }

    #[test]
    fn a_complete_run_writes_everything_once() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (_dir, store, tenant, audit) = fixture();
        let done = runtime
            .block_on(
                store
                    .write(move |txn| provision(txn, &tenant, "KASINO", "prod", &audit, key_material, &mut |_| Ok(()))),
            )
            .unwrap();
        assert_eq!(done.agents, ["kasino-classifier", "kasino-risk", "kasino-transaction", "kasino-report"]);
        assert!(done.raw_key.starts_with(&done.key.key_prefix));
        assert!(!done.raw_key.contains(&done.key.key_hash));
        assert_eq!(count_all(&store), [1, 1, 4, 1, 1]);
    }
}
