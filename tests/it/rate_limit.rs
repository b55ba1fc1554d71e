//! The per-client-IP token bucket (API.md §0.6): JSON 429 with `Retry-After`, on every route,
//! keyed by the right-most untrusted `X-Forwarded-For` entry only when the peer is a trusted proxy.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, expect_error, header};

/// One token per second, burst of three.
const TIGHT: &str = "[server]\nrate_limit_per_second = 1\nrate_limit_burst = 3";

async fn get_health(server: &TestServer, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = server.get("/health");
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// Spend the burst of one client and return the 429 that follows.
///
/// The first three requests must pass (a bucket never holds fewer than its burst when fresh).
/// The fourth must be refused if it comes within a second of the first; if the machine stalled
/// longer than that, a token may have been refilled, so keep going until the refusal.
async fn exhaust(server: &TestServer, forwarded_for: Option<&str>) -> reqwest::Response {
    let started = Instant::now();
    for n in 1..=3 {
        let response = get_health(server, forwarded_for).await;
        assert_eq!(response.status(), 200, "request {n} of the burst");
    }
    for _ in 0..20 {
        let sent_at = started.elapsed();
        let response = get_health(server, forwarded_for).await;
        if response.status() == 429 {
            return response;
        }
        assert!(sent_at >= Duration::from_secs(1), "4th request within a second of the 1st was not limited");
    }
    panic!("never rate limited");
}

#[tokio::test]
async fn burst_then_json_429_with_retry_after() {
    let server = TestServer::builder().config(TIGHT).start();
    let response = exhaust(&server, None).await;
    let retry_after: u64 = header(&response, "retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(header(&response, "x-ratelimit-after"), Some(retry_after.to_string()));
    let body = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(
        body,
        json!({ "error": "Rate limit exceeded", "code": "RATE_LIMIT_EXCEEDED", "retry_after": retry_after })
    );

    // The limiter runs before routing and auth: every route is limited, including unknown ones.
    let response = server.admin(Method::POST, "/api/admin/tenants").json(&json!({})).send().await.unwrap();
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    let response = server.get("/nope").send().await.unwrap();
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_peer_selects_the_bucket() {
    let server = TestServer::builder().config(&format!("{TIGHT}\ntrusted_proxies = [\"127.0.0.1\"]")).start();
    exhaust(&server, Some("203.0.113.1")).await;

    let response = get_health(&server, Some("203.0.113.2")).await;
    assert_eq!(response.status(), 200, "another forwarded client has its own bucket");
    let response = get_health(&server, Some("203.0.113.1, 198.51.100.9")).await;
    assert_eq!(response.status(), 200, "the right-most X-Forwarded-For entry counts");
    let response = get_health(&server, Some("198.51.100.10, 203.0.113.1")).await;
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
    let response = get_health(&server, None).await;
    assert_eq!(response.status(), 200, "the proxy's own address is a separate bucket");
    let response = get_health(&server, Some("203.0.113.1")).await;
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::builder().config(&format!("{TIGHT}\ntrusted_proxies = []")).start();
    exhaust(&server, Some("203.0.113.1")).await;
    // Choosing a new X-Forwarded-For must not buy a fresh bucket.
    let response = get_health(&server, Some("203.0.113.2")).await;
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn zero_rate_disables_the_limiter() {
    let server = TestServer::builder().config("[server]\nrate_limit_per_second = 0\nrate_limit_burst = 1").start();
    for n in 0..50 {
        let response = get_health(&server, None).await;
        assert_eq!(response.status(), 200, "request {n}");
    }
    let body: Value = server.get("/health/detailed").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "healthy");
}
