//! Network hardening, attacked the way an attacker would: spoofed `X-Forwarded-For` headers.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::harness::{TestServer, expect_error};

/// One token per second, burst of three.
const TIGHT: &str = "[server]\nrate_limit_per_second = 1\nrate_limit_burst = 3";

/// Send 400 `/health` requests, each claiming a different `X-Forwarded-For`; returns how many
/// passed and how long it took.
async fn spoofing_run(server: &TestServer, forwarded_for: impl Fn(u32) -> String) -> (u32, Duration) {
    let started = Instant::now();
    let mut passed = 0;
    for n in 0..400u32 {
        let response = server.get("/health").header("x-forwarded-for", forwarded_for(n)).send().await.unwrap();
        match response.status().as_u16() {
            200 => passed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    (passed, started.elapsed())
}

fn random_address(n: u32) -> String {
    format!("198.18.{}.{}", n / 200, n % 200 + 1)
}

#[tokio::test]
async fn random_forwarded_for_from_loopback_does_not_buy_fresh_buckets() {
    // Default trusted proxies: a direct client's header is its own say-so.
    let server = TestServer::builder().config(TIGHT).start();
    let (passed, took) = spoofing_run(&server, random_address).await;
    let allowed = 3 + took.as_secs() as u32 + 1;
    assert!(passed <= allowed, "{passed} of 400 spoofed requests passed in {took:?}");
}

#[tokio::test]
async fn through_a_proxy_the_address_it_appended_is_the_client() {
    // The proxy on loopback appends the address it saw to whatever the client sent.
    let config = format!("{TIGHT}\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.2\"]");
    let server = TestServer::builder().config(&config).start();
    let (passed, took) = spoofing_run(&server, |n| format!("{}, 203.0.113.50", random_address(n))).await;
    let allowed = 3 + took.as_secs() as u32 + 1;
    assert!(passed <= allowed, "{passed} of 400 spoofed requests passed in {took:?}");

    // A trusted hop in the chain is skipped; the client left of it is limited.
    let response = server.get("/health").header("x-forwarded-for", "1.2.3.4, 203.0.113.50, 10.0.0.2").send().await;
    expect_error(response.unwrap(), 429, "RATE_LIMIT_EXCEEDED").await;
    // Another real client is not.
    let response = server.get("/health").header("x-forwarded-for", "203.0.113.50, 203.0.113.51").send().await;
    assert_eq!(response.unwrap().status(), 200);
}

#[tokio::test]
async fn the_audit_log_records_the_address_the_proxy_saw() {
    let server = TestServer::builder().config("[server]\ntrusted_proxies = [\"127.0.0.1\"]").start();
    let response = server
        .admin(Method::POST, "/api/admin/tenants")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
        .json(&json!({ "name": "spoofed", "tier": "free" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let direct = TestServer::start();
    let response = direct
        .admin(Method::POST, "/api/admin/tenants")
        .header("x-forwarded-for", "6.6.6.6")
        .json(&json!({ "name": "direct", "tier": "free" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    for (server, expected) in [(&server, "203.0.113.7"), (&direct, "127.0.0.1")] {
        let body: Value = server.admin_get("/api/admin/audit-log").await;
        assert_eq!(body["entries"][0]["admin_ip"], expected, "{body}");
    }
}
