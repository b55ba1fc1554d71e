//! One request's account of itself, filled in by the layers it passes through and handed to
//! [`super::Telemetry`] when the request is over.
//!
//! The scope travels as a task-local, like the request id it also carries, so the router can
//! note each upstream call without every layer between the API and the provider passing a
//! handle along. A request's spawned work (a stream's turn) takes the scope with it; the
//! account is closed when the last holder lets go, so a stream's record has its tokens and its
//! full duration.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::Either;

use super::Telemetry;
use super::metrics::CallOutcome;
use crate::auth::Principal;
use crate::metering::budget::Reservation;
use crate::metering::cost::Pico;

tokio::task_local! {
    static CURRENT: Arc<Scope>;
}

/// Run `work` inside `scope` (also what a request's spawned tasks do).
///
/// Not an `async fn`: one would hold `work` twice, as its argument and inside the awaited
/// scope, and every request and stream holds this future while it lives (`-Zprint-type-sizes`:
/// a request's whole state machine was 29.7 KiB around a 14.8 KiB pipeline).
pub fn within<F: std::future::Future>(
    scope: Option<Arc<Scope>>,
    work: F,
) -> impl std::future::Future<Output = F::Output> {
    match scope {
        Some(scope) => Either::Left(CURRENT.scope(scope, work)),
        None => Either::Right(work),
    }
}

/// The scope of the request this task works for, if any.
pub fn current() -> Option<Arc<Scope>> {
    CURRENT.try_with(Arc::clone).ok()
}

pub struct Scope {
    pub id: Arc<str>,
    arrived: Instant,
    arrived_at: SystemTime,
    /// The W3C `traceparent` the client sent: its trace id and span id.
    pub parent: Option<([u8; 16], [u8; 8])>,
    telemetry: Arc<Telemetry>,
    account: Mutex<Account>,
    /// The request's hold on its budgets, settled with its cost when the account closes.
    budget: Mutex<Option<Reservation>>,
}

/// What is known of the request so far.
#[derive(Debug, Default, Clone)]
pub struct Account {
    pub route: &'static str,
    pub method: String,
    pub status: u16,
    pub principal: &'static str,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub key_prefix: Option<String>,
    pub key_id: Option<String>,
    pub agent: Option<String>,
    /// The model the request asked for (or its agent's).
    pub model: Option<String>,
    pub calls: Vec<LlmCall>,
    /// Time spent waiting for upstreams before the response head (for the gateway overhead).
    pub upstream: Duration,
    pub called_upstream: bool,
    /// A streamed answer's first token, from the request's arrival.
    pub first_token: Option<Duration>,
    /// When the response head was ready.
    pub answered: Option<Duration>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// A console file served: counted in metrics, but not an API call for the request log or
    /// traces (a page load would otherwise fill the log with a dozen asset fetches).
    pub static_file: bool,
}

/// One upstream model call.
#[derive(Debug, Clone)]
pub struct LlmCall {
    pub provider: String,
    /// `openai`, `anthropic` or `ollama`: what the GenAI conventions call the provider.
    pub provider_kind: &'static str,
    /// The configured model name (a fallback's when one answered).
    pub model: String,
    /// The id the upstream knows it by.
    pub model_id: String,
    /// From the request's arrival.
    pub started: Duration,
    pub duration: Duration,
    /// Streams: until the first content.
    pub first_token: Option<Duration>,
    pub outcome: CallOutcome,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    /// What the call costs at its model's prices (nothing for a failed attempt).
    pub cost: Pico,
    pub finish_reason: Option<&'static str>,
    pub error: Option<String>,
}

impl Scope {
    /// `method`: the request's, known from the start so that a request whose client leaves
    /// before the answer is still logged with it.
    pub fn new(id: Arc<str>, parent: Option<([u8; 16], [u8; 8])>, telemetry: Arc<Telemetry>, method: &str) -> Scope {
        Scope {
            id,
            arrived: Instant::now(),
            arrived_at: SystemTime::now(),
            parent,
            telemetry,
            account: Mutex::new(Account { method: method.to_string(), ..Account::default() }),
            budget: Mutex::new(None),
        }
    }

    fn account(&self) -> MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long ago the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.arrived.elapsed()
    }

    pub fn arrived_at(&self) -> SystemTime {
        self.arrived_at
    }

    /// The route the request matched, as soon as it is known (log lines name it).
    pub fn note_route(&self, route: &'static str) {
        self.account().route = route;
    }

    /// The request fetches one of the console's files (see [`Account::static_file`]).
    pub fn note_static_file(&self) {
        self.account().static_file = true;
    }

    /// The matched route's pattern, or `unmatched`.
    pub fn route(&self) -> &'static str {
        let route = self.account().route;
        if route.is_empty() { "unmatched" } else { route }
    }

    pub fn note_principal(&self, principal: &Principal) {
        let mut account = self.account();
        match principal {
            Principal::Anonymous => account.principal = "anonymous",
            Principal::Admin => account.principal = "admin",
            Principal::User(user) => {
                account.principal = "user";
                account.user_id = Some(user.user_id.clone());
            }
            Principal::Tenant(tenant) => {
                account.principal = "tenant";
                account.tenant_id = Some(tenant.tenant_id.clone());
                account.key_prefix = Some(tenant.key_prefix.clone());
                account.key_id = Some(tenant.key_id.clone());
            }
        }
    }

    pub fn note_agent(&self, agent: Option<&str>, model: &str) {
        let mut account = self.account();
        account.agent = agent.map(str::to_string);
        account.model = Some(model.to_string());
    }

    /// The tenant the request is for, for per-tenant metric labels.
    pub fn tenant(&self) -> Option<String> {
        self.account().tenant_id.clone()
    }

    /// The client waited `waited` for an upstream before its response head could be written: a
    /// plain call's whole duration, a stream's time to its first content. What is left of the
    /// time to the head is ARES' own (`ares_gateway_overhead_seconds`).
    pub fn note_wait(&self, waited: Duration) {
        let mut account = self.account();
        account.called_upstream = true;
        if account.answered.is_none() {
            account.upstream += waited;
        }
    }

    /// An upstream call ended (a stream's when the stream did).
    pub fn note_call(&self, call: LlmCall) {
        let metrics = &self.telemetry.metrics;
        metrics.llm_call(&call.provider, &call.model, call.outcome, call.duration);
        if let Some(first) = call.first_token {
            metrics.llm_first_token(&call.provider, &call.model, first);
        }
        let mut account = self.account();
        if call.input_tokens + call.output_tokens > 0 {
            metrics.llm_tokens(
                &call.provider,
                &call.model,
                call.input_tokens,
                call.output_tokens,
                account.tenant_id.as_deref(),
            );
        }
        if let (None, Some(first)) = (account.first_token, call.first_token) {
            account.first_token = Some(call.started + first);
        }
        account.calls.push(call);
    }

    /// Keep the request's budget reservation until it ends.
    pub fn hold_budget(&self, reservation: Reservation) {
        *self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reservation);
    }

    /// What its budgets have left after what the request has cost so far, if it holds any.
    pub fn budget_remaining(&self) -> Option<u64> {
        let spent = self.cost().micros();
        self.budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(|r| r.remaining_after(spent))
    }

    /// The tenant and API key the request is for, if a tenant's.
    pub fn tenant_and_key(&self) -> Option<(String, Option<String>)> {
        let account = self.account();
        Some((account.tenant_id.clone()?, account.key_id.clone()))
    }

    /// Whether the request has called an upstream model.
    pub fn called_upstream(&self) -> bool {
        self.account().called_upstream
    }

    /// What the request's upstream calls have cost so far.
    pub fn cost(&self) -> Pico {
        self.account().calls.iter().fold(Pico::default(), |total, call| total + call.cost)
    }

    /// The provider of the latest upstream call, for log lines about the request.
    pub fn last_provider(&self) -> Option<String> {
        self.account().calls.last().map(|c| c.provider.clone())
    }

    /// The response head is ready: `status`, and the error it carries if any. Returns the time
    /// the client waited for upstreams, if the request called one.
    pub fn note_answer(
        &self,
        route: &'static str,
        method: &str,
        status: u16,
        error: Option<(&str, String)>,
    ) -> Option<Duration> {
        let mut account = self.account();
        account.route = route;
        if account.method != method {
            account.method = method.to_string();
        }
        account.status = status;
        account.answered = Some(self.arrived.elapsed());
        if let Some((code, message)) = error {
            account.error_code = Some(code.to_string());
            account.error = Some(message);
        }
        account.called_upstream.then_some(account.upstream)
    }

    /// A failure after the response head (a stream that broke), unless one is already noted.
    pub fn note_late_error(&self, code: &str, message: &str) {
        let mut account = self.account();
        if account.error_code.is_none() {
            account.error_code = Some(code.to_string());
            account.error = Some(message.to_string());
        }
    }
}

/// What the request log and `ares_http_requests_total` say of a request that ended without an
/// answer: its handler was dropped because the client closed the connection (nginx's 499).
pub const CLIENT_CLOSED_STATUS: u16 = 499;
pub const CLIENT_CLOSED_CODE: &str = "CLIENT_CLOSED_REQUEST";

impl Drop for Scope {
    fn drop(&mut self) {
        let mut account = std::mem::take(&mut *self.account());
        if account.status == 0 {
            account.status = CLIENT_CLOSED_STATUS;
            account.error_code = Some(CLIENT_CLOSED_CODE.to_string());
            account.error = Some("The connection closed before the answer was ready".to_string());
            let metrics = &self.telemetry.metrics;
            let tenant = if metrics.per_tenant() { account.tenant_id.as_deref() } else { None };
            let route = if account.route.is_empty() { crate::api::UNMATCHED } else { account.route };
            metrics.http_request(route, &account.method, CLIENT_CLOSED_STATUS, self.arrived.elapsed(), tenant);
        }
        let budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(reservation) = budget {
            let cost = account
                .calls
                .iter()
                .filter(|c| c.outcome == CallOutcome::Ok)
                .fold(Pico::default(), |total, call| total + call.cost);
            reservation.settle(cost.micros(), crate::clock::now_unix());
        }
        self.telemetry.close(self, account, self.arrived.elapsed());
    }
}

/// A W3C `traceparent` header's trace id and parent span id (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, _flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    hex::decode_to_slice(span, &mut span_id).ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_and_invalid_ones_ignored() {
        let parsed = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(hex::encode(parsed.0), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(parsed.1), "00f067aa0ba902b7");
        assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("garbage").is_none());
    }
}
