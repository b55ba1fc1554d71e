//! Tenant quotas (API.md §4.1–§4.3): the documented 429s in their order, `Retry-After`, what is
//! counted, persistence across restarts, and the 80 % / 100 % alerts (§1.9.7).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, expect_error, expect_json, header};

/// Free tier with a daily limit of five requests.
const DAILY_FIVE: &str = "[quotas.free]\nmonthly_requests = 1000\nmonthly_tokens = 100000\ndaily_requests = 5";

/// Hang guard for waiting on asynchronously written alerts, not a performance assertion.
const ALERT_GUARD: Duration = Duration::from_secs(10);

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn next_midnight(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.date().next_day().unwrap().midnight().assume_utc()
}

fn next_month(t: time::OffsetDateTime) -> time::OffsetDateTime {
    let first = t.date().replace_day(1).unwrap();
    let next = if first.month() == time::Month::December {
        first.replace_year(first.year() + 1).unwrap().replace_month(time::Month::January).unwrap()
    } else {
        first.replace_month(first.month().next()).unwrap()
    };
    next.midnight().assume_utc()
}

/// Assert `Retry-After` (header and body) is the number of seconds from the request to `reset`
/// (±5 s for a slow machine), and return it.
fn assert_retry_after(response: &reqwest::Response, sent: time::OffsetDateTime, reset: time::OffsetDateTime) -> u64 {
    let retry_after: u64 = header(response, "retry-after").expect("Retry-After").parse().unwrap();
    let expected = (reset - sent).whole_seconds();
    assert!(
        (i64::try_from(retry_after).unwrap() - expected).abs() <= 5,
        "Retry-After {retry_after}, expected ~{expected}"
    );
    retry_after
}

async fn get(server: &TestServer, path: &str, key: &str) -> reqwest::Response {
    server.v1(Method::GET, path, key).send().await.unwrap()
}

fn key_of(provisioned: &Value) -> String {
    provisioned["raw_api_key"].as_str().unwrap().to_string()
}

fn id_of(provisioned: &Value) -> String {
    provisioned["tenant_id"].as_str().unwrap().to_string()
}

/// `n` admitted requests, checking the remaining daily count after each.
async fn spend(server: &TestServer, key: &str, n: u64, limit: u64, used_before: u64) {
    for i in 1..=n {
        let response = get(server, "/v1/agents", key).await;
        assert_eq!(response.status(), 200, "request {} of the day", used_before + i);
        let remaining = (limit - used_before - i).to_string();
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(remaining), "after request {}", used_before + i);
    }
}

/// The tenant's usage from the admin API. It reads committed counters, so it also waits for
/// the usage events (and alerts) queued by earlier requests.
async fn admin_usage(server: &TestServer, tenant_id: &str) -> Value {
    server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage")).await
}

async fn alerts(server: &TestServer, query: &str) -> Vec<Value> {
    server.admin_get(&format!("/api/admin/alerts{query}")).await["alerts"].as_array().unwrap().clone()
}

/// Poll the alert list until `done` holds (alerts are written after the response).
async fn alerts_until(server: &TestServer, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + ALERT_GUARD;
    loop {
        let list = alerts(server, query).await;
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "alerts never matched; last seen: {list:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn of_tenant<'a>(list: &'a [Value], tenant_id: &str) -> Vec<&'a Value> {
    list.iter().filter(|a| a["tenant_id"] == tenant_id).collect()
}

fn severities(list: &[Value], tenant_id: &str) -> Vec<String> {
    of_tenant(list, tenant_id).iter().map(|a| a["severity"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_request_over_the_daily_limit_is_refused_and_not_counted() {
    let server = TestServer::builder().config(DAILY_FIVE).start();
    let limited = server.provision("limited", "free", "generic").await;
    let bystander = server.provision("bystander", "free", "generic").await;
    let key = key_of(&limited);
    spend(&server, &key, 5, 5, 0).await;

    let sent = now();
    let response = get(&server, "/v1/agents", &key).await;
    let retry_after = assert_retry_after(&response, sent, next_midnight(sent));
    assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("0"));
    let reset = header(&response, "x-ratelimit-reset").unwrap();
    assert!(reset.ends_with("T00:00:00Z"), "{reset}");
    assert_eq!(header(&response, "x-quota-tokens-remaining").as_deref(), Some("100000"));
    let body = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(
        body,
        json!({ "error": "Daily request limit reached for your tier", "code": "RATE_LIMIT_EXCEEDED", "retry_after": retry_after })
    );

    // Every /v1 route is governed, and refusals do not use up anything.
    for path in ["/v1/usage", "/v1/api-keys", "/v1/agents/assistant", "/v1/agents/nope"] {
        let response = get(&server, path, &key).await;
        assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("0"), "{path}");
        expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    }
    // Other tenants are not affected.
    spend(&server, &key_of(&bystander), 1, 5, 0).await;

    let usage = admin_usage(&server, &id_of(&limited)).await;
    assert_eq!(usage["total_api_calls"], 5, "{usage}");
    assert_eq!(usage["daily_requests"], 5);
    let daily = server.admin_get(&format!("/api/admin/tenants/{}/usage/daily", id_of(&limited))).await;
    assert_eq!(daily["daily"][0]["api_calls"], 5);

    // After an upgrade the next request passes, and the count shows the refusals were not counted.
    let path = format!("/api/admin/tenants/{}/quota", id_of(&limited));
    let response = server.admin(Method::PUT, &path).json(&json!({ "tier": "pro" })).send().await.unwrap();
    expect_json(response, 200).await;
    let response = get(&server, "/v1/agents", &key).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("9994"));
}

#[tokio::test]
async fn monthly_requests_are_checked_before_daily_and_tokens_last() {
    let server = TestServer::builder()
        .config(
            r#"
            [quotas.free]
            monthly_requests = 3
            monthly_tokens = 100000
            daily_requests = 3
            [quotas.dev]
            monthly_requests = 10
            monthly_tokens = 100000
            daily_requests = 2
            [quotas.pro]
            monthly_requests = 10
            monthly_tokens = 0
            daily_requests = 10
            "#,
        )
        .start();

    // Both the monthly and the daily count are exhausted: the monthly message wins.
    let monthly = server.provision("monthly", "free", "generic").await;
    spend(&server, &key_of(&monthly), 3, 3, 0).await;
    let sent = now();
    let response = get(&server, "/v1/agents", &key_of(&monthly)).await;
    let retry_after = assert_retry_after(&response, sent, next_month(sent));
    assert_eq!(header(&response, "x-quota-requests-remaining").as_deref(), Some("0"));
    let body = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(
        body,
        json!({ "error": "Monthly request quota exceeded", "code": "RATE_LIMIT_EXCEEDED", "retry_after": retry_after })
    );

    // Only the daily limit is exhausted.
    let daily = server.provision("daily", "dev", "generic").await;
    spend(&server, &key_of(&daily), 2, 2, 0).await;
    let sent = now();
    let response = get(&server, "/v1/agents", &key_of(&daily)).await;
    assert_retry_after(&response, sent, next_midnight(sent));
    let body = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["error"], "Daily request limit reached for your tier");

    // A token quota of zero is exhausted from the start; it is checked after the request counts.
    let tokens = server.provision("tokens", "pro", "generic").await;
    let sent = now();
    let response = get(&server, "/v1/agents", &key_of(&tokens)).await;
    assert_eq!(header(&response, "x-quota-tokens-remaining").as_deref(), Some("0"));
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("10"));
    assert_retry_after(&response, sent, next_month(sent));
    let body = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["error"], "Monthly token quota exceeded");
    assert_eq!(admin_usage(&server, &id_of(&tokens)).await["total_api_calls"], 0);
}

#[tokio::test]
async fn counts_survive_a_restart() {
    let server = TestServer::builder().config(DAILY_FIVE).start();
    let provisioned = server.provision("durable", "free", "generic").await;
    let key = key_of(&provisioned);
    spend(&server, &key, 3, 5, 0).await;

    let server = server.restart();
    spend(&server, &key, 2, 5, 3).await;
    let response = get(&server, "/v1/agents", &key).await;
    let body = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["error"], "Daily request limit reached for your tier");
    let usage = admin_usage(&server, &id_of(&provisioned)).await;
    assert_eq!((usage["total_api_calls"].clone(), usage["daily_requests"].clone()), (json!(5), json!(5)));
}

#[tokio::test]
async fn alerts_are_raised_at_80_and_100_percent_once_per_period() {
    let server = TestServer::builder().config(DAILY_FIVE).start();
    let watched = server.provision("watched", "free", "generic").await;
    let quiet = server.provision("quiet", "free", "generic").await;
    let (key, tenant_id) = (key_of(&watched), id_of(&watched));

    spend(&server, &key, 3, 5, 0).await;
    admin_usage(&server, &tenant_id).await;
    assert!(alerts(&server, "").await.is_empty(), "no alert below 80%");

    // The 4th of 5 requests crosses 80 %.
    spend(&server, &key, 1, 5, 3).await;
    let list = alerts_until(&server, "", |l| !of_tenant(l, &tenant_id).is_empty()).await;
    assert_eq!(severities(&list, &tenant_id), ["warning"]);
    let warning = of_tenant(&list, &tenant_id)[0].clone();
    assert_eq!(warning["source"], "quota");
    assert_eq!(warning["resolved"], false);
    assert_eq!((warning["resolved_at"].clone(), warning["resolved_by"].clone()), (Value::Null, Value::Null));
    assert!(warning["title"].as_str().unwrap().contains("watched"), "{warning}");
    assert!(warning["message"].as_str().unwrap().contains(&tenant_id), "{warning}");
    assert!(uuid::Uuid::parse_str(warning["id"].as_str().unwrap()).is_ok());
    let created = warning["created_at"].as_str().unwrap();
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();

    // The 5th reaches 100 %.
    spend(&server, &key, 1, 5, 4).await;
    let list = alerts_until(&server, "", |l| of_tenant(l, &tenant_id).len() >= 2).await;
    assert_eq!(severities(&list, &tenant_id), ["critical", "warning"], "newest first");

    // Refused requests, and more crossings by other tenants' traffic, add nothing for this one.
    for _ in 0..2 {
        expect_error(get(&server, "/v1/agents", &key).await, 429, "RATE_LIMIT_EXCEEDED").await;
    }
    spend(&server, &key_of(&quiet), 1, 5, 0).await;
    admin_usage(&server, &tenant_id).await;
    let list = alerts(&server, "").await;
    assert_eq!(severities(&list, &tenant_id), ["critical", "warning"]);
    assert!(of_tenant(&list, &id_of(&quiet)).is_empty());

    // Filters.
    let only = |query: &'static str| {
        let server = &server;
        let tenant_id = tenant_id.clone();
        async move { severities(&alerts(server, query).await, &tenant_id) }
    };
    assert_eq!(only("?severity=warning").await, ["warning"]);
    assert_eq!(only("?severity=critical").await, ["critical"]);
    assert!(only("?severity=info").await.is_empty());
    assert_eq!(only("?resolved=false").await, ["critical", "warning"]);
    assert!(only("?resolved=true").await.is_empty());
    assert_eq!(only("?limit=1").await, ["critical"]);
    assert_eq!(server.admin_get("/api/admin/stats").await["active_alerts"], 2);
}

#[tokio::test]
async fn alerts_are_resolved_once_and_audited() {
    let server = TestServer::builder().config(DAILY_FIVE).start();
    let provisioned = server.provision("resolver", "free", "generic").await;
    let tenant_id = id_of(&provisioned);
    spend(&server, &key_of(&provisioned), 5, 5, 0).await;
    let list = alerts_until(&server, "", |l| of_tenant(l, &tenant_id).len() >= 2).await;
    let (critical, warning) = (list[0].clone(), list[1].clone());
    assert_eq!((critical["severity"].as_str(), warning["severity"].as_str()), (Some("critical"), Some("warning")));

    let resolve = |id: &str| server.admin(Method::POST, &format!("/api/admin/alerts/{id}/resolve"));
    let before = now().unix_timestamp();
    let resolved =
        expect_json(resolve(warning["id"].as_str().unwrap()).json(&json!({})).send().await.unwrap(), 200).await;
    assert_eq!(resolved["resolved"], true);
    assert_eq!(resolved["resolved_by"], "admin");
    let at = resolved["resolved_at"].as_str().unwrap();
    let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(at.unix_timestamp() >= before);
    for field in ["id", "severity", "source", "title", "message", "tenant_id", "created_at"] {
        assert_eq!(resolved[field], warning[field], "{field} unchanged");
    }

    // No body at all is fine too.
    let other = expect_json(resolve(critical["id"].as_str().unwrap()).send().await.unwrap(), 200).await;
    assert_eq!((other["resolved"].clone(), other["resolved_by"].clone()), (json!(true), json!("admin")));

    // Resolving again answers the alert unchanged.
    let again = resolve(warning["id"].as_str().unwrap()).json(&json!({ "resolved_by": "oncall" })).send().await;
    assert_eq!(expect_json(again.unwrap(), 200).await, resolved);

    let body = expect_error(resolve("no-such-alert").json(&json!({})).send().await.unwrap(), 404, "NOT_FOUND").await;
    assert_eq!(body, json!({ "error": "Alert not found", "code": "NOT_FOUND" }));
    let response = server.admin(Method::GET, "/api/admin/alerts?resolved=maybe").send().await.unwrap();
    expect_error(response, 400, "INVALID_INPUT").await;
    let response = resolve(warning["id"].as_str().unwrap()).body("{not json").send().await.unwrap();
    expect_error(response, 400, "INVALID_INPUT").await;

    let resolved_list = alerts(&server, "?resolved=true").await;
    assert_eq!(severities(&resolved_list, &tenant_id), ["critical", "warning"]);
    assert_eq!(resolved_list[1], resolved);
    assert!(alerts(&server, "?resolved=false").await.is_empty());
    assert_eq!(server.admin_get("/api/admin/stats").await["active_alerts"], 0);

    let entries = server.admin_get("/api/admin/audit-log").await;
    let audited: Vec<&Value> =
        entries["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "alert.resolved").collect();
    for alert in [&warning, &critical] {
        let entry = audited.iter().find(|e| e["resource_id"] == alert["id"]).expect("resolution audited");
        assert_eq!(entry["resource_type"], "alert");
        assert_eq!(entry["legacy_action"], "resolve_alert");
        assert!(entry["details"].is_object());
    }
    assert!(!audited.iter().any(|e| e["resource_id"] == "no-such-alert"), "a failed resolve is not audited");
}
