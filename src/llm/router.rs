//! Every model call goes through here: which deployment serves it, what is retried, when the
//! model's fallbacks take over. A call survives any single upstream failure while one healthy
//! deployment (of the model or of a fallback) remains.
//!
//! - **Choice**: among the deployments whose circuit lets traffic through, the one with the
//!   fewest requests in flight per unit of weight; ties (the idle case) are broken at random by
//!   weight, so sequential traffic follows the weights and concurrent traffic avoids the slow.
//! - **Retries**: failures a retry could cure (connection failures, timeouts, 408, 429, 5xx)
//!   are retried up to the provider's `max_retries`, on another healthy deployment at once if
//!   there is one, else on the same after an exponential backoff with full jitter (an
//!   upstream's `Retry-After` / `retry-after-ms` is honoured up to `retry_max_ms`). Anything
//!   else (400, 401, 404, …) is the request's fault and is returned at once.
//! - **Fallbacks**: once a model's retries are spent, its `fallbacks` are tried in order, each
//!   with its own retries. A prompt larger than a model's `context_length` skips it.
//! - **Deadline**: the first deployment's `timeout_secs` bounds the whole call, backoffs and
//!   fallbacks included; no retry starts after it.
//! - **Streams** may fail over until their first content has been received: an error, or
//!   silence past `first_token_timeout_secs`, before it is retried like a failed call. After
//!   it the stream is the client's and a failure ends it (no text is ever repeated).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use super::error::LlmError;
use super::health::{Health, Permit};
use super::provider::{Provider, ProviderStream};
use super::types::{ChatRequest, ChatResponse, FinishReason, StreamEvent, Usage, estimate_tokens, usage_of};
use crate::metering::cost::{Pico, Prices};
use crate::telemetry::metrics::CallOutcome;
use crate::telemetry::scope::{self, LlmCall, Scope};

/// One upstream serving a model: a provider and the id it knows the model by.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub provider: Arc<Provider>,
    pub model_id: String,
    pub weight: u32,
    pub health: Arc<Health>,
}

impl Deployment {
    /// `provider/model_id`, as `X-Ares-Served-By` names it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider.name, self.model_id)
    }
}

/// A model as the router tries it: where it is served and how much prompt it takes.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub deployments: Vec<Deployment>,
    pub context_length: Option<u32>,
    /// What its tokens cost (the answering model's prices bill a call, fallbacks included).
    pub prices: Prices,
}

/// A model and its fallbacks, in the order they are tried.
#[derive(Debug, Clone)]
pub struct Route {
    pub candidates: Vec<Candidate>,
}

/// Who answered a call, and after how many upstream requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `provider/model_id`.
    pub by: String,
    pub attempts: u32,
}

/// A stream whose first content has arrived: `first`, then the rest from `events`; `end` is
/// told how it finished.
pub struct OpenStream {
    pub first: StreamEvent,
    pub events: ProviderStream,
    pub end: StreamEnd,
}

/// Who serves an open stream. Holds its deployment's permit until the stream ends, so
/// in-flight counts include open streams and a stream that breaks counts against the circuit.
pub struct StreamEnd {
    pub served: Served,
    /// The serving provider's name, for errors about its stream.
    pub provider: String,
    permit: Permit,
    /// The call, for the request's account: told at the end with its usage.
    attempt: Attempt,
    deployment: Deployment,
    model: String,
    prices: Prices,
    first_token: Duration,
}

impl StreamEnd {
    /// Report how the stream ended: its usage and finish reason when it finished, the error
    /// when it broke.
    pub fn finish(self, outcome: Result<(Usage, FinishReason), &LlmError>) {
        self.attempt.ended(&self.deployment, (&self.model, self.prices), outcome, Some(self.first_token));
        match outcome {
            Ok(_) => self.permit.succeeded(),
            Err(error) if error.is_retryable() => self.permit.failed(&error.to_string()),
            Err(LlmError::ClientGone) => drop(self.permit),
            Err(_) => self.permit.answered(),
        }
    }
}

/// One upstream call as the request's account sees it (nothing when no request is being
/// served, e.g. in benches that call the router directly).
struct Attempt {
    scope: Option<Arc<Scope>>,
    started: std::time::Instant,
    /// From the request's arrival.
    offset: Duration,
}

impl Attempt {
    fn start() -> Attempt {
        let scope = scope::current();
        let offset = scope.as_ref().map(|s| s.elapsed()).unwrap_or_default();
        Attempt { scope, started: std::time::Instant::now(), offset }
    }

    /// The client waited this long for the call before it could be answered.
    fn waited(&self, waited: Duration) {
        if let Some(scope) = &self.scope {
            scope.note_wait(waited);
        }
    }

    /// `model`: the configured model's name and prices.
    fn ended(
        &self,
        deployment: &Deployment,
        (model, prices): (&str, Prices),
        outcome: Result<(Usage, FinishReason), &LlmError>,
        first_token: Option<Duration>,
    ) {
        let Some(scope) = &self.scope else { return };
        let (usage, finish_reason) = match outcome {
            Ok((usage, reason)) => (usage, Some(reason.as_str())),
            Err(_) => (Usage::default(), None),
        };
        scope.note_call(LlmCall {
            provider: deployment.provider.name.clone(),
            provider_kind: deployment.provider.kind.as_str(),
            model: model.to_string(),
            model_id: deployment.model_id.clone(),
            started: self.offset,
            duration: self.started.elapsed(),
            first_token,
            outcome: outcome.err().map_or(CallOutcome::Ok, call_outcome),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            // Failed attempts bill nothing (as they count no tokens).
            cost: if outcome.is_ok() { prices.cost(&usage) } else { Pico::default() },
            finish_reason,
            error: outcome.err().map(cause),
        });
    }
}

/// A call being waited for. Dropped before its answer — the client went away and its handler
/// with it — the call is counted as cancelled, as a stream's is.
struct InFlight<'a> {
    attempt: Option<Attempt>,
    deployment: &'a Deployment,
    candidate: &'a Candidate,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            let candidate = (self.candidate.name.as_str(), self.candidate.prices);
            attempt.ended(self.deployment, candidate, Err(&LlmError::ClientGone), None);
        }
    }
}

/// How a failed call is counted in `ares_llm_requests_total{outcome}`.
fn call_outcome(error: &LlmError) -> CallOutcome {
    match error {
        LlmError::Timeout { .. } => CallOutcome::Timeout,
        LlmError::RateLimited { .. } | LlmError::Upstream { status: 429, .. } => CallOutcome::RateLimited,
        LlmError::ClientGone => CallOutcome::Cancelled,
        error if error.is_retryable() => CallOutcome::UpstreamError,
        _ => CallOutcome::Rejected,
    }
}

/// A failure as traces name it: never the upstream's message, which may quote the prompt.
fn cause(error: &LlmError) -> String {
    match error {
        LlmError::Upstream { status, .. } => format!("HTTP {status}"),
        other => other.to_string(),
    }
}

/// Where one call stands: which candidate and deployment to try next, the attempts made, the
/// deadline and the last failure. [`Plan::next`] hands out attempts (waiting out backoffs);
/// [`Plan::settle`] takes their outcomes.
struct Plan<'a> {
    route: &'a Route,
    candidates: Vec<&'a Candidate>,
    /// The candidate being tried, and how many attempts it has had.
    candidate: usize,
    tries: u32,
    /// Its deployments that failed this call.
    failed: Vec<usize>,
    /// The deployment of the attempt in progress.
    current: usize,
    made: u32,
    deadline: Instant,
    last_error: Option<LlmError>,
}

impl<'a> Plan<'a> {
    fn new(route: &'a Route, request: &ChatRequest) -> Plan<'a> {
        let timeout = route
            .candidates
            .iter()
            .flat_map(|c| c.deployments.first())
            .map(|d| d.provider.policy.timeout)
            .next()
            .unwrap_or(Duration::from_secs(120));
        Plan {
            route,
            candidates: fitting(route, prompt_tokens(request)),
            candidate: 0,
            tries: 0,
            failed: Vec::new(),
            current: 0,
            made: 0,
            deadline: Instant::now() + timeout,
            last_error: None,
        }
    }

    /// The model being tried (valid while an attempt [`Plan::next`] handed out is running).
    fn candidate(&self) -> &'a Candidate {
        self.candidates[self.candidate]
    }

    fn next_candidate(&mut self) {
        self.candidate += 1;
        self.tries = 0;
        self.failed.clear();
    }

    /// The next deployment to try and its permit; `None` when the candidates' retries are spent,
    /// every circuit refuses, or the deadline has passed.
    async fn next(&mut self) -> Option<(&'a Deployment, Permit)> {
        loop {
            let candidate: &'a Candidate = self.candidates.get(self.candidate)?;
            if Instant::now() >= self.deadline {
                return None;
            }
            let retries = candidate.deployments.iter().map(|d| d.provider.policy.max_retries).max().unwrap_or(0);
            if self.tries > retries {
                self.next_candidate();
                continue;
            }
            let Some((index, permit, again)) = pick(candidate, &self.failed) else {
                self.nothing_usable(candidate);
                self.next_candidate();
                continue;
            };
            let deployment = &candidate.deployments[index];
            if again
                && let Some(previous) = &self.last_error
                && !wait(backoff(deployment, self.tries, previous), self.deadline).await
            {
                self.next_candidate();
                continue;
            }
            self.tries += 1;
            self.made += 1;
            self.current = index;
            return Some((deployment, permit));
        }
    }

    /// Take an attempt's outcome: `Some` ends the call (its answer, or an error that retrying
    /// cannot cure), `None` means try again.
    fn settle<T>(&mut self, permit: Permit, outcome: Result<T, LlmError>) -> Option<Result<(T, Served), LlmError>> {
        let deployment = &self.candidates[self.candidate].deployments[self.current];
        match outcome {
            Ok(value) => {
                permit.succeeded();
                Some(Ok((value, Served { by: deployment.label(), attempts: self.made })))
            }
            Err(error) if error.is_retryable() => {
                let scope = scope::current();
                tracing::warn!(
                    request_id = scope.as_ref().map_or("-", |s| &*s.id),
                    route = scope.as_ref().map_or("-", |s| s.route()),
                    provider = %deployment.provider.name,
                    model = %deployment.model_id, attempt = self.made, "upstream call failed: {error}"
                );
                permit.failed(&error.to_string());
                self.failed.push(self.current);
                self.last_error = Some(error);
                None
            }
            Err(error) => {
                permit.answered();
                if let LlmError::Upstream { status: status @ (401 | 403), .. } = &error {
                    tracing::warn!(
                        provider = %deployment.provider.name, model = %deployment.model_id, status,
                        "the upstream refused our credentials: check the provider's api_key_env"
                    );
                }
                Some(Err(error))
            }
        }
    }

    /// Note that `candidate` had no deployment to try, unless something more telling failed.
    fn nothing_usable(&mut self, candidate: &Candidate) {
        if self.last_error.is_some() {
            return;
        }
        let disabled = candidate.deployments.iter().find_map(|d| {
            d.provider
                .disabled_reason()
                .map(|reason| LlmError::Disabled { provider: d.provider.name.clone(), reason: reason.to_string() })
        });
        let all_disabled = candidate.deployments.iter().all(|d| d.provider.disabled_reason().is_some());
        self.last_error = Some(match disabled {
            Some(error) if all_disabled => error,
            _ => LlmError::CircuitOpen { model: candidate.name.clone() },
        });
    }

    /// What to answer when nothing succeeded.
    fn failure(self) -> LlmError {
        let route = self.route;
        self.last_error.unwrap_or_else(|| {
            let name = route.candidates.first().map(|c| c.name.clone()).unwrap_or_default();
            LlmError::CircuitOpen { model: name }
        })
    }
}

/// The candidates worth trying for a prompt of `prompt_tokens`: those whose context fits (or is
/// unknown). If none fits, the model itself, so the upstream says why.
fn fitting(route: &Route, prompt_tokens: u64) -> Vec<&Candidate> {
    let fits = |c: &&Candidate| c.context_length.is_none_or(|limit| prompt_tokens <= u64::from(limit));
    let fitting: Vec<&Candidate> = route.candidates.iter().filter(fits).collect();
    if fitting.is_empty() { route.candidates.iter().take(1).collect() } else { fitting }
}

fn prompt_tokens(request: &ChatRequest) -> u64 {
    request.messages.iter().map(|m| estimate_tokens(&m.content)).sum()
}

/// Pick a deployment and take its permit: deployments that have not failed this call first,
/// then the least loaded per unit of weight, ties at random by weight. `None` when every
/// circuit refuses traffic. The second value says whether the pick already failed this call.
fn pick(candidate: &Candidate, failed: &[usize]) -> Option<(usize, Permit, bool)> {
    // The common case, one deployment: nothing to choose, nothing to allocate.
    if let [only] = candidate.deployments.as_slice() {
        if only.provider.disabled_reason().is_some() {
            return None;
        }
        return only.health.try_acquire().map(|permit| (0, permit, !failed.is_empty()));
    }
    let usable: Vec<usize> = (0..candidate.deployments.len())
        .filter(|i| {
            let d = &candidate.deployments[*i];
            d.provider.disabled_reason().is_none() && d.health.is_available()
        })
        .collect();
    let fresh: Vec<usize> = usable.iter().copied().filter(|i| !failed.contains(i)).collect();
    let (pool, retried) = if fresh.is_empty() { (usable, true) } else { (fresh, false) };
    let mut pool = pool;
    while !pool.is_empty() {
        let index = choose(candidate, &pool);
        if let Some(permit) = candidate.deployments[index].health.try_acquire() {
            return Some((index, permit, retried));
        }
        // Lost a race for a half-open trial: try the others.
        pool.retain(|i| *i != index);
    }
    None
}

fn choose(candidate: &Candidate, pool: &[usize]) -> usize {
    let weight = |i: usize| u64::from(candidate.deployments[i].weight.max(1));
    // One reading of each load: other requests change them while we choose.
    let loads: Vec<(usize, f64)> = pool
        .iter()
        .map(|i| (*i, f64::from(candidate.deployments[*i].health.in_flight()) / weight(*i) as f64))
        .collect();
    let least = loads.iter().map(|(_, load)| *load).fold(f64::INFINITY, f64::min);
    let ties: Vec<usize> = loads.iter().filter(|(_, load)| *load <= least).map(|(i, _)| *i).collect();
    let total: u64 = ties.iter().map(|i| weight(*i)).sum();
    let mut ticket = rand::rng().random_range(0..total.max(1));
    for i in &ties {
        if ticket < weight(*i) {
            return *i;
        }
        ticket -= weight(*i);
    }
    pool[0]
}

/// How long to wait before retrying `deployment` after its `retry`-th failure this call.
fn backoff(deployment: &Deployment, retry: u32, error: &LlmError) -> Duration {
    let policy = &deployment.provider.policy;
    if let Some(asked) = error.retry_after() {
        return asked.min(policy.retry_max);
    }
    let ceiling = policy.retry_initial.saturating_mul(2u32.saturating_pow(retry.min(16))).min(policy.retry_max);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// Wait `delay` unless that passes the deadline; `false` if it would.
async fn wait(delay: Duration, deadline: Instant) -> bool {
    if Instant::now() + delay >= deadline {
        return false;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    true
}

/// Run one call to completion. `request.model` is set to each deployment's model id in turn.
pub async fn complete(route: &Route, request: &mut ChatRequest) -> Result<(ChatResponse, Served), LlmError> {
    let mut plan = Plan::new(route, request);
    while let Some((deployment, permit)) = plan.next().await {
        request.model.clone_from(&deployment.model_id);
        let candidate = plan.candidate();
        let mut in_flight = InFlight { attempt: Some(Attempt::start()), deployment, candidate };
        let call = tokio::time::timeout_at(plan.deadline, deployment.provider.complete(request)).await;
        let outcome = call.unwrap_or_else(|_| Err(LlmError::Timeout { provider: deployment.provider.name.clone() }));
        if let Some(attempt) = in_flight.attempt.take() {
            attempt.waited(attempt.started.elapsed());
            let noted = outcome.as_ref().map(|response| (usage_of(request, response), response.finish_reason));
            attempt.ended(deployment, (&candidate.name, candidate.prices), noted, None);
        }
        if let Some(done) = plan.settle(permit, outcome) {
            return done;
        }
    }
    Err(plan.failure())
}

/// Open a stream: try deployments (retries, fallbacks) until one sends its first content.
/// `request.model` is set to each deployment's model id in turn.
///
/// `hung_up` resolves when the client has gone: the wait for a first token can be long (a
/// model still loading, a queue at the provider), and a client that leaves meanwhile gets its
/// upstream call cancelled at once, its connection closed, rather than at the first token.
/// `Ok(None)` then.
pub async fn open_stream(
    route: &Route,
    request: &mut ChatRequest,
    hung_up: impl Future<Output = ()>,
) -> Result<Option<OpenStream>, LlmError> {
    let mut hung_up = std::pin::pin!(hung_up);
    let mut plan = Plan::new(route, request);
    loop {
        let next = tokio::select! {
            biased;
            () = &mut hung_up => return Ok(None),
            next = plan.next() => next,
        };
        let Some((deployment, permit)) = next else { break };
        let attempt = Attempt::start();
        let outcome = tokio::select! {
            biased;
            () = &mut hung_up => {
                let candidate = plan.candidate();
                attempt.ended(deployment, (&candidate.name, candidate.prices), Err(&LlmError::ClientGone), None);
                // As a stream the client leaves: no verdict on the deployment.
                drop(permit);
                return Ok(None);
            }
            outcome = first_content(deployment, request, plan.deadline) => outcome,
        };
        let first_token = attempt.started.elapsed();
        attempt.waited(first_token);
        // On success the permit goes with the stream, settled when the stream ends.
        let (first, events) = match outcome {
            Ok(opened) => opened,
            Err(error) => {
                let candidate = plan.candidate();
                attempt.ended(deployment, (&candidate.name, candidate.prices), Err(&error), None);
                match plan.settle::<()>(permit, Err(error)) {
                    Some(Err(error)) => return Err(error),
                    _ => continue,
                }
            }
        };
        let end = StreamEnd {
            served: Served { by: deployment.label(), attempts: plan.made },
            provider: deployment.provider.name.clone(),
            permit,
            attempt,
            deployment: deployment.clone(),
            model: plan.candidate().name.clone(),
            prices: plan.candidate().prices,
            first_token,
        };
        return Ok(Some(OpenStream { first, events, end }));
    }
    Err(plan.failure())
}

/// Start `deployment`'s stream and wait for its first event, within `first_token_timeout`
/// and the call's deadline. Dropping the stream on failure closes its connection.
async fn first_content(
    deployment: &Deployment,
    request: &mut ChatRequest,
    deadline: Instant,
) -> Result<(StreamEvent, ProviderStream), LlmError> {
    request.model.clone_from(&deployment.model_id);
    let limit = (Instant::now() + deployment.provider.policy.first_token_timeout).min(deadline);
    let opening = async {
        let mut stream = deployment.provider.open_stream(request).await?;
        match stream.next().await {
            Some(Ok(first)) => Ok((first, stream)),
            Some(Err(error)) => Err(error),
            None => Err(LlmError::Protocol {
                provider: deployment.provider.name.clone(),
                message: "the stream ended before any content".into(),
            }),
        }
    };
    tokio::time::timeout_at(limit, opening)
        .await
        .unwrap_or_else(|_| Err(LlmError::Timeout { provider: deployment.provider.name.clone() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;
    use crate::llm::health::BreakerPolicy;

    fn deployment(name: &str, weight: u32) -> Deployment {
        let config: ProviderConfig = toml::from_str(&format!(
            "name = \"{name}\"\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nretry_initial_ms = 100\nretry_max_ms = 400"
        ))
        .expect("a provider config");
        let provider = Arc::new(Provider::new(&config, &|_: &str| None));
        let policy = BreakerPolicy { failures: 1, cooldown: Duration::from_secs(60) };
        Deployment { provider, model_id: "m".into(), weight, health: Arc::new(Health::new(name, "m", policy, None)) }
    }

    #[test]
    fn idle_deployments_are_chosen_by_weight() {
        let candidate = Candidate {
            name: "x".into(),
            deployments: vec![deployment("a", 3), deployment("b", 1)],
            context_length: None,
            prices: Prices::default(),
        };
        let mut counts = [0u32; 2];
        for _ in 0..4000 {
            let (index, permit, _) = pick(&candidate, &[]).expect("both usable");
            counts[index] += 1;
            drop(permit);
        }
        // 3:1 expected: 3000 ± a generous margin for randomness.
        assert!((2800..=3200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn busy_deployments_are_avoided_and_open_circuits_skipped() {
        let candidate = Candidate {
            name: "x".into(),
            deployments: vec![deployment("a", 1), deployment("b", 1)],
            context_length: None,
            prices: Prices::default(),
        };
        let held = candidate.deployments[0].health.try_acquire().expect("closed");
        for _ in 0..50 {
            let (index, _permit, _) = pick(&candidate, &[]).expect("b is idle");
            assert_eq!(index, 1, "a has a request in flight");
        }
        held.failed("down");
        assert_eq!(pick(&candidate, &[]).map(|(i, _, _)| i), Some(1));
        candidate.deployments[1].health.try_acquire().expect("closed").failed("down");
        assert!(pick(&candidate, &[]).is_none(), "every circuit is open");
    }

    #[test]
    fn a_deployment_that_failed_this_call_is_retried_only_when_nothing_else_is_left() {
        let candidate = Candidate {
            name: "x".into(),
            deployments: vec![deployment("a", 100), deployment("b", 1)],
            context_length: None,
            prices: Prices::default(),
        };
        for _ in 0..20 {
            let (index, _permit, again) = pick(&candidate, &[0]).expect("b is usable");
            assert_eq!((index, again), (1, false));
        }
        let (_, _, again) = pick(&candidate, &[0, 1]).expect("both usable");
        assert!(again, "both failed before: the pick is a retry and waits for its backoff");
    }

    #[test]
    fn backoff_is_jittered_below_the_doubling_ceiling_and_honours_retry_after_up_to_the_cap() {
        let d = deployment("a", 1);
        let error = LlmError::Timeout { provider: "a".into() };
        for retry in 0..6 {
            let ceiling = Duration::from_millis((100u64 << retry).min(400));
            assert!(backoff(&d, retry, &error) <= ceiling);
        }
        let asked = |ms| LlmError::Upstream {
            provider: "a".into(),
            status: 503,
            message: String::new(),
            retry_after_ms: Some(ms),
        };
        assert_eq!(backoff(&d, 0, &asked(250)), Duration::from_millis(250));
        assert_eq!(backoff(&d, 0, &asked(10_000)), Duration::from_millis(400));
    }

    #[test]
    fn a_prompt_too_large_for_a_model_skips_to_a_fallback_that_takes_it() {
        let candidate = |name: &str, context_length| Candidate {
            name: name.into(),
            deployments: vec![deployment(name, 1)],
            context_length,
            prices: Prices::default(),
        };
        let route = Route {
            candidates: vec![candidate("small", Some(50)), candidate("medium", Some(100)), candidate("big", None)],
        };
        let names = |tokens| fitting(&route, tokens).iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(10), ["small", "medium", "big"]);
        assert_eq!(names(80), ["medium", "big"]);
        assert_eq!(names(500), ["big"]);
        let only_small = Route { candidates: vec![candidate("small", Some(50))] };
        assert_eq!(fitting(&only_small, 500).len(), 1, "nothing fits: the model itself, so the upstream says why");
    }
}
