//! Hardening: no user can change what another user's request runs, and no agent definition can
//! buy more tool rounds than `[limits].max_tool_iterations` — each test plays the attack over
//! HTTP with real users, tenants and a mock provider.
//!
//! Records that the API now refuses (a public agent under a platform agent's name, a tool-round
//! count above the cap) still reach the store the ways an attacker cannot control: published
//! before the operator configured a same-named agent or lowered the cap (a restart on the same
//! data dir), or imported from the reference server (`ares import-postgres`).

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{self, Gateway, KEY_ENV, MODEL, PASSWORD, PROVIDER_KEY};
use crate::harness::{BinaryServer, TestServer, expect_error, expect_json, run_cli};
use crate::mock_provider::{MockProvider, RecordedRequest, Script, Wire};

const PRODUCT_PROMPT_START: &str = "You are a product specialist.";

/// The provider block of `Gateway` (OpenAI wire), for servers these tests start themselves.
fn provider_config(mock: &MockProvider) -> String {
    gateway::provider_config(mock, Wire::OpenAi, KEY_ENV, 5)
}

/// An in-process server on `dir` using `mock`, with `extra` config.
fn server_on(mock: &MockProvider, dir: &Path, extra: &str) -> TestServer {
    TestServer::builder().env(KEY_ENV, PROVIDER_KEY).config(&provider_config(mock)).config(extra).data_dir(dir).start()
}

async fn user(server: &TestServer) -> String {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
    server.register(&email, PASSWORD).await["access_token"].as_str().unwrap().to_string()
}

async fn send(server: &TestServer, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let request = server.v1(method, path, token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn post(server: &TestServer, path: &str, token: &str, body: Value) -> reqwest::Response {
    send(server, Method::POST, path, token, Some(body)).await
}

/// The system prompt of the last model call.
fn last_system_prompt(mock: &MockProvider) -> String {
    system_prompt(&mock.chat_requests().pop().expect("a model call"))
}

fn system_prompt(request: &RecordedRequest) -> String {
    request.transcript().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect()
}

/// Chat as `token` with `agent_type` (or the router when `None`); returns (body, system prompt
/// the model saw).
async fn chat(server: &TestServer, mock: &MockProvider, token: &str, agent: Option<&str>) -> (Value, String) {
    let mut body = json!({ "message": "hello" });
    if let Some(agent) = agent {
        body["agent_type"] = json!(agent);
    }
    let answer = expect_json(post(server, "/api/chat", token, body).await, 200).await;
    (answer, last_system_prompt(mock))
}

// ------------------------------------------------------------------------- who runs what

#[tokio::test]
async fn publishing_an_agent_under_a_platform_agents_name_is_a_conflict_and_shadows_only_for_its_owner() {
    let gw = Gateway::builder(Wire::OpenAi)
        .config("[[agents]]\nname = \"support\"\nmodel = \"mock-model\"\nsystem_prompt = \"PLATFORM SUPPORT\"\n")
        .start();
    let (alice, bob) = (gw.user().await, gw.user().await);
    let create = |body: Value| {
        let alice = alice.clone();
        let gw = &gw;
        async move { gw.post("/api/user/agents", &alice, &body).await }
    };

    // Built-in names in any case, configured names, and the guide's config{} form.
    for (name, platform) in [("product", "product"), ("Orchestrator", "orchestrator"), ("support", "support")] {
        let body = json!({ "name": name, "model": MODEL, "system_prompt": "EVIL", "is_public": true });
        let error = expect_error(create(body).await, 409, "CONFLICT").await;
        assert_eq!(
            error["error"],
            format!("Agent '{name}' cannot be public: the platform agent '{platform}' has that name")
        );
    }
    let guide = json!({ "name": "router", "agent_type": "router", "is_public": true,
        "config": { "model": MODEL, "system_prompt": "EVIL" } });
    expect_error(create(guide).await, 409, "CONFLICT").await;

    // Alice may shadow `product` for herself, but not publish it afterwards.
    let own = json!({ "name": "product", "model": MODEL, "system_prompt": "ALICE PRODUCT" });
    expect_json(create(own).await, 201).await;
    let publish = gw
        .server
        .v1(Method::PUT, "/api/user/agents/product", &alice)
        .json(&json!({ "is_public": true }))
        .send()
        .await
        .unwrap();
    let error = expect_error(publish, 409, "CONFLICT").await;
    assert!(error["error"].as_str().unwrap().contains("platform agent 'product'"), "{error}");
    let stored = expect_json(gw.get("/api/user/agents/product", &alice).await, 200).await;
    assert_eq!((stored["source"].as_str(), stored["is_public"].as_bool()), (Some("user"), Some(false)));

    gw.mock.set_script(Script::reply("ok"));
    let (answer, prompt) = chat(&gw.server, &gw.mock, &alice, Some("product")).await;
    assert_eq!((answer["agent_source"].as_str(), prompt.as_str()), (Some("user"), "ALICE PRODUCT"));
    let (answer, prompt) = chat(&gw.server, &gw.mock, &bob, Some("product")).await;
    assert_eq!(answer["agent_source"], "system");
    assert!(prompt.starts_with(PRODUCT_PROMPT_START), "{prompt}");
    // The router picks `product`: the caller's own for Alice, the platform's for Bob.
    for (token, expected) in [(&alice, "ALICE PRODUCT"), (&bob, PRODUCT_PROMPT_START)] {
        gw.mock.enqueue(Script::reply("product"));
        let (_, prompt) = chat(&gw.server, &gw.mock, token, None).await;
        assert!(prompt.starts_with(expected), "{prompt}");
    }
    let system = expect_json(gw.get("/api/user/agents/product", &bob).await, 200).await;
    assert_eq!(system["source"], "system");
}

#[tokio::test]
async fn another_users_public_agent_never_answers_for_a_platform_name_nor_when_a_workflow_picks_it() {
    let mock = MockProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let mut first = server_on(&mock, dir.path(), "");
    let (alice, bob) = (user(&first).await, user(&first).await);
    for (name, prompt) in [("helper", "ALICE HELPER"), ("scout", "ALICE SCOUT")] {
        let body = json!({ "name": name, "model": MODEL, "system_prompt": prompt, "is_public": true });
        expect_json(post(&first, "/api/user/agents", &alice, body).await, 201).await;
    }
    first.shutdown_async().await;

    // The operator later configures an agent `helper` and workflows over `helper` and `scout`.
    let server = server_on(
        &mock,
        dir.path(),
        r#"
[[agents]]
name = "helper"
model = "mock-model"
system_prompt = "PLATFORM HELPER"

[[workflows]]
name = "help-flow"
entry_agent = "helper"

[[workflows]]
name = "scout-flow"
entry_agent = "scout"

[[workflows]]
name = "research"
entry_agent = "helper"
"#,
    );
    mock.set_script(Script::reply("ok"));

    for name in ["helper", "HELPER"] {
        let (answer, prompt) = chat(&server, &mock, &bob, Some(name)).await;
        assert_eq!((answer["agent_source"].as_str(), prompt.as_str()), (Some("system"), "PLATFORM HELPER"), "{name}");
    }
    mock.enqueue(Script::reply("helper"));
    let (_, prompt) = chat(&server, &mock, &bob, None).await;
    assert_eq!(prompt, "PLATFORM HELPER", "the router's pick");
    let (answer, prompt) = chat(&server, &mock, &alice, Some("helper")).await;
    assert_eq!((answer["agent_source"].as_str(), prompt.as_str()), (Some("user"), "ALICE HELPER"), "the owner's own");
    // Named by the caller and held by no platform agent: the documented community agent.
    let (answer, prompt) = chat(&server, &mock, &bob, Some("scout")).await;
    assert_eq!((answer["agent_source"].as_str(), prompt.as_str()), (Some("community"), "ALICE SCOUT"));

    let read = expect_json(send(&server, Method::GET, "/api/user/agents/helper", &bob, None).await, 200).await;
    assert_eq!((read["source"].as_str(), read["system_prompt"].as_str()), (Some("system"), Some("PLATFORM HELPER")));
    let export = send(&server, Method::GET, "/api/user/agents/helper/export", &bob, None).await.text().await.unwrap();
    assert!(export.contains("PLATFORM HELPER"), "{export}");
    let listed =
        expect_json(send(&server, Method::GET, "/api/user/agents?include_public=true", &bob, None).await, 200).await;
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["scout"], "a public agent the platform shadows is not offered to others");

    // Workflows and research run what their definition names: the platform's, never Alice's.
    let flow = expect_json(post(&server, "/api/workflows/help-flow", &bob, json!({ "query": "q" })).await, 200).await;
    assert_eq!(flow["agents_used"], json!(["helper"]));
    assert_eq!(last_system_prompt(&mock), "PLATFORM HELPER");
    let calls_before = mock.chat_requests().len();
    let error =
        expect_error(post(&server, "/api/workflows/scout-flow", &bob, json!({ "query": "q" })).await, 404, "NOT_FOUND")
            .await;
    assert_eq!(error["error"], "Agent not found: scout");
    assert_eq!(mock.chat_requests().len(), calls_before, "Alice's agent never ran for Bob's workflow");
    let body = json!({ "query": "q", "depth": 1, "max_iterations": 1 });
    let research = expect_json(post(&server, "/api/research", &bob, body).await, 200).await;
    assert_eq!(research["agent"], "helper");
    assert_eq!(last_system_prompt(&mock), "PLATFORM HELPER");
}

#[tokio::test]
async fn a_tenant_agent_shadows_a_platform_agent_for_that_tenants_keys_only() {
    let gw = Gateway::start(Wire::OpenAi);
    let (acme, acme_key) = gw.tenant("acme").await;
    let (_, other_key) = gw.tenant("other").await;
    for (name, prompt) in [("product", "ACME PRODUCT"), ("financial-analyst", "ACME ANALYST")] {
        let body = json!({ "name": name, "config": { "model": MODEL, "system_prompt": prompt } });
        let path = format!("/api/admin/tenants/{acme}/agents");
        expect_json(gw.server.admin(Method::POST, &path).json(&body).send().await.unwrap(), 201).await;
    }
    gw.mock.set_script(Script::reply("ok"));
    let ask = |agent: &str| json!({ "message": "hello", "agent_type": agent });
    let answer = expect_json(gw.post("/v1/chat", &acme_key, &ask("product")).await, 200).await;
    assert_eq!(
        (answer["agent_source"].as_str(), last_system_prompt(&gw.mock).as_str()),
        (Some("tenant"), "ACME PRODUCT")
    );
    expect_json(gw.post("/v1/chat", &acme_key, &ask("financial-analyst")).await, 200).await;
    assert_eq!(last_system_prompt(&gw.mock), "ACME ANALYST");
    let answer = expect_json(gw.post("/v1/chat", &other_key, &ask("product")).await, 200).await;
    assert_eq!(answer["agent_source"], "system");
    assert!(last_system_prompt(&gw.mock).starts_with(PRODUCT_PROMPT_START));
    expect_error(gw.post("/v1/chat", &other_key, &ask("financial-analyst")).await, 404, "NOT_FOUND").await;
}

// ------------------------------------------------------------------------- bounded work

#[tokio::test]
async fn agent_definitions_above_the_tool_iteration_cap_are_refused() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let too_many = "max_tool_iterations must be between 1 and 25, got 26";
    let flat = json!({ "name": "greedy", "model": MODEL, "max_tool_iterations": 26 });
    let error = expect_error(gw.post("/api/user/agents", &token, &flat).await, 422, "UNPROCESSABLE").await;
    assert_eq!(error["error"], too_many);
    let guide =
        json!({ "name": "greedy", "agent_type": "custom", "config": { "model": MODEL, "max_tool_iterations": 26 } });
    let error = expect_error(gw.post("/api/user/agents", &token, &guide).await, 422, "UNPROCESSABLE").await;
    assert_eq!(error["error"], too_many);
    let toon = "name: greedy\nmodel: mock-model\nmax_tool_iterations: 26\n";
    let import = gw.server.v1(Method::POST, "/api/user/agents/import", &token).body(toon).send().await.unwrap();
    expect_error(import, 422, "UNPROCESSABLE").await;
    let listed = expect_json(gw.get("/api/user/agents", &token).await, 200).await;
    assert_eq!(listed, json!([]), "nothing was stored");

    let guide_at_cap = json!({ "name": "fine", "config": { "model": MODEL, "max_tool_iterations": 25 } });
    let created = expect_json(gw.post("/api/user/agents", &token, &guide_at_cap).await, 201).await;
    assert_eq!(created["max_tool_iterations"], 25);
    for body in [json!({ "max_tool_iterations": 26 }), json!({ "config": { "max_tool_iterations": 1000 } })] {
        let update = gw.server.v1(Method::PUT, "/api/user/agents/fine", &token).json(&body).send().await.unwrap();
        expect_error(update, 422, "UNPROCESSABLE").await;
    }
    let stored = expect_json(gw.get("/api/user/agents/fine", &token).await, 200).await;
    assert_eq!(stored["max_tool_iterations"], 25);

    // Tenant agents: either key the runtime reads, on create and on update.
    let (tenant, _) = gw.tenant("capped").await;
    let agents = format!("/api/admin/tenants/{tenant}/agents");
    for key in ["max_tool_iterations", "max_iterations"] {
        let body = json!({ "name": "greedy", "config": { "model": MODEL, key: 1000 } });
        let response = gw.server.admin(Method::POST, &agents).json(&body).send().await.unwrap();
        let error = expect_error(response, 422, "UNPROCESSABLE").await;
        assert_eq!(error["error"], format!("config.{key} must be an integer between 1 and 25, got 1000"));
    }
    let body = json!({ "name": "bounded", "config": { "model": MODEL, "max_tool_iterations": 25 } });
    expect_json(gw.server.admin(Method::POST, &agents).json(&body).send().await.unwrap(), 201).await;
    let update = json!({ "config": { "model": MODEL, "max_iterations": 26 } });
    let response = gw.server.admin(Method::PUT, &format!("{agents}/bounded")).json(&update).send().await.unwrap();
    expect_error(response, 422, "UNPROCESSABLE").await;
}

#[test]
fn config_agents_above_the_tool_iteration_cap_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("config/agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(agents.join("looper.toon"), "name: looper\nmodel: fast\nmax_tool_iterations: 500\n").unwrap();
    let data = dir.path().join("data");
    let run = |config: &str| {
        std::fs::write(dir.path().join("ares.toml"), config).unwrap();
        let args = ["--config", "ares.toml", "--data-dir", data.to_str().unwrap(), "--port", "0"];
        run_cli(dir.path(), &args, &[("ADMIN_API_KEY", "x".repeat(32).as_str()), ("JWT_SECRET", &"j".repeat(40))])
    };
    let out = run("");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("agents.looper") && out.stderr.contains("limits.max_tool_iterations (25)"), "{out:?}");
    let out = run("[[agents]]\nname = \"greedy\"\nmax_iterations = 26\n");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("agents.greedy"), "{out:?}");
    assert!(!data.join("ares.redb").exists(), "refused before the store was created");
}

#[tokio::test]
async fn stored_agents_run_no_more_tool_rounds_than_the_cap() {
    let mock = MockProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let mut first = server_on(&mock, dir.path(), "");
    let alice = user(&first).await;
    let body = json!({ "name": "looper", "model": MODEL, "tools": ["calculator"], "max_tool_iterations": 20 });
    expect_json(post(&first, "/api/user/agents", &alice, body).await, 201).await;
    let provisioned = first.provision("loopy", "pro", "generic").await;
    let (tenant, key) = (
        provisioned["tenant_id"].as_str().unwrap().to_string(),
        provisioned["raw_api_key"].as_str().unwrap().to_string(),
    );
    let body =
        json!({ "name": "looper-t", "config": { "model": MODEL, "tools": ["calculator"], "max_tool_iterations": 20 } });
    let path = format!("/api/admin/tenants/{tenant}/agents");
    expect_json(first.admin(Method::POST, &path).json(&body).send().await.unwrap(), 201).await;
    first.shutdown_async().await;

    // The operator lowers the cap below what the stored records say.
    let server = server_on(&mock, dir.path(), "[limits]\nmax_tool_iterations = 2\n");
    mock.set_script(Script::tool_call("calculator", json!({ "expression": "1+1" })));
    let runs: [(&str, &str, Value); 3] = [
        ("/api/chat", alice.as_str(), json!({ "message": "loop", "agent_type": "looper" })),
        ("/v1/chat", key.as_str(), json!({ "message": "loop", "agent_type": "looper-t" })),
        ("/v1/agents/looper-t/run", key.as_str(), json!({ "input": { "message": "loop" } })),
    ];
    for (path, bearer, body) in runs {
        let before = mock.chat_requests().len();
        expect_json(post(&server, path, bearer, body).await, 200).await;
        assert_eq!(mock.chat_requests().len() - before, 3, "{path}: two tool rounds, then the final answer");
    }
}

// ------------------------------------------------------------------------- imported records

/// The seeded user who owns the sample dump's public `trip-planner` agent.
const TRIP_OWNER: &str = "f9eaf881-323b-4b91-9ea6-01208f4079d5";

#[tokio::test]
async fn imported_public_agents_named_like_platform_agents_are_reported_and_answer_only_their_owner() {
    let root = tempfile::tempdir().unwrap();
    let postgres = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres");
    let secrets: Value =
        serde_json::from_str(&std::fs::read_to_string(postgres.join("seed_secrets.json")).unwrap()).unwrap();
    let owner = secrets["users"].as_array().unwrap().iter().find(|u| u["id"] == TRIP_OWNER).expect("the owner");
    let (email, password) = (owner["email"].as_str().unwrap(), owner["password"].as_str().unwrap());

    // The reference server let anyone publish `product` with a thousand tool rounds.
    let dump = std::fs::read_to_string(postgres.join("sample_dump_column_inserts.sql")).unwrap();
    let planted = "'46057716-5bd1-4931-bfdf-89b58c5dafa5', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'product'";
    let dump = dump.replace(
        "'46057716-5bd1-4931-bfdf-89b58c5dafa5', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'trip-planner'",
        planted,
    );
    let dump = dump.replace("'[\"calculator\",\"web_search\"]', 7, true", "'[\"calculator\"]', 1000, true");
    assert!(dump.contains(planted) && dump.contains("'[\"calculator\"]', 1000, true"), "the sample dump changed");
    let dump_path = root.path().join("planted.sql");
    std::fs::write(&dump_path, dump).unwrap();
    let data = root.path().join("data");
    let out = run_cli(
        root.path(),
        &["import-postgres", dump_path.to_str().unwrap(), "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");

    let mock = MockProvider::start();
    let server = BinaryServer::builder(root.path())
        .env(KEY_ENV, PROVIDER_KEY)
        .config(&provider_config(&mock))
        .config("[limits]\nmax_tool_iterations = 2\n")
        .start();
    let stderr = server.wait_for_stderr("public user agents named like platform agents answer only their owners");
    assert!(stderr.contains(&format!("'product' (owner {TRIP_OWNER})")), "{stderr}");
    let stderr = server.wait_for_stderr("run capped");
    assert!(stderr.contains(&format!("user agent 'product' (owner {TRIP_OWNER}): 1000")), "{stderr}");

    let client = server.client();
    let token = |body: Value| {
        let url = server.url(if body.get("register").is_some() { "/api/auth/register" } else { "/api/auth/login" });
        async move {
            let body = json!({ "email": body["email"], "password": body["password"] });
            let answer = expect_json(client.post(url).json(&body).send().await.unwrap(), 200).await;
            answer["access_token"].as_str().unwrap().to_string()
        }
    };
    let owner = token(json!({ "email": email, "password": password })).await;
    let bob = token(json!({ "email": "bob@example.com", "password": PASSWORD, "register": true })).await;
    let chat = |bearer: String| {
        let url = server.url("/api/chat");
        async move {
            let body = json!({ "message": "hello", "agent_type": "product" });
            expect_json(client.post(url).bearer_auth(bearer).json(&body).send().await.unwrap(), 200).await
        }
    };

    mock.set_script(Script::reply("ok"));
    let answer = chat(bob.clone()).await;
    assert_eq!(answer["agent_source"], "system");
    assert!(last_system_prompt(&mock).starts_with(PRODUCT_PROMPT_START), "Bob gets the platform's product");
    let read = client.get(server.url("/api/user/agents/product")).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(expect_json(read, 200).await["source"], "system");

    // The owner still gets their own, with its thousand rounds cut to the cap.
    mock.set_script(Script::tool_call("calculator", json!({ "expression": "1+1" })));
    let before = mock.chat_requests().len();
    let answer = chat(owner).await;
    assert_eq!(answer["agent_source"], "user");
    let calls = mock.chat_requests();
    assert!(system_prompt(&calls[before]).starts_with("You are a travel agent."), "{:?}", calls[before].transcript());
    assert_eq!(calls.len() - before, 3, "two tool rounds, then the final answer");
}
