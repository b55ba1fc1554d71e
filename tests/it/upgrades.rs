//! Upgrades, as an operator does them: a data dir written by every released schema version
//! (tests/fixtures/schema-v<N>.redb) is served by the current binary, which snapshots it first
//! and migrates it; everything reads back through the API; and restoring the snapshot rolls
//! the file back to its old schema with its data intact.

use std::path::{Path, PathBuf};

use ares::store::{self, MigrationPolicy, Store, migrations, tenants};
use serde_json::Value;

use crate::harness::{BinaryServer, run_cli};
use crate::migrations::FIXTURE_TENANTS;

fn fixtures() -> Vec<(u32, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name()?.to_str()?.to_string();
            let version = name.strip_prefix("schema-v")?.strip_suffix(".redb")?.parse().ok()?;
            Some((version, path))
        })
        .collect();
    found.sort();
    found
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

async fn admin_get(server: &BinaryServer, path: &str) -> Value {
    let response =
        server.client().get(server.url(path)).header("x-admin-secret", server.admin_secret()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_released_schema_upgrades_with_a_snapshot_reads_back_and_rolls_back() {
    let latest = migrations::latest(migrations::MIGRATIONS);
    let older: Vec<(u32, PathBuf)> = fixtures().into_iter().filter(|(v, _)| *v < latest).collect();
    assert!(older.len() >= 12, "a fixture per released schema: {older:?}");
    for (version, fixture) in older {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(&fixture, data.join(store::DB_FILE)).unwrap();

        // Upgrade: the new binary starts on the old file.
        let mut server = BinaryServer::builder(root.path()).start();
        let prefix = format!("pre-migration-v{version}-to-v{latest}-");
        let snapshot = std::fs::read_dir(data.join("backups"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&prefix))
            .unwrap_or_else(|| panic!("v{version}: no {prefix}* snapshot"));

        let listed = admin_get(&server, "/api/admin/tenants").await;
        let mut found: Vec<(String, String)> = listed["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_str().unwrap().into(), t["name"].as_str().unwrap().into()))
            .collect();
        found.sort();
        let expected: Vec<(String, String)> =
            FIXTURE_TENANTS.iter().map(|(i, n, _)| (i.to_string(), n.to_string())).collect();
        assert_eq!(found, expected, "v{version}: the tenants through the API");
        for (id, name, _) in FIXTURE_TENANTS {
            let detail = admin_get(&server, &format!("/api/admin/tenants/{id}")).await;
            assert_eq!(detail["name"], *name, "v{version}");
        }
        let audit = admin_get(&server, "/api/admin/audit-log").await;
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), FIXTURE_TENANTS.len(), "v{version}: {audit}");
        assert!(entries.iter().all(|e| e["action"] == "tenant.created"), "v{version}: {audit}");
        assert!(server.terminate().success(), "v{version}");

        // Roll back: restore the snapshot; the file is at its old schema, data intact.
        let restore = run_cli(root.path(), &["restore", path_arg(&snapshot), "--data-dir", path_arg(&data)], &[]);
        assert_eq!(restore.code(), Some(0), "v{version}: {restore:?}");
        let status = Store::inspect(&data.join(store::DB_FILE)).unwrap();
        let applied: Vec<u32> = status.iter().filter(|s| s.applied_at.is_some()).map(|s| s.version).collect();
        assert_eq!(applied, (1..=version).collect::<Vec<_>>(), "v{version}: rolled back to its schema");
        let store = Store::open(&data.join(store::DB_FILE), MigrationPolicy::Inspect).unwrap();
        let mut stored: Vec<(String, String, String)> = store
            .read_now(|txn| {
                Ok(tenants::list(txn)?.into_iter().map(|s| (s.tenant.id, s.tenant.name, s.tenant.tier)).collect())
            })
            .unwrap();
        store.close();
        stored.sort();
        let expected: Vec<(String, String, String)> =
            FIXTURE_TENANTS.iter().map(|(i, n, t)| (i.to_string(), n.to_string(), t.to_string())).collect();
        assert_eq!(stored, expected, "v{version}: the old file's data, stored tiers included");
    }
}
