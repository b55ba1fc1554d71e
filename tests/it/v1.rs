//! The V1 client API with a tenant API key (API.md §1.10, §3.5, §4.3): agents, runs, logs,
//! usage, the tenant's own keys, key parsing, and the quota headers on metered responses.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, expect_error, expect_json, header};

const QUOTA_HEADERS: [&str; 7] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-quota-tokens-remaining",
    "x-quota-requests-limit",
    "x-quota-requests-remaining",
    "x-quota-reset",
];

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn midnight_after(t: time::OffsetDateTime) -> String {
    rfc3339(t.date().next_day().unwrap().midnight().assume_utc())
}

fn parse(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

async fn get(server: &TestServer, path: &str, key: &str) -> reqwest::Response {
    server.v1(Method::GET, path, key).send().await.unwrap()
}

async fn get_json(server: &TestServer, path: &str, key: &str) -> Value {
    expect_json(get(server, path, key).await, 200).await
}

fn key_of(provisioned: &Value) -> String {
    provisioned["raw_api_key"].as_str().unwrap().to_string()
}

fn names(items: &Value) -> Vec<&str> {
    items.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn agents_are_listed_by_name_in_pages() {
    let server = TestServer::start();
    let provisioned = server.provision("pager", "pro", "kasino").await;
    let key = key_of(&provisioned);
    let sorted = ["kasino-classifier", "kasino-report", "kasino-risk", "kasino-transaction"];

    let page = get_json(&server, "/v1/agents", &key).await;
    assert_eq!(names(&page["agents"]), sorted);
    assert_eq!(page["items"], page["agents"]);
    assert_eq!((page["total"].clone(), page["page"].clone()), (json!(4), json!(1)));
    assert_eq!((page["per_page"].clone(), page["total_pages"].clone()), (json!(20), json!(1)));
    let admin =
        server.admin_get(&format!("/api/admin/tenants/{}/agents", provisioned["tenant_id"].as_str().unwrap())).await;
    for (item, admin_item) in page["agents"].as_array().unwrap().iter().zip(admin["agents"].as_array().unwrap()) {
        assert_eq!(item["id"], admin_item["id"]);
        assert_eq!(item["config"], admin_item["config"], "the full stored config");
        assert_eq!(item["agent_type"], item["name"].as_str().unwrap().strip_prefix("kasino-").unwrap());
        assert_eq!(item["status"], "active");
        assert_eq!((item["total_runs"].clone(), item["success_rate"].clone()), (json!(0), json!(0.0)));
        assert_eq!(item["last_run"], Value::Null);
        parse(item["created_at"].as_str().unwrap());
    }

    for (query, page_no, per_page, expected, total_pages) in [
        ("?page=2&per_page=3", 2, 3, &sorted[3..], 2),
        ("?page=1&per_page=3", 1, 3, &sorted[..3], 2),
        ("?per_page=1000", 1, 100, &sorted[..], 1),
        ("?page=0&per_page=2", 1, 2, &sorted[..2], 2),
        ("?per_page=0", 1, 1, &sorted[..1], 4),
        ("?page=9", 9, 20, &sorted[..0], 1),
    ] {
        let body = get_json(&server, &format!("/v1/agents{query}"), &key).await;
        assert_eq!(names(&body["agents"]), expected, "{query}");
        assert_eq!(body["items"], body["agents"], "{query}");
        assert_eq!(body["page"], page_no, "{query}");
        assert_eq!(body["per_page"], per_page, "{query}");
        assert_eq!(body["total"], 4, "{query}");
        assert_eq!(body["total_pages"], total_pages, "{query}");
    }
    for query in ["?page=abc", "?per_page=-1"] {
        expect_error(get(&server, &format!("/v1/agents{query}"), &key).await, 400, "INVALID_INPUT").await;
    }
}

#[tokio::test]
async fn one_agent_its_runs_and_its_logs() {
    let server = TestServer::start();
    let provisioned = server.provision("single", "pro", "kasino").await;
    let key = key_of(&provisioned);
    let tenant_id = provisioned["tenant_id"].as_str().unwrap();

    let agent = get_json(&server, "/v1/agents/kasino-risk", &key).await;
    let admin = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/agents")).await;
    let admin_risk = admin["agents"].as_array().unwrap().iter().find(|a| a["name"] == "kasino-risk").unwrap().clone();
    assert_eq!(agent["id"], admin_risk["id"]);
    assert_eq!(agent["name"], "kasino-risk");
    assert_eq!(agent["agent_type"], "risk");
    assert_eq!(agent["config"], admin_risk["config"]);
    assert_eq!(agent["config"]["model"], "balanced");
    assert_eq!(agent["display_name"], "Risk Assessor");
    // The list item and the single agent agree.
    let list = get_json(&server, "/v1/agents", &key).await;
    assert_eq!(list["agents"].as_array().unwrap().iter().find(|a| a["name"] == "kasino-risk").unwrap(), &agent);

    for path in ["/v1/agents/nope", "/v1/agents/nope/runs", "/v1/agents/nope/logs"] {
        let body = expect_error(get(&server, path, &key).await, 404, "NOT_FOUND").await;
        let name = path.split('/').nth(3).unwrap();
        assert_eq!(body, json!({ "error": format!("Agent not found: {name}"), "code": "NOT_FOUND" }), "{path}");
    }

    let runs = get_json(&server, "/v1/agents/kasino-risk/runs", &key).await;
    assert_eq!(runs, json!({ "runs": [], "items": [], "total": 0, "page": 1, "per_page": 20, "total_pages": 0 }));
    let runs = get_json(&server, "/v1/agents/kasino-risk/runs?page=3&per_page=500", &key).await;
    assert_eq!((runs["page"].clone(), runs["per_page"].clone()), (json!(3), json!(100)));
    let logs = get_json(&server, "/v1/agents/kasino-risk/logs", &key).await;
    assert_eq!(logs, json!({ "logs": [], "items": [], "total": 0, "page": 1, "per_page": 50, "total_pages": 0 }));
    // The alias serves the same.
    assert_eq!(get_json(&server, "/api/v1/agents/kasino-risk", &key).await, agent);
}

#[tokio::test]
async fn usage_reports_the_month_so_far() {
    let server = TestServer::start();
    let provisioned = server.provision("usage-co", "free", "generic").await;
    let key = key_of(&provisioned);
    for _ in 0..3 {
        get_json(&server, "/v1/agents", &key).await;
    }
    let before = now();
    let usage = get_json(&server, "/v1/usage", &key).await;
    let after = now();

    // Computed from the clock before and after, so a request across midnight does not flake
    // (a month boundary during the request can make either snapshot right).
    let month_start = |t: time::OffsetDateTime| rfc3339(t.date().replace_day(1).unwrap().midnight().assume_utc());
    let month_end = |t: time::OffsetDateTime| {
        let first = t.date().replace_day(1).unwrap();
        let next = if first.month() == time::Month::December {
            first.replace_year(first.year() + 1).unwrap().replace_month(time::Month::January).unwrap()
        } else {
            first.replace_month(first.month().next()).unwrap()
        };
        rfc3339(next.midnight().assume_utc() - time::Duration::seconds(1))
    };
    let start = usage["period_start"].as_str().unwrap();
    assert!(start == month_start(before) || start == month_start(after), "{usage}");
    let end = usage["period_end"].as_str().unwrap();
    assert!(end == month_end(before) || end == month_end(after), "{usage}");
    assert!(end.ends_with("T23:59:59Z"), "{end}");

    assert_eq!(usage["total_api_calls"], 3, "the calls before this one: {usage}");
    assert_eq!(usage["total_runs"], 0);
    assert_eq!(usage["total_tokens"], 0);
    assert_eq!(usage["quota_runs"], 1000);
    assert_eq!(usage["quota_tokens"], 100_000);
    let daily = usage["daily_usage"].as_array().unwrap();
    assert_eq!(daily.len(), 1, "{usage}");
    let date = daily[0]["date"].as_str().unwrap();
    let today = |t: time::OffsetDateTime| t.date().to_string();
    assert!(date == today(before) || date == today(after), "date {date}");
    // The documented fields, plus the day's cost (no model was called).
    assert_eq!(daily[0], json!({ "date": date, "runs": 0, "tokens": 0, "api_calls": 3, "cost_usd": "0.000000" }));

    // The usage call itself is metered.
    let again = get_json(&server, "/v1/usage", &key).await;
    assert_eq!(again["total_api_calls"], 4);
    assert_eq!(again["daily_usage"][0]["api_calls"], 4);
    let tenant_id = provisioned["tenant_id"].as_str().unwrap();
    let admin = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage")).await;
    assert_eq!((admin["total_api_calls"].clone(), admin["daily_requests"].clone()), (json!(5), json!(5)));
    assert_eq!((admin["monthly_requests"].clone(), admin["quota_requests_per_day"].clone()), (json!(5), json!(100)));
    let daily = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage/daily")).await;
    assert_eq!(daily["daily"], json!([{ "date": date, "runs": 0, "tokens": 0, "requests": 5, "api_calls": 5 }]));

    // Unlimited quotas are null.
    let enterprise = server.provision("big-co", "enterprise", "generic").await;
    let usage = get_json(&server, "/v1/usage", &key_of(&enterprise)).await;
    assert_eq!((usage["quota_runs"].clone(), usage["quota_tokens"].clone()), (Value::Null, Value::Null));
    assert_eq!(usage["total_api_calls"], 0);
}

#[tokio::test]
async fn tenants_create_list_and_revoke_their_own_keys() {
    let server = TestServer::start();
    let provisioned = server.provision("self-serve", "pro", "generic").await;
    let key = key_of(&provisioned);

    let list = get_json(&server, "/v1/api-keys", &key).await;
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], provisioned["api_key_id"]);
    assert_eq!(keys[0]["prefix"], provisioned["api_key_prefix"]);
    assert_eq!(keys[0]["name"], "self-serve-key");
    assert_eq!(keys[0]["expires_at"], Value::Null);
    assert!(keys[0].get("last_used").is_some() && keys[0].get("created_at").is_some());
    assert!(!list.to_string().contains("hash"));

    let before = now().unix_timestamp();
    let response =
        server.v1(Method::POST, "/v1/api-keys", &key).json(&json!({ "name": "mobile-app-key", "expires_in_days": 30 }));
    let created = expect_json(response.send().await.unwrap(), 201).await;
    let after = now().unix_timestamp();
    let id = created["key"].as_str().expect("`key` is the id string");
    assert_eq!(created["id"], id);
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.len() == 69 && secret.starts_with("ares_") && secret[5..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created["prefix"], secret[..13]);
    assert_eq!(created["name"], "mobile-app-key");
    let expires = parse(created["expires_at"].as_str().unwrap()).unix_timestamp();
    assert!((before + 30 * 86_400..=after + 30 * 86_400).contains(&expires), "expires_at {expires}");
    assert_eq!(created["api_key"]["id"], id);
    assert_eq!(created["api_key"]["expires_at"], created["expires_at"]);
    assert!(!created.to_string().contains("hash"));

    // The new secret authenticates, also without the `ares_` prefix (a reference-style raw key).
    assert_eq!(get(&server, "/v1/usage", secret).await.status(), 200);
    assert_eq!(get(&server, "/v1/usage", &secret[5..]).await.status(), 200);

    let response = server.v1(Method::POST, "/v1/api-keys", &key).json(&json!({ "name": "forever" }));
    let forever = expect_json(response.send().await.unwrap(), 201).await;
    assert_eq!(forever["expires_at"], Value::Null);
    for (body, status, code) in [
        (json!({}), 400, "INVALID_INPUT"),
        (json!({ "name": "" }), 400, "INVALID_INPUT"),
        (json!({ "name": "x", "expires_in_days": 0 }), 422, "UNPROCESSABLE"),
        (json!({ "name": "x", "expires_in_days": "soon" }), 400, "INVALID_INPUT"),
    ] {
        let response = server.v1(Method::POST, "/v1/api-keys", &key).json(&body).send().await.unwrap();
        expect_error(response, status, code).await;
    }

    let ids: Vec<String> = get_json(&server, "/v1/api-keys", &key).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    for expected in [id, forever["id"].as_str().unwrap(), provisioned["api_key_id"].as_str().unwrap()] {
        assert!(ids.iter().any(|i| i == expected), "{expected} not listed in {ids:?}");
    }

    // Revoke: 204, then the key is refused and no longer listed; revoking again is still 204.
    let response = server.v1(Method::DELETE, &format!("/v1/api-keys/{id}"), &key).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let body = expect_error(get(&server, "/v1/usage", secret).await, 401, "AUTHENTICATION_FAILED").await;
    assert_eq!(body, json!({ "error": "Invalid API key", "code": "AUTHENTICATION_FAILED" }));
    expect_error(get(&server, "/v1/usage", &secret[5..]).await, 401, "AUTHENTICATION_FAILED").await;
    let listed = get_json(&server, "/v1/api-keys", &key).await;
    assert!(!listed.to_string().contains(id), "revoked keys are not listed: {listed}");
    let response = server.v1(Method::DELETE, &format!("/v1/api-keys/{id}"), &key).send().await.unwrap();
    assert_eq!(response.status(), 204);

    let tenant_id = provisioned["tenant_id"].as_str().unwrap();
    let response = server.v1(Method::DELETE, "/v1/api-keys/no-such-key", &key).send().await.unwrap();
    let body = expect_error(response, 404, "NOT_FOUND").await;
    assert_eq!(body["error"], format!("API key 'no-such-key' not found for tenant '{tenant_id}'"));

    // A key can revoke itself; its next request is refused.
    let forever_secret = forever["secret"].as_str().unwrap();
    let own = format!("/v1/api-keys/{}", forever["id"].as_str().unwrap());
    assert_eq!(server.v1(Method::DELETE, &own, forever_secret).send().await.unwrap().status(), 204);
    expect_error(get(&server, "/v1/agents", forever_secret).await, 401, "AUTHENTICATION_FAILED").await;
    assert_eq!(get(&server, "/v1/agents", &key).await.status(), 200, "the other keys are unaffected");

    // The audit trail names the tenant as the actor.
    let entries = server.admin_get("/api/admin/audit-log").await;
    let revoked: Vec<&Value> =
        entries["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "api_key.revoked").collect();
    assert_eq!(revoked.len(), 3);
    assert_eq!(revoked[0]["resource_id"], forever["id"]);
    assert_eq!(revoked[0]["actor"], format!("tenant:{tenant_id}"));
    let created_entries =
        entries["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "api_key.created").count();
    assert_eq!(created_entries, 2);
}

#[tokio::test]
async fn malformed_bearer_values_are_401_and_never_500() {
    let server = TestServer::start();
    let provisioned = server.provision("parsing", "free", "generic").await;
    let key = key_of(&provisioned);

    let invalid_key = json!({ "error": "Invalid API key", "code": "AUTHENTICATION_FAILED" });
    let bad_format =
        json!({ "error": "Invalid Authorization format. Expected: Bearer ares_...", "code": "AUTHENTICATION_FAILED" });
    let mut flipped = key.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let cases: Vec<(Vec<u8>, &Value)> = vec![
        (b"Bearer ares_".to_vec(), &invalid_key),
        (b"Bearer ares_x".to_vec(), &invalid_key),
        (b"Bearer ares_1234567".to_vec(), &invalid_key),
        (b"Bearer ares_12345678".to_vec(), &invalid_key),
        (format!("Bearer {flipped}").into_bytes(), &invalid_key),
        (format!("Bearer {key}0").into_bytes(), &invalid_key),
        (format!("Bearer {}", &key[..40]).into_bytes(), &invalid_key),
        (format!("Bearer {}", key.to_uppercase()).into_bytes(), &invalid_key),
        (format!("Bearer {}", &key[6..]).into_bytes(), &invalid_key),
        (b"Bearer not-a-key".to_vec(), &invalid_key),
        ("Bearer ares_ключ-ключ-ключ".as_bytes().to_vec(), &bad_format),
        ("Bearer ares_é".as_bytes().to_vec(), &bad_format),
        (b"Basic abc".to_vec(), &bad_format),
        (format!("Token {key}").into_bytes(), &bad_format),
        (key.clone().into_bytes(), &bad_format),
        (b"Bearer".to_vec(), &bad_format),
    ];
    for (value, expected) in cases {
        let label = String::from_utf8_lossy(&value).to_string();
        let value = reqwest::header::HeaderValue::from_bytes(&value).unwrap();
        let response =
            server.client().get(server.url("/v1/agents")).header("authorization", value).send().await.unwrap();
        for name in QUOTA_HEADERS {
            assert_eq!(header(&response, name), None, "{name} on a 401 for {label:?}");
        }
        let body = expect_error(response, 401, "AUTHENTICATION_FAILED").await;
        assert_eq!(&body, expected, "{label:?}");
    }
    let body = expect_error(server.get("/v1/agents").send().await.unwrap(), 401, "AUTH_MISSING").await;
    assert_eq!(body, json!({ "error": "Missing authorization header", "code": "AUTH_MISSING" }));

    // The real key, in every accepted spelling.
    for value in [format!("Bearer {key}"), format!("bearer {key}"), format!("Bearer {}", &key[5..])] {
        let response = server.client().get(server.url("/v1/agents")).header("authorization", &value).send().await;
        assert_eq!(response.unwrap().status(), 200, "{value}");
    }
    // None of the refusals was counted: three admitted requests so far.
    let usage = get_json(&server, "/v1/usage", &key).await;
    assert_eq!(usage["total_api_calls"], 3);
}

#[tokio::test]
async fn quota_headers_are_on_every_metered_response() {
    let server = TestServer::start();
    let provisioned = server.provision("headers", "free", "kasino").await;
    let key = key_of(&provisioned);

    let mut remaining = 100;
    let requests: Vec<(Method, &str, Option<Value>, u16)> = vec![
        (Method::GET, "/v1/agents", None, 200),
        (Method::GET, "/api/v1/agents", None, 200),
        (Method::GET, "/v1/agents/nope", None, 404),
        (Method::GET, "/v1/agents/kasino-risk/runs", None, 200),
        (Method::POST, "/v1/api-keys", Some(json!({})), 400),
        (Method::GET, "/v1/usage", None, 200),
        (Method::GET, "/v1/api-keys", None, 200),
    ];
    for (method, path, body, status) in requests {
        let before = now();
        let mut request = server.v1(method.clone(), path, &key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let after = now();
        remaining -= 1;
        assert_eq!(response.status(), status, "{method} {path}");
        let label = format!("{method} {path}");
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("100"), "{label}");
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(remaining.to_string()), "{label}");
        let reset = header(&response, "x-ratelimit-reset").unwrap();
        assert!(reset == midnight_after(before) || reset == midnight_after(after), "{label}: reset {reset}");
        assert_eq!(header(&response, "x-quota-tokens-remaining").as_deref(), Some("100000"), "{label}");
        assert_eq!(header(&response, "x-quota-requests-limit").as_deref(), Some("1000"), "{label}");
        assert_eq!(header(&response, "x-quota-requests-remaining"), Some((remaining + 900).to_string()), "{label}");
        assert!(header(&response, "x-quota-reset").unwrap().ends_with("-01T00:00:00Z"), "{label}");
    }

    // Not on a 401, nor on non-/v1 routes, nor for an unlimited tier.
    let response = server.v1(Method::GET, "/v1/agents", "ares_0123456789abcdef").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let admin = server.admin(Method::GET, "/api/admin/tenants").send().await.unwrap();
    let enterprise = server.provision("unlimited", "enterprise", "generic").await;
    let unlimited = get(&server, "/v1/agents", &key_of(&enterprise)).await;
    assert_eq!(unlimited.status(), 200);
    for name in QUOTA_HEADERS {
        assert_eq!(header(&response, name), None, "{name} on a 401");
        assert_eq!(header(&admin, name), None, "{name} on an admin route");
        assert_eq!(header(&unlimited, name), None, "{name} for enterprise");
    }
}
