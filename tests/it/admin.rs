//! The admin API so far (API.md §1.9.1, §1.9.8, §3.6): the admin secret, tenants, the audit
//! log, and that all of it survives a restart.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_SECRET, TestServer, expect_error};

/// Send `GET /api/admin/tenants` with `headers` and compare the whole 401 body.
async fn check_rejected(server: &TestServer, headers: &[(&str, &str)], expected: Value) {
    let mut request = server.get("/api/admin/tenants");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let code = expected["code"].as_str().unwrap().to_string();
    let body = expect_error(request.send().await.unwrap(), 401, &code).await;
    assert_eq!(body, expected, "headers {headers:?}");
}

#[tokio::test]
async fn admin_secret_is_required_exactly_and_only_in_its_header() {
    let server = TestServer::start();
    let missing = json!({ "error": "Missing X-Admin-Secret header", "code": "AUTH_MISSING" });
    let invalid = json!({ "error": "Invalid admin secret", "code": "AUTHENTICATION_FAILED" });
    let bearer = format!("Bearer {ADMIN_SECRET}");
    let longer = format!("{ADMIN_SECRET}x");
    check_rejected(&server, &[], missing.clone()).await;
    check_rejected(&server, &[("authorization", &bearer)], missing.clone()).await;
    check_rejected(&server, &[("x-admin-secret", "wrong")], invalid.clone()).await;
    check_rejected(&server, &[("x-admin-secret", "")], invalid.clone()).await;
    check_rejected(&server, &[("x-admin-secret", &longer)], invalid.clone()).await;
    check_rejected(&server, &[("x-admin-secret", "TEST-ADMIN-SECRET")], invalid).await;

    let response = server.get("/api/admin/tenants").header("x-admin-secret", ADMIN_SECRET).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "tenants": [] }));
}

fn parse_rfc3339(text: &str) -> time::OffsetDateTime {
    assert!(text.ends_with('Z'), "not UTC with Z: {text}");
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

#[tokio::test]
async fn create_tenant_returns_201_with_the_documented_shape() {
    let server = TestServer::start();
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let tenant = server.create_tenant("acme-corp", "PRO").await;
    let after = time::OffsetDateTime::now_utc().unix_timestamp();

    let id = tenant["id"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(parsed.hyphenated().to_string(), id, "lower-case hyphenated UUID");
    assert_eq!(tenant["name"], "acme-corp");
    assert_eq!(tenant["tier"], "pro", "tier is stored lower-case");
    assert_eq!(tenant["agent_count"], 0);
    let created = parse_rfc3339(tenant["created_at"].as_str().unwrap()).unix_timestamp();
    assert!((before..=after).contains(&created), "created_at {created} not within [{before}, {after}]");
    assert_eq!(tenant["updated_at"], tenant["created_at"]);

    for (name, tier, stored) in
        [("t-free", "free", "free"), ("t-dev", "Dev", "dev"), ("t-ent", " enterprise ", "enterprise")]
    {
        assert_eq!(server.create_tenant(name, tier).await["tier"], stored, "tier {tier:?}");
    }
}

#[tokio::test]
async fn create_tenant_rejects_duplicates_bad_tiers_and_bad_names() {
    let server = TestServer::start();
    server.create_tenant("acme-corp", "pro").await;
    let post = |body: Value| server.admin(Method::POST, "/api/admin/tenants").json(&body).send();

    let response = post(json!({ "name": "acme-corp", "tier": "free" })).await.unwrap();
    let body = expect_error(response, 409, "CONFLICT").await;
    assert_eq!(body, json!({ "error": "Tenant with name 'acme-corp' already exists", "code": "CONFLICT" }));

    let response = post(json!({ "name": "gilded", "tier": "gold" })).await.unwrap();
    let body = expect_error(response, 422, "UNPROCESSABLE").await;
    let message = "Invalid tier: 'gold'. Valid tiers: free, dev, pro, enterprise";
    assert_eq!(body, json!({ "error": message, "code": "UNPROCESSABLE" }));

    let too_long = "a".repeat(129);
    for name in ["Acme", "acme corp", "", "-acme", "acme_corp", "acmé", too_long.as_str()] {
        let response = post(json!({ "name": name, "tier": "pro" })).await.unwrap();
        let body = expect_error(response, 400, "INVALID_INPUT").await;
        assert_eq!(body["error"], "Invalid tenant name: must be lowercase alphanumeric and hyphens", "name {name:?}");
    }

    // Only the first tenant exists: failed creations leave nothing behind.
    let list: Value = server.admin(Method::GET, "/api/admin/tenants").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["tenants"].as_array().unwrap().len(), 1, "{list}");
}

async fn tenant_names(server: &TestServer) -> Vec<String> {
    let response = server.admin(Method::GET, "/api/admin/tenants").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

async fn audit_entries(server: &TestServer, query: &str) -> Vec<Value> {
    let response = server.admin(Method::GET, &format!("/api/admin/audit-log{query}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn tenant_list_is_newest_first_with_full_items() {
    let server = TestServer::start();
    let created: Vec<Value> = vec![
        server.create_tenant("first", "free").await,
        server.create_tenant("second", "pro").await,
        server.create_tenant("third", "enterprise").await,
    ];
    assert_eq!(tenant_names(&server).await, ["third", "second", "first"]);

    let body: Value = server.admin(Method::GET, "/api/admin/tenants").send().await.unwrap().json().await.unwrap();
    let listed = body["tenants"].as_array().unwrap();
    for tenant in &created {
        let item = listed.iter().find(|t| t["id"] == tenant["id"]).expect("created tenant is listed");
        assert_eq!(item, tenant, "the list item equals the creation response");
    }
}

#[tokio::test]
async fn audit_log_records_tenant_creation() {
    let server = TestServer::builder().config("[server]\ntrusted_proxies = [\"127.0.0.1\"]").start();
    let first = server.create_tenant("acme-corp", "pro").await;
    // Behind a trusted proxy the admin's address is the one the proxy appended.
    let response = server
        .admin(Method::POST, "/api/admin/tenants")
        .header("x-forwarded-for", "198.51.100.66, 203.0.113.7")
        .json(&json!({ "name": "globex", "tier": "Dev" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let second: Value = response.json().await.unwrap();

    let entries = audit_entries(&server, "").await;
    assert_eq!(entries.len(), 2);
    let (newest, oldest) = (&entries[0], &entries[1]);
    for (entry, tenant, ip) in [(newest, &second, "203.0.113.7"), (oldest, &first, "127.0.0.1")] {
        assert_eq!(entry["action"], "tenant.created");
        assert_eq!(entry["legacy_action"], "create_tenant");
        assert_eq!(entry["actor"], "admin");
        assert_eq!(entry["resource_type"], "tenant");
        assert_eq!(entry["resource_id"], tenant["id"]);
        assert_eq!(entry["details"], json!({ "tenant_name": tenant["name"], "tier": tenant["tier"] }));
        assert_eq!(entry["admin_ip"], ip);
        parse_rfc3339(entry["timestamp"].as_str().unwrap());
        assert!(uuid::Uuid::parse_str(entry["id"].as_str().unwrap()).is_ok());
    }
    assert_eq!(newest["details"]["tier"], "dev", "details carry the stored (lower-case) tier");

    // Failed creations are not audited.
    let response = server.admin(Method::POST, "/api/admin/tenants").json(&json!({ "name": "x", "tier": "gold" }));
    assert_eq!(response.send().await.unwrap().status(), 422);
    assert_eq!(audit_entries(&server, "").await.len(), 2);

    // Paging.
    let page = audit_entries(&server, "?limit=1").await;
    assert_eq!(page, entries[..1]);
    let page = audit_entries(&server, "?limit=1&offset=1").await;
    assert_eq!(page, entries[1..]);
    assert!(audit_entries(&server, "?offset=5").await.is_empty());
    let response = server.admin(Method::GET, "/api/admin/audit-log?limit=abc").send().await.unwrap();
    expect_error(response, 400, "INVALID_INPUT").await;
}

#[tokio::test]
async fn tenants_and_audit_survive_a_graceful_restart() {
    let server = TestServer::start();
    let acme = server.create_tenant("acme-corp", "pro").await;
    server.create_tenant("globex", "free").await;
    let audit_before = audit_entries(&server, "").await;

    let server = server.restart();
    assert_eq!(tenant_names(&server).await, ["globex", "acme-corp"]);
    assert_eq!(audit_entries(&server, "").await, audit_before);
    // Uniqueness is enforced against what is on disk, not just in memory.
    let response =
        server.admin(Method::POST, "/api/admin/tenants").json(&json!({ "name": "acme-corp", "tier": "dev" }));
    expect_error(response.send().await.unwrap(), 409, "CONFLICT").await;
    let body: Value = server.admin(Method::GET, "/api/admin/tenants").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["tenants"][1], acme);
}

#[tokio::test]
async fn admin_secret_falls_back_to_the_configured_env_var() {
    let fallback = TestServer::builder().generated_secrets().env("JWT_SECRET", crate::harness::JWT_SECRET);
    for (server, secret) in [
        (fallback.env("API_KEY", "from-api-key").start(), "from-api-key"),
        (
            TestServer::builder()
                .generated_secrets()
                .env("JWT_SECRET", crate::harness::JWT_SECRET)
                .config("[auth]\napi_key_env = \"OPS_ADMIN_SECRET\"")
                .env("OPS_ADMIN_SECRET", "from-ops")
                .env("API_KEY", "not-this-one")
                .start(),
            "from-ops",
        ),
        // ADMIN_API_KEY wins over the fallback.
        (TestServer::builder().env("API_KEY", "not-this-one").start(), ADMIN_SECRET),
    ] {
        assert_eq!(server.admin_secret(), secret);
        let response = server.get("/api/admin/tenants").header("x-admin-secret", secret).send().await.unwrap();
        assert_eq!(response.status(), 200, "secret {secret}");
        let response = server.get("/api/admin/tenants").header("x-admin-secret", "not-this-one").send().await.unwrap();
        expect_error(response, 401, "AUTHENTICATION_FAILED").await;
        assert!(!server.data_dir().join("secrets/admin_secret").exists(), "nothing generated when configured");
    }
}

#[tokio::test]
async fn generated_admin_secret_is_kept_in_the_data_dir_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::builder().generated_secrets().data_dir(dir.path()).start();
    let secret = server.admin_secret().to_string();
    assert_ne!(secret, ADMIN_SECRET);
    assert!(secret.len() >= 32, "a generated secret is long: {secret}");
    assert!(server.data_dir().join("secrets/jwt_secret").exists());
    server.create_tenant("keeps-secret", "pro").await;
    let response = server.get("/api/admin/tenants").header("x-admin-secret", ADMIN_SECRET).send().await.unwrap();
    expect_error(response, 401, "AUTHENTICATION_FAILED").await;
    server.shutdown();

    let server = TestServer::builder().generated_secrets().data_dir(dir.path()).start();
    assert_eq!(server.admin_secret(), secret, "the stored secret is reused, not regenerated");
    assert_eq!(tenant_names(&server).await, ["keeps-secret"]);
}
