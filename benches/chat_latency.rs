//! What the gateway adds to an LLM call: `POST /v1/chat` and the OpenAI-compatible
//! `POST /v1/chat/completions` through the server against calling the same mock provider
//! directly, in the same run.
//!
//! The mock (`benches/support/mock_upstream.rs`) is an in-process hyper server speaking the
//! OpenAI wire format with a fixed reply (and, streamed, eight chunks). Through the server a
//! request also pays for key authentication, the quota reservation, agent resolution, building
//! the prompt from the conversation, queueing the conversation and run writes for the writer
//! (the answer does not wait for their commit) and metering; through `/v1/chat/completions` (a
//! bare model, stateless) there is no agent and no conversation, but the run is still written.
//! Measured at concurrency 1 and 32: full-response latency for plain calls; for
//! `/v1/chat/stream` the time to first byte, and for streamed chat completions the time to the
//! end of the stream (its first chunk, the role, leaves before the upstream answers, so a
//! first-byte time would flatter it); medians and p99 of per-request latencies, and the
//! through/direct ratio of the medians.
//!
//! `cargo bench --bench chat_latency` runs it (3 samples of 2 s per cell); without `--bench` or
//! with `--test` it does a smoke run. `ARES_BENCH_SAMPLES` / `ARES_BENCH_SECS` override;
//! `ARES_BENCH_SYNC_INTERVAL_MS` sets `[storage].sync_interval_ms` (default: the config's, 50;
//! `0` makes the chat records wait for their fsync as every write did before).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use serde_json::json;

#[path = "support/mock_upstream.rs"]
mod mock_upstream;

async fn start_mock() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mock_upstream::serve(listener));
    format!("http://{addr}")
}

/// One measured call: latency to the full body, or to the first body chunk for streams.
async fn call(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &serde_json::Value,
    first_byte: bool,
) -> Duration {
    let started = Instant::now();
    let mut request = client.post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    if first_byte {
        let first = response.chunk().await.unwrap();
        let elapsed = started.elapsed();
        assert!(first.is_some());
        while response.chunk().await.unwrap().is_some() {}
        elapsed
    } else {
        response.bytes().await.unwrap();
        started.elapsed()
    }
}

async fn load(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: serde_json::Value,
    first_byte: bool,
    concurrency: usize,
    duration: Duration,
) -> Vec<Duration> {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, key, body) = (client.clone(), url.to_string(), key.map(str::to_string), body.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                while Instant::now() < deadline {
                    out.push(call(&client, &url, key.as_deref(), &body, first_byte).await);
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let env_or = |name: &str, default: f64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let samples = if full { env_or("ARES_BENCH_SAMPLES", 3.0) as usize } else { 1 };
    let duration = Duration::from_secs_f64(if full { env_or("ARES_BENCH_SECS", 2.0) } else { 0.2 });
    let sync_interval_ms = std::env::var("ARES_BENCH_SYNC_INTERVAL_MS").ok().and_then(|v| v.parse::<u64>().ok());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mock_url = start_mock().await;
        let config = format!(
            r#"{base}
[quotas.pro]
monthly_requests = "unlimited"
monthly_tokens = "unlimited"
daily_requests = "unlimited"
{storage}"#,
            base = include_str!("support/gateway.toml").replace("MOCK_URL", &mock_url),
            storage = sync_interval_ms.map(|ms| format!("\n[storage]\nsync_interval_ms = {ms}\n")).unwrap_or_default(),
        );
        let server = in_process::Server::start(&config).await;
        let base = server.base.clone();
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let key = server.provision(&client, "pro", "generic").await;
        let direct_body = |stream: bool| {
            json!({ "model": "mock-model", "stream": stream, "messages": [
                {"role": "system", "content": "You are a helpful, general-purpose assistant."},
                {"role": "user", "content": "Say something short."}] })
        };
        let ares_body = json!({ "message": "Say something short.", "agent_type": "assistant" });
        let completions_body = |stream: bool| {
            json!({ "model": "fast", "stream": stream, "messages": [
                {"role": "system", "content": "You are a helpful, general-purpose assistant."},
                {"role": "user", "content": "Say something short."}] })
        };
        // (label, path through the server, its body, streamed, measure to the first byte)
        let cases = [
            ("/v1/chat", "/v1/chat", ares_body.clone(), false, false),
            ("/v1/chat/stream TTFB", "/v1/chat/stream", ares_body.clone(), true, true),
            ("completions", "/v1/chat/completions", completions_body(false), false, false),
            ("completions stream", "/v1/chat/completions", completions_body(true), true, false),
        ];

        println!("chat_latency: through the server vs the mock provider directly");
        println!(
            "  [storage].sync_interval_ms = {}",
            sync_interval_ms.map_or("50 (default)".into(), |ms| ms.to_string())
        );
        println!(
            "  {samples} sample(s) of {:.1} s per cell; client, server and mock in one process; 2 cores",
            duration.as_secs_f64()
        );
        println!();
        println!(
            "mode                  conc | direct p50    p99    | via server p50    p99    | p50 ratio | added p50"
        );
        println!("{}", "-".repeat(101));
        for (label, path, body, stream, first_byte) in cases {
            for concurrency in [1usize, 32] {
                let (mut direct, mut gateway) = (Vec::new(), Vec::new());
                for _ in 0..samples {
                    direct.extend(
                        load(
                            &client,
                            &format!("{mock_url}/v1/chat/completions"),
                            None,
                            direct_body(stream),
                            first_byte,
                            concurrency,
                            duration,
                        )
                        .await,
                    );
                    gateway.extend(
                        load(
                            &client,
                            &format!("{base}{path}"),
                            Some(&key),
                            body.clone(),
                            first_byte,
                            concurrency,
                            duration,
                        )
                        .await,
                    );
                }
                direct.sort();
                gateway.sort();
                let (d50, g50) = (pct(&direct, 0.5), pct(&gateway, 0.5));
                println!(
                    "{label:<21} {concurrency:>4} | {:>10.2?} {:>8.2?} | {:>14.2?} {:>8.2?} | {:>9.2} | {:>9.2?}",
                    d50,
                    pct(&direct, 0.99),
                    g50,
                    pct(&gateway, 0.99),
                    g50.as_secs_f64() / d50.as_secs_f64().max(1e-9),
                    g50.saturating_sub(d50),
                );
            }
        }
        server.stop().await;
    });
}
