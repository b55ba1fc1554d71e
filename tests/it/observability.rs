//! Observability: `GET /metrics` (Prometheus text format, admin secret or `[metrics] public`,
//! optional per-tenant labels), the request log (`GET /api/admin/requests`, `GET /v1/requests`:
//! one record per API request, filters, cursor pages, tenant isolation, retention pruning) and
//! OTLP/HTTP trace export (a SERVER span per request, a CLIENT span per upstream call, W3C
//! `traceparent`, never message content).
//!
//! Everything goes through real HTTP against a real server with mock providers behind it: an
//! OpenAI-compatible one (`obs-openai`, model `obs-fast`) and an Anthropic one (`obs-anthropic`,
//! model `obs-claude`), so provider and model names can be told apart in every record. The
//! metrics are read with a small parser of the text format written here, which also checks that
//! the whole rendering parses. Traces go to a tiny OTLP receiver written here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ares::store::request_log::{self, RequestLogRecord};
use ares::store::{self, MigrationPolicy, Store};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{KEY_ENV, PROVIDER_KEY, SseReader, sse_events};
use crate::harness::{StubServer, TestServer, expect_error, expect_json, header};
use crate::mock_provider::{MockProvider, Script, Wire};

/// Hang guard for what settles in the background (a stream's record, an export, a pruning
/// pass, a deploy's counter); not a performance assertion.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

const OPENAI_PROVIDER: &str = "obs-openai";
const ANTHROPIC_PROVIDER: &str = "obs-anthropic";
/// Served by [`OPENAI_PROVIDER`] under [`FAST_UPSTREAM_ID`].
const FAST_MODEL: &str = "obs-fast";
const FAST_UPSTREAM_ID: &str = "fast-upstream-id";
/// Served by [`ANTHROPIC_PROVIDER`] under [`CLAUDE_UPSTREAM_ID`].
const CLAUDE_MODEL: &str = "obs-claude";
const CLAUDE_UPSTREAM_ID: &str = "claude-upstream-id";

/// The fields of a request log item, exactly.
const RECORD_FIELDS: [&str; 21] = [
    "timestamp",
    "request_id",
    "route",
    "method",
    "status",
    "duration_ms",
    "principal",
    "tenant_id",
    "user_id",
    "api_key_prefix",
    "agent",
    "model",
    "provider",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_usd",
    "ttft_ms",
    "error_code",
    "error",
];

// ---------------------------------------------------------------- the rig

/// The `[[providers]]` and `[[models]]` of every server here: one retry after a failure, with
/// backoffs of a few milliseconds, and circuits that never open within a test; `provider_keys`
/// (TOML lines) are added to both providers.
fn providers_config(openai: &MockProvider, anthropic: &MockProvider, provider_keys: &str) -> String {
    let provider = |name: &str, wire: Wire, base_url: String| {
        format!(
            r#"
[[providers]]
name = "{name}"
type = "{kind}"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
connect_timeout_secs = 2
read_timeout_secs = 10
max_retries = 1
retry_initial_ms = 1
retry_max_ms = 5
breaker_failures = 50
{provider_keys}
"#,
            kind = wire.kind(),
        )
    };
    format!(
        r#"{}{}
[[models]]
name = "{FAST_MODEL}"
provider = "{OPENAI_PROVIDER}"
model_id = "{FAST_UPSTREAM_ID}"
tier = "balanced"

[[models]]
name = "{CLAUDE_MODEL}"
provider = "{ANTHROPIC_PROVIDER}"
model_id = "{CLAUDE_UPSTREAM_ID}"
tier = "fast"
"#,
        provider(OPENAI_PROVIDER, Wire::OpenAi, openai.base_url(Wire::OpenAi)),
        provider(ANTHROPIC_PROVIDER, Wire::Anthropic, anthropic.base_url(Wire::Anthropic)),
    )
}

/// A server with both mock providers behind it. The mocks are dropped first, so a call still
/// in flight fails at once instead of holding up the server's shutdown.
struct Rig {
    openai: MockProvider,
    anthropic: MockProvider,
    server: TestServer,
}

/// A provisioned tenant: its id, raw API key and the key's public prefix.
struct Tenant {
    id: String,
    key: String,
    prefix: String,
}

impl Rig {
    /// Both providers plus `extra` config.
    fn start(extra: &str) -> Rig {
        Rig::start_with("", extra)
    }

    /// Both providers, each with `provider_keys` besides the usual ones, plus `extra` config.
    fn start_with(provider_keys: &str, extra: &str) -> Rig {
        let openai = MockProvider::start();
        let anthropic = MockProvider::start();
        let server = TestServer::builder()
            .env(KEY_ENV, PROVIDER_KEY)
            .config(&providers_config(&openai, &anthropic, provider_keys))
            .config(extra)
            .start();
        Rig { openai, anthropic, server }
    }

    async fn tenant(&self, name: &str, tier: &str) -> Tenant {
        provision(&self.server, name, tier).await
    }

    /// A request with `bearer` and, when given, the caller's `X-Request-Id`.
    fn request(&self, method: Method, path: &str, bearer: &str, request_id: Option<&str>) -> reqwest::RequestBuilder {
        with_id(self.server.v1(method, path, bearer), request_id)
    }

    async fn post(&self, path: &str, bearer: &str, request_id: Option<&str>, body: &Value) -> reqwest::Response {
        self.request(Method::POST, path, bearer, request_id).json(body).send().await.expect("POST request")
    }

    /// `POST /v1/chat/completions`, not streamed.
    async fn completion(&self, key: &str, request_id: &str, model: &str, message: &str) -> reqwest::Response {
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": message }] });
        self.post("/v1/chat/completions", key, Some(request_id), &body).await
    }

    /// `POST /v1/chat/completions` with `stream: true`; returns the streamed text after
    /// reading the whole stream.
    async fn stream(&self, key: &str, request_id: &str, model: &str, message: &str) -> String {
        let body = json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": message }] });
        let response = self.post("/v1/chat/completions", key, Some(request_id), &body).await;
        assert_eq!(header(&response, "x-request-id").as_deref(), Some(request_id));
        let events = sse_events(response).await;
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{events:?}");
        events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .filter_map(|e| e.json()["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .collect()
    }

    /// `POST /v1/messages` the way Anthropic's SDKs send it (the key as `x-api-key`).
    async fn messages(&self, key: &str, request_id: &str, model: &str, message: &str) -> reqwest::Response {
        let body = json!({ "model": model, "max_tokens": 64, "messages": [{ "role": "user", "content": message }] });
        self.server
            .client()
            .post(self.server.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("x-request-id", request_id)
            .json(&body)
            .send()
            .await
            .expect("POST /v1/messages")
    }
}

fn with_id(builder: reqwest::RequestBuilder, request_id: Option<&str>) -> reqwest::RequestBuilder {
    match request_id {
        Some(id) => builder.header("x-request-id", id),
        None => builder,
    }
}

/// Provision a `generic` tenant on `tier` through the admin API.
async fn provision(server: &TestServer, name: &str, tier: &str) -> Tenant {
    let provisioned = server.provision(name, tier, "generic").await;
    let text =
        |field: &str| provisioned[field].as_str().unwrap_or_else(|| panic!("no {field} in {provisioned}")).to_string();
    Tenant { id: text("tenant_id"), key: text("raw_api_key"), prefix: text("api_key_prefix") }
}

/// A request id no other request uses.
fn fresh_id(label: &str) -> String {
    format!("obs-{label}-{}", uuid::Uuid::new_v4().simple())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// `2026-03-13T14:22:00.123Z` for Unix milliseconds: the request log's timestamp format.
fn rfc3339_millis(at_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).unwrap();
    at.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap()
}

// ---------------------------------------------------------------- request log helpers

/// One page of `GET <path>` with `params`, asserting 200 and the page's shape.
async fn page(request: reqwest::RequestBuilder, params: &[(&str, &str)]) -> (Vec<Value>, Option<String>) {
    let body = expect_json(request.query(params).send().await.expect("list requests"), 200).await;
    let mut keys: Vec<&String> = body.as_object().unwrap_or_else(|| panic!("not an object: {body}")).keys().collect();
    keys.sort();
    assert_eq!(keys, ["next_cursor", "requests"], "{body}");
    let items = body["requests"].as_array().unwrap_or_else(|| panic!("no requests array: {body}")).clone();
    for item in &items {
        assert_record_shape(item);
    }
    let next = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("next_cursor is neither a string nor null: {other}"),
    };
    (items, next)
}

/// One page of the admin's request log.
async fn admin_page(server: &TestServer, params: &[(&str, &str)]) -> (Vec<Value>, Option<String>) {
    page(server.admin(Method::GET, "/api/admin/requests"), params).await
}

/// One page of a tenant's own request log.
async fn tenant_page(server: &TestServer, key: &str, params: &[(&str, &str)]) -> (Vec<Value>, Option<String>) {
    page(server.v1(Method::GET, "/v1/requests", key), params).await
}

/// Every record the admin sees with `params`, newest first (pages of 500).
async fn admin_all(server: &TestServer, params: &[(&str, &str)]) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut query: Vec<(&str, &str)> = params.to_vec();
        query.push(("limit", "500"));
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let (items, next) = admin_page(server, &query).await;
        all.extend(items);
        match next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("more than 100 pages of request log");
}

/// The request ids of `records`, in order.
fn ids_of(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap_or_else(|| panic!("no request_id: {r}")).to_string())
        .collect()
}

/// Poll the admin's log (with `params`) until it holds a record for each of `ids`; returns them
/// by id. A record is written when its request is over, a stream's when its last event is out.
async fn wait_records(server: &TestServer, params: &[(&str, &str)], ids: &[&str]) -> HashMap<String, Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let records = admin_all(server, params).await;
        let by_id: HashMap<String, Value> =
            records.iter().map(|r| (r["request_id"].as_str().unwrap_or_default().to_string(), r.clone())).collect();
        let missing: Vec<&&str> = ids.iter().filter(|id| !by_id.contains_key(**id)).collect();
        if missing.is_empty() {
            return by_id;
        }
        assert!(Instant::now() < deadline, "the request log never showed {missing:?}; it has {:?}", ids_of(&records));
        tokio::time::sleep(POLL).await;
    }
}

/// Every documented field and no other, with its JSON type; the timestamp in RFC 3339 with
/// milliseconds and `Z`.
fn assert_record_shape(record: &Value) {
    let object = record.as_object().unwrap_or_else(|| panic!("a record is not an object: {record}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected: Vec<&str> = RECORD_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{record}");

    let timestamp = record["timestamp"].as_str().unwrap_or_else(|| panic!("timestamp: {record}"));
    let bytes = timestamp.as_bytes();
    assert!(
        bytes.len() == 24 && bytes[19] == b'.' && bytes[20..23].iter().all(u8::is_ascii_digit) && bytes[23] == b'Z',
        "timestamp {timestamp:?} is not RFC 3339 with milliseconds and Z"
    );
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("timestamp {timestamp:?} is not RFC 3339: {e}"));
    for field in ["request_id", "route", "method", "principal"] {
        assert!(record[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {record}");
    }
    for field in ["status", "attempts", "input_tokens", "output_tokens"] {
        assert!(record[field].is_u64(), "{field}: {record}");
    }
    assert!(record["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "duration_ms: {record}");
    for field in ["tenant_id", "user_id", "api_key_prefix", "agent", "model", "provider", "error_code", "error"] {
        assert!(record[field].is_null() || record[field].is_string(), "{field}: {record}");
    }
    assert!(record["ttft_ms"].is_null() || record["ttft_ms"].as_f64().is_some_and(|t| t >= 0.0), "ttft_ms: {record}");
    assert!(["anonymous", "admin", "user", "tenant"].contains(&record["principal"].as_str().unwrap_or_default()));
}

/// Assert that `record` has the `expected` values (a JSON object of some of its fields).
fn assert_fields(record: &Value, expected: &Value) {
    for (field, value) in expected.as_object().unwrap_or_else(|| panic!("expected fields: {expected}")) {
        assert_eq!(&record[field], value, "field {field} of {record}");
    }
}

/// Unix milliseconds of a record's timestamp.
fn timestamp_ms(record: &Value) -> i64 {
    let text = record["timestamp"].as_str().unwrap_or_else(|| panic!("timestamp: {record}"));
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

// ---------------------------------------------------------------- request log tests

#[tokio::test]
async fn every_chat_dialect_and_a_stream_are_logged_with_every_field() {
    let rig = Rig::start("");
    let tenant = rig.tenant("logged", "pro").await;
    // The prefix the log names a key by is the one the admin API shows for it.
    let keys = rig.server.admin_get(&format!("/api/admin/tenants/{}/api-keys", tenant.id)).await;
    assert_eq!(keys["keys"][0]["prefix"], tenant.prefix.as_str(), "{keys}");
    assert!(tenant.key.starts_with(&tenant.prefix), "{} / {}", tenant.key, tenant.prefix);
    let before = now_ms();

    // ARES' own dialect, with a platform agent.
    let v1_chat = fresh_id("v1-chat");
    rig.openai.enqueue(Script::reply("ARES dialect answer.").usage(21, 4));
    let body = json!({ "message": "hi", "agent_type": "product", "model": FAST_MODEL });
    let response = rig.post("/v1/chat", &tenant.key, Some(&v1_chat), &body).await;
    assert_eq!(header(&response, "x-request-id").as_deref(), Some(v1_chat.as_str()));
    expect_json(response, 200).await;

    // The OpenAI dialect; the upstream fails once with 503 and the retry answers.
    let retried = fresh_id("openai-retried");
    rig.openai.enqueue(Script::error(503, "overloaded for a moment"));
    rig.openai.enqueue(Script::reply("Answer after a retry.").usage(13, 3));
    let response = rig.completion(&tenant.key, &retried, FAST_MODEL, "hello").await;
    assert_eq!(header(&response, "x-ares-attempts").as_deref(), Some("2"));
    expect_json(response, 200).await;

    // The Anthropic dialect, on the Anthropic upstream.
    let messages = fresh_id("anthropic");
    rig.anthropic.enqueue(Script::reply("Messages answer.").usage(8, 2));
    let response = rig.messages(&tenant.key, &messages, CLAUDE_MODEL, "hello there").await;
    assert_eq!(expect_json(response, 200).await["type"], "message");

    // A stream, slow enough that its first token comes well before its end.
    let streamed = fresh_id("stream");
    let reply = "Streamed words arrive one by one.";
    rig.anthropic.enqueue(Script::reply(reply).usage(30, 6).chunk_delay(Duration::from_millis(15)));
    assert_eq!(rig.stream(&tenant.key, &streamed, CLAUDE_MODEL, "stream please").await, reply);

    // An error the client saw (ARES' dialect: `error` and `code`).
    let refused = fresh_id("refused");
    let body = json!({ "message": "hi", "agent_type": "product", "model": "no-such-model" });
    let response = rig.post("/v1/chat", &tenant.key, Some(&refused), &body).await;
    let refused_status = response.status().as_u16();
    let refused_body: Value = response.json().await.unwrap();
    assert!((400..500).contains(&refused_status), "{refused_status}: {refused_body}");

    // No X-Request-Id: the generated one, echoed in the response, names the record.
    let response = rig.request(Method::GET, "/v1/usage", &tenant.key, None).send().await.unwrap();
    let generated = header(&response, "x-request-id").expect("a generated X-Request-Id");
    expect_json(response, 200).await;

    // The other principals: the operator, nobody, a user.
    let admin_call = fresh_id("admin");
    let path = format!("/api/admin/tenants/{}/usage", tenant.id);
    let response = with_id(rig.server.admin(Method::GET, &path), Some(&admin_call)).send().await.unwrap();
    expect_json(response, 200).await;
    let anonymous = fresh_id("anonymous");
    let response = with_id(rig.server.get("/health"), Some(&anonymous)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let unmatched = fresh_id("unmatched");
    let response = with_id(rig.server.get("/no/such/route"), Some(&unmatched)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let registered = rig.server.register("logged-user@example.com", "correct-horse-battery").await;
    let user_token = registered["access_token"].as_str().unwrap();
    let user_id = registered["user_id"].as_str().unwrap_or_else(|| panic!("no user_id: {registered}"));
    let user_call = fresh_id("user");
    let conversation = uuid::Uuid::new_v4().to_string();
    let path = format!("/api/conversations/{conversation}");
    let response = rig.request(Method::GET, &path, user_token, Some(&user_call)).send().await.unwrap();
    let missing = expect_error(response, 404, "NOT_FOUND").await;
    let after = now_ms();

    let ids = [
        v1_chat.as_str(),
        retried.as_str(),
        messages.as_str(),
        streamed.as_str(),
        refused.as_str(),
        generated.as_str(),
        admin_call.as_str(),
        anonymous.as_str(),
        unmatched.as_str(),
        user_call.as_str(),
    ];
    let records = wait_records(&rig.server, &[], &ids).await;
    for id in ids {
        let record = &records[id];
        let at = timestamp_ms(record);
        assert!((before - 1..=after + 1).contains(&at), "{id}: {at} not within [{before}, {after}]");
    }

    let tenant_fields = json!({
        "principal": "tenant", "tenant_id": tenant.id, "user_id": null, "api_key_prefix": tenant.prefix,
        "method": "POST", "status": 200, "error_code": null, "error": null,
    });
    let record = &records[&v1_chat];
    assert_fields(record, &tenant_fields);
    assert_fields(
        record,
        &json!({
            "route": "/v1/chat", "agent": "product", "model": FAST_MODEL, "provider": OPENAI_PROVIDER,
            "attempts": 1, "input_tokens": 21, "output_tokens": 4, "ttft_ms": null,
        }),
    );

    let record = &records[&retried];
    assert_fields(record, &tenant_fields);
    assert_fields(
        record,
        &json!({
            "route": "/v1/chat/completions", "agent": null, "model": FAST_MODEL, "provider": OPENAI_PROVIDER,
            "attempts": 2, "input_tokens": 13, "output_tokens": 3, "ttft_ms": null,
        }),
    );

    let record = &records[&messages];
    assert_fields(record, &tenant_fields);
    assert_fields(
        record,
        &json!({
            "route": "/v1/messages", "agent": null, "model": CLAUDE_MODEL, "provider": ANTHROPIC_PROVIDER,
            "attempts": 1, "input_tokens": 8, "output_tokens": 2, "ttft_ms": null,
        }),
    );

    let record = &records[&streamed];
    assert_fields(record, &tenant_fields);
    assert_fields(
        record,
        &json!({
            "route": "/v1/chat/completions", "agent": null, "model": CLAUDE_MODEL, "provider": ANTHROPIC_PROVIDER,
            "attempts": 1, "input_tokens": 30, "output_tokens": 6,
        }),
    );
    let ttft = record["ttft_ms"].as_f64().unwrap_or_else(|| panic!("a stream has a ttft_ms: {record}"));
    let duration = record["duration_ms"].as_f64().unwrap();
    // Eight more chunks 15 ms apart follow the first token: the record lasts until the last one.
    assert!(ttft > 0.0 && ttft < duration, "ttft_ms {ttft} is not before the stream's end ({duration} ms)");
    assert!(duration - ttft >= 50.0, "ttft_ms {ttft}, duration_ms {duration}");

    let record = &records[&refused];
    assert_fields(
        record,
        &json!({
            "route": "/v1/chat", "method": "POST", "status": refused_status, "principal": "tenant",
            "tenant_id": tenant.id, "api_key_prefix": tenant.prefix, "attempts": 0,
            "input_tokens": 0, "output_tokens": 0, "provider": null, "ttft_ms": null,
            "error_code": refused_body["code"], "error": refused_body["error"],
        }),
    );
    assert!(record["error_code"].is_string() && record["error"].is_string(), "{record}");

    assert_fields(
        &records[&generated],
        &json!({
            "route": "/v1/usage", "method": "GET", "status": 200, "principal": "tenant", "tenant_id": tenant.id,
            "api_key_prefix": tenant.prefix, "agent": null, "model": null, "provider": null, "attempts": 0,
            "input_tokens": 0, "output_tokens": 0, "ttft_ms": null, "error_code": null, "error": null,
        }),
    );
    assert_fields(
        &records[&admin_call],
        &json!({
            "route": "/api/admin/tenants/{tenant_id}/usage", "method": "GET", "status": 200, "principal": "admin",
            "tenant_id": null, "user_id": null, "api_key_prefix": null, "attempts": 0,
        }),
    );
    assert_fields(
        &records[&anonymous],
        &json!({
            "route": "/health", "method": "GET", "status": 200, "principal": "anonymous", "tenant_id": null,
            "user_id": null, "api_key_prefix": null,
        }),
    );
    assert_fields(&records[&unmatched], &json!({ "route": "unmatched", "method": "GET", "status": 404 }));
    assert_fields(
        &records[&user_call],
        &json!({
            "route": "/api/conversations/{id}", "method": "GET", "status": 404, "principal": "user",
            "user_id": user_id, "tenant_id": null, "api_key_prefix": null,
            "error_code": "NOT_FOUND", "error": missing["error"],
        }),
    );

    // Newest first: in the order the requests arrived, reversed.
    let listed = ids_of(&admin_all(&rig.server, &[("tenant_id", &tenant.id)]).await);
    let expected: Vec<String> =
        [&v1_chat, &retried, &messages, &streamed, &refused, &generated].iter().rev().map(|s| s.to_string()).collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn the_request_log_filters_by_status_route_model_text_tenant_and_time() {
    let rig = Rig::start("");
    let a = rig.tenant("filter-a", "pro").await;
    let b = rig.tenant("filter-b", "pro").await;
    let started_secs = now_ms() / 1000;

    let fast_ok = fresh_id("fast-ok");
    expect_json(rig.completion(&a.key, &fast_ok, FAST_MODEL, "one").await, 200).await;
    next_millisecond().await;
    let claude_ok = fresh_id("claude-ok");
    expect_json(rig.completion(&a.key, &claude_ok, CLAUDE_MODEL, "two").await, 200).await;
    next_millisecond().await;
    let unknown_model = fresh_id("unknown-model");
    let body = json!({ "message": "three", "agent_type": "product", "model": "no-such-model-qx" });
    let response = rig.post("/v1/chat", &a.key, Some(&unknown_model), &body).await;
    let refused = response.status().as_u16();
    assert!((400..500).contains(&refused), "{refused}");
    next_millisecond().await;
    // Both attempts fail: the client gets a 5xx.
    let upstream_failed = fresh_id("upstream-failed");
    rig.anthropic.enqueue(Script::error(500, "upstream broke"));
    rig.anthropic.enqueue(Script::error(500, "upstream broke again"));
    let body = json!({ "message": "four", "agent_type": "product", "model": CLAUDE_MODEL });
    let response = rig.post("/v1/chat", &a.key, Some(&upstream_failed), &body).await;
    let failed = expect_json_error(response).await;
    assert!((500..600).contains(&failed.0), "{failed:?}");
    next_millisecond().await;
    let usage = fresh_id("usage");
    let response = rig.request(Method::GET, "/v1/usage", &a.key, Some(&usage)).send().await.unwrap();
    expect_json(response, 200).await;
    let other_tenant = fresh_id("other-tenant");
    expect_json(rig.completion(&b.key, &other_tenant, FAST_MODEL, "five").await, 200).await;

    let records = wait_records(&rig.server, &[("tenant_id", &a.id)], &[&usage]).await;
    let of_a = admin_all(&rig.server, &[("tenant_id", &a.id)]).await;
    let all_a = [&usage, &upstream_failed, &unknown_model, &claude_ok, &fast_ok];
    assert_eq!(ids_of(&of_a), all_a.map(|s| s.to_string()));
    assert_eq!(records[&upstream_failed]["model"], CLAUDE_MODEL, "the model asked for when none answered");
    assert!(records[&unknown_model]["error"].as_str().unwrap().contains("no-such-model-qx"));

    let server = &rig.server;
    let a_id = a.id.as_str();
    expect_ids(server, &[("tenant_id", a_id), ("status", "2xx")], &[&usage, &claude_ok, &fast_ok]).await;
    expect_ids(server, &[("tenant_id", a_id), ("status", "4xx")], &[&unknown_model]).await;
    expect_ids(server, &[("tenant_id", a_id), ("status", "5xx")], &[&upstream_failed]).await;
    expect_ids(server, &[("tenant_id", a_id), ("route", "/v1/chat/completions")], &[&claude_ok, &fast_ok]).await;
    expect_ids(server, &[("tenant_id", a_id), ("route", "/v1/chat")], &[&upstream_failed, &unknown_model]).await;
    expect_ids(server, &[("tenant_id", a_id), ("route", "/v1/usage")], &[&usage]).await;
    expect_ids(server, &[("tenant_id", a_id), ("model", CLAUDE_MODEL)], &[&upstream_failed, &claude_ok]).await;
    expect_ids(server, &[("tenant_id", a_id), ("model", FAST_MODEL)], &[&fast_ok]).await;
    let both = [("tenant_id", a_id), ("status", "2xx"), ("route", "/v1/chat/completions")];
    expect_ids(server, &both, &[&claude_ok, &fast_ok]).await;
    // Text in the message or the code, whatever its case.
    expect_ids(server, &[("tenant_id", a_id), ("q", "NO-SUCH-MODEL-QX")], &[&unknown_model]).await;
    let code = records[&upstream_failed]["error_code"].as_str().unwrap().to_lowercase();
    expect_ids(server, &[("tenant_id", a_id), ("q", code.as_str())], &[&upstream_failed]).await;
    expect_ids(server, &[("tenant_id", a_id), ("q", "nothing-like-this")], &[]).await;
    expect_ids(server, &[("tenant_id", b.id.as_str())], &[&other_tenant]).await;

    // Time: `from` inclusive, `to` exclusive, as RFC 3339 (milliseconds) or Unix seconds.
    let stamps: Vec<i64> = all_a.iter().rev().map(|id| timestamp_ms(&records[id.as_str()])).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "the requests arrived in distinct milliseconds: {stamps:?}");
    let at = |id: &String| records[id.as_str()]["timestamp"].as_str().unwrap().to_string();
    let (claude_at, failed_at) = (at(&claude_ok), at(&upstream_failed));
    let window = [("tenant_id", a_id), ("from", claude_at.as_str()), ("to", failed_at.as_str())];
    expect_ids(server, &window, &[&unknown_model, &claude_ok]).await;
    expect_ids(server, &[("tenant_id", a_id), ("from", failed_at.as_str())], &[&usage, &upstream_failed]).await;
    expect_ids(server, &[("tenant_id", a_id), ("to", claude_at.as_str())], &[&fast_ok]).await;
    let (started, later) = (started_secs.to_string(), (now_ms() / 1000 + 60).to_string());
    expect_ids(server, &[("tenant_id", a_id), ("from", started.as_str()), ("to", later.as_str())], &all_a).await;
    expect_ids(server, &[("tenant_id", a_id), ("from", later.as_str())], &[]).await;
    expect_ids(server, &[("tenant_id", a_id), ("to", started.as_str())], &[]).await;

    // The tenant's own view filters the same way.
    let (own, _) = tenant_page(&rig.server, &a.key, &[("status", "4xx")]).await;
    assert_eq!(ids_of(&own), std::slice::from_ref(&unknown_model));
    let (own, _) = tenant_page(&rig.server, &a.key, &[("model", CLAUDE_MODEL)]).await;
    assert_eq!(ids_of(&own), [upstream_failed.clone(), claude_ok.clone()]);

    // Bad parameters.
    for limit in ["0", "501"] {
        let response = rig.server.admin(Method::GET, "/api/admin/requests").query(&[("limit", limit)]).send().await;
        expect_error(response.unwrap(), 422, "UNPROCESSABLE").await;
    }
    // (The tenant's own reads above are in its log too now.)
    let total = admin_all(&rig.server, &[("tenant_id", &a.id)]).await.len();
    for limit in ["1", "500"] {
        let (items, _) = admin_page(&rig.server, &[("limit", limit), ("tenant_id", &a.id)]).await;
        assert_eq!(items.len(), limit.parse::<usize>().unwrap().min(total));
    }
    for cursor in ["garbage", "12-x", "-"] {
        let response = rig.server.admin(Method::GET, "/api/admin/requests").query(&[("cursor", cursor)]).send().await;
        expect_error(response.unwrap(), 400, "INVALID_INPUT").await;
    }
    let response = rig.server.v1(Method::GET, "/v1/requests", &a.key).query(&[("cursor", "garbage")]).send().await;
    expect_error(response.unwrap(), 400, "INVALID_INPUT").await;
}

/// Let the clock pass a millisecond boundary, so the next request's timestamp differs from the
/// last one's (the time filters are tested at record boundaries).
async fn next_millisecond() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

/// Assert the admin's log with `params` lists exactly `expected`, in that order.
async fn expect_ids(server: &TestServer, params: &[(&str, &str)], expected: &[&String]) {
    let found = ids_of(&admin_all(server, params).await);
    let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, expected, "with {params:?}");
}

/// The status and the JSON body of an error response.
async fn expect_json_error(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    assert!(body["code"].is_string() && body["error"].is_string(), "{status}: {body}");
    (status, body)
}

/// Page through a log with `limit=2`, asserting the pages' invariants; returns the ids in order.
async fn walk<F, Fut>(mut next_page: F) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = (Vec<Value>, Option<String>)>,
{
    let mut ids = Vec::new();
    let mut stamps = Vec::new();
    let mut cursor = None;
    for _ in 0..50 {
        let (items, next) = next_page(cursor.clone()).await;
        assert!(items.len() <= 2, "a page of limit 2 has {} items", items.len());
        if next.is_some() {
            assert_eq!(items.len(), 2, "a page short of its limit has no next page");
        }
        ids.extend(ids_of(&items));
        stamps.extend(items.iter().map(timestamp_ms));
        match next {
            Some(next) => cursor = Some(next),
            None => {
                assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "not newest first: {stamps:?}");
                return ids;
            }
        }
    }
    panic!("the walk never ended: {ids:?}");
}

#[tokio::test]
async fn cursor_pages_walk_every_record_once_newest_first() {
    let server = TestServer::start();
    let tenant = provision(&server, "pager", "pro").await;
    let sent: Vec<String> = (0..7).map(|i| fresh_id(&format!("page-{i}"))).collect();
    for id in &sent {
        let response = with_id(server.v1(Method::GET, "/v1/usage", &tenant.key), Some(id)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    wait_records(&server, &[("tenant_id", &tenant.id)], &[&sent[6]]).await;

    let admin = walk(|cursor| {
        let server = &server;
        let tenant_id = tenant.id.clone();
        async move {
            let mut query = vec![("tenant_id", tenant_id.as_str()), ("limit", "2")];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor));
            }
            admin_page(server, &query).await
        }
    })
    .await;
    assert_eq!(admin, newest_first, "the admin's walk");

    // The tenant's own walk: its /v1/requests calls are newer than every cursor, so they never
    // show up after the first page (and the first page is answered before its own record).
    let own = walk(|cursor| {
        let server = &server;
        let key = tenant.key.clone();
        async move {
            let mut query = vec![("limit", "2")];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            tenant_page(server, &key, &query).await
        }
    })
    .await;
    assert_eq!(own, newest_first, "the tenant's walk");

    // With a filter, pages still cover everything that matches.
    let filtered = walk(|cursor| {
        let server = &server;
        let tenant_id = tenant.id.clone();
        async move {
            let mut query = vec![("tenant_id", tenant_id.as_str()), ("limit", "2"), ("route", "/v1/usage")];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor));
            }
            admin_page(server, &query).await
        }
    })
    .await;
    assert_eq!(filtered, newest_first, "the filtered walk");
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_requests_whatever_tenant_id_says() {
    let server = TestServer::start();
    let a = provision(&server, "own-a", "pro").await;
    let b = provision(&server, "own-b", "pro").await;
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..3 {
        for tenant in [&a, &b] {
            let id = fresh_id(&format!("isolation-{round}"));
            let response = with_id(server.v1(Method::GET, "/v1/usage", &tenant.key), Some(&id)).send().await.unwrap();
            assert_eq!(response.status(), 200);
            sent.entry(tenant.id.clone()).or_default().push(id);
        }
    }
    let last_b = sent[&b.id].last().unwrap().clone();
    wait_records(&server, &[], &[&last_b]).await;

    for (me, other) in [(&a, &b), (&b, &a)] {
        for params in [vec![], vec![("tenant_id", other.id.as_str())], vec![("tenant_id", "")]] {
            let mut query = params.clone();
            query.push(("limit", "500"));
            let (items, next) = tenant_page(&server, &me.key, &query).await;
            assert_eq!(next, None);
            let ids = ids_of(&items);
            for item in &items {
                assert_eq!(item["tenant_id"], me.id.as_str(), "{params:?}: {item}");
                assert_eq!(item["api_key_prefix"], me.prefix.as_str(), "{params:?}: {item}");
            }
            for id in &sent[&me.id] {
                assert!(ids.contains(id), "{params:?}: own request {id} missing from {ids:?}");
            }
            for id in &sent[&other.id] {
                assert!(!ids.contains(id), "{params:?}: the other tenant's {id} is listed");
            }
        }
    }

    // The admin chooses the tenant.
    let of_b = ids_of(&admin_all(&server, &[("tenant_id", &b.id)]).await);
    assert!(sent[&b.id].iter().all(|id| of_b.contains(id)), "{of_b:?}");
    assert!(sent[&a.id].iter().all(|id| !of_b.contains(id)), "{of_b:?}");
}

/// A record as the server writes it, for a test that writes the store directly.
fn stored_record(at_ms: i64, seq: u64, request_id: &str, tenant_id: Option<&str>) -> RequestLogRecord {
    RequestLogRecord {
        at_ms,
        seq,
        request_id: request_id.to_string(),
        route: "/v1/chat/completions".into(),
        method: "POST".into(),
        status: 200,
        duration_us: 1_500,
        principal: if tenant_id.is_some() { "tenant" } else { "anonymous" }.into(),
        tenant_id: tenant_id.map(str::to_string),
        user_id: None,
        key_prefix: tenant_id.map(|_| "ares_0123abcd".to_string()),
        agent: None,
        model: Some("stored-model".into()),
        provider: Some("stored-provider".into()),
        attempts: 1,
        input_tokens: 12,
        output_tokens: 34,
        cached_input_tokens: 0,
        cost_micros: 0,
        ttft_us: Some(56_500),
        error_code: None,
        error: None,
    }
}

#[tokio::test]
async fn records_older_than_the_retention_are_pruned_in_the_background() {
    const DAY_MS: i64 = 86_400_000;
    let data = tempfile::tempdir().unwrap();
    let tenant = "tenant-with-history";
    let now = now_ms();
    let old_ids: Vec<String> = (0..3).map(|i| format!("old-{i}")).collect();
    let recent_ids: Vec<String> = (0..2).map(|i| format!("recent-{i}")).collect();
    let mut records = Vec::new();
    for (i, id) in old_ids.iter().enumerate() {
        records.push(stored_record(now - 30 * DAY_MS + i as i64, i as u64, id, Some(tenant)));
    }
    // Pruning is not per tenant.
    records.push(stored_record(now - 30 * DAY_MS + 10, 10, "old-anonymous", None));
    records.push(stored_record(now - 20 * DAY_MS, 11, "old-20-days", Some(tenant)));
    let recent_at = now - DAY_MS + 123;
    for (i, id) in recent_ids.iter().enumerate() {
        records.push(stored_record(recent_at + i as i64, 20 + i as u64, id, Some(tenant)));
    }
    {
        let store = Store::open(&data.path().join(store::DB_FILE), MigrationPolicy::Apply).unwrap();
        store.write_blocking(|txn| request_log::append_all(txn, &records)).unwrap();
        let stored = store.read_now(|txn| request_log::page(txn, &request_log::Filter::default(), None, 100)).unwrap();
        assert_eq!(stored.records.len(), records.len(), "the history is in the store before the server starts");
        store.close();
    }

    let server = TestServer::builder().data_dir(data.path()).config("[observability]\nrequest_log_days = 14").start();
    let deadline = Instant::now() + SETTLE;
    let remaining = loop {
        let ids = ids_of(&admin_all(&server, &[("tenant_id", tenant)]).await);
        for id in &recent_ids {
            assert!(ids.contains(id), "a record within the retention went: {ids:?}");
        }
        if ids.iter().all(|id| id.starts_with("recent-")) {
            break ids;
        }
        assert!(Instant::now() < deadline, "records past the retention were never pruned: {ids:?}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(remaining, ["recent-1", "recent-0"]);
    let before_retention = ((now - 14 * DAY_MS) / 1000).to_string();
    assert_eq!(admin_all(&server, &[("to", &before_retention)]).await, Vec::<Value>::new());

    // What was written is what is read.
    let records = admin_all(&server, &[("tenant_id", tenant)]).await;
    assert_eq!(
        records[1],
        json!({
            "timestamp": rfc3339_millis(recent_at), "request_id": "recent-0", "route": "/v1/chat/completions",
            "method": "POST", "status": 200, "duration_ms": 1.5, "principal": "tenant", "tenant_id": tenant,
            "user_id": null, "api_key_prefix": "ares_0123abcd", "agent": null, "model": "stored-model",
            "provider": "stored-provider", "attempts": 1, "input_tokens": 12, "output_tokens": 34,
            "cached_input_tokens": 0, "cost_usd": "0.000000", "ttft_ms": 56.5, "error_code": null, "error": null,
        })
    );
}

#[tokio::test]
async fn no_request_log_is_kept_with_zero_days() {
    let server = TestServer::builder().config("[observability]\nrequest_log_days = 0").start();
    let tenant = provision(&server, "unlogged", "pro").await;
    for _ in 0..3 {
        assert_eq!(server.v1(Method::GET, "/v1/usage", &tenant.key).send().await.unwrap().status(), 200);
    }
    assert_eq!(admin_page(&server, &[]).await, (Vec::new(), None));
    assert_eq!(tenant_page(&server, &tenant.key, &[]).await, (Vec::new(), None));
}

// ---------------------------------------------------------------- the Prometheus text format

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` body. Parsing panics on any line that is not valid text format.
struct Exposition {
    text: String,
    /// Family name → `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')) => {
            text.parse().map_err(|e| format!("bad value {text:?}: {e}"))
        }
        _ => Err(format!("bad value {text:?}")),
    }
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() && !(chars[i] == '{' || chars[i] == ' ' || chars[i] == '\t') {
        i += 1;
    }
    let name: String = chars[..i].iter().collect();
    if !is_metric_name(&name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    if chars.get(i) == Some(&'{') {
        i += 1;
        loop {
            if chars.get(i) == Some(&'}') {
                i += 1;
                break;
            }
            let start = i;
            while i < chars.len() && chars[i] != '=' {
                i += 1;
            }
            let label: String = chars[start..i].iter().collect();
            if !is_label_name(&label) {
                return Err(format!("bad label name {label:?}"));
            }
            if chars.get(i + 1) != Some(&'"') {
                return Err(format!("label {label} has no quoted value"));
            }
            i += 2;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(format!("label {label}'s value is not terminated")),
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("bad escape \\{other:?} in label {label}")),
                        }
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
            if labels.insert(label.clone(), value).is_some() {
                return Err(format!("label {label} appears twice"));
            }
            match chars.get(i) {
                Some(',') => i += 1,
                Some('}') => {
                    i += 1;
                    break;
                }
                other => return Err(format!("expected ',' or '}}' after label {label}, found {other:?}")),
            }
        }
    }
    if !chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
        return Err("no whitespace before the value".into());
    }
    let rest: String = chars[i..].iter().collect();
    let mut parts = rest.split_whitespace();
    let value = parse_value(parts.next().ok_or("no value")?)?;
    if let Some(timestamp) = parts.next() {
        timestamp.parse::<i64>().map_err(|e| format!("bad timestamp {timestamp:?}: {e}"))?;
    }
    if let Some(extra) = parts.next() {
        return Err(format!("unexpected {extra:?} after the value"));
    }
    Ok(Sample { name, labels, value })
}

/// Parse a whole exposition, asserting every line parses, every `# TYPE` is valid, comes once
/// and before its family's samples, and every sample belongs to a typed family.
fn parse_exposition(text: &str) -> Exposition {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if let Some(rest) = comment.strip_prefix("TYPE ") {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(parts.len(), 2, "{}", at());
                assert!(is_metric_name(parts[0]), "{}", at());
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&parts[1]), "{}", at());
                assert!(
                    !samples.iter().any(|s| family_name(&s.name, &types) == parts[0]),
                    "TYPE after samples: {}",
                    at()
                );
                let previous = types.insert(parts[0].to_string(), parts[1].to_string());
                assert!(previous.is_none(), "a second TYPE: {}", at());
            } else if let Some(rest) = comment.strip_prefix("HELP ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                assert!(is_metric_name(name), "{}", at());
            }
            continue;
        }
        let sample = parse_sample(line).unwrap_or_else(|e| panic!("{e} at {}", at()));
        let family = family_name(&sample.name, &types);
        let kind = types.get(&family).unwrap_or_else(|| panic!("a sample of no typed family at {}", at()));
        if kind == "histogram" && sample.name.ends_with("_bucket") {
            assert!(sample.labels.contains_key("le"), "a bucket without le at {}", at());
        }
        samples.push(sample);
    }
    Exposition { text: text.to_string(), types, samples }
}

/// The family a sample name belongs to: itself, or a histogram's or summary's for the
/// `_bucket`, `_sum` and `_count` series.
fn family_name(name: &str, types: &BTreeMap<String, String>) -> String {
    if types.contains_key(name) {
        return name.to_string();
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base.to_string();
        }
    }
    name.to_string()
}

fn label_set(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Exposition {
    fn kind(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// Every sample named `name`.
    fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the sample `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted = label_set(labels);
        self.samples.iter().find(|s| s.name == name && s.labels == wanted).map(|s| s.value)
    }

    /// A counter's value, asserting its family is a counter and the series exists.
    fn counter(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.kind(family), Some("counter"), "{family}");
        self.value(family, labels).unwrap_or_else(|| panic!("no {family}{labels:?} in:\n{}", self.of(family)))
    }

    /// A histogram series' count, asserting its family is a histogram and the series is whole:
    /// cumulative buckets ending in `+Inf` equal to `_count`, and a `_sum`.
    fn histogram_count(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        assert_eq!(self.kind(family), Some("histogram"), "{family}");
        let wanted = label_set(labels);
        let count = self
            .value(&format!("{family}_count"), labels)
            .unwrap_or_else(|| panic!("no {family}_count{labels:?} in:\n{}", self.of(family)));
        assert!(self.value(&format!("{family}_sum"), labels).is_some(), "no {family}_sum{labels:?}");
        let mut buckets: Vec<(f64, f64)> = self
            .series(&format!("{family}_bucket"))
            .into_iter()
            .filter(|s| {
                let mut rest = s.labels.clone();
                rest.remove("le");
                rest == wanted
            })
            .map(|s| (parse_value(&s.labels["le"]).unwrap(), s.value))
            .collect();
        buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(buckets.len() >= 2, "{family}{labels:?} has {} buckets", buckets.len());
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family}{labels:?} buckets are not cumulative");
        assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{family}{labels:?} has no +Inf bucket");
        assert_eq!(buckets.last().map(|b| b.1), Some(count), "{family}{labels:?}: +Inf bucket != _count");
        count as u64
    }

    /// The label sets of a family's samples named `name`.
    fn label_sets(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.series(name).into_iter().map(|s| s.labels.clone()).collect()
    }

    /// The lines about `family`, for failure messages.
    fn of(&self, family: &str) -> String {
        self.text.lines().filter(|l| l.contains(family)).collect::<Vec<_>>().join("\n")
    }
}

#[test]
fn the_text_format_parser_accepts_valid_lines_and_refuses_broken_ones() {
    let sample = parse_sample(r#"a_b:c{route="/x/{id}",msg="say \"hi\"\\\n",} 1.5e3 1700000000000"#).unwrap();
    assert_eq!(sample.name, "a_b:c");
    assert_eq!(sample.labels["route"], "/x/{id}");
    assert_eq!(sample.labels["msg"], "say \"hi\"\\\n");
    assert_eq!(sample.value, 1500.0);
    assert_eq!(parse_sample("up +Inf").unwrap().value, f64::INFINITY);
    assert!(parse_sample("up NaN").unwrap().value.is_nan());
    for broken in [
        "1up 1",
        "up",
        "up{a=\"1\"}1",
        "up{a=1} 1",
        "up{a=\"1} 1",
        "up{a=\"1\",a=\"2\"} 1",
        "up{1a=\"1\"} 1",
        "up{a=\"\\x\"} 1",
        "up one",
        "up 1 2 3",
    ] {
        assert!(parse_sample(broken).is_err(), "{broken:?} parsed");
    }
}

/// `GET /metrics` with the admin secret, asserting 200 and the content type; parsed.
async fn scrape(server: &TestServer) -> Exposition {
    let response = server.admin(Method::GET, "/metrics").send().await.expect("GET /metrics");
    scraped(response).await
}

async fn scraped(response: reqwest::Response) -> Exposition {
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    parse_exposition(&response.text().await.expect("metrics body"))
}

// ---------------------------------------------------------------- metrics tests

#[tokio::test]
async fn metrics_need_the_admin_secret_as_a_header_or_a_bearer_token_unless_public() {
    let server = TestServer::start();
    let tenant = provision(&server, "scraper", "pro").await;
    let url = server.url("/metrics");
    let client = server.client();

    expect_error(client.get(&url).send().await.unwrap(), 401, "AUTH_MISSING").await;
    let wrong = client.get(&url).header("x-admin-secret", "not-the-secret").send().await.unwrap();
    expect_error(wrong, 401, "AUTHENTICATION_FAILED").await;
    let wrong = client.get(&url).bearer_auth("not-the-secret").send().await.unwrap();
    expect_error(wrong, 401, "AUTHENTICATION_FAILED").await;
    // A tenant's key is not the operator's secret.
    let tenant_key = client.get(&url).bearer_auth(&tenant.key).send().await.unwrap();
    expect_error(tenant_key, 401, "AUTHENTICATION_FAILED").await;

    let by_header =
        scraped(client.get(&url).header("x-admin-secret", server.admin_secret()).send().await.unwrap()).await;
    assert_eq!(by_header.kind("ares_http_requests_total"), Some("counter"));
    // Prometheus' `bearer_token`.
    let by_bearer = scraped(client.get(&url).bearer_auth(server.admin_secret()).send().await.unwrap()).await;
    assert_eq!(by_bearer.kind("ares_http_requests_total"), Some("counter"));
    // The refusals were counted like any request, under the route's pattern.
    assert_eq!(
        by_bearer.counter("ares_http_requests_total", &[("route", "/metrics"), ("method", "GET"), ("status", "401")]),
        4.0
    );

    let public = TestServer::builder().config("[metrics]\npublic = true").start();
    assert_eq!(public.get("/health").send().await.unwrap().status(), 200);
    let open = scraped(public.client().get(public.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(
        open.counter("ares_http_requests_total", &[("route", "/health"), ("method", "GET"), ("status", "200")]),
        1.0
    );
}

#[tokio::test]
async fn metrics_count_real_traffic_in_every_family_with_exact_names_and_labels() {
    let config = r#"
[quotas.free]
monthly_requests = 1000
monthly_tokens = 100000
daily_requests = 1

[quotas.users]
monthly_requests = 1000
monthly_tokens = 1000000
daily_requests = 1

[[deploy.targets]]
name = "obs-ok"
commands = ["true"]

[[deploy.targets]]
name = "obs-bad"
commands = ["exit 3"]
"#;
    let rig = Rig::start(config);
    let pro = rig.tenant("metered-pro", "pro").await;
    let free = rig.tenant("metered-free", "free").await;

    // Upstream calls: a 503 then an answer; a 429 then an answer; a stream; a refusal (400).
    rig.openai.enqueue(Script::error(503, "overloaded"));
    rig.openai.enqueue(Script::reply("First.").usage(17, 5));
    expect_json(rig.completion(&pro.key, &fresh_id("m1"), FAST_MODEL, "one").await, 200).await;
    rig.openai.enqueue(Script::error(429, "slow down").header("retry-after-ms", "1"));
    rig.openai.enqueue(Script::reply("Second.").usage(3, 2));
    expect_json(rig.completion(&pro.key, &fresh_id("m2"), FAST_MODEL, "two").await, 200).await;
    rig.anthropic.enqueue(Script::reply("Streamed reply.").usage(30, 6));
    rig.stream(&pro.key, &fresh_id("m3"), CLAUDE_MODEL, "three").await;
    rig.anthropic.enqueue(Script::error(400, "the upstream refuses this"));
    let refused = rig.completion(&pro.key, &fresh_id("m4"), CLAUDE_MODEL, "four").await;
    let refused_status = refused.status().as_u16();
    assert!(refused_status >= 400, "{refused_status}");
    let refused_status = refused_status.to_string();

    // A quota refusal.
    assert_eq!(rig.server.v1(Method::GET, "/v1/usage", &free.key).send().await.unwrap().status(), 200);
    let response = rig.server.v1(Method::GET, "/v1/usage", &free.key).send().await.unwrap();
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;

    // RAG searches, one per strategy, by a user.
    let registered = rig.server.register("metered-user@example.com", "correct-horse-battery").await;
    let user = registered["access_token"].as_str().unwrap().to_string();
    let user_id = registered["user_id"].as_str().unwrap().to_string();
    let ingest = json!({ "collection": "obs-notes", "content": "The lighthouse keeper logs every passing ship." });
    expect_json(rig.post("/api/rag/ingest", &user, None, &ingest).await, 200).await;
    for strategy in ["semantic", "bm25", "fuzzy", "hybrid"] {
        let search =
            json!({ "collection": "obs-notes", "query": "lighthouse ships", "strategy": strategy, "top_k": 3 });
        expect_json(rig.post("/api/rag/search", &user, None, &search).await, 200).await;
    }

    // Routes are patterns, never raw paths.
    let conversation = uuid::Uuid::new_v4().to_string();
    let response = rig.request(Method::GET, &format!("/api/conversations/{conversation}"), &user, None).send().await;
    assert_eq!(response.unwrap().status(), 404);
    assert_eq!(rig.server.get("/definitely/not/a/route").send().await.unwrap().status(), 404);

    // Deploys: one succeeds, one fails.
    for target in ["obs-ok", "obs-bad"] {
        let response = rig.server.admin(Method::POST, "/api/admin/deploy").json(&json!({ "target": target })).send();
        let id = expect_json(response.await.unwrap(), 200).await["id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + SETTLE;
        while rig.server.admin_get(&format!("/api/admin/deploy/{id}")).await["status"] == "running" {
            assert!(Instant::now() < deadline, "deploy {target} never finished");
            tokio::time::sleep(POLL).await;
        }
    }
    // The counter goes up just after the record is stored.
    let deadline = Instant::now() + SETTLE;
    let metrics = loop {
        let metrics = scrape(&rig.server).await;
        if metrics.series("ares_deploys_total").len() == 2 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "deploys never counted:\n{}", metrics.of("ares_deploys"));
        tokio::time::sleep(POLL).await;
    };

    // HTTP.
    let http = "ares_http_requests_total";
    let chat_ok = [("route", "/v1/chat/completions"), ("method", "POST"), ("status", "200")];
    assert_eq!(metrics.counter(http, &chat_ok), 3.0);
    let chat_refused = [("route", "/v1/chat/completions"), ("method", "POST"), ("status", refused_status.as_str())];
    assert_eq!(metrics.counter(http, &chat_refused), 1.0);
    assert_eq!(metrics.counter(http, &[("route", "/v1/usage"), ("method", "GET"), ("status", "200")]), 1.0);
    assert_eq!(metrics.counter(http, &[("route", "/v1/usage"), ("method", "GET"), ("status", "429")]), 1.0);
    assert_eq!(metrics.counter(http, &[("route", "/api/rag/search"), ("method", "POST"), ("status", "200")]), 4.0);
    let conversation_route = [("route", "/api/conversations/{id}"), ("method", "GET"), ("status", "404")];
    assert_eq!(metrics.counter(http, &conversation_route), 1.0);
    assert_eq!(metrics.counter(http, &[("route", "unmatched"), ("method", "GET"), ("status", "404")]), 1.0);
    for labels in metrics.label_sets(http) {
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["method", "route", "status"], "{labels:?}");
        let route = &labels["route"];
        assert!(route == "unmatched" || route.starts_with('/'), "{labels:?}");
    }
    assert!(!metrics.text.contains("/definitely/not"), "a raw path in /metrics");
    assert!(!metrics.text.contains(&conversation), "a raw path in /metrics");
    let duration = "ares_http_request_duration_seconds";
    assert_eq!(metrics.histogram_count(duration, &[("route", "/v1/chat/completions")]), 4);
    assert_eq!(metrics.histogram_count(duration, &[("route", "/v1/usage")]), 2);

    // Upstream calls, by configured provider and model names.
    let llm = "ares_llm_requests_total";
    let fast = [("provider", OPENAI_PROVIDER), ("model", FAST_MODEL)];
    let claude = [("provider", ANTHROPIC_PROVIDER), ("model", CLAUDE_MODEL)];
    let with = |base: &[(&'static str, &'static str); 2], extra: (&'static str, &'static str)| {
        let mut labels = base.to_vec();
        labels.push(extra);
        labels
    };
    let mut calls: Vec<(BTreeMap<String, String>, f64)> =
        metrics.series(llm).into_iter().map(|s| (s.labels.clone(), s.value)).collect();
    calls.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected: Vec<(BTreeMap<String, String>, f64)> = vec![
        (label_set(&with(&fast, ("outcome", "ok"))), 2.0),
        (label_set(&with(&fast, ("outcome", "upstream_error"))), 1.0),
        (label_set(&with(&fast, ("outcome", "rate_limited"))), 1.0),
        (label_set(&with(&claude, ("outcome", "ok"))), 1.0),
        (label_set(&with(&claude, ("outcome", "rejected"))), 1.0),
    ];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(calls, expected, "{}", metrics.of(llm));
    assert_eq!(metrics.kind(llm), Some("counter"));
    assert_eq!(metrics.histogram_count("ares_llm_request_duration_seconds", &fast), 4);
    assert_eq!(metrics.histogram_count("ares_llm_request_duration_seconds", &claude), 2);
    // Time to first token: streams only.
    let ttft = "ares_llm_time_to_first_token_seconds";
    assert_eq!(metrics.histogram_count(ttft, &claude), 1);
    assert_eq!(metrics.value(&format!("{ttft}_count"), &fast), None, "a plain call has no first token");
    let tokens = "ares_llm_tokens_total";
    assert_eq!(metrics.counter(tokens, &with(&fast, ("direction", "input"))), 20.0);
    assert_eq!(metrics.counter(tokens, &with(&fast, ("direction", "output"))), 7.0);
    assert_eq!(metrics.counter(tokens, &with(&claude, ("direction", "input"))), 30.0);
    assert_eq!(metrics.counter(tokens, &with(&claude, ("direction", "output"))), 6.0);
    assert_eq!(metrics.series(tokens).len(), 4, "{}", metrics.of(tokens));
    // Four requests called an upstream.
    assert_eq!(metrics.histogram_count("ares_gateway_overhead_seconds", &[]), 4);

    // Quotas, the IP limiter, the store, RAG, deploys.
    let quota = "ares_quota_rejections_total";
    assert_eq!(metrics.counter(quota, &[("tier", "free"), ("reason", "daily_requests")]), 1.0);
    assert_eq!(metrics.series(quota).len(), 1, "{}", metrics.of(quota));
    assert_eq!(metrics.counter("ares_rate_limited_total", &[]), 0.0);
    let commits = metrics.histogram_count("ares_store_commit_duration_seconds", &[]);
    assert!(commits > 0);
    let batches = metrics.histogram_count("ares_store_commit_batch_size", &[]);
    assert_eq!(batches, commits, "one batch size per commit");
    let written = metrics.value("ares_store_commit_batch_size_sum", &[]).unwrap();
    assert!(written >= batches as f64, "a commit holds at least one write: {written} writes in {batches} commits");
    for strategy in ["semantic", "bm25", "fuzzy", "hybrid"] {
        assert_eq!(metrics.histogram_count("ares_rag_search_duration_seconds", &[("strategy", strategy)]), 1);
    }
    let deploys = "ares_deploys_total";
    assert_eq!(metrics.counter(deploys, &[("target", "obs-ok"), ("status", "success")]), 1.0);
    assert_eq!(metrics.counter(deploys, &[("target", "obs-bad"), ("status", "failed")]), 1.0);

    // The process.
    assert_eq!(metrics.kind("process_cpu_seconds_total"), Some("counter"));
    for gauge in ["process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"] {
        assert_eq!(metrics.kind(gauge), Some("gauge"), "{gauge}");
        assert!(metrics.value(gauge, &[]).is_some_and(|v| v > 0.0), "{gauge}: {}", metrics.of(gauge));
    }
    let start = metrics.value("process_start_time_seconds", &[]).unwrap();
    assert!(start <= (now_ms() / 1000 + 1) as f64 && start > (now_ms() / 1000 - 3600) as f64, "{start}");

    // No tenant, key or user in any label.
    assert!(metrics.samples.iter().all(|s| !s.labels.contains_key("tenant")));
    for secret in [&pro.id, &free.id, &pro.prefix, &free.prefix, &user_id] {
        assert!(!metrics.text.contains(secret.as_str()), "{secret} appears in /metrics");
    }

    // A JWT user's quota is counted under the tier `user`.
    let chat = json!({ "message": "hi", "model": FAST_MODEL });
    expect_json(rig.post("/api/chat", &user, None, &chat).await, 200).await;
    expect_error(rig.post("/api/chat", &user, None, &chat).await, 429, "RATE_LIMIT_EXCEEDED").await;
    let metrics = scrape(&rig.server).await;
    assert_eq!(metrics.counter(quota, &[("tier", "user"), ("reason", "daily_requests")]), 1.0);
    assert_eq!(metrics.counter(quota, &[("tier", "free"), ("reason", "daily_requests")]), 1.0);
}

#[tokio::test]
async fn upstream_timeouts_and_clients_hanging_up_are_counted_by_outcome() {
    // A whole call, retries included, may take one second.
    let rig = Rig::start_with("timeout_secs = 1", "");
    let tenant = rig.tenant("impatient", "pro").await;

    // The upstream never answers.
    rig.openai.set_script(Script::hang());
    let timed_out = fresh_id("timeout");
    let body = json!({ "message": "hello?", "agent_type": "product", "model": FAST_MODEL });
    let response = rig.post("/v1/chat", &tenant.key, Some(&timed_out), &body).await;
    let error = expect_error(response, 504, "LLM_TIMEOUT").await;

    // The client hangs up after the first token of a long, slow stream.
    let hung_up = fresh_id("hung-up");
    let reply = "word ".repeat(40);
    // message_start, content_block_start, ping, then the first delta; then held back.
    let script = Script::reply(reply.trim_end()).pause_after(4).chunk_delay(Duration::from_millis(20));
    rig.anthropic.set_script(script);
    let body = json!({ "model": CLAUDE_MODEL, "stream": true, "messages": [{ "role": "user", "content": "go" }] });
    let response = rig.post("/v1/chat/completions", &tenant.key, Some(&hung_up), &body).await;
    let mut reader = SseReader::new(response);
    loop {
        let event = reader.next_event().await.expect("an event before the first token");
        if event.json()["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
            break;
        }
    }
    drop(reader);
    rig.anthropic.resume();

    let fast = [("provider", OPENAI_PROVIDER), ("model", FAST_MODEL)];
    let claude = [("provider", ANTHROPIC_PROVIDER), ("model", CLAUDE_MODEL)];
    let deadline = Instant::now() + SETTLE;
    let metrics = loop {
        let metrics = scrape(&rig.server).await;
        let cancelled = [claude[0], claude[1], ("outcome", "cancelled")];
        if metrics.value("ares_llm_requests_total", &cancelled).is_some() {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no cancelled call counted:\n{}", metrics.of("ares_llm_requests_total"));
        tokio::time::sleep(POLL).await;
    };
    let outcomes = |base: &[(&str, &str); 2]| -> BTreeMap<String, f64> {
        metrics
            .series("ares_llm_requests_total")
            .into_iter()
            .filter(|s| s.labels["provider"] == base[0].1 && s.labels["model"] == base[1].1)
            .map(|s| (s.labels["outcome"].clone(), s.value))
            .collect()
    };
    let timeouts = outcomes(&fast);
    assert_eq!(timeouts.keys().collect::<Vec<_>>(), ["timeout"], "{timeouts:?}");
    assert!(timeouts["timeout"] >= 1.0, "{timeouts:?}");
    assert_eq!(outcomes(&claude), BTreeMap::from([("cancelled".to_string(), 1.0)]));

    // Both are in the request log, the timeout with what its client saw.
    let records = wait_records(&rig.server, &[("tenant_id", &tenant.id)], &[&timed_out, &hung_up]).await;
    assert_fields(
        &records[&timed_out],
        &json!({
            "route": "/v1/chat", "status": 504, "model": FAST_MODEL, "provider": OPENAI_PROVIDER,
            "error_code": "LLM_TIMEOUT", "error": error["error"], "input_tokens": 0, "output_tokens": 0,
        }),
    );
    assert_fields(
        &records[&hung_up],
        &json!({ "route": "/v1/chat/completions", "status": 200, "model": CLAUDE_MODEL, "attempts": 1 }),
    );
}

#[tokio::test]
async fn a_client_leaving_before_a_plain_answer_is_logged_as_499_with_its_call_cancelled() {
    let rig = Rig::start_with("", "");
    let tenant = rig.tenant("leaver", "pro").await;
    // The upstream takes its time; the client does not wait for it.
    rig.openai.set_script(Script::reply("too late").delay(Duration::from_secs(5)));
    let left = fresh_id("left");
    let body = json!({ "message": "hello?", "agent_type": "product", "model": FAST_MODEL });
    let request = tokio::spawn(rig.request(Method::POST, "/v1/chat", &tenant.key, Some(&left)).json(&body).send());
    rig.openai.wait_until("the upstream call", |r| !r.is_empty()).await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled(), "the server answered before its upstream");

    let records = wait_records(&rig.server, &[("tenant_id", &tenant.id)], &[&left]).await;
    assert_fields(
        &records[&left],
        &json!({
            "route": "/v1/chat", "method": "POST", "status": 499, "error_code": "CLIENT_CLOSED_REQUEST",
            "model": FAST_MODEL, "provider": OPENAI_PROVIDER, "attempts": 1, "input_tokens": 0, "output_tokens": 0,
        }),
    );
    let metrics = scrape(&rig.server).await;
    let cancelled = [("provider", OPENAI_PROVIDER), ("model", FAST_MODEL), ("outcome", "cancelled")];
    assert_eq!(metrics.counter("ares_llm_requests_total", &cancelled), 1.0);
    let closed = [("route", "/v1/chat"), ("method", "POST"), ("status", "499")];
    assert_eq!(metrics.counter("ares_http_requests_total", &closed), 1.0);
}

#[tokio::test]
async fn a_users_chat_left_by_its_client_still_counts_against_the_quota_after_a_restart() {
    let rig = Rig::start("[quotas.users]\nmonthly_requests = 100\nmonthly_tokens = 1000000\ndaily_requests = 2");
    let registered = rig.server.register("leaving-user@example.com", "correct-horse-battery").await;
    let token = registered["access_token"].as_str().unwrap().to_string();
    rig.openai.set_script(Script::reply("too late").delay(Duration::from_secs(5)));
    let left = fresh_id("user-left");
    let body = json!({ "message": "hello?", "agent_type": "product", "model": FAST_MODEL });
    let request = tokio::spawn(rig.request(Method::POST, "/api/chat", &token, Some(&left)).json(&body).send());
    let sent = rig.openai.wait_until("the upstream call", |r| !r.is_empty()).await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled(), "the server answered before its upstream");
    // Logged once its handler is gone, which settles the request on its way out.
    let records = wait_records(&rig.server, &[], &[&left]).await;
    assert_eq!(records[&left]["status"], 499);
    // Its prompt was sent (and is billed by the provider): counted at 4 bytes a token.
    let prompt: u64 = sent[0].text_turns().iter().map(|(_, text)| (text.len() as u64).div_ceil(4)).sum();

    // The request and its prompt count against the user's quotas (the day's two requests, the
    // month's tokens), also for a server that reads the counts back.
    let Rig { openai, anthropic: _anthropic, server } = rig;
    let server = server.restart();
    openai.set_script(Script::reply("in time"));
    let answered = server.v1(Method::POST, "/api/chat", &token).json(&body).send().await.unwrap();
    assert_eq!(header(&answered, "x-ratelimit-remaining").as_deref(), Some("0"));
    let tokens_left = (1_000_000 - prompt).to_string();
    assert_eq!(header(&answered, "x-quota-tokens-remaining").as_deref(), Some(tokens_left.as_str()));
    expect_json(answered, 200).await;
    let refused = server.v1(Method::POST, "/api/chat", &token).json(&body).send().await.unwrap();
    expect_error(refused, 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn requests_refused_by_the_ip_limiter_are_counted() {
    let server = TestServer::builder().config("[server]\nrate_limit_per_second = 1\nrate_limit_burst = 3").start();
    let mut refused = 0;
    for _ in 0..20 {
        if server.get("/health").send().await.unwrap().status() == 429 {
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "never rate limited");
    // The scrape is limited too: wait for a token, counting every refusal on the way.
    let deadline = Instant::now() + SETTLE;
    let metrics = loop {
        let response = server.admin(Method::GET, "/metrics").send().await.unwrap();
        if response.status() != 429 {
            break scraped(response).await;
        }
        refused += 1;
        assert!(Instant::now() < deadline, "/metrics stayed rate limited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(metrics.counter("ares_rate_limited_total", &[]), f64::from(refused));
}

/// Requests in flight, as the gauge says; the scrape that reads it is one of them.
async fn in_flight(server: &TestServer) -> f64 {
    let metrics = scrape(server).await;
    assert_eq!(metrics.kind("ares_http_requests_in_flight"), Some("gauge"));
    metrics.value("ares_http_requests_in_flight", &[]).expect("ares_http_requests_in_flight")
}

#[tokio::test]
async fn a_request_counts_as_in_flight_from_its_head_until_its_answer_is_done() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start();
    assert_eq!(in_flight(&server).await, 1.0, "only the scrape itself");
    // A head without its body: in flight until the connection goes.
    let mut stalled = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stalled
        .write_all(b"POST /api/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    let deadline = Instant::now() + SETTLE;
    while in_flight(&server).await < 2.0 {
        assert!(Instant::now() < deadline, "the stalled request never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stalled);
    while in_flight(&server).await > 1.0 {
        assert!(Instant::now() < deadline, "a request whose client left still counts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stream_counts_as_in_flight_after_its_head_until_its_last_event() {
    let rig = Rig::start("");
    let tenant = rig.tenant("streamer", "enterprise").await;
    // Ten chunks 100 ms apart: the stream is open for about a second after its head.
    rig.openai.enqueue(
        Script::reply("one two three four five six seven eight nine ten").chunk_delay(Duration::from_millis(100)),
    );
    let body = json!({ "model": FAST_MODEL, "stream": true, "messages": [{ "role": "user", "content": "slowly" }] });
    let response = rig.post("/v1/chat/completions", &tenant.key, None, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(in_flight(&rig.server).await, 2.0, "the open stream and the scrape");
    let events = sse_events(response).await;
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{events:?}");
    let deadline = Instant::now() + SETTLE;
    while in_flight(&rig.server).await > 1.0 {
        assert!(Instant::now() < deadline, "a finished stream still counts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn per_tenant_metrics_label_requests_and_tokens_with_the_tenant_id() {
    let rig = Rig::start("[metrics]\nper_tenant = true");
    let a = rig.tenant("labelled-a", "pro").await;
    let b = rig.tenant("labelled-b", "pro").await;
    rig.openai.enqueue(Script::reply("For A.").usage(17, 5));
    expect_json(rig.completion(&a.key, &fresh_id("pa"), FAST_MODEL, "a").await, 200).await;
    rig.openai.enqueue(Script::reply("For B.").usage(4, 1));
    expect_json(rig.completion(&b.key, &fresh_id("pb"), FAST_MODEL, "b").await, 200).await;
    assert_eq!(rig.server.v1(Method::GET, "/v1/usage", &b.key).send().await.unwrap().status(), 200);

    let metrics = scrape(&rig.server).await;
    let http = "ares_http_requests_total";
    let chat = |tenant: &str| {
        metrics.counter(
            http,
            &[("route", "/v1/chat/completions"), ("method", "POST"), ("status", "200"), ("tenant", tenant)],
        )
    };
    assert_eq!((chat(&a.id), chat(&b.id)), (1.0, 1.0));
    let usage = [("route", "/v1/usage"), ("method", "GET"), ("status", "200"), ("tenant", b.id.as_str())];
    assert_eq!(metrics.counter(http, &usage), 1.0);
    for labels in metrics.label_sets(http) {
        assert!(labels.contains_key("tenant"), "{labels:?}");
    }
    let tokens = |tenant: &str, direction: &str| {
        metrics.counter(
            "ares_llm_tokens_total",
            &[("provider", OPENAI_PROVIDER), ("model", FAST_MODEL), ("direction", direction), ("tenant", tenant)],
        )
    };
    assert_eq!((tokens(&a.id, "input"), tokens(&a.id, "output")), (17.0, 5.0));
    assert_eq!((tokens(&b.id, "input"), tokens(&b.id, "output")), (4.0, 1.0));
    // Only those two families carry it.
    for sample in &metrics.samples {
        let family = family_name(&sample.name, &metrics.types);
        if family != http && family != "ares_llm_tokens_total" {
            assert!(!sample.labels.contains_key("tenant"), "{sample:?}");
        }
    }
    let calls = [("provider", OPENAI_PROVIDER), ("model", FAST_MODEL), ("outcome", "ok")];
    assert_eq!(metrics.counter("ares_llm_requests_total", &calls), 2.0);
}

// ---------------------------------------------------------------- OTLP traces

/// One request the OTLP receiver got.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    body: String,
}

/// A tiny OTLP/HTTP receiver: answers every request `200 {}` and keeps it.
struct OtlpReceiver {
    server: StubServer,
    received: Arc<Mutex<Vec<Received>>>,
}

impl OtlpReceiver {
    fn start() -> OtlpReceiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = received.clone();
        let server = StubServer::start(move |request: http::Request<Incoming>| {
            let sink = sink.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                let content_type =
                    parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
                sink.lock().expect("receiver lock").push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    content_type,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
                let mut response = http::Response::new(Full::new(Bytes::from_static(b"{}")));
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                response
            }
        });
        OtlpReceiver { server, received }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }
}

/// Every span of every export request, parsed.
fn all_spans(received: &[Received]) -> Vec<Value> {
    let mut spans = Vec::new();
    for post in received {
        let body: Value = serde_json::from_str(&post.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", post.body));
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    spans
}

/// A span attribute's `value` object (`{"stringValue": ...}`, `{"intValue": ...}`, ...).
fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

fn string_attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attribute(span, key)?["stringValue"].as_str()
}

/// The SERVER span of the request `request_id`, if exported yet.
fn request_span<'a>(spans: &'a [Value], request_id: &str) -> Option<&'a Value> {
    spans.iter().find(|s| s["kind"] == 2 && string_attribute(s, "ares.request_id") == Some(request_id))
}

/// The CLIENT spans whose parent is `parent`.
fn children<'a>(spans: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["kind"] == 3 && s["parentSpanId"] == parent["spanId"]).collect()
}

fn is_hex(value: &Value, len: usize) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0'))
}

/// The SERVER span's name and the attributes every request span has.
fn assert_request_span(span: &Value, method: &str, route: &str, status: u16, request_id: &str) {
    assert_eq!(span["name"], format!("{method} {route}"), "{span}");
    assert_eq!(span["kind"], 2, "{span}");
    assert!(is_hex(&span["traceId"], 32) && is_hex(&span["spanId"], 16), "{span}");
    assert_eq!(attribute(span, "http.request.method"), Some(&json!({ "stringValue": method })), "{span}");
    assert_eq!(attribute(span, "http.route"), Some(&json!({ "stringValue": route })), "{span}");
    let status = json!({ "intValue": status.to_string() });
    assert_eq!(attribute(span, "http.response.status_code"), Some(&status), "{span}");
    assert_eq!(attribute(span, "ares.request_id"), Some(&json!({ "stringValue": request_id })), "{span}");
    let nanos = |field: &str| -> u128 {
        span[field].as_str().unwrap_or_else(|| panic!("{field} is not a string: {span}")).parse().unwrap()
    };
    assert!(nanos("endTimeUnixNano") >= nanos("startTimeUnixNano"), "{span}");
}

/// A CLIENT span of a successful upstream call.
fn assert_call_span(span: &Value, parent: &Value, provider_kind: &str, model_id: &str, tokens: (u64, u64)) {
    assert_eq!(span["kind"], 3, "{span}");
    assert_eq!(span["traceId"], parent["traceId"], "{span}");
    assert_eq!(span["parentSpanId"], parent["spanId"], "{span}");
    assert!(is_hex(&span["spanId"], 16) && span["spanId"] != parent["spanId"], "{span}");
    assert_eq!(span["name"], format!("chat {model_id}"), "{span}");
    assert_eq!(string_attribute(span, "gen_ai.operation.name"), Some("chat"), "{span}");
    assert_eq!(string_attribute(span, "gen_ai.provider.name"), Some(provider_kind), "{span}");
    assert_eq!(string_attribute(span, "gen_ai.request.model"), Some(model_id), "{span}");
    let int = |n: u64| json!({ "intValue": n.to_string() });
    assert_eq!(attribute(span, "gen_ai.usage.input_tokens"), Some(&int(tokens.0)), "{span}");
    assert_eq!(attribute(span, "gen_ai.usage.output_tokens"), Some(&int(tokens.1)), "{span}");
    let reasons = json!({ "arrayValue": { "values": [{ "stringValue": "stop" }] } });
    assert_eq!(attribute(span, "gen_ai.response.finish_reasons"), Some(&reasons), "{span}");
}

#[tokio::test]
async fn traces_go_to_the_otlp_endpoint_with_a_span_per_request_and_per_upstream_call() {
    let receiver = OtlpReceiver::start();
    let rig = Rig::start(&format!("[observability]\notlp_endpoint = \"{}\"", receiver.endpoint()));
    let tenant = rig.tenant("traced", "pro").await;
    let question = format!("secret-question-{}", uuid::Uuid::new_v4().simple());
    let answer = format!("secret-answer-{}", uuid::Uuid::new_v4().simple());
    let asked = format!("Please consider {question} carefully.");
    let answered = format!("Here is {answer} for you.");

    // A plain call, retried once.
    let plain = fresh_id("trace-plain");
    rig.openai.enqueue(Script::error(503, "overloaded"));
    rig.openai.enqueue(Script::reply(&answered).usage(17, 5));
    let response = rig.completion(&tenant.key, &plain, FAST_MODEL, &asked).await;
    let body = expect_json(response, 200).await;
    assert_eq!(body["choices"][0]["message"]["content"], answered.as_str());

    // The Anthropic dialect inside a caller's trace.
    let (trace_id, parent_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let joined = fresh_id("trace-joined");
    rig.anthropic.enqueue(Script::reply(&answered).usage(8, 2));
    let body = json!({ "model": CLAUDE_MODEL, "max_tokens": 64, "messages": [{ "role": "user", "content": asked }] });
    let response = rig
        .server
        .client()
        .post(rig.server.url("/v1/messages"))
        .header("x-api-key", &tenant.key)
        .header("anthropic-version", "2023-06-01")
        .header("x-request-id", &joined)
        .header("traceparent", format!("00-{trace_id}-{parent_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_json(response, 200).await;

    // A stream.
    let streamed = fresh_id("trace-stream");
    rig.anthropic.enqueue(Script::reply(&answered).usage(30, 6));
    assert_eq!(rig.stream(&tenant.key, &streamed, CLAUDE_MODEL, &asked).await, answered);

    // A request that calls no model, on a route with a parameter.
    let admin_call = fresh_id("trace-admin");
    let path = format!("/api/admin/tenants/{}/usage", tenant.id);
    expect_json(with_id(rig.server.admin(Method::GET, &path), Some(&admin_call)).send().await.unwrap(), 200).await;

    // The marker went upstream (so its absence from the traces means something).
    assert!(rig.openai.chat_requests().iter().any(|r| r.body.to_string().contains(&question)));

    let deadline = Instant::now() + SETTLE;
    let (received, spans) = loop {
        let received = receiver.received();
        let spans = all_spans(&received);
        let done = [&plain, &joined, &streamed, &admin_call].iter().all(|id| request_span(&spans, id).is_some());
        if done {
            break (received, spans);
        }
        assert!(Instant::now() < deadline, "spans never arrived; received {} requests: {received:#?}", received.len());
        tokio::time::sleep(POLL).await;
    };

    for post in &received {
        assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/v1/traces"));
        let content_type = post.content_type.as_deref().unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let body: Value = serde_json::from_str(&post.body).unwrap();
        let resources = body["resourceSpans"].as_array().unwrap_or_else(|| panic!("no resourceSpans: {body}"));
        assert!(!resources.is_empty(), "{body}");
        for resource in resources {
            let service = resource["resource"]["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["key"] == "service.name"))
                .map(|a| a["value"].clone());
            assert_eq!(service, Some(json!({ "stringValue": "ares" })), "{resource}");
            for scope in resource["scopeSpans"].as_array().unwrap_or_else(|| panic!("no scopeSpans: {resource}")) {
                assert!(scope["scope"].is_object(), "{scope}");
                assert!(scope["spans"].is_array(), "{scope}");
            }
        }
        // Never the content of a message, asked or answered.
        assert!(!post.body.contains(&question), "the user's message was exported: {}", post.body);
        assert!(!post.body.contains(&answer), "the model's answer was exported: {}", post.body);
    }

    // The retried call: one request span, two call spans in its trace.
    let span = request_span(&spans, &plain).unwrap();
    assert_request_span(span, "POST", "/v1/chat/completions", 200, &plain);
    assert!(span.get("parentSpanId").is_none_or(|p| p == "" || p.is_null()), "a root span: {span}");
    let calls = children(&spans, span);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let (failed, ok): (Vec<&Value>, Vec<&Value>) = calls.into_iter().partition(|c| c["status"]["code"] == 2);
    assert_eq!((failed.len(), ok.len()), (1, 1), "one failed call and one answered");
    assert_call_span(ok[0], span, "openai", FAST_UPSTREAM_ID, (17, 5));
    assert_eq!(failed[0]["name"], format!("chat {FAST_UPSTREAM_ID}"));
    assert_eq!(failed[0]["traceId"], span["traceId"]);

    // The caller's trace is joined.
    let span = request_span(&spans, &joined).unwrap();
    assert_request_span(span, "POST", "/v1/messages", 200, &joined);
    assert_eq!((span["traceId"].as_str(), span["parentSpanId"].as_str()), (Some(trace_id), Some(parent_span)));
    let calls = children(&spans, span);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_call_span(calls[0], span, "anthropic", CLAUDE_UPSTREAM_ID, (8, 2));

    let span = request_span(&spans, &streamed).unwrap();
    assert_request_span(span, "POST", "/v1/chat/completions", 200, &streamed);
    let calls = children(&spans, span);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_call_span(calls[0], span, "anthropic", CLAUDE_UPSTREAM_ID, (30, 6));

    let span = request_span(&spans, &admin_call).unwrap();
    assert_request_span(span, "GET", "/api/admin/tenants/{tenant_id}/usage", 200, &admin_call);
    assert!(children(&spans, span).is_empty());

    // Requests outside any caller's trace each start their own.
    let traces: BTreeSet<&str> = [&plain, &streamed, &admin_call]
        .iter()
        .map(|id| request_span(&spans, id).unwrap()["traceId"].as_str().unwrap())
        .collect();
    assert_eq!(traces.len(), 3, "{traces:?}");
}

#[tokio::test]
async fn without_an_otlp_endpoint_nothing_is_contacted() {
    // The OTLP default ports: if either is taken on this machine, there is nothing to watch.
    let listeners: Vec<std::net::TcpListener> =
        ["127.0.0.1:4318", "127.0.0.1:4317"].iter().filter_map(|a| std::net::TcpListener::bind(a).ok()).collect();
    if listeners.len() < 2 {
        eprintln!("ports 4317/4318 are taken on this machine: nothing to watch, not checked");
        return;
    }
    for listener in &listeners {
        listener.set_nonblocking(true).unwrap();
    }
    let rig = Rig::start("");
    let tenant = rig.tenant("untraced", "pro").await;
    expect_json(rig.completion(&tenant.key, &fresh_id("untraced"), FAST_MODEL, "hi").await, 200).await;
    // Traces would be exported within a second.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        for listener in &listeners {
            assert!(listener.accept().is_err(), "something connected to {:?}", listener.local_addr());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- JSON logs

/// `[server].log_format = "json"`: every stderr line of the real binary is one JSON object
/// with time, level, target and message; every request has an access line naming its request
/// id, route pattern (not the raw path), status, duration and tenant; and neither the admin
/// secret nor an API key appears anywhere, not even for a failed attempt that presented one.
#[tokio::test]
async fn json_logs_are_one_object_per_line_with_an_access_line_per_request_and_no_secret() {
    let root = tempfile::tempdir().unwrap();
    let server = crate::harness::BinaryServer::builder(root.path()).config("[server]\nlog_format = \"json\"").start();
    let provisioned = server.provision("json-logs", "pro", "generic").await;
    let key = provisioned["raw_api_key"].as_str().unwrap();
    let tenant_id = provisioned["tenant_id"].as_str().unwrap();
    let usage = server
        .client()
        .get(server.url("/v1/usage"))
        .bearer_auth(key)
        .header("x-request-id", "json-log-usage")
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), 200);
    let wrong_key = format!("{}0", &key[..key.len() - 1]);
    let refused = server
        .client()
        .get(server.url(&format!("/api/conversations/{tenant_id}")))
        .bearer_auth(&wrong_key)
        .header("x-request-id", "json-log-refused")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let log = server.wait_for_stderr("json-log-refused");

    let mut access = HashMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let object: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(object.get(field).is_some_and(|v| !v.is_null()), "no {field}: {line}");
        }
        if object["message"] == "request" {
            access.insert(object["request_id"].as_str().unwrap_or_default().to_string(), object);
        }
    }
    let usage_line = &access["json-log-usage"];
    assert_eq!(usage_line["level"], "INFO", "{usage_line}");
    assert_eq!(
        (&usage_line["method"], &usage_line["route"], &usage_line["status"], &usage_line["tenant_id"]),
        (&json!("GET"), &json!("/v1/usage"), &json!(200), &json!(tenant_id)),
        "{usage_line}"
    );
    assert!(usage_line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{usage_line}");
    let refused_line = &access["json-log-refused"];
    assert_eq!(
        (&refused_line["route"], &refused_line["status"], &refused_line["tenant_id"]),
        (&json!("/api/conversations/{id}"), &json!(401), &json!("-")),
        "the route pattern, not the path with its id: {refused_line}"
    );
    assert!(access.values().any(|l| l["route"] == "/api/admin/provision-client"), "the admin's request too");
    for secret in [server.admin_secret(), key, wrong_key.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    assert!(!log.contains(&format!("/api/conversations/{tenant_id}")), "raw paths stay out of access lines");
}
