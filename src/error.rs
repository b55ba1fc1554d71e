//! `ApiError`: the one place an error becomes an HTTP status and a `{"error", "code"}` body.
//!
//! Handlers and layers return typed errors; `From` impls bring them here, and
//! [`ApiError::status_and_code`] is an exhaustive table with no wildcard arm, so a new variant
//! forces a decision about its status. Messages are safe to show to clients; causes of 5xx
//! errors are logged with the request id and never sent.

use http::StatusCode;

use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid JSON in request body")]
    InvalidJson,
    #[error("Missing required field: {0}")]
    MissingField(String),
    #[error("Invalid value for field: {0}")]
    InvalidField(String),
    /// Any other 400 with a message for the client.
    #[error("{0}")]
    BadRequest(String),
    #[error("Missing authorization header")]
    MissingAuthorization,
    #[error("Missing X-Admin-Secret header")]
    MissingAdminSecret,
    #[error("Invalid admin secret")]
    InvalidAdminSecret,
    #[error("Invalid or expired token")]
    InvalidToken,
    /// Credentials present but rejected (bad API key, revoked key, wrong password).
    #[error("{0}")]
    AuthenticationFailed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// An agent the caller named that it cannot run (ARES: a plain 404; the OpenAI and
    /// Anthropic dialects, where agents are `agent:<name>` models, turn it into
    /// [`ApiError::ModelNotFound`]).
    #[error("Agent not found: {0}")]
    AgentNotFound(String),
    /// A model name that is neither a configured model, a tier nor `agent:<name>` the caller may
    /// run (OpenAI's `model_not_found`).
    #[error("The model '{0}' does not exist or you do not have access to it")]
    ModelNotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed { allow: Vec<http::Method> },
    #[error("{0}")]
    Conflict(String),
    #[error("Request body too large")]
    PayloadTooLarge,
    /// The client stopped sending its request body (`[server].body_timeout_secs`).
    #[error("Request body not received in time")]
    RequestTimeout,
    #[error("{0}")]
    Unprocessable(String),
    #[error("Rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    /// A tenant quota is exhausted (API.md §4.3); the message names which one.
    #[error("{message}")]
    QuotaExceeded { message: &'static str, retry_after_secs: u64 },
    /// A tenant's or key's dollar budget cannot cover the request (402).
    #[error("{0}")]
    BudgetExceeded(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Overloaded for a moment (e.g. the password-hash queue is full): 503 with `Retry-After`.
    #[error("{message}")]
    Busy { message: &'static str, retry_after_secs: u64 },
    /// An LLM provider failed (HTTP error, unreachable, invalid response).
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    /// An LLM provider's own rate limit (API.md §0.3 example).
    #[error("{message}")]
    ProviderRateLimited { message: String, retry_after_secs: u64 },
    /// Unexpected failure: the client sees `Internal server error`, the log sees the cause.
    #[error("Internal server error")]
    Internal(String),
    #[error("Internal server error")]
    Storage(store::Error),
    /// The storage failed and refuses writes until a restart (`store::Error::WritesStopped`):
    /// 503; the cause and the remedy are for the operator, logged once by the store's writer.
    #[error("The server cannot store data after a storage failure")]
    StorageStopped,
}

impl ApiError {
    /// The exhaustive status/code table (API.md §0.3).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson | ApiError::MissingField(_) | ApiError::InvalidField(_) | ApiError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "INVALID_INPUT")
            }
            ApiError::MissingAuthorization | ApiError::MissingAdminSecret => (StatusCode::UNAUTHORIZED, "AUTH_MISSING"),
            ApiError::InvalidToken => (StatusCode::UNAUTHORIZED, "AUTH_INVALID_TOKEN"),
            ApiError::InvalidAdminSecret | ApiError::AuthenticationFailed(_) => {
                (StatusCode::UNAUTHORIZED, "AUTHENTICATION_FAILED")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ApiError::NotFound(_) | ApiError::AgentNotFound(_) | ApiError::ModelNotFound(_) => {
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            }
            ApiError::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "UNPROCESSABLE"),
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED")
            }
            ApiError::BudgetExceeded(_) => (StatusCode::PAYMENT_REQUIRED, "BUDGET_EXCEEDED"),
            ApiError::ServiceUnavailable(_) | ApiError::Busy { .. } | ApiError::StorageStopped => {
                (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
            }
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "LLM_ERROR"),
            ApiError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "LLM_TIMEOUT"),
            ApiError::ProviderRateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
            ApiError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "DATABASE_ERROR"),
        }
    }

    /// Seconds a 429 asks the client to wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::QuotaExceeded { retry_after_secs, .. }
            | ApiError::Busy { retry_after_secs, .. }
            | ApiError::ProviderRateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// OpenAI's `type`, `code` and `param` for this error (its SDKs pick the exception class
    /// from the status; clients such as LangChain read `code`, e.g. `insufficient_quota` is
    /// not worth retrying).
    pub fn openai_fields(&self) -> (&'static str, Option<&'static str>, Option<String>) {
        const INVALID: &str = "invalid_request_error";
        match self {
            ApiError::InvalidJson | ApiError::BadRequest(_) | ApiError::Unprocessable(_) => (INVALID, None, None),
            ApiError::MissingField(field) | ApiError::InvalidField(field) => (INVALID, None, Some(field.clone())),
            ApiError::ModelNotFound(_) => (INVALID, Some("model_not_found"), Some("model".into())),
            ApiError::NotFound(_) | ApiError::AgentNotFound(_) => (INVALID, Some("not_found"), None),
            ApiError::MethodNotAllowed { .. } => (INVALID, Some("method_not_allowed"), None),
            ApiError::PayloadTooLarge => (INVALID, Some("request_too_large"), None),
            ApiError::RequestTimeout => (INVALID, Some("request_timeout"), None),
            ApiError::Conflict(_) => (INVALID, Some("conflict"), None),
            ApiError::MissingAuthorization
            | ApiError::MissingAdminSecret
            | ApiError::InvalidAdminSecret
            | ApiError::InvalidToken
            | ApiError::AuthenticationFailed(_) => (INVALID, Some("invalid_api_key"), None),
            ApiError::Forbidden(_) => (INVALID, Some("permission_denied"), None),
            ApiError::QuotaExceeded { .. } => ("insufficient_quota", Some("insufficient_quota"), None),
            ApiError::BudgetExceeded(_) => ("insufficient_quota", Some("budget_exceeded"), None),
            ApiError::RateLimited { .. } | ApiError::ProviderRateLimited { .. } => {
                ("requests", Some("rate_limit_exceeded"), None)
            }
            ApiError::ServiceUnavailable(_) | ApiError::Busy { .. } | ApiError::StorageStopped => {
                ("server_error", Some("service_unavailable"), None)
            }
            ApiError::BadGateway(_) => ("server_error", Some("upstream_error"), None),
            ApiError::GatewayTimeout(_) => ("server_error", Some("upstream_timeout"), None),
            ApiError::Internal(_) | ApiError::Storage(_) => ("server_error", None, None),
        }
    }

    /// Anthropic's error `type`, from the status as Anthropic's API assigns them.
    pub fn anthropic_type(&self) -> &'static str {
        match self.status_and_code().0.as_u16() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The cause to log for server-side failures; `None` for client errors.
    pub fn internal_cause(&self) -> Option<String> {
        match self {
            ApiError::Internal(cause) => Some(cause.clone()),
            ApiError::Storage(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

/// The dialect an error body is written in: ARES's own `{"error", "code"}`, or that of the
/// OpenAI- or Anthropic-compatible routes, whose SDKs parse their own shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Ares,
    OpenAi,
    Anthropic,
}

impl From<crate::llm::LlmError> for ApiError {
    fn from(e: crate::llm::LlmError) -> Self {
        use crate::llm::LlmError;
        let message = e.to_string();
        match e {
            LlmError::Disabled { .. } | LlmError::NothingConfigured | LlmError::CircuitOpen { .. } => {
                ApiError::ServiceUnavailable(message)
            }
            LlmError::RateLimited { retry_after_secs, .. } => {
                ApiError::ProviderRateLimited { message, retry_after_secs }
            }
            LlmError::Timeout { .. } => ApiError::GatewayTimeout(message),
            LlmError::Upstream { .. } | LlmError::Unreachable { .. } | LlmError::Protocol { .. } => {
                ApiError::BadGateway(message)
            }
            // Nobody is left to answer; a 400-class status keeps it out of the 5xx logs.
            LlmError::ClientGone => ApiError::BadRequest(message),
        }
    }
}

impl From<crate::auth::passwords::PasswordError> for ApiError {
    fn from(e: crate::auth::passwords::PasswordError) -> Self {
        use crate::auth::passwords::{BUSY_RETRY_AFTER_SECS, PasswordError};
        match e {
            PasswordError::Busy => ApiError::Busy {
                message: "Too many sign-ins in progress, retry shortly",
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            },
            PasswordError::Hash(_) | PasswordError::Stopped => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Conflict(message) => ApiError::Conflict(message),
            store::Error::NotFound(message) => ApiError::NotFound(message),
            store::Error::Closed => ApiError::ServiceUnavailable("The server is shutting down".into()),
            store::Error::WritesStopped(_) => ApiError::StorageStopped,
            // A read the page cache could not answer after the storage failed: redb refuses
            // every file access until the database is reopened, as the writer's refusals say.
            store::Error::Storage(redb::Error::PreviousIo) => ApiError::StorageStopped,
            other => ApiError::Storage(other),
        }
    }
}

/// An embedding call of `POST /v1/embeddings` (RAG maps its own, through `RagError`). An
/// upstream refusal of the input itself (400, 413, 422) is the client's 400, so SDKs do not
/// retry it; the upstream's rate limit is a 429; anything else is the gateway's upstream failing.
impl From<crate::rag::embedder::EmbedError> for ApiError {
    fn from(e: crate::rag::embedder::EmbedError) -> Self {
        use crate::rag::embedder::EmbedError;
        let message = e.to_string();
        match e {
            EmbedError::Unavailable { .. } => ApiError::ServiceUnavailable(message),
            EmbedError::Status { status: 400 | 413 | 422, .. } => ApiError::BadRequest(message),
            EmbedError::Status { status: 429, .. } => {
                ApiError::ProviderRateLimited { message, retry_after_secs: crate::llm::error::DEFAULT_RETRY_AFTER_SECS }
            }
            EmbedError::Status { .. } | EmbedError::Protocol { .. } | EmbedError::Dimension { .. } => {
                ApiError::BadGateway(message)
            }
        }
    }
}

impl From<crate::rag::RagError> for ApiError {
    fn from(e: crate::rag::RagError) -> Self {
        use crate::rag::RagError;
        use crate::rag::embedder::EmbedError;
        let message = e.to_string();
        match e {
            RagError::Store(e) => ApiError::from(e),
            RagError::BadRequest(message) => ApiError::BadRequest(message),
            RagError::CollectionNotFound(_) => ApiError::NotFound(message),
            RagError::LimitReached(message) => ApiError::Forbidden(message),
            RagError::EmbedderMismatch { .. } | RagError::Cancelled => ApiError::Conflict(message),
            RagError::Embed(EmbedError::Unavailable { .. }) => ApiError::ServiceUnavailable(message),
            RagError::Embed(_) | RagError::Rerank(_) => ApiError::BadGateway(message),
            RagError::Lexical(_) | RagError::Io(_) => ApiError::Internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_refused_after_a_storage_failure_are_503_like_the_refused_writes() {
        let refused_read = ApiError::from(store::Error::Storage(redb::Error::PreviousIo));
        let refused_write = ApiError::from(store::Error::WritesStopped("No space left on device".into()));
        for refused in [refused_read, refused_write] {
            assert_eq!(refused.status_and_code(), (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"));
        }
        // Any other storage error stays a 500 with its cause for the log.
        let other = ApiError::from(store::Error::Storage(redb::Error::Corrupted("bad page".into())));
        assert_eq!(other.status_and_code().0, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
