//! Tenancy for the operator (API.md §1.9.1–§1.9.8): tenant detail and quota, provisioning,
//! tenant API keys, tenant agents, templates and models, analytics shapes, and the audit trail.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, expect_error, expect_json, header};

const KASINO_AGENTS: [&str; 4] = ["kasino-classifier", "kasino-risk", "kasino-transaction", "kasino-report"];

fn is_raw_key(key: &str) -> bool {
    key.len() == 69
        && key.starts_with("ares_")
        && key[5..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn assert_rfc3339(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp string: {value}"));
    assert!(text.ends_with('Z'), "not UTC with Z: {text}");
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
        .unix_timestamp()
}

async fn send_json(server: &TestServer, method: Method, path: &str, body: Value) -> reqwest::Response {
    server.admin(method, path).json(&body).send().await.unwrap()
}

/// Audit entries, newest first.
async fn audit(server: &TestServer) -> Vec<Value> {
    server.admin_get("/api/admin/audit-log?limit=200").await["entries"].as_array().unwrap().clone()
}

fn names(items: &Value, field: &str) -> Vec<String> {
    items.as_array().unwrap().iter().map(|i| i[field].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn tenant_detail_counts_agents_active_keys_runs_and_tokens() {
    let server = TestServer::start();
    let provisioned = server.provision("detail-co", "dev", "kasino").await;
    let id = provisioned["tenant_id"].as_str().unwrap();

    let detail = server.admin_get(&format!("/api/admin/tenants/{id}")).await;
    assert_eq!(detail["id"], id);
    assert_eq!(detail["name"], "detail-co");
    assert_eq!(detail["tier"], "dev");
    assert_eq!(detail["agent_count"], 4);
    assert_eq!(detail["api_key_count"], 1);
    assert_eq!(detail["total_runs"], 0);
    assert_eq!(detail["total_tokens"], 0);
    assert_rfc3339(&detail["created_at"]);
    assert_rfc3339(&detail["updated_at"]);
    // No budget set: none, nothing spent.
    assert_eq!(
        detail["budget"],
        json!({
            "tenant_id": id, "monthly_usd": null, "daily_usd": null,
            "spent_this_month_usd": "0.000000", "spent_today_usd": "0.000000",
        })
    );
    // The list item is the detail without the totals and the budget.
    let list = server.admin_get("/api/admin/tenants").await;
    let mut item = detail.clone();
    for field in ["api_key_count", "total_runs", "total_tokens", "budget"] {
        item.as_object_mut().unwrap().remove(field);
    }
    assert_eq!(list["tenants"][0], item);

    // api_key_count counts active keys only.
    let keys_path = format!("/api/admin/tenants/{id}/api-keys");
    let second = expect_json(send_json(&server, Method::POST, &keys_path, json!({"name": "second"})).await, 201).await;
    assert_eq!(server.admin_get(&format!("/api/admin/tenants/{id}")).await["api_key_count"], 2);
    let key = provisioned["raw_api_key"].as_str().unwrap();
    let response = server.v1(Method::DELETE, &format!("/v1/api-keys/{}", second["id"].as_str().unwrap()), key);
    assert_eq!(response.send().await.unwrap().status(), 204);
    assert_eq!(server.admin_get(&format!("/api/admin/tenants/{id}")).await["api_key_count"], 1);

    for unknown in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"] {
        let response = server.admin(Method::GET, &format!("/api/admin/tenants/{unknown}")).send().await.unwrap();
        let body = expect_error(response, 404, "NOT_FOUND").await;
        assert_eq!(body, json!({ "error": "Tenant not found", "code": "NOT_FOUND" }));
    }
}

#[tokio::test]
async fn quota_update_returns_the_tenant_and_applies_to_the_next_request() {
    let server = TestServer::start();
    let provisioned = server.provision("upgrade-co", "free", "generic").await;
    let (id, key) = (provisioned["tenant_id"].as_str().unwrap(), provisioned["raw_api_key"].as_str().unwrap());

    let response = server.v1(Method::GET, "/v1/agents", key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("100"));
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("99"));

    let path = format!("/api/admin/tenants/{id}/quota");
    let updated = expect_json(send_json(&server, Method::PUT, &path, json!({ "tier": "PRO" })).await, 200).await;
    assert_eq!(updated["tier"], "pro");
    assert_eq!(updated, server.admin_get(&format!("/api/admin/tenants/{id}")).await, "the updated tenant object");

    // The very next request is governed by the pro limits; the day's count carries over.
    let response = server.v1(Method::GET, "/v1/agents", key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("10000"));
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("9998"));
    assert_eq!(header(&response, "x-quota-tokens-remaining").as_deref(), Some("10000000"));

    // Enterprise is unlimited: no quota headers at all.
    expect_json(send_json(&server, Method::PUT, &path, json!({ "tier": "enterprise" })).await, 200).await;
    let response = server.v1(Method::GET, "/v1/agents", key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-quota-tokens-remaining"] {
        assert_eq!(header(&response, name), None, "{name} on an enterprise response");
    }

    let body =
        expect_error(send_json(&server, Method::PUT, &path, json!({ "tier": "gold" })).await, 422, "UNPROCESSABLE")
            .await;
    assert_eq!(body["error"], "Invalid tier: 'gold'. Valid tiers: free, dev, pro, enterprise");
    expect_error(send_json(&server, Method::PUT, &path, json!({})).await, 400, "INVALID_INPUT").await;
    let unknown = "/api/admin/tenants/00000000-0000-0000-0000-000000000000/quota";
    let body =
        expect_error(send_json(&server, Method::PUT, unknown, json!({ "tier": "pro" })).await, 404, "NOT_FOUND").await;
    assert_eq!(body["error"], "Tenant not found");
    assert_eq!(server.admin_get(&format!("/api/admin/tenants/{id}")).await["tier"], "enterprise");

    // Two successful updates, audited with the tier as sent.
    let entries: Vec<Value> =
        audit(&server).await.into_iter().filter(|e| e["action"] == "tenant.quota_updated").collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["details"], json!({ "new_tier": "enterprise" }));
    assert_eq!(entries[1]["details"], json!({ "new_tier": "PRO" }));
    assert_eq!(entries[1]["resource_id"], id);
    assert_eq!(entries[1]["legacy_action"], "update_quota");
}

#[tokio::test]
async fn provision_client_creates_tenant_agents_and_a_working_key() {
    let server = TestServer::start();
    let body = server.provision("kasino-client", "Pro", "kasino").await;
    let mut fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    for field in [
        "agents_created",
        "api_key_id",
        "api_key_prefix",
        "product_type",
        "raw_api_key",
        "tenant_id",
        "tenant_name",
        "tier",
    ] {
        assert!(fields.contains(&field), "{field} missing from {body}");
    }
    assert_eq!(body["tenant_name"], "kasino-client");
    assert_eq!(body["tier"], "pro");
    assert_eq!(body["product_type"], "kasino");
    assert_eq!(body["agents_created"], json!(KASINO_AGENTS));
    let raw = body["raw_api_key"].as_str().unwrap();
    assert!(is_raw_key(raw), "raw key {raw}");
    assert_eq!(body["api_key_prefix"], raw[..13]);
    assert!(!body.to_string().contains("key_hash"));

    // The tenant, its agents and its key are there, and the key works at once.
    let tenant_id = body["tenant_id"].as_str().unwrap();
    let detail = server.admin_get(&format!("/api/admin/tenants/{tenant_id}")).await;
    assert_eq!((detail["name"].clone(), detail["agent_count"].clone()), (json!("kasino-client"), json!(4)));
    let keys = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/api-keys")).await;
    assert_eq!(keys["keys"][0]["id"], body["api_key_id"]);
    assert_eq!(keys["keys"][0]["name"], "kasino-client-key");
    let listed = expect_json(server.v1(Method::GET, "/v1/agents", raw).send().await.unwrap(), 200).await;
    assert_eq!(listed["total"], 4);
    let agents = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/agents")).await;
    for agent in agents["agents"].as_array().unwrap() {
        let name = agent["name"].as_str().unwrap();
        assert_eq!(agent["agent_type"], name.strip_prefix("kasino-").unwrap(), "{agent}");
        assert_eq!(agent["status"], "active");
        assert_eq!(agent["config"]["max_tool_iterations"], 3);
        assert!(agent["config"]["system_prompt"].as_str().is_some_and(|p| !p.is_empty()));
    }

    let generic = server.provision("generic-client", "free", "GENERIC").await;
    assert_eq!(generic["agents_created"], json!(["assistant"]));
    assert_eq!(generic["product_type"], "generic");
    assert_ne!(generic["raw_api_key"], body["raw_api_key"]);

    let entries = audit(&server).await;
    let provisioned: Vec<&Value> = entries.iter().filter(|e| e["action"] == "tenant.provisioned").collect();
    assert_eq!(provisioned.len(), 2);
    assert_eq!(provisioned[1]["resource_id"], tenant_id);
    assert_eq!(provisioned[1]["details"]["product_type"], "kasino");
    assert_eq!(provisioned[1]["details"]["tier"], "pro");
    assert_eq!(provisioned[1]["legacy_action"], "provision_client");
}

#[tokio::test]
async fn provision_client_refuses_bad_input_and_leaves_nothing_behind() {
    let server = TestServer::start();
    server.provision("taken", "free", "generic").await;
    let audit_before = audit(&server).await.len();
    let provision = |name: &str, tier: &str, product: &str| {
        let body = json!({ "name": name, "tier": tier, "product_type": product, "api_key_name": "k" });
        send_json(&server, Method::POST, "/api/admin/provision-client", body)
    };

    let body = expect_error(provision("fresh", "free", "unknown").await, 422, "UNPROCESSABLE").await;
    assert!(body["error"].as_str().unwrap().contains("unknown"), "{body}");
    let body = expect_error(provision("fresh", "gold", "kasino").await, 422, "UNPROCESSABLE").await;
    assert_eq!(body["error"], "Invalid tier: 'gold'. Valid tiers: free, dev, pro, enterprise");
    let body = expect_error(provision("taken", "pro", "kasino").await, 409, "CONFLICT").await;
    assert_eq!(body["error"], "Tenant with name 'taken' already exists");
    let body = expect_error(provision("Bad Name", "pro", "kasino").await, 400, "INVALID_INPUT").await;
    assert_eq!(body["error"], "Invalid tenant name: must be lowercase alphanumeric and hyphens");
    let response = send_json(
        &server,
        Method::POST,
        "/api/admin/provision-client",
        json!({ "name": "x", "tier": "pro", "product_type": "kasino" }),
    );
    let body = expect_error(response.await, 400, "INVALID_INPUT").await;
    assert_eq!(body["error"], "Missing required field: api_key_name");

    let tenants = server.admin_get("/api/admin/tenants").await;
    assert_eq!(names(&tenants["tenants"], "name"), ["taken"]);
    assert_eq!(server.admin_get("/api/admin/agents").await["agents"].as_array().unwrap().len(), 1);
    assert_eq!(audit(&server).await.len(), audit_before, "refused provisioning is not audited");
}

#[tokio::test]
async fn admin_api_keys_are_created_once_and_listed_without_secrets() {
    let server = TestServer::start();
    let provisioned = server.provision("keyed", "free", "generic").await;
    let id = provisioned["tenant_id"].as_str().unwrap();
    let path = format!("/api/admin/tenants/{id}/api-keys");

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let created = expect_json(send_json(&server, Method::POST, &path, json!({ "name": "staging" })).await, 201).await;
    let raw = created["raw_key"].as_str().unwrap();
    assert!(is_raw_key(raw), "{raw}");
    assert_eq!(created["prefix"], raw[..13]);
    assert_eq!(created["key_prefix"], raw[..13]);
    assert_eq!(created["name"], "staging");
    assert_eq!(created["tenant_id"], id);
    assert_eq!(created["is_active"], true);
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["warning"], "Store this raw key securely. You will not be able to retrieve it again.");
    assert_eq!(created["api_key"]["id"], created["id"]);
    assert_eq!(created["api_key"]["key_prefix"], created["prefix"]);
    assert!(assert_rfc3339(&created["created_at"]) >= before);
    let text = created.to_string();
    assert!(!text.contains("key_hash") && !text.contains("hash"), "{text}");
    // Nor is the stored hash anywhere (SHA-256 of the 64 hex, API.md §3.5).
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw.as_bytes()[5..]));
    assert!(!text.contains(&hash));

    let response = server.v1(Method::GET, "/v1/api-keys", raw).send().await.unwrap();
    assert_eq!(response.status(), 200, "the new key authenticates");

    // Revoke it (a key may revoke itself); the admin list still shows it, inactive.
    let response = server.v1(Method::DELETE, &format!("/v1/api-keys/{}", created["id"].as_str().unwrap()), raw);
    assert_eq!(response.send().await.unwrap().status(), 204);
    let third = expect_json(send_json(&server, Method::POST, &path, json!({ "name": "third" })).await, 201).await;

    let listed = server.admin_get(&path).await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{listed}");
    let text = listed.to_string();
    assert!(!text.contains("hash"), "{text}");
    assert!(!text.contains(raw) && !text.contains(provisioned["raw_api_key"].as_str().unwrap()), "raw keys listed");
    // Newest first.
    assert_eq!(names(&listed["keys"], "name"), ["third", "staging", "keyed-key"]);
    let by_name = |name: &str| keys.iter().find(|k| k["name"] == name).unwrap().clone();
    assert_eq!(by_name("staging")["is_active"], false);
    assert_eq!(by_name("third")["is_active"], true);
    assert_eq!(by_name("third")["id"], third["id"]);
    assert_eq!(by_name("keyed-key")["prefix"], provisioned["api_key_prefix"]);
    for key in keys {
        for field in
            ["id", "name", "prefix", "key_prefix", "tenant_id", "is_active", "created_at", "expires_at", "last_used"]
        {
            assert!(key.get(field).is_some(), "{field} missing from {key}");
        }
    }

    let unknown = "/api/admin/tenants/00000000-0000-0000-0000-000000000000/api-keys";
    let body =
        expect_error(send_json(&server, Method::POST, unknown, json!({ "name": "x" })).await, 404, "NOT_FOUND").await;
    assert_eq!(body["error"], "Tenant not found");
    let body = expect_error(server.admin(Method::GET, unknown).send().await.unwrap(), 404, "NOT_FOUND").await;
    assert_eq!(body["error"], "Tenant not found");
    expect_error(send_json(&server, Method::POST, &path, json!({})).await, 400, "INVALID_INPUT").await;

    let created_entries: Vec<Value> =
        audit(&server).await.into_iter().filter(|e| e["action"] == "api_key.created").collect();
    assert_eq!(created_entries.len(), 2, "provisioning audits as tenant.provisioned; {created_entries:?}");
    assert_eq!(created_entries[1]["resource_id"], created["id"]);
    assert_eq!(created_entries[1]["resource_type"], "api_key");
    assert_eq!(created_entries[1]["details"]["tenant_id"], id);
}

#[tokio::test]
async fn tenant_agents_crud_in_both_body_styles() {
    let server = TestServer::start();
    let tenant = server.create_tenant("agent-co", "pro").await;
    let id = tenant["id"].as_str().unwrap();
    let path = format!("/api/admin/tenants/{id}/agents");

    // [D] body: name, agent_type, config.
    let documented = json!({
        "name": "custom-analyzer",
        "agent_type": "analyzer",
        "config": { "model": "balanced", "system_prompt": "Analyze.", "tools": ["calculator"], "max_tokens": 500 },
    });
    let analyzer = expect_json(send_json(&server, Method::POST, &path, documented).await, 201).await;
    assert_eq!(analyzer["name"], "custom-analyzer");
    assert_eq!(analyzer["agent_name"], "custom-analyzer");
    assert_eq!(analyzer["display_name"], "custom-analyzer");
    assert_eq!(analyzer["agent_type"], "analyzer");
    assert_eq!(analyzer["model"], "balanced");
    assert_eq!(analyzer["config"]["agent_type"], "analyzer");
    assert_eq!(analyzer["config"]["tools"], json!(["calculator"]));
    assert_eq!(analyzer["config"]["max_tokens"], 500);
    assert_eq!(analyzer["status"], "active");
    assert_eq!(analyzer["enabled"], true);
    assert_eq!(analyzer["total_runs"], 0);
    assert_eq!(analyzer["success_rate"], 0.0);
    assert_eq!(analyzer["last_run"], Value::Null);
    assert_eq!(analyzer["tenant_id"], id);
    assert!(uuid::Uuid::parse_str(analyzer["id"].as_str().unwrap()).is_ok());

    // [R] body: agent_name, display_name, config; agent_type derived from the name.
    let reference = json!({
        "agent_name": "kasino-fraud", "display_name": "Fraud Finder", "description": "Finds fraud",
        "config": { "model": "fast" },
    });
    let fraud = expect_json(send_json(&server, Method::POST, &path, reference).await, 201).await;
    assert_eq!(fraud["agent_type"], "fraud");
    assert_eq!(fraud["display_name"], "Fraud Finder");
    assert_eq!(fraud["description"], "Finds fraud");
    assert_eq!(fraud["config"], json!({ "model": "fast" }));
    let plain = json!({ "agent_name": "helper", "display_name": "Helper", "config": {} });
    let helper = expect_json(send_json(&server, Method::POST, &path, plain).await, 201).await;
    assert_eq!(helper["agent_type"], "custom");
    assert_eq!(helper["model"], Value::Null);

    // Refusals.
    let duplicate = json!({ "name": "custom-analyzer", "config": {} });
    let body = expect_error(send_json(&server, Method::POST, &path, duplicate).await, 409, "CONFLICT").await;
    assert_eq!(
        body,
        json!({ "error": "Agent with name 'custom-analyzer' already exists for this tenant", "code": "CONFLICT" })
    );
    let unknown = "/api/admin/tenants/00000000-0000-0000-0000-000000000000/agents";
    let body =
        expect_error(send_json(&server, Method::POST, unknown, json!({ "name": "x" })).await, 404, "NOT_FOUND").await;
    assert_eq!(body["error"], "Tenant not found");
    let body = expect_error(server.admin(Method::GET, unknown).send().await.unwrap(), 404, "NOT_FOUND").await;
    assert_eq!(body["error"], "Tenant not found");
    let body =
        expect_error(send_json(&server, Method::POST, &path, json!({ "config": {} })).await, 400, "INVALID_INPUT")
            .await;
    assert_eq!(body["error"], "Missing required field: name");

    // The list: ordered by name, items as created.
    let list = server.admin_get(&path).await;
    assert_eq!(names(&list["agents"], "name"), ["custom-analyzer", "helper", "kasino-fraud"]);
    assert_eq!(list["agents"][0], analyzer);
    assert_eq!(server.admin_get(&format!("/api/admin/tenants/{id}")).await["agent_count"], 3);

    // PUT merges: only the given fields change; `config`, when given, replaces.
    let agent_path = format!("{path}/custom-analyzer");
    let body = json!({ "display_name": "Analyzer", "name": "renamed", "agent_name": "renamed" });
    let renamed = expect_json(send_json(&server, Method::PUT, &agent_path, body).await, 200).await;
    assert_eq!(renamed["display_name"], "Analyzer");
    assert_eq!(renamed["name"], "custom-analyzer", "renaming is not supported");
    assert_eq!(renamed["config"], analyzer["config"]);
    assert_eq!(renamed["id"], analyzer["id"]);
    assert_eq!(renamed["created_at"], analyzer["created_at"]);
    let body = json!({ "config": { "model": "powerful" } });
    let replaced = expect_json(send_json(&server, Method::PUT, &agent_path, body).await, 200).await;
    assert_eq!(replaced["config"], json!({ "model": "powerful" }));
    assert_eq!(replaced["model"], "powerful");
    assert_eq!(replaced["display_name"], "Analyzer");
    let body = json!({ "agent_type": "scorer", "enabled": false });
    let retyped = expect_json(send_json(&server, Method::PUT, &agent_path, body).await, 200).await;
    assert_eq!(retyped["agent_type"], "scorer");
    assert_eq!(retyped["config"], json!({ "model": "powerful", "agent_type": "scorer" }));
    assert_eq!((retyped["status"].clone(), retyped["enabled"].clone()), (json!("disabled"), json!(false)));
    let body = expect_error(
        send_json(&server, Method::PUT, &format!("{path}/nope"), json!({ "display_name": "x" })).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(body["error"], format!("Agent 'nope' not found for tenant '{id}'"));

    // DELETE: 204 with no body, then 404.
    let response = server.admin(Method::DELETE, &format!("{path}/helper")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = server.admin(Method::DELETE, &format!("{path}/helper")).send().await.unwrap();
    let body = expect_error(response, 404, "NOT_FOUND").await;
    assert_eq!(body["error"], format!("Agent 'helper' not found for tenant '{id}'"));
    let helper_path = format!("{path}/helper");
    let response = send_json(&server, Method::PUT, &helper_path, json!({ "display_name": "x" })).await;
    expect_error(response, 404, "NOT_FOUND").await;
    assert_eq!(names(&server.admin_get(&path).await["agents"], "name"), ["custom-analyzer", "kasino-fraud"]);

    // Audited: three creations, three updates, one deletion; refusals are not.
    let entries = audit(&server).await;
    let actions: Vec<&str> =
        entries.iter().map(|e| e["action"].as_str().unwrap()).filter(|a| a.starts_with("agent.")).collect();
    assert_eq!(
        actions,
        [
            "agent.deleted",
            "agent.updated",
            "agent.updated",
            "agent.updated",
            "agent.created",
            "agent.created",
            "agent.created"
        ]
    );
    let deleted = &entries[0];
    assert_eq!(deleted["resource_id"], format!("{id}:helper"));
    assert_eq!(deleted["details"], json!({ "tenant_id": id, "agent_name": "helper" }));
    let updated = entries.iter().find(|e| e["action"] == "agent.updated").unwrap();
    assert_eq!(updated["resource_id"], analyzer["id"]);
    assert_eq!(updated["details"], json!({ "tenant_id": id, "agent_name": "custom-analyzer" }));
    let created = entries.iter().rfind(|e| e["action"] == "agent.created").unwrap();
    assert_eq!(created["resource_id"], analyzer["id"]);
    assert_eq!(created["legacy_action"], "create_agent");
}

#[tokio::test]
async fn templates_and_models_are_listed() {
    let server = TestServer::builder()
        .config(
            r#"
            [[providers]]
            name = "local"
            type = "ollama"
            base_url = "http://127.0.0.1:9"
            [[providers.models]]
            id = "llama3.2"
            context_length = 131072
            [[models]]
            name = "fast"
            provider = "local"
            model_id = "llama3.2"
            "#,
        )
        .start();

    let kasino = server.admin_get("/api/admin/agent-templates?product_type=kasino").await;
    let templates = kasino["templates"].as_array().unwrap();
    assert_eq!(
        names(&kasino["templates"], "name"),
        ["kasino-classifier", "kasino-report", "kasino-risk", "kasino-transaction"],
        "ordered by name"
    );
    for template in templates {
        let name = template["name"].as_str().unwrap();
        assert_eq!(template["agent_name"], name);
        assert_eq!(template["product_type"], "kasino");
        assert_eq!(template["agent_type"], name.strip_prefix("kasino-").unwrap());
        let model = template["config"]["model"].as_str().unwrap();
        assert!(["fast", "balanced", "powerful"].contains(&model), "{name} uses {model}");
        assert_eq!(template["config"]["tools"], json!([]));
        assert!(template["display_name"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(uuid::Uuid::parse_str(template["id"].as_str().unwrap()).is_ok());
    }
    let classifier = &templates[0];
    assert_eq!(classifier["display_name"], "Domain Classifier");
    assert_eq!(classifier["description"], "Classifies domains as gambling or safe");

    let all = server.admin_get("/api/admin/agent-templates").await;
    let products: Vec<String> = names(&all["templates"], "product_type");
    assert_eq!(products.iter().filter(|p| *p == "kasino").count(), 4);
    assert_eq!(products.iter().filter(|p| *p == "generic").count(), 1);
    assert_eq!(products.iter().filter(|p| *p == "ehb").count(), 3);
    assert_eq!(server.admin_get("/api/admin/agent-templates?product_type=KASINO").await, kasino);
    assert_eq!(server.admin_get("/api/admin/agent-templates?product_type=nope").await, json!({ "templates": [] }));

    let models = server.admin_get("/api/admin/models").await;
    let items = models["models"].as_array().unwrap();
    assert_eq!(names(&models["models"], "name"), ["fast", "llama3.2"]);
    assert_eq!(items[0]["id"], "fast");
    assert_eq!(items[0]["provider"], "local");
    assert_eq!(items[0]["model"], "llama3.2");
    assert_eq!(items[0]["context_length"], 131072, "inherited from the provider's model");
    assert_eq!(items[1]["provider"], "local");
    let response = server.get("/api/admin/models").send().await.unwrap();
    expect_error(response, 401, "AUTH_MISSING").await;
}

#[tokio::test]
async fn cross_tenant_agent_list_is_ordered_by_tenant_then_agent() {
    let server = TestServer::start();
    server.provision("zeta", "free", "generic").await;
    server.provision("alpha", "pro", "kasino").await;
    let mid = server.create_tenant("mid", "dev").await;
    let path = format!("/api/admin/tenants/{}/agents", mid["id"].as_str().unwrap());
    expect_json(send_json(&server, Method::POST, &path, json!({ "name": "solo" })).await, 201).await;

    let body = server.admin_get("/api/admin/agents").await;
    let pairs: Vec<(String, String)> = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["tenant_name"].as_str().unwrap().to_string(), a["agent_name"].as_str().unwrap().to_string()))
        .collect();
    let expected = [
        ("alpha", "kasino-classifier"),
        ("alpha", "kasino-report"),
        ("alpha", "kasino-risk"),
        ("alpha", "kasino-transaction"),
        ("mid", "solo"),
        ("zeta", "assistant"),
    ];
    assert_eq!(pairs, expected.map(|(t, a)| (t.to_string(), a.to_string())));
    let solo = &body["agents"][4];
    assert_eq!(solo["tenant_id"], mid["id"]);
    assert_eq!(solo["name"], "solo");
    assert_eq!(solo["model"], "unknown", "no config.model");
    assert_eq!((solo["total_runs"].clone(), solo["last_run"].clone()), (json!(0), Value::Null));
    assert_eq!(body["agents"][0]["model"], "fast");
    assert_eq!(body["agents"][0]["status"], "active");
}

#[tokio::test]
async fn runs_stats_and_usage_have_empty_shapes_before_any_run() {
    let server = TestServer::start();
    let provisioned = server.provision("quiet", "pro", "kasino").await;
    let id = provisioned["tenant_id"].as_str().unwrap();

    let runs = server.admin_get(&format!("/api/admin/tenants/{id}/agents/kasino-risk/runs")).await;
    assert_eq!(runs, json!({ "runs": [], "total": 0, "limit": 50, "offset": 0 }));
    let runs = server.admin_get(&format!("/api/admin/tenants/{id}/agents/kasino-risk/runs?limit=1000&offset=3")).await;
    assert_eq!((runs["limit"].clone(), runs["offset"].clone()), (json!(200), json!(3)));
    let response = server.admin(Method::GET, &format!("/api/admin/tenants/{id}/agents/kasino-risk/runs?limit=x"));
    expect_error(response.send().await.unwrap(), 400, "INVALID_INPUT").await;

    let stats = server.admin_get(&format!("/api/admin/tenants/{id}/agents/kasino-risk/stats")).await;
    assert_eq!(
        stats,
        json!({
            "agent_name": "kasino-risk", "total_runs": 0, "successful_runs": 0, "failed_runs": 0,
            "success_count": 0, "failed_count": 0, "success_rate": 0.0, "avg_duration_ms": 0, "avg_tokens": 0,
            "total_input_tokens": 0, "total_output_tokens": 0, "last_run": null,
        })
    );

    let usage = server.admin_get(&format!("/api/admin/tenants/{id}/usage")).await;
    assert_eq!(usage["tenant_name"], "quiet");
    assert_eq!(usage["tier"], "pro");
    for (field, value) in [
        ("total_runs", json!(0)),
        ("total_tokens", json!(0)),
        ("total_api_calls", json!(0)),
        ("quota_runs", json!(100_000)),
        ("quota_tokens", json!(10_000_000)),
        ("quota_requests_per_day", json!(10_000)),
        ("monthly_requests", json!(0)),
        ("daily_requests", json!(0)),
    ] {
        assert_eq!(usage[field], value, "{field} in {usage}");
    }
    assert_eq!(server.admin_get(&format!("/api/admin/tenants/{id}/usage/daily")).await, json!({ "daily": [] }));
    let unknown = "/api/admin/tenants/00000000-0000-0000-0000-000000000000";
    for path in [format!("{unknown}/usage"), format!("{unknown}/usage/daily")] {
        let body = expect_error(server.admin(Method::GET, &path).send().await.unwrap(), 404, "NOT_FOUND").await;
        assert_eq!(body["error"], "Tenant not found", "{path}");
    }

    let stats = server.admin_get("/api/admin/stats").await;
    assert_eq!(
        stats,
        json!({
            "total_tenants": 1, "total_agents": 4, "total_runs_today": 0, "total_tokens_today": 0,
            "total_requests_today": 0, "active_alerts": 0,
        })
    );
}

#[tokio::test]
async fn audit_log_names_every_admin_mutation() {
    let server = TestServer::start();
    let provisioned = server.provision("audited", "free", "generic").await;
    let id = provisioned["tenant_id"].as_str().unwrap();
    let plain = server.create_tenant("plain", "dev").await;
    expect_json(
        send_json(&server, Method::PUT, &format!("/api/admin/tenants/{id}/quota"), json!({ "tier": "pro" })).await,
        200,
    )
    .await;
    expect_json(
        send_json(&server, Method::POST, &format!("/api/admin/tenants/{id}/api-keys"), json!({ "name": "k2" })).await,
        201,
    )
    .await;
    let agents = format!("/api/admin/tenants/{id}/agents");
    expect_json(send_json(&server, Method::POST, &agents, json!({ "name": "extra" })).await, 201).await;
    expect_json(
        send_json(&server, Method::PUT, &format!("{agents}/extra"), json!({ "display_name": "Extra" })).await,
        200,
    )
    .await;
    assert_eq!(server.admin(Method::DELETE, &format!("{agents}/extra")).send().await.unwrap().status(), 204);

    let entries = audit(&server).await;
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "agent.deleted",
            "agent.updated",
            "agent.created",
            "api_key.created",
            "tenant.quota_updated",
            "tenant.created",
            "tenant.provisioned",
        ]
    );
    for entry in &entries {
        assert!(entry["details"].is_object(), "details is an object: {entry}");
        assert_eq!(entry["actor"], "admin");
        assert_eq!(entry["admin_ip"], "127.0.0.1");
        assert_rfc3339(&entry["timestamp"]);
    }
    assert_eq!(entries[5]["resource_id"], plain["id"]);
    assert_eq!(entries[6]["details"], json!({ "tenant_name": "audited", "product_type": "generic", "tier": "free" }));
}

/// Keys are cached after their first lookup (`auth::key_cache`): a revocation must still apply
/// to the very next request, even with the key in use from other clients while it is revoked.
#[tokio::test]
async fn a_revoked_key_is_refused_by_the_next_request_while_others_use_it() {
    let server = TestServer::start();
    let provisioned = server.provision("revoke-co", "enterprise", "generic").await;
    let (id, key) = (provisioned["tenant_id"].as_str().unwrap(), provisioned["raw_api_key"].as_str().unwrap());
    let key_id = provisioned["api_key_id"].as_str().unwrap();
    for _ in 0..20 {
        assert_eq!(server.v1(Method::GET, "/v1/agents", key).send().await.unwrap().status(), 200);
    }

    // Four clients keep using the key while the admin revokes it.
    let revoked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (request, revoked) = (server.v1(Method::GET, "/v1/agents", key), revoked.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !revoked.load(std::sync::atomic::Ordering::SeqCst) {
                    statuses.push(request.try_clone().unwrap().send().await.unwrap().status());
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let path = format!("/api/admin/tenants/{id}/api-keys/{key_id}");
    let response = server.admin(Method::DELETE, &path).send().await.unwrap();
    assert!(response.status().is_success(), "revoke: {}", response.status());
    // From the moment the revocation was acknowledged, every request is refused.
    for _ in 0..20 {
        let response = server.v1(Method::GET, "/v1/agents", key).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        let statuses = client.await.unwrap();
        assert!(statuses.iter().any(|s| *s == 200), "the clients used the key before it was revoked");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
    }

    // A new key of the same tenant works at once.
    let keys = format!("/api/admin/tenants/{id}/api-keys");
    let created =
        expect_json(send_json(&server, Method::POST, &keys, json!({ "name": "replacement" })).await, 201).await;
    let raw = created["raw_key"].as_str().unwrap();
    assert_eq!(server.v1(Method::GET, "/v1/agents", raw).send().await.unwrap().status(), 200);
}

/// `GET /v1/agents` pages are cached (`api::v1::agents::AgentPages`): each admin change to a
/// tenant's agents must show in the very next listing, and one tenant's cached page must never
/// answer another tenant's key.
#[tokio::test]
async fn a_tenants_agent_listing_shows_each_admin_change_at_once() {
    let server = TestServer::start();
    let first = server.provision("pages-a", "enterprise", "generic").await;
    let second = server.provision("pages-b", "enterprise", "generic").await;
    let (id, key) = (first["tenant_id"].as_str().unwrap(), first["raw_api_key"].as_str().unwrap());
    let other_key = second["raw_api_key"].as_str().unwrap();
    let listing = |key: &str| {
        let request = server.v1(Method::GET, "/v1/agents", key);
        async move { expect_json(request.send().await.unwrap(), 200).await }
    };
    let before = listing(key).await;
    assert_eq!(names(&before["agents"], "name"), ["assistant"]);
    assert_eq!(listing(key).await, before, "a repeated listing answers the same");

    let path = format!("/api/admin/tenants/{id}/agents");
    let body = json!({ "agent_name": "helper", "display_name": "Helper", "config": {} });
    expect_json(send_json(&server, Method::POST, &path, body).await, 201).await;
    let added = listing(key).await;
    assert_eq!(names(&added["agents"], "name"), ["assistant", "helper"]);
    assert_eq!((added["total"].clone(), added["items"].clone()), (json!(2), added["agents"].clone()));

    let body = json!({ "display_name": "Renamed helper" });
    expect_json(send_json(&server, Method::PUT, &format!("{path}/helper"), body).await, 200).await;
    assert_eq!(listing(key).await["agents"][1]["display_name"], "Renamed helper");

    let response = server.admin(Method::DELETE, &format!("{path}/helper")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(listing(key).await, before);

    // The other tenant's listing is its own, before and after the first one's is cached.
    let theirs = listing(other_key).await;
    assert_eq!(names(&theirs["agents"], "name"), ["assistant"]);
    assert_ne!(theirs["agents"][0]["id"], before["agents"][0]["id"]);
    assert_eq!(listing(key).await, before);
}
