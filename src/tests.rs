//! Whole-server tests that need what the integration tests (tests/it, which start the `ares`
//! binary) cannot reach: here, a store whose disk fills on demand. The server is the real one
//! (`assemble` and `run`, as `ares serve` starts it) on a loopback port, spoken to over HTTP,
//! with a real HTTP provider in front of it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::auth::secrets::{SecretSource, Secrets};
use crate::store::testing::FillingDisk;

const ADMIN_SECRET: &str = "full-disk-admin-secret";

/// An OpenAI-wire provider that answers every chat at once and counts the calls it got.
async fn provider() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let answer = json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
                        "choices": [{ "index": 0, "finish_reason": "stop",
                                      "message": { "role": "assistant", "content": "stored?" } }],
                        "usage": { "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7 }
                    });
                    let response = hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(answer.to_string())))
                        .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (format!("http://{address}/v1"), calls)
}

async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_disk_fills_refuses_chats_before_their_provider_call_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (provider_url, provider_calls) = provider().await;
    let toml = format!(
        "[server]\nrate_limit_per_second = 0\n\n[[providers]]\nname = \"local\"\ntype = \"openai\"\n\
         base_url = \"{provider_url}\"\n\n[[models]]\nname = \"fast\"\nprovider = \"local\"\n\
         model_id = \"m\"\ntier = \"fast\"\n"
    );
    let no_env = |_: &str| None;
    let config = crate::config::load_str(&toml, "full-disk.toml", &no_env).unwrap().config;
    let secrets = Secrets {
        jwt_secret: "full-disk-jwt-secret-full-disk-jwt-secret".into(),
        jwt_source: SecretSource::Env("JWT_SECRET".into()),
        admin_secret: ADMIN_SECRET.into(),
        admin_source: SecretSource::Env("ADMIN_API_KEY".into()),
    };
    let path = dir.path().join(crate::store::DB_FILE);
    let (disk, full) = FillingDisk::open(&path);
    let store = crate::store::Store::on_backend(disk, &path).unwrap();
    let app = Arc::new(crate::assemble(config, dir.path(), store, &secrets, &no_env).unwrap().app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::run(listener, app, async move {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let provision = |name: &str| {
        http.post(format!("{base}/api/admin/provision-client"))
            .header("X-Admin-Secret", ADMIN_SECRET)
            .json(&json!({ "name": name, "tier": "enterprise", "product_type": "generic", "api_key_name": name }))
            .send()
    };
    let chat = |key: &str| {
        http.post(format!("{base}/v1/chat"))
            .bearer_auth(key)
            .json(&json!({ "message": "Will this be kept?", "agent_type": "product" }))
            .send()
    };
    let (status, provisioned) = body(provision("before").await.unwrap()).await;
    assert_eq!(status, 201, "{provisioned}");
    let key = provisioned["raw_api_key"].as_str().unwrap().to_string();
    let (status, answer) = body(chat(&key).await.unwrap()).await;
    assert_eq!((status, answer["response"].as_str()), (200, Some("stored?")), "{answer}");
    assert_eq!(provider_calls.load(Ordering::SeqCst), 1);

    full.store(true, Ordering::SeqCst);
    // The next write meets the full disk (an acknowledged-after-fsync one here; the usage
    // flush may meet it first, with the same outcome).
    let (status, refused) = body(provision("during").await.unwrap()).await;
    assert_eq!((status, &refused["code"]), (503, &json!("SERVICE_UNAVAILABLE")), "{refused}");
    assert_eq!(refused["error"], "The server cannot store data after a storage failure", "{refused}");

    // Freeing the space does not reopen the file: only a restart does, and until then a chat
    // is refused before its provider call, whose turn, run and usage could not be kept.
    full.store(false, Ordering::SeqCst);
    let (status, refused) = body(chat(&key).await.unwrap()).await;
    assert_eq!((status, &refused["code"]), (503, &json!("SERVICE_UNAVAILABLE")), "{refused}");
    assert_eq!(provider_calls.load(Ordering::SeqCst), 1, "the provider was called for a chat that cannot be kept");

    // The operator is told why.
    let health =
        http.get(format!("{base}/health/detailed")).header("X-Admin-Secret", ADMIN_SECRET).send().await.unwrap();
    let (status, health) = body(health).await;
    assert_eq!((status, &health["status"]), (200, &json!("degraded")), "{health}");
    let cause = health["checks"]["database"]["error"].as_str().unwrap_or_default();
    assert!(cause.contains("No space left on device"), "{health}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    // A restart (here: the file reopened on a disk with room) recovers the last durable commit:
    // the client provisioned before the disk filled is there, the refused one is not.
    let store = crate::store::Store::open(&path, crate::store::MigrationPolicy::Apply).unwrap();
    let tenants = store.read_now(crate::store::tenants::list).unwrap();
    let names: Vec<&str> = tenants.iter().map(|t| t.tenant.name.as_str()).collect();
    assert_eq!(names, ["before"]);
}
