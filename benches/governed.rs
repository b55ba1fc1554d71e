//! The governed request path against the ungoverned one, over real HTTP.
//!
//! `GET /v1/agents` with an API key pays for key authentication (prefix lookup, hash
//! comparison), the quota reservation, the tenant's agent listing, usage recording (a
//! detached write through the group-commit writer) and the quota headers. `GET /health` pays
//! for routing and nothing else. Both run on the same in-process server in the same run, at
//! concurrency 1 and 32, and the bench prints requests/s, p50 and p99 for each and the
//! throughput ratio. The client runs in the same process on the same cores, so absolute numbers
//! understate the server; the ratio is the point.
//!
//! `cargo bench --bench governed` runs the measurement (3 samples of 3 s per cell); without
//! `--bench` or with `--test` it does a smoke run. `ARES_BENCH_SAMPLES` / `ARES_BENCH_SECS`
//! override the sample count and seconds per sample; `ARES_BENCH_PATH` measures another
//! governed GET path instead of `/v1/agents` (e.g. `/v1/api-keys`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

const LEVELS: [usize; 2] = [1, 32];

const CONFIG: &str = r#"
[server]
rate_limit_per_second = 0
log_level = "warn"

[quotas.pro]
monthly_requests = "unlimited"
monthly_tokens = "unlimited"
daily_requests = 1000000000
"#;

struct Cell {
    requests: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

async fn load(client: &reqwest::Client, url: &str, key: Option<&str>, concurrency: usize, duration: Duration) -> Cell {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, key) = (client.clone(), url.to_string(), key.map(str::to_string));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let mut request = client.get(&url);
                    if let Some(key) = &key {
                        request = request.bearer_auth(key);
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), 200, "{url}");
                    response.bytes().await.unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Cell { requests: latencies.len() as u64, elapsed: started.elapsed(), latencies }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let env_or = |name: &str, default: f64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let samples = if full { env_or("ARES_BENCH_SAMPLES", 3.0) as usize } else { 1 };
    let duration = Duration::from_secs_f64(if full { env_or("ARES_BENCH_SECS", 3.0) } else { 0.2 });

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let server = in_process::Server::start(CONFIG).await;
        let base = server.base.clone();
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let key = server.provision(&client, "pro", "kasino").await;

        println!("governed: GET /v1/agents (key auth + quota + metering + headers, 4 agents) vs GET /health");
        println!(
            "  {samples} sample(s) of {:.1} s per cell; client in the same process; 2 cores",
            duration.as_secs_f64()
        );
        println!();
        println!("conc | /health req/s   p50     p99    | /v1/agents req/s   p50     p99    | ratio");
        println!("{}", "-".repeat(86));
        for concurrency in LEVELS {
            let (mut health_rates, mut governed_rates) = (Vec::new(), Vec::new());
            let (mut health_lat, mut governed_lat) = (Vec::new(), Vec::new());
            for _ in 0..samples {
                let health = load(&client, &format!("{base}/health"), None, concurrency, duration).await;
                let governed = load(
                    &client,
                    &format!("{base}{}", std::env::var("ARES_BENCH_PATH").unwrap_or("/v1/agents".into())),
                    Some(&key),
                    concurrency,
                    duration,
                )
                .await;
                health_rates.push(health.requests as f64 / health.elapsed.as_secs_f64());
                governed_rates.push(governed.requests as f64 / governed.elapsed.as_secs_f64());
                health_lat.extend(health.latencies);
                governed_lat.extend(governed.latencies);
            }
            health_lat.sort();
            governed_lat.sort();
            let (h, g) = (median(&mut health_rates), median(&mut governed_rates));
            println!(
                "{concurrency:>4} | {h:>12.0} {:>7.2?} {:>7.2?} | {g:>15.0} {:>7.2?} {:>7.2?} | {:.2}",
                percentile(&health_lat, 0.5),
                percentile(&health_lat, 0.99),
                percentile(&governed_lat, 0.5),
                percentile(&governed_lat, 0.99),
                g / h,
            );
        }
        println!();
        println!("ratio = median governed req/s / median /health req/s (p50/p99 over all samples)");
        server.stop().await;
    });
}
