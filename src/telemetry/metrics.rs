//! The Prometheus families `GET /metrics` serves, with the names operators' dashboards use.
//!
//! One registry per [`crate::app::App`] rather than the process-wide `metrics` recorder: a
//! process may run several servers (the tests do, and so could an embedding program), and each
//! must count only its own traffic. The `prometheus` crate also brings the standard `process_*`
//! collector (memory, CPU, open fds, start time) that the facade's exporter does not.
//!
//! Recording is a label lookup and an atomic add (measured in `benches/governed.rs`); no label
//! carries a tenant, user or key id unless `[metrics] per_tenant = true`, so the number of
//! series stays bounded by routes × statuses and the configured providers and models.

use std::time::Duration;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Request latencies, from a cached answer to a slow model.
const HTTP_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Model calls and their first tokens.
const LLM_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];
/// What ARES adds to a chat: tens of microseconds when all is well.
const OVERHEAD_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
/// Store commits: sub-millisecond relaxed commits to fsyncs on a slow disk.
const COMMIT_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
const SEARCH_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// How one upstream model call ended, as `ares_llm_requests_total{outcome}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// A timeout, before the answer or its first token.
    Timeout,
    /// The upstream said 429.
    RateLimited,
    /// Unreachable, a 5xx, or an answer that could not be read: the upstream failed.
    UpstreamError,
    /// The upstream refused the request (400, 401, 404, …): retrying would not help.
    Rejected,
    /// The client went away during a stream.
    Cancelled,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Timeout => "timeout",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::UpstreamError => "upstream_error",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Cancelled => "cancelled",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    per_tenant: bool,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    llm_requests: IntCounterVec,
    llm_duration: HistogramVec,
    llm_first_token: HistogramVec,
    llm_tokens: IntCounterVec,
    gateway_overhead: Histogram,
    quota_rejections: IntCounterVec,
    rate_limited: IntCounter,
    commit_duration: Histogram,
    commit_batch: Histogram,
    rag_search: HistogramVec,
    deploys: IntCounterVec,
}

impl Metrics {
    /// The families, registered; `per_tenant` adds a `tenant` label to the request and token
    /// counters (`[metrics] per_tenant`).
    pub fn new(per_tenant: bool) -> Metrics {
        let registry = Registry::new();
        let tenant_labels = |labels: &[&'static str]| -> Vec<&'static str> {
            let mut labels = labels.to_vec();
            if per_tenant {
                labels.push("tenant");
            }
            labels
        };
        let http_requests = counter_vec(
            &registry,
            "ares_http_requests_total",
            "API requests answered, by route pattern, method and status.",
            &tenant_labels(&["route", "method", "status"]),
        );
        let http_duration = histogram_vec(
            &registry,
            "ares_http_request_duration_seconds",
            "Time from a request's arrival to its response head (a stream's first event), by route pattern.",
            HTTP_BUCKETS,
            &["route"],
        );
        let llm_requests = counter_vec(
            &registry,
            "ares_llm_requests_total",
            "Upstream model calls, retries and fallbacks included, by provider, model and outcome.",
            &["provider", "model", "outcome"],
        );
        let llm_duration = histogram_vec(
            &registry,
            "ares_llm_request_duration_seconds",
            "Duration of upstream model calls (a stream's until its end).",
            LLM_BUCKETS,
            &["provider", "model"],
        );
        let llm_first_token = histogram_vec(
            &registry,
            "ares_llm_time_to_first_token_seconds",
            "Time from a streamed upstream call's start to its first content.",
            LLM_BUCKETS,
            &["provider", "model"],
        );
        let llm_tokens = counter_vec(
            &registry,
            "ares_llm_tokens_total",
            "Tokens of answered upstream calls, by direction (input|output).",
            &tenant_labels(&["provider", "model", "direction"]),
        );
        let gateway_overhead = histogram(
            &registry,
            "ares_gateway_overhead_seconds",
            "Time a request that called a model spent in ARES rather than waiting for the upstream, up to its response head.",
            OVERHEAD_BUCKETS,
        );
        let quota_rejections = counter_vec(
            &registry,
            "ares_quota_rejections_total",
            "Requests refused with 429 by a tenant's or user's quota, by tier and which limit.",
            &["tier", "reason"],
        );
        let http_in_flight = IntGauge::with_opts(Opts::new(
            "ares_http_requests_in_flight",
            "Requests whose head has arrived and whose answer is not yet complete (an open stream counts until it ends).",
        ))
        .unwrap_or_else(|_| unreachable_metric());
        register(&registry, http_in_flight.clone());
        let rate_limited = IntCounter::with_opts(Opts::new(
            "ares_rate_limited_total",
            "Requests refused with 429 by the per-address rate limit ([server].rate_limit_per_second).",
        ))
        .unwrap_or_else(|_| unreachable_metric());
        register(&registry, rate_limited.clone());
        let commit_duration = histogram(
            &registry,
            "ares_store_commit_duration_seconds",
            "Time of each store commit: running its batch of writes, committing and (if durable) syncing.",
            COMMIT_BUCKETS,
        );
        let commit_batch = histogram(
            &registry,
            "ares_store_commit_batch_size",
            "Writes committed together in one store transaction.",
            BATCH_BUCKETS,
        );
        let rag_search = histogram_vec(
            &registry,
            "ares_rag_search_duration_seconds",
            "RAG searches, by strategy (semantic, bm25, fuzzy, hybrid).",
            SEARCH_BUCKETS,
            &["strategy"],
        );
        let deploys = counter_vec(
            &registry,
            "ares_deploys_total",
            "Deployments that finished, by target and final status.",
            &["target", "status"],
        );
        register(&registry, prometheus::process_collector::ProcessCollector::for_self());
        Metrics {
            registry,
            per_tenant,
            http_requests,
            http_duration,
            http_in_flight,
            llm_requests,
            llm_duration,
            llm_first_token,
            llm_tokens,
            gateway_overhead,
            quota_rejections,
            rate_limited,
            commit_duration,
            commit_batch,
            rag_search,
            deploys,
        }
    }

    /// Whether the request and token counters carry a `tenant` label.
    pub fn per_tenant(&self) -> bool {
        self.per_tenant
    }

    /// One answered API request; `tenant` only counts with `per_tenant`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration, tenant: Option<&str>) {
        let status = status_label(status);
        let counter = if self.per_tenant {
            self.http_requests.with_label_values(&[route, method, &status, tenant.unwrap_or("")])
        } else {
            self.http_requests.with_label_values(&[route, method, &status])
        };
        counter.inc();
        self.http_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// What the HTTP layer moves as requests arrive and their answers end.
    pub fn http_in_flight(&self) -> &IntGauge {
        &self.http_in_flight
    }

    /// One upstream call attempt.
    pub fn llm_call(&self, provider: &str, model: &str, outcome: CallOutcome, elapsed: Duration) {
        self.llm_requests.with_label_values(&[provider, model, outcome.as_str()]).inc();
        self.llm_duration.with_label_values(&[provider, model]).observe(elapsed.as_secs_f64());
    }

    pub fn llm_first_token(&self, provider: &str, model: &str, elapsed: Duration) {
        self.llm_first_token.with_label_values(&[provider, model]).observe(elapsed.as_secs_f64());
    }

    pub fn llm_tokens(&self, provider: &str, model: &str, input: u64, output: u64, tenant: Option<&str>) {
        for (direction, count) in [("input", input), ("output", output)] {
            let counter = if self.per_tenant {
                self.llm_tokens.with_label_values(&[provider, model, direction, tenant.unwrap_or("")])
            } else {
                self.llm_tokens.with_label_values(&[provider, model, direction])
            };
            counter.inc_by(count);
        }
    }

    pub fn gateway_overhead(&self, overhead: Duration) {
        self.gateway_overhead.observe(overhead.as_secs_f64());
    }

    pub fn quota_rejected(&self, tier: &str, reason: &str) {
        self.quota_rejections.with_label_values(&[tier, reason]).inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub fn store_commit(&self, elapsed: Duration, batch: usize) {
        self.commit_duration.observe(elapsed.as_secs_f64());
        self.commit_batch.observe(batch as f64);
    }

    pub fn rag_search(&self, strategy: &str, elapsed: Duration) {
        self.rag_search.with_label_values(&[strategy]).observe(elapsed.as_secs_f64());
    }

    pub fn deploy_finished(&self, target: &str, status: &str) {
        self.deploys.with_label_values(&[target, status]).inc();
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "rendering metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Statuses as label values, without allocating for the common ones.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    let common = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => return status.to_string().into(),
    };
    common.into()
}

// Registration fails only for an invalid name or a duplicate, both fixed in this file (and
// covered by the test below); a failure there must not take the server down.

fn unreachable_metric<T>() -> T {
    panic!("a metric defined in telemetry/metrics.rs is invalid")
}

fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, collector: C) {
    if let Err(e) = registry.register(Box::new(collector)) {
        tracing::warn!(error = %e, "registering a metric failed");
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric());
    register(registry, counter.clone());
    counter
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let histogram = HistogramVec::new(opts, labels).unwrap_or_else(|_| unreachable_metric());
    register(registry, histogram.clone());
    histogram
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let histogram = Histogram::with_opts(opts).unwrap_or_else(|_| unreachable_metric());
    register(registry, histogram.clone());
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_and_renders_with_its_labels() {
        for per_tenant in [false, true] {
            let metrics = Metrics::new(per_tenant);
            metrics.http_request("/v1/chat", "POST", 200, Duration::from_millis(3), Some("t1"));
            metrics.llm_call("mock", "m", CallOutcome::Ok, Duration::from_millis(30));
            metrics.llm_tokens("mock", "m", 10, 5, Some("t1"));
            let text = metrics.render();
            assert!(text.contains("# TYPE ares_http_requests_total counter"), "{text}");
            assert!(text.contains("# TYPE ares_gateway_overhead_seconds histogram"), "{text}");
            assert_eq!(text.contains("tenant=\"t1\""), per_tenant, "{text}");
            assert!(text.contains("process_start_time_seconds"), "{text}");
        }
    }

    #[test]
    fn every_status_is_its_own_label_value() {
        assert_eq!(status_label(418), "418");
        assert_eq!(status_label(201), "201");
    }
}
