//! Configuration hot reload (issue 15): `POST /api/admin/config/reload`, `SIGHUP` and
//! `[config] hot_reload = true` re-read the file the server was started with and swap
//! providers, models, agents, tools and workflows as one; an invalid file changes nothing;
//! requests in flight finish on the configuration they started with; sections that only apply
//! after a restart are reported as such; `/health/detailed` shows the last reload.
//!
//! Every test runs the compiled binary ([`BinaryServer`]: a reload re-reads a real file) in
//! front of two mock providers, `a` and `b`, and tells which one answered by
//! `X-Ares-Served-By` (`a/a-model` or `b/b-model`) and by the text (`a answers.`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::gateway::{SseEvent, SseReader};
use crate::harness::{BinaryServer, expect_error, expect_json, header};
use crate::mock_provider::{MockProvider, Script, Wire};

/// Guard for what settles asynchronously (a signal, the file watcher): a hang guard, not a
/// performance assertion.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// The sections of `changes`, in the order [`changes`] lists them.
const SECTIONS: [&str; 6] = ["providers", "models", "agents", "tools", "workflows", "mcp_servers"];
const KINDS: [&str; 3] = ["added", "removed", "changed"];

/// `X-Ares-Served-By` when `provider` answered with its default model id.
fn served(provider: &str) -> String {
    format!("{provider}/{provider}-model")
}

/// What the mock behind `provider` answers.
fn reply(provider: &str) -> String {
    format!("{provider} answers.")
}

/// A `[[models]]` entry `name` on `provider` under the provider's default model id.
fn model(name: &str, provider: &str) -> String {
    format!("\n[[models]]\nname = \"{name}\"\nprovider = \"{provider}\"\nmodel_id = \"{provider}-model\"\n")
}

/// What a test's config file says besides the providers `a` and `b`.
#[derive(Clone)]
struct Spec {
    /// `[server] shutdown_grace_secs` (5, as the harness sets it, unless a test changes it).
    grace_secs: u64,
    /// `[storage] cache_mib` (the default 32 unless a test changes it).
    cache_mib: u64,
    /// `[config] hot_reload`.
    hot_reload: bool,
    /// TOML after the providers: `[[models]]`, `[[agents]]`, more `[[providers]]`, ...
    entries: String,
}

impl Spec {
    fn new(entries: &str) -> Spec {
        Spec { grace_secs: 5, cache_mib: 32, hot_reload: false, entries: entries.to_string() }
    }

    fn hot(mut self) -> Spec {
        self.hot_reload = true;
        self
    }
}

/// One chat answer as a client saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    served_by: Option<String>,
    body: Value,
}

impl Answer {
    fn content(&self) -> Option<&str> {
        self.body.pointer("/choices/0/message/content").and_then(Value::as_str)
    }
}

/// Calls the server with a tenant key; cheap to clone into concurrent tasks.
#[derive(Clone)]
struct Caller {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Caller {
    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.key).json(body)
    }

    /// A non-streamed `POST /v1/chat/completions` on `model`; a transport error is an `Err`.
    async fn try_chat(&self, model: &str) -> Result<Answer, String> {
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
        let response = self.post("/v1/chat/completions", &body).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let served_by = header(&response, "x-ares-served-by");
        let text = response.text().await.map_err(|e| e.to_string())?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, served_by, body })
    }

    async fn chat(&self, model: &str) -> Answer {
        self.try_chat(model).await.unwrap_or_else(|e| panic!("chat on {model}: {e}"))
    }

    /// `POST /v1/chat/completions` with `stream: true`.
    async fn stream(&self, model: &str) -> reqwest::Response {
        let body = json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
        self.post("/v1/chat/completions", &body).send().await.expect("stream request")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.key).send().await.expect("GET request")
    }
}

/// The binary in front of mocks `a` and `b`, with a tenant key.
///
/// Fields drop in order: the server is killed before the mocks stop and the directory holding
/// its config and data goes.
struct Rig {
    server: BinaryServer,
    a: MockProvider,
    b: MockProvider,
    caller: Caller,
    _dir: TempDir,
}

impl Rig {
    async fn start(spec: &Spec) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = MockProvider::start();
        a.set_script(Script::reply(&reply("a")));
        let b = MockProvider::start();
        b.set_script(Script::reply(&reply("b")));
        let text = render(&a, &b, spec);
        let server = BinaryServer::builder(dir.path()).config(&text).start();

        let response = server
            .client()
            .post(server.url("/api/admin/provision-client"))
            .header("x-admin-secret", server.admin_secret())
            .json(&json!({ "name": "reload-co", "tier": "enterprise", "product_type": "generic",
                           "api_key_name": "reload-key" }))
            .send()
            .await
            .expect("provision request");
        let provisioned = expect_json(response, 201).await;
        let key = provisioned["raw_api_key"].as_str().expect("raw API key").to_string();
        let caller = Caller { client: server.client().clone(), base: server.url(""), key };
        Rig { server, a, b, caller, _dir: dir }
    }

    fn render(&self, spec: &Spec) -> String {
        render(&self.a, &self.b, spec)
    }

    /// Replace the config file as an editor's save-by-rename does, so a watcher never sees
    /// half a file.
    fn write(&self, text: &str) {
        let path = self.server.config_path();
        let staged = path.with_extension("toml.new");
        std::fs::write(&staged, text).expect("write the new config");
        std::fs::rename(&staged, path).expect("move the new config into place");
    }

    fn write_spec(&self, spec: &Spec) {
        self.write(&self.render(spec));
    }

    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.server.client().request(method, self.server.url(path)).header("x-admin-secret", self.server.admin_secret())
    }

    async fn reload(&self) -> reqwest::Response {
        self.admin(Method::POST, "/api/admin/config/reload").send().await.expect("reload request")
    }

    /// A reload that must succeed; returns its (shape-checked) report.
    async fn reload_ok(&self) -> Value {
        let body = expect_json(self.reload().await, 200).await;
        check_report(&body);
        body
    }

    /// A reload that must be refused as invalid; returns the error message.
    async fn reload_invalid(&self) -> String {
        let response = self.reload().await;
        let status = response.status();
        let content_type = header(&response, "content-type");
        let text = response.text().await.expect("reload error body");
        assert_eq!(status, 422, "an invalid config must be refused with 422: {text}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
        assert!(body["code"].as_str().is_some_and(|c| !c.is_empty()), "no error code in {body}");
        body["error"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| panic!("no error message in {body}"))
            .to_string()
    }

    /// A chat on `model` that must succeed; returns who served it (asserting the text is that
    /// provider's).
    async fn served_by(&self, model: &str) -> String {
        let answer = self.caller.chat(model).await;
        assert_eq!(answer.status, 200, "chat on {model}: {answer:?}");
        let served_by = answer.served_by.clone().unwrap_or_else(|| panic!("no X-Ares-Served-By: {answer:?}"));
        let provider = served_by.split('/').next().unwrap_or_default();
        let expected = if provider == "a" { reply("a") } else { reply("b") };
        assert_eq!(answer.content(), Some(expected.as_str()), "text does not match {served_by}: {answer:?}");
        served_by
    }

    /// The ids `GET /v1/models` lists for the tenant.
    async fn model_ids(&self) -> Vec<String> {
        let listed = expect_json(self.caller.get("/v1/models").await, 200).await;
        listed["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data in {listed}"))
            .iter()
            .map(|m| m["id"].as_str().expect("model id").to_string())
            .collect()
    }

    async fn config_info(&self) -> Value {
        let response = self.server.client().get(self.server.url("/config/info")).send().await.expect("config info");
        expect_json(response, 200).await
    }

    /// `config_reload` of `/health/detailed` (shape-checked): `null` before any reload.
    async fn last_reload(&self) -> Value {
        let response = self.admin(Method::GET, "/health/detailed").send().await.expect("health request");
        let body = expect_json(response, 200).await;
        let last = body.get("config_reload").unwrap_or_else(|| panic!("/health/detailed has no config_reload: {body}"));
        if !last.is_null() {
            assert_rfc3339(&last["at"]);
            assert!(["api", "signal", "watch"].contains(&last["trigger"].as_str().unwrap_or("")), "trigger: {last}");
            match last["outcome"].as_str() {
                Some("ok") => {
                    assert!(last.get("error").is_some_and(Value::is_null), "an ok reload has error: null: {last}")
                }
                Some("error") => {
                    assert!(last["error"].as_str().is_some_and(|e| !e.is_empty()), "a failed reload says why: {last}")
                }
                _ => panic!("outcome must be ok or error: {last}"),
            }
        }
        last.clone()
    }

    /// Poll `/health/detailed` until the last reload has `trigger` and `outcome`.
    async fn wait_for_reload(&self, trigger: &str, outcome: &str) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let last = self.last_reload().await;
            if last["trigger"] == trigger && last["outcome"] == outcome {
                return last;
            }
            assert!(Instant::now() < deadline, "no {trigger} reload with outcome {outcome} within {SETTLE:?}: {last}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Poll chats on `model` until `provider` serves it; every chat meanwhile must succeed.
    async fn wait_until_served_by(&self, model: &str, provider: &str) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let served_by = self.served_by(model).await;
            if served_by == served(provider) {
                return;
            }
            assert!(Instant::now() < deadline, "{model} still served by {served_by} after {SETTLE:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Poll stderr (after its first `from` bytes) until a line contains every needle.
    fn wait_for_log_line(&self, from: usize, needles: &[&str]) -> String {
        let deadline = Instant::now() + SETTLE;
        loop {
            let stderr = self.server.stderr();
            let new = stderr.get(from..).unwrap_or_default();
            if let Some(line) = new.lines().find(|line| needles.iter().all(|n| line.contains(n))) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no log line with {needles:?}; new stderr:\n{new}");
            std::thread::sleep(POLL);
        }
    }
}

/// The whole config file for `spec`: the harness's `[server]` keys, then the providers.
fn render(a: &MockProvider, b: &MockProvider, spec: &Spec) -> String {
    let provider = |name: &str, mock: &MockProvider| {
        format!(
            "\n[[providers]]\nname = \"{name}\"\ntype = \"{}\"\nbase_url = \"{}\"\nconnect_timeout_secs = 2\n\
             read_timeout_secs = 10\nmax_retries = 0\n",
            Wire::OpenAi.kind(),
            mock.base_url(Wire::OpenAi)
        )
    };
    format!(
        "[server]\nrate_limit_per_second = 10000\nrate_limit_burst = 10000\nshutdown_grace_secs = {}\n\n\
         [storage]\ncache_mib = {}\n\n[config]\nhot_reload = {}\n{}{}{}",
        spec.grace_secs,
        spec.cache_mib,
        spec.hot_reload,
        provider("a", a),
        provider("b", b),
        spec.entries
    )
}

fn assert_rfc3339(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("not an RFC 3339 string: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
}

/// The documented shape of a successful reload.
fn check_report(body: &Value) {
    assert_eq!(body["reloaded"], true, "{body}");
    assert_rfc3339(&body["at"]);
    for section in SECTIONS {
        for kind in KINDS {
            let list = body["changes"][section][kind].as_array();
            assert!(
                list.is_some_and(|l| l.iter().all(Value::is_string)),
                "changes.{section}.{kind} must be a list of names: {body}"
            );
        }
    }
    let restart = body["restart_required"].as_array();
    assert!(restart.is_some_and(|l| l.iter().all(Value::is_string)), "restart_required must be a list: {body}");
}

/// Every reported change as `section.kind:name`, sections in [`SECTIONS`] order.
fn changes(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for section in SECTIONS {
        for kind in KINDS {
            let mut names: Vec<&str> = body["changes"][section][kind]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            names.sort_unstable();
            out.extend(names.into_iter().map(|name| format!("{section}.{kind}:{name}")));
        }
    }
    out
}

fn restart_required(body: &Value) -> Vec<String> {
    let mut sections: Vec<String> = body["restart_required"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    sections.sort();
    sections
}

/// The OpenAI-shaped 404 of an unknown model.
fn assert_model_not_found(answer: &Answer, name: &str) {
    assert_eq!(answer.status, 404, "{name}: {answer:?}");
    let error = &answer.body["error"];
    assert_eq!(error["code"], "model_not_found", "{name}: {answer:?}");
    assert_eq!(error["param"], "model", "{name}: {answer:?}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains(name)), "{name}: {answer:?}");
}

#[tokio::test]
async fn an_api_reload_moves_a_model_to_another_provider() {
    let rig = Rig::start(&Spec::new(&model("m", "a"))).await;
    assert_eq!(rig.last_reload().await, Value::Null, "no reload yet");
    assert_eq!(rig.served_by("m").await, served("a"));

    // Only the operator may reload.
    rig.write_spec(&Spec::new(&model("m", "b")));
    let url = rig.server.url("/api/admin/config/reload");
    let response = rig.server.client().post(&url).send().await.unwrap();
    expect_error(response, 401, "AUTH_MISSING").await;
    let response = rig.server.client().post(&url).header("x-admin-secret", "wrong-secret").send().await.unwrap();
    expect_error(response, 401, "AUTHENTICATION_FAILED").await;
    let response = rig.caller.post("/api/admin/config/reload", &json!({})).send().await.unwrap();
    assert_eq!(response.status(), 401, "a tenant key is not the admin secret");
    assert_eq!(rig.served_by("m").await, served("a"), "a refused reload changes nothing");
    assert_eq!(rig.last_reload().await, Value::Null, "a refused reload is no reload");

    // The file as the server started: nothing to change, nothing needs a restart.
    rig.write_spec(&Spec::new(&model("m", "a")));
    let unchanged = rig.reload_ok().await;
    assert_eq!(changes(&unchanged), Vec::<String>::new(), "{unchanged}");
    assert_eq!(restart_required(&unchanged), Vec::<String>::new(), "{unchanged}");
    assert_eq!(rig.served_by("m").await, served("a"));

    // "m" moves to b.
    rig.write_spec(&Spec::new(&model("m", "b")));
    let moved = rig.reload_ok().await;
    assert_eq!(changes(&moved), ["models.changed:m"], "{moved}");
    assert_eq!(restart_required(&moved), Vec::<String>::new(), "{moved}");
    let a_calls = rig.a.chat_requests().len();
    for _ in 0..3 {
        assert_eq!(rig.served_by("m").await, served("b"));
    }
    assert_eq!(rig.a.chat_requests().len(), a_calls, "a gets no call for m after the reload");
    let upstream = rig.b.chat_requests();
    assert_eq!(upstream.last().map(|r| r.body["model"].clone()), Some(json!("b-model")));

    let last = rig.last_reload().await;
    assert_eq!((last["trigger"].as_str(), last["outcome"].as_str()), (Some("api"), Some("ok")), "{last}");
}

#[tokio::test]
async fn reloads_add_and_remove_providers_models_agents_tools_workflows_and_mcp_servers() {
    let base = Spec::new(&model("m", "a"));
    let rig = Rig::start(&base).await;
    let info = rig.config_info().await;
    assert_eq!(info["providers"], json!(["a", "b"]), "{info}");
    let tools_before = info["tools"].clone();
    assert!(tools_before.as_array().unwrap().contains(&json!("web_search")), "{info}");
    assert!(!rig.model_ids().await.contains(&"n".to_string()));

    // A provider c (served by mock b), a model n on it, an agent on n, a workflow entering that
    // agent, and web_search switched off.
    let added = format!(
        r#"{m}
[[providers]]
name = "c"
type = "openai"
base_url = "{c_url}"
connect_timeout_secs = 2
read_timeout_secs = 10
max_retries = 0

[[models]]
name = "n"
provider = "c"
model_id = "n-model"

[[agents]]
name = "reload-helper"
model = "n"
system_prompt = "You help with reloads."

[[workflows]]
name = "reload-flow"
entry_agent = "reload-helper"

[tools.web_search]
enabled = false

[[mcp.servers]]
name = "reload-mcp"
command = "true"
"#,
        m = model("m", "a"),
        c_url = rig.b.base_url(Wire::OpenAi)
    );
    rig.write_spec(&Spec::new(&added));
    let report = rig.reload_ok().await;
    assert_eq!(
        changes(&report),
        [
            "providers.added:c",
            "models.added:n",
            "agents.added:reload-helper",
            "tools.added:web_search",
            "workflows.added:reload-flow",
            "mcp_servers.added:reload-mcp"
        ],
        "{report}"
    );
    assert_eq!(restart_required(&report), Vec::<String>::new(), "{report}");

    let ids = rig.model_ids().await;
    for id in ["m", "n", "agent:reload-helper"] {
        assert!(ids.contains(&id.to_string()), "/v1/models lacks {id}: {ids:?}");
    }
    let answer = rig.caller.chat("n").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.served_by.as_deref(), Some("c/n-model"), "{answer:?}");
    assert_eq!(answer.content(), Some(reply("b").as_str()), "c is mock b: {answer:?}");
    assert_eq!(rig.b.chat_requests().last().map(|r| r.body["model"].clone()), Some(json!("n-model")));
    let answer = rig.caller.chat("agent:reload-helper").await;
    assert_eq!(answer.status, 200, "the new agent runs: {answer:?}");
    assert_eq!(answer.served_by.as_deref(), Some("c/n-model"), "the agent runs on n: {answer:?}");
    assert_eq!(rig.served_by("m").await, served("a"), "m is untouched");
    let info = rig.config_info().await;
    assert_eq!(info["providers"], json!(["a", "b", "c"]), "{info}");
    assert!(info["agents"].as_array().unwrap().contains(&json!("reload-helper")), "{info}");
    assert!(info["workflows"].as_array().unwrap().contains(&json!("reload-flow")), "{info}");
    assert!(!info["tools"].as_array().unwrap().contains(&json!("web_search")), "{info}");

    // And all of it gone again.
    rig.write_spec(&base);
    let report = rig.reload_ok().await;
    assert_eq!(
        changes(&report),
        [
            "providers.removed:c",
            "models.removed:n",
            "agents.removed:reload-helper",
            "tools.removed:web_search",
            "workflows.removed:reload-flow",
            "mcp_servers.removed:reload-mcp"
        ],
        "{report}"
    );
    let ids = rig.model_ids().await;
    for id in ["n", "agent:reload-helper"] {
        assert!(!ids.contains(&id.to_string()), "/v1/models still lists {id}: {ids:?}");
    }
    assert!(ids.contains(&"m".to_string()), "{ids:?}");
    let b_calls = rig.b.chat_requests().len();
    assert_model_not_found(&rig.caller.chat("n").await, "n");
    assert_model_not_found(&rig.caller.chat("agent:reload-helper").await, "agent:reload-helper");
    assert_eq!(rig.b.chat_requests().len(), b_calls, "a removed model reaches no upstream");
    assert_eq!(rig.served_by("m").await, served("a"));
    let info = rig.config_info().await;
    assert_eq!(info["providers"], json!(["a", "b"]), "{info}");
    assert_eq!(info["tools"], tools_before, "{info}");
    assert!(!info["workflows"].as_array().unwrap().contains(&json!("reload-flow")), "{info}");
}

#[tokio::test]
async fn an_invalid_file_is_refused_and_changes_nothing() {
    let good = Spec::new(&model("m", "a"));
    let rig = Rig::start(&good).await;
    assert_eq!(rig.served_by("m").await, served("a"));
    let ids_before = rig.model_ids().await;

    // A syntax error, in a file that would otherwise also move m to b.
    let moved = rig.render(&Spec::new(&model("m", "b")));
    let valid_part = moved.trim_end();
    let bad_line = valid_part.lines().count() + 3;
    rig.write(&format!("{valid_part}\n\n[[models]]\nname = = \"x\"\nprovider = \"a\"\nmodel_id = \"x\"\n"));
    let message = rig.reload_invalid().await;
    assert!(message.contains(&format!("line {bad_line}")), "the error names line {bad_line}: {message}");
    for _ in 0..3 {
        assert_eq!(rig.served_by("m").await, served("a"), "a refused file changes nothing");
    }
    let last = rig.last_reload().await;
    assert_eq!((last["trigger"].as_str(), last["outcome"].as_str()), (Some("api"), Some("error")), "{last}");
    assert!(last["error"].as_str().unwrap().contains(&format!("line {bad_line}")), "{last}");

    // Well-formed TOML that does not validate: a model on an undefined provider, next to the
    // move of m (which must not apply either).
    rig.write_spec(&Spec::new(&format!("{}{}", model("m", "b"), model("x", "nope"))));
    let message = rig.reload_invalid().await;
    assert!(message.contains("models.x"), "the error names the key: {message}");
    assert!(message.contains("nope"), "the error names the provider: {message}");
    for _ in 0..3 {
        assert_eq!(rig.served_by("m").await, served("a"), "a refused file changes nothing");
    }
    assert_eq!(rig.model_ids().await, ids_before, "no model came or went");
    assert_model_not_found(&rig.caller.chat("x").await, "x");
    let last = rig.last_reload().await;
    assert_eq!((last["trigger"].as_str(), last["outcome"].as_str()), (Some("api"), Some("error")), "{last}");
    assert!(last["error"].as_str().unwrap().contains("models.x"), "{last}");

    // The running configuration is still exactly the good file: reloading it changes nothing.
    rig.write_spec(&good);
    let report = rig.reload_ok().await;
    assert_eq!(changes(&report), Vec::<String>::new(), "{report}");
    assert_eq!(restart_required(&report), Vec::<String>::new(), "{report}");
    let last = rig.last_reload().await;
    assert_eq!((last["trigger"].as_str(), last["outcome"].as_str()), (Some("api"), Some("ok")), "{last}");
}

#[tokio::test]
async fn sighup_reloads_the_file() {
    let rig = Rig::start(&Spec::new(&model("m", "a"))).await;
    assert_eq!(rig.served_by("m").await, served("a"));

    rig.write_spec(&Spec::new(&model("m", "b")));
    let pid = rig.server.pid().to_string();
    let sent = std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("run kill -HUP");
    assert!(sent.success(), "kill -HUP {pid} failed");

    let last = rig.wait_for_reload("signal", "ok").await;
    assert_eq!(last["error"], Value::Null, "{last}");
    for _ in 0..3 {
        assert_eq!(rig.served_by("m").await, served("b"), "the reload the signal set off applies");
    }
}

#[tokio::test]
async fn hot_reload_picks_up_an_edited_file_and_ignores_an_invalid_one() {
    let rig = Rig::start(&Spec::new(&model("m", "a")).hot()).await;
    assert_eq!(rig.served_by("m").await, served("a"));

    rig.write_spec(&Spec::new(&model("m", "b")).hot());
    rig.wait_until_served_by("m", "b").await;
    let last = rig.wait_for_reload("watch", "ok").await;
    assert_eq!(last["error"], Value::Null, "{last}");

    // A broken save is logged and changes nothing.
    let stderr_before = rig.server.stderr().len();
    let valid_part = rig.render(&Spec::new(&model("m", "a")).hot());
    let valid_part = valid_part.trim_end();
    let bad_line = valid_part.lines().count() + 2;
    rig.write(&format!("{valid_part}\n\n[[models\nname = \"x\"\n"));
    let last = rig.wait_for_reload("watch", "error").await;
    assert!(last["error"].as_str().unwrap().contains(&format!("line {bad_line}")), "{last}");
    rig.wait_for_log_line(stderr_before, &[&format!("line {bad_line}")]);
    for _ in 0..3 {
        assert_eq!(rig.served_by("m").await, served("b"), "the last good config keeps serving");
    }

    // The watcher goes on watching: the next good save applies.
    rig.write_spec(&Spec::new(&model("m", "a")).hot());
    rig.wait_until_served_by("m", "a").await;
    rig.wait_for_reload("watch", "ok").await;
}

/// `hot_reload` is itself reloadable: turned on by an API reload, the watcher starts; turned
/// off, it stops.
#[tokio::test]
async fn hot_reload_can_be_turned_on_and_off_by_a_reload() {
    let rig = Rig::start(&Spec::new(&model("m", "a"))).await;
    rig.write_spec(&Spec::new(&model("m", "a")).hot());
    rig.reload_ok().await;

    rig.write_spec(&Spec::new(&model("m", "b")).hot());
    rig.wait_until_served_by("m", "b").await;
    rig.wait_for_reload("watch", "ok").await;

    // Off again, in a save the watcher itself applies; after it, an edit is not picked up.
    rig.write_spec(&Spec::new(&model("m", "a")));
    rig.wait_until_served_by("m", "a").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rig.write_spec(&Spec::new(&model("m", "b")));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rig.served_by("m").await, served("a"), "no longer watching");
    rig.reload_ok().await;
    assert_eq!(rig.served_by("m").await, served("b"), "an explicit reload still applies it");
}

/// One plain chat of the load around a reload.
struct Call {
    started: Instant,
    ended: Instant,
    outcome: Result<Answer, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_on_the_configuration_they_started_with() {
    const WORKERS: usize = 4;
    let rig = Rig::start(&Spec::new(&model("m", "a"))).await;
    // Streamed, a's answer takes about 3 s (one word per 100 ms); plain answers are immediate.
    let long = (1..=30).map(|i| format!("a-word{i:02}")).collect::<Vec<_>>().join(" ");
    rig.a.set_script(Script::reply(&long).chunk_delay(Duration::from_millis(100)));

    // Plain chats, several at a time, from before the reload until after it.
    let stop = Arc::new(AtomicBool::new(false));
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let load_start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (caller, stop, calls) = (rig.caller.clone(), stop.clone(), calls.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let outcome = caller.try_chat("m").await;
                    calls.lock().unwrap().push(Call { started, ended: Instant::now(), outcome });
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let wait_for_calls = |count: usize, since: Instant| {
        let calls = calls.clone();
        async move {
            let deadline = Instant::now() + SETTLE;
            loop {
                let done = calls.lock().unwrap().iter().filter(|c| c.started > since).count();
                if done >= count {
                    return;
                }
                assert!(Instant::now() < deadline, "only {done} chats completed within {SETTLE:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for_calls(WORKERS, load_start).await;

    // A slow stream starts on a.
    let response = rig.caller.stream("m").await;
    assert_eq!(header(&response, "x-ares-served-by"), Some(served("a")), "the stream starts on a");
    let mut reader = SseReader::new(response);
    let mut events: Vec<SseEvent> = Vec::new();
    loop {
        let event = reader.next_event().await.expect("the stream goes on");
        let has_text = event.data != "[DONE]"
            && event.json().pointer("/choices/0/delta/content").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
        events.push(event);
        if has_text {
            break;
        }
    }

    // m moves to b while the stream runs.
    rig.write_spec(&Spec::new(&model("m", "b")));
    let reload_sent = Instant::now();
    let report = rig.reload_ok().await;
    let reload_done = Instant::now();
    assert_eq!(changes(&report), ["models.changed:m"], "{report}");

    // New requests go to b, plain and streamed, while the old stream is still running on a.
    assert_eq!(rig.served_by("m").await, served("b"));
    let response = rig.caller.stream("m").await;
    assert_eq!(header(&response, "x-ares-served-by"), Some(served("b")), "a new stream starts on b");
    let new_stream = crate::gateway::sse_events(response).await;
    assert_eq!(new_stream.last().map(|e| e.data.as_str()), Some("[DONE]"), "{new_stream:?}");
    let old_stream = rig.a.chat_requests().into_iter().find(|r| r.is_stream()).expect("a saw the stream");
    assert!(
        !old_stream.finished,
        "the slow stream must still be running after the reload for this test to mean anything"
    );

    // The old stream ends normally, with all of a's text.
    events.extend(reader.rest().await);
    let (last, chunks) = events.split_last().expect("events");
    assert_eq!(last.data, "[DONE]", "the stream ends normally: {events:?}");
    let chunks: Vec<Value> = chunks.iter().map(SseEvent::json).collect();
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "no error in the stream: {chunks:?}");
    let text: String =
        chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    assert_eq!(text, long, "the stream carries a's whole answer");
    assert!(
        chunks.iter().any(|c| c.pointer("/choices/0/finish_reason").and_then(Value::as_str) == Some("stop")),
        "the stream finishes with stop: {chunks:?}"
    );
    assert!(rig.b.chat_requests().iter().all(|r| !r.body.to_string().contains("a-word")), "nothing of a's went to b");

    // The load: every chat succeeded; before the reload on a, after it on b.
    wait_for_calls(WORKERS, reload_done).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("load worker");
    }
    let calls = calls.lock().unwrap();
    let (mut on_a, mut on_b) = (0, 0);
    for call in calls.iter() {
        let answer = call.outcome.as_ref().unwrap_or_else(|e| panic!("a chat around the reload failed: {e}"));
        assert_eq!(answer.status, 200, "a chat around the reload failed: {answer:?}");
        let served_by = answer.served_by.clone().unwrap_or_else(|| panic!("no X-Ares-Served-By: {answer:?}"));
        if served_by == served("a") {
            on_a += 1;
            assert_eq!(answer.content(), Some(long.as_str()), "{answer:?}");
            assert!(call.started < reload_done, "a chat started after the reload answered went to a: {answer:?}");
        } else {
            on_b += 1;
            assert_eq!(served_by, served("b"), "{answer:?}");
            assert_eq!(answer.content(), Some(reply("b").as_str()), "{answer:?}");
            assert!(call.ended > reload_sent, "a chat finished before the reload was asked for went to b: {answer:?}");
        }
    }
    assert!(on_a >= WORKERS && on_b >= WORKERS, "load on both sides of the reload: {on_a} on a, {on_b} on b");
}

#[tokio::test]
async fn sections_that_need_a_restart_are_reported_and_the_rest_applies() {
    let rig = Rig::start(&Spec::new(&model("m", "a"))).await;
    assert_eq!(rig.served_by("m").await, served("a"));
    let stderr_before = rig.server.stderr().len();

    let mut spec = Spec::new(&model("m", "b"));
    spec.grace_secs = 7;
    spec.cache_mib = 48;
    rig.write_spec(&spec);
    let report = rig.reload_ok().await;
    assert_eq!(restart_required(&report), ["server", "storage"], "{report}");
    assert_eq!(changes(&report), ["models.changed:m"], "{report}");
    for _ in 0..3 {
        assert_eq!(rig.served_by("m").await, served("b"), "the model change applies without a restart");
    }
    // A log line (one for both, or one each) names what waits for a restart.
    rig.wait_for_log_line(stderr_before, &["restart", "server"]);
    rig.wait_for_log_line(stderr_before, &["restart", "storage"]);
    let last = rig.last_reload().await;
    assert_eq!((last["trigger"].as_str(), last["outcome"].as_str()), (Some("api"), Some("ok")), "{last}");
}
