//! OpenTelemetry traces over OTLP/HTTP (JSON encoding), sent only when
//! `[observability].otlp_endpoint` is set: a span per request and a child span per upstream
//! model call, with the GenAI semantic conventions' attributes. Message content is never
//! exported: only names, counts, timings and outcomes.
//!
//! The spans are built from the request's account when it closes and posted in batches from
//! the background. The OpenTelemetry SDK was not used: its batch processor runs its own thread
//! with a blocking HTTP client beside our runtime, for two span shapes we already have the data
//! for; the JSON encoding of OTLP is stable (OTLP 1.x) and small.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use serde_json::{Value, json};

use super::metrics::CallOutcome;
use super::scope::{Account, Scope};

/// Spans waiting for the next export; beyond it new spans are dropped (a receiver that is down
/// must not grow memory).
const MAX_PENDING_SPANS: usize = 20_000;
/// Spans per export request.
const MAX_BATCH: usize = 2_000;

/// How often pending spans are exported.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

pub struct Exporter {
    /// `<otlp_endpoint>/v1/traces`.
    url: reqwest::Url,
    client: reqwest::Client,
    pending: Mutex<Vec<Value>>,
    dropped: AtomicU64,
    /// When an export failure was last logged (one WARN per minute at most).
    last_warning: Mutex<Option<Instant>>,
}

impl Exporter {
    /// `None` (with an error logged) when the endpoint is not a URL; validation refuses that
    /// at start-up, so this only guards against a config built in code.
    pub fn new(endpoint: &str) -> Option<Exporter> {
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
        let url = match reqwest::Url::parse(&url) {
            Ok(url) => url,
            Err(e) => {
                tracing::error!(error = %e, "[observability].otlp_endpoint is not a URL; traces are not exported");
                return None;
            }
        };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
        Some(Exporter {
            url,
            client,
            pending: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    /// Turn a closed request into its spans and queue them.
    pub(super) fn record(&self, scope: &Scope, account: &Account, total: Duration) {
        let spans = spans(scope, account, total);
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() + spans.len() > MAX_PENDING_SPANS {
            self.dropped.fetch_add(spans.len() as u64, Ordering::Relaxed);
            return;
        }
        pending.extend(spans);
    }

    /// Send what is pending, in batches. A batch the receiver refuses is dropped, not retried:
    /// traces are for looking, and a receiver that is down must not hold up the server.
    pub async fn export(&self) {
        loop {
            let batch: Vec<Value> = {
                let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let take = pending.len().min(MAX_BATCH);
                pending.drain(..take).collect()
            };
            if batch.is_empty() {
                break;
            }
            let body = envelope(batch);
            let sent = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
            let problem = match sent {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("the receiver answered HTTP {}", response.status().as_u16())),
                Err(e) => Some(e.to_string()),
            };
            if let Some(problem) = problem {
                self.warn(&problem);
                break;
            }
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.warn(&format!("{dropped} spans were dropped while the receiver was not taking them"));
        }
    }

    fn warn(&self, problem: &str) {
        let mut last = self.last_warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(endpoint = %self.url, "exporting traces failed: {problem}");
        }
    }
}

/// `ExportTraceServiceRequest` for `spans`, from service `ares`.
fn envelope(spans: Vec<Value>) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                attribute("service.name", "ares"),
                attribute("service.version", env!("CARGO_PKG_VERSION")),
            ]},
            "scopeSpans": [{
                "scope": { "name": "ares", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

const SPAN_KIND_SERVER: u8 = 2;
const SPAN_KIND_CLIENT: u8 = 3;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

/// The request's span and one child per model call.
fn spans(scope: &Scope, account: &Account, total: Duration) -> Vec<Value> {
    let mut rng = rand::rng();
    let (trace_id, parent) = match scope.parent {
        Some((trace, span)) => (trace, Some(span)),
        None => (rng.random::<[u8; 16]>(), None),
    };
    let request_span: [u8; 8] = rng.random();
    let arrived = nanos(scope.arrived_at());
    let at = |offset: Duration| (arrived + offset.as_nanos()).to_string();
    let route = if account.route.is_empty() { "unmatched" } else { account.route };
    let mut attributes = vec![
        attribute("http.request.method", &account.method),
        attribute("http.route", route),
        int_attribute("http.response.status_code", i64::from(account.status)),
        attribute("ares.request_id", &scope.id),
    ];
    if let Some(tenant) = &account.tenant_id {
        attributes.push(attribute("ares.tenant_id", tenant));
    }
    if let Some(agent) = &account.agent {
        attributes.push(attribute("ares.agent", agent));
    }
    if let Some(code) = &account.error_code {
        attributes.push(attribute("error.type", code));
    }
    // A server span is an error only for a 5xx: a 4xx is the client's (OpenTelemetry's HTTP
    // conventions), though `error.type` still names it.
    let failed = account.status >= 500;
    let mut request = json!({
        "traceId": hex::encode(trace_id),
        "spanId": hex::encode(request_span),
        "name": format!("{} {}", account.method, route),
        "kind": SPAN_KIND_SERVER,
        "startTimeUnixNano": at(Duration::ZERO),
        "endTimeUnixNano": at(total),
        "attributes": attributes,
        "status": { "code": if failed { STATUS_ERROR } else { STATUS_OK } },
    });
    if let Some(parent) = parent {
        request["parentSpanId"] = Value::String(hex::encode(parent));
    }
    let mut out = vec![request];
    for call in &account.calls {
        let mut attributes = vec![
            attribute("gen_ai.operation.name", "chat"),
            attribute("gen_ai.provider.name", call.provider_kind),
            attribute("gen_ai.request.model", &call.model_id),
            attribute("ares.provider", &call.provider),
            attribute("ares.model", &call.model),
        ];
        if call.outcome == CallOutcome::Ok {
            attributes.push(int_attribute("gen_ai.usage.input_tokens", call.input_tokens as i64));
            attributes.push(int_attribute("gen_ai.usage.output_tokens", call.output_tokens as i64));
            attributes.push(json!({
                "key": "gen_ai.response.finish_reasons",
                "value": { "arrayValue": { "values": call.finish_reason.map(|r| json!({ "stringValue": r })).into_iter().collect::<Vec<_>>() } },
            }));
        } else {
            attributes.push(attribute("error.type", call.outcome.as_str()));
        }
        let mut status = json!({ "code": if call.outcome == CallOutcome::Ok { STATUS_OK } else { STATUS_ERROR } });
        if let Some(error) = &call.error {
            status["message"] = Value::String(error.clone());
        }
        out.push(json!({
            "traceId": hex::encode(trace_id),
            "spanId": hex::encode(rng.random::<[u8; 8]>()),
            "parentSpanId": hex::encode(request_span),
            "name": format!("chat {}", call.model_id),
            "kind": SPAN_KIND_CLIENT,
            "startTimeUnixNano": at(call.started),
            "endTimeUnixNano": at(call.started + call.duration),
            "attributes": attributes,
            "status": status,
        }));
    }
    out
}

fn nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

fn attribute(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

/// OTLP's JSON encoding writes 64-bit integers as strings.
fn int_attribute(key: &str, value: i64) -> Value {
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}
