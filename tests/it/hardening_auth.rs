//! Security hardening of users and their sign-in, each test an attack as an attacker runs it:
//! free sign-ups buying unlimited upstream calls (per-user quotas), open sign-up on a public
//! server, junk emails, a login flood exhausting memory, and access tokens outliving logout.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, PASSWORD, sse_events};
use crate::harness::{BinaryServer, JWT_SECRET, TestServer, expect_error, expect_json, header};
use crate::mock_provider::{MockProvider, Script, Wire};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn post(server: &TestServer, path: &str, body: Value) -> reqwest::Response {
    server.client().post(server.url(path)).json(&body).send().await.unwrap()
}

/// `GET /api/conversations`, a JWT route that runs no model.
async fn conversations(server: &TestServer, token: &str) -> reqwest::Response {
    server.v1(Method::GET, "/api/conversations", token).send().await.unwrap()
}

fn claims_of(token: &str) -> Value {
    Value::Object(crate::auth::decode_jwt(token).1)
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

// ---- 2b: per-user quotas on every JWT route that runs a model ----

/// Two chats a day per user, tokens plentiful.
const TWO_A_DAY: &str = "[quotas.users]\nmonthly_requests = 100\nmonthly_tokens = 1000000\ndaily_requests = 2";

async fn chat(gw: &Gateway, token: &str) -> reqwest::Response {
    gw.post("/api/chat", token, &json!({ "message": "hello", "agent_type": "product" })).await
}

#[tokio::test]
async fn a_signed_up_user_cannot_chat_past_the_user_quota_even_across_a_restart() {
    let gw = Gateway::builder(Wire::OpenAi).config(TWO_A_DAY).start();
    gw.mock.set_script(Script::reply("hi").usage(3, 2));
    let attacker = gw.user().await;

    for remaining in ["1", "0"] {
        let response = chat(&gw, &attacker).await;
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some(remaining));
        assert!(header(&response, "x-ratelimit-reset").is_some());
        assert!(header(&response, "x-quota-tokens-remaining").is_some());
        expect_json(response, 200).await;
    }
    let calls_before = gw.mock.requests().len();
    let refused = chat(&gw, &attacker).await;
    assert!(header(&refused, "retry-after").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    assert_eq!(header(&refused, "x-ratelimit-remaining").as_deref(), Some("0"));
    let body = expect_error(refused, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["error"], "Daily request limit reached for your tier");
    assert_eq!(gw.mock.requests().len(), calls_before, "a refused chat must not reach the provider");

    // Routes that run no model are not metered, and another user has a quota of their own.
    let listed = conversations(&gw.server, &attacker).await;
    assert_eq!(header(&listed, "x-ratelimit-limit"), None);
    expect_json(listed, 200).await;
    let other = gw.user().await;
    expect_json(chat(&gw, &other).await, 200).await;

    // The count is durable: a restart does not hand out a fresh quota.
    let Gateway { mock, server, wire: _ } = gw;
    let server = server.restart();
    mock.set_script(Script::reply("hi").usage(3, 2));
    let response = server.v1(Method::POST, "/api/chat", &attacker).json(&json!({ "message": "again" })).send().await;
    expect_error(response.unwrap(), 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn tokens_are_settled_against_the_user_quota() {
    let gw = Gateway::builder(Wire::Anthropic)
        .config("[quotas.users]\nmonthly_requests = 100\nmonthly_tokens = 30\ndaily_requests = 100")
        .start();
    gw.mock.set_script(Script::reply("a long answer").usage(20, 15));
    let token = gw.user().await;
    let first = chat(&gw, &token).await;
    assert_eq!(header(&first, "x-quota-tokens-remaining").as_deref(), Some("30"));
    expect_json(first, 200).await;
    let refused = chat(&gw, &token).await;
    assert_eq!(header(&refused, "x-quota-tokens-remaining").as_deref(), Some("0"));
    let body = expect_error(refused, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["error"], "Monthly token quota exceeded");
}

#[tokio::test]
async fn streams_workflows_and_research_are_metered_too() {
    let one_a_day = "[quotas.users]\nmonthly_requests = 100\nmonthly_tokens = 1000000\ndaily_requests = 1";
    let gw = Gateway::builder(Wire::OpenAi).config(one_a_day).start();
    gw.mock.set_script(Script::reply("product").usage(5, 5));
    let routes: [(&str, Value); 4] = [
        ("/api/chat/stream", json!({ "message": "hello", "agent_type": "product" })),
        ("/api/workflows/default", json!({ "query": "hello" })),
        ("/api/research", json!({ "query": "why is the sky blue?", "depth": 1, "max_iterations": 1 })),
        ("/api/chat", json!({ "message": "hello", "agent_type": "product" })),
    ];
    for (path, body) in routes {
        let token = gw.user().await;
        let first = gw.post(path, &token, &body).await;
        assert_eq!(first.status(), 200, "{path}");
        assert_eq!(header(&first, "x-ratelimit-remaining").as_deref(), Some("0"), "{path}");
        if path.ends_with("stream") {
            sse_events(first).await;
        }
        let before = gw.mock.requests().len();
        expect_error(gw.post(path, &token, &body).await, 429, "RATE_LIMIT_EXCEEDED").await;
        assert_eq!(gw.mock.requests().len(), before, "{path}: refused, yet the provider was called");
    }

    // A workflow's and a stream's tokens count as well (settled after the run / at stream end).
    let tight = "[quotas.users]\nmonthly_requests = 100\nmonthly_tokens = 30\ndaily_requests = 100";
    let gw = Gateway::builder(Wire::OpenAi).config(tight).start();
    gw.mock.set_script(Script::reply("product").usage(20, 15));
    for (path, body) in [
        ("/api/workflows/default", json!({ "query": "hello" })),
        ("/api/chat/stream", json!({ "message": "hello", "agent_type": "product" })),
    ] {
        let token = gw.user().await;
        let first = gw.post(path, &token, &body).await;
        assert_eq!(first.status(), 200, "{path}");
        if path.ends_with("stream") {
            sse_events(first).await;
        }
        let body = expect_error(gw.post(path, &token, &body).await, 429, "RATE_LIMIT_EXCEEDED").await;
        assert_eq!(body["error"], "Monthly token quota exceeded", "{path}");
    }
}

#[tokio::test]
async fn rag_is_metered_when_a_remote_embedder_does_the_work() {
    let one_a_day = "[quotas.users]\nmonthly_requests = 100\nmonthly_tokens = 1000000\ndaily_requests = 1\n";
    let mock = MockProvider::start();
    let config = format!("{one_a_day}{}", crate::rag::mock_embedder_config(&mock, "ollama", 8, ""));
    let server = TestServer::builder().config(&config).start();
    let token = server.register("embedder@example.com", PASSWORD).await["access_token"].as_str().unwrap().to_string();
    let ingest = json!({ "collection": "docs", "content": "The cat sleeps on the sofa all day." });
    let first = server.v1(Method::POST, "/api/rag/ingest", &token).json(&ingest).send().await.unwrap();
    assert_eq!(header(&first, "x-ratelimit-remaining").as_deref(), Some("0"));
    expect_json(first, 200).await;
    let calls = mock.embedding_requests().len();
    assert!(calls >= 1);
    for (path, body) in
        [("/api/rag/ingest", ingest), ("/api/rag/search", json!({ "query": "cat", "collection": "docs" }))]
    {
        let refused = server.v1(Method::POST, path, &token).json(&body).send().await.unwrap();
        expect_error(refused, 429, "RATE_LIMIT_EXCEEDED").await;
    }
    assert_eq!(mock.embedding_requests().len(), calls, "refused requests reached the embedder");

    // The built-in embedder calls nobody: not metered.
    let server = TestServer::builder().config(one_a_day).start();
    let token = server.register("hash@example.com", PASSWORD).await["access_token"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let response = server.v1(Method::POST, "/api/rag/search", &token).json(&json!({ "query": "cat" })).send().await;
        let response = response.unwrap();
        assert_eq!(header(&response, "x-ratelimit-limit"), None);
        assert_ne!(response.status(), 429);
    }
}

// ---- 2b: sign-up is the operator's choice; emails are validated ----

#[tokio::test]
async fn closed_sign_up_refuses_strangers_and_the_admin_creates_users() {
    let server = TestServer::builder().config("[auth]\nregistration = \"closed\"").start();
    let stranger = json!({ "email": "mallory@example.com", "password": PASSWORD, "name": "Mallory" });
    let body = expect_error(post(&server, "/api/auth/register", stranger.clone()).await, 403, "FORBIDDEN").await;
    assert!(body["error"].as_str().unwrap().contains("Registration is closed"), "{body}");
    // Nothing was created: the stranger cannot log in.
    let login = json!({ "email": "mallory@example.com", "password": PASSWORD });
    expect_error(post(&server, "/api/auth/login", login).await, 401, "AUTHENTICATION_FAILED").await;

    // The admin route wants the admin secret.
    expect_error(post(&server, "/api/admin/users", stranger.clone()).await, 401, "AUTH_MISSING").await;
    let create = |body: Value| server.admin(Method::POST, "/api/admin/users").json(&body).send();
    let alice = json!({ "email": "alice@example.com", "password": PASSWORD, "name": "Alice" });
    let view = expect_json(create(alice.clone()).await.unwrap(), 201).await;
    let mut fields: Vec<&str> = view.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["created_at", "email", "id", "name", "updated_at"]);
    assert_eq!((view["email"].as_str(), view["name"].as_str()), (Some("alice@example.com"), Some("Alice")));
    let login = json!({ "email": "alice@example.com", "password": PASSWORD });
    let tokens = expect_json(post(&server, "/api/auth/login", login).await, 200).await;
    assert_eq!(tokens["user_id"], view["id"]);

    let duplicate = expect_error(create(alice).await.unwrap(), 409, "CONFLICT").await;
    assert_eq!(duplicate["error"], "User already exists");
    let junk = json!({ "email": "not-an-email", "password": PASSWORD, "name": "x" });
    let body = expect_error(create(junk).await.unwrap(), 422, "UNPROCESSABLE").await;
    assert_eq!(body["error"], "Invalid email address");
    let short = json!({ "email": "bob@example.com", "password": "short" });
    expect_error(create(short).await.unwrap(), 400, "INVALID_INPUT").await;

    // Audited like every admin write.
    let audit = server.admin_get("/api/admin/audit-log").await;
    let entries = audit["entries"].as_array().unwrap();
    let created: Vec<&Value> = entries.iter().filter(|e| e["resource_id"] == view["id"]).collect();
    assert_eq!(created.len(), 1, "{audit}");
    assert_eq!(created[0]["action"], "user.created");
}

#[tokio::test]
async fn a_server_reachable_from_elsewhere_is_closed_to_sign_up_unless_the_operator_opens_it() {
    let root = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(root.path()).config("[server]\nhost = \"0.0.0.0\"").start();
    let stderr = server.wait_for_stderr("user sign-up");
    assert!(stderr.contains("closed"), "start-up must say sign-up is closed:\n{stderr}");
    let stranger = json!({ "email": "mallory@example.com", "password": PASSWORD });
    let response = server.client().post(server.url("/api/auth/register")).json(&stranger).send().await.unwrap();
    expect_error(response, 403, "FORBIDDEN").await;
    drop(server);

    let root = tempfile::tempdir().unwrap();
    let config = "[server]\nhost = \"0.0.0.0\"\n[auth]\nregistration = \"open\"";
    let server = BinaryServer::builder(root.path()).config(config).start();
    let response = server.client().post(server.url("/api/auth/register")).json(&stranger).send().await.unwrap();
    expect_json(response, 200).await;
}

#[tokio::test]
async fn registration_refuses_what_is_not_an_email_address() {
    let server = TestServer::start();
    for email in ["not-an-email", "a@b", "@example.com", "a b@example.com", "a@@example.com", "a@example..com"] {
        let response = post(&server, "/api/auth/register", json!({ "email": email, "password": PASSWORD })).await;
        let body = expect_error(response, 422, "UNPROCESSABLE").await;
        assert_eq!(body, json!({ "error": "Invalid email address", "code": "UNPROCESSABLE" }), "{email:?}");
    }
    server.register("o'brien+tag@mail.example.co.uk", PASSWORD).await;
}

// ---- 8: logout ends access tokens; nbf ----

#[tokio::test]
async fn an_access_token_of_a_logged_out_session_is_refused_even_after_a_restart() {
    let server = TestServer::start();
    let stolen = server.register("victim@example.com", PASSWORD).await;
    let access = stolen["access_token"].as_str().unwrap().to_string();
    let refresh = stolen["refresh_token"].as_str().unwrap().to_string();
    // A second access token of the same session, from a refresh.
    let refreshed =
        expect_json(post(&server, "/api/auth/refresh", json!({ "refresh_token": refresh })).await, 200).await;
    let refreshed = refreshed["access_token"].as_str().unwrap().to_string();
    let login = json!({ "email": "victim@example.com", "password": PASSWORD });
    let other = expect_json(post(&server, "/api/auth/login", login).await, 200).await;
    let other = other["access_token"].as_str().unwrap().to_string();
    for token in [&access, &refreshed, &other] {
        expect_json(conversations(&server, token).await, 200).await;
    }

    expect_json(post(&server, "/api/auth/logout", json!({ "refresh_token": refresh })).await, 200).await;
    for token in [&access, &refreshed] {
        let body = expect_error(conversations(&server, token).await, 401, "AUTH_INVALID_TOKEN").await;
        assert_eq!(body["error"], "Invalid or expired token");
    }
    // The user's other session is untouched.
    expect_json(conversations(&server, &other).await, 200).await;
    assert!(claims_of(&access)["sid"].is_string(), "{}", claims_of(&access));

    let server = server.restart();
    for token in [&access, &refreshed] {
        expect_error(conversations(&server, token).await, 401, "AUTH_INVALID_TOKEN").await;
    }
    expect_json(conversations(&server, &other).await, 200).await;
    // A session id does not transfer to another user.
    let mallory = server.register("mallory@example.com", PASSWORD).await;
    let mut forged = claims_of(other.as_str());
    forged["sub"] = mallory["user_id"].clone();
    let forged = sign(&forged);
    expect_error(conversations(&server, &forged).await, 401, "AUTH_INVALID_TOKEN").await;
}

#[tokio::test]
async fn a_token_that_is_not_valid_yet_is_refused() {
    let server = TestServer::start();
    let user = server.register("early@example.com", PASSWORD).await;
    let claims = |nbf: i64| json!({ "sub": user["user_id"], "email": "early@example.com", "iat": now(), "exp": now() + 7200, "nbf": nbf });
    expect_error(conversations(&server, &sign(&claims(now() + 3600))).await, 401, "AUTH_INVALID_TOKEN").await;
    expect_json(conversations(&server, &sign(&claims(now() - 5))).await, 200).await;
}

// ---- 5b: a login flood is shed with 503 and its memory is given back ----

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn server_pid(server: &BinaryServer) -> u32 {
    let file: Value = serde_json::from_slice(&std::fs::read(server.data_dir().join("server.json")).unwrap()).unwrap();
    u32::try_from(file["pid"].as_u64().unwrap()).unwrap()
}

/// Concurrent clients of the flood, and how long it lasts.
const FLOOD_CLIENTS: usize = 200;
const FLOOD: Duration = Duration::from_secs(15);
/// Quiet time before measuring: longer than a hashing thread keeps an idle buffer (5 s).
const SETTLE: Duration = Duration::from_secs(7);
const MIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_is_refused_at_once_and_leaves_no_memory_behind() {
    let root = tempfile::tempdir().unwrap();
    // The documented defaults: 4 hashes at once, 64 waiting. The IP limiter is off, as it would
    // be against a botnet.
    let server = BinaryServer::builder(root.path()).config("[server]\nrate_limit_per_second = 0").start();
    let pid = server_pid(&server);
    let url = server.url("/api/auth/login");
    let register = json!({ "email": "real@example.com", "password": PASSWORD });
    expect_json(server.client().post(server.url("/api/auth/register")).json(&register).send().await.unwrap(), 200)
        .await;
    tokio::time::sleep(SETTLE).await;
    let before = rss_kib(pid);

    let flood_client = crate::harness::http_client();
    let deadline = Instant::now() + FLOOD;
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        while Instant::now() < deadline {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    });
    let clients = (0..FLOOD_CLIENTS).map(|i| {
        let (client, url) = (flood_client.clone(), url.clone());
        tokio::spawn(async move {
            let body = json!({ "email": format!("bogus-{i}@example.com"), "password": "not the password" });
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = client.post(&url).json(&body).send().await.unwrap();
                let retry_after = header(&response, "retry-after");
                seen.push((response.status().as_u16(), sent.elapsed(), retry_after));
            }
            seen
        })
    });
    let results: Vec<_> = futures_util::future::join_all(clients).await.into_iter().flat_map(Result::unwrap).collect();
    let peak = sampler.await.unwrap();
    drop(flood_client);

    let refused: Vec<&(u16, Duration, Option<String>)> = results.iter().filter(|r| r.0 == 503).collect();
    let failed = results.iter().filter(|r| r.0 == 401).count();
    assert!(results.iter().all(|r| r.0 == 401 || r.0 == 503), "unexpected statuses");
    assert!(!refused.is_empty(), "a flood of {} logins was never refused (401: {failed})", results.len());
    assert!(refused.iter().all(|r| r.2.as_deref() == Some("1")), "503 without Retry-After");
    // At once: the median refusal is far quicker than waiting behind the flood's queue.
    let mut latencies: Vec<Duration> = refused.iter().map(|r| r.1).collect();
    latencies.sort_unstable();
    let median = latencies[latencies.len() / 2];
    assert!(median < Duration::from_millis(500), "median 503 took {median:?}");

    tokio::time::sleep(SETTLE).await;
    let after = rss_kib(pid);
    println!(
        "login flood: {} requests ({failed} x 401, {} x 503, median 503 {median:?}); RSS before {} MiB, peak {} MiB, after {} MiB",
        results.len(),
        refused.len(),
        before / MIB,
        peak / MIB,
        after / MIB
    );
    assert!(after <= before + 64 * MIB, "RSS {} MiB after the flood, {} MiB before", after / MIB, before / MIB);
    assert!(peak <= before + 256 * MIB, "RSS peaked at {} MiB, {} MiB before", peak / MIB, before / MIB);

    // Real users still sign in.
    let real = json!({ "email": "real@example.com", "password": PASSWORD });
    expect_json(server.client().post(&url).json(&real).send().await.unwrap(), 200).await;
}

/// Someone guessing the admin secret or API keys shows at the default log level, once per
/// address per minute (a guessing loop cannot flood the log), and the guesses never appear.
#[tokio::test]
async fn failed_admin_secret_and_api_key_attempts_are_one_warn_line_per_address_per_minute() {
    let root = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(root.path()).start();
    for i in 0..3 {
        let response = server
            .client()
            .get(server.url("/api/admin/tenants"))
            .header("x-admin-secret", format!("guessed-secret-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    for i in 0..2 {
        let key = format!("ares_{}", format!("{i:x}").repeat(64).chars().take(64).collect::<String>());
        let response = server.client().get(server.url("/v1/agents")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    // A request that succeeds afterwards proves the earlier lines had time to be written.
    let ok = server.client().get(server.url("/api/admin/tenants")).header("x-admin-secret", server.admin_secret());
    assert_eq!(ok.send().await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.stderr();
        if log.contains("failed authentication") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("failed authentication")).collect();
    assert_eq!(lines.len(), 1, "five failures from one address in a minute: one line\n{log}");
    assert!(lines[0].contains("WARN") && lines[0].contains("wrong admin secret") && lines[0].contains("127.0.0.1"));
    assert!(!log.contains("guessed-secret") && !log.contains("ares_0000"), "no guess is logged:\n{log}");
}
