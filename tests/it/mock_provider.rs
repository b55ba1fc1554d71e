//! A mock LLM provider: a real HTTP server on 127.0.0.1:0 speaking the OpenAI
//! (`/v1/chat/completions`), Anthropic (`/v1/messages`) and Ollama (`/api/chat`) wire formats,
//! JSON and streaming, scriptable per test and recording every request it receives.
//!
//! It runs on its own thread and runtime, so it keeps answering whatever the test's runtime is
//! doing. A test sets a default [`Script`] (used for every request) and may queue one-shot
//! scripts that are used first, in order: e.g. one 503 and then the default success.
//!
//! Besides text, a script can answer with tool calls (in each provider's own shape, streamed the
//! way each provider streams them), fail the ways real providers fail ([`Failure`], a connection
//! dropped before any answer or mid-stream included), add response headers (a 429's
//! `Retry-After`), and pause a stream until the test calls [`MockProvider::resume`]. Every
//! request is recorded with its JSON body and, for answers, whether the whole answer went out or
//! the client hung up first.
//!
//! Usage is reported the way each provider reports it, prompt-cache counts included when a
//! script has them ([`Script::cache_read`], [`Script::cache_creation`]), or not at all
//! ([`Script::no_usage`]).
//!
//! For RAG it also serves embeddings — Ollama `POST /api/embed` and OpenAI `POST
//! /v1/embeddings` — with deterministic bag-of-words vectors ([`mock_embedding`]: one coordinate
//! per word, a few synonyms sharing one, so "automobile" is near "car" while BM25 sees no
//! overlap), and a reranker, `POST /rerank`, answering Jina/llama.cpp style
//! (`{"results":[{"index","relevance_score"}]}`) or TEI style (`[{"index","score"}]`) with scores
//! computed from word overlap or set by the test ([`MockProvider::set_rerank_scores`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::harness::StubServer;

/// A body that can fail: the error aborts the connection ([`Failure::Cut`]).
type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Guard against hangs in [`MockProvider::wait_until`], not a performance assertion.
const WAIT_GUARD: Duration = Duration::from_secs(10);

/// How long a cut stream waits after its last chunk before dropping the connection, so that
/// chunk is written out (not left in a buffer) when the connection goes.
const CUT_SETTLE: Duration = Duration::from_millis(30);

/// The three wire formats the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Ollama,
}

impl Wire {
    pub const ALL: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Ollama];

    /// The `type` of a `[[providers]]` entry speaking this format.
    pub fn kind(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Ollama => "ollama",
        }
    }

    /// The path a chat call arrives on.
    pub fn path(self) -> &'static str {
        match self {
            Wire::OpenAi => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
            Wire::Ollama => "/api/chat",
        }
    }

    fn of(method: &http::Method, path: &str) -> Option<Wire> {
        if method != http::Method::POST {
            return None;
        }
        Wire::ALL.into_iter().find(|w| w.path() == path)
    }
}

/// A tool call the mock makes: the tool's name and its JSON arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct MockToolCall {
    pub name: String,
    pub arguments: Value,
}

/// How an answer goes wrong after a 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The answer stops half-way: no terminal event, no `[DONE]`, no `done: true` (a JSON
    /// answer is cut in the middle of its text).
    Truncate,
    /// Half-way through, a chunk that is not JSON (`data: {not json`); a JSON answer is
    /// `{not json`.
    Malformed,
    /// Nothing is ever sent, headers included; the request just waits until the mock stops.
    Hang,
    /// The request is read, then the connection is closed without any answer (no status, no
    /// headers): what a client sees as a connection reset or an empty reply.
    Reset,
    /// A stream sends this many chunks, then the connection is dropped mid-body: no terminal
    /// event, no `[DONE]`, and no clean end of the chunked body either (a JSON answer is cut the
    /// same way after its first half).
    Cut(usize),
}

/// How the mock answers one request.
#[derive(Debug, Clone)]
pub struct Script {
    /// The assistant's text; streamed as one delta per word (trailing space included).
    pub reply: String,
    /// Tool calls the assistant makes, after its text (if any).
    pub tool_calls: Vec<MockToolCall>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Prompt tokens read from the provider's cache, reported each provider's way: OpenAI's
    /// `prompt_tokens_details.cached_tokens` (counted inside `prompt_tokens`, i.e. inside
    /// `input_tokens` here), Anthropic's `cache_read_input_tokens` (apart from `input_tokens`).
    /// 0 reports nothing (Ollama never does).
    pub cache_read_tokens: u32,
    /// Anthropic's `cache_creation_input_tokens` (apart from `input_tokens`); 0 reports nothing.
    /// The other wire formats have no such count.
    pub cache_creation_tokens: u32,
    /// Report no usage at all: no `usage` object (JSON or streamed), no Ollama counts.
    pub without_usage: bool,
    /// Anything but 200 answers with the provider's error body carrying `error_message`.
    pub status: u16,
    pub error_message: String,
    /// Wait this long before sending anything (headers included).
    pub delay: Duration,
    /// Wait this long between streamed chunks.
    pub chunk_delay: Duration,
    pub failure: Option<Failure>,
    /// Stop after this many streamed chunks until [`MockProvider::resume`] is called.
    pub pause_after: Option<usize>,
    /// Extra response headers (on an error answer as on a success), e.g. `Retry-After`.
    pub headers: Vec<(String, String)>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            reply: "Hello from the mock provider.".into(),
            tool_calls: Vec::new(),
            input_tokens: 11,
            output_tokens: 7,
            cache_read_tokens: 0,
            cache_creation_tokens: 0,
            without_usage: false,
            status: 200,
            error_message: "mock provider error".into(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            failure: None,
            pause_after: None,
            headers: Vec::new(),
        }
    }
}

impl Script {
    pub fn reply(text: &str) -> Script {
        Script { reply: text.into(), ..Script::default() }
    }

    pub fn error(status: u16, message: &str) -> Script {
        Script { status, error_message: message.into(), ..Script::default() }
    }

    /// Answer with these tool calls and no text.
    pub fn tool_calls(calls: &[(&str, Value)]) -> Script {
        let tool_calls =
            calls.iter().map(|(name, arguments)| MockToolCall { name: name.to_string(), arguments: arguments.clone() });
        Script { reply: String::new(), tool_calls: tool_calls.collect(), ..Script::default() }
    }

    /// Answer with one tool call and no text.
    pub fn tool_call(name: &str, arguments: Value) -> Script {
        Script::tool_calls(&[(name, arguments)])
    }

    /// A script that never answers (until the mock shuts down).
    pub fn hang() -> Script {
        Script { failure: Some(Failure::Hang), ..Script::default() }
    }

    /// A script that closes the connection without answering ([`Failure::Reset`]).
    pub fn reset() -> Script {
        Script { failure: Some(Failure::Reset), ..Script::default() }
    }

    /// Replace the text (e.g. text alongside tool calls).
    pub fn text(mut self, text: &str) -> Script {
        self.reply = text.into();
        self
    }

    pub fn usage(mut self, input_tokens: u32, output_tokens: u32) -> Script {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
        self
    }

    /// Report `tokens` prompt tokens as read from the provider's cache (see
    /// [`Script::cache_read_tokens`] for where each wire format puts them).
    pub fn cache_read(mut self, tokens: u32) -> Script {
        self.cache_read_tokens = tokens;
        self
    }

    /// Report `tokens` prompt tokens as written to Anthropic's cache.
    pub fn cache_creation(mut self, tokens: u32) -> Script {
        self.cache_creation_tokens = tokens;
        self
    }

    /// Report no usage at all, as some OpenAI-compatible servers do.
    pub fn no_usage(mut self) -> Script {
        self.without_usage = true;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Script {
        self.delay = delay;
        self
    }

    pub fn chunk_delay(mut self, delay: Duration) -> Script {
        self.chunk_delay = delay;
        self
    }

    pub fn truncated(mut self) -> Script {
        self.failure = Some(Failure::Truncate);
        self
    }

    pub fn malformed(mut self) -> Script {
        self.failure = Some(Failure::Malformed);
        self
    }

    pub fn pause_after(mut self, chunks: usize) -> Script {
        self.pause_after = Some(chunks);
        self
    }

    /// Stream `chunks` chunks, then drop the connection ([`Failure::Cut`]).
    pub fn cut_after(mut self, chunks: usize) -> Script {
        self.failure = Some(Failure::Cut(chunks));
        self
    }

    /// Add a response header, e.g. `Script::error(429, "slow down").header("retry-after-ms", "300")`.
    pub fn header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The streamed pieces of the reply; they concatenate to exactly `reply`.
    fn pieces(&self) -> Vec<String> {
        self.reply.split_inclusive(' ').map(str::to_string).collect()
    }
}

/// A tool result found in a recorded request, whatever the wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct SentToolResult {
    /// OpenAI `tool_call_id` / Anthropic `tool_use_id`; Ollama has none.
    pub call_id: Option<String>,
    /// Ollama's `tool_name`; the others have none.
    pub tool_name: Option<String>,
    pub content: String,
}

/// A tool call of an earlier assistant turn, echoed back in a recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct SentToolCall {
    pub id: Option<String>,
    pub name: String,
    /// Parsed to JSON (OpenAI sends a string).
    pub arguments: Value,
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    /// The body parsed as JSON; `Value::Null` when it was not JSON.
    pub body: Value,
    /// The whole answer was handed to the connection (for streams: the last chunk went out).
    pub finished: bool,
    /// The connection gave up on the answer before its end: the client hung up mid-stream.
    pub abandoned: bool,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn wire(&self) -> Option<Wire> {
        Wire::ALL.into_iter().find(|w| w.path() == self.path && self.method == "POST")
    }

    pub fn is_stream(&self) -> bool {
        match self.wire() {
            Some(Wire::Ollama) => self.body["stream"] != false,
            _ => self.body["stream"] == true,
        }
    }

    /// Names of the tools offered; `None` when the request has no `tools` key at all.
    /// Tools the model may call: `None` when none are listed or the request forbids calls
    /// (`tool_choice: "none"` / `{"type": "none"}`, the forced final answer).
    pub fn tools_offered(&self) -> Option<Vec<String>> {
        let choice = self.body.get("tool_choice");
        if choice.is_some_and(|c| c == "none" || c.get("type").is_some_and(|t| t == "none")) {
            return None;
        }
        let tools = self.body.get("tools")?.as_array()?;
        let names = tools.iter().filter_map(|t| t.pointer("/function/name").or_else(|| t.get("name"))?.as_str());
        Some(names.map(str::to_string).collect())
    }

    /// The conversation as `(role, text)`, system prompt first, whatever the wire format. Tool
    /// results appear as `("tool", content)`; tool calls are left out (see
    /// [`RecordedRequest::tool_calls_sent`]).
    pub fn transcript(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(system) = self.body.get("system").and_then(Value::as_str) {
            out.push(("system".to_string(), system.to_string()));
        }
        for message in self.body["messages"].as_array().into_iter().flatten() {
            let role = message["role"].as_str().unwrap_or_default().to_string();
            match &message["content"] {
                Value::String(text) => out.push((role, text.clone())),
                Value::Array(blocks) => {
                    for block in blocks {
                        match block["type"].as_str() {
                            Some("text") => out.push((role.clone(), block_text(&block["text"]))),
                            Some("tool_result") => out.push(("tool".to_string(), block_text(&block["content"]))),
                            _ => {}
                        }
                    }
                }
                _ => out.push((role, String::new())),
            }
        }
        out
    }

    /// `(role, text)` of the turns that carry text (tool-call-only assistant turns left out).
    pub fn text_turns(&self) -> Vec<(String, String)> {
        self.transcript().into_iter().filter(|(role, text)| !(role == "assistant" && text.is_empty())).collect()
    }

    /// The tool results sent back, in order.
    pub fn tool_results(&self) -> Vec<SentToolResult> {
        let mut out = Vec::new();
        for message in self.body["messages"].as_array().into_iter().flatten() {
            if message["role"] == "tool" {
                out.push(SentToolResult {
                    call_id: message["tool_call_id"].as_str().map(str::to_string),
                    tool_name: message["tool_name"].as_str().map(str::to_string),
                    content: block_text(&message["content"]),
                });
            }
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" {
                    out.push(SentToolResult {
                        call_id: block["tool_use_id"].as_str().map(str::to_string),
                        tool_name: None,
                        content: block_text(&block["content"]),
                    });
                }
            }
        }
        out
    }

    /// The assistant tool calls echoed back in the history, in order.
    pub fn tool_calls_sent(&self) -> Vec<SentToolCall> {
        let mut out = Vec::new();
        for message in self.body["messages"].as_array().into_iter().flatten() {
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                let arguments = match &call["function"]["arguments"] {
                    Value::String(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
                    other => other.clone(),
                };
                out.push(SentToolCall {
                    id: call["id"].as_str().map(str::to_string),
                    name: call["function"]["name"].as_str().unwrap_or_default().to_string(),
                    arguments,
                });
            }
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_use" {
                    out.push(SentToolCall {
                        id: block["id"].as_str().map(str::to_string),
                        name: block["name"].as_str().unwrap_or_default().to_string(),
                        arguments: block["input"].clone(),
                    });
                }
            }
        }
        out
    }
}

/// Text of a content value: a string, or the concatenated text blocks of an array.
fn block_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => String::new(),
    }
}

#[derive(Default)]
struct State {
    default: Script,
    queue: VecDeque<Script>,
    requests: Vec<RecordedRequest>,
    embeddings: EmbeddingSettings,
    rerank: RerankSettings,
}

/// The embedding endpoints' behaviour.
struct EmbeddingSettings {
    dimensions: usize,
    /// Anything but 200 answers with the provider's error body.
    status: u16,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        EmbeddingSettings { dimensions: MOCK_EMBEDDING_DIMENSIONS, status: 200 }
    }
}

/// The answer shape of `POST /rerank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RerankStyle {
    /// Jina and llama.cpp server: `{"model", "results": [{"index", "relevance_score"}], "usage"}`.
    #[default]
    Jina,
    /// Hugging Face TEI: a bare array `[{"index", "score"}]`.
    Tei,
}

#[derive(Default)]
struct RerankSettings {
    style: RerankStyle,
    /// `(needle, score)`: a document scores the sum of the needles it contains (case-insensitive).
    /// Empty: the share of the query's words (3+ letters) the document contains.
    scores: Vec<(String, f64)>,
}

/// Coordinates of [`mock_embedding`] vectors unless a test sets others.
pub const MOCK_EMBEDDING_DIMENSIONS: usize = 256;

/// Words the mock embedder treats as one concept (word → concept).
const SYNONYMS: &[(&str, &str)] = &[
    ("automobile", "car"),
    ("automobiles", "car"),
    ("cars", "car"),
    ("vehicle", "car"),
    ("feline", "cat"),
    ("kitten", "cat"),
    ("cats", "cat"),
    ("canine", "dog"),
    ("puppy", "dog"),
    ("dogs", "dog"),
];

/// The lower-cased alphanumeric words of `text`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The mock's embedding of `text`: a bag of words, each word (after [`SYNONYMS`]) adding 1 to
/// coordinate `fnv1a(word) % dimensions`. Not normalised (the server normalises); the zero
/// vector when `text` has no word. Deterministic and non-negative, so cosines are in [0, 1].
pub fn mock_embedding(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0.0f32; dimensions.max(1)];
    for word in words(text) {
        let concept = SYNONYMS.iter().find(|(w, _)| *w == word).map_or(word.as_str(), |(_, c)| c);
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in concept.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let len = vector.len() as u64;
        vector[(hash % len) as usize] += 1.0;
    }
    vector
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}

/// The texts of an embedding request's `input`: a string or an array of strings.
fn input_texts(body: &Value) -> Vec<String> {
    match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or_default().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The mock reranker's score of `document` for `query`.
fn rerank_score(settings: &RerankSettings, query: &str, document: &str) -> f64 {
    let lower = document.to_lowercase();
    if !settings.scores.is_empty() {
        return settings
            .scores
            .iter()
            .filter(|(needle, _)| lower.contains(&needle.to_lowercase()))
            .map(|(_, s)| s)
            .sum();
    }
    let mut query_words: Vec<String> = words(query).into_iter().filter(|w| w.chars().count() >= 3).collect();
    query_words.sort();
    query_words.dedup();
    if query_words.is_empty() {
        return 0.0;
    }
    let document_words = words(document);
    let found = query_words.iter().filter(|w| document_words.contains(w)).count();
    found as f64 / query_words.len() as f64
}

/// Answer the embedding and rerank routes; `None` for any other path.
fn rag_answer(state: &State, method: &http::Method, path: &str, body: &Value) -> Option<http::Response<Body>> {
    if method != http::Method::POST {
        return None;
    }
    let model = body["model"].as_str().unwrap_or("mock-embed").to_string();
    match path {
        "/api/embed" | "/v1/embeddings" => {
            let ollama = path == "/api/embed";
            let settings = &state.embeddings;
            if settings.status != 200 {
                let error = if ollama {
                    json!({ "error": "mock embedding error" })
                } else {
                    json!({ "error": { "message": "mock embedding error", "type": "server_error" } })
                };
                return Some(json_response(settings.status, &error));
            }
            let texts = input_texts(body);
            let vectors: Vec<Vec<f32>> = texts.iter().map(|t| mock_embedding(t, settings.dimensions)).collect();
            let answer = if ollama {
                json!({ "model": model, "embeddings": vectors })
            } else {
                // Last first: the spec allows any order, so the client must sort by `index`.
                let data: Vec<Value> = vectors
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(index, v)| json!({ "object": "embedding", "index": index, "embedding": v }))
                    .collect();
                json!({ "object": "list", "data": data, "model": model,
                        "usage": { "prompt_tokens": texts.len(), "total_tokens": texts.len() } })
            };
            Some(json_response(200, &answer))
        }
        "/rerank" | "/v1/rerank" => {
            let query = body["query"].as_str().unwrap_or_default();
            let documents: Vec<&str> = body
                .get("documents")
                .or_else(|| body.get("texts"))
                .and_then(Value::as_array)
                .map(|d| d.iter().map(|d| d.as_str().unwrap_or_default()).collect())
                .unwrap_or_default();
            let mut scored: Vec<(usize, f64)> =
                documents.iter().enumerate().map(|(i, d)| (i, rerank_score(&state.rerank, query, d))).collect();
            // Best first, as the real servers answer; ties keep input order.
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            if let Some(top_n) = body["top_n"].as_u64() {
                scored.truncate(top_n as usize);
            }
            let answer = match state.rerank.style {
                RerankStyle::Jina => {
                    let results: Vec<Value> = scored
                        .iter()
                        .map(|(index, score)| json!({ "index": index, "relevance_score": score }))
                        .collect();
                    json!({ "model": model, "results": results, "usage": { "total_tokens": documents.len() } })
                }
                RerankStyle::Tei => {
                    scored.iter().map(|(index, score)| json!({ "index": index, "score": score })).collect()
                }
            };
            Some(json_response(200, &answer))
        }
        _ => None,
    }
}

/// Where a request's answer reports how it went.
#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<State>>,
    index: usize,
}

impl Recorder {
    fn update(&self, change: impl FnOnce(&mut RecordedRequest)) {
        if let Some(request) = self.state.lock().expect("mock state lock").requests.get_mut(self.index) {
            change(request);
        }
    }
}

/// The running mock; dropping it stops the server (and every answer in progress).
pub struct MockProvider {
    server: StubServer,
    state: Arc<Mutex<State>>,
    /// Permits for paused streams: [`MockProvider::resume`] adds one.
    gate: Arc<Semaphore>,
}

impl MockProvider {
    /// Bind 127.0.0.1:0 and serve with the default [`Script`].
    pub fn start() -> MockProvider {
        let state = Arc::new(Mutex::new(State::default()));
        let gate = Arc::new(Semaphore::new(0));
        let served = Served { state: state.clone(), gate: gate.clone() };
        let server = StubServer::start_with("mock-provider", move |request| respond(served.clone(), request));
        MockProvider { server, state, gate }
    }

    /// `http://127.0.0.1:<port>`: the base URL for Anthropic and Ollama clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `http://127.0.0.1:<port>/v1`: the base URL OpenAI-compatible clients expect.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr())
    }

    /// The `base_url` a provider of `wire` is configured with.
    pub fn base_url(&self, wire: Wire) -> String {
        match wire {
            Wire::OpenAi => self.openai_base_url(),
            Wire::Anthropic | Wire::Ollama => self.url(),
        }
    }

    /// Answer every later request with `script` (after any queued ones).
    pub fn set_script(&self, script: Script) {
        self.lock().default = script;
    }

    /// Answer the next not-yet-scripted request with `script`, once.
    pub fn enqueue(&self, script: Script) {
        self.lock().queue.push_back(script);
    }

    /// Let one paused stream go on.
    pub fn resume(&self) {
        self.gate.add_permits(1);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Chat calls only (any of the three wire paths), in arrival order.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.wire().is_some()).collect()
    }

    /// Embedding calls only (Ollama `/api/embed` and OpenAI `/v1/embeddings`), in arrival order.
    pub fn embedding_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path == "/api/embed" || r.path == "/v1/embeddings").collect()
    }

    /// Rerank calls only, in arrival order.
    pub fn rerank_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path == "/rerank" || r.path == "/v1/rerank").collect()
    }

    /// Vectors of `dimensions` coordinates from now on (default [`MOCK_EMBEDDING_DIMENSIONS`]).
    pub fn set_embedding_dimensions(&self, dimensions: usize) {
        self.lock().embeddings.dimensions = dimensions;
    }

    /// Answer embedding calls with this status (200 restores success).
    pub fn set_embedding_status(&self, status: u16) {
        self.lock().embeddings.status = status;
    }

    /// Answer `/rerank` in this shape.
    pub fn set_rerank_style(&self, style: RerankStyle) {
        self.lock().rerank.style = style;
    }

    /// Score each document by the needles it contains instead of by word overlap.
    pub fn set_rerank_scores(&self, scores: &[(&str, f64)]) {
        self.lock().rerank.scores = scores.iter().map(|(needle, score)| (needle.to_string(), *score)).collect();
    }

    /// Poll (within a hang guard) until `done` holds for the recorded requests; returns them.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[RecordedRequest]) -> bool) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + WAIT_GUARD;
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(Instant::now() < deadline, "mock provider: never saw {what}; requests: {requests:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("mock state lock")
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct Served {
    state: Arc<Mutex<State>>,
    gate: Arc<Semaphore>,
}

/// Answer one request; `Err` makes hyper drop the connection without an answer.
async fn respond(served: Served, request: http::Request<Incoming>) -> Result<http::Response<Body>, io::Error> {
    let (parts, incoming) = request.into_parts();
    let bytes = incoming.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let wire = Wire::of(&parts.method, parts.uri.path());
    let (script, sequence) = {
        let mut state = served.state.lock().expect("mock state lock");
        state.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
            body: body.clone(),
            finished: false,
            abandoned: false,
        });
        // A stray request (say, a model listing) must not use up a script meant for a chat call.
        let script = match wire {
            Some(_) => state.queue.pop_front().unwrap_or_else(|| state.default.clone()),
            None => Script::default(),
        };
        (script, state.requests.len())
    };
    let recorder = Recorder { state: served.state.clone(), index: sequence - 1 };
    if wire.is_none() {
        let answer = rag_answer(&served.state.lock().expect("mock state lock"), &parts.method, parts.uri.path(), &body);
        if let Some(answer) = answer {
            recorder.update(|r| r.finished = true);
            return Ok(answer);
        }
    }
    let Some(wire) = wire else {
        let error = format!("mock provider: no route {} {}", parts.method, parts.uri.path());
        recorder.update(|r| r.finished = true);
        return Ok(json_response(404, &json!({ "error": error })));
    };
    let headers = script.headers.clone();
    let mut response = answer_chat(&served, wire, script, &body, sequence, recorder).await?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = http::HeaderValue::from_str(&value).expect("a valid header value");
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

/// A chat call's answer as `script` says (the script's extra headers aside).
async fn answer_chat(
    served: &Served,
    wire: Wire,
    script: Script,
    body: &Value,
    sequence: usize,
    recorder: Recorder,
) -> Result<http::Response<Body>, io::Error> {
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    if script.failure == Some(Failure::Hang) {
        // Cancelled when the mock's runtime is dropped.
        std::future::pending::<()>().await;
    }
    if script.failure == Some(Failure::Reset) {
        // Recorded as neither finished nor abandoned: nothing was sent.
        return Err(io::Error::new(io::ErrorKind::ConnectionReset, "mock provider: connection reset"));
    }
    if script.status != 200 {
        recorder.update(|r| r.finished = true);
        return Ok(json_response(script.status, &error_body(wire, &script)));
    }

    let model = body["model"].as_str().unwrap_or("mock-model").to_string();
    let reply = Reply { script, model, id: sequence, created: unix_now() };
    let stream = match wire {
        // Ollama streams unless told not to; the others only when asked.
        Wire::Ollama => body["stream"] != false,
        Wire::OpenAi | Wire::Anthropic => body["stream"] == true,
    };
    if !stream {
        let value = match wire {
            Wire::OpenAi => reply.openai_json(),
            Wire::Anthropic => reply.anthropic_json(),
            Wire::Ollama => reply.ollama_json(),
        };
        let half = || {
            let text = value.to_string();
            Bytes::from(text.chars().take(text.chars().count() / 2).collect::<String>())
        };
        if let Some(Failure::Cut(_)) = reply.script.failure {
            // Headers and half the JSON, then the connection goes.
            let body = drip(vec![half()], &reply.script, true, served.gate.clone(), recorder);
            return Ok(raw_response("application/json", body));
        }
        recorder.update(|r| r.finished = true);
        return Ok(match reply.script.failure {
            Some(Failure::Truncate) => raw_response("application/json", full(half())),
            Some(Failure::Malformed) => raw_response("application/json", full(Bytes::from_static(b"{not json"))),
            _ => json_response(200, &value),
        });
    }
    let (content_type, chunks, bad_chunk) = match wire {
        Wire::OpenAi => {
            let include_usage = body["stream_options"]["include_usage"] == true;
            ("text/event-stream", reply.openai_stream(include_usage), &b"data: {not json\n\n"[..])
        }
        Wire::Anthropic => ("text/event-stream", reply.anthropic_stream(), &b"data: {not json\n\n"[..]),
        Wire::Ollama => ("application/x-ndjson", reply.ollama_stream(), &b"{not json\n"[..]),
    };
    let (chunks, cut) = match reply.script.failure {
        Some(Failure::Truncate) => (chunks[..chunks.len() / 2].to_vec(), false),
        Some(Failure::Malformed) => {
            let mut chunks = chunks;
            chunks.insert(chunks.len() / 2, Bytes::from_static(bad_chunk));
            (chunks, false)
        }
        Some(Failure::Cut(after)) => (chunks[..after.min(chunks.len())].to_vec(), true),
        _ => (chunks, false),
    };
    let body = drip(chunks, &reply.script, cut, served.gate.clone(), recorder);
    let mut response = raw_response(content_type, body);
    if content_type == "text/event-stream" {
        response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    }
    Ok(response)
}

/// Each provider's error shape.
fn error_body(wire: Wire, script: &Script) -> Value {
    let message = script.error_message.as_str();
    match wire {
        Wire::OpenAi => {
            let kind = if script.status == 429 { "rate_limit_error" } else { "server_error" };
            json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })
        }
        Wire::Anthropic => {
            let kind = match script.status {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            json!({ "type": "error", "error": { "type": kind, "message": message } })
        }
        Wire::Ollama => json!({ "error": message }),
    }
}

/// What a successful answer is built from.
struct Reply {
    script: Script,
    model: String,
    id: usize,
    created: u64,
}

/// `text` cut in two at a character boundary (so partial JSON arrives in two deltas).
fn halves(text: &str) -> [String; 2] {
    let cut = text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i);
    [text[..cut].to_string(), text[cut..].to_string()]
}

impl Reply {
    fn calls(&self) -> &[MockToolCall] {
        &self.script.tool_calls
    }

    fn openai_call_id(&self, index: usize) -> String {
        format!("call_mock_{}_{index}", self.id)
    }

    fn anthropic_call_id(&self, index: usize) -> String {
        format!("toolu_mock_{}_{index}", self.id)
    }

    fn openai_finish(&self) -> &'static str {
        if self.calls().is_empty() { "stop" } else { "tool_calls" }
    }

    fn openai_json(&self) -> Value {
        let mut message = json!({ "role": "assistant", "content": self.script.reply });
        if !self.calls().is_empty() {
            if self.script.reply.is_empty() {
                message["content"] = Value::Null;
            }
            message["tool_calls"] = self
                .calls()
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({ "id": self.openai_call_id(i), "type": "function",
                            "function": { "name": c.name, "arguments": c.arguments.to_string() } })
                })
                .collect();
        }
        let mut answer = json!({
            "id": format!("chatcmpl-mock-{}", self.id),
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "message": message, "finish_reason": self.openai_finish() }],
        });
        if !self.script.without_usage {
            answer["usage"] = self.openai_usage();
        }
        answer
    }

    fn openai_usage(&self) -> Value {
        let (input, output) = (self.script.input_tokens, self.script.output_tokens);
        let mut usage = json!({ "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output });
        if self.script.cache_read_tokens > 0 {
            usage["prompt_tokens_details"] = json!({ "cached_tokens": self.script.cache_read_tokens });
        }
        usage
    }

    /// Anthropic's usage object: cache reads and writes apart from `input_tokens`, each only
    /// when there are any.
    fn anthropic_usage(&self, output_tokens: u32) -> Value {
        let mut usage = json!({ "input_tokens": self.script.input_tokens, "output_tokens": output_tokens });
        if self.script.cache_read_tokens > 0 {
            usage["cache_read_input_tokens"] = self.script.cache_read_tokens.into();
        }
        if self.script.cache_creation_tokens > 0 {
            usage["cache_creation_input_tokens"] = self.script.cache_creation_tokens.into();
        }
        usage
    }

    /// `data: {chunk}` events, then `data: [DONE]`. Tool calls come as `delta.tool_calls`
    /// pieces (id and name first, then the arguments string in two parts). Usage comes in a
    /// final chunk with empty `choices`, and only when the request set
    /// `stream_options.include_usage`, as OpenAI does.
    fn openai_stream(&self, include_usage: bool) -> Vec<Bytes> {
        let chunk = |choices: Value| {
            json!({
                "id": format!("chatcmpl-mock-{}", self.id),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": choices,
            })
        };
        let delta = |delta: Value| chunk(json!([{ "index": 0, "delta": delta, "finish_reason": null }]));
        let mut events = vec![delta(json!({ "role": "assistant", "content": "" }))];
        for piece in self.script.pieces() {
            events.push(delta(json!({ "content": piece })));
        }
        for (i, call) in self.calls().iter().enumerate() {
            events.push(delta(json!({ "tool_calls": [{
                "index": i, "id": self.openai_call_id(i), "type": "function",
                "function": { "name": call.name, "arguments": "" },
            }]})));
            for part in halves(&call.arguments.to_string()) {
                events.push(delta(json!({ "tool_calls": [{ "index": i, "function": { "arguments": part } }] })));
            }
        }
        events.push(chunk(json!([{ "index": 0, "delta": {}, "finish_reason": self.openai_finish() }])));
        if include_usage && !self.script.without_usage {
            let mut last = chunk(json!([]));
            last["usage"] = self.openai_usage();
            events.push(last);
        }
        let mut out: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {e}\n\n"))).collect();
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }

    fn anthropic_stop_reason(&self) -> &'static str {
        if self.calls().is_empty() { "end_turn" } else { "tool_use" }
    }

    /// Text first (when there is text, or nothing else), then one `tool_use` block per call.
    fn anthropic_json(&self) -> Value {
        let mut content = Vec::new();
        if !self.script.reply.is_empty() || self.calls().is_empty() {
            content.push(json!({ "type": "text", "text": self.script.reply }));
        }
        for (i, call) in self.calls().iter().enumerate() {
            content.push(
                json!({ "type": "tool_use", "id": self.anthropic_call_id(i), "name": call.name, "input": call.arguments }),
            );
        }
        let mut answer = json!({
            "id": format!("msg_mock_{}", self.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.anthropic_stop_reason(),
            "stop_sequence": null,
        });
        if !self.script.without_usage {
            answer["usage"] = self.anthropic_usage(self.script.output_tokens);
        }
        answer
    }

    /// The Messages streaming sequence: input tokens in `message_start`, output tokens in
    /// `message_delta`; a text block, then each tool call as a `tool_use` block whose input
    /// arrives as two `input_json_delta` parts.
    fn anthropic_stream(&self) -> Vec<Bytes> {
        let mut start = json!({ "type": "message_start", "message": {
            "id": format!("msg_mock_{}", self.id), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
        }});
        if !self.script.without_usage {
            start["message"]["usage"] = self.anthropic_usage(1);
        }
        let mut events = vec![("message_start", start)];
        let mut index = 0;
        let ping = ("ping", json!({ "type": "ping" }));
        if !self.script.reply.is_empty() || self.calls().is_empty() {
            events.push((
                "content_block_start",
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ));
            events.push(ping.clone());
            for piece in self.script.pieces() {
                events.push((
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } }),
                ));
            }
            events.push(("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
            index += 1;
        }
        for (i, call) in self.calls().iter().enumerate() {
            events.push((
                "content_block_start",
                json!({ "type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": self.anthropic_call_id(i), "name": call.name, "input": {},
                }}),
            ));
            if index == 0 {
                events.push(ping.clone());
            }
            for part in halves(&call.arguments.to_string()) {
                events.push((
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": index,
                            "delta": { "type": "input_json_delta", "partial_json": part } }),
                ));
            }
            events.push(("content_block_stop", json!({ "type": "content_block_stop", "index": index })));
            index += 1;
        }
        let mut delta = json!({
            "type": "message_delta",
            "delta": { "stop_reason": self.anthropic_stop_reason(), "stop_sequence": null },
        });
        if !self.script.without_usage {
            delta["usage"] = json!({ "output_tokens": self.script.output_tokens });
        }
        events.push(("message_delta", delta));
        events.push(("message_stop", json!({ "type": "message_stop" })));
        events.iter().map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n"))).collect()
    }

    /// Ollama's tool calls: no ids, arguments as an object.
    fn ollama_calls(&self) -> Value {
        self.calls().iter().map(|c| json!({ "function": { "name": c.name, "arguments": c.arguments } })).collect()
    }

    fn ollama_json(&self) -> Value {
        let mut last = self.ollama_final();
        last["message"]["content"] = self.script.reply.clone().into();
        if !self.calls().is_empty() {
            last["message"]["tool_calls"] = self.ollama_calls();
        }
        last
    }

    /// One JSON object per line; tool calls arrive whole in one line; the last line has
    /// `done: true` and the token counts.
    fn ollama_stream(&self) -> Vec<Bytes> {
        let line = |message: Value| json!({ "model": self.model, "created_at": self.created_at(), "message": message, "done": false });
        let mut lines: Vec<Value> = self
            .script
            .pieces()
            .into_iter()
            .map(|piece| line(json!({ "role": "assistant", "content": piece })))
            .collect();
        if !self.calls().is_empty() {
            lines.push(line(json!({ "role": "assistant", "content": "", "tool_calls": self.ollama_calls() })));
        }
        lines.push(self.ollama_final());
        lines.iter().map(|line| Bytes::from(format!("{line}\n"))).collect()
    }

    fn ollama_final(&self) -> Value {
        let mut last = json!({
            "model": self.model,
            "created_at": self.created_at(),
            "message": { "role": "assistant", "content": "" },
            "done": true,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 1_000,
            "prompt_eval_count": self.script.input_tokens,
            "prompt_eval_duration": 1_000,
            "eval_count": self.script.output_tokens,
            "eval_duration": 1_000,
        });
        if self.script.without_usage
            && let Some(fields) = last.as_object_mut()
        {
            fields.remove("prompt_eval_count");
            fields.remove("eval_count");
        }
        last
    }

    fn created_at(&self) -> String {
        let at =
            time::OffsetDateTime::from_unix_timestamp(self.created as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A whole body in one piece.
fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never: Infallible| match never {}).boxed_unsync()
}

fn json_response(status: u16, body: &Value) -> http::Response<Body> {
    let mut response = raw_response("application/json", full(Bytes::from(body.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

fn raw_response(content_type: &'static str, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

/// A streamed body fed by a task that sends one frame per chunk, `chunk_delay` apart, pausing
/// where the script says. The task records whether every chunk went out (`finished`) or the
/// connection dropped the body first (`abandoned`: the client hung up). With `cut`, the body
/// fails after its last chunk, which makes hyper drop the connection mid-body (recorded as
/// neither finished nor abandoned).
fn drip(chunks: Vec<Bytes>, script: &Script, cut: bool, gate: Arc<Semaphore>, recorder: Recorder) -> Body {
    let (frames, receiver) = mpsc::channel::<io::Result<Bytes>>(1);
    let (delay, pause_after) = (script.chunk_delay, script.pause_after);
    tokio::spawn(async move {
        let mut complete = true;
        for (sent, chunk) in chunks.into_iter().enumerate() {
            if sent > 0 && !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = frames.closed() => {
                        complete = false;
                        break;
                    }
                }
            }
            if pause_after == Some(sent) {
                tokio::select! {
                    permit = gate.acquire() => permit.expect("the gate is never closed").forget(),
                    _ = frames.closed() => {
                        complete = false;
                        break;
                    }
                }
            }
            if frames.send(Ok(chunk)).await.is_err() {
                complete = false;
                break;
            }
        }
        if complete && cut {
            // Let the connection write out the last chunk before it goes.
            tokio::time::sleep(CUT_SETTLE).await;
            let reset = io::Error::new(io::ErrorKind::ConnectionReset, "mock provider: connection cut");
            let _ = frames.send(Err(reset)).await;
            recorder.update(|r| {
                r.finished = false;
                r.abandoned = false;
            });
            return;
        }
        recorder.update(|r| {
            r.finished = complete;
            r.abandoned = !complete;
        });
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let frame = receiver.recv().await?.map(Frame::data);
        Some((frame, receiver))
    });
    StreamBody::new(stream).boxed_unsync()
}
