//! One configured provider: its endpoint, key and keep-alive HTTP clients. Chat calls are
//! async (`upstream`: a pooled client per provider): a call in flight holds no thread, so
//! concurrent streams are bounded by the upstream, not by the blocking pool (with ureq each
//! stream held a blocking thread for its whole length, and beyond the pool's 512 the rest
//! queued behind whole generations). A stream is read as its consumer asks for the next
//! event ([`ProviderStream`]), split into lines for the decoder, so the client sees each token
//! as soon as the provider sends it. Embeddings (the RAG ingest path, already on the blocking
//! pool) keep the blocking ureq agent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use hyper::body::Incoming;

use super::error::{DEFAULT_RETRY_AFTER_SECS, LlmError};
use super::types::{ChatRequest, ChatResponse, StreamEvent};
use super::upstream::{CallError, StreamedBody, Upstream};
use super::wire::{self, StreamDecoder};
use crate::config::{ProviderConfig, ProviderKind};

/// How calls to a provider are retried and bounded (its `[[providers]]` keys).
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    pub max_retries: u32,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// The whole call, retries and fallbacks included.
    pub timeout: Duration,
    pub first_token_timeout: Duration,
}

impl CallPolicy {
    fn from_config(config: &ProviderConfig) -> CallPolicy {
        CallPolicy {
            max_retries: config.max_retries,
            retry_initial: Duration::from_millis(config.retry_initial_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
            timeout: Duration::from_secs(config.timeout_secs),
            first_token_timeout: Duration::from_secs(config.first_token_timeout_secs),
        }
    }
}

pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub policy: CallPolicy,
    base_url: String,
    api_key: Option<String>,
    /// Why the provider cannot be used, if it cannot.
    disabled: Option<String>,
    /// Blocking agent for embeddings.
    agent: ureq::Agent,
    /// The async client chat calls use (`None` only when the provider is disabled).
    upstream: Option<Upstream>,
    /// The chat endpoint, parsed once (not per call).
    chat_uri: Option<http::Uri>,
    /// The provider's auth (and version) headers, built once.
    auth_headers: Vec<(HeaderName, HeaderValue)>,
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
        let built = Upstream::new(
            Duration::from_secs(config.connect_timeout_secs),
            Duration::from_secs(config.read_timeout_secs),
        );
        let (upstream, disabled) = match built {
            Ok(upstream) => (Some(upstream), disabled),
            Err(e) => (None, disabled.or(Some(format!("cannot build its HTTP client: {e}")))),
        };
        let (auth_headers, disabled) = match auth_headers(config.kind, api_key.as_deref()) {
            Ok(headers) => (headers, disabled),
            Err(e) => (Vec::new(), disabled.or(Some(e))),
        };
        let mut provider = Provider {
            name: config.name.clone(),
            kind: config.kind,
            policy: CallPolicy::from_config(config),
            base_url,
            api_key,
            disabled,
            agent,
            upstream,
            chat_uri: None,
            auth_headers,
        };
        match parse_endpoint(&provider.endpoint()) {
            Ok(uri) => provider.chat_uri = Some(uri),
            Err(e) => {
                let reason = format!("its base_url is not a valid URL: {e}");
                provider.disabled = provider.disabled.take().or(Some(reason));
            }
        }
        provider
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
    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<(&Upstream, Incoming), LlmError> {
        let payload = wire::encode_request(self.kind, request, stream)
            .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        let (Some(upstream), Some(uri)) = (&self.upstream, &self.chat_uri) else {
            return Err(self.protocol("the provider has no valid endpoint"));
        };
        let response =
            upstream.post_json(uri, &self.auth_headers, payload).await.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        if status < 400 {
            return Ok((upstream, response.into_body()));
        }
        let retry_after_ms = retry_after_ms(response.headers());
        let text = upstream
            .read_all(response.into_body())
            .await
            .map(|body| String::from_utf8_lossy(&body).into_owned())
            .unwrap_or_default();
        if status == 429 {
            return Err(LlmError::RateLimited {
                provider: self.name.clone(),
                retry_after_secs: retry_after_ms.map_or(DEFAULT_RETRY_AFTER_SECS, |ms| ms.div_ceil(1000)),
                retry_after_ms,
            });
        }
        let message = wire::error_message(&text).unwrap_or_else(|| text.chars().take(300).collect());
        Err(LlmError::Upstream { provider: self.name.clone(), status, message, retry_after_ms })
    }

    fn transport_error(&self, error: CallError) -> LlmError {
        match error {
            CallError::Timeout => LlmError::Timeout { provider: self.name.clone() },
            // The chain names the cause (connection refused, reset, DNS).
            CallError::Transport(message) => LlmError::Unreachable { provider: self.name.clone(), message },
        }
    }

    fn protocol(&self, message: impl Into<String>) -> LlmError {
        LlmError::Protocol { provider: self.name.clone(), message: message.into() }
    }

    /// A complete answer.
    pub async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.check_enabled()?;
        let (upstream, body) = self.send(request, false).await?;
        let bytes = upstream.read_all(body).await.map_err(|e| self.transport_error(e))?;
        wire::parse_response_bytes(self.kind, &bytes).map_err(|m| self.protocol(m))
    }

    /// Open a streamed answer: the request is sent and its status known to be a success; the
    /// events are then pulled from the returned stream by whoever serves the client, so each
    /// token goes from the upstream socket to the client's without a task or channel between
    /// (with 2,000 streams, the channel sends, receives and wake-ups of the reader task and the
    /// turn task that used to sit there were about 9 % of the server's CPU). Dropping the
    /// stream closes the upstream connection.
    pub async fn open_stream(self: &Arc<Self>, request: &ChatRequest) -> Result<ProviderStream, LlmError> {
        self.check_enabled()?;
        let (upstream, body) = self.send(request, true).await?;
        Ok(ProviderStream {
            provider: self.clone(),
            body: upstream.streamed(body),
            decoder: Some(StreamDecoder::new(self.kind)),
            partial: Vec::new(),
            ready: VecDeque::new(),
        })
    }
}

/// A provider's streamed answer, read as its consumer asks for the next event.
pub struct ProviderStream {
    provider: Arc<Provider>,
    body: StreamedBody,
    /// `None` once the answer is complete (its `Done` is queued) or the stream has failed.
    decoder: Option<StreamDecoder>,
    /// Bytes of the line being received (lines may span chunks, chunks hold many lines).
    partial: Vec<u8>,
    /// Events decoded from the chunks read so far, not yet taken.
    ready: VecDeque<StreamEvent>,
}

impl ProviderStream {
    /// The next event: deltas in order, then `Done` with the whole answer; `None` after that.
    /// An error ends the stream (timeout, broken connection, an answer that does not parse).
    pub async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            let mut decoder = self.decoder.take()?;
            match self.read_more(&mut decoder).await {
                Ok(true) => self.decoder = Some(decoder),
                Ok(false) => match decoder.finish() {
                    Ok(done) => self.ready.push_back(StreamEvent::Done(Box::new(done))),
                    Err(message) => return Some(Err(self.provider.protocol(message))),
                },
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// Read one chunk and decode its complete lines into `ready`; `false` when the answer has
    /// ended (the body ended, or Ollama said it is done: it may keep the connection open).
    async fn read_more(&mut self, decoder: &mut StreamDecoder) -> Result<bool, LlmError> {
        let provider = &self.provider;
        let chunk = match self.body.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                if !self.partial.is_empty() {
                    let line = std::mem::take(&mut self.partial);
                    decode_line(provider, decoder, &line, &mut self.ready)?;
                }
                return Ok(false);
            }
            Err(CallError::Timeout) => return Err(LlmError::Timeout { provider: provider.name.clone() }),
            Err(CallError::Transport(e)) => return Err(provider.protocol(format!("stream interrupted: {e}"))),
        };
        let mut rest: &[u8] = &chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                decode_line(provider, decoder, &rest[..end], &mut self.ready)?;
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                decode_line(provider, decoder, &self.partial, &mut self.ready)?;
                self.partial.clear();
            }
            rest = &rest[end + 1..];
            if decoder.is_done() && provider.kind == ProviderKind::Ollama {
                return Ok(false);
            }
        }
        self.partial.extend_from_slice(rest);
        Ok(true)
    }
}

fn decode_line(
    provider: &Provider,
    decoder: &mut StreamDecoder,
    line: &[u8],
    ready: &mut VecDeque<StreamEvent>,
) -> Result<(), LlmError> {
    let text = std::str::from_utf8(line).map_err(|e| provider.protocol(format!("stream is not UTF-8: {e}")))?;
    ready.extend(decoder.line(text).map_err(|m| provider.protocol(m))?);
    Ok(())
}

/// What an error answer asks us to wait: `retry-after-ms` (OpenAI's), else `Retry-After` in
/// seconds (an HTTP date is not honoured: the backoff applies).
fn retry_after_ms(headers: &http::HeaderMap) -> Option<u64> {
    let number = |name: &str| {
        headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
    };
    let millis = number("retry-after-ms").or_else(|| number("retry-after").map(|secs| secs * 1000.0))?;
    // Finite and non-negative; `as` saturates beyond u64 (no upstream asks for 584 million years).
    let millis = millis.ceil() as u64;
    Some(millis)
}

/// The endpoint as a request target: an absolute `http` or `https` URL with a host.
fn parse_endpoint(endpoint: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(uri),
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

/// The headers that authenticate every call of a provider of `kind` with `key`.
fn auth_headers(kind: ProviderKind, key: Option<&str>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let secret = |value: String| {
        let mut value =
            HeaderValue::try_from(value).map_err(|_| "its API key is not a valid header value".to_string())?;
        value.set_sensitive(true);
        Ok::<_, String>(value)
    };
    let mut headers = Vec::new();
    match (kind, key) {
        (ProviderKind::Anthropic, key) => {
            headers.push((HeaderName::from_static("anthropic-version"), HeaderValue::from_static("2023-06-01")));
            if let Some(key) = key {
                headers.push((HeaderName::from_static("x-api-key"), secret(key.to_string())?));
            }
        }
        (_, Some(key)) => headers.push((http::header::AUTHORIZATION, secret(format!("Bearer {key}"))?)),
        (_, None) => {}
    }
    Ok(headers)
}

/// Where a provider of `kind` is when its config names no `base_url`.
pub fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Ollama => "http://127.0.0.1:11434",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_url: &str) -> ProviderConfig {
        ProviderConfig {
            name: "p".into(),
            kind: ProviderKind::Ollama,
            base_url: Some(base_url.into()),
            api_key_env: None,
            default_model: None,
            models: Vec::new(),
            connect_timeout_secs: 1,
            read_timeout_secs: 1,
            max_retries: 0,
            retry_initial_ms: 1,
            retry_max_ms: 1,
            timeout_secs: 1,
            first_token_timeout_secs: 1,
            breaker_failures: 1,
            breaker_cooldown_secs: 1,
        }
    }

    #[test]
    fn the_chat_endpoint_is_parsed_once_and_a_bad_base_url_disables_the_provider() {
        let no_env = |_: &str| None;
        let good = Provider::new(&config("http://127.0.0.1:11434/"), &no_env);
        assert_eq!(good.chat_uri.as_ref().map(ToString::to_string).as_deref(), Some("http://127.0.0.1:11434/api/chat"));
        assert!(good.disabled_reason().is_none());
        let bad = Provider::new(&config("not a url"), &no_env);
        assert!(bad.disabled_reason().is_some_and(|r| r.contains("base_url")), "{:?}", bad.disabled_reason());
    }
}
