//! Upstream resilience (issue 15): retries with backoff and `Retry-After`, circuit breakers per
//! deployment, weighted and least-in-flight choice among a model's deployments, fallback models
//! (also for prompts too long for a model's window), stream failover before the first token and
//! none after it, the `X-Ares-Served-By` / `X-Ares-Attempts` headers, `GET /api/admin/providers`
//! and the config checks.
//!
//! Every upstream is its own [`MockProvider`] and its own `[[providers]]` entry, with small
//! backoffs and cooldowns so each test stays fast. Timing is asserted only as correctness bounds
//! (a `Retry-After` was waited for; a capped one was not waited out).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{SseEvent, sse_events};
use crate::harness::{JWT_SECRET, TestServer, expect_error, expect_json, header, http_client, run_cli};
use crate::mock_provider::{MockProvider, Script, Wire};

/// Keys every test provider gets unless the test overrides them: fast retries and cooldowns, and
/// timeouts that are hang guards only.
const PROVIDER_DEFAULTS: &str = r#"
connect_timeout_secs = 2
read_timeout_secs = 10
retry_initial_ms = 1
retry_max_ms = 5
breaker_cooldown_secs = 1
"#;

/// Polling guard for state that settles asynchronously (audit rows, in-flight counts).
const SETTLE_GUARD: Duration = Duration::from_secs(10);

/// The provider-side model id a test gives provider `provider` (`alpha` → `alpha-model`).
fn model_id(provider: &str) -> String {
    format!("{provider}-model")
}

/// What `X-Ares-Served-By` names when `provider` answered with its default model id.
fn served(provider: &str) -> String {
    format!("{provider}/{}", model_id(provider))
}

/// A `[[models]]` entry served by several deployments, `(provider, weight)` each, with the
/// provider's default model id; `extra` adds keys (`fallbacks`, `tier`, ...).
fn pool_model(name: &str, deployments: &[(&str, u32)], extra: &str) -> String {
    let list: Vec<String> = deployments
        .iter()
        .map(|(provider, weight)| {
            format!(r#"{{ provider = "{provider}", model_id = "{}", weight = {weight} }}"#, model_id(provider))
        })
        .collect();
    format!("\n[[models]]\nname = \"{name}\"\ndeployments = [{}]\n{extra}\n", list.join(", "))
}

/// A `[[models]]` entry served by one provider under `model_id`.
fn single_model(name: &str, provider: &str, model_id: &str, extra: &str) -> String {
    format!("\n[[models]]\nname = \"{name}\"\nprovider = \"{provider}\"\nmodel_id = \"{model_id}\"\n{extra}\n")
}

/// A server whose providers are mocks, one per name, and a tenant key to call it with.
///
/// The mocks are dropped before the server, so a call still waiting on a hung mock fails at once
/// instead of holding up the server's shutdown.
struct Rig {
    upstreams: Vec<(&'static str, MockProvider)>,
    server: TestServer,
    key: String,
    tenant: String,
}

impl Rig {
    /// One OpenAI-compatible mock per `(name, extra provider keys)`, each its own `[[providers]]`
    /// entry ([`PROVIDER_DEFAULTS`] overridden by the extra keys), plus `models` (TOML).
    async fn start(providers: &[(&'static str, &str)], models: &str) -> Rig {
        let mut upstreams = Vec::new();
        let mut entries = Vec::new();
        for (name, extra) in providers {
            let mock = MockProvider::start();
            mock.set_script(Script::reply(&format!("{name} answers.")));
            let mut entry: toml::Table = PROVIDER_DEFAULTS.parse().expect("defaults are TOML");
            let overrides: toml::Table = extra.parse().unwrap_or_else(|e| panic!("provider keys for {name}: {e}"));
            entry.extend(overrides);
            entry.insert("name".into(), (*name).into());
            entry.insert("type".into(), Wire::OpenAi.kind().into());
            entry.insert("base_url".into(), mock.base_url(Wire::OpenAi).into());
            entries.push(toml::Value::Table(entry));
            upstreams.push((*name, mock));
        }
        let mut providers = toml::Table::new();
        providers.insert("providers".into(), toml::Value::Array(entries));
        let config = format!("{}\n{models}", toml::to_string(&providers).expect("providers serialize"));
        let server = TestServer::builder().config(&config).start();
        let provisioned = server.provision("resilience", "enterprise", "generic").await;
        let key = provisioned["raw_api_key"].as_str().expect("raw API key").to_string();
        let tenant = provisioned["tenant_id"].as_str().expect("tenant id").to_string();
        Rig { upstreams, server, key, tenant }
    }

    fn mock(&self, name: &str) -> &MockProvider {
        self.upstreams.iter().find(|(n, _)| *n == name).map(|(_, m)| m).unwrap_or_else(|| panic!("no upstream {name}"))
    }

    /// Chat calls the upstream `name` has received.
    fn hits(&self, name: &str) -> usize {
        self.mock(name).chat_requests().len()
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.server.v1(Method::POST, path, &self.key).json(body).send().await.expect("POST request")
    }

    /// `POST /v1/chat` with the platform agent `product` on `model`.
    async fn chat(&self, model: &str, message: &str) -> reqwest::Response {
        self.post("/v1/chat", &json!({ "message": message, "agent_type": "product", "model": model })).await
    }

    /// `POST /v1/chat/completions`, not streamed.
    async fn completion(&self, model: &str, message: &str) -> reqwest::Response {
        self.post(
            "/v1/chat/completions",
            &json!({ "model": model, "messages": [{ "role": "user", "content": message }] }),
        )
        .await
    }

    /// `POST /v1/chat/completions` with `stream: true`.
    async fn stream(&self, model: &str, message: &str) -> reqwest::Response {
        let body = json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": message }] });
        self.post("/v1/chat/completions", &body).await
    }

    async fn providers(&self) -> Value {
        self.server.admin_get("/api/admin/providers").await
    }

    /// The `/api/admin/providers` entry of `model` on `provider`.
    async fn deployment(&self, provider: &str, model: &str) -> Value {
        let page = self.providers().await;
        find_deployment(&page, provider, model)
    }

    /// Audit rows about a circuit of `provider`, newest first.
    async fn circuit_audit(&self, provider: &str) -> Vec<Value> {
        let page = self.server.admin_get("/api/admin/audit-log?limit=200").await;
        let entries = page["entries"].as_array().unwrap_or_else(|| panic!("audit entries: {page}"));
        entries
            .iter()
            .filter(|e| {
                let action = format!("{} {}", e["action"], e["legacy_action"]).to_lowercase();
                action.contains("circuit") && e["resource_id"].as_str().is_some_and(|id| id.contains(provider))
            })
            .cloned()
            .collect()
    }

    /// Poll (within a guard) until `done` holds for the circuit audit rows of `provider`.
    async fn wait_for_circuit_audit(&self, provider: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + SETTLE_GUARD;
        loop {
            let entries = self.circuit_audit(provider).await;
            if done(&entries) {
                return entries;
            }
            assert!(Instant::now() < deadline, "never saw {what} in the audit log; circuit rows: {entries:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn find_provider<'a>(page: &'a Value, provider: &str) -> &'a Value {
    let providers = page["providers"].as_array().unwrap_or_else(|| panic!("no providers array: {page}"));
    providers.iter().find(|p| p["name"] == provider).unwrap_or_else(|| panic!("no provider {provider}: {page}"))
}

fn find_deployment(page: &Value, provider: &str, model: &str) -> Value {
    let entry = find_provider(page, provider);
    let deployments = entry["deployments"].as_array().unwrap_or_else(|| panic!("no deployments: {entry}"));
    deployments
        .iter()
        .find(|d| d["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("no deployment of {model} on {provider}: {entry}"))
}

fn served_by(response: &reqwest::Response) -> String {
    header(response, "x-ares-served-by").unwrap_or_else(|| panic!("no X-Ares-Served-By ({})", response.status()))
}

fn attempts(response: &reqwest::Response) -> usize {
    let value =
        header(response, "x-ares-attempts").unwrap_or_else(|| panic!("no X-Ares-Attempts ({})", response.status()));
    value.parse().unwrap_or_else(|e| panic!("X-Ares-Attempts {value:?} is not a count: {e}"))
}

fn rfc3339(value: &Value) -> time::OffsetDateTime {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

/// The text of a Chat Completions stream and whether it ended normally (`data: [DONE]`, no
/// error object). Panics on an event that is neither a chunk, `[DONE]` nor an error.
fn stream_outcome(events: &[SseEvent]) -> (String, StreamEnd) {
    let mut text = String::new();
    let mut end = StreamEnd::Unfinished;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(end, StreamEnd::Unfinished, "event {i} after the end of the stream: {events:?}");
        if event.data == "[DONE]" {
            end = StreamEnd::Done;
            continue;
        }
        let value = event.json();
        if value.get("error").is_some() {
            end = StreamEnd::Error(value);
            continue;
        }
        assert_eq!(value["object"], "chat.completion.chunk", "{events:?}");
        if let Some(piece) = value.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            text.push_str(piece);
        }
    }
    (text, end)
}

#[derive(Debug, PartialEq)]
enum StreamEnd {
    Done,
    Error(Value),
    Unfinished,
}

// ---------------------------------------------------------------------------------------------
// The mock's failure modes used below, proven against a plain HTTP client.

#[tokio::test]
async fn the_mock_resets_connections_cuts_streams_and_sends_extra_headers() {
    let mock = MockProvider::start();
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let ask =
        |stream: bool| json!({ "model": "m", "stream": stream, "messages": [{ "role": "user", "content": "hi" }] });

    mock.enqueue(Script::error(429, "slow down").header("retry-after-ms", "300").header("retry-after", "1"));
    let response = http_client().post(&url).json(&ask(false)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after-ms").as_deref(), Some("300"));
    assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "slow down");

    mock.enqueue(Script::reset());
    let outcome = http_client().post(&url).json(&ask(false)).send().await;
    assert!(outcome.is_err(), "a reset connection answers nothing: {outcome:?}");
    assert_eq!(mock.chat_requests().len(), 2, "the reset request was read and recorded");

    // Role chunk, "one ", "two ", then the connection goes: no [DONE], no clean end.
    mock.enqueue(Script::reply("one two three four").cut_after(3).header("x-mock", "cut"));
    let response = http_client().post(&url).json(&ask(true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-mock").as_deref(), Some("cut"));
    let mut response = response;
    let mut received = String::new();
    let failed = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(failed, "a cut stream does not end cleanly; received {received:?}");
    assert!(received.contains("\"one \"") && received.contains("\"two \""), "{received}");
    assert!(!received.contains("three") && !received.contains("[DONE]"), "{received}");

    // A cut JSON answer: headers, half a body, then the connection goes.
    mock.enqueue(Script::reply("a whole answer").cut_after(1));
    let response = http_client().post(&url).json(&ask(false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "a cut JSON answer does not end cleanly");

    // The mock keeps serving after cutting connections.
    let response = http_client().post(&url).json(&ask(false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Deployments, retries and the circuit breaker.

/// Deployment A always fails, B is healthy: every chat succeeds, answered by B; each failed try
/// on A shows as one more attempt, and A's circuit opens after `breaker_failures`.
#[tokio::test]
async fn no_client_sees_an_error_while_one_healthy_deployment_remains() {
    let rig = Rig::start(
        &[("alpha", "breaker_failures = 3\nbreaker_cooldown_secs = 60"), ("beta", "")],
        &pool_model("pool", &[("alpha", 3), ("beta", 1)], "tier = \"balanced\""),
    )
    .await;
    rig.mock("alpha").set_script(Script::error(500, "alpha is down"));
    rig.mock("beta").set_script(Script::reply("Beta answers."));

    let mut failovers = 0;
    for i in 0..20 {
        let response = rig.chat("pool", &format!("question {i}")).await;
        let (by, tries) = (served_by(&response), attempts(&response));
        let body = expect_json(response, 200).await;
        assert_eq!(body["response"], "Beta answers.", "chat {i}");
        assert_eq!(by, served("beta"), "chat {i}: only beta can answer");
        assert!((1..=3).contains(&tries), "chat {i}: {tries} attempts with max_retries = 2");
        failovers += tries - 1;
    }
    assert_eq!(rig.hits("beta"), 20, "beta answered each chat exactly once");
    let alpha = rig.hits("alpha");
    assert_eq!(failovers, alpha, "every request alpha failed is one more attempt of some chat");
    assert_eq!(alpha, 3, "alpha (weight 3 of 4) is tried until its circuit opens after 3 failures");
    for request in rig.mock("beta").chat_requests() {
        assert_eq!(request.body["model"], model_id("beta"), "each deployment gets its own model id");
    }
    let circuit = rig.deployment("alpha", "pool").await;
    assert_eq!(circuit["circuit"], "open", "{circuit}");
}

/// `breaker_failures` consecutive failures open a deployment's circuit (no requests reach it while
/// open); after `breaker_cooldown_secs` one trial goes through and its success closes the circuit.
/// Opening and closing are audited.
#[tokio::test]
async fn a_failing_deployment_opens_its_circuit_and_a_successful_trial_closes_it() {
    const COOLDOWN: Duration = Duration::from_secs(2);
    let rig = Rig::start(
        &[("alpha", "breaker_failures = 3\nbreaker_cooldown_secs = 2"), ("beta", "")],
        &pool_model("pool", &[("alpha", 4), ("beta", 1)], ""),
    )
    .await;
    rig.mock("alpha").set_script(Script::error(503, "alpha is overloaded"));

    // Chats until alpha has failed three times; beta answers all of them.
    let mut third_failure_sent = None;
    for i in 0..60 {
        let sent = Instant::now();
        let response = rig.completion("pool", &format!("question {i}")).await;
        assert_eq!(served_by(&response), served("beta"), "chat {i}");
        expect_json(response, 200).await;
        if rig.hits("alpha") >= 3 {
            third_failure_sent = Some(sent);
            break;
        }
    }
    let third_failure_sent = third_failure_sent.expect("alpha (weight 4 of 5) failed 3 times within 60 chats");
    assert_eq!(rig.hits("alpha"), 3);

    let alpha = rig.deployment("alpha", "pool").await;
    let observed_open = Instant::now();
    assert_eq!(alpha["circuit"], "open", "{alpha}");
    assert_eq!(alpha["consecutive_failures"], 3, "{alpha}");
    assert!(alpha["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{alpha}");
    let failed_at = rfc3339(&alpha["last_failure_at"]);
    let retry_at = rfc3339(&alpha["retry_at"]);
    assert!(retry_at > failed_at, "the trial comes after the cooldown: {alpha}");
    let beta = rig.deployment("beta", "pool").await;
    assert_eq!((beta["circuit"].as_str(), beta["consecutive_failures"].as_u64()), (Some("closed"), Some(0)), "{beta}");
    rig.wait_for_circuit_audit("alpha", "the circuit opening", |rows| !rows.is_empty()).await;

    // While the circuit is open, alpha gets nothing. Only chats that surely end before the
    // cooldown can be over count (the circuit opened after the third failing chat was sent).
    let mut while_open = 0;
    while while_open < 10 && third_failure_sent.elapsed() + Duration::from_millis(300) < COOLDOWN {
        let response = rig.completion("pool", "while open").await;
        assert_eq!((served_by(&response), attempts(&response)), (served("beta"), 1));
        expect_json(response, 200).await;
        while_open += 1;
    }
    assert!(while_open > 0, "no chat fitted in the cooldown");
    assert_eq!(rig.hits("alpha"), 3, "an open circuit sends nothing upstream");

    // After the cooldown, alpha is healthy again: the trial request reaches it and closes it.
    let wait = (COOLDOWN + Duration::from_millis(300)).saturating_sub(observed_open.elapsed());
    tokio::time::sleep(wait).await;
    rig.mock("alpha").set_script(Script::reply("Alpha is back."));
    let mut trial = None;
    for i in 0..40 {
        let response = rig.completion("pool", &format!("after the cooldown {i}")).await;
        let by = served_by(&response);
        let body = expect_json(response, 200).await;
        if rig.hits("alpha") > 3 {
            trial = Some((by, body));
            break;
        }
    }
    let (by, body) = trial.expect("alpha (weight 4 of 5) got its trial within 40 chats");
    assert_eq!(by, served("alpha"));
    assert_eq!(body["choices"][0]["message"]["content"], "Alpha is back.");
    assert_eq!(rig.hits("alpha"), 4, "one trial");
    let alpha = rig.deployment("alpha", "pool").await;
    assert_eq!(alpha["circuit"], "closed", "{alpha}");
    assert_eq!(alpha["consecutive_failures"], 0, "{alpha}");
    assert!(alpha["retry_at"].is_null(), "a closed circuit has no trial time: {alpha}");

    // Closed again: alpha takes its share.
    for i in 0..10 {
        expect_json(rig.completion("pool", &format!("closed {i}")).await, 200).await;
    }
    assert!(rig.hits("alpha") > 4, "alpha (weight 4 of 5) got none of 10 chats after closing");
    let rows = rig
        .wait_for_circuit_audit("alpha", "the circuit closing", |rows| {
            rows.len() >= 2 && rows[0].to_string().to_lowercase().contains("clos")
        })
        .await;
    assert!(rows.iter().skip(1).any(|r| r.to_string().to_lowercase().contains("open")), "{rows:#?}");
}

/// 400, 401, 403, 404 and 422 are the request's fault, not the upstream's health: returned at
/// once (no retry, no fallback) with today's mapping (502 `LLM_ERROR` naming the status), and no
/// circuit counts them even with `breaker_failures = 1`.
#[tokio::test]
async fn upstream_client_errors_are_returned_at_once_and_never_open_a_circuit() {
    let rig = Rig::start(
        &[("alpha", "max_retries = 2\nbreaker_failures = 1"), ("beta", "")],
        &format!(
            "{}{}",
            single_model("solo", "alpha", &model_id("alpha"), "fallbacks = [\"backup\"]"),
            single_model("backup", "beta", &model_id("beta"), "")
        ),
    )
    .await;
    for status in [400, 401, 403, 404, 422] {
        let before = rig.hits("alpha");
        rig.mock("alpha").set_script(Script::error(status, &format!("refused with {status}")));
        let error = expect_error(rig.chat("solo", "hi").await, 502, "LLM_ERROR").await;
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(&format!("HTTP {status}")), "{status}: {message}");
        assert_eq!(rig.hits("alpha"), before + 1, "{status}: exactly one upstream request");
        assert_eq!(rig.hits("beta"), 0, "{status}: no fallback either");
        let alpha = rig.deployment("alpha", "solo").await;
        assert_eq!(alpha["circuit"], "closed", "{status}: {alpha}");
        assert_eq!(alpha["consecutive_failures"], 0, "{status}: {alpha}");
    }
    rig.mock("alpha").set_script(Script::reply("Fine now."));
    let response = rig.chat("solo", "hi").await;
    assert_eq!((served_by(&response), attempts(&response)), (served("alpha"), 1));
    assert_eq!(expect_json(response, 200).await["response"], "Fine now.");
}

/// A 429 is retried after the upstream's `retry-after-ms` or `Retry-After`, capped by
/// `retry_max_ms`.
#[tokio::test]
async fn a_rate_limited_call_is_retried_after_the_upstream_s_retry_after() {
    let rig = Rig::start(
        &[("alpha", "max_retries = 2\nretry_max_ms = 2000"), ("beta", "max_retries = 2\nretry_max_ms = 20")],
        &format!(
            "{}{}",
            single_model("solo", "alpha", &model_id("alpha"), ""),
            single_model("capped", "beta", &model_id("beta"), "")
        ),
    )
    .await;
    rig.mock("alpha").set_script(Script::reply("After the wait."));
    for (retry_header, value, at_least) in
        [("retry-after-ms", "300", Duration::from_millis(300)), ("retry-after", "1", Duration::from_secs(1))]
    {
        let before = rig.hits("alpha");
        rig.mock("alpha").enqueue(Script::error(429, "slow down").header(retry_header, value));
        let started = Instant::now();
        let response = rig.completion("solo", "hi").await;
        let elapsed = started.elapsed();
        assert_eq!((served_by(&response), attempts(&response)), (served("alpha"), 2), "{retry_header}");
        let body = expect_json(response, 200).await;
        assert_eq!(body["choices"][0]["message"]["content"], "After the wait.");
        assert_eq!(rig.hits("alpha"), before + 2, "{retry_header}");
        assert!(elapsed >= at_least, "{retry_header}: {value} was not waited for ({elapsed:?})");
    }

    // Thirty seconds asked, twenty milliseconds allowed: the retry does not wait 30 s.
    rig.mock("beta").enqueue(Script::error(429, "much later").header("retry-after", "30"));
    let started = Instant::now();
    let response = rig.completion("capped", "hi").await;
    assert_eq!((served_by(&response), attempts(&response)), (served("beta"), 2));
    expect_json(response, 200).await;
    assert!(started.elapsed() < Duration::from_secs(20), "Retry-After is capped by retry_max_ms");
}

/// With `max_retries = 2` a model makes three requests at most, then the client gets today's
/// error for the last failure: 502 `LLM_ERROR` for a 503, 429 for a rate limit.
#[tokio::test]
async fn a_model_gives_up_after_max_retries_plus_one_requests() {
    let alpha = "max_retries = 2\nbreaker_failures = 50";
    let rig = Rig::start(&[("alpha", alpha)], &single_model("solo", "alpha", &model_id("alpha"), "")).await;
    rig.mock("alpha").set_script(Script::error(503, "unavailable"));
    let error = expect_error(rig.chat("solo", "hi").await, 502, "LLM_ERROR").await;
    assert!(error["error"].as_str().unwrap().contains("503"), "{error}");
    assert_eq!(rig.hits("alpha"), 3, "one request and two retries");

    rig.mock("alpha").set_script(Script::error(429, "slow down").header("retry-after-ms", "1"));
    expect_error(rig.chat("solo", "hi").await, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(rig.hits("alpha"), 6, "a rate limit is retried the same way");

    rig.mock("alpha").set_script(Script::reset());
    expect_error(rig.chat("solo", "hi").await, 502, "LLM_ERROR").await;
    assert_eq!(rig.hits("alpha"), 9, "a connection reset is retried the same way");
}

/// Weights 3 and 1 split 1,000 calls 750 ± 75 / 250 ± 75 (sequential calls: no request is ever
/// in flight when the next is placed, so only the weights decide).
#[tokio::test]
async fn deployments_share_traffic_by_weight() {
    let rig = Rig::start(&[("alpha", ""), ("beta", "")], &pool_model("pool", &[("alpha", 3), ("beta", 1)], "")).await;
    let mut by_header = (0, 0);
    for i in 0..1000 {
        let response = rig.completion("pool", "hi").await;
        assert_eq!(response.status(), 200, "call {i}");
        let by = served_by(&response);
        if by == served("alpha") {
            by_header.0 += 1;
        } else {
            assert_eq!(by, served("beta"), "call {i}");
            by_header.1 += 1;
        }
    }
    let (alpha, beta) = (rig.hits("alpha"), rig.hits("beta"));
    assert_eq!((alpha, beta), by_header, "X-Ares-Served-By names the upstream that answered");
    assert_eq!(alpha + beta, 1000);
    assert!((675..=825).contains(&alpha), "weight 3 of 4 got {alpha} of 1,000");
}

/// Equal weights, but alpha is slow: calls arriving while alpha still has one in flight go to
/// beta, which has none.
#[tokio::test]
async fn the_deployment_with_fewer_requests_in_flight_is_preferred() {
    let rig = Rig::start(&[("alpha", ""), ("beta", "")], &pool_model("pool", &[("alpha", 1), ("beta", 1)], "")).await;
    rig.mock("alpha").set_script(Script::reply("Slow.").delay(Duration::from_millis(500)));
    rig.mock("beta").set_script(Script::reply("Fast."));
    let mut calls = Vec::new();
    for i in 0..20 {
        let request = rig
            .server
            .v1(Method::POST, "/v1/chat/completions", &rig.key)
            .json(&json!({ "model": "pool", "messages": [{ "role": "user", "content": format!("call {i}") }] }));
        calls.push(tokio::spawn(async move { request.send().await.expect("completion request").status() }));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let (alpha, beta) = (rig.hits("alpha"), rig.hits("beta"));
    assert_eq!(alpha + beta, 20);
    assert!(2 * alpha <= beta, "the slow deployment got {alpha} calls, the fast one {beta}");
}

/// A model whose retries are spent hands the call to its fallbacks in order: a model name or a
/// tier name.
#[tokio::test]
async fn a_model_falls_back_when_its_retries_are_spent() {
    let models = [
        single_model("primary", "alpha", &model_id("alpha"), "fallbacks = [\"backup\"]"),
        single_model("backup", "beta", &model_id("beta"), ""),
        single_model("tiered", "alpha", "alpha-other", "fallbacks = [\"powerful\"]"),
        single_model("strong", "gamma", &model_id("gamma"), "tier = \"powerful\""),
    ];
    let rig = Rig::start(&[("alpha", "max_retries = 1"), ("beta", ""), ("gamma", "")], &models.concat()).await;
    rig.mock("alpha").set_script(Script::error(503, "primary is down"));
    rig.mock("beta").set_script(Script::reply("Backup answers."));
    rig.mock("gamma").set_script(Script::reply("The powerful tier answers."));

    let response = rig.chat("primary", "hi").await;
    assert_eq!(served_by(&response), served("beta"));
    assert!(attempts(&response) >= 1);
    assert_eq!(expect_json(response, 200).await["response"], "Backup answers.");
    assert_eq!(rig.hits("alpha"), 2, "the primary's request and its one retry");
    assert_eq!(rig.hits("beta"), 1);
    assert_eq!(rig.mock("beta").chat_requests()[0].body["model"], model_id("beta"));

    let response = rig.completion("tiered", "hi").await;
    assert_eq!(served_by(&response), served("gamma"), "a tier name as fallback");
    let body = expect_json(response, 200).await;
    assert_eq!(body["choices"][0]["message"]["content"], "The powerful tier answers.");
    assert_eq!(rig.hits("alpha"), 4);
    assert_eq!(rig.hits("gamma"), 1);
}

/// A prompt over a model's `context_length` (≈ chars / 4 tokens) is never sent to it: the call
/// goes straight to the first fallback with a larger (or no) window.
#[tokio::test]
async fn a_prompt_too_long_for_a_model_goes_to_a_fallback_with_room() {
    let models = [
        single_model("small", "alpha", &model_id("alpha"), "context_length = 50\nfallbacks = [\"tiny\", \"big\"]"),
        single_model("tiny", "gamma", &model_id("gamma"), "context_length = 20"),
        single_model("big", "beta", &model_id("beta"), ""),
    ];
    let rig = Rig::start(&[("alpha", ""), ("beta", ""), ("gamma", "")], &models.concat()).await;

    let response = rig.completion("small", "Short question?").await;
    assert_eq!(served_by(&response), served("alpha"), "a prompt that fits stays on the model");
    expect_json(response, 200).await;

    let long = "All work and no play makes a long prompt. ".repeat(48);
    assert!(long.len() >= 2000);
    let response = rig.completion("small", &long).await;
    assert_eq!(served_by(&response), served("beta"), "big, on beta");
    let body = expect_json(response, 200).await;
    assert_eq!(body["choices"][0]["message"]["content"], "beta answers.");
    assert_eq!(rig.hits("alpha"), 1, "the small model's upstream never sees the long prompt");
    assert_eq!(rig.hits("gamma"), 0, "a fallback with a smaller window is skipped");
    let sent = rig.mock("beta").chat_requests();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].transcript().iter().any(|(_, text)| text == &long), "the whole prompt went to big");
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// Stream `rounds` completions from a pool where alpha (weight 50) fails as `failing` says and
/// beta (weight 1) streams normally: each client sees beta's text once and a normal end, and
/// the attempts header counts alpha's tries.
async fn stream_failover(rig: &Rig, label: &str, failing: Script, rounds: usize) {
    rig.mock("alpha").set_script(failing);
    let reply = "Beta streams this whole answer.";
    rig.mock("beta").set_script(Script::reply(reply));
    let alpha_before = rig.hits("alpha");
    let mut retried = 0;
    for round in 0..rounds {
        let response = rig.stream("pool", &format!("round {round}")).await;
        let (by, tries) = (served_by(&response), attempts(&response));
        let events = sse_events(response).await;
        let (text, end) = stream_outcome(&events);
        assert_eq!(end, StreamEnd::Done, "{label} round {round}: {events:?}");
        let roles = events.iter().filter(|e| e.data.contains("\"role\"")).count();
        assert_eq!(roles, 1, "{label} round {round}: one start of the message: {events:?}");
        assert_eq!(text, reply, "{label} round {round}: beta's text exactly once");
        assert_eq!(by, served("beta"), "{label} round {round}");
        retried += tries - 1;
    }
    let alpha = rig.hits("alpha") - alpha_before;
    assert!(alpha >= 1, "{label}: alpha (weight 50 of 51) was never tried");
    assert_eq!(retried, alpha, "{label}: each failed try on alpha is one more attempt");
}

/// A pool where alpha is preferred 50:1, never trips its breaker during the test and gives a
/// stream one second for its first token.
async fn stream_pool() -> Rig {
    let alpha = "breaker_failures = 50\nfirst_token_timeout_secs = 1";
    Rig::start(&[("alpha", alpha), ("beta", "")], &pool_model("pool", &[("alpha", 50), ("beta", 1)], "")).await
}

#[tokio::test]
async fn a_stream_failing_before_its_first_token_is_retried_elsewhere_invisibly() {
    let rig = stream_pool().await;
    stream_failover(&rig, "500", Script::error(500, "alpha exploded"), 3).await;
    stream_failover(&rig, "529", Script::error(529, "alpha overloaded"), 2).await;
    stream_failover(&rig, "reset", Script::reset(), 3).await;
    // Headers and the role chunk, then the connection goes before any text.
    stream_failover(&rig, "cut before text", Script::reply("never seen").cut_after(1), 2).await;
}

#[tokio::test]
async fn a_stream_silent_past_the_first_token_timeout_is_retried_elsewhere() {
    let rig = stream_pool().await;
    // Nothing at all, not even headers.
    stream_failover(&rig, "hang", Script::hang(), 2).await;
    // Headers and the role chunk at once, the first text only after 5 s (the read timeout is 10).
    let late = Script::reply("far too late").chunk_delay(Duration::from_secs(5));
    stream_failover(&rig, "no text in time", late, 2).await;
}

/// Once text has reached the client, an upstream failure ends the stream with an error chunk
/// (as today) and nothing is retried: no fallback, no second deployment, no duplicated text.
#[tokio::test]
async fn a_stream_cut_after_its_first_token_ends_with_an_error_and_is_not_retried() {
    let models = [
        single_model("primary", "alpha", &model_id("alpha"), "fallbacks = [\"backup\"]"),
        single_model("backup", "beta", &model_id("beta"), ""),
    ];
    let rig = Rig::start(&[("alpha", "max_retries = 2\nbreaker_failures = 50"), ("beta", "")], &models.concat()).await;
    let answer = "one two three four five six";
    // Role chunk + "one " + "two ", then the connection is dropped; or half the chunks (how
    // many depends on whether usage was asked for) and a clean end of the body without `[DONE]`.
    for (script, exactly) in
        [(Script::reply(answer).cut_after(3), Some("one two ")), (Script::reply(answer).truncated(), None)]
    {
        let before = rig.hits("alpha");
        rig.mock("alpha").set_script(script);
        let response = rig.stream("primary", "count").await;
        assert_eq!((served_by(&response), attempts(&response)), (served("alpha"), 1));
        let events = sse_events(response).await;
        let (text, end) = stream_outcome(&events);
        match exactly {
            Some(expected) => assert_eq!(text, expected, "what alpha sent, once: {events:?}"),
            None => assert!(
                text.len() > "one ".len() && text.len() < answer.len() && answer.starts_with(&text),
                "part of alpha's answer, once: {events:?}"
            ),
        }
        let StreamEnd::Error(error) = end else { panic!("the stream must end with an error chunk: {events:?}") };
        assert_eq!(error["error"]["type"], "server_error", "{error}");
        assert_eq!(rig.hits("alpha"), before + 1, "not retried after the first token");
        assert_eq!(rig.hits("beta"), 0, "no fallback after the first token");
    }
}

/// The same with a second deployment ready: whichever deployment a stream starts on finishes it.
#[tokio::test]
async fn a_stream_cut_after_its_first_token_does_not_move_to_another_deployment() {
    let rig = Rig::start(
        &[("alpha", "breaker_failures = 1000"), ("beta", "")],
        &pool_model("pool", &[("alpha", 1), ("beta", 1)], ""),
    )
    .await;
    rig.mock("alpha").set_script(Script::reply("one two three four five six").cut_after(3));
    rig.mock("beta").set_script(Script::reply("Beta streams."));
    // Rounds until both deployments have started streams (at least 8): the choice is random by
    // weight, and a fixed round count would miss one of them now and then.
    let (mut cut, mut whole) = (0, 0);
    for round in 0..64 {
        if round >= 8 && cut >= 1 && whole >= 1 {
            break;
        }
        let (alpha_before, beta_before) = (rig.hits("alpha"), rig.hits("beta"));
        let response = rig.stream("pool", &format!("round {round}")).await;
        let by = served_by(&response);
        let (text, end) = stream_outcome(&sse_events(response).await);
        let (alpha, beta) = (rig.hits("alpha") - alpha_before, rig.hits("beta") - beta_before);
        if alpha == 1 {
            cut += 1;
            assert_eq!(by, served("alpha"), "round {round}");
            assert_eq!(text, "one two ", "round {round}");
            assert!(matches!(end, StreamEnd::Error(_)), "round {round}: {end:?}");
            assert_eq!(beta, 0, "round {round}: the cut stream went nowhere else");
        } else {
            whole += 1;
            assert_eq!((alpha, beta), (0, 1), "round {round}");
            assert_eq!((by, text, end), (served("beta"), "Beta streams.".to_string(), StreamEnd::Done));
        }
    }
    assert!(cut >= 1 && whole >= 1, "alpha started {cut} and beta {whole} of up to 64 streams (weights 1:1)");
}

// ---------------------------------------------------------------------------------------------
// Visibility.

#[tokio::test]
async fn every_llm_response_names_the_deployment_and_the_attempts() {
    let rig =
        Rig::start(&[("alpha", "")], &single_model("solo", "alpha", &model_id("alpha"), "tier = \"balanced\"")).await;
    let expect = |response: &reqwest::Response, tries: usize, route: &str| {
        assert_eq!(served_by(response), served("alpha"), "{route}");
        assert_eq!(attempts(response), tries, "{route}");
    };

    let response = rig.chat("solo", "hi").await;
    expect(&response, 1, "/v1/chat");
    expect_json(response, 200).await;

    let response = rig.completion("solo", "hi").await;
    expect(&response, 1, "/v1/chat/completions");
    expect_json(response, 200).await;

    let response = rig.stream("solo", "hi").await;
    expect(&response, 1, "/v1/chat/completions, streamed");
    let (text, end) = stream_outcome(&sse_events(response).await);
    assert_eq!((text.as_str(), end), ("alpha answers.", StreamEnd::Done));

    let body = json!({ "model": "solo", "max_tokens": 16, "messages": [{ "role": "user", "content": "hi" }] });
    let response = rig.post("/v1/messages", &body).await;
    expect(&response, 1, "/v1/messages");
    assert_eq!(expect_json(response, 200).await["type"], "message");

    rig.mock("alpha").enqueue(Script::error(500, "once"));
    let response = rig.completion("solo", "hi").await;
    expect(&response, 2, "/v1/chat/completions after one retry");
    expect_json(response, 200).await;

    rig.mock("alpha").enqueue(Script::reset());
    let response = rig.chat("solo", "hi").await;
    expect(&response, 2, "/v1/chat after one reset");
    expect_json(response, 200).await;

    // The chat's run records the same: who answered, after how many requests (newest first).
    let runs = rig.server.admin_get(&format!("/api/admin/tenants/{}/agents/product/runs", rig.tenant)).await;
    let newest = &runs["runs"][0];
    assert_eq!((newest["served_by"].as_str(), newest["attempts"].as_u64()), (Some(served("alpha").as_str()), Some(2)));
}

#[tokio::test]
async fn the_providers_page_shows_each_deployment_s_circuit_to_the_admin_only() {
    let alpha_keys = "max_retries = 0\nbreaker_failures = 5";
    let beta_keys = "api_key_env = \"RESILIENCE_KEY_NOT_SET\"";
    let pool = r#"
[[models]]
name = "pool"
deployments = [
    { provider = "alpha", model_id = "alpha-pool", weight = 2 },
    { provider = "beta", model_id = "beta-pool", weight = 1 },
]
"#;
    let models = format!("{}{pool}", single_model("solo", "alpha", "alpha-solo", ""));
    let rig = Rig::start(&[("alpha", alpha_keys), ("beta", beta_keys)], &models).await;

    let url = rig.server.url("/api/admin/providers");
    let response = rig.server.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401, "no admin secret");
    let response = rig.server.client().get(&url).header("x-admin-secret", "wrong").send().await.unwrap();
    assert_eq!(response.status(), 401, "a wrong admin secret");
    let response = rig.server.client().get(&url).bearer_auth(&rig.key).send().await.unwrap();
    assert_eq!(response.status(), 401, "a tenant key is not the admin secret");

    let page = rig.providers().await;
    let alpha = find_provider(&page, "alpha");
    assert_eq!(alpha["type"], "openai");
    assert_eq!(alpha["base_url"], rig.mock("alpha").base_url(Wire::OpenAi));
    assert_eq!(alpha["available"], true);
    assert!(alpha.get("disabled_reason").is_some_and(Value::is_null), "{alpha}");
    let beta = find_provider(&page, "beta");
    assert_eq!(beta["available"], false);
    assert!(beta["disabled_reason"].as_str().is_some_and(|r| r.contains("RESILIENCE_KEY_NOT_SET")), "{beta}");

    for (provider, model, id, weight) in
        [("alpha", "solo", "alpha-solo", 1), ("alpha", "pool", "alpha-pool", 2), ("beta", "pool", "beta-pool", 1)]
    {
        let deployment = find_deployment(&page, provider, model);
        assert_eq!(deployment["model_id"], id, "{deployment}");
        assert_eq!(deployment["weight"], weight, "{deployment}");
        assert_eq!(deployment["circuit"], "closed", "{deployment}");
        assert_eq!(deployment["consecutive_failures"], 0, "{deployment}");
        assert_eq!(deployment["in_flight"], 0, "{deployment}");
        for key in ["last_error", "last_failure_at", "retry_at"] {
            assert!(deployment.get(key).is_some_and(Value::is_null), "{key} is null before any failure: {deployment}");
        }
    }
    assert_eq!(alpha["deployments"].as_array().unwrap().len(), 2, "solo and pool: {page}");

    // One failure: counted and described, the circuit still closed (5 are needed).
    rig.mock("alpha").enqueue(Script::error(500, "a bad moment"));
    expect_error(rig.chat("solo", "hi").await, 502, "LLM_ERROR").await;
    let solo = rig.deployment("alpha", "solo").await;
    assert_eq!(solo["circuit"], "closed", "{solo}");
    assert_eq!(solo["consecutive_failures"], 1, "{solo}");
    assert!(solo["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{solo}");
    rfc3339(&solo["last_failure_at"]);
    assert!(solo["retry_at"].is_null(), "{solo}");
    let other = rig.deployment("alpha", "pool").await;
    assert_eq!(other["consecutive_failures"], 0, "circuits are per deployment: {other}");

    // A call in progress is in flight; its success resets the failure count.
    rig.mock("alpha").enqueue(Script::reply("Slowly.").delay(Duration::from_millis(800)));
    let request = rig.server.v1(Method::POST, "/v1/chat/completions", &rig.key).json(&json!({
        "model": "solo", "messages": [{ "role": "user", "content": "take your time" }]
    }));
    let call = tokio::spawn(async move { request.send().await.expect("completion request").status() });
    let deadline = Instant::now() + SETTLE_GUARD;
    loop {
        let solo = rig.deployment("alpha", "solo").await;
        if solo["in_flight"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the slow call never showed as in flight: {solo}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(call.await.unwrap(), 200);
    let solo = rig.deployment("alpha", "solo").await;
    assert_eq!((solo["in_flight"].as_u64(), solo["consecutive_failures"].as_u64()), (Some(0), Some(0)), "{solo}");
}

// ---------------------------------------------------------------------------------------------
// Configuration.

/// A provider the configs below can name.
const ALPHA: &str = "[[providers]]\nname = \"alpha\"\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";

#[test]
fn bad_resilience_settings_stop_the_server_at_start_up() {
    let secrets = [("ADMIN_API_KEY", "cli-admin-secret"), ("JWT_SECRET", JWT_SECRET)];
    let model = "\n[[models]]\nname = \"m\"\n";
    let cases = [
        (format!("{ALPHA}{model}provider = \"alpha\"\nmodel_id = \"x\"\nfallbacks = [\"nowhere\"]\n"), "nowhere"),
        (format!("{ALPHA}{model}deployments = [{{ provider = \"alpha\", model_id = \"x\", weight = 0 }}]\n"), "weight"),
        (format!("{ALPHA}breaker_failures = 0\n"), "breaker_failures"),
        (format!("{ALPHA}read_timeout_secs = 0\n"), "read_timeout_secs must be at least 1"),
    ];
    for (config, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, &config).unwrap();
        let data = dir.path().join("data");
        let (file, data) = (file.to_str().unwrap(), data.to_str().unwrap());
        let out = run_cli(dir.path(), &["--config", file, "--data-dir", data, "--port", "0"], &secrets);
        assert_eq!(out.code(), Some(2), "config {config:?}: {out:?}");
        assert!(out.stderr.contains(needle), "config {config:?}: stderr lacks {needle:?}:\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// At the default log level an operator sees every failed upstream call (request id, provider,
/// model, cause) and every 5xx answer (request id, path, status, cause).
#[tokio::test]
async fn failed_upstream_calls_and_5xx_answers_are_warn_lines() {
    let root = tempfile::tempdir().unwrap();
    let mock = MockProvider::start();
    mock.set_script(Script::error(503, "overloaded upstream"));
    let config = format!(
        r#"
[[providers]]
name = "alpha"
type = "openai"
base_url = "{base}"
max_retries = 1
retry_initial_ms = 1
retry_max_ms = 2

[[models]]
name = "solo"
provider = "alpha"
model_id = "alpha-model"
tier = "balanced"
"#,
        base = mock.base_url(Wire::OpenAi)
    );
    let server = crate::harness::BinaryServer::builder(root.path()).config(&config).start();
    let provisioned = server.provision("logs", "enterprise", "generic").await;
    let key = provisioned["raw_api_key"].as_str().unwrap();
    let response = server
        .client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", "trace-me-503")
        .json(&json!({ "model": "solo", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let deadline = Instant::now() + SETTLE_GUARD;
    let log = loop {
        let log = server.stderr();
        if log.contains("request failed") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let warns: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    let upstream: Vec<&&str> = warns.iter().filter(|l| l.contains("upstream call failed")).collect();
    assert_eq!(upstream.len(), 2, "both attempts: {log}");
    assert!(
        upstream.iter().all(|l| l.contains("trace-me-503") && l.contains("alpha-model") && l.contains("503")),
        "each names the request, the model and the cause: {log}"
    );
    let answer = warns
        .iter()
        .find(|l| l.contains("request failed") && l.contains("trace-me-503"))
        .unwrap_or_else(|| panic!("no WARN for the 502: {log}"));
    assert!(
        answer.contains("/v1/chat/completions")
            && answer.contains("502")
            && answer.contains("provider=alpha")
            && answer.contains("overloaded upstream"),
        "the 502 names its route, status, provider and cause: {answer}"
    );
    assert!(
        upstream.iter().all(|l| l.contains("route=\"/v1/chat/completions\"")),
        "the failed attempts name the route: {log}"
    );
}
