//! `GET /v1/models` and `GET /v1/models/{id}` (the OpenAI Models API): configured models, the
//! tiers they serve and `agent:<name>` for the agents the key's tenant may run — and never
//! another tenant's.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, model_id, provider_name};
use crate::harness::{TestServer, expect_json};
use crate::mock_provider::Wire;

/// The gateway's model (arrays replace, not merge), a second model on the fast tier, and one
/// whose name has a slash (as Hugging Face ids do).
fn extra_models() -> String {
    format!(
        r#"
[[models]]
name = "{MODEL}"
provider = "mock-ollama"
model_id = "{id}"
tier = "balanced"

[[models]]
name = "quick"
provider = "mock-ollama"
model_id = "quick-id"
tier = "fast"

[[models]]
name = "org/model-x"
provider = "mock-ollama"
model_id = "model-x-id"
"#,
        id = model_id(Wire::Ollama)
    )
}

/// Every platform agent but the router.
const PLATFORM_AGENTS: [&str; 6] = ["orchestrator", "product", "invoice", "sales", "finance", "hr"];

async fn list(server: &TestServer, key: &str) -> Value {
    expect_json(server.v1(Method::GET, "/v1/models", key).send().await.unwrap(), 200).await
}

async fn get(server: &TestServer, key: &str, id: &str) -> reqwest::Response {
    server.v1(Method::GET, &format!("/v1/models/{id}"), key).send().await.unwrap()
}

fn ids(listed: &Value) -> Vec<String> {
    listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

/// A tenant agent through the admin API, asserting 201.
async fn create_agent(server: &TestServer, tenant_id: &str, body: Value) {
    let response =
        server.admin(Method::POST, &format!("/api/admin/tenants/{tenant_id}/agents")).json(&body).send().await.unwrap();
    expect_json(response, 201).await;
}

/// The OpenAI 404 for `id`.
async fn expect_model_not_found(response: reqwest::Response, id: &str) {
    let body = expect_json(response, 404).await;
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(id), "{body}");
}

#[tokio::test]
async fn the_list_has_models_tiers_and_the_tenants_agents() {
    let gw = Gateway::builder(Wire::Ollama).config(&extra_models()).start();
    let (tenant, key) = gw.tenant("models-co").await;
    create_agent(&gw.server, &tenant, json!({ "name": "helper", "display_name": "Helper" })).await;

    let listed = list(&gw.server, &key).await;
    assert_eq!(listed["object"], "list");
    let mut expected: Vec<String> = [MODEL, "quick", "org/model-x", "fast", "balanced"].map(String::from).to_vec();
    expected.extend(PLATFORM_AGENTS.map(|name| format!("agent:{name}")));
    // The generic template's agent, then the one created above (the store lists by name).
    expected.extend(["agent:assistant", "agent:helper"].map(String::from));
    assert_eq!(ids(&listed), expected, "{listed}");

    let started = ares::clock::now_unix();
    for model in listed["data"].as_array().unwrap() {
        let object = model.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["created", "id", "object", "owned_by"], "{model}");
        assert_eq!(model["object"], "model");
        let created = model["created"].as_i64().unwrap();
        assert!(created > 1_600_000_000 && created <= started, "{model}");
        // Each entry reads the same alone.
        let id = model["id"].as_str().unwrap();
        assert_eq!(&expect_json(get(&gw.server, &key, id).await, 200).await, model, "{id}");
    }
    let owner =
        |id: &str| listed["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["owned_by"].clone();
    assert_eq!(owner(MODEL), provider_name(Wire::Ollama));
    assert_eq!(owner("fast"), "ares");
    assert_eq!(owner("agent:product"), "ares");
    assert_eq!(owner("agent:helper"), "tenant");

    // A provider-side model id is a usable name too.
    let by_id = expect_json(get(&gw.server, &key, &model_id(Wire::Ollama)).await, 200).await;
    assert_eq!(
        (by_id["id"].as_str(), by_id["owned_by"].as_str()),
        (Some(model_id(Wire::Ollama).as_str()), Some("mock-ollama"))
    );
    // Unknown names, the router, unserved tiers.
    for id in ["no-such-model", "agent:router", "agent:nobody", "powerful"] {
        expect_model_not_found(get(&gw.server, &key, id).await, id).await;
    }
}

#[tokio::test]
async fn a_disabled_tenant_agent_hides_itself_and_the_platform_agent_it_shadows() {
    let gw = Gateway::start(Wire::Ollama);
    let (tenant, key) = gw.tenant("shadow-co").await;
    create_agent(&gw.server, &tenant, json!({ "name": "dormant", "enabled": false })).await;
    create_agent(&gw.server, &tenant, json!({ "name": "product", "enabled": false })).await;
    create_agent(&gw.server, &tenant, json!({ "name": "sales", "description": "Our own sales agent" })).await;

    let listed = list(&gw.server, &key).await;
    let ids = ids(&listed);
    assert!(!ids.iter().any(|id| id == "agent:dormant" || id == "agent:product"), "{ids:?}");
    assert_eq!(ids.iter().filter(|id| *id == "agent:sales").count(), 1, "the tenant's sales replaces the platform's");
    let sales = listed["data"].as_array().unwrap().iter().find(|m| m["id"] == "agent:sales").unwrap();
    assert_eq!(sales["owned_by"], "tenant");
    for id in ["agent:dormant", "agent:product"] {
        expect_model_not_found(get(&gw.server, &key, id).await, id).await;
    }

    // Re-enabled, it is listed again.
    let response = gw
        .server
        .admin(Method::PUT, &format!("/api/admin/tenants/{tenant}/agents/dormant"))
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    expect_json(response, 200).await;
    assert!(ids_of(&gw.server, &key).await.contains(&"agent:dormant".to_string()));
}

async fn ids_of(server: &TestServer, key: &str) -> Vec<String> {
    ids(&list(server, key).await)
}

#[tokio::test]
async fn a_key_never_sees_another_tenants_agents() {
    let gw = Gateway::start(Wire::Ollama);
    let (a, a_key) = gw.tenant("tenant-a").await;
    let (b, b_key) = gw.tenant("tenant-b").await;
    create_agent(&gw.server, &a, json!({ "name": "a-only" })).await;
    create_agent(&gw.server, &b, json!({ "name": "b-secret" })).await;
    // B's disabled agent named like a platform agent must not hide it from A.
    create_agent(&gw.server, &b, json!({ "name": "finance", "enabled": false })).await;

    let a_ids = ids_of(&gw.server, &a_key).await;
    let b_ids = ids_of(&gw.server, &b_key).await;
    assert!(a_ids.contains(&"agent:a-only".to_string()) && !a_ids.contains(&"agent:b-secret".to_string()), "{a_ids:?}");
    assert!(b_ids.contains(&"agent:b-secret".to_string()) && !b_ids.contains(&"agent:a-only".to_string()), "{b_ids:?}");
    assert!(a_ids.contains(&"agent:finance".to_string()) && !b_ids.contains(&"agent:finance".to_string()));

    expect_model_not_found(get(&gw.server, &a_key, "agent:b-secret").await, "agent:b-secret").await;
    expect_model_not_found(get(&gw.server, &b_key, "agent:a-only").await, "agent:a-only").await;
    expect_json(get(&gw.server, &b_key, "agent:b-secret").await, 200).await;
}

#[tokio::test]
async fn keys_come_as_bearer_or_x_api_key_and_nothing_else_passes() {
    let gw = Gateway::start(Wire::Ollama);
    let (_, key) = gw.tenant("header-co").await;
    let server = &gw.server;

    let via_header = server.client().get(server.url("/v1/models")).header("x-api-key", &key).send().await.unwrap();
    let via_header = expect_json(via_header, 200).await;
    assert_eq!(via_header, list(server, &key).await);
    let one = server.client().get(server.url(&format!("/v1/models/{MODEL}"))).header("x-api-key", &key);
    assert_eq!(expect_json(one.send().await.unwrap(), 200).await["id"], MODEL);

    let unauthenticated = [
        server.client().get(server.url("/v1/models")),
        server.client().get(server.url("/v1/models")).header("x-api-key", "ares_wrong"),
        server.client().get(server.url("/v1/models")).bearer_auth("ares_wrong"),
        server.client().get(server.url(&format!("/v1/models/{MODEL}"))),
    ];
    for request in unauthenticated {
        let body = expect_json(request.send().await.unwrap(), 401).await;
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
}
