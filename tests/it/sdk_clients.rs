//! The official `openai` and `anthropic` Python SDKs, unmodified from PyPI, against the real
//! server: each test starts a [`Gateway`], provisions a tenant, scripts the mock provider, runs
//! one scenario of `tests/sdk/clients.py` in `target/sdk-venv` (made by
//! `tests/sdk/python_env.sh ensure`) and checks what reached the provider and what was metered.
//!
//! Chat, streaming and tools go through every upstream wire format: any model through either
//! dialect.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ares::rag::embedder::Embedder;
use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, calc_agent};
use crate::harness::{TestServer, expect_json, repo_root, venv_python};
use crate::mock_provider::{RecordedRequest, Script, Wire};

/// How the venv is made; named in the failure when it is missing.
/// Guard against hangs, not a performance assertion: one scenario, all its SDK calls.
const SCENARIO_GUARD: Duration = Duration::from_secs(120);
/// Guard for usage and runs that are recorded just after a response ends.
const RECORD_GUARD: Duration = Duration::from_secs(10);

const REPLY: &str = "Hello from the mock, through the SDK.";
const PROMPT_TOKENS: u32 = 13;
const COMPLETION_TOKENS: u32 = 5;

/// What clients.py sends back as the result of `get_weather` (`WEATHER_RESULT`), and the
/// tool's schema (`WEATHER_SCHEMA`).
fn weather_result() -> Value {
    json!({ "temperature": 18, "unit": "celsius", "sky": "clear" })
}

fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": { "type": "string", "description": "The city's name" },
            "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] },
        },
        "required": ["city"],
    })
}

fn weather_arguments() -> Value {
    json!({ "city": "Paris", "unit": "celsius" })
}

/// One run of `clients.py <scenario>` against a server, with its expectations in the env.
struct Sdk {
    base_url: String,
    key: String,
    env: Vec<(String, String)>,
}

impl Sdk {
    fn new(server: &TestServer, key: &str) -> Sdk {
        let env = vec![
            ("ARES_MODEL".to_string(), MODEL.to_string()),
            ("ARES_REPLY".to_string(), REPLY.to_string()),
            ("ARES_PROMPT_TOKENS".to_string(), PROMPT_TOKENS.to_string()),
            ("ARES_COMPLETION_TOKENS".to_string(), COMPLETION_TOKENS.to_string()),
        ];
        Sdk { base_url: server.base_url(), key: key.to_string(), env }
    }

    fn env(mut self, name: &str, value: impl Into<String>) -> Sdk {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// Run the scenario; panics with its output unless it exits 0. `what` says which server
    /// it ran against (e.g. the upstream wire).
    async fn run(self, scenario: &str, what: &str) {
        let python = venv_python();
        let scenario = scenario.to_string();
        let what = what.to_string();
        let outcome = tokio::task::spawn_blocking(move || self.run_blocking(&python, &scenario, &what))
            .await
            .expect("the scenario's thread");
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    }

    /// The scenario's outcome: `Err` with its output and environment unless it passed.
    fn run_blocking(self, python: &Path, scenario: &str, what: &str) -> Result<(), String> {
        // Output to files, not pipes: nothing to drain while the child runs.
        let dir = tempfile::tempdir().expect("a temp dir for the scenario's output");
        let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let stdout = std::fs::File::create(&out_path).expect("stdout file");
        let stderr = std::fs::File::create(&err_path).expect("stderr file");
        let mut command = Command::new(python);
        command
            .arg(repo_root().join("tests/sdk/clients.py"))
            .arg(scenario)
            // Nothing of the developer's environment (OPENAI_*, ANTHROPIC_AUTH_TOKEN, proxies)
            // may change what the SDKs send.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("ARES_BASE_URL", &self.base_url)
            .env("ARES_API_KEY", &self.key)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
        let deadline = Instant::now() + SCENARIO_GUARD;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the scenario") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        // Values shortened: the expected embeddings alone are thousands of characters.
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(name, value)| match value.char_indices().nth(120) {
                Some((end, _)) => format!("{name}={}…", &value[..end]),
                None => format!("{name}={value}"),
            })
            .collect();
        let report = |outcome: String| {
            format!(
                "SDK scenario {scenario} ({what}) {outcome}\n--- stdout\n{out}--- stderr\n{err}--- env\n{}",
                env.join("\n")
            )
        };
        match status {
            Some(status) if status.success() && out.contains(&format!("ok {scenario}")) => Ok(()),
            Some(status) => Err(report(format!("failed ({status})"))),
            None => Err(report(format!("still running after {SCENARIO_GUARD:?}"))),
        }
    }
}

/// Poll `GET /v1/usage` until the tenant's tokens reach `total` (they are settled as the
/// response ends, which the client may see first).
async fn assert_tokens_metered(gw: &Gateway, key: &str, total: u64, what: &str) {
    let deadline = Instant::now() + RECORD_GUARD;
    loop {
        let usage = expect_json(gw.get("/v1/usage", key).await, 200).await;
        if usage["total_tokens"].as_u64() == Some(total) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: expected {total} tokens metered, usage is {usage}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll until the tenant has `count` runs of `agent`.
async fn assert_runs(gw: &Gateway, tenant: &str, agent: &str, count: usize) {
    let deadline = Instant::now() + RECORD_GUARD;
    let path = format!("/api/admin/tenants/{tenant}/agents/{agent}/runs");
    loop {
        let runs = gw.server.admin_get(&path).await;
        if runs["runs"].as_array().map(Vec::len) == Some(count) {
            return;
        }
        assert!(Instant::now() < deadline, "expected {count} runs of {agent}: {runs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mock_reply() -> Script {
    Script::reply(REPLY).usage(PROMPT_TOKENS, COMPLETION_TOKENS)
}

/// Sampling parameters a scenario sends, to find in the provider's wire format.
struct Sampling {
    max_tokens: u64,
    /// Temperature and top_p (the Anthropic SDK has neither).
    temperature_top_p: Option<(f64, f64)>,
    stop: &'static str,
    seed: Option<u64>,
}

/// What clients.py's `openai_chat` sends.
const OPENAI_SAMPLING: Sampling =
    Sampling { max_tokens: 50, temperature_top_p: Some((0.5, 0.75)), stop: "END", seed: Some(7) };
/// What clients.py's `anthropic_messages` sends.
const ANTHROPIC_SAMPLING: Sampling = Sampling { max_tokens: 100, temperature_top_p: None, stop: "END", seed: None };

/// The client's sampling as it reached the provider in its own wire format (Anthropic's has no
/// seed).
fn assert_sampling(request: &RecordedRequest, wire: Wire, sent: &Sampling) {
    let body = &request.body;
    let (sampling, max_key, stop_key) = match wire {
        Wire::OpenAi => (body, "max_tokens", "stop"),
        Wire::Anthropic => (body, "max_tokens", "stop_sequences"),
        Wire::Ollama => (&body["options"], "num_predict", "stop"),
    };
    let max_tokens = sampling[max_key].as_u64().or_else(|| sampling["max_completion_tokens"].as_u64());
    let temperature_top_p = sampling["temperature"].as_f64().zip(sampling["top_p"].as_f64());
    let seed = if wire == Wire::Anthropic { None } else { sent.seed };
    assert_eq!(
        (max_tokens, temperature_top_p, &sampling[stop_key], sampling["seed"].as_u64()),
        (Some(sent.max_tokens), sent.temperature_top_p, &json!([sent.stop]), seed),
        "{wire:?}: the client's sampling reaches the provider: {body}"
    );
}

fn has_turn(request: &RecordedRequest, role: &str, text: &str) -> bool {
    request.transcript().iter().any(|(r, t)| r == role && t == text)
}

/// The JSON schema of the one tool offered upstream, whatever the wire format.
fn offered_schema(request: &RecordedRequest) -> Value {
    let tools = request.body["tools"].as_array().cloned().unwrap_or_default();
    assert_eq!(tools.len(), 1, "one tool offered upstream: {}", request.body);
    let tool = &tools[0];
    tool.pointer("/function/parameters").or_else(|| tool.get("input_schema")).cloned().unwrap_or(Value::Null)
}

/// The four upstream calls of a client-tool round trip, plain then streamed: the client's tool
/// was offered, its call came back to the client (the server ran nothing), and the client's
/// result reached the model with the call it answers.
fn assert_client_tool_round_trips(requests: &[RecordedRequest], wire: Wire) {
    assert_eq!(requests.len(), 4, "{wire:?}: two round trips, nothing run by the server: {requests:#?}");
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request.tools_offered(), Some(vec!["get_weather".to_string()]), "{wire:?} call {i}");
        assert_eq!(offered_schema(request), weather_schema(), "{wire:?} call {i}: the schema goes upstream as sent");
        assert_eq!(request.is_stream(), i >= 2, "{wire:?} call {i}: streamed as the client asked");
        assert!(has_turn(request, "user", "What's the weather in Paris?"), "{wire:?} call {i}");
    }
    for answer in [&requests[1], &requests[3]] {
        let calls = answer.tool_calls_sent();
        assert_eq!(calls.len(), 1, "{wire:?}: the assistant's call is echoed upstream: {}", answer.body);
        assert_eq!((calls[0].name.as_str(), &calls[0].arguments), ("get_weather", &weather_arguments()), "{wire:?}");
        let results = answer.tool_results();
        assert_eq!(results.len(), 1, "{wire:?}: the client's result goes upstream: {}", answer.body);
        let content: Value = serde_json::from_str(&results[0].content)
            .unwrap_or_else(|e| panic!("{wire:?}: the result is the client's JSON ({e}): {results:?}"));
        assert_eq!(content, weather_result(), "{wire:?}");
        if wire != Wire::Ollama {
            assert!(calls[0].id.is_some(), "{wire:?}: the echoed call has an id");
            assert_eq!(results[0].call_id, calls[0].id, "{wire:?}: the result answers the echoed call");
        }
    }
}

// ------------------------------------------------------------------------------------ OpenAI

#[tokio::test]
async fn openai_sdk_lists_models_tiers_and_agents() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("sdk-models").await;
    Sdk::new(&gw.server, &key)
        .env("ARES_TIERS", "balanced")
        // The tenant's own agent (from the generic template) and a platform agent.
        .env("ARES_AGENTS", "assistant,product")
        .env("ARES_ABSENT", "agent:router")
        .run("openai_models", "openai wire")
        .await;
    assert!(gw.mock.chat_requests().is_empty(), "listing models calls no model");
}

#[tokio::test]
async fn openai_sdk_chat_through_every_upstream_wire() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("sdk-chat").await;
        gw.mock.set_script(mock_reply());
        Sdk::new(&gw.server, &key).run("openai_chat", wire.kind()).await;

        let requests = gw.mock.chat_requests();
        assert_eq!(requests.len(), 2, "plain, then with_raw_response ({wire:?})");
        for request in &requests {
            assert!(!request.is_stream(), "{wire:?}");
            assert!(has_turn(request, "system", "Be brief."), "{wire:?}: {:?}", request.transcript());
            assert!(has_turn(request, "user", "Say hello."), "{wire:?}: {:?}", request.transcript());
            assert_sampling(request, wire, &OPENAI_SAMPLING);
        }
        let total = 2 * u64::from(PROMPT_TOKENS + COMPLETION_TOKENS);
        assert_tokens_metered(&gw, &key, total, wire.kind()).await;
    }
}

#[tokio::test]
async fn openai_sdk_streams_with_usage_through_every_upstream_wire() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("sdk-stream").await;
        gw.mock.set_script(mock_reply());
        Sdk::new(&gw.server, &key).run("openai_stream_usage", wire.kind()).await;

        let requests = gw.mock.chat_requests();
        assert_eq!(requests.len(), 2, "{wire:?}");
        assert!(requests.iter().all(RecordedRequest::is_stream), "{wire:?}: streamed upstream too");
        if wire == Wire::OpenAi {
            for request in &requests {
                assert_eq!(request.body["stream_options"]["include_usage"], true, "real usage is asked for");
            }
        }
        let total = 2 * u64::from(PROMPT_TOKENS + COMPLETION_TOKENS);
        assert_tokens_metered(&gw, &key, total, wire.kind()).await;
    }
}

#[tokio::test]
async fn openai_sdk_client_tools_round_trip_through_every_upstream_wire() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("sdk-tools").await;
        for _ in 0..2 {
            gw.mock.enqueue(Script::tool_call("get_weather", weather_arguments()));
            gw.mock.enqueue(mock_reply());
        }
        Sdk::new(&gw.server, &key)
            .env("ARES_TOOL_ARGS", weather_arguments().to_string())
            .run("openai_client_tools", wire.kind())
            .await;
        assert_client_tool_round_trips(&gw.mock.chat_requests(), wire);
    }
}

#[tokio::test]
async fn openai_sdk_agent_model_runs_server_side_tools() {
    let gw = Gateway::builder(Wire::OpenAi).config(&calc_agent("sdk-calc")).start();
    let (tenant, key) = gw.tenant("sdk-agent").await;
    let reply = "2+3*4 is 14.";
    for _ in 0..2 {
        gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "2+3*4" })).usage(10, 3));
        gw.mock.enqueue(Script::reply(reply).usage(30, 6));
    }
    Sdk::new(&gw.server, &key)
        .env("ARES_AGENT", "sdk-calc")
        .env("ARES_REPLY", reply)
        .run("openai_agent_model", "openai wire")
        .await;

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 4, "two agent runs of two model calls: {requests:#?}");
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request.tools_offered(), Some(vec!["calculator".to_string()]), "call {i}: the agent's tools");
        let system = request.transcript().into_iter().find(|(role, _)| role == "system");
        assert!(
            system.as_ref().is_some_and(|(_, text)| text.contains("You compute things.")),
            "call {i}: the agent's prompt: {system:?}"
        );
    }
    for answer in [&requests[1], &requests[3]] {
        let results = answer.tool_results();
        assert_eq!(results.len(), 1, "the server ran the calculator: {}", answer.body);
        let result: Value = serde_json::from_str(&results[0].content).expect("a calculator result is JSON");
        assert_eq!(result["result"], "14");
    }
    assert_tokens_metered(&gw, &key, 2 * (10 + 3 + 30 + 6), "agent runs").await;
    assert_runs(&gw, &tenant, "sdk-calc", 2).await;
}

#[tokio::test]
async fn openai_sdk_embeddings_float_and_base64() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("sdk-embed").await;
    let input = ["The quick brown fox jumps over the lazy dog.", "Retrieval works offline."];
    // The built-in embedder at its default size ([rag.embedder].dimensions).
    let vectors = Embedder::Hash { dimensions: 384 }.embed_blocking(&input).expect("hash embeddings");
    let expected = json!({ "input": input, "vectors": vectors });
    Sdk::new(&gw.server, &key)
        .env("ARES_EXPECTED_EMBEDDINGS", expected.to_string())
        .run("openai_embeddings", "hash embedder")
        .await;
    assert!(gw.mock.requests().is_empty(), "the hash embedder is built in");
}

#[tokio::test]
async fn openai_sdk_errors_are_typed_exceptions() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("sdk-errors").await;
    Sdk::new(&gw.server, &key).run("openai_errors", "openai wire").await;
    assert!(gw.mock.chat_requests().is_empty(), "no error reached the provider");
}

#[tokio::test]
async fn openai_sdk_over_quota_is_a_rate_limit_error() {
    let quotas = "[quotas.free]\nmonthly_requests = 1000\nmonthly_tokens = 0\ndaily_requests = 1000";
    let gw = Gateway::builder(Wire::OpenAi).config(quotas).start();
    // A token quota of zero is exhausted from the first call.
    let provisioned = gw.server.provision("sdk-quota", "free", "generic").await;
    let key = provisioned["raw_api_key"].as_str().expect("a key");
    Sdk::new(&gw.server, key).run("openai_quota", "exhausted quota").await;
    assert!(gw.mock.chat_requests().is_empty(), "a refused call reaches no provider");
}

/// Create an enabled agent owned by `tenant` through the admin API.
async fn tenant_agent(server: &TestServer, tenant: &str, name: &str) {
    let path = format!("/api/admin/tenants/{tenant}/agents");
    let body = json!({ "name": name, "agent_type": "custom", "config": { "model": "balanced" } });
    let response = server.admin(reqwest::Method::POST, &path).json(&body).send().await.expect("create agent");
    expect_json(response, 201).await;
}

#[tokio::test]
async fn openai_sdk_key_never_sees_another_tenants_agents() {
    let gw = Gateway::start(Wire::OpenAi);
    let (tenant_a, key_a) = gw.tenant("sdk-tenant-a").await;
    let (tenant_b, _) = gw.tenant("sdk-tenant-b").await;
    tenant_agent(&gw.server, &tenant_a, "a-own-agent").await;
    tenant_agent(&gw.server, &tenant_b, "b-private-agent").await;
    Sdk::new(&gw.server, &key_a)
        .env("ARES_AGENT", "a-own-agent")
        .env("ARES_OTHER_AGENT", "b-private-agent")
        .run("openai_isolation", "two tenants")
        .await;
    assert!(gw.mock.chat_requests().is_empty(), "another tenant's agent never runs");
}

// --------------------------------------------------------------------------------- Anthropic

#[tokio::test]
async fn anthropic_sdk_messages_through_every_upstream_wire() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("sdk-messages").await;
        gw.mock.set_script(mock_reply());
        Sdk::new(&gw.server, &key).run("anthropic_messages", wire.kind()).await;

        let requests = gw.mock.chat_requests();
        assert_eq!(requests.len(), 2, "system as a string, then as blocks ({wire:?})");
        for request in &requests {
            assert!(!request.is_stream(), "{wire:?}");
            assert!(has_turn(request, "system", "Be brief."), "{wire:?}: {:?}", request.transcript());
            assert!(has_turn(request, "user", "Say hello."), "{wire:?}: {:?}", request.transcript());
            assert_sampling(request, wire, &ANTHROPIC_SAMPLING);
        }
        let total = 2 * u64::from(PROMPT_TOKENS + COMPLETION_TOKENS);
        assert_tokens_metered(&gw, &key, total, wire.kind()).await;
    }
}

#[tokio::test]
async fn anthropic_sdk_streams_through_every_upstream_wire() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("sdk-anthropic-stream").await;
        gw.mock.set_script(mock_reply());
        Sdk::new(&gw.server, &key).run("anthropic_stream", wire.kind()).await;

        let requests = gw.mock.chat_requests();
        assert_eq!(requests.len(), 2, "{wire:?}");
        assert!(requests.iter().all(RecordedRequest::is_stream), "{wire:?}: streamed upstream too");
        let total = 2 * u64::from(PROMPT_TOKENS + COMPLETION_TOKENS);
        assert_tokens_metered(&gw, &key, total, wire.kind()).await;
    }
}

#[tokio::test]
async fn anthropic_sdk_tool_use_round_trips_through_every_upstream_wire() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("sdk-anthropic-tools").await;
        for _ in 0..2 {
            gw.mock.enqueue(Script::tool_call("get_weather", weather_arguments()));
            gw.mock.enqueue(mock_reply());
        }
        Sdk::new(&gw.server, &key)
            .env("ARES_TOOL_ARGS", weather_arguments().to_string())
            .run("anthropic_tools", wire.kind())
            .await;
        assert_client_tool_round_trips(&gw.mock.chat_requests(), wire);
    }
}

#[tokio::test]
async fn anthropic_sdk_counts_tokens() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("sdk-count").await;
    Sdk::new(&gw.server, &key).run("anthropic_count_tokens", "openai wire").await;
    assert!(gw.mock.chat_requests().is_empty(), "counting tokens runs no model");
}

#[tokio::test]
async fn anthropic_sdk_errors_are_typed_exceptions() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("sdk-anthropic-errors").await;
    Sdk::new(&gw.server, &key).run("anthropic_errors", "openai wire").await;
    assert!(gw.mock.chat_requests().is_empty(), "no error reached the provider");
}
