//! What failing over costs (issue 15): a model served by two deployments, one of which answers
//! every call with an instant 503, the other the instant mock of `support/mock_upstream.rs`.
//! Calls that tried the failing one first (`X-Ares-Attempts: 2`) are compared with calls
//! answered at once by a model on the healthy upstream alone, and with the failing upstream's
//! own answer time measured directly: failover may add at most that time plus 5 ms at p95.
//! The failing deployment's circuit is kept closed (`breaker_failures` very high), so about
//! half the calls fail over.
//!
//! `cargo bench --bench failover` runs 3 rounds of 1,000 calls per cell (sequential, c=1);
//! without `--bench` or with `--test` a smoke run. `ARES_BENCH_CALLS` overrides the count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/mock_upstream.rs"]
mod mock_upstream;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

const ROUNDS: usize = 3;

/// An upstream that is up but failing: every call gets 503 at once.
async fn serve_failing(listener: tokio::net::TcpListener) {
    let answer = |request: hyper::Request<hyper::body::Incoming>| async move {
        let _ = request.into_body().collect().await;
        let body = Full::new(Bytes::from_static(br#"{"error":{"message":"overloaded","type":"server_error"}}"#));
        Ok::<_, Infallible>(
            hyper::Response::builder()
                .status(503)
                .header("content-type", "application/json")
                .body(body)
                .expect("a valid response"),
        )
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn chat(model: &str) -> serde_json::Value {
    serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": "Say something short." }] })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let calls: usize =
        std::env::var("ARES_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(if full { 1000 } else { 40 });
    let rounds = if full { ROUNDS } else { 1 };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let (healthy, healthy_url) = listen().await;
        tokio::spawn(mock_upstream::serve(healthy));
        let (failing, failing_url) = listen().await;
        tokio::spawn(serve_failing(failing));

        let config = format!(
            r#"
[server]
rate_limit_per_second = 0
log_level = "error"

[[providers]]
name = "down"
type = "openai"
base_url = "{failing_url}/v1"
breaker_failures = 1000000000

[[providers]]
name = "up"
type = "openai"
base_url = "{healthy_url}/v1"

[[models]]
name = "pool"
deployments = [{{ provider = "down", model_id = "m" }}, {{ provider = "up", model_id = "m" }}]

[[models]]
name = "solo"
provider = "up"
model_id = "m"

[quotas.pro]
monthly_requests = "unlimited"
monthly_tokens = "unlimited"
daily_requests = "unlimited"
"#
        );
        let server = in_process::Server::start(&config).await;
        let client = reqwest::Client::new();
        let key = server.provision(&client, "pro", "generic").await;
        let base = &server.base;
        let url = format!("{base}/v1/chat/completions");

        println!("failover: {rounds} round(s) of {calls} sequential calls per cell; client, ARES and both mocks share 2 cores");
        let (mut direct_p95, mut first_try_p95, mut failover_p95) = (Vec::new(), Vec::new(), Vec::new());
        let (mut first_try_p50, mut failover_p50, mut failovers) = (Vec::new(), Vec::new(), 0usize);
        for _ in 0..rounds {
            let mut direct = Vec::with_capacity(calls);
            for _ in 0..calls {
                let sent = Instant::now();
                let response =
                    client.post(format!("{failing_url}/v1/chat/completions")).json(&chat("m")).send().await.unwrap();
                assert_eq!(response.status(), 503);
                response.bytes().await.unwrap();
                direct.push(sent.elapsed());
            }
            let mut first_try = Vec::with_capacity(calls);
            for _ in 0..calls {
                let sent = Instant::now();
                let response = client.post(&url).bearer_auth(&key).json(&chat("solo")).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                first_try.push(sent.elapsed());
            }
            let mut failed_over = Vec::with_capacity(calls);
            for _ in 0..calls {
                let sent = Instant::now();
                let response = client.post(&url).bearer_auth(&key).json(&chat("pool")).send().await.unwrap();
                assert_eq!(response.status(), 200, "failover must hide the failing deployment");
                let attempts = response.headers().get("x-ares-attempts").cloned();
                response.bytes().await.unwrap();
                if attempts.as_ref().and_then(|v| v.to_str().ok()) == Some("2") {
                    failed_over.push(sent.elapsed());
                }
            }
            failovers += failed_over.len();
            for cell in [&mut direct, &mut first_try, &mut failed_over] {
                cell.sort();
            }
            direct_p95.push(percentile(&direct, 0.95));
            first_try_p95.push(percentile(&first_try, 0.95));
            first_try_p50.push(percentile(&first_try, 0.5));
            failover_p95.push(percentile(&failed_over, 0.95));
            failover_p50.push(percentile(&failed_over, 0.5));
        }
        let (direct, first_try, failover) = (median(direct_p95), median(first_try_p95), median(failover_p95));
        println!("  failing upstream directly:        p95 {direct:>9.2?}");
        println!("  first try (healthy model alone):  p50 {:>9.2?}  p95 {first_try:>9.2?}", median(first_try_p50));
        println!(
            "  after a failover ({failovers} calls):   p50 {:>9.2?}  p95 {failover:>9.2?}",
            median(failover_p50)
        );
        let added = failover.saturating_sub(first_try);
        let allowed = direct + Duration::from_millis(5);
        println!(
            "  failover adds {added:.2?} at p95 (medians of {rounds}); allowed: the failed attempt ({direct:.2?}) + 5 ms = {allowed:.2?} -> {}",
            if added <= allowed { "within" } else { "OVER" }
        );
        server.stop().await;
    });
}
