//! `[config]` directories of `*.toon` files (API.md §5.3): agents, models, tools and workflows
//! kept one per file next to ares.toml, merged under it (ares.toml wins), with undecodable files
//! skipped with a warning instead of stopping start-up.
//!
//! The directories are found relative to the config *file*, so these tests run the compiled
//! binary with `--config <root>/ares-test.toml` and the files under `<root>`.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::gateway::{KEY_ENV, PASSWORD, PROVIDER_KEY, model_id};
use crate::harness::{BinaryServer, expect_json};
use crate::mock_provider::{MockProvider, RecordedRequest, Script, Wire};

/// A server binary whose config names a mock provider, started in a directory of TOON files.
/// Fields drop in order: the mock first (so no call hangs), the process, then the files.
struct DirServer {
    mock: MockProvider,
    server: BinaryServer,
    _root: TempDir,
}

impl DirServer {
    /// Write `files` (paths relative to the config file's directory) and start the binary with
    /// the mock provider plus `extra` in its config.
    fn start(files: &[(&str, &str)], extra: &str) -> DirServer {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            write(root.path(), path, text);
        }
        let mock = MockProvider::start();
        let provider = format!(
            r#"
[[providers]]
name = "mock-openai"
type = "openai"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
read_timeout_secs = 5
connect_timeout_secs = 2

[[models]]
name = "mock-model"
provider = "mock-openai"
model_id = "{model_id}"
tier = "balanced"
"#,
            base_url = mock.base_url(Wire::OpenAi),
            model_id = model_id(Wire::OpenAi),
        );
        let server =
            BinaryServer::builder(root.path()).config(&provider).config(extra).env(KEY_ENV, PROVIDER_KEY).start();
        DirServer { mock, server, _root: root }
    }

    async fn token(&self) -> String {
        let email = format!("dirs-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self
            .server
            .client()
            .post(self.server.url("/api/auth/register"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        expect_json(response, 200).await["access_token"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Value {
        let mut request = self.server.client().get(self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        expect_json(request.send().await.unwrap(), 200).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Value {
        let request = self.server.client().request(Method::POST, self.server.url(path)).bearer_auth(token);
        expect_json(request.json(body).send().await.unwrap(), 200).await
    }

    /// Chat with `agent`; returns the response and the one model call it made.
    async fn chat(&self, token: &str, agent: &str) -> (Value, RecordedRequest) {
        let before = self.mock.chat_requests().len();
        let answer = self.post("/api/chat", token, &json!({ "message": "Hello", "agent_type": agent })).await;
        let mut requests = self.mock.chat_requests().split_off(before);
        assert_eq!(requests.len(), 1, "one model call for {agent}");
        (answer, requests.pop().unwrap())
    }
}

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn system_prompt(request: &RecordedRequest) -> String {
    request.transcript().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect()
}

fn agent<'a>(agents: &'a Value, name: &str) -> Option<&'a Value> {
    agents.as_array().unwrap().iter().find(|a| a["name"] == name)
}

#[tokio::test]
async fn toon_agents_and_models_load_from_the_default_directories_and_broken_files_are_skipped() {
    let dir = DirServer::start(
        &[
            (
                "config/agents/toon-helper.toon",
                "name: toon-helper\nmodel: mock-model\nsystem_prompt: \"You are the TOON helper.\\nBe brief.\"\n\
                 description: Loaded from a TOON file\ntools[1]: calculator\nmax_tool_iterations: 2",
            ),
            (
                "config/agents/alt-user.toon",
                "name: alt-user\nmodel: alt-model\nsystem_prompt: You use the other model.\ntools[1]: calculator",
            ),
            (
                "config/models/alt.toon",
                "name: alt-model\nprovider: mock-openai\nmodel: alt-model-id\nmax_tokens: 77\nsupports_tools: false",
            ),
            ("config/models/ghost.toon", "name: ghost-model\nprovider: nowhere\nmodel: ghost-id"),
            ("config/agents/broken.toon", "this is not valid toon\n  at: all: ["),
            ("config/agents/no-model.toon", "name: no-model\nsystem_prompt: I lack a model."),
            ("config/agents/notes.txt", "name: not-toon\nmodel: mock-model"),
        ],
        "",
    );
    // The server started despite the broken files, and said why it skipped them.
    let stderr = dir.server.wait_for_stderr("broken.toon");
    dir.server.wait_for_stderr("no-model.toon");
    dir.server.wait_for_stderr("provider 'nowhere'");
    assert!(stderr.contains("skipped"), "{stderr}");

    let agents = dir.get("/api/agents", None).await;
    let helper = agent(&agents, "toon-helper").unwrap_or_else(|| panic!("toon-helper not listed: {agents}"));
    assert_eq!(helper["agent_type"], "toon-helper");
    assert_eq!(helper["description"], "Loaded from a TOON file");
    assert_eq!(helper["model"], "mock-model");
    assert_eq!(helper["tools"], json!(["calculator"]));
    assert!(agent(&agents, "alt-user").is_some(), "{agents}");
    for skipped in ["no-model", "not-toon", "broken"] {
        assert!(agent(&agents, skipped).is_none(), "{skipped} should have been skipped: {agents}");
    }
    assert!(agent(&agents, "router").is_some() && agent(&agents, "product").is_some(), "built-ins stay");

    let token = dir.token().await;
    dir.mock.set_script(Script::reply("Hi from the helper."));
    let (answer, sent) = dir.chat(&token, "toon-helper").await;
    assert_eq!(answer["response"], "Hi from the helper.");
    assert_eq!((answer["agent"].as_str(), answer["agent_source"].as_str()), (Some("toon-helper"), Some("system")));
    assert_eq!(system_prompt(&sent), "You are the TOON helper.\nBe brief.");
    assert_eq!(sent.body["model"], model_id(Wire::OpenAi));
    assert_eq!(sent.tools_offered(), Some(vec!["calculator".to_string()]));

    // The agent on the model from the models directory: its id, its max_tokens, no tools.
    let (_, sent) = dir.chat(&token, "alt-user").await;
    assert_eq!(system_prompt(&sent), "You use the other model.");
    assert_eq!(sent.body["model"], "alt-model-id");
    assert_eq!(sent.body["max_tokens"], 77);
    assert_eq!(sent.tools_offered(), None, "the model file says it does not support tools");
}

#[tokio::test]
async fn ares_toml_wins_and_configured_directories_replace_the_defaults() {
    let dir = DirServer::start(
        &[
            ("my-agents/support.toon", "name: support\nmodel: mock-model\nsystem_prompt: From the file."),
            (
                "my-agents/extra.toon",
                "name: extra\nmodel: mock-model\nsystem_prompt: Extra help.\ntools[1]: calculator",
            ),
            ("config/agents/ignored.toon", "name: ignored\nmodel: mock-model"),
            ("my-tools/calculator.toon", "name: calculator\nenabled: false"),
            (
                "flows/triage.toon",
                "name: triage\nentry_agent: extra\nfallback_agent: orchestrator\nmax_depth: 2\nparallel_subagents: true",
            ),
            ("flows/shadowed.toon", "name: shadowed\nentry_agent: hr\nmax_depth: 1"),
            ("flows/broken.toon", "name: [oops"),
            ("config/workflows/unused.toon", "name: unused\nentry_agent: hr"),
        ],
        r#"
[config]
agents_dir = "my-agents"
tools_dir = "my-tools"
workflows_dir = "flows"

[[agents]]
name = "support"
model = "mock-model"
system_prompt = "From ares.toml."

[workflows.shadowed]
entry_agent = "finance"
max_depth = 2
"#,
    );
    dir.server.wait_for_stderr("broken.toon");

    let agents = dir.get("/api/agents", None).await;
    assert!(agent(&agents, "extra").is_some(), "{agents}");
    assert!(agent(&agents, "ignored").is_none(), "the default directory is not read when another is named");
    let supports: Vec<&Value> = agents.as_array().unwrap().iter().filter(|a| a["name"] == "support").collect();
    assert_eq!(supports.len(), 1, "{agents}");

    let token = dir.token().await;
    dir.mock.set_script(Script::reply("Done."));
    let (_, sent) = dir.chat(&token, "support").await;
    assert_eq!(system_prompt(&sent), "From ares.toml.", "ares.toml wins over a file of the same name");
    let (_, sent) = dir.chat(&token, "extra").await;
    assert_eq!(system_prompt(&sent), "Extra help.");
    assert_eq!(sent.tools_offered(), None, "the tools directory disabled the calculator");

    let listed = dir.get("/api/workflows", Some(&token)).await;
    assert_eq!(listed, json!(["default", "research", "shadowed", "triage"]));
    let detailed = dir.get("/api/workflows?detailed=true", Some(&token)).await;
    let find = |name: &str| detailed.as_array().unwrap().iter().find(|w| w["name"] == name).unwrap().clone();
    assert_eq!(
        find("triage"),
        json!({ "name": "triage", "entry_agent": "extra", "fallback_agent": "orchestrator",
                "max_depth": 2, "max_iterations": 5, "parallel_subagents": true })
    );
    assert_eq!(find("shadowed")["entry_agent"], "finance", "ares.toml wins over the workflow file");
    assert_eq!(find("shadowed")["max_depth"], 2);

    // The workflow from the file runs its entry agent from the agents directory.
    let outcome = dir.post("/api/workflows/triage", &token, &json!({ "query": "Help" })).await;
    assert_eq!(outcome["agents_used"], json!(["extra"]));
    assert_eq!(outcome["final_response"], "Done.");
    assert_eq!(system_prompt(&dir.mock.chat_requests().pop().unwrap()), "Extra help.");
}

#[tokio::test]
async fn without_directories_the_server_starts_as_usual() {
    let dir = DirServer::start(&[], "");
    let agents = dir.get("/api/agents", None).await;
    assert!(agent(&agents, "router").is_some(), "{agents}");
    let token = dir.token().await;
    assert_eq!(dir.get("/api/workflows", Some(&token)).await, json!(["default", "research"]));
}
