//! Schema migration fixtures: a `.redb` file written by every released schema version is kept
//! in tests/fixtures/ and must open, migrate and read back with the current binary.
//!
//! When the current schema version has no fixture yet, `current_schema_leaves_a_fixture`
//! writes one (as tantivy does for its index format), so every schema change leaves a file
//! behind for the next one to be tested against. Commit the new file.

use std::path::{Path, PathBuf};

use ares::store::audit::{self, AuditRecord};
use ares::store::tenants::{self, TenantRecord};
use ares::store::{self, MigrationPolicy, Store, migrations};

/// What every fixture holds, whatever its version: the data later schemas must preserve.
pub const FIXTURE_TENANTS: &[(&str, &str, &str)] = &[
    ("0190f5a8-0000-7000-8000-000000000001", "fixture-alpha", "pro"),
    ("0190f5a8-0000-7000-8000-000000000002", "fixture-beta", "free"),
    // An imported database may hold a tier the API does not know; it must survive migration.
    ("0190f5a8-0000-7000-8000-000000000003", "fixture-gamma", "gold"),
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture_path(version: u32) -> PathBuf {
    fixtures_dir().join(format!("schema-v{version}.redb"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn write_fixture(path: &Path) {
    let store = Store::open(path, MigrationPolicy::Apply).unwrap();
    runtime().block_on(async {
        for (i, (id, name, tier)) in FIXTURE_TENANTS.iter().enumerate() {
            let created_at = 1_767_225_600 + i as i64;
            let tenant = TenantRecord {
                id: id.to_string(),
                name: name.to_string(),
                tier: tier.to_string(),
                created_at,
                updated_at: created_at,
            };
            let entry = AuditRecord {
                id: format!("0190f5a8-0000-7000-9000-00000000000{i}"),
                action: "create_tenant".into(),
                resource_type: "tenant".into(),
                resource_id: Some(id.to_string()),
                details: Some(format!(r#"{{"tenant_name":"{name}","tier":"{tier}"}}"#)),
                admin_ip: None,
                created_at,
            };
            store
                .write(move |txn| {
                    tenants::insert(txn, &tenant)?;
                    audit::append(txn, &entry)
                })
                .await
                .unwrap();
        }
    });
    store.close();
}

/// Write the current version's fixture if it is missing (once per process: both tests need it).
fn ensure_current_fixture() -> PathBuf {
    static WRITTEN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = WRITTEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = fixture_path(migrations::latest(migrations::MIGRATIONS));
    if !path.exists() {
        std::fs::create_dir_all(fixtures_dir()).unwrap();
        let staging = path.with_extension("redb.tmp");
        write_fixture(&staging);
        std::fs::rename(&staging, &path).unwrap();
        println!("wrote {}: commit it", path.display());
    }
    path
}

#[test]
fn current_schema_leaves_a_fixture() {
    assert!(ensure_current_fixture().exists());
}

#[test]
fn every_fixture_migrates_to_the_current_schema_and_keeps_its_data() {
    ensure_current_fixture();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "redb"))
        .collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "tests/fixtures holds no schema fixture");
    assert!(fixtures.contains(&fixture_path(1)), "the first schema version's fixture must stay");

    for fixture in fixtures {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(store::DB_FILE);
        std::fs::copy(&fixture, &path).unwrap();

        let store = Store::open(&path, MigrationPolicy::Apply).unwrap();
        let status = store.migration_status().unwrap();
        assert!(status.iter().all(|s| s.applied_at.is_some()), "{}: {status:?}", fixture.display());
        assert_eq!(status.len(), migrations::MIGRATIONS.len());

        let (tenants, entries) =
            runtime().block_on(store.read(|txn| Ok((tenants::list(txn)?, audit::page(txn, 100, 0)?)))).unwrap();
        let mut found: Vec<(String, String, String)> =
            tenants.into_iter().map(|s| (s.tenant.id, s.tenant.name, s.tenant.tier)).collect();
        found.sort();
        let expected: Vec<(String, String, String)> =
            FIXTURE_TENANTS.iter().map(|(i, n, t)| (i.to_string(), n.to_string(), t.to_string())).collect();
        assert_eq!(found, expected, "{}", fixture.display());
        assert_eq!(entries.len(), FIXTURE_TENANTS.len());
        assert_eq!(entries[0].resource_id.as_deref(), Some(FIXTURE_TENANTS[2].0), "newest first");
        store.close();
    }
}
