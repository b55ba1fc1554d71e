//! ARES as an MCP server: `POST /mcp` (Streamable HTTP, stateless, JSON answers) for a tenant
//! API key, and `ares mcp`, the stdio bridge to it that assistants start as a command.
//!
//! The client is the official MCP Python SDK, unmodified: `tests/mcp/client.py` in
//! `target/sdk-venv` (made by `tests/sdk/python_env.sh ensure`; a missing environment fails the
//! test with that command). It prints one JSON object per run (see its docstring).
//!
//! Covered: the seven tools and their schemas, each tool's answer against a mock provider
//! (`chat` continuing a conversation through its `context_id`, `run_agent` on an agent made
//! through the admin API, RAG ingest then search), both protocol modes (2026-07-28 through
//! `server/discover`, and the legacy `initialize`), 401 for a missing or wrong key, one metered
//! request (usage source `mcp`) and one request-log record (`mcp:<tool>`) per tool call and none
//! for the handshake or `tools/list`, tenants' collections kept apart, an exhausted quota as a
//! JSON-RPC error naming the limit, and `ares mcp` over stdio found through `--data-dir`,
//! `--url` or `ARES_URL`, refusing a wrong key promptly and a missing one with exit code 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ares::store::{self, MigrationPolicy, Store, usage};
use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, KEY_ENV, MODEL, PROVIDER_KEY, provider_config};
use crate::harness::{BinaryServer, TestServer, expect_error, expect_json, repo_root, run_cli, venv_python};
use crate::mock_provider::{MockProvider, RecordedRequest, Script, Wire};

/// How the Python environment is made; named in the failure when it is missing.
/// Guard against hangs, not a performance assertion: client.py gives up by itself after 60 s
/// (70 s hard), so a run still going after this is stuck outside it.
const CLIENT_GUARD: Duration = Duration::from_secs(90);
/// Guard for what is recorded just after a response (usage events, request-log records).
const RECORD_GUARD: Duration = Duration::from_secs(10);

/// The seven tools, sorted.
const TOOLS: [&str; 7] = ["calculator", "chat", "list_agents", "rag_ingest", "rag_search", "research", "run_agent"];
/// What the Python SDK adopts in `--mode auto` (through `server/discover`) and `--mode legacy`.
const MODERN_PROTOCOL: &str = "2026-07-28";
const LEGACY_PROTOCOL: &str = "2025-11-25";

// ---------------------------------------------------------------- driving client.py

fn list_tools() -> Value {
    json!({ "op": "list_tools" })
}

fn call(name: &str, arguments: Value) -> Value {
    json!({ "op": "call", "name": name, "arguments": arguments })
}

/// One finished run of client.py.
struct ClientRun {
    /// The command line, for failure messages.
    what: String,
    status: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl ClientRun {
    fn report(&self) -> String {
        format!(
            "{} (exit {:?}, {:?})\n--- stdout\n{}--- stderr\n{}",
            self.what, self.status, self.elapsed, self.stdout, self.stderr
        )
    }

    /// The one JSON object it printed; panics with the whole output when there is none.
    fn json(&self) -> Value {
        let line = self.stdout.lines().rev().find(|l| !l.trim().is_empty());
        line.and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("client.py printed no JSON object: {}", self.report()))
    }

    /// The steps' results; panics when it could not connect or did not finish.
    fn steps(&self) -> Vec<Value> {
        let out = self.json();
        assert_eq!(self.status, Some(0), "client.py failed: {}", self.report());
        out["steps"].as_array().unwrap_or_else(|| panic!("no steps (connect error?): {}", self.report())).clone()
    }

    /// The protocol version the client adopted.
    fn protocol_version(&self) -> Value {
        self.json()["protocol_version"].clone()
    }

    /// The connect error it reported; panics when it connected.
    fn connect_error(&self) -> String {
        let out = self.json();
        assert_eq!(self.status, Some(0), "client.py exits 0 on a connect error: {}", self.report());
        out["connect_error"]
            .as_str()
            .unwrap_or_else(|| panic!("expected a connect_error: {}", self.report()))
            .to_string()
    }
}

/// Run `client.py <args>` with a clean environment (`PATH` and `env` only) in `cwd`.
async fn run_client(args: Vec<String>, env: Vec<(String, String)>, cwd: PathBuf) -> ClientRun {
    let python = venv_python();
    tokio::task::spawn_blocking(move || run_client_blocking(&python, &args, &env, &cwd)).await.expect("client thread")
}

fn run_client_blocking(python: &Path, args: &[String], env: &[(String, String)], cwd: &Path) -> ClientRun {
    // Output to files, not pipes: nothing to drain while the child runs.
    let dir = tempfile::tempdir().expect("a temp dir for client.py's output");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/mcp/client.py"))
        .args(args)
        // Nothing of the developer's environment (ARES_URL, ARES_API_KEY, proxies) may leak in:
        // a stdio server gets exactly this environment.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let what = format!("client.py {}", args.join(" "));
    let started = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for client.py") {
            break status.code();
        }
        if started.elapsed() > CLIENT_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    ClientRun {
        what,
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed,
    }
}

/// client.py over Streamable HTTP at `<base>/mcp`.
async fn http(base: &str, key: Option<&str>, mode: &str, steps: &[Value]) -> ClientRun {
    let mut args = vec!["http".to_string(), format!("{base}/mcp")];
    if let Some(key) = key {
        args.extend(["--key".to_string(), key.to_string()]);
    }
    args.extend(["--mode".to_string(), mode.to_string(), "--script".to_string(), Value::from(steps).to_string()]);
    run_client(args, Vec::new(), repo_root()).await
}

/// client.py over stdio, spawning `ares <ares_args>` with `env` (client.py passes its whole
/// environment on), in `cwd`.
async fn stdio(ares_args: &[&str], env: &[(&str, &str)], cwd: &Path, steps: &[Value]) -> ClientRun {
    let mut args = vec!["stdio".to_string(), "--script".to_string(), Value::from(steps).to_string(), "--".to_string()];
    args.push(env!("CARGO_BIN_EXE_ares").to_string());
    args.extend(ares_args.iter().map(|a| a.to_string()));
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run_client(args, env, cwd.to_path_buf()).await
}

/// A successful tool result's text; panics unless step `step` is a call of `name` that is not
/// an error.
fn ok_text(step: &Value, name: &str) -> String {
    assert_eq!((step["op"].as_str(), step["name"].as_str()), (Some("call"), Some(name)), "{step}");
    assert_eq!(step["is_error"], false, "{name} answered an error or an RPC error: {step}");
    step["text"].as_str().unwrap_or_else(|| panic!("no text: {step}")).to_string()
}

/// A tool error's text (`isError`); panics unless step `step` is one.
fn error_text(step: &Value, name: &str) -> String {
    assert_eq!((step["op"].as_str(), step["name"].as_str()), (Some("call"), Some(name)), "{step}");
    assert_eq!(step["is_error"], true, "{name} should have answered a tool error: {step}");
    step["text"].as_str().unwrap_or_else(|| panic!("no text: {step}")).to_string()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the `list_tools` step offers exactly the seven tools with their input schemas;
/// returns the schemas by name.
fn assert_catalog(step: &Value) -> BTreeMap<String, Value> {
    assert_eq!(step["op"], "list_tools", "{step}");
    let tools = step["tools"].as_array().unwrap_or_else(|| panic!("no tools: {step}"));
    let schemas: BTreeMap<String, Value> =
        tools.iter().map(|t| (t["name"].as_str().unwrap().to_string(), t["input_schema"].clone())).collect();
    assert_eq!(schemas.keys().map(String::as_str).collect::<Vec<_>>(), TOOLS, "{step}");
    assert_eq!(schemas.len(), tools.len(), "a tool listed twice: {step}");
    for tool in tools {
        let description = tool["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "a tool without a description: {tool}");
    }
    let required = |name: &str| -> Vec<String> {
        let mut names: Vec<String> = schemas[name]["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let properties = |name: &str| -> Vec<String> {
        let mut names: Vec<String> =
            schemas[name]["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        names.sort();
        names
    };
    for name in TOOLS {
        assert_eq!(schemas[name]["type"], "object", "{name}: {}", schemas[name]);
    }
    assert!(properties("list_agents").is_empty() && required("list_agents").is_empty(), "{}", schemas["list_agents"]);
    assert_eq!(
        (properties("run_agent"), required("run_agent")),
        (vec!["agent".into(), "input".into()], vec!["agent".into(), "input".into()])
    );
    assert_eq!(properties("chat"), ["agent", "context_id", "message"]);
    assert_eq!(required("chat"), ["message"]);
    assert_eq!(properties("rag_search"), ["collection", "limit", "query", "strategy"]);
    assert_eq!(required("rag_search"), ["collection", "query"]);
    assert_eq!(properties("rag_ingest"), ["collection", "content", "source", "title"]);
    assert_eq!(required("rag_ingest"), ["collection", "content"]);
    assert_eq!(properties("research"), ["depth", "query"]);
    assert_eq!(required("research"), ["query"]);
    assert_eq!(properties("calculator"), ["expression"]);
    assert_eq!(required("calculator"), ["expression"]);
    schemas
}

// ---------------------------------------------------------------- server-side checks

/// The tenant's usage from the admin API (it waits for queued usage events).
async fn admin_usage(server: &TestServer, tenant_id: &str) -> Value {
    server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage")).await
}

/// Poll the admin request log until the tenant has `count` records whose route starts with
/// `mcp:`; returns them.
async fn mcp_records(server: &TestServer, tenant_id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + RECORD_GUARD;
    loop {
        let query = [("tenant_id", tenant_id), ("limit", "500")];
        let response = server.admin(Method::GET, "/api/admin/requests").query(&query).send().await.unwrap();
        let body = expect_json(response, 200).await;
        let records: Vec<Value> = body["requests"]
            .as_array()
            .unwrap_or_else(|| panic!("no requests: {body}"))
            .iter()
            .filter(|r| r["route"].as_str().is_some_and(|route| route.starts_with("mcp:")))
            .cloned()
            .collect();
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} mcp:<tool> records for the tenant, the request log has {}: {body}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The text turns of an upstream request without its system prompt.
fn dialogue(request: &RecordedRequest) -> Vec<(String, String)> {
    request.text_turns().into_iter().filter(|(role, _)| role != "system").collect()
}

fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(r, t)| (r.to_string(), t.to_string())).collect()
}

// ---------------------------------------------------------------- over HTTP

#[tokio::test]
async fn every_tool_answers_over_http_and_each_call_is_metered_and_logged() {
    let gw = Gateway::start(Wire::OpenAi);
    let (tenant_id, key) = gw.tenant("mcp-co").await;
    // A tenant agent of its own, made through the admin API.
    let agent = json!({ "name": "helper", "config": { "model": MODEL, "system_prompt": "You help over MCP." } });
    let path = format!("/api/admin/tenants/{tenant_id}/agents");
    expect_json(gw.server.admin(Method::POST, &path).json(&agent).send().await.unwrap(), 201).await;
    let admin_agents = gw.server.admin_get(&path).await;
    let mut agent_names: Vec<String> =
        admin_agents["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
    agent_names.sort();
    assert!(agent_names.contains(&"helper".to_string()), "{admin_agents}");
    let calls_before = admin_usage(&gw.server, &tenant_id).await["total_api_calls"].as_u64().unwrap();

    // The upstream answers, in the order the steps reach it: the chat, the agent run, then
    // every research call (a one-line plan is one sub-question, answered directly).
    gw.mock.enqueue(Script::reply("Nice to meet you, Ada."));
    gw.mock.enqueue(Script::reply("The helper's answer."));
    gw.mock.set_script(Script::reply("Findings: MCP lets assistants call tools."));
    let document = "The aurora over Tromsø was green and violet on the night of the launch.";
    let run = http(
        &gw.server.base_url(),
        Some(&key),
        "auto",
        &[
            list_tools(),
            call("calculator", json!({ "expression": "2+3*4" })),
            call("chat", json!({ "message": "My name is Ada.", "agent": "product" })),
            call("rag_ingest", json!({ "collection": "notes", "content": document, "title": "Aurora" })),
            call("rag_search", json!({ "collection": "notes", "query": "aurora over Tromsø" })),
            call("list_agents", json!({})),
            call("run_agent", json!({ "agent": "helper", "input": "Help me." })),
            call("run_agent", json!({ "agent": "nope", "input": "Anyone?" })),
            call("research", json!({ "query": "What is MCP?" })),
        ],
    )
    .await;
    let steps = run.steps();
    assert_eq!(run.protocol_version(), MODERN_PROTOCOL, "auto mode: {}", run.report());
    assert_eq!(run.json()["server_name"], "ares", "{}", run.report());
    assert_eq!(steps.len(), 9, "{}", run.report());
    assert_catalog(&steps[0]);
    assert_eq!(ok_text(&steps[1], "calculator"), "14");

    let chat = parse(&ok_text(&steps[2], "chat"));
    assert_eq!(chat["response"], "Nice to meet you, Ada.", "{chat}");
    assert_eq!(chat["agent"], "product", "{chat}");
    let context_id = chat["context_id"].as_str().unwrap_or_else(|| panic!("no context_id: {chat}")).to_string();
    assert!(!context_id.is_empty());

    let ingested = ok_text(&steps[3], "rag_ingest");
    assert!(parse(&ingested)["chunks_created"].as_u64().is_some_and(|n| n >= 1), "{ingested}");
    let found = ok_text(&steps[4], "rag_search");
    assert!(found.contains("green and violet"), "the search finds the ingested text: {found}");

    let listed = parse(&ok_text(&steps[5], "list_agents"));
    let mut listed_names: Vec<String> = listed["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("no agents: {listed}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    listed_names.sort();
    assert_eq!(listed_names, agent_names, "the tenant's own agents, as GET /v1/agents lists them: {listed}");

    assert_eq!(ok_text(&steps[6], "run_agent"), "The helper's answer.");
    assert_eq!(error_text(&steps[7], "run_agent"), "Agent not found: nope");
    let findings = ok_text(&steps[8], "research");
    assert!(findings.contains("Findings: MCP lets assistants call tools."), "{findings}");

    // The agent run went to the helper's model with its prompt and the input as the message.
    let upstream = gw.mock.chat_requests();
    let run_request = upstream
        .iter()
        .find(|r| r.text_turns().iter().any(|(role, text)| role == "system" && text.contains("You help over MCP.")))
        .unwrap_or_else(|| panic!("no upstream request with the helper's prompt: {upstream:#?}"));
    assert!(dialogue(run_request).iter().any(|(role, text)| role == "user" && text.starts_with("Help me.")));

    // The conversation goes on through the context_id.
    gw.mock.enqueue(Script::reply("Your name is Ada."));
    let run = http(
        &gw.server.base_url(),
        Some(&key),
        "auto",
        &[call("chat", json!({ "message": "What is my name?", "agent": "product", "context_id": context_id }))],
    )
    .await;
    let steps = run.steps();
    let second = parse(&ok_text(&steps[0], "chat"));
    assert_eq!(
        (second["response"].as_str(), second["context_id"].as_str()),
        (Some("Your name is Ada."), Some(context_id.as_str()))
    );
    let sent = gw.mock.chat_requests().pop().unwrap();
    let said = dialogue(&sent);
    let expected =
        turns(&[("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "What is my name?")]);
    assert!(
        said.windows(3).any(|w| w == expected.as_slice()) && said.last() == expected.last(),
        "the second upstream request carries the first exchange: {said:?}"
    );

    // Nine tool calls, nine metered requests (the handshakes and tools/list are not metered).
    let metered = 9;
    let usage = admin_usage(&gw.server, &tenant_id).await;
    assert_eq!(usage["total_api_calls"].as_u64(), Some(calls_before + metered), "{usage}");
    let own = expect_json(gw.get("/v1/usage", &key).await, 200).await;
    assert_eq!(own["total_api_calls"].as_u64(), Some(calls_before + metered), "{own}");
    assert_eq!(own["daily_usage"][0]["api_calls"].as_u64(), Some(calls_before + metered), "{own}");

    // One request-log record per tool call, named for the tool.
    let records = mcp_records(&gw.server, &tenant_id, 9).await;
    let mut routes: Vec<&str> = records.iter().map(|r| r["route"].as_str().unwrap()).collect();
    routes.sort_unstable();
    assert_eq!(
        routes,
        [
            "mcp:calculator",
            "mcp:chat",
            "mcp:chat",
            "mcp:list_agents",
            "mcp:rag_ingest",
            "mcp:rag_search",
            "mcp:research",
            "mcp:run_agent",
            "mcp:run_agent"
        ]
    );
    for record in &records {
        assert_eq!((record["principal"].as_str(), record["tenant_id"].as_str()), (Some("tenant"), Some(&*tenant_id)));
    }
    let mut run_statuses: Vec<u64> =
        records.iter().filter(|r| r["route"] == "mcp:run_agent").map(|r| r["status"].as_u64().unwrap()).collect();
    run_statuses.sort_unstable();
    assert_eq!(run_statuses, [200, 404], "{records:?}");

    // The usage events say where the requests came from.
    let mut gw = gw;
    gw.server.shutdown_async().await;
    let db = gw.server.data_dir().join(store::DB_FILE);
    let opened = Store::open(&db, MigrationPolicy::Inspect).unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let (events, _, _) = opened.read_now(usage::all).unwrap();
    opened.close();
    let by_source = |source: &str| -> u64 {
        events.iter().filter(|e| e.tenant_id == tenant_id && e.source == source).map(|e| e.request_count).sum()
    };
    assert_eq!(by_source("mcp"), metered, "{events:?}");
    assert_eq!(by_source("http"), 1, "only GET /v1/usage came over HTTP: {events:?}");
}

#[tokio::test]
async fn the_legacy_handshake_works_too_and_an_unknown_tool_is_a_tool_error() {
    let server = TestServer::start();
    let provisioned = server.provision("legacy-co", "pro", "generic").await;
    let key = provisioned["raw_api_key"].as_str().unwrap();
    for mode in ["legacy", "auto"] {
        let run = http(
            &server.base_url(),
            Some(key),
            mode,
            &[list_tools(), call("calculator", json!({ "expression": "2+3*4" })), call("nope", json!({}))],
        )
        .await;
        let steps = run.steps();
        let expected = if mode == "legacy" { LEGACY_PROTOCOL } else { MODERN_PROTOCOL };
        assert_eq!(run.protocol_version(), expected, "{mode}: {}", run.report());
        assert_catalog(&steps[0]);
        assert_eq!(ok_text(&steps[1], "calculator"), "14", "{mode}");
        assert_eq!(error_text(&steps[2], "nope"), "Unknown tool: nope", "{mode}");
    }
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_refused_with_401() {
    let server = TestServer::start();
    let provisioned = server.provision("keyed-co", "pro", "generic").await;
    let key = provisioned["raw_api_key"].as_str().unwrap().to_string();
    let wrong = format!("{}x", &key[..key.len() - 1]);
    let wrong = if wrong == key { format!("{}y", &key[..key.len() - 1]) } else { wrong };

    for (what, key) in [("no key", None), ("a wrong key", Some(wrong.as_str())), ("garbage", Some("not-a-key"))] {
        let run = http(&server.base_url(), key, "auto", &[list_tools()]).await;
        let error = run.connect_error();
        assert!(error.contains("HTTP 401"), "{what}: {error}\n{}", run.report());
    }

    // Over plain HTTP: the usual JSON error envelope.
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": LEGACY_PROTOCOL, "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } },
    });
    let post = || {
        server
            .client()
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
    };
    expect_error(post().send().await.unwrap(), 401, "AUTH_MISSING").await;
    expect_error(post().bearer_auth(&wrong).send().await.unwrap(), 401, "AUTHENTICATION_FAILED").await;
    // Refused requests are not metered.
    let usage = admin_usage(&server, provisioned["tenant_id"].as_str().unwrap()).await;
    assert_eq!(usage["total_api_calls"], 0, "{usage}");
}

#[tokio::test]
async fn tenants_do_not_see_each_others_collections() {
    let server = TestServer::start();
    let a = server.provision("tenant-a", "pro", "generic").await;
    let b = server.provision("tenant-b", "pro", "generic").await;
    let (key_a, key_b) = (a["raw_api_key"].as_str().unwrap(), b["raw_api_key"].as_str().unwrap());
    let secret = "The vault combination is zebra-4417, written under the lighthouse stairs.";
    let query = "vault combination zebra lighthouse";

    let run = http(
        &server.base_url(),
        Some(key_a),
        "auto",
        &[
            call("rag_ingest", json!({ "collection": "docs", "content": secret, "source": "a-notes" })),
            call("rag_search", json!({ "collection": "docs", "query": query, "strategy": "bm25", "limit": 5 })),
        ],
    )
    .await;
    let steps = run.steps();
    ok_text(&steps[0], "rag_ingest");
    let found = ok_text(&steps[1], "rag_search");
    assert!(found.contains("zebra-4417"), "tenant A finds its own document: {found}");

    // Tenant B, same collection name: nothing of A's, before and after it adds its own.
    let run = http(
        &server.base_url(),
        Some(key_b),
        "auto",
        &[
            call("rag_search", json!({ "collection": "docs", "query": query })),
            call("rag_ingest", json!({ "collection": "docs", "content": "Otters hold hands while they sleep." })),
            call("rag_search", json!({ "collection": "docs", "query": query, "strategy": "bm25" })),
            call("rag_search", json!({ "collection": "docs", "query": "otters sleep", "strategy": "bm25" })),
        ],
    )
    .await;
    let steps = run.steps();
    for (i, step) in steps.iter().enumerate() {
        let text = step["text"].as_str().unwrap_or_default();
        assert!(!text.contains("zebra") && !text.contains("lighthouse"), "step {i}: B sees A's document: {step}");
        assert!(step.get("rpc_error").is_none(), "step {i}: {step}");
    }
    ok_text(&steps[1], "rag_ingest");
    assert!(ok_text(&steps[3], "rag_search").contains("Otters"), "B finds its own document: {}", steps[3]);
}

#[tokio::test]
async fn an_exhausted_quota_is_an_rpc_error_naming_the_limit() {
    let server = TestServer::builder()
        .config("[quotas.free]\nmonthly_requests = 1000\nmonthly_tokens = 100000\ndaily_requests = 2")
        .start();
    let provisioned = server.provision("thrifty", "free", "generic").await;
    let (tenant_id, key) = (provisioned["tenant_id"].as_str().unwrap(), provisioned["raw_api_key"].as_str().unwrap());

    // tools/list (and the handshake) use none of the two requests.
    let calc = || call("calculator", json!({ "expression": "2+3*4" }));
    let run = http(&server.base_url(), Some(key), "auto", &[list_tools(), calc(), calc(), calc()]).await;
    let steps = run.steps();
    assert_catalog(&steps[0]);
    assert_eq!(ok_text(&steps[1], "calculator"), "14");
    assert_eq!(ok_text(&steps[2], "calculator"), "14");
    let refused = &steps[3];
    let message = refused["rpc_error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("the third call should be a JSON-RPC error: {refused}\n{}", run.report()));
    assert!(message.starts_with("Quota exceeded"), "{message}");
    assert!(message.contains("Daily request limit"), "the message names the limit: {message}");

    let usage = admin_usage(&server, tenant_id).await;
    assert_eq!(usage["total_api_calls"], 2, "the refused call is not counted: {usage}");
}

// ---------------------------------------------------------------- `ares mcp` over stdio

/// The compiled binary serving with a mock OpenAI-style provider behind it.
struct Bridged {
    // Dropped first, so a call in flight fails at once instead of holding up the shutdown.
    mock: MockProvider,
    server: BinaryServer,
    tenant_id: String,
    key: String,
    _root: tempfile::TempDir,
    /// An empty working directory for `ares mcp` (no `data/`, no `ares.toml`).
    cwd: tempfile::TempDir,
}

impl Bridged {
    async fn start() -> Bridged {
        let root = tempfile::tempdir().unwrap();
        let mock = MockProvider::start();
        let server = BinaryServer::builder(root.path())
            .config(&provider_config(&mock, Wire::OpenAi, KEY_ENV, 5))
            .env(KEY_ENV, PROVIDER_KEY)
            .start();
        let provisioned = server.provision("bridged-co", "pro", "generic").await;
        let tenant_id = provisioned["tenant_id"].as_str().unwrap().to_string();
        let key = provisioned["raw_api_key"].as_str().unwrap().to_string();
        Bridged { mock, server, tenant_id, key, _root: root, cwd: tempfile::tempdir().unwrap() }
    }

    fn data_dir(&self) -> String {
        self.server.data_dir().display().to_string()
    }

    async fn total_api_calls(&self) -> Value {
        let path = format!("/api/admin/tenants/{}/usage", self.tenant_id);
        let request =
            self.server.client().get(self.server.url(&path)).header("x-admin-secret", self.server.admin_secret());
        expect_json(request.send().await.unwrap(), 200).await["total_api_calls"].clone()
    }
}

#[tokio::test]
async fn ares_mcp_bridges_stdio_to_the_server_found_through_the_data_dir() {
    let bridged = Bridged::start().await;
    bridged.mock.enqueue(Script::reply("Hello over stdio."));
    let data_dir = bridged.data_dir();
    let run = stdio(
        &["--data-dir", &data_dir, "mcp"],
        &[("ARES_API_KEY", &bridged.key)],
        bridged.cwd.path(),
        &[
            list_tools(),
            call("calculator", json!({ "expression": "2+3*4" })),
            call("chat", json!({ "message": "Hi there", "agent": "product" })),
        ],
    )
    .await;
    let steps = run.steps();
    assert_eq!(run.json()["server_name"], "ares", "{}", run.report());
    assert_catalog(&steps[0]);
    assert_eq!(ok_text(&steps[1], "calculator"), "14");
    let chat = parse(&ok_text(&steps[2], "chat"));
    assert_eq!(chat["response"], "Hello over stdio.", "{chat}");
    assert!(chat["context_id"].as_str().is_some_and(|c| !c.is_empty()), "{chat}");
    let sent = bridged.mock.chat_requests().pop().expect("the chat reached the provider");
    assert_eq!(dialogue(&sent).last().map(|(_, t)| t.as_str()), Some("Hi there"));
    // Governed by the server: the two tool calls are the tenant's two requests.
    assert_eq!(bridged.total_api_calls().await, 2);
}

#[tokio::test]
async fn ares_mcp_finds_the_server_through_url_or_ares_url() {
    let bridged = Bridged::start().await;
    let base = bridged.server.url("");
    let key = bridged.key.as_str();
    // The working directory has no data/server.json: only the URL can lead to the server.
    let run = stdio(
        &["mcp", "--url", &base],
        &[("ARES_API_KEY", key)],
        bridged.cwd.path(),
        &[list_tools(), call("calculator", json!({ "expression": "2+3*4" }))],
    )
    .await;
    let steps = run.steps();
    assert_catalog(&steps[0]);
    assert_eq!(ok_text(&steps[1], "calculator"), "14");

    let run = stdio(
        &["mcp"],
        &[("ARES_API_KEY", key), ("ARES_URL", &base)],
        bridged.cwd.path(),
        &[call("calculator", json!({ "expression": "(1+1)*21" }))],
    )
    .await;
    assert_eq!(ok_text(&run.steps()[0], "calculator"), "42");
    assert_eq!(bridged.total_api_calls().await, 2);
}

#[tokio::test]
async fn ares_mcp_with_a_wrong_key_fails_promptly_with_401() {
    let bridged = Bridged::start().await;
    let data_dir = bridged.data_dir();
    let wrong = format!("{}0000", &bridged.key[..bridged.key.len() - 4]);
    let wrong = if wrong == bridged.key { format!("{}1111", &bridged.key[..bridged.key.len() - 4]) } else { wrong };
    let run =
        stdio(&["--data-dir", &data_dir, "mcp"], &[("ARES_API_KEY", &wrong)], bridged.cwd.path(), &[list_tools()])
            .await;
    let error = run.connect_error();
    assert!(!error.is_empty(), "{}", run.report());
    // client.py's stderr is the bridge's stderr.
    assert!(run.stderr.contains("401"), "the bridge names the HTTP status on stderr: {}", run.report());
    // Not a hang ended by client.py's 60 s limit: the bridge gives up at once.
    assert!(run.elapsed < Duration::from_secs(30), "took {:?}: {}", run.elapsed, run.report());
    assert_eq!(bridged.total_api_calls().await, 0);
}

#[test]
fn ares_mcp_without_ares_api_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for env in [&[][..], &[("ARES_API_KEY", "")][..], &[("ARES_URL", "http://127.0.0.1:9")][..]] {
        let out = run_cli(dir.path(), &["--data-dir", data, "mcp"], env);
        assert_eq!(out.code(), Some(2), "env {env:?}: {out:?}");
        assert!(out.stderr.contains("ARES_API_KEY"), "env {env:?}: {out:?}");
        assert!(out.stdout.is_empty(), "stdout is the protocol: nothing on it: {out:?}");
    }
}
