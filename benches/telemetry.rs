//! What one request's telemetry costs the server: the metrics a chat request records alone; the
//! per-request account (`telemetry::Scope`) with the route, the caller, one upstream call and
//! the answer noted, the metrics those record, and the account closed into a cost rollup entry
//! and (with the request log on) a request-log record — against the same loop doing nothing,
//! in the same run.
//!
//! Measured on one thread, as a request's task pays it: nanoseconds per request, median of
//! samples, for the request log off (`request_log_days = 0`: metrics and cost rollups only)
//! and on (the record is built and buffered; the buffer is handed to the store writer every
//! 1,000 requests, as the 50 ms flush would at 20k requests/s, and the writer's commits run on
//! its own thread, as in the server).
//!
//! `cargo bench --bench telemetry` (5 samples of 200,000 requests per mode); without `--bench`
//! or with `--test`, a smoke run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ares::auth::{Principal, TenantPrincipal};
use ares::metering::TenantTier;
use ares::metering::cost::Pico;
use ares::store::{DB_FILE, MigrationPolicy, Store};
use ares::telemetry::Telemetry;
use ares::telemetry::metrics::CallOutcome;
use ares::telemetry::scope::{LlmCall, Scope};

fn telemetry(request_log_days: u32) -> Arc<Telemetry> {
    let toml = format!("[observability]\nrequest_log_days = {request_log_days}\n");
    let env = |_: &str| None;
    let loaded = ares::config::load_str(&toml, "bench.toml", &env).expect("a valid bench config");
    Arc::new(Telemetry::new(&loaded.config))
}

/// Only the metrics a chat request records (request counter and duration, the upstream call's
/// counter, duration and tokens, the gateway overhead): what "recording a metric" costs.
fn metrics_only(telemetry: &Arc<Telemetry>) {
    let metrics = &telemetry.metrics;
    metrics.llm_call("mock", "fast", CallOutcome::Ok, Duration::from_micros(80));
    metrics.llm_tokens("mock", "fast", 20, 8, None);
    metrics.http_request("/v1/chat", "POST", 200, Duration::from_micros(120), None);
    metrics.gateway_overhead(Duration::from_micros(40));
}

/// One request's bookkeeping, as the pipeline, the router and the handler do it.
fn one_request(telemetry: &Arc<Telemetry>, principal: &Principal, id: Arc<str>) {
    let started = Instant::now();
    let scope = Arc::new(Scope::new(id, None, telemetry.clone(), "POST"));
    scope.note_route("/v1/chat");
    scope.note_principal(principal);
    scope.note_agent(Some("product"), "fast");
    scope.note_wait(Duration::from_micros(80));
    scope.note_call(LlmCall {
        provider: "mock".into(),
        provider_kind: "openai",
        model: "fast".into(),
        model_id: "mock-model".into(),
        started: Duration::from_micros(20),
        duration: Duration::from_micros(80),
        first_token: None,
        outcome: CallOutcome::Ok,
        input_tokens: 20,
        output_tokens: 8,
        cached_input_tokens: 0,
        cost: Pico(130_000_000),
        finish_reason: Some("stop"),
        error: None,
    });
    let waited = scope.note_answer("/v1/chat", "POST", 200, None);
    let metrics = &telemetry.metrics;
    metrics.http_request("/v1/chat", "POST", 200, started.elapsed(), None);
    if let Some(waited) = waited {
        metrics.gateway_overhead(started.elapsed().saturating_sub(waited));
    }
    drop(scope);
}

fn sample(mode: &str, telemetry: &Arc<Telemetry>, store: &Store, requests: usize) -> Duration {
    let principal = Principal::Tenant(TenantPrincipal {
        tenant_id: "01a23c09-93a3-71ac-b0e6-087cb458e186".into(),
        tenant_name: "acme".into(),
        tier: TenantTier::Enterprise,
        key_id: "01a23c09-9405-766d-a6d2-09ddb84f278f".into(),
        key_prefix: "ares_db63b065".into(),
    });
    let ids: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("req-{i:08}"))).collect();
    let started = Instant::now();
    for i in 0..requests {
        let id = ids[i % ids.len()].clone();
        match mode {
            "nothing" => drop(std::hint::black_box((id, &principal))),
            "metrics only" => {
                metrics_only(telemetry);
                drop(id);
            }
            _ => one_request(telemetry, &principal, id),
        }
        if i % 1000 == 999 {
            telemetry.flush_detached(store);
        }
    }
    started.elapsed() / requests as u32
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let (samples, requests) = if full { (5, 200_000) } else { (1, 2_000) };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Apply).unwrap();
    store.set_sync_interval(Duration::from_millis(50));
    let modes: [(&str, Arc<Telemetry>); 4] = [
        ("nothing", telemetry(0)),
        ("metrics only", telemetry(0)),
        ("account + metrics + costs (request log off)", telemetry(0)),
        ("account + metrics + costs + request log", telemetry(14)),
    ];
    let mut results: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    // Interleaved, so drift on a shared machine hits every mode alike.
    for _ in 0..samples {
        for (i, (mode, telemetry)) in modes.iter().enumerate() {
            results[i].push(sample(mode, telemetry, &store, requests));
        }
    }
    println!("telemetry per request ({samples} samples of {requests} requests, median):");
    for ((mode, _), mut times) in modes.iter().zip(results) {
        times.sort();
        println!("  {mode:<44} {:>7.0} ns", times[times.len() / 2].as_nanos() as f64);
    }
    store.close();
}
