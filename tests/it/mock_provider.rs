//! A mock LLM provider: a real HTTP server on 127.0.0.1:0 speaking the OpenAI
//! (`/v1/chat/completions`), Anthropic (`/v1/messages`) and Ollama (`/api/chat`) wire formats,
//! JSON and streaming, scriptable per test and recording every request it receives.
//!
//! It runs on its own thread and runtime, so it keeps answering whatever the test's runtime is
//! doing. A test sets a default [`Script`] (used for every request) and may queue one-shot
//! scripts that are used first, in order: e.g. one 503 and then the default success.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How the mock answers one request.
#[derive(Debug, Clone)]
pub struct Script {
    /// The assistant's text; streamed as one delta per word (trailing space included).
    pub reply: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Anything but 200 answers with the provider's error body carrying `error_message`.
    pub status: u16,
    pub error_message: String,
    /// Wait this long before sending anything (headers included).
    pub delay: Duration,
    /// Wait this long between streamed chunks.
    pub chunk_delay: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            reply: "Hello from the mock provider.".into(),
            input_tokens: 11,
            output_tokens: 7,
            status: 200,
            error_message: "mock provider error".into(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
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

    pub fn usage(mut self, input_tokens: u32, output_tokens: u32) -> Script {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
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

    /// The streamed pieces of the reply; they concatenate to exactly `reply`.
    fn pieces(&self) -> Vec<String> {
        self.reply.split_inclusive(' ').map(str::to_string).collect()
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    /// The body parsed as JSON; `Value::Null` when it was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct State {
    default: Script,
    queue: VecDeque<Script>,
    requests: Vec<RecordedRequest>,
}

/// The running mock; dropping it stops the server.
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// Bind 127.0.0.1:0 and serve with the default [`Script`].
    pub fn start() -> MockProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the mock provider");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("mock address");
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("mock-provider-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("mock runtime");
                runtime.block_on(serve(listener, served, stopped));
            })
            .expect("spawn the mock provider thread");
        MockProvider { addr, state, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:<port>`: the base URL for Anthropic and Ollama clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/v1`: the base URL OpenAI-compatible clients expect.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Answer every later request with `script` (after any queued ones).
    pub fn set_script(&self, script: Script) {
        self.lock().default = script;
    }

    /// Answer the next not-yet-scripted request with `script`, once.
    pub fn enqueue(&self, script: Script) {
        self.lock().queue.push_back(script);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("mock state lock")
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[derive(Clone, Copy)]
enum Wire {
    OpenAi,
    Anthropic,
    Ollama,
}

async fn respond(
    state: Arc<Mutex<State>>,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let (parts, incoming) = request.into_parts();
    let bytes = incoming.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let wire = match (&parts.method, parts.uri.path()) {
        (&http::Method::POST, "/v1/chat/completions") => Some(Wire::OpenAi),
        (&http::Method::POST, "/v1/messages") => Some(Wire::Anthropic),
        (&http::Method::POST, "/api/chat") => Some(Wire::Ollama),
        _ => None,
    };
    let (script, sequence) = {
        let mut state = state.lock().expect("mock state lock");
        state.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        // A stray request (say, a model listing) must not use up a script meant for a chat call.
        let script = match wire {
            Some(_) => state.queue.pop_front().unwrap_or_else(|| state.default.clone()),
            None => Script::default(),
        };
        (script, state.requests.len())
    };
    let Some(wire) = wire else {
        let error = format!("mock provider: no route {} {}", parts.method, parts.uri.path());
        return Ok(json_response(404, &json!({ "error": error })));
    };
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    if script.status != 200 {
        return Ok(json_response(script.status, &error_body(wire, &script)));
    }

    let model = body["model"].as_str().unwrap_or("mock-model").to_string();
    let reply = Reply { script, model, id: sequence, created: unix_now() };
    Ok(match wire {
        // Ollama streams unless told not to; the others only when asked.
        Wire::Ollama if body["stream"] != false => ndjson_response(&reply, reply.ollama_stream()),
        Wire::Ollama => json_response(200, &reply.ollama_json()),
        Wire::OpenAi if body["stream"] == true => {
            let include_usage = body["stream_options"]["include_usage"] == true;
            sse_response(&reply, reply.openai_stream(include_usage))
        }
        Wire::OpenAi => json_response(200, &reply.openai_json()),
        Wire::Anthropic if body["stream"] == true => sse_response(&reply, reply.anthropic_stream()),
        Wire::Anthropic => json_response(200, &reply.anthropic_json()),
    })
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

impl Reply {
    fn openai_json(&self) -> Value {
        json!({
            "id": format!("chatcmpl-mock-{}", self.id),
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.script.reply },
                "finish_reason": "stop",
            }],
            "usage": self.openai_usage(),
        })
    }

    fn openai_usage(&self) -> Value {
        let (input, output) = (self.script.input_tokens, self.script.output_tokens);
        json!({ "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output })
    }

    /// `data: {chunk}` events, then `data: [DONE]`. Usage comes in a final chunk with empty
    /// `choices`, and only when the request set `stream_options.include_usage`, as OpenAI does.
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
        let mut events = vec![chunk(json!([{
            "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null,
        }]))];
        for piece in self.script.pieces() {
            events.push(chunk(json!([{ "index": 0, "delta": { "content": piece }, "finish_reason": null }])));
        }
        events.push(chunk(json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }])));
        if include_usage {
            let mut last = chunk(json!([]));
            last["usage"] = self.openai_usage();
            events.push(last);
        }
        let mut out: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {e}\n\n"))).collect();
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }

    fn anthropic_json(&self) -> Value {
        json!({
            "id": format!("msg_mock_{}", self.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{ "type": "text", "text": self.script.reply }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": self.script.input_tokens, "output_tokens": self.script.output_tokens },
        })
    }

    /// The Messages streaming sequence: input tokens in `message_start`, output tokens in
    /// `message_delta`.
    fn anthropic_stream(&self) -> Vec<Bytes> {
        let mut events = vec![
            (
                "message_start",
                json!({ "type": "message_start", "message": {
                    "id": format!("msg_mock_{}", self.id), "type": "message", "role": "assistant",
                    "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": { "input_tokens": self.script.input_tokens, "output_tokens": 1 },
                }}),
            ),
            (
                "content_block_start",
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ),
            ("ping", json!({ "type": "ping" })),
        ];
        for piece in self.script.pieces() {
            events.push((
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } }),
            ));
        }
        events.push(("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
        events.push((
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                "usage": { "output_tokens": self.script.output_tokens },
            }),
        ));
        events.push(("message_stop", json!({ "type": "message_stop" })));
        events.iter().map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n"))).collect()
    }

    fn ollama_json(&self) -> Value {
        let mut last = self.ollama_final();
        last["message"]["content"] = self.script.reply.clone().into();
        last
    }

    /// One JSON object per line; the last has `done: true` and the token counts.
    fn ollama_stream(&self) -> Vec<Bytes> {
        let mut lines: Vec<Value> = self
            .script
            .pieces()
            .into_iter()
            .map(|piece| {
                json!({
                    "model": self.model, "created_at": self.created_at(),
                    "message": { "role": "assistant", "content": piece }, "done": false,
                })
            })
            .collect();
        lines.push(self.ollama_final());
        lines.iter().map(|line| Bytes::from(format!("{line}\n"))).collect()
    }

    fn ollama_final(&self) -> Value {
        json!({
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
        })
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

fn json_response(status: u16, body: &Value) -> http::Response<Body> {
    let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn sse_response(reply: &Reply, events: Vec<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(drip(events, reply.script.chunk_delay));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    response
}

fn ndjson_response(reply: &Reply, lines: Vec<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(drip(lines, reply.script.chunk_delay));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-ndjson"));
    response
}

/// A streamed body sending one frame per chunk, `delay` apart.
fn drip(chunks: Vec<Bytes>, delay: Duration) -> Body {
    let frames = futures_util::stream::unfold((chunks.into_iter(), true), move |(mut rest, first)| async move {
        let next = rest.next()?;
        if !first && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, Infallible>(Frame::data(next)), (rest, false)))
    });
    StreamBody::new(frames).boxed_unsync()
}
