//! Concurrency bounded by the upstream, not by a thread pool: N concurrent `/v1/chat/stream`
//! requests against an upstream that waits 1 s and then streams 50 chunks over 1 s. Every
//! stream must complete with every chunk in order; the bench reports how long the slowest took,
//! time to first byte p50/p99 under that load, when the upstream received the burst's first and
//! last request, how late the upstream itself ran, the server's CPU time for the run, and its RSS
//! before, at peak and after.
//!
//! The server is the real `ares` binary (so its RSS is its own), the mock upstream and the
//! clients run in this process. `cargo bench --bench concurrency` runs 2,000 streams; without
//! `--bench` or with `--test` a smoke run of 50. `ARES_BENCH_STREAMS` overrides the count.
//! `ARES_BENCH_BARE_PROXY=target/release/examples/bare_proxy` runs the same load through that
//! forwarding proxy instead: the ceiling of any server on this HTTP stack and machine.
//! `ARES_BENCH_SERVER=/path/to/ares` runs another build of the server (a baseline to compare
//! with in the same session).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::convert::Infallible;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

const CHUNKS: usize = 50;
const FIRST_TOKEN_AFTER: Duration = Duration::from_secs(1);
const CHUNK_EVERY: Duration = Duration::from_millis(20);

type MockBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// How late, at worst, the mock upstream produced a chunk against its schedule (µs): when this
/// process's own threads are starved, the upstream itself falls behind and the run says so.
static UPSTREAM_LAG_MICROS: AtomicU64 = AtomicU64::new(0);

/// When the upstream received its first and its last request, in µs since [`bench_epoch`]: how
/// long the server took to pass the whole burst on, the part of a stream's time spent before the
/// upstream even starts its 2 s.
static FIRST_REQUEST_MICROS: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_REQUEST_MICROS: AtomicU64 = AtomicU64::new(0);

fn bench_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// An OpenAI-format stream: silence, then `CHUNKS` deltas `w0 `, `w1 `, … and usage.
///
/// Chunk `i` is due `FIRST_TOKEN_AFTER + i × CHUNK_EVERY` after the request, a fixed schedule
/// as a model server keeps: sleeping `CHUNK_EVERY` after each write instead would add this
/// process's own scheduling delay to every one of the 50 gaps, so the upstream would stream
/// for longer than 1 s whenever the machine is busy, whatever the server in between does.
async fn mock(request: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<MockBody>, Infallible> {
    let _ = request.into_body().collect().await;
    let received = tokio::time::Instant::now();
    let arrived = u64::try_from(bench_epoch().elapsed().as_micros()).unwrap_or(u64::MAX);
    FIRST_REQUEST_MICROS.fetch_min(arrived, Ordering::Relaxed);
    LAST_REQUEST_MICROS.fetch_max(arrived, Ordering::Relaxed);
    let frames = futures_util::stream::unfold(0usize, move |i| async move {
        if i > CHUNKS {
            return None;
        }
        let due = received + FIRST_TOKEN_AFTER + CHUNK_EVERY * i as u32;
        tokio::time::sleep_until(due).await;
        let lag = tokio::time::Instant::now().saturating_duration_since(due).as_micros();
        UPSTREAM_LAG_MICROS.fetch_max(u64::try_from(lag).unwrap_or(u64::MAX), Ordering::Relaxed);
        let data = if i < CHUNKS {
            format!("data: {}\n\n", json!({"choices": [{"delta": {"content": format!("w{i} ")}}]}))
        } else {
            format!(
                "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
                json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
                json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": CHUNKS}})
            )
        };
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(data))), i + 1))
    });
    let body = StreamBody::new(frames).boxed();
    Ok(hyper::Response::builder().header("content-type", "text/event-stream").body(body).unwrap())
}

async fn start_mock() -> String {
    // A backlog for the whole burst (tokio's default of 1,024 would delay the rest by a second).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(mock))
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time the process has used (user + system), from `/proc/<pid>/stat`: the server's own
/// cost of a run, far steadier than its wall-clock time on a shared machine.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One stream: (time to first byte, time to the end, the text it carried).
async fn stream(client: &reqwest::Client, url: &str, key: &str) -> (Duration, Duration, String) {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .bearer_auth(key)
        .json(&json!({ "message": "Count.", "agent_type": "assistant" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut first = None;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        first.get_or_insert_with(|| started.elapsed());
        body.extend_from_slice(&chunk);
    }
    // Timed before the client's own parsing: all streams end together, and 2,000 clients
    // decoding 50 events each at that moment would be counted against the server.
    let ended = started.elapsed();
    let text: String = String::from_utf8(body)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        // ARES's `{"delta"}`, or the upstream's own chunks through the bare proxy.
        .filter_map(|v| v["delta"].as_str().or(v["choices"][0]["delta"]["content"].as_str()).map(str::to_string))
        .collect();
    (first.unwrap_or_default(), ended, text)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default()
}

fn main() {
    bench_epoch();
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let streams: usize =
        std::env::var("ARES_BENCH_STREAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(if full { 2000 } else { 50 });
    // The ceiling: the same load through `examples/bare_proxy.rs` (build it first with
    // `cargo build --release --example bare_proxy`) instead of `ares serve`.
    let bare_proxy = std::env::var("ARES_BENCH_BARE_PROXY").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mock_url = start_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ares.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[server]
rate_limit_per_second = 0
max_connections = 8192
log_level = "warn"

[[providers]]
name = "mock"
type = "openai"
base_url = "{mock_url}/v1"
read_timeout_secs = 30

[[models]]
name = "fast"
provider = "mock"
model_id = "mock-model"
tier = "fast"

[quotas.pro]
monthly_requests = "unlimited"
monthly_tokens = "unlimited"
daily_requests = "unlimited"
"#
            ),
        )
        .unwrap();
        let client = reqwest::Client::builder().pool_max_idle_per_host(streams).build().unwrap();
        let (mut child, base, key) = match &bare_proxy {
            None => {
                let server = std::env::var("ARES_BENCH_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ares").into());
                let mut child = Command::new(server)
                    .args(["serve", "--port", "0", "--config"])
                    .arg(&config)
                    .arg("--data-dir")
                    .arg(dir.path().join("data"))
                    .env("ADMIN_API_KEY", "bench-admin-secret-0123456789")
                    .env("JWT_SECRET", "bench-jwt-secret-bench-jwt-secret-0123")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
                let base = stdout
                    .lines()
                    .map_while(Result::ok)
                    .find_map(|line| line.split("listening on ").nth(1).map(str::to_string))
                    .expect("the server's listening line");
                let provisioned: serde_json::Value = client
                    .post(format!("{base}/api/admin/provision-client"))
                    .header("x-admin-secret", "bench-admin-secret-0123456789")
                    .json(
                        &json!({ "name": "bench", "tier": "pro", "product_type": "generic", "api_key_name": "bench" }),
                    )
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (child, base, provisioned["raw_api_key"].as_str().unwrap().to_string())
            }
            Some(binary) => {
                let mut child =
                    Command::new(binary).arg(&mock_url).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
                let mut line = String::new();
                std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
                (child, line.trim().to_string(), String::new())
            }
        };
        let pid = child.id();
        let idle_rss = rss_kib(pid);

        let peak = std::sync::Arc::new(AtomicU64::new(idle_rss));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let url = format!("{base}/v1/chat/stream");
        let cpu_before = cpu_time(pid);
        let started = Instant::now();
        let started_micros = u64::try_from(started.duration_since(bench_epoch()).as_micros()).unwrap_or(0);
        let tasks: Vec<_> = (0..streams)
            .map(|_| {
                let (client, url, key) = (client.clone(), url.clone(), key.clone());
                tokio::spawn(async move { stream(&client, &url, &key).await })
            })
            .collect();
        let mut ttfb = Vec::with_capacity(streams);
        let mut after_first = Vec::with_capacity(streams);
        let mut slowest = Duration::ZERO;
        let expected: String = (0..CHUNKS).map(|i| format!("w{i} ")).collect();
        let mut complete = 0;
        for task in tasks {
            let (first, total, text) = task.await.unwrap();
            ttfb.push(first);
            after_first.push(total.saturating_sub(first));
            slowest = slowest.max(total);
            complete += usize::from(text == expected);
        }
        let wall = started.elapsed();
        let server_cpu = cpu_time(pid).saturating_sub(cpu_before);
        sampler.abort();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after_rss = rss_kib(pid);
        ttfb.sort();
        after_first.sort();
        let through = if bare_proxy.is_some() { "through examples/bare_proxy" } else { "/v1/chat/stream" };
        println!(
            "concurrency: {streams} concurrent streams {through}; upstream: 1 s silence, then {CHUNKS} chunks over 1 s"
        );
        println!("  complete with every chunk in order: {complete}/{streams}");
        println!("  all done after {:.2?} (slowest stream {:.2?})", wall, slowest);
        println!(
            "  time to first byte p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            pct(&ttfb, 0.5),
            pct(&ttfb, 0.99),
            pct(&ttfb, 1.0)
        );
        println!(
            "  from the first byte to the end (1 s of chunks upstream): p50 {:.2?}, max {:.2?}",
            pct(&after_first, 0.5),
            pct(&after_first, 1.0)
        );
        let since_start =
            |micros: &AtomicU64| Duration::from_micros(micros.load(Ordering::Relaxed).saturating_sub(started_micros));
        println!(
            "  the upstream received the first request after {:.2?}, the last after {:.2?}",
            since_start(&FIRST_REQUEST_MICROS),
            since_start(&LAST_REQUEST_MICROS)
        );
        println!(
            "  the upstream produced every chunk within {:.1} ms of its schedule",
            UPSTREAM_LAG_MICROS.load(Ordering::Relaxed) as f64 / 1000.0
        );
        println!(
            "  server CPU for the run: {:.2?} ({:.0} µs per stream)",
            server_cpu,
            server_cpu.as_secs_f64() * 1e6 / streams as f64
        );
        println!(
            "  server RSS: {:.1} MiB idle, {:.1} MiB peak, {:.1} MiB 2 s after",
            idle_rss as f64 / 1024.0,
            peak.load(Ordering::Relaxed) as f64 / 1024.0,
            after_rss as f64 / 1024.0
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(complete, streams, "every stream completes with every chunk");
    });
}
