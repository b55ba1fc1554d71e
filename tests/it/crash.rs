//! Durability of acknowledged writes: under a stream of concurrent tenant creations, kill the
//! real binary (SIGKILL) or stop it (SIGTERM), restart on the same data dir, and check that
//! every tenant answered with 201 is there — with its audit entry, and nothing invented.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::BinaryServer;

const WORKERS: usize = 8;

/// What the load saw, shared by its workers.
#[derive(Default)]
struct Tally {
    attempted: HashSet<String>,
    acked: Vec<String>,
    /// Clean refusals while stopping (503 JSON).
    refused: Vec<String>,
    /// Anything else: a wrong status before or after the signal, or a transport error before it.
    unexpected: Vec<String>,
}

/// Workers creating uniquely named tenants in a loop until the server goes away.
struct Load {
    tally: Arc<Mutex<Tally>>,
    /// Set just before the signal: from then on, transport errors are expected.
    signaled: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &BinaryServer) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let signaled = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|worker| {
                let client = server.client().clone();
                let url = server.url("/api/admin/tenants");
                let secret = server.admin_secret().to_string();
                let tally = tally.clone();
                let signaled = signaled.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let name = format!("load-{worker}-{i}");
                        tally.lock().unwrap().attempted.insert(name.clone());
                        let sent = client
                            .request(Method::POST, &url)
                            .header("x-admin-secret", &secret)
                            .json(&json!({ "name": name, "tier": "pro" }))
                            .send()
                            .await;
                        let stopping = signaled.load(Ordering::SeqCst);
                        let mut seen = tally.lock().unwrap();
                        match sent {
                            Ok(response) if response.status() == 201 => seen.acked.push(name),
                            Ok(response) if stopping && response.status() == 503 => seen.refused.push(name),
                            Ok(response) => seen.unexpected.push(format!("{name}: HTTP {}", response.status())),
                            Err(_) if stopping => return,
                            Err(e) => {
                                seen.unexpected.push(format!("{name}: {e}"));
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        Load { tally, signaled, workers }
    }

    /// Wait until `count` creations were acknowledged (within a hang guard).
    async fn wait_for_acks(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let tally = self.tally.lock().unwrap();
                assert!(tally.unexpected.is_empty(), "failures under load: {:?}", tally.unexpected);
                if tally.acked.len() >= count {
                    return;
                }
                assert!(Instant::now() < deadline, "only {} acknowledgements after 60 s", tally.acked.len());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Call right before signalling the server.
    fn signaling(&self) {
        self.signaled.store(true, Ordering::SeqCst);
    }

    /// Wait for every worker to notice the server is gone.
    async fn finish(self) -> Tally {
        for worker in self.workers {
            worker.await.unwrap();
        }
        Arc::try_unwrap(self.tally).ok().unwrap().into_inner().unwrap()
    }
}

/// Every tenant name on the server, asserting no name appears twice.
async fn stored_tenants(server: &BinaryServer) -> HashSet<String> {
    let response =
        server.client().get(server.url("/api/admin/tenants")).header("x-admin-secret", server.admin_secret());
    let body: Value = response.send().await.unwrap().json().await.unwrap();
    let names: Vec<String> =
        body["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    let unique: HashSet<String> = names.iter().cloned().collect();
    assert_eq!(unique.len(), names.len(), "duplicate tenant names after recovery");
    unique
}

/// The tenant names of every `tenant.created` audit entry, across all pages.
async fn audited_tenants(server: &BinaryServer) -> HashSet<String> {
    let mut names = HashSet::new();
    for offset in (0..).step_by(200) {
        let url = server.url(&format!("/api/admin/audit-log?limit=200&offset={offset}"));
        let response = server.client().get(url).header("x-admin-secret", server.admin_secret());
        let body: Value = response.send().await.unwrap().json().await.unwrap();
        let entries = body["entries"].as_array().unwrap();
        if entries.is_empty() {
            return names;
        }
        for entry in entries {
            assert_eq!(entry["action"], "tenant.created");
            names.insert(entry["details"]["tenant_name"].as_str().unwrap().to_string());
        }
    }
    unreachable!("the offsets are unbounded")
}

/// After a restart: acknowledged ⊆ stored ⊆ attempted, and each stored tenant was audited in
/// the same transaction.
async fn check_recovered(server: &BinaryServer, tally: &Tally) {
    let stored = stored_tenants(server).await;
    let missing: Vec<&String> = tally.acked.iter().filter(|name| !stored.contains(*name)).collect();
    assert!(missing.is_empty(), "{} acknowledged tenants lost: {missing:?}", missing.len());
    let invented: Vec<&String> = stored.iter().filter(|name| !tally.attempted.contains(*name)).collect();
    assert!(invented.is_empty(), "tenants nobody created: {invented:?}");
    assert_eq!(audited_tenants(server).await, stored, "tenant rows and audit entries disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_write_load_loses_no_acknowledged_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::builder(dir.path()).start();
    let load = Load::start(&server);
    load.wait_for_acks(300).await;
    load.signaling();
    let status = server.kill();
    assert!(!status.success(), "{status:?}");
    let tally = load.finish().await;
    assert!(tally.unexpected.is_empty(), "{:?}", tally.unexpected);
    assert!(tally.refused.is_empty(), "a killed server refuses nothing: {:?}", tally.refused);
    let unanswered = tally.attempted.len() - tally.acked.len();
    assert!(unanswered >= 1, "the kill should have caught requests in flight");

    let server = BinaryServer::builder(dir.path()).start();
    check_recovered(&server, &tally).await;
    // And the recovered server takes new writes.
    let response = server
        .client()
        .post(server.url("/api/admin/tenants"))
        .header("x-admin-secret", server.admin_secret())
        .json(&json!({ "name": "after-crash", "tier": "dev" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_write_load_drains_and_keeps_every_acknowledged_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::builder(dir.path()).start();
    let load = Load::start(&server);
    load.wait_for_acks(200).await;
    load.signaling();
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "a graceful stop under load exits 0");
    assert!(!server.data_dir().join("server.json").exists());
    let tally = load.finish().await;
    assert!(tally.unexpected.is_empty(), "in-flight requests must complete or fail cleanly: {:?}", tally.unexpected);

    let server = BinaryServer::builder(dir.path()).start();
    check_recovered(&server, &tally).await;
}
