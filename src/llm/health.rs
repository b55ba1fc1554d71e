//! What the gateway knows about one deployment (a provider serving one model id): its circuit
//! breaker and the requests in flight to it. Shared by every model that names the same
//! provider and model id, so one dead upstream is noticed once, whichever model reaches it.
//!
//! The breaker counts consecutive failures of the kind a retry could cure (connection
//! failures, timeouts, 408/429/5xx); `breaker_failures` of them open the circuit and the
//! deployment gets no traffic for `breaker_cooldown_secs`. Then one trial request is let
//! through (half-open): its success closes the circuit, its failure opens it for another
//! cooldown. Answers that prove the upstream alive but the request wrong (400, 401, 404, …)
//! are neither: they never open a circuit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The breaker's state, as `/api/admin/providers` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// A circuit opened or closed: logged here, written to the audit log by whoever listens.
#[derive(Debug, Clone)]
pub struct CircuitChange {
    pub provider: String,
    pub model_id: String,
    pub opened: bool,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// Who hears of circuit changes (the app, which writes them to the audit log). Called on the
/// request's task, so it must only queue work.
pub type CircuitChanges = Arc<dyn Fn(CircuitChange) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub cooldown: Duration,
}

#[derive(Debug)]
struct State {
    circuit: Circuit,
    consecutive_failures: u32,
    /// While open: when a trial may go through.
    open_until: Option<Instant>,
    /// The same moment in Unix seconds, for the admin view.
    retry_at_unix: Option<i64>,
    /// Half-open: whether the one trial request is out.
    trial_out: bool,
    last_error: Option<String>,
    last_failure_unix: Option<i64>,
}

/// A snapshot for `/api/admin/providers`.
#[derive(Debug, Clone)]
pub struct HealthView {
    pub circuit: Circuit,
    pub consecutive_failures: u32,
    pub in_flight: u32,
    pub last_error: Option<String>,
    pub last_failure_unix: Option<i64>,
    pub retry_at_unix: Option<i64>,
}

pub struct Health {
    provider: String,
    model_id: String,
    policy: BreakerPolicy,
    state: Mutex<State>,
    in_flight: AtomicU32,
    changes: Option<CircuitChanges>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("provider", &self.provider)
            .field("model_id", &self.model_id)
            .finish_non_exhaustive()
    }
}

impl Health {
    pub fn new(provider: &str, model_id: &str, policy: BreakerPolicy, changes: Option<CircuitChanges>) -> Health {
        Health {
            provider: provider.to_string(),
            model_id: model_id.to_string(),
            policy,
            state: Mutex::new(State {
                circuit: Circuit::Closed,
                consecutive_failures: 0,
                open_until: None,
                retry_at_unix: None,
                trial_out: false,
                last_error: None,
                last_failure_unix: None,
            }),
            in_flight: AtomicU32::new(0),
            changes,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it: every write is whole.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn policy(&self) -> BreakerPolicy {
        self.policy
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a request could be sent now (without taking the half-open trial).
    pub fn is_available(&self) -> bool {
        let state = self.state();
        match state.circuit {
            Circuit::Closed => true,
            Circuit::Open => state.open_until.is_none_or(|until| Instant::now() >= until),
            Circuit::HalfOpen => !state.trial_out,
        }
    }

    /// Take a permit to send one request, or `None` while the circuit refuses traffic.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.state();
        match state.circuit {
            Circuit::Closed => {}
            Circuit::Open => {
                if state.open_until.is_some_and(|until| Instant::now() < until) {
                    return None;
                }
                state.circuit = Circuit::HalfOpen;
                state.trial_out = true;
                tracing::info!(provider = %self.provider, model = %self.model_id, "circuit half-open: sending a trial request");
            }
            Circuit::HalfOpen => {
                if state.trial_out {
                    return None;
                }
                state.trial_out = true;
            }
        }
        drop(state);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Permit { health: self.clone(), settled: false })
    }

    pub fn view(&self) -> HealthView {
        let state = self.state();
        HealthView {
            circuit: state.circuit,
            consecutive_failures: state.consecutive_failures,
            in_flight: self.in_flight(),
            last_error: state.last_error.clone(),
            last_failure_unix: state.last_failure_unix,
            retry_at_unix: state.retry_at_unix,
        }
    }

    fn succeeded(&self) {
        let mut state = self.state();
        let was = state.circuit;
        state.circuit = Circuit::Closed;
        state.consecutive_failures = 0;
        state.open_until = None;
        state.retry_at_unix = None;
        state.trial_out = false;
        drop(state);
        if was != Circuit::Closed {
            tracing::info!(provider = %self.provider, model = %self.model_id, "circuit closed: the upstream answered");
            self.announce(false, 0, None);
        }
    }

    fn failed(&self, error: &str) {
        let mut state = self.state();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.last_error = Some(error.to_string());
        state.last_failure_unix = Some(crate::clock::now_unix());
        let opens = match state.circuit {
            Circuit::Closed => state.consecutive_failures >= self.policy.failures,
            // The trial failed, or a request admitted before the circuit opened did.
            Circuit::HalfOpen | Circuit::Open => true,
        };
        if !opens {
            return;
        }
        let was = state.circuit;
        state.circuit = Circuit::Open;
        state.trial_out = false;
        state.open_until = Some(Instant::now() + self.policy.cooldown);
        let cooldown = i64::try_from(self.policy.cooldown.as_secs()).unwrap_or(i64::MAX);
        state.retry_at_unix = Some(crate::clock::now_unix().saturating_add(cooldown));
        let failures = state.consecutive_failures;
        drop(state);
        if was != Circuit::Open {
            tracing::warn!(
                provider = %self.provider, model = %self.model_id, consecutive_failures = failures,
                cooldown_secs = self.policy.cooldown.as_secs(), "circuit opened: {error}"
            );
            self.announce(true, failures, Some(error.to_string()));
        }
    }

    /// The upstream answered but refused the request (4xx): alive, so a half-open circuit
    /// closes, but the failure count is not reset by a request that never really ran.
    fn answered(&self) {
        let half_open = self.state().circuit == Circuit::HalfOpen;
        if half_open {
            self.succeeded();
        }
    }

    /// A request that ended without an outcome (the client left): free the trial slot.
    fn abandoned(&self) {
        let mut state = self.state();
        if state.circuit == Circuit::HalfOpen {
            state.trial_out = false;
        }
    }

    fn announce(&self, opened: bool, consecutive_failures: u32, last_error: Option<String>) {
        if let Some(changes) = &self.changes {
            changes(CircuitChange {
                provider: self.provider.clone(),
                model_id: self.model_id.clone(),
                opened,
                consecutive_failures,
                last_error,
            });
        }
    }
}

/// One request in flight to a deployment; reports how it went. Dropped unsettled, it counts as
/// abandoned (neither success nor failure).
#[derive(Debug)]
pub struct Permit {
    health: Arc<Health>,
    settled: bool,
}

impl Permit {
    pub fn succeeded(mut self) {
        self.settled = true;
        self.health.succeeded();
    }

    pub fn failed(mut self, error: &str) {
        self.settled = true;
        self.health.failed(error);
    }

    pub fn answered(mut self) {
        self.settled = true;
        self.health.answered();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.health.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.settled {
            self.health.abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Heard = Arc<Mutex<std::collections::VecDeque<CircuitChange>>>;

    fn health(failures: u32, cooldown: Duration) -> (Arc<Health>, Heard) {
        let heard = Heard::default();
        let sink = heard.clone();
        let changes: CircuitChanges = Arc::new(move |change| sink.lock().expect("not poisoned").push_back(change));
        (Arc::new(Health::new("p", "m", BreakerPolicy { failures, cooldown }, Some(changes))), heard)
    }

    fn next(heard: &Heard) -> Option<CircuitChange> {
        heard.lock().expect("not poisoned").pop_front()
    }

    #[test]
    fn consecutive_failures_open_the_circuit_and_a_success_in_between_resets_them() {
        let (health, changes) = health(3, Duration::from_secs(60));
        for _ in 0..2 {
            health.try_acquire().expect("closed").failed("boom");
        }
        health.try_acquire().expect("closed").succeeded();
        assert_eq!(health.view().consecutive_failures, 0);
        for _ in 0..3 {
            health.try_acquire().expect("closed").failed("boom");
        }
        let view = health.view();
        assert_eq!((view.circuit, view.consecutive_failures), (Circuit::Open, 3));
        assert!(view.retry_at_unix.is_some());
        assert!(health.try_acquire().is_none(), "an open circuit refuses traffic");
        assert!(!health.is_available());
        let change = next(&changes).expect("the opening is announced");
        assert!(change.opened && change.last_error.as_deref() == Some("boom"));
        assert!(next(&changes).is_none(), "announced once");
    }

    #[test]
    fn after_the_cooldown_one_trial_goes_through_and_its_success_closes_the_circuit() {
        let (health, changes) = health(1, Duration::ZERO);
        health.try_acquire().expect("closed").failed("down");
        assert_eq!(health.view().circuit, Circuit::Open);
        let trial = health.try_acquire().expect("the cooldown is over: one trial");
        assert_eq!(health.view().circuit, Circuit::HalfOpen);
        assert!(health.try_acquire().is_none(), "only one trial at a time");
        assert_eq!(health.in_flight(), 1);
        trial.succeeded();
        assert_eq!(health.view().circuit, Circuit::Closed);
        assert_eq!(health.in_flight(), 0);
        assert!(next(&changes).is_some_and(|c| c.opened));
        assert!(next(&changes).is_some_and(|c| !c.opened));
    }

    #[test]
    fn a_failed_trial_reopens_and_an_abandoned_one_frees_the_slot() {
        let (health, _changes) = health(1, Duration::ZERO);
        health.try_acquire().expect("closed").failed("down");
        drop(health.try_acquire().expect("trial"));
        assert_eq!(health.view().circuit, Circuit::HalfOpen);
        health.try_acquire().expect("the abandoned trial freed its slot").failed("still down");
        assert_eq!(health.view().circuit, Circuit::Open);
    }

    #[test]
    fn a_refused_request_neither_opens_nor_resets_the_count() {
        let (health, _changes) = health(2, Duration::from_secs(60));
        health.try_acquire().expect("closed").failed("boom");
        for _ in 0..5 {
            health.try_acquire().expect("closed").answered();
        }
        let view = health.view();
        assert_eq!((view.circuit, view.consecutive_failures), (Circuit::Closed, 1));
    }
}
