//! MCP servers as tool sources for agents: `[[mcp.servers]]` (and `config/mcps/*.toon`) entries
//! whose tools an agent names as `mcp:<server>` or `mcp:<server>/<tool>`, offered to the model
//! as `<server>__<tool>` and run server-side through the normal tool loop.
//!
//! The peers are real MCP servers from the official SDKs (tests/mcp/README.md): the Python
//! stdio and Streamable HTTP servers in `target/sdk-venv` (`tests/sdk/python_env.sh ensure`) and
//! the npm filesystem server in `target/mcp-node` (`tests/mcp/node_env.sh ensure`). A missing
//! environment fails the test with the command that makes it.
//!
//! Covered: lazy start (nothing runs before an agent needs it), named and whole-server
//! selections with the servers' own schemas, `env` with `${VAR}` reaching the child, a server
//! that refuses to start (its stderr in the error), crash and restart, the per-call timeout,
//! `notifications/tools/list_changed`, Streamable HTTP with a bearer header from the
//! environment, a command that does not exist, `allow_tenants` on user and tenant agents,
//! `agent:<name>` through `/v1/chat/completions`, and servers defined in a TOON directory.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::gateway::{Gateway, KEY_ENV, MODEL, PASSWORD, PROVIDER_KEY, model_id, provider_config};
use crate::harness::{BinaryServer, TestServer, expect_error, expect_json, repo_root, venv_python};
use crate::mock_provider::{MockProvider, RecordedRequest, Script, SentToolResult, Wire};

/// How the filesystem server is installed; named in the failure when it is missing.
const NODE_SETUP: &str = "tests/mcp/node_env.sh ensure";
/// Guard against hangs, not a performance assertion: how long the HTTP peer may take to start.
const PEER_GUARD: Duration = Duration::from_secs(20);

/// The venv's interpreter (`harness::venv_python`), as a config value.
fn python() -> String {
    venv_python().display().to_string()
}

fn stdio_server() -> String {
    repo_root().join("tests/mcp/stdio_server.py").display().to_string()
}

fn http_server_script() -> String {
    repo_root().join("tests/mcp/http_server.py").display().to_string()
}

/// The filesystem server's JS entry point; panics with the set-up command when it is missing.
fn filesystem_server() -> String {
    let output = Command::new(repo_root().join("tests/mcp/node_env.sh"))
        .arg("server-filesystem")
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/mcp/node_env.sh ({e}): run `{NODE_SETUP}` first"));
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        output.status.success() && !path.is_empty() && Path::new(&path).exists(),
        "the MCP filesystem server is not installed in target/mcp-node: run `{NODE_SETUP}` first (the README's \
         test command does); node_env.sh said: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    path
}

/// A TOML string literal (quotes and escapes) for a path or value.
fn lit(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// A `[[mcp.servers]]` entry for the Python stdio server, with `extra` lines added.
fn py_server(name: &str, extra: &str) -> String {
    format!(
        "\n[[mcp.servers]]\nname = {name}\ncommand = {python}\nargs = [{script}]\n{extra}\n",
        name = lit(name),
        python = lit(&python()),
        script = lit(&stdio_server()),
    )
}

/// An `[[agents]]` entry on [`MODEL`] with these tools.
fn agent(name: &str, tools: &[&str]) -> String {
    let tools: Vec<String> = tools.iter().map(|t| lit(t)).collect();
    format!(
        "\n[[agents]]\nname = {name}\nmodel = {model}\nsystem_prompt = \"You use tools.\"\ntools = [{tools}]\nmax_iterations = 6\n",
        name = lit(name),
        model = lit(MODEL),
        tools = tools.join(", ")
    )
}

/// A gateway (OpenAI wire) whose server has `config` and these extra environment variables.
fn gateway(config: &str, env: &[(&str, &str)]) -> Gateway {
    let mock = MockProvider::start();
    let mut builder = TestServer::builder()
        .env(KEY_ENV, PROVIDER_KEY)
        .config(&provider_config(&mock, Wire::OpenAi, KEY_ENV, 10))
        .config(config);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    let server = builder.start();
    Gateway { mock, server, wire: Wire::OpenAi }
}

fn chat(agent: &str) -> Value {
    json!({ "message": "Use your tools.", "agent_type": agent })
}

/// The tool result JSON `{"error": "..."}`'s message; panics when the result is not one.
fn error_of(result: &SentToolResult) -> String {
    let parsed: Value = serde_json::from_str(&result.content)
        .unwrap_or_else(|e| panic!("expected an {{\"error\"}} tool result, got non-JSON ({e}): {result:?}"));
    parsed["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an {{\"error\"}} tool result, got {parsed}"))
        .to_string()
}

/// The only tool result of the request (the last one when there are several).
fn last_result(request: &RecordedRequest) -> SentToolResult {
    request.tool_results().pop().unwrap_or_else(|| panic!("no tool result in {:#?}", request.body))
}

fn offered(request: &RecordedRequest) -> Vec<String> {
    request.tools_offered().unwrap_or_default()
}

/// The `parameters` schema the request offers for tool `name`.
fn schema_of(request: &RecordedRequest, name: &str) -> Value {
    request.body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
        .and_then(|t| t.pointer("/function/parameters").cloned())
        .unwrap_or_else(|| panic!("tool {name} not offered: {}", request.body["tools"]))
}

/// Pids of live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

fn marker_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

// ------------------------------------------------------------------ the filesystem server

#[tokio::test]
async fn the_filesystem_server_lists_and_reads_through_an_agent_and_starts_only_when_needed() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().canonicalize().unwrap();
    std::fs::write(dir.join("a.txt"), "hello from a file").unwrap();
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("starts");
    let config = format!(
        "\n[[mcp.servers]]\nname = \"fs\"\ncommand = \"node\"\nargs = [{fs}, {dir}]\n{py}{files}{plain}",
        fs = lit(&filesystem_server()),
        dir = lit(&dir.display().to_string()),
        py = py_server("py", &format!("env = {{ MCP_STARTUP_MARKER = {} }}", lit(&marker.display().to_string()))),
        files = agent("files", &["mcp:fs/list_directory", "mcp:fs/read_text_file"]),
        plain = agent("plain", &["calculator"]),
    );
    let gw = gateway(&config, &[]);
    let token = gw.user().await;
    let needle = dir.display().to_string();

    // Booted, and a chat with an agent without MCP tools: no MCP server runs.
    assert!(processes_with(&needle).is_empty(), "the filesystem server was started at boot");
    assert!(!marker.exists(), "the Python server was started at boot: {:?}", marker_lines(&marker));
    gw.mock.enqueue(Script::reply("no tools needed"));
    gw.chat_ok(&token, &chat("plain")).await;
    assert!(processes_with(&needle).is_empty(), "a chat without MCP tools started the filesystem server");
    assert!(!marker.exists(), "a chat without MCP tools started the Python server: {:?}", marker_lines(&marker));

    let before = gw.mock.chat_requests().len();
    gw.mock.enqueue(Script::tool_call("fs__list_directory", json!({ "path": needle })));
    gw.mock
        .enqueue(Script::tool_call("fs__read_text_file", json!({ "path": dir.join("a.txt").display().to_string() })));
    gw.mock.enqueue(Script::reply("The file says hello."));
    let answer = gw.chat_ok(&token, &chat("files")).await;
    assert_eq!(answer["response"], "The file says hello.");

    let requests = gw.mock.chat_requests().split_off(before);
    assert_eq!(requests.len(), 3, "two tool rounds and the answer");
    let mut names = offered(&requests[0]);
    names.sort();
    assert_eq!(names, ["fs__list_directory", "fs__read_text_file"], "exactly the two named tools");
    for name in ["fs__list_directory", "fs__read_text_file"] {
        let schema = schema_of(&requests[0], name);
        assert!(schema["properties"]["path"].is_object(), "{name}: the server's own schema, with path: {schema}");
    }
    let listing = last_result(&requests[1]).content;
    assert!(listing.contains("[FILE] a.txt"), "list_directory result: {listing}");
    let results = requests[2].tool_results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[1].content.contains("hello from a file"), "read_text_file result: {:?}", results[1]);
    assert!(!processes_with(&needle).is_empty(), "the filesystem server runs once an agent used it");
    assert!(!marker.exists(), "the Python server, which no agent used, never started");
}

// ------------------------------------------------------------------ the Python stdio server

#[tokio::test]
async fn a_whole_stdio_server_is_offered_its_env_is_passed_and_a_refusing_server_reports_its_stderr() {
    let config = format!(
        "{py}{bad}{all}{badagent}",
        py = py_server("py", "env = { MCP_EXPECT = \"abc\", MCP_GIVEN = \"${PASSED_THROUGH}\" }"),
        bad = py_server("bad", "env = { MCP_EXPECT = \"abc\", MCP_GIVEN = \"nope\" }"),
        all = agent("all", &["mcp:py"]),
        badagent = agent("badagent", &["mcp:bad/echo"]),
    );
    let gw = gateway(&config, &[("PASSED_THROUGH", "abc")]);
    let token = gw.user().await;

    gw.mock.enqueue(Script::tool_call("py__echo", json!({ "text": "round and round" })));
    gw.mock.enqueue(Script::reply("echoed"));
    let answer = gw.chat_ok(&token, &chat("all")).await;
    assert_eq!(answer["response"], "echoed");
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    let names = offered(&requests[0]);
    for name in ["py__echo", "py__pid", "py__sleep", "py__crash", "py__fail", "py__add_tool"] {
        assert!(names.contains(&name.to_string()), "{name} not offered: {names:?}");
    }
    assert!(schema_of(&requests[0], "py__echo")["properties"]["text"].is_object());
    assert_eq!(last_result(&requests[1]).content, "round and round", "the text content, as is");

    gw.mock.enqueue(Script::tool_call("bad__echo", json!({ "text": "x" })));
    gw.mock.enqueue(Script::reply("it is broken"));
    gw.chat_ok(&token, &chat("badagent")).await;
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 4);
    assert!(
        offered(&requests[2]).contains(&"bad__echo".to_string()),
        "a named tool stays offered: {:?}",
        offered(&requests[2])
    );
    let error = error_of(&last_result(&requests[3]));
    assert!(error.contains("MCP server 'bad'"), "the error names the server: {error}");
    assert!(
        error.contains("MCP_GIVEN='nope' does not equal MCP_EXPECT='abc'"),
        "the error carries the server's stderr: {error}"
    );
}

#[tokio::test]
async fn a_crashed_stdio_server_is_restarted_on_its_next_use() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("starts");
    let config = format!(
        "{py}{agent}",
        py = py_server("py", &format!("env = {{ MCP_STARTUP_MARKER = {} }}", lit(&marker.display().to_string()))),
        agent = agent("crasher", &["mcp:py"]),
    );
    let gw = gateway(&config, &[]);
    let token = gw.user().await;
    gw.mock.enqueue(Script::tool_call("py__pid", json!({})));
    gw.mock.enqueue(Script::tool_call("py__crash", json!({})));
    gw.mock.enqueue(Script::tool_call("py__pid", json!({})));
    gw.mock.enqueue(Script::reply("restarted"));
    let answer = gw.chat_ok(&token, &chat("crasher")).await;
    assert_eq!(answer["response"], "restarted");

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 4);
    let results = requests[3].tool_results();
    assert_eq!(results.len(), 3, "{results:?}");
    let first: u32 = results[0].content.trim().parse().unwrap_or_else(|e| panic!("a pid ({e}): {:?}", results[0]));
    let crash = error_of(&results[1]);
    assert!(crash.contains("MCP server 'py'"), "the crash is an error naming the server: {crash}");
    let second: u32 = results[2].content.trim().parse().unwrap_or_else(|e| panic!("a pid ({e}): {:?}", results[2]));
    assert_ne!(first, second, "a new process answered after the crash");
    let starts = marker_lines(&marker);
    assert_eq!(starts, [first.to_string(), second.to_string()], "two starts, one per process");
}

#[tokio::test]
async fn a_call_beyond_the_timeout_is_an_error_and_the_chat_goes_on() {
    let config =
        format!("{py}{agent}", py = py_server("py", "timeout_secs = 2"), agent = agent("sleeper", &["mcp:py/sleep"]));
    let gw = gateway(&config, &[]);
    let token = gw.user().await;
    // A sleep far beyond the timeout, so that answering before it ends proves the cut (the
    // bound below is that, with room for a loaded machine, not a speed requirement).
    gw.mock.enqueue(Script::tool_call("py__sleep", json!({ "seconds": 120 })));
    gw.mock.enqueue(Script::reply("too slow"));
    let started = Instant::now();
    let answer = gw.chat_ok(&token, &chat("sleeper")).await;
    let elapsed = started.elapsed();
    assert_eq!(answer["response"], "too slow");
    assert!(elapsed < Duration::from_secs(60), "the chat waited for the sleep: {elapsed:?}");
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    let error = error_of(&last_result(&requests[1]));
    assert_eq!(error, "MCP server 'py' did not answer within 2 s");
}

#[tokio::test]
async fn a_tool_list_change_is_seen_by_the_next_turn() {
    let config = format!("{py}{agent}", py = py_server("py", ""), agent = agent("grower", &["mcp:py"]));
    let gw = gateway(&config, &[]);
    let token = gw.user().await;
    gw.mock.enqueue(Script::tool_call("py__add_tool", json!({})));
    gw.mock.enqueue(Script::reply("added"));
    gw.chat_ok(&token, &chat("grower")).await;
    let requests = gw.mock.chat_requests();
    assert!(!offered(&requests[0]).contains(&"py__late".to_string()), "{:?}", offered(&requests[0]));
    assert_eq!(last_result(&requests[1]).content, "added");

    gw.mock.enqueue(Script::tool_call("py__late", json!({ "x": 21 })));
    gw.mock.enqueue(Script::reply("42"));
    gw.chat_ok(&token, &chat("grower")).await;
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 4);
    assert!(
        offered(&requests[2]).contains(&"py__late".to_string()),
        "the new tool is offered: {:?}",
        offered(&requests[2])
    );
    assert_eq!(last_result(&requests[3]).content, "42");
}

// ------------------------------------------------------------------ Streamable HTTP

/// `tests/mcp/http_server.py` on a free port, killed on drop.
struct HttpPeer {
    child: Child,
    port: u16,
}

impl HttpPeer {
    fn start(token: &str) -> HttpPeer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(python())
            .arg(http_server_script())
            .args(["--port", &port.to_string()])
            .env("MCP_REQUIRE_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tests/mcp/http_server.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut peer = HttpPeer { child, port };
        let deadline = Instant::now() + PEER_GUARD;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.trim() == format!("ready {port}") => return peer,
                Ok(_) => {}
                Err(_) => {
                    let status = peer.child.try_wait();
                    panic!("http_server.py never printed `ready {port}` ({status:?})");
                }
            }
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_streamable_http_server_is_called_with_a_bearer_header_from_the_environment() {
    let peer = tokio::task::spawn_blocking(|| HttpPeer::start("tok-123")).await.unwrap();
    let config = format!(
        r#"
[[mcp.servers]]
name = "web"
url = {url}
headers = {{ Authorization = "Bearer ${{MCP_TOKEN}}" }}

[[mcp.servers]]
name = "webbad"
url = {url}
headers = {{ Authorization = "Bearer wrong" }}
{agent}"#,
        url = lit(&peer.url()),
        agent = agent("adder", &["mcp:web/add", "mcp:webbad/add"]),
    );
    let gw = gateway(&config, &[("MCP_TOKEN", "tok-123")]);
    let token = gw.user().await;
    gw.mock.enqueue(Script::tool_call("web__add", json!({ "a": 2, "b": 3 })));
    gw.mock.enqueue(Script::tool_call("webbad__add", json!({ "a": 2, "b": 3 })));
    gw.mock.enqueue(Script::reply("5"));
    gw.chat_ok(&token, &chat("adder")).await;

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 3);
    let names = offered(&requests[0]);
    assert!(names.contains(&"web__add".to_string()) && names.contains(&"webbad__add".to_string()), "{names:?}");
    assert!(schema_of(&requests[0], "web__add")["properties"]["a"].is_object(), "the server's schema");
    assert_eq!(last_result(&requests[1]).content, "5");
    let error = error_of(&last_result(&requests[2]));
    assert!(error.contains("MCP server 'webbad'"), "the refused server is named: {error}");
    drop(peer);
}

// ------------------------------------------------------------------ a server that cannot start

#[tokio::test]
async fn a_server_that_cannot_start_leaves_the_server_healthy_and_its_call_explains() {
    let config = format!(
        "\n[[mcp.servers]]\nname = \"broken\"\ncommand = \"/nonexistent/mcp-server\"\n{}",
        agent("fragile", &["mcp:broken/echo"])
    );
    let gw = gateway(&config, &[]);
    let health = gw.server.get("/health").send().await.unwrap();
    assert_eq!(health.status(), 200, "{:?}", health.text().await);
    let token = gw.user().await;
    gw.mock.enqueue(Script::tool_call("broken__echo", json!({ "text": "hi" })));
    gw.mock.enqueue(Script::reply("broken"));
    gw.chat_ok(&token, &chat("fragile")).await;
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert!(offered(&requests[0]).contains(&"broken__echo".to_string()), "{:?}", offered(&requests[0]));
    let error = error_of(&last_result(&requests[1]));
    assert!(error.contains("MCP server 'broken' is unavailable"), "{error}");
    let health = gw.server.get("/health").send().await.unwrap();
    assert_eq!(health.status(), 200);
}

// ------------------------------------------------------------------ who may use which server

#[tokio::test]
async fn only_servers_open_to_tenants_may_be_named_by_user_and_tenant_agents() {
    let config = format!(
        "{py}\n[[mcp.servers]]\nname = \"web\"\nurl = \"http://127.0.0.1:9/mcp\"\nallow_tenants = true\n{agent}",
        py = py_server("py", ""),
        agent = agent("platform", &["mcp:py/echo"]),
    );
    let gw = gateway(&config, &[]);
    let token = gw.user().await;

    let closed = json!({ "name": "mine", "model": MODEL, "tools": ["mcp:py"] });
    let refused = expect_error(gw.post("/api/user/agents", &token, &closed).await, 403, "FORBIDDEN").await;
    assert!(refused["error"].as_str().unwrap().contains("py"), "{refused}");
    let unknown = json!({ "name": "mine", "model": MODEL, "tools": ["mcp:nosuch/x"] });
    expect_error(gw.post("/api/user/agents", &token, &unknown).await, 403, "FORBIDDEN").await;
    let open = json!({ "name": "mine", "model": MODEL, "tools": ["mcp:web"] });
    let created = expect_json(gw.post("/api/user/agents", &token, &open).await, 201).await;
    assert_eq!(created["tools"], json!(["mcp:web"]), "{created}");

    let (tenant, _) = gw.tenant("mcp-co").await;
    let path = format!("/api/admin/tenants/{tenant}/agents");
    let body = json!({ "name": "t-agent", "config": { "model": MODEL, "tools": ["mcp:py"] } });
    let response = gw.server.admin(Method::POST, &path).json(&body).send().await.unwrap();
    expect_error(response, 403, "FORBIDDEN").await;
    let body = json!({ "name": "t-agent", "config": { "model": MODEL, "tools": ["mcp:web/echo"] } });
    let response = gw.server.admin(Method::POST, &path).json(&body).send().await.unwrap();
    expect_json(response, 201).await;

    // The operator's own agent may use any configured server.
    gw.mock.enqueue(Script::tool_call("py__echo", json!({ "text": "platform only" })));
    gw.mock.enqueue(Script::reply("done"));
    gw.chat_ok(&token, &chat("platform")).await;
    let requests = gw.mock.chat_requests();
    assert_eq!(last_result(requests.last().unwrap()).content, "platform only");
}

// ------------------------------------------------------------------ other entry points

#[tokio::test]
async fn an_agent_model_in_chat_completions_runs_its_mcp_tools_on_the_server() {
    let config = format!("{py}{agent}", py = py_server("py", ""), agent = agent("echoer", &["mcp:py/echo"]));
    let gw = gateway(&config, &[]);
    let (_, key) = gw.tenant("acme").await;
    gw.mock.enqueue(Script::tool_call("py__echo", json!({ "text": "via completions" })));
    gw.mock.enqueue(Script::reply("It said: via completions"));
    let request = json!({ "model": "agent:echoer", "messages": [{ "role": "user", "content": "echo it" }] });
    let body = expect_json(gw.post("/v1/chat/completions", &key, &request).await, 200).await;
    assert_eq!(body["choices"][0]["message"]["content"], "It said: via completions");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none(), "server-side tools are not shown: {body}");
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(offered(&requests[0]), ["py__echo"]);
    assert_eq!(last_result(&requests[1]).content, "via completions");
}

#[tokio::test]
async fn a_server_from_the_mcps_directory_serves_an_agent() {
    let fs = filesystem_server();
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().canonicalize().unwrap();
    std::fs::write(dir.join("a.txt"), "from toon").unwrap();
    let root: TempDir = tempfile::tempdir().unwrap();
    let toon = format!(
        "name: fs\ncommand: node\nargs[2]: {},{}\n",
        serde_json::Value::String(fs.clone()),
        serde_json::Value::String(dir.display().to_string())
    );
    std::fs::create_dir_all(root.path().join("config/mcps")).unwrap();
    std::fs::write(root.path().join("config/mcps/fs.toon"), &toon).unwrap();

    let mock = MockProvider::start();
    let server = BinaryServer::builder(root.path())
        .config(&provider_config(&mock, Wire::OpenAi, KEY_ENV, 10))
        .config(&agent("toonfs", &["mcp:fs"]))
        .env(KEY_ENV, PROVIDER_KEY)
        .start();
    let email = format!("mcp-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered = server
        .client()
        .post(server.url("/api/auth/register"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let token = expect_json(registered, 200).await["access_token"].as_str().unwrap().to_string();

    mock.enqueue(Script::tool_call("fs__list_directory", json!({ "path": dir.display().to_string() })));
    mock.enqueue(Script::reply("listed"));
    let response =
        server.client().post(server.url("/api/chat")).bearer_auth(&token).json(&chat("toonfs")).send().await.unwrap();
    let answer = expect_json(response, 200).await;
    assert_eq!(answer["response"], "listed");
    let requests = mock.chat_requests();
    assert_eq!(requests.len(), 2, "{toon}");
    assert_eq!(requests[0].body["model"], model_id(Wire::OpenAi));
    let names = offered(&requests[0]);
    for name in ["fs__list_directory", "fs__read_text_file"] {
        assert!(names.contains(&name.to_string()), "{name} not offered: {names:?}\nstderr: {}", server.stderr());
    }
    assert!(last_result(&requests[1]).content.contains("[FILE] a.txt"), "{:?}", requests[1].tool_results());
}

/// A workflow's agent runs its MCP tools like a chat's: the workflow step offers them and the
/// tool's answer reaches the model.
#[tokio::test]
async fn a_workflow_agent_calls_its_mcp_tools() {
    let config = format!(
        "{py}{agent}\n[workflows.echo-flow]\nentry_agent = \"echo-step\"\nmax_iterations = 3\n",
        py = py_server("py", ""),
        agent = agent("echo-step", &["mcp:py/echo"]),
    );
    let gw = gateway(&config, &[]);
    let token = gw.user().await;
    gw.mock.enqueue(Script::tool_call("py__echo", json!({ "text": "from the workflow" })));
    gw.mock.set_script(Script::reply("echoed"));
    let outcome =
        expect_json(gw.post("/api/workflows/echo-flow", &token, &json!({ "query": "Echo it" })).await, 200).await;
    assert_eq!(outcome["final_response"], "echoed", "{outcome}");
    let requests = gw.mock.chat_requests();
    assert_eq!(offered(&requests[0]), ["py__echo"]);
    assert_eq!(last_result(&requests[1]).content, "from the workflow");
}
