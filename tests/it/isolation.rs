//! Isolation (API.md §4.5): a tenant's key sees only its tenant — another tenant's agents, runs
//! and keys are 404, never 403 — and a user's token carries only that user.
//!
//! User-scoped resources (conversations, user agents, memory) are not built yet; their
//! isolation tests belong with them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, expect_error, expect_json};

async fn get_json(server: &TestServer, path: &str, key: &str) -> Value {
    expect_json(server.v1(Method::GET, path, key).send().await.unwrap(), 200).await
}

fn ids(items: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        items.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

struct Tenant {
    id: String,
    key: String,
    key_id: String,
}

async fn provision(server: &TestServer, name: &str) -> Tenant {
    let body = server.provision(name, "pro", "kasino").await;
    Tenant {
        id: body["tenant_id"].as_str().unwrap().to_string(),
        key: body["raw_api_key"].as_str().unwrap().to_string(),
        key_id: body["api_key_id"].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_own_tenant() {
    let server = TestServer::start();
    let a = provision(&server, "tenant-a").await;
    let b = provision(&server, "tenant-b").await;
    let a_agents = server.admin_get(&format!("/api/admin/tenants/{}/agents", a.id)).await;
    let b_agents = server.admin_get(&format!("/api/admin/tenants/{}/agents", b.id)).await;

    // Same agent names in both tenants, different rows; each key lists its own.
    assert_eq!(get_json(&server, "/v1/agents", &a.key).await["total"], 4);
    assert_eq!(ids(&get_json(&server, "/v1/agents", &a.key).await["agents"]), ids(&a_agents["agents"]));
    assert_eq!(ids(&get_json(&server, "/v1/agents", &b.key).await["agents"]), ids(&b_agents["agents"]));
    assert!(ids(&a_agents["agents"]).iter().all(|id| !ids(&b_agents["agents"]).contains(id)));
    let id_in = |agents: &Value, name: &str| {
        agents["agents"].as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()["id"].clone()
    };
    for name in ["kasino-risk", "kasino-report"] {
        assert_eq!(get_json(&server, &format!("/v1/agents/{name}"), &a.key).await["id"], id_in(&a_agents, name));
        assert_eq!(get_json(&server, &format!("/v1/agents/{name}"), &b.key).await["id"], id_in(&b_agents, name));
    }

    // An agent only B has does not exist for A.
    let path = format!("/api/admin/tenants/{}/agents", b.id);
    let response = server.admin(Method::POST, &path).json(&json!({ "name": "b-only", "config": {} })).send().await;
    expect_json(response.unwrap(), 201).await;
    assert_eq!(get_json(&server, "/v1/agents/b-only", &b.key).await["name"], "b-only");
    for path in ["/v1/agents/b-only", "/v1/agents/b-only/runs", "/v1/agents/b-only/logs"] {
        let response = server.v1(Method::GET, path, &a.key).send().await.unwrap();
        let body = expect_error(response, 404, "NOT_FOUND").await;
        assert_eq!(body["error"], "Agent not found: b-only", "{path}");
    }
    assert_eq!(get_json(&server, "/v1/agents", &a.key).await["total"], 4);

    // Keys: A cannot revoke B's key (404, not 403), and B's key keeps working.
    let response = server.v1(Method::DELETE, &format!("/v1/api-keys/{}", b.key_id), &a.key).send().await.unwrap();
    let body = expect_error(response, 404, "NOT_FOUND").await;
    assert_eq!(body["error"], format!("API key '{}' not found for tenant '{}'", b.key_id, a.id));
    assert_eq!(server.v1(Method::GET, "/v1/agents", &b.key).send().await.unwrap().status(), 200);
    let response = server.v1(Method::POST, "/v1/api-keys", &b.key).json(&json!({ "name": "b-second" })).send().await;
    let b_second = expect_json(response.unwrap(), 201).await;
    let a_keys = get_json(&server, "/v1/api-keys", &a.key).await;
    assert_eq!(ids(&a_keys["keys"]), [a.key_id.as_str()]);
    let mut b_expected = vec![b.key_id.clone(), b_second["id"].as_str().unwrap().to_string()];
    b_expected.sort();
    assert_eq!(ids(&get_json(&server, "/v1/api-keys", &b.key).await["keys"]), b_expected);
    // B's new key belongs to B: it sees B's agents.
    let b_second_key = b_second["secret"].as_str().unwrap();
    assert_eq!(get_json(&server, "/v1/agents/b-only", b_second_key).await["name"], "b-only");

    // Usage: each tenant counts only its own calls.
    let a_usage = get_json(&server, "/v1/usage", &a.key).await;
    let b_usage = get_json(&server, "/v1/usage", &b.key).await;
    let count = |usage: &Value| usage["total_api_calls"].as_u64().unwrap();
    // Calls before the usage call. A: 3 lists, 2 gets, 3 lookups of B's agent (404s count), the
    // refused revocation and the key list. B: 2 lists, 3 gets, the key creation and list, and
    // one call with its second key.
    assert_eq!(count(&a_usage), 10, "{a_usage}");
    assert_eq!(count(&b_usage), 8, "{b_usage}");
    let admin_a = server.admin_get(&format!("/api/admin/tenants/{}/usage", a.id)).await;
    assert_eq!(admin_a["total_api_calls"], 11, "A's usage call counted too");
}

#[tokio::test]
async fn a_user_token_carries_only_that_user() {
    let server = TestServer::start();
    let x = server.register("xavier@example.com", "password-x1").await;
    let y = server.register("yvonne@example.com", "password-y1").await;
    assert_ne!(x["user_id"], y["user_id"]);

    let sub = |token: &Value| -> String {
        let (_, claims) = crate::auth::decode_jwt(token.as_str().unwrap());
        claims["sub"].as_str().unwrap().to_string()
    };
    assert_eq!(sub(&x["access_token"]), x["user_id"].as_str().unwrap());
    assert_eq!(sub(&x["refresh_token"]), x["user_id"].as_str().unwrap());
    let login = |email: &str, password: &str| {
        let request = server.client().post(server.url("/api/auth/login"));
        request.json(&json!({ "email": email, "password": password })).send()
    };
    let y_login = expect_json(login("yvonne@example.com", "password-y1").await.unwrap(), 200).await;
    assert_eq!(sub(&y_login["access_token"]), y["user_id"].as_str().unwrap());
    assert_ne!(sub(&y_login["access_token"]), sub(&x["access_token"]));

    // Refreshing X's token yields X, and Y logging out does not end X's session.
    let refresh = |token: &Value| {
        let request = server.client().post(server.url("/api/auth/refresh"));
        request.json(&json!({ "refresh_token": token })).send()
    };
    let response =
        server.client().post(server.url("/api/auth/logout")).json(&json!({ "refresh_token": y["refresh_token"] }));
    expect_json(response.send().await.unwrap(), 200).await;
    let refreshed = expect_json(refresh(&x["refresh_token"]).await.unwrap(), 200).await;
    assert_eq!(sub(&refreshed["access_token"]), x["user_id"].as_str().unwrap());
    expect_error(refresh(&y["refresh_token"]).await.unwrap(), 401, "AUTH_INVALID_TOKEN").await;
    let y_refreshed = expect_json(refresh(&y_login["refresh_token"]).await.unwrap(), 200).await;
    assert_eq!(sub(&y_refreshed["access_token"]), y["user_id"].as_str().unwrap());
}
