//! One configured provider: its endpoint, key and keep-alive HTTP agent. Calls run on the
//! blocking pool (ureq is synchronous); a stream is read line by line there and forwarded over a
//! channel, so the client sees each token as soon as the provider sends it.

use std::io::BufRead as _;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::error::LlmError;
use super::types::{ChatRequest, ChatResponse, StreamEvent};
use super::wire::{self, StreamDecoder};
use crate::config::{ProviderConfig, ProviderKind};

/// Buffered events between the reader thread and the response; small, so a slow client slows
/// the reader instead of growing memory.
const STREAM_BUFFER: usize = 32;

pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    base_url: String,
    api_key: Option<String>,
    /// Why the provider cannot be used, if it cannot.
    disabled: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Provider {
    /// Build from config; nothing is contacted. A missing key variable disables the provider.
    pub fn new(config: &ProviderConfig, env: &crate::config::EnvLookup) -> Provider {
        let (api_key, disabled) = match &config.api_key_env {
            Some(var) => match env(var).filter(|v| !v.is_empty()) {
                Some(key) => (Some(key), None),
                None => (None, Some(format!("environment variable {var} is not set"))),
            },
            None => (None, None),
        };
        let base_url = config.base_url.clone().unwrap_or_else(|| default_base_url(config.kind).to_string());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(config.connect_timeout_secs)))
            .timeout_recv_response(Some(Duration::from_secs(config.read_timeout_secs)))
            // Per read, not for the whole body: a stream may run longer than the read timeout
            // as long as the provider never goes silent for that long.
            .timeout_per_read(Some(Duration::from_secs(config.read_timeout_secs)))
            .user_agent(concat!("ares/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Provider { name: config.name.clone(), kind: config.kind, base_url, api_key, disabled, agent }
    }

    pub fn disabled_reason(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    /// The configured base URL (or the kind's default); other endpoints of the same server
    /// (embeddings) are found from it.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The key sent upstream, for other calls to the same server (embeddings). Never log it.
    pub(crate) fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// The keep-alive HTTP agent with this provider's timeouts.
    pub(crate) fn http_agent(&self) -> &ureq::Agent {
        &self.agent
    }

    fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        match self.kind {
            ProviderKind::Openai => format!("{base}/chat/completions"),
            ProviderKind::Anthropic if base.ends_with("/v1") => format!("{base}/messages"),
            ProviderKind::Anthropic => format!("{base}/v1/messages"),
            ProviderKind::Ollama => format!("{base}/api/chat"),
        }
    }

    fn check_enabled(&self) -> Result<(), LlmError> {
        match &self.disabled {
            Some(reason) => Err(LlmError::Disabled { provider: self.name.clone(), reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// POST the request; returns the response once its status is known to be a success.
    fn send(&self, body: &Value) -> Result<ureq::http::Response<ureq::Body>, LlmError> {
        let mut request = self.agent.post(&self.endpoint()).header("content-type", "application/json");
        match (self.kind, &self.api_key) {
            (ProviderKind::Anthropic, key) => {
                request = request.header("anthropic-version", "2023-06-01");
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
            }
            (_, Some(key)) => request = request.header("authorization", &format!("Bearer {key}")),
            (_, None) => {}
        }
        let payload = body.to_string();
        let response = request.send(payload.as_bytes()).map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response.into_body().read_to_string().unwrap_or_default();
        if status == 429 {
            return Err(LlmError::RateLimited {
                provider: self.name.clone(),
                retry_after_secs: retry_after.unwrap_or(super::error::DEFAULT_RETRY_AFTER_SECS),
            });
        }
        let message = wire::error_message(&text).unwrap_or_else(|| text.chars().take(300).collect());
        Err(LlmError::Upstream { provider: self.name.clone(), status, message })
    }

    fn transport_error(&self, e: ureq::Error) -> LlmError {
        match e {
            ureq::Error::Timeout(_) => LlmError::Timeout { provider: self.name.clone() },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                LlmError::Timeout { provider: self.name.clone() }
            }
            other => LlmError::Unreachable { provider: self.name.clone(), message: other.to_string() },
        }
    }

    fn protocol(&self, message: impl Into<String>) -> LlmError {
        LlmError::Protocol { provider: self.name.clone(), message: message.into() }
    }

    /// A complete answer. Blocking: call from the blocking pool.
    pub fn complete_blocking(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.check_enabled()?;
        let body = wire::request_body(self.kind, request, false);
        let response = self.send(&body)?;
        let text = response.into_body().read_to_string().map_err(|e| self.transport_error(e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| self.protocol(e.to_string()))?;
        wire::parse_response(self.kind, &value).map_err(|m| self.protocol(m))
    }

    /// Stream an answer into `events`. Blocking: run on the blocking pool. Stops reading (which
    /// closes the upstream connection) as soon as the receiver is gone.
    pub fn stream_blocking(&self, request: &ChatRequest, events: &EventSender) {
        let outcome = self.stream_inner(request, events);
        if let Err(e) = outcome {
            let _ = events.blocking_send(Err(e));
        }
    }

    fn stream_inner(&self, request: &ChatRequest, events: &EventSender) -> Result<(), LlmError> {
        self.check_enabled()?;
        let body = wire::request_body(self.kind, request, true);
        let response = self.send(&body)?;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut decoder = StreamDecoder::new(self.kind);
        for line in reader.lines() {
            let line = line.map_err(|e| {
                // ureq's own timeouts reach a body reader as `Other` errors wrapping them.
                let wrapped_timeout = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                    .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
                if e.kind() == std::io::ErrorKind::TimedOut || wrapped_timeout {
                    LlmError::Timeout { provider: self.name.clone() }
                } else {
                    self.protocol(format!("stream interrupted: {e}"))
                }
            })?;
            for event in decoder.line(&line).map_err(|m| self.protocol(m))? {
                if events.blocking_send(Ok(event)).is_err() {
                    // The client went away: dropping the reader closes the upstream connection.
                    return Ok(());
                }
            }
            if decoder.is_done() && self.kind == ProviderKind::Ollama {
                break;
            }
        }
        let done = decoder.finish().map_err(|m| self.protocol(m))?;
        let _ = events.blocking_send(Ok(StreamEvent::Done(done)));
        Ok(())
    }
}

/// Where a provider's stream events go.
pub type EventSender = mpsc::Sender<Result<StreamEvent, LlmError>>;
pub type EventReceiver = mpsc::Receiver<Result<StreamEvent, LlmError>>;

pub fn stream_channel() -> (EventSender, EventReceiver) {
    mpsc::channel(STREAM_BUFFER)
}

fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Ollama => "http://127.0.0.1:11434",
    }
}
