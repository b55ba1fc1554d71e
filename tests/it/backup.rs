//! Backups and safe upgrades (README "Backups"): `POST /api/admin/backup` while serving,
//! `ares backup` (through a running server, else directly), `ares restore` (server stopped;
//! refused while one runs), and the snapshot every migration of an existing file starts with,
//! next to `ares migrate status`, which changes nothing.

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ares::store::migrations::{self, MIGRATIONS};
use ares::store::{self, MigrationPolicy, Store, tenants};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::PASSWORD;
use crate::harness::{BinaryServer, CliOutput, TestServer, expect_error, expect_json, run_cli};

fn assert_success(output: &CliOutput, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Names in a directory (sorted); empty when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Tenant names in a database file, read with the library (the file is opened, not migrated).
fn tenant_names(db: &Path) -> BTreeSet<String> {
    let store = Store::open(db, MigrationPolicy::Inspect).unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let names = store.read_now(tenants::list).unwrap().into_iter().map(|s| s.tenant.name).collect();
    store.close();
    names
}

/// Check a backup manifest (the HTTP answer or `manifest.json`) against its directory.
fn check_manifest(manifest: &Value, backups: &Path) -> PathBuf {
    let dir = PathBuf::from(manifest["path"].as_str().unwrap_or_else(|| panic!("no path: {manifest}")));
    assert_eq!(dir.parent(), Some(backups), "{manifest}");
    assert!(dir.file_name().unwrap().to_str().unwrap().starts_with("ares-"), "{manifest}");
    let file = PathBuf::from(manifest["file"].as_str().unwrap());
    assert_eq!(file, dir.join("ares.redb"), "{manifest}");
    assert_eq!(manifest["bytes"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()), "{manifest}");
    assert_eq!(manifest["schema_version"].as_u64(), Some(u64::from(migrations::latest(MIGRATIONS))));
    assert_eq!(manifest["ares_version"], env!("CARGO_PKG_VERSION"));
    assert!(manifest["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{manifest}");
    assert!(manifest["tables"]["tenants"].is_u64(), "{manifest}");
    let written: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(&written, manifest, "manifest.json says what was answered");
    dir
}

#[derive(Clone, Debug)]
struct Provisioned {
    tenant_id: String,
    raw_key: String,
    agents: BTreeSet<String>,
}

/// Provisioning writes a tenant, its template agents and an API key in one transaction, so a
/// snapshot that cut one in half would show a tenant without its key or agents.
#[tokio::test]
async fn admin_backup_under_concurrent_writes_holds_every_acknowledged_write_and_no_half_written_one() {
    let server = TestServer::start();
    let acked: Mutex<Vec<Provisioned>> = Mutex::new(Vec::new());
    let stop = Cell::new(false);

    let worker = |w: usize| {
        let (server, acked, stop) = (&server, &acked, &stop);
        async move {
            let mut i = 0;
            while !stop.get() {
                let done = server.provision(&format!("backup-{w}-{i}"), "free", "generic").await;
                let agents = done["agents_created"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string());
                acked.lock().unwrap().push(Provisioned {
                    tenant_id: done["tenant_id"].as_str().unwrap().to_string(),
                    raw_key: done["raw_api_key"].as_str().unwrap().to_string(),
                    agents: agents.collect(),
                });
                i += 1;
            }
        }
    };
    let backup = async {
        // Not a timing assertion: wait for some acknowledged writes before backing up.
        while acked.lock().unwrap().len() < 24 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = acked.lock().unwrap().clone();
        let response = server.admin(Method::POST, "/api/admin/backup").send().await.unwrap();
        stop.set(true);
        (before, expect_json(response, 201).await)
    };
    let (_, (before, manifest)) = tokio::join!(join_all((0..6).map(worker)), backup);
    let all = acked.into_inner().unwrap();
    assert!(before.len() >= 24 && all.len() >= before.len());

    let dir = check_manifest(&manifest, &server.data_dir().join("backups"));
    let audit = server.admin_get("/api/admin/audit-log?limit=200").await;
    let logged: Vec<&Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["legacy_action"] == "create_backup").collect();
    assert_eq!(logged.len(), 1, "{audit}");
    assert_eq!(logged[0]["resource_id"], manifest["path"], "{audit}");

    // The snapshot opens: serve a copy of it.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("ares.redb"), copy.path().join("ares.redb")).unwrap();
    let restored = TestServer::builder().data_dir(copy.path()).start();
    let listed = restored.admin_get("/api/admin/tenants").await;
    let present: HashSet<String> =
        listed["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();

    // Every write acknowledged before the backup was asked for is in it ...
    for p in &before {
        assert!(present.contains(&p.tenant_id), "tenant {} acknowledged before the backup is missing", p.tenant_id);
    }
    // ... nothing else than what was written ...
    let written: HashSet<&str> = all.iter().map(|p| p.tenant_id.as_str()).collect();
    assert!(present.iter().all(|id| written.contains(id.as_str())), "unknown tenants in the snapshot");
    // ... and every provisioning is in it whole or not at all.
    for p in &all {
        let key = restored.v1(Method::GET, "/v1/agents", &p.raw_key).send().await.unwrap();
        if present.contains(&p.tenant_id) {
            let agents = restored.admin_get(&format!("/api/admin/tenants/{}/agents", p.tenant_id)).await;
            let names: BTreeSet<String> =
                agents["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
            assert_eq!(names, p.agents, "agents of {}", p.tenant_id);
            let listed = expect_json(key, 200).await;
            assert_eq!(listed["total"].as_u64(), Some(p.agents.len() as u64), "{listed}");
        } else {
            expect_error(key, 401, "AUTHENTICATION_FAILED").await;
            let tenant = restored.admin(Method::GET, &format!("/api/admin/tenants/{}", p.tenant_id)).send().await;
            expect_error(tenant.unwrap(), 404, "NOT_FOUND").await;
        }
    }
    // The manifest counts what the snapshot holds.
    let tables = &manifest["tables"];
    assert_eq!(tables["tenants"].as_u64(), Some(present.len() as u64), "{tables}");
    assert_eq!(tables["api_keys"].as_u64(), Some(present.len() as u64), "{tables}");
    let agents: usize = all.iter().filter(|p| present.contains(&p.tenant_id)).map(|p| p.agents.len()).sum();
    assert_eq!(tables["tenant_agents"].as_u64(), Some(agents as u64), "{tables}");
}

async fn create_tenant(server: &BinaryServer, name: &str) {
    let response = server
        .client()
        .post(server.url("/api/admin/tenants"))
        .header("x-admin-secret", server.admin_secret())
        .json(&json!({ "name": name, "tier": "free" }))
        .send()
        .await
        .unwrap();
    expect_json(response, 201).await;
}

async fn admin_get(server: &BinaryServer, path: &str) -> Value {
    let request = server.client().get(server.url(path)).header("x-admin-secret", server.admin_secret());
    expect_json(request.send().await.unwrap(), 200).await
}

/// The backup directory `ares backup` printed.
fn printed_backup(output: &CliOutput) -> PathBuf {
    let line = output.stdout.lines().find_map(|l| l.strip_prefix("backup written to "));
    PathBuf::from(line.unwrap_or_else(|| panic!("no backup path in:\n{}", output.stdout)).trim())
}

#[tokio::test]
async fn ares_backup_goes_through_the_running_server_and_copies_directly_when_none_runs() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let backups = data.join("backups");
    let args = ["--config", "ares-test.toml", "--data-dir", "data", "backup"];
    let mut server = BinaryServer::builder(root.path()).generated_secrets().start();
    create_tenant(&server, "served").await;

    // The database is held by the server: the CLI asks it (with the secret from data/secrets).
    let output = run_cli(root.path(), &args, &[]);
    assert_success(&output, "ares backup with a running server");
    let through = printed_backup(&output);
    let manifest: Value = serde_json::from_slice(&std::fs::read(through.join("manifest.json")).unwrap()).unwrap();
    check_manifest(&manifest, &backups);
    let audit = admin_get(&server, "/api/admin/audit-log").await;
    let backups_logged = |audit: &Value| -> Vec<Value> {
        audit["entries"].as_array().unwrap().iter().filter(|e| e["legacy_action"] == "create_backup").cloned().collect()
    };
    let logged = backups_logged(&audit);
    assert_eq!(logged.len(), 1, "the server made the backup: {audit}");
    assert_eq!(logged[0]["resource_id"], path_str(&through));

    // Stopped: the CLI copies the file itself.
    assert!(server.terminate().success());
    let output = run_cli(root.path(), &args, &[]);
    assert_success(&output, "ares backup without a server");
    let direct = printed_backup(&output);
    assert_ne!(direct, through);
    let manifest: Value = serde_json::from_slice(&std::fs::read(direct.join("manifest.json")).unwrap()).unwrap();
    check_manifest(&manifest, &backups);

    // Both open and hold the tenant.
    for dir in [&through, &direct] {
        let copy = tempfile::tempdir().unwrap();
        let db = copy.path().join("ares.redb");
        std::fs::copy(dir.join("ares.redb"), &db).unwrap();
        assert_eq!(tenant_names(&db), BTreeSet::from(["served".to_string()]), "{}", dir.display());
    }
    // The direct backup did not go through a server.
    let server = BinaryServer::builder(root.path()).generated_secrets().start();
    assert_eq!(backups_logged(&admin_get(&server, "/api/admin/audit-log").await).len(), 1);
}

/// A user with a token, on a binary server.
async fn user_token(server: &BinaryServer, email: &str, register: bool) -> String {
    let path = if register { "/api/auth/register" } else { "/api/auth/login" };
    let response = server
        .client()
        .post(server.url(path))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    expect_json(response, 200).await["access_token"].as_str().unwrap().to_string()
}

async fn rag(server: &BinaryServer, token: &str, path: &str, body: Value) -> Value {
    let response = server.client().post(server.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    expect_json(response, 200).await
}

/// Contents of the hits of a search in the `notes` collection.
async fn search(server: &BinaryServer, token: &str, query: &str, strategy: &str) -> Vec<String> {
    let hits =
        rag(server, token, "/api/rag/search", json!({ "collection": "notes", "query": query, "strategy": strategy }))
            .await;
    hits.as_array().unwrap().iter().map(|h| h["content"].as_str().unwrap().to_string()).collect()
}

const BEFORE_DOC: &str = "The aurora borealis glows green over the fjords of Tromso in winter.";
const AFTER_DOC: &str = "Quantum chromodynamics describes how quarks and gluons interact.";

#[tokio::test]
async fn ares_restore_puts_a_backup_back_when_stopped_rebuilds_search_and_refuses_while_serving() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let email = "restore@example.com";
    let mut server = BinaryServer::builder(root.path()).start();
    let token = user_token(&server, email, true).await;
    create_tenant(&server, "before-backup").await;
    rag(&server, &token, "/api/rag/ingest", json!({ "collection": "notes", "content": BEFORE_DOC })).await;

    let response = server
        .client()
        .post(server.url("/api/admin/backup"))
        .header("x-admin-secret", server.admin_secret())
        .send()
        .await
        .unwrap();
    let backup = check_manifest(&expect_json(response, 201).await, &data.join("backups"));

    create_tenant(&server, "after-backup").await;
    rag(&server, &token, "/api/rag/ingest", json!({ "collection": "notes", "content": AFTER_DOC })).await;
    assert_eq!(search(&server, &token, "quarks gluons", "bm25").await, [AFTER_DOC]);
    assert_eq!(search(&server, &token, "aurora borealis", "bm25").await, [BEFORE_DOC]);

    // While the server runs: refused, and nothing changes.
    let restore = ["--data-dir", "data", "restore", path_str(&backup)];
    let before = entries(&data);
    assert!(before.contains(&"search".to_string()), "{before:?}");
    let refused = run_cli(root.path(), &restore, &[]);
    assert_eq!(refused.code(), Some(1), "stdout:\n{}\nstderr:\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("ares.redb is in use by another ares process"), "{}", refused.stderr);
    assert_eq!(entries(&data), before, "a refused restore changed the data dir");
    assert_eq!(search(&server, &token, "quarks gluons", "bm25").await, [AFTER_DOC]);
    let names: Vec<Value> = admin_get(&server, "/api/admin/tenants").await["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Stopped: restored; the replaced file is kept, the derived indexes are dropped.
    assert!(server.terminate().success());
    let stopped = entries(&data);
    assert!(stopped.contains(&"search".to_string()) && stopped.contains(&"vectors".to_string()), "{stopped:?}");
    let restored = run_cli(root.path(), &restore, &[]);
    assert_success(&restored, "ares restore");
    assert!(restored.stdout.contains("search indexes will be rebuilt"), "{}", restored.stdout);
    let kept = restored
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("the replaced database was kept as "))
        .unwrap_or_else(|| panic!("no kept file in:\n{}", restored.stdout));
    // Printed as given: relative to the working directory, like --data-dir.
    let kept = root.path().join(kept.trim());
    assert_eq!(kept.parent(), Some(data.as_path()));
    assert!(kept.file_name().unwrap().to_str().unwrap().starts_with("ares.redb.before-restore-"), "{}", kept.display());
    let now = entries(&data);
    assert!(!now.contains(&"search".to_string()) && !now.contains(&"vectors".to_string()), "{now:?}");
    assert!(!now.iter().any(|n| n.ends_with(".restoring")), "{now:?}");
    // The kept file is the database as it was (with the tenant made after the backup).
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&kept, copy.path().join("kept.redb")).unwrap();
    assert_eq!(
        tenant_names(&copy.path().join("kept.redb")),
        BTreeSet::from(["before-backup".to_string(), "after-backup".to_string()])
    );

    // Started again: the backup's data, and search rebuilt from it.
    let server = BinaryServer::builder(root.path()).start();
    let names: Vec<Value> = admin_get(&server, "/api/admin/tenants").await["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("before-backup")]);
    let started = entries(&data);
    assert!(started.contains(&"search".to_string()) && started.contains(&"vectors".to_string()), "{started:?}");
    let token = user_token(&server, email, false).await;
    assert_eq!(search(&server, &token, "aurora borealis", "bm25").await, [BEFORE_DOC]);
    assert_eq!(search(&server, &token, "aurora borealis", "semantic").await, [BEFORE_DOC]);
    assert!(search(&server, &token, "quarks gluons", "bm25").await.is_empty(), "written after the backup");
}

// ---------------------------------------------------------------- safe upgrades

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/schema-v{version}.redb"))
}

/// The one `pre-migration-v<from>-to-v<to>-<time>.redb` in `data/backups`.
fn pre_migration_snapshot(data: &Path, from: u32) -> PathBuf {
    let latest = migrations::latest(MIGRATIONS);
    let files = entries(&data.join(store::PRE_MIGRATION_DIR));
    assert_eq!(files.len(), 1, "{files:?}");
    let name = &files[0];
    let stamp = name
        .strip_prefix(&format!("pre-migration-v{from}-to-v{latest}-"))
        .and_then(|rest| rest.strip_suffix(".redb"))
        .unwrap_or_else(|| panic!("unexpected snapshot name {name}"));
    assert!(!stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit()), "{name}");
    data.join(store::PRE_MIGRATION_DIR).join(name)
}

#[test]
fn migrating_an_older_file_snapshots_it_first_and_migrate_status_changes_nothing() {
    let latest = migrations::latest(MIGRATIONS);
    // Versions need not be contiguous while parallel branches reserve numbers.
    let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    for &from in versions.iter().filter(|v| **v < latest) {
        let fixture = fixture(from);
        let original = std::fs::read(&fixture).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
        let old_status = Store::inspect(&fixture).unwrap();
        let applied: Vec<u32> = old_status.iter().filter(|s| s.applied_at.is_some()).map(|s| s.version).collect();
        let expected: Vec<u32> = versions.iter().copied().filter(|v| *v <= from).collect();
        assert_eq!(applied, expected, "{}", fixture.display());

        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let db = data.join("ares.redb");
        std::fs::copy(&fixture, &db).unwrap();

        // `migrate status` lists what is pending and applies nothing.
        let status = run_cli(root.path(), &["--data-dir", "data", "migrate", "status"], &[]);
        assert_success(&status, "ares migrate status");
        for &version in &versions {
            let line = status
                .stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(&version.to_string()))
                .unwrap_or_else(|| panic!("v{from}: no line for migration {version}:\n{}", status.stdout));
            assert_eq!(line.contains("pending"), version > from, "v{from}: {line}");
        }
        assert!(std::fs::read(&db).unwrap() == original, "v{from}: migrate status modified the file");
        assert_eq!(entries(&data), ["ares.redb"], "v{from}: migrate status wrote something");

        // `migrate up` saves the old file first; the snapshot opens and still has the old schema.
        let up = run_cli(root.path(), &["--data-dir", "data", "migrate", "up"], &[]);
        assert_success(&up, "ares migrate up");
        let pending: Vec<String> = versions.iter().filter(|v| **v > from).map(|v| v.to_string()).collect();
        assert!(up.stdout.contains(&format!("applied migrations: {}", pending.join(", "))), "{}", up.stdout);
        let snapshot = pre_migration_snapshot(&data, from);
        assert_eq!(Store::inspect(&snapshot).unwrap(), old_status, "v{from}: the snapshot has the old schema");
        assert!(Store::inspect(&db).unwrap().iter().all(|s| s.applied_at.is_some()), "v{from}: migrated");

        // Up to date: nothing more to save.
        assert_success(&run_cli(root.path(), &["--data-dir", "data", "migrate", "up"], &[]), "second migrate up");
        assert_eq!(entries(&data.join(store::PRE_MIGRATION_DIR)).len(), 1, "v{from}: no snapshot without migrations");
        assert!(std::fs::read(&fixture).unwrap() == original, "the fixture itself was modified");
    }
}

#[tokio::test]
async fn serving_an_older_file_snapshots_it_before_migrating() {
    let from = 1;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(fixture(from), data.join("ares.redb")).unwrap();
    let old_status = Store::inspect(&fixture(from)).unwrap();

    let server = BinaryServer::builder(root.path()).start();
    let snapshot = pre_migration_snapshot(&data, from);
    assert_eq!(Store::inspect(&snapshot).unwrap(), old_status, "the snapshot has the old schema");
    // The migrated file serves the fixture's data.
    let listed = admin_get(&server, "/api/admin/tenants").await;
    let names: BTreeSet<&str> =
        listed["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["fixture-alpha", "fixture-beta", "fixture-gamma"]), "{listed}");
}

/// The server got its admin secret from `ADMIN_API_KEY` (as with an env file under systemd):
/// `ares backup` with the same variable goes through it and says where its secret came from;
/// without it, it says what to set — and never makes up a secret file of its own, which the
/// server would only refuse.
#[tokio::test]
async fn ares_backup_uses_the_admin_secret_the_server_has_and_never_invents_one() {
    let root = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(root.path()).start();
    create_tenant(&server, "from-env").await;
    let args = ["--config", "ares-test.toml", "--data-dir", "data", "backup"];
    let secret_file = root.path().join("data/secrets/admin_secret");
    assert!(!secret_file.exists(), "the server's secret came from its environment");

    let output = run_cli(root.path(), &args, &[("ADMIN_API_KEY", server.admin_secret())]);
    assert_success(&output, "ares backup with ADMIN_API_KEY");
    assert!(output.stderr.contains("admin secret from $ADMIN_API_KEY"), "{}", output.stderr);
    printed_backup(&output);

    let output = run_cli(root.path(), &args, &[]);
    assert_eq!(output.code(), Some(1), "{output:?}");
    assert!(output.stderr.contains("set ADMIN_API_KEY"), "{}", output.stderr);
    assert!(!secret_file.exists(), "no secret file was generated");

    let output = run_cli(root.path(), &args, &[("ADMIN_API_KEY", "not-the-servers-secret")]);
    assert_eq!(output.code(), Some(1), "{output:?}");
    assert!(output.stderr.contains("refused the admin secret from $ADMIN_API_KEY"), "{}", output.stderr);
}

/// `ares restore` given the backups directory instead of one backup lists what it holds,
/// newest first, and changes nothing.
#[tokio::test]
async fn ares_restore_of_a_directory_of_backups_lists_them() {
    let root = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::builder(root.path()).start();
    create_tenant(&server, "listed").await;
    assert!(server.terminate().success());
    let backup = ["--config", "ares-test.toml", "--data-dir", "data", "backup"];
    let first = printed_backup(&run_cli(root.path(), &backup, &[]));
    std::thread::sleep(Duration::from_millis(1100));
    let second = printed_backup(&run_cli(root.path(), &backup, &[]));

    let before = std::fs::read(root.path().join("data/ares.redb")).unwrap();
    let args = ["--config", "ares-test.toml", "--data-dir", "data", "restore", "data/backups"];
    let output = run_cli(root.path(), &args, &[]);
    assert_eq!(output.code(), Some(2), "{output:?}");
    let position = |path: &Path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        output.stdout.find(name).unwrap_or_else(|| panic!("{name} not listed:\n{}", output.stdout))
    };
    assert!(position(&second) < position(&first), "newest first:\n{}", output.stdout);
    assert!(output.stderr.contains("name one of them"), "{}", output.stderr);
    assert_eq!(std::fs::read(root.path().join("data/ares.redb")).unwrap(), before, "nothing restored");
}
