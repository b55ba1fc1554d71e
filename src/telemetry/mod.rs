//! What the server tells its operator about its own work: Prometheus metrics, the request log,
//! the cost rollups and (when configured) OpenTelemetry traces, all fed from one per-request
//! account ([`scope::Scope`]) so they never disagree about a request.
//!
//! Nothing here is on a request's critical path beyond counting: request-log records and
//! spending are buffered and committed in batches like usage (spending is never dropped; the
//! log's buffer is bounded), and spans are exported in batches from the background.

pub mod metrics;
pub mod otlp;
pub mod scope;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metering::cost::Pico;
use crate::store::costs::{self, CostRecord, Spend};
use crate::store::request_log::{self, RequestLogRecord};
use crate::store::{Error, Store};
use metrics::Metrics;
use scope::{Account, Scope};

/// How often the background prunes the request log, and how much one pass may delete.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
pub const PRUNE_BATCH: usize = 5_000;

/// Records that may wait for the writer; beyond it the newest are dropped (and counted in a
/// WARN line) rather than let a stalled disk grow memory without bound.
const MAX_PENDING_RECORDS: usize = 50_000;

pub struct Telemetry {
    pub metrics: Metrics,
    /// `[observability].request_log_days`; 0 keeps no request log.
    request_log_days: u32,
    pending: Mutex<Vec<RequestLogRecord>>,
    dropped: AtomicU64,
    warned_of_drops: AtomicBool,
    /// Orders records of one millisecond; starts at the start-up time in nanoseconds so that a
    /// restart never reuses a key.
    seq: AtomicU64,
    traces: Option<otlp::Exporter>,
    /// Tenants' requests that called a model, for the cost rollups (kept whatever the request
    /// log's retention).
    spends: Mutex<Vec<Spend>>,
}

fn write(txn: &redb::WriteTransaction, records: &[RequestLogRecord], spends: &[Spend]) -> Result<(), Error> {
    request_log::append_all(txn, records)?;
    costs::record_all(txn, spends)
}

/// A tenant request's spending by model; `None` for requests that called no model or are not
/// a tenant's.
fn spend(scope: &Scope, account: &Account) -> Option<Spend> {
    let tenant_id = account.tenant_id.clone()?;
    let answered: Vec<&scope::LlmCall> =
        account.calls.iter().filter(|c| c.outcome == metrics::CallOutcome::Ok).collect();
    if answered.is_empty() {
        return None;
    }
    let mut models: Vec<(String, CostRecord, Pico)> = Vec::new();
    for call in answered {
        let index = match models.iter().position(|(name, _, _)| *name == call.model) {
            Some(index) => index,
            None => {
                models.push((call.model.clone(), CostRecord { requests: 1, ..CostRecord::default() }, Pico::default()));
                models.len() - 1
            }
        };
        let (_, record, cost) = &mut models[index];
        record.input_tokens += call.input_tokens;
        record.output_tokens += call.output_tokens;
        record.cached_input_tokens += call.cached_input_tokens;
        *cost += call.cost;
    }
    let mut total = CostRecord { requests: 1, ..CostRecord::default() };
    let mut total_cost = Pico::default();
    let models = models
        .into_iter()
        .map(|(name, mut record, cost)| {
            record.cost_micros = cost.micros();
            total.input_tokens += record.input_tokens;
            total.output_tokens += record.output_tokens;
            total.cached_input_tokens += record.cached_input_tokens;
            total_cost += cost;
            (name, record)
        })
        .collect();
    total.cost_micros = total_cost.micros();
    let at = scope.arrived_at().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
    Some(Spend { tenant_id, key_id: account.key_id.clone(), at, total, models })
}

impl Telemetry {
    pub fn new(config: &crate::config::Config) -> Telemetry {
        let start_nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Telemetry {
            metrics: Metrics::new(config.metrics.per_tenant),
            request_log_days: config.observability.request_log_days,
            pending: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            warned_of_drops: AtomicBool::new(false),
            seq: AtomicU64::new(start_nanos),
            traces: config.observability.otlp_endpoint.as_deref().and_then(otlp::Exporter::new),
            spends: Mutex::new(Vec::new()),
        }
    }

    pub fn request_log_enabled(&self) -> bool {
        self.request_log_days > 0
    }

    pub fn traces(&self) -> Option<&otlp::Exporter> {
        self.traces.as_ref()
    }

    /// A request's account is complete (`total`: from arrival until its last holder let go).
    fn close(&self, scope: &Scope, account: Account, total: Duration) {
        if account.static_file && account.status < 400 {
            return;
        }
        if let Some(traces) = &self.traces {
            traces.record(scope, &account, total);
        }
        if let Some(spend) = spend(scope, &account) {
            self.spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(spend);
        }
        if !self.request_log_enabled() {
            return;
        }
        let record = self.record(scope, account, total);
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING_RECORDS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.warned_of_drops.swap(true, Ordering::Relaxed) {
                tracing::warn!("the request log is dropping records: the store is not keeping up with writes");
            }
            return;
        }
        pending.push(record);
    }

    fn record(&self, scope: &Scope, account: Account, total: Duration) -> RequestLogRecord {
        let at_ms = scope.arrived_at().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let answered = account.calls.iter().rev().find(|c| c.outcome == metrics::CallOutcome::Ok);
        let (model, provider) = match answered {
            Some(call) => (Some(call.model.clone()), Some(call.provider.clone())),
            None => (account.model.clone(), account.calls.last().map(|c| c.provider.clone())),
        };
        let ok_calls = account.calls.iter().filter(|c| c.outcome == metrics::CallOutcome::Ok);
        let (input_tokens, output_tokens, cached_input_tokens, cost) =
            ok_calls.fold((0, 0, 0, Pico::default()), |(i, o, c, cost), call| {
                (i + call.input_tokens, o + call.output_tokens, c + call.cached_input_tokens, cost + call.cost)
            });
        RequestLogRecord {
            at_ms,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            request_id: scope.id.to_string(),
            route: account.route.to_string(),
            method: account.method,
            status: account.status,
            duration_us: total.as_micros() as u64,
            principal: if account.principal.is_empty() { "anonymous" } else { account.principal }.to_string(),
            tenant_id: account.tenant_id,
            user_id: account.user_id,
            key_prefix: account.key_prefix,
            agent: account.agent,
            model,
            provider,
            attempts: account.calls.len() as u32,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cost_micros: cost.micros(),
            ttft_us: account.first_token.map(|d| d.as_micros() as u64),
            error_code: account.error_code,
            error: account.error,
        }
    }

    fn take(&self) -> (Vec<RequestLogRecord>, Vec<Spend>) {
        let records = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let spends = std::mem::take(&mut *self.spends.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        (records, spends)
    }

    /// Queue the buffered records and spending as one write job, without waiting.
    pub fn flush_detached(&self, store: &Store) {
        self.report_drops();
        let (records, spends) = self.take();
        if !records.is_empty() || !spends.is_empty() {
            store.write_detached(move |txn| write(txn, &records, &spends));
        }
    }

    /// Commit what is buffered and everything queued before it; for reads of the log or of
    /// spending.
    pub async fn flush(&self, store: &Store) -> Result<(), Error> {
        let (records, spends) = self.take();
        if records.is_empty() && spends.is_empty() {
            return store.flush().await;
        }
        store.write(move |txn| write(txn, &records, &spends)).await
    }

    fn report_drops(&self) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "request log records were dropped while the store fell behind");
            self.warned_of_drops.store(false, Ordering::Relaxed);
        }
    }

    /// Delete one bounded batch of records older than the retention; returns how many went.
    pub async fn prune(&self, store: &Store, now_ms: i64) -> Result<usize, Error> {
        if !self.request_log_enabled() {
            return Ok(0);
        }
        let cutoff = now_ms - i64::from(self.request_log_days) * 86_400_000;
        store.write(move |txn| request_log::prune(txn, cutoff, PRUNE_BATCH)).await
    }
}
