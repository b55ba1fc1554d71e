//! Shared setup for the LLM gateway tests: a [`MockProvider`] speaking one wire format behind a
//! [`TestServer`] configured to use it, callers (users and tenants), and an SSE reader.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use reqwest::Method;
use serde_json::Value;

use crate::harness::{TestServer, expect_json, header};
use crate::mock_provider::{MockProvider, Wire};

/// The variable the provider's key is read from, and the key the server gets.
pub const KEY_ENV: &str = "MOCK_LLM_KEY";
pub const PROVIDER_KEY: &str = "sk-mock-key";
/// The one configured model's name (tier `balanced`; every tier falls back to it).
pub const MODEL: &str = "mock-model";
pub const PASSWORD: &str = "correct-horse-battery";

/// An `[[agents]]` entry for an agent `name` on [`MODEL`] with the server-side calculator: what
/// `agent:<name>` models run in the dialect tests.
pub fn calc_agent(name: &str) -> String {
    format!(
        r#"
[[agents]]
name = "{name}"
model = "{MODEL}"
system_prompt = "You compute things."
tools = ["calculator"]
max_iterations = 3
"#
    )
}

/// The configured provider's name for `wire` (error messages name it).
pub fn provider_name(wire: Wire) -> String {
    format!("mock-{}", wire.kind())
}

/// The provider-side id of [`MODEL`].
pub fn model_id(wire: Wire) -> String {
    format!("{}-model-id", wire.kind())
}

/// Configures a [`Gateway`].
pub struct GatewayBuilder {
    wire: Wire,
    read_timeout_secs: u64,
    key_env: &'static str,
    with_provider: bool,
    extra: Vec<String>,
}

impl GatewayBuilder {
    /// Merge more config (e.g. `[[agents]]`, `[tools.web_search]`).
    pub fn config(mut self, toml: &str) -> Self {
        self.extra.push(toml.to_string());
        self
    }

    pub fn read_timeout_secs(mut self, secs: u64) -> Self {
        self.read_timeout_secs = secs;
        self
    }

    /// The provider reads its key from a variable the server's environment does not have.
    pub fn unset_key(mut self) -> Self {
        self.key_env = "MOCK_LLM_KEY_NOT_SET";
        self
    }

    /// No `[[providers]]` and no `[[models]]` at all.
    pub fn no_providers(mut self) -> Self {
        self.with_provider = false;
        self
    }

    pub fn start(self) -> Gateway {
        let mock = MockProvider::start();
        let wire = self.wire;
        let mut builder = TestServer::builder().env(KEY_ENV, PROVIDER_KEY);
        if self.with_provider {
            let provider = provider_config(&mock, wire, self.key_env, self.read_timeout_secs);
            builder = builder.config(&provider);
        }
        for extra in &self.extra {
            builder = builder.config(extra);
        }
        let server = builder.start();
        Gateway { mock, server, wire }
    }
}

/// The `[[providers]]` and `[[models]]` blocks that point a server at `mock`'s `wire` endpoint:
/// one provider, one model named [`MODEL`] on the balanced tier, its key read from `key_env`.
pub fn provider_config(mock: &MockProvider, wire: Wire, key_env: &str, read_timeout_secs: u64) -> String {
    format!(
        r#"
[[providers]]
name = "{name}"
type = "{kind}"
base_url = "{base_url}"
api_key_env = "{key_env}"
read_timeout_secs = {read_timeout_secs}
connect_timeout_secs = 2
# One attempt per call: these tests count upstream requests and map single failures;
# retries, fallbacks and circuits are resilience.rs's subject.
max_retries = 0

[[models]]
name = "{MODEL}"
provider = "{name}"
model_id = "{model_id}"
tier = "balanced"
"#,
        name = provider_name(wire),
        kind = wire.kind(),
        base_url = mock.base_url(wire),
        model_id = model_id(wire),
    )
}

/// A server whose only provider is a mock of one wire format.
///
/// The mock is dropped first, so a provider call still in flight fails at once instead of
/// holding up the server's shutdown.
pub struct Gateway {
    pub mock: MockProvider,
    pub server: TestServer,
    pub wire: Wire,
}

impl Gateway {
    /// Defaults: a 5 s read timeout (a hang guard), the key variable set.
    pub fn builder(wire: Wire) -> GatewayBuilder {
        GatewayBuilder { wire, read_timeout_secs: 5, key_env: KEY_ENV, with_provider: true, extra: Vec::new() }
    }

    pub fn start(wire: Wire) -> Gateway {
        Gateway::builder(wire).start()
    }

    pub fn provider(&self) -> String {
        provider_name(self.wire)
    }

    /// Register a fresh user; returns its access token.
    pub async fn user(&self) -> String {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let registered = self.server.register(&email, PASSWORD).await;
        registered["access_token"].as_str().expect("an access token").to_string()
    }

    /// Provision a `generic` tenant (agent `assistant`) on tier `pro`; returns (tenant id, API key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let provisioned = self.server.provision(name, "pro", "generic").await;
        let id = provisioned["tenant_id"].as_str().expect("tenant id").to_string();
        let key = provisioned["raw_api_key"].as_str().expect("raw API key").to_string();
        (id, key)
    }

    /// `POST path` with a bearer token (a JWT or an API key) and a JSON body.
    pub async fn post(&self, path: &str, bearer: &str, body: &Value) -> reqwest::Response {
        self.server.v1(Method::POST, path, bearer).json(body).send().await.expect("POST request")
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.server.v1(Method::GET, path, bearer).send().await.expect("GET request")
    }

    /// `POST /api/chat` as `token`, asserting 200; returns the body.
    pub async fn chat_ok(&self, token: &str, body: &Value) -> Value {
        expect_json(self.post("/api/chat", token, body).await, 200).await
    }
}

/// One server-sent event: its `event:` name (if any) and its `data:` payload (lines joined with
/// `\n`, as SSE clients do).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub name: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {self:?}"))
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event: ") {
            name = Some(value.to_string());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push(value);
        } else if line.is_empty() || line.starts_with(':') {
            // The blank line ending the event, or a comment (keep-alive).
        } else {
            panic!("unexpected SSE line {line:?} in {block:?}");
        }
    }
    (name.is_some() || !data.is_empty()).then(|| SseEvent { name, data: data.join("\n") })
}

/// Reads an SSE response event by event, as it arrives.
pub struct SseReader {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    /// Asserts the SSE response head (200, `text/event-stream`, `no-cache`).
    pub fn new(response: reqwest::Response) -> SseReader {
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header(&response, "cache-control").as_deref(), Some("no-cache"));
        SseReader { stream: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event; `None` when the server closed the stream.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
            }
            match self.stream.next().await {
                Some(chunk) => {
                    let chunk = chunk.expect("the stream reads without error");
                    self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
                }
                None => {
                    assert!(self.buffer.trim().is_empty(), "the stream ended inside an event: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// Every remaining event, until the server closes the stream.
    pub async fn rest(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event().await {
            events.push(event);
        }
        events
    }
}

/// All events of an SSE response (asserting its head).
pub async fn sse_events(response: reqwest::Response) -> Vec<SseEvent> {
    SseReader::new(response).rest().await
}
