//! User agents (API.md §1.6) and TOON import/export (§5), as the reference's Hurl suite
//! `40_toon_import_export` drives them, plus isolation between users and chatting with one's own
//! agent.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL};
use crate::harness::{expect_error, expect_json};
use crate::mock_provider::{Script, Wire};

const IMPORTED: &str = "name: imported-agent\nmodel: mock-model\nsystem_prompt: \"Imported.\\nTwo lines: yes\"\ntools[1]: calculator\nmax_tool_iterations: 3\nparallel_tools: true\nversion: \"1.2.0\"\n";

async fn create(gw: &Gateway, token: &str, body: Value) -> reqwest::Response {
    gw.post("/api/user/agents", token, &body).await
}

async fn import(gw: &Gateway, token: &str, content_type: &str, body: &str) -> reqwest::Response {
    gw.server
        .v1(Method::POST, "/api/user/agents/import", token)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn create_get_export_update_delete() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let body = json!({ "name": "toon-test-agent", "model": MODEL,
        "system_prompt": "You are a test agent for TOON format.", "tools": [], "max_tool_iterations": 5 });
    let created = expect_json(create(&gw, &token, body.clone()).await, 201).await;
    assert_eq!(created["name"], "toon-test-agent");
    assert_eq!(created["source"], "user");
    let preview = created["toon_preview"].as_str().unwrap();
    assert_eq!(
        preview.trim_end(),
        "name: toon-test-agent\nmodel: mock-model\nsystem_prompt: You are a test agent for TOON format.\ntools[0]:\nmax_tool_iterations: 5\nparallel_tools: false"
    );

    let conflict = expect_error(create(&gw, &token, body).await, 409, "CONFLICT").await;
    assert_eq!(conflict["error"], "Agent 'toon-test-agent' already exists");
    let bad_name =
        expect_error(create(&gw, &token, json!({ "name": "bad name!", "model": MODEL })).await, 400, "INVALID_INPUT")
            .await;
    assert_eq!(bad_name["error"], "Agent name must be alphanumeric with hyphens and underscores only");
    let bad_model =
        expect_error(create(&gw, &token, json!({ "name": "m", "model": "nope" })).await, 422, "UNPROCESSABLE").await;
    assert!(bad_model["error"].as_str().unwrap().starts_with("Model 'nope' not found"), "{bad_model}");
    let bad_tool = expect_error(
        create(&gw, &token, json!({ "name": "t", "model": MODEL, "tools": ["rm-rf"] })).await,
        422,
        "UNPROCESSABLE",
    )
    .await;
    assert!(bad_tool["error"].as_str().unwrap().starts_with("Tool 'rm-rf' not found"), "{bad_tool}");

    let got = expect_json(gw.get("/api/user/agents/toon-test-agent", &token).await, 200).await;
    assert_eq!((got["model"].as_str(), got["max_tool_iterations"].as_u64()), (Some(MODEL), Some(5)));
    let as_toon = gw.get("/api/user/agents/toon-test-agent?format=toon", &token).await;
    assert!(as_toon.headers()["content-type"].to_str().unwrap().starts_with("text/x-toon"));
    assert!(as_toon.text().await.unwrap().contains("name: toon-test-agent\n"));
    let export = gw.get("/api/user/agents/toon-test-agent/export", &token).await;
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-disposition"].to_str().unwrap().contains("toon-test-agent.toon"));
    let text = export.text().await.unwrap();
    assert!(text.contains("model: mock-model") && text.contains("system_prompt:"), "{text}");

    let updated = expect_json(
        gw.server
            .v1(Method::PUT, "/api/user/agents/toon-test-agent", &token)
            .json(&json!({ "description": "now described", "parallel_tools": true }))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (updated["description"].as_str(), updated["parallel_tools"].as_bool()),
        (Some("now described"), Some(true))
    );
    assert_eq!(updated["system_prompt"], "You are a test agent for TOON format.", "absent fields unchanged");

    let listed = expect_json(gw.get("/api/user/agents", &token).await, 200).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let deleted = gw.server.v1(Method::DELETE, "/api/user/agents/toon-test-agent", &token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = expect_error(gw.get("/api/user/agents/toon-test-agent", &token).await, 404, "NOT_FOUND").await;
    assert_eq!(gone["error"], "Agent 'toon-test-agent' not found");
    expect_error(gw.get("/api/user/agents/toon-test-agent/export", &token).await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn import_reads_toon_whatever_the_content_type_and_round_trips() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    for (content_type, name) in [("text/x-toon", "imported-agent"), ("application/json", "imported-agent-2")] {
        let body = IMPORTED.replace("imported-agent", name);
        let created = expect_json(import(&gw, &token, content_type, &body).await, 201).await;
        assert_eq!(created["name"], name);
        assert!(created["toon_preview"].as_str().unwrap().contains(&format!("name: {name}")));
        let got = expect_json(gw.get(&format!("/api/user/agents/{name}"), &token).await, 200).await;
        assert_eq!(got["max_tool_iterations"], 3);
        assert_eq!(got["parallel_tools"], true);
        assert_eq!(got["system_prompt"], "Imported.\nTwo lines: yes");
        assert_eq!(got["tools"], json!(["calculator"]));
    }
    // Export → import under a new name reproduces the agent, extras included.
    let exported = gw.get("/api/user/agents/imported-agent/export", &token).await.text().await.unwrap();
    assert!(exported.contains("version: \"1.2.0\""), "{exported}");
    let copy = exported.replace("name: imported-agent", "name: imported-copy");
    let created = expect_json(import(&gw, &token, "text/plain", &copy).await, 201).await;
    assert_eq!(created["toon_preview"].as_str().unwrap(), copy);

    for invalid in [
        "this is not valid toon format\nmissing required fields",
        "name: no-model",
        "name: x\nmodel: mock-model\ntools[2]: calculator",
        "name: x\nmodel: mock-model\nsystem_prompt: |\n  block",
        "",
    ] {
        let error = expect_error(import(&gw, &token, "text/x-toon", invalid).await, 400, "INVALID_INPUT").await;
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with("Invalid TOON format"), "{invalid:?}: {error}");
        assert!(!message.contains("--data-binary"), "{invalid:?} was not flattened: {message}");
    }

    // What `curl -d @agent-config.toon` sends: the file without its line breaks. The answer says
    // so and how to send it instead of reporting a missing field.
    let flattened = IMPORTED.replace("name: imported-agent", "name: flattened-agent").replace('\n', "");
    let error =
        expect_error(import(&gw, &token, "application/x-www-form-urlencoded", &flattened).await, 400, "INVALID_INPUT")
            .await;
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("line breaks were lost") && message.contains("--data-binary @"), "{message}");
}

#[tokio::test]
async fn users_see_only_their_own_agents_and_public_ones_as_community() {
    let gw = Gateway::start(Wire::OpenAi);
    let (alice, bob) = (gw.user().await, gw.user().await);
    expect_json(create(&gw, &alice, json!({ "name": "private-one", "model": MODEL })).await, 201).await;
    expect_json(create(&gw, &alice, json!({ "name": "shared-one", "model": MODEL, "is_public": true })).await, 201)
        .await;

    expect_error(gw.get("/api/user/agents/private-one", &bob).await, 404, "NOT_FOUND").await;
    let community = expect_json(gw.get("/api/user/agents/shared-one", &bob).await, 200).await;
    assert_eq!(community["source"], "community");
    let bobs = expect_json(gw.get("/api/user/agents", &bob).await, 200).await;
    assert_eq!(bobs, json!([]));
    let with_public = expect_json(gw.get("/api/user/agents?include_public=true", &bob).await, 200).await;
    let names: Vec<&str> = with_public.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shared-one"]);
    // Bob can neither change nor delete Alice's agents.
    let put = gw
        .server
        .v1(Method::PUT, "/api/user/agents/shared-one", &bob)
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(put, 404, "NOT_FOUND").await;
    let delete = gw.server.v1(Method::DELETE, "/api/user/agents/private-one", &bob).send().await.unwrap();
    expect_error(delete, 404, "NOT_FOUND").await;
    // Platform agents resolve too, as "system".
    let system = expect_json(gw.get("/api/user/agents/product", &bob).await, 200).await;
    assert_eq!((system["source"].as_str(), system["id"].as_str()), (Some("system"), Some("system-product")));
}

#[tokio::test]
async fn a_users_agent_answers_their_chat_and_only_theirs() {
    let gw = Gateway::start(Wire::OpenAi);
    let (alice, bob) = (gw.user().await, gw.user().await);
    let body = json!({ "name": "pirate", "model": MODEL, "system_prompt": "Talk like a pirate." });
    expect_json(create(&gw, &alice, body).await, 201).await;
    gw.mock.set_script(Script::reply("Arr."));
    let answer = gw.chat_ok(&alice, &json!({ "message": "hi", "agent_type": "pirate" })).await;
    assert_eq!((answer["agent"].as_str(), answer["agent_source"].as_str()), (Some("pirate"), Some("user")));
    let sent = gw.mock.requests().pop().unwrap().transcript();
    assert_eq!(sent[0], ("system".to_string(), "Talk like a pirate.".to_string()));
    let error = expect_error(
        gw.post("/api/chat", &bob, &json!({ "message": "hi", "agent_type": "pirate" })).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(error["error"], "Agent not found: pirate");
}
