//! What can go wrong talking to a provider; `ApiError` maps each to its HTTP status.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider is configured but cannot be used (e.g. its key variable is unset).
    #[error("Provider '{provider}' is not available: {reason}")]
    Disabled { provider: String, reason: String },
    #[error("No LLM provider is configured: add a [[providers]] entry to ares.toml")]
    NothingConfigured,
    /// `retry_after_ms`: what the upstream's `Retry-After` / `retry-after-ms` asked for.
    #[error("Provider '{provider}' returned HTTP {status}: {message}")]
    Upstream { provider: String, status: u16, message: String, retry_after_ms: Option<u64> },
    #[error("Rate limit exceeded for provider '{provider}'")]
    RateLimited { provider: String, retry_after_secs: u64, retry_after_ms: Option<u64> },
    #[error("Provider '{provider}' timed out")]
    Timeout { provider: String },
    #[error("Provider '{provider}' is unreachable: {message}")]
    Unreachable { provider: String, message: String },
    #[error("Provider '{provider}' sent an invalid response: {message}")]
    Protocol { provider: String, message: String },
    /// Every deployment of the model and of its fallbacks has an open circuit.
    #[error("Model '{model}' is unavailable: every upstream serving it is failing; retry shortly")]
    CircuitOpen { model: String },
    /// The client went away before the answer was complete (its stream was abandoned).
    #[error("The client disconnected before the answer was complete")]
    ClientGone,
}

impl LlmError {
    /// Whether another attempt (elsewhere, or later) may succeed: the upstream failed, not the
    /// request. These are retried and count against the deployment's circuit; the rest
    /// (400, 401, 403, 404, 422, …) are returned at once.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Timeout { .. }
            | LlmError::Unreachable { .. }
            | LlmError::Protocol { .. }
            | LlmError::RateLimited { .. } => true,
            LlmError::Upstream { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529),
            LlmError::Disabled { .. }
            | LlmError::NothingConfigured
            | LlmError::CircuitOpen { .. }
            | LlmError::ClientGone => false,
        }
    }

    /// How long the upstream asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Upstream { retry_after_ms, .. } | LlmError::RateLimited { retry_after_ms, .. } => {
                retry_after_ms.map(Duration::from_millis)
            }
            _ => None,
        }
    }
}

/// Seconds a provider's 429 asks for when it names none.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
