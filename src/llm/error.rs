//! What can go wrong talking to a provider; `ApiError` maps each to its HTTP status.

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider is configured but cannot be used (e.g. its key variable is unset).
    #[error("Provider '{provider}' is not available: {reason}")]
    Disabled { provider: String, reason: String },
    #[error("No LLM provider is configured: add a [[providers]] entry to ares.toml")]
    NothingConfigured,
    #[error("Provider '{provider}' returned HTTP {status}: {message}")]
    Upstream { provider: String, status: u16, message: String },
    #[error("Rate limit exceeded for provider '{provider}'")]
    RateLimited { provider: String, retry_after_secs: u64 },
    #[error("Provider '{provider}' timed out")]
    Timeout { provider: String },
    #[error("Provider '{provider}' is unreachable: {message}")]
    Unreachable { provider: String, message: String },
    #[error("Provider '{provider}' sent an invalid response: {message}")]
    Protocol { provider: String, message: String },
    /// The client went away before the answer was complete (its stream was abandoned).
    #[error("The client disconnected before the answer was complete")]
    ClientGone,
}

/// Seconds a provider's 429 asks for when it names none.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
