//! Provider wire formats as pure functions: request bodies out, responses and stream lines in.
//! No I/O here, so every conversion is unit-tested without a network.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::types::{
    ChatRequest, ChatResponse, FinishReason, ResponseFormat, Role, StreamEvent, ToolCall, ToolChoice, Usage,
};
use crate::config::ProviderKind;

/// Anthropic requires `max_tokens`; this is used when the agent sets none.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 4096;

/// Request body for `kind`, as JSON (what the tests inspect; [`encode_request`] is what is sent).
pub fn request_body(kind: ProviderKind, request: &ChatRequest, stream: bool) -> Value {
    match kind {
        ProviderKind::Openai => serde_json::to_value(OpenAiBody::new(request, stream)).unwrap_or(Value::Null),
        ProviderKind::Anthropic => anthropic_request(request, stream),
        ProviderKind::Ollama => ollama_request(request, stream),
    }
}

/// The request body for `kind`, encoded for sending: the same JSON as [`request_body`]. The
/// OpenAI-compatible wire, which most upstreams speak, is serialized by reference.
pub fn encode_request(kind: ProviderKind, request: &ChatRequest, stream: bool) -> serde_json::Result<Vec<u8>> {
    match kind {
        ProviderKind::Openai => serde_json::to_vec(&OpenAiBody::new(request, stream)),
        ProviderKind::Anthropic | ProviderKind::Ollama => serde_json::to_vec(&request_body(kind, request, stream)),
    }
}

/// A complete answer's body as its provider sent it: the common OpenAI-compatible text answer
/// decoded straight into a [`ChatResponse`], anything else (tool calls, other providers, an
/// unexpected shape) through a JSON tree and [`parse_response`]. `Err` names what is wrong:
/// the JSON parser's message for a body that is not JSON.
pub fn parse_response_bytes(kind: ProviderKind, body: &[u8]) -> Result<ChatResponse, String> {
    if kind == ProviderKind::Openai
        && let Some(response) = openai_text_response(body)
    {
        return Ok(response);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    parse_response(kind, &value)
}

/// Parse a complete (non-streamed) response.
pub fn parse_response(kind: ProviderKind, body: &Value) -> Result<ChatResponse, String> {
    match kind {
        ProviderKind::Openai => openai_response(body),
        ProviderKind::Anthropic => anthropic_response(body),
        ProviderKind::Ollama => ollama_response(body),
    }
}

/// The human message inside a provider's error body, if it has one.
pub fn error_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let message = value
        .pointer("/error/message")
        .or_else(|| value.get("error").filter(|e| e.is_string()))
        .or_else(|| value.get("message"))?;
    message.as_str().map(str::to_string)
}

fn arguments_from_text(text: &str) -> Value {
    if text.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn call_id(index: usize) -> String {
    format!("call_{}_{index}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------- OpenAI-compatible

/// Tool definitions in the `{"type": "function", "function": {...}}` shape that OpenAI and Ollama
/// share.
fn function_tools(request: &ChatRequest) -> Value {
    request
        .tools
        .iter()
        .map(|t| json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
        .collect()
}

/// An OpenAI-compatible chat request, borrowing from the [`ChatRequest`]: serialized straight
/// to the request bytes, so the history (which grows with every turn) is written once instead of
/// being copied into a JSON tree first. The rare parts (tools, response formats) stay JSON values.
#[derive(Serialize)]
struct OpenAiBody<'a> {
    model: &'a str,
    messages: Vec<OpenAiMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    /// Real usage for streamed answers too (vLLM, llama.cpp and OpenAI honour it).
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
}

#[derive(Serialize)]
struct OpenAiMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> OpenAiBody<'a> {
    fn new(request: &'a ChatRequest, stream: bool) -> OpenAiBody<'a> {
        let messages = request
            .messages
            .iter()
            .map(|m| OpenAiMessage {
                role: m.role.as_str(),
                content: &m.content,
                tool_calls: (!m.tool_calls.is_empty()).then(|| {
                    m.tool_calls
                        .iter()
                        .map(|c| {
                            json!({ "id": c.id, "type": "function",
                                    "function": { "name": c.name, "arguments": c.arguments.to_string() } })
                        })
                        .collect()
                }),
                tool_call_id: m.tool_call_id.as_deref(),
            })
            .collect();
        let sampling = &request.sampling;
        let offers_tools = !request.tools.is_empty();
        let choice = if request.tools_disabled { Some(&ToolChoice::None) } else { sampling.tool_choice.as_ref() };
        OpenAiBody {
            model: &request.model,
            messages,
            stream,
            tools: offers_tools.then(|| function_tools(request)),
            tool_choice: choice.filter(|_| offers_tools).map(openai_tool_choice),
            parallel_tool_calls: sampling.parallel_tool_calls.filter(|_| offers_tools),
            max_tokens: sampling.max_tokens,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            stop: &sampling.stop,
            seed: sampling.seed,
            user: sampling.user.as_deref(),
            response_format: sampling.response_format.as_ref().map(openai_response_format),
            stream_options: stream.then(|| json!({ "include_usage": true })),
        }
    }
}

fn openai_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Named(name) => json!({ "type": "function", "function": { "name": name } }),
    }
}

fn openai_response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::JsonObject => json!({ "type": "json_object" }),
        ResponseFormat::JsonSchema { name, schema, strict } => {
            let mut spec = json!({ "name": name, "schema": schema });
            if let Some(strict) = strict {
                spec["strict"] = (*strict).into();
            }
            json!({ "type": "json_schema", "json_schema": spec })
        }
    }
}

/// What [`StreamDecoder::openai_text_chunk`] reads of a chunk; any other field is ignored, and
/// a field of another type fails the parse (and sends the chunk down the general path).
#[derive(Deserialize)]
struct OpenAiTextChunk<'a> {
    /// `null` in vLLM's usage chunk.
    #[serde(default, borrow)]
    choices: Option<Vec<OpenAiTextChoice<'a>>>,
    #[serde(default)]
    usage: Option<OpenAiUsageCounts>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct OpenAiTextChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<OpenAiTextDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OpenAiTextDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct OpenAiUsageCounts {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<OpenAiPromptDetails>,
}

#[derive(Deserialize)]
struct OpenAiPromptDetails {
    /// Inside `prompt_tokens` (OpenAI's convention).
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl OpenAiUsageCounts {
    fn usage(&self) -> Usage {
        let cached = self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0);
        Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cached_input_tokens: cached.min(self.prompt_tokens),
        }
    }
}

fn openai_finish(reason: Option<&str>, has_calls: bool) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        _ if has_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn openai_usage(body: &Value) -> Option<Usage> {
    let usage = body.get("usage").filter(|u| u.is_object())?;
    let input = usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    let cached = usage.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        output_tokens: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
        cached_input_tokens: cached.min(input),
    })
}

/// Anthropic's usage object, normalised: its `input_tokens` excludes cache reads and cache
/// writes, which are added so that `input_tokens` is the whole prompt (cache writes are priced
/// as plain input).
fn anthropic_usage(usage: &Value) -> Usage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cache_read_input_tokens");
    Usage {
        input_tokens: count("input_tokens") + cached + count("cache_creation_input_tokens"),
        output_tokens: count("output_tokens"),
        cached_input_tokens: cached,
    }
}

/// What [`openai_text_response`] reads of a complete answer; any other field is ignored, and a
/// field of another type fails the parse (and sends the body down the general path).
#[derive(Deserialize)]
struct OpenAiTextResponse<'a> {
    #[serde(borrow)]
    choices: Vec<OpenAiTextAnswer<'a>>,
    #[serde(default)]
    usage: Option<OpenAiUsageCounts>,
}

#[derive(Deserialize)]
struct OpenAiTextAnswer<'a> {
    #[serde(borrow)]
    message: OpenAiTextMessage<'a>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OpenAiTextMessage<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

/// The common OpenAI-compatible answer — text, a finish reason, usage — decoded without
/// building a JSON tree (at 32 concurrent chats the tree was 1.7 % of the server's CPU), with
/// exactly what [`openai_response`] makes of the same body. `None` for anything else (tool
/// calls, no choices, a field of an unexpected type): the general path decides those.
fn openai_text_response(body: &[u8]) -> Option<ChatResponse> {
    let answer: OpenAiTextResponse<'_> = serde_json::from_slice(body).ok()?;
    let choice = answer.choices.first()?;
    if choice.message.tool_calls.is_some() {
        return None;
    }
    Some(ChatResponse {
        content: choice.message.content.as_deref().unwrap_or_default().to_string(),
        finish_reason: openai_finish(choice.finish_reason.as_deref(), false),
        tool_calls: Vec::new(),
        usage: answer.usage.as_ref().map(OpenAiUsageCounts::usage),
        stop_sequence: None,
    })
}

fn openai_response(body: &Value) -> Result<ChatResponse, String> {
    let choice = body.pointer("/choices/0").ok_or("response has no choices")?;
    let message = choice.get("message").ok_or("response choice has no message")?;
    let tool_calls = function_calls(message);
    Ok(ChatResponse {
        content: message.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
        finish_reason: openai_finish(choice.get("finish_reason").and_then(Value::as_str), !tool_calls.is_empty()),
        tool_calls,
        usage: openai_usage(body),
        stop_sequence: None,
    })
}

// ---------------------------------------------------------------- Anthropic Messages

fn anthropic_request(request: &ChatRequest, stream: bool) -> Value {
    let system: Vec<&str> =
        request.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let mut messages: Vec<Value> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, content) = match m.role {
            Role::Tool => (
                "user",
                json!([{ "type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content }]),
            ),
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({ "type": "text", "text": m.content }));
                }
                for c in &m.tool_calls {
                    let input = if c.arguments.is_object() { c.arguments.clone() } else { json!({}) };
                    blocks.push(json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": input }));
                }
                ("assistant", Value::Array(blocks))
            }
            Role::Assistant => ("assistant", json!(m.content)),
            _ => ("user", json!(m.content)),
        };
        // Consecutive tool results belong in one user turn.
        if let Some(last) = messages.last_mut()
            && role == "user"
            && last["role"] == "user"
            && let (Some(existing), Some(new)) = (last["content"].as_array_mut(), content.as_array())
        {
            existing.extend(new.iter().cloned());
            continue;
        }
        messages.push(json!({ "role": role, "content": content }));
    }
    let sampling = &request.sampling;
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": sampling.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
        "stream": stream,
    });
    if !system.is_empty() {
        body["system"] = system.join("\n\n").into();
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        let choice = if request.tools_disabled { Some(&ToolChoice::None) } else { sampling.tool_choice.as_ref() };
        let mut tool_choice = match choice {
            Some(ToolChoice::None) => Some(json!({ "type": "none" })),
            Some(ToolChoice::Required) => Some(json!({ "type": "any" })),
            Some(ToolChoice::Named(name)) => Some(json!({ "type": "tool", "name": name })),
            Some(ToolChoice::Auto) => Some(json!({ "type": "auto" })),
            None => None,
        };
        if sampling.parallel_tool_calls == Some(false) && choice != Some(&ToolChoice::None) {
            let choice = tool_choice.get_or_insert_with(|| json!({ "type": "auto" }));
            choice["disable_parallel_tool_use"] = true.into();
        }
        if let Some(tool_choice) = tool_choice {
            body["tool_choice"] = tool_choice;
        }
    }
    if let Some(t) = sampling.temperature {
        body["temperature"] = t.into();
    }
    if let Some(p) = sampling.top_p {
        body["top_p"] = p.into();
    }
    if !sampling.stop.is_empty() {
        body["stop_sequences"] = sampling.stop.clone().into();
    }
    if let Some(user) = &sampling.user {
        body["metadata"] = json!({ "user_id": user });
    }
    body
}

fn anthropic_finish(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn anthropic_response(body: &Value) -> Result<ChatResponse, String> {
    let blocks = body.get("content").and_then(Value::as_array).ok_or("response has no content blocks")?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block.get("id").and_then(Value::as_str).map_or_else(|| call_id(i), str::to_string),
                name: block.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => {}
        }
    }
    let usage = body.get("usage").map(anthropic_usage);
    Ok(ChatResponse {
        content,
        finish_reason: anthropic_finish(body.get("stop_reason").and_then(Value::as_str)),
        tool_calls,
        usage,
        stop_sequence: body.get("stop_sequence").and_then(Value::as_str).map(str::to_string),
    })
}

// ---------------------------------------------------------------- Ollama

fn ollama_request(request: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let mut out = json!({ "role": m.role.as_str(), "content": m.content });
            if !m.tool_calls.is_empty() {
                out["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({ "function": { "name": c.name, "arguments": c.arguments } }))
                    .collect();
            }
            if let Some(name) = &m.tool_name
                && m.role == Role::Tool
            {
                out["tool_name"] = name.clone().into();
            }
            out
        })
        .collect();
    let mut body = json!({ "model": request.model, "messages": messages, "stream": stream });
    let sampling = &request.sampling;
    // Ollama has no tool_choice: a forced final answer (or `none`) simply lists no tools.
    if !request.tools.is_empty() && !request.tools_disabled && sampling.tool_choice != Some(ToolChoice::None) {
        body["tools"] = function_tools(request);
    }
    let mut options = serde_json::Map::new();
    if let Some(max) = sampling.max_tokens {
        options.insert("num_predict".into(), max.into());
    }
    if let Some(t) = sampling.temperature {
        options.insert("temperature".into(), t.into());
    }
    if let Some(p) = sampling.top_p {
        options.insert("top_p".into(), p.into());
    }
    if !sampling.stop.is_empty() {
        options.insert("stop".into(), sampling.stop.clone().into());
    }
    if let Some(seed) = sampling.seed {
        options.insert("seed".into(), seed.into());
    }
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    match &sampling.response_format {
        Some(ResponseFormat::JsonObject) => body["format"] = "json".into(),
        Some(ResponseFormat::JsonSchema { schema, .. }) => body["format"] = schema.clone(),
        None => {}
    }
    body
}

/// `message.tool_calls[]` in the OpenAI/Ollama shape (`{id?, function: {name, arguments}}`),
/// arguments as a JSON string (OpenAI) or an object (Ollama).
fn function_calls(message: &Value) -> Vec<ToolCall> {
    let Some(calls) = message.get("tool_calls").and_then(Value::as_array) else {
        return Vec::new();
    };
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c.get("id").and_then(Value::as_str).map_or_else(|| call_id(i), str::to_string),
            name: c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_string(),
            arguments: match c.pointer("/function/arguments") {
                Some(Value::String(text)) => arguments_from_text(text),
                Some(other) => other.clone(),
                None => json!({}),
            },
        })
        .collect()
}

fn ollama_usage(body: &Value) -> Option<Usage> {
    let input = body.get("prompt_eval_count").and_then(Value::as_u64);
    let output = body.get("eval_count").and_then(Value::as_u64);
    (input.is_some() || output.is_some()).then(|| Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: 0,
    })
}

fn ollama_finish(body: &Value, has_calls: bool) -> FinishReason {
    match body.get("done_reason").and_then(Value::as_str) {
        Some("length") => FinishReason::Length,
        _ if has_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn ollama_response(body: &Value) -> Result<ChatResponse, String> {
    let message = body.get("message").ok_or("response has no message")?;
    let tool_calls = function_calls(message);
    Ok(ChatResponse {
        content: message.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
        finish_reason: ollama_finish(body, !tool_calls.is_empty()),
        tool_calls,
        usage: ollama_usage(body),
        stop_sequence: None,
    })
}

// ---------------------------------------------------------------- streams

/// A tool call being assembled from a stream.
#[derive(Default)]
struct PendingCall {
    /// The provider's index for it (OpenAI-style streams); Anthropic and Ollama need none.
    upstream_index: Option<u64>,
    id: String,
    name: String,
    /// Argument text received so far (OpenAI, Anthropic).
    arguments: String,
    /// Arguments received whole, as an object (Ollama).
    object: Option<Value>,
    /// Whether `ToolCallStart` has been emitted (it waits until the name is known).
    announced: bool,
}

/// Turns a provider's stream, line by line, into text and tool-call deltas and a final response.
pub struct StreamDecoder {
    kind: ProviderKind,
    content: String,
    calls: Vec<PendingCall>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    stop_sequence: Option<String>,
    done: bool,
}

impl StreamDecoder {
    pub fn new(kind: ProviderKind) -> Self {
        StreamDecoder {
            kind,
            content: String::new(),
            calls: Vec::new(),
            usage: None,
            finish: None,
            stop_sequence: None,
            done: false,
        }
    }

    /// Feed one line (without its newline); returns the deltas it carries, in order (never
    /// `Done`: see [`StreamDecoder::finish`]).
    pub fn line(&mut self, line: &str) -> Result<Vec<StreamEvent>, String> {
        let line = line.trim_end_matches('\r');
        let mut events = Vec::new();
        if line.is_empty() || line.starts_with(':') || line.starts_with("event:") {
            return Ok(events);
        }
        match self.kind {
            ProviderKind::Openai | ProviderKind::Anthropic => {
                let Some(data) = line.strip_prefix("data:") else { return Ok(events) };
                let data = data.trim_start();
                if data == "[DONE]" {
                    self.done = true;
                    return Ok(events);
                }
                if self.kind == ProviderKind::Openai && self.openai_text_chunk(data, &mut events) {
                    return Ok(events);
                }
                let value: Value = serde_json::from_str(data).map_err(|e| format!("malformed stream chunk: {e}"))?;
                if self.kind == ProviderKind::Openai {
                    self.openai_chunk(&value, &mut events)?
                } else {
                    self.anthropic_event(&value, &mut events)?
                }
            }
            ProviderKind::Ollama => {
                let value: Value = serde_json::from_str(line).map_err(|e| format!("malformed stream chunk: {e}"))?;
                self.ollama_chunk(&value, &mut events)?;
            }
        }
        Ok(events)
    }

    /// The common OpenAI-compatible chunk — a text delta, a finish reason, usage — decoded
    /// without building a JSON tree (once per token, for every open stream). `false`, having
    /// changed nothing, for anything else (tool calls, an error, an unexpected shape): the
    /// general path [`StreamDecoder::openai_chunk`] decides those.
    fn openai_text_chunk(&mut self, data: &str, events: &mut Vec<StreamEvent>) -> bool {
        let Ok(chunk) = serde_json::from_str::<OpenAiTextChunk<'_>>(data) else { return false };
        let choice = chunk.choices.as_deref().and_then(<[_]>::first);
        if chunk.error.is_some() || choice.and_then(|c| c.delta.as_ref()).is_some_and(|d| d.tool_calls.is_some()) {
            return false;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.usage());
        }
        let Some(choice) = choice else { return true };
        if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
            self.push_text(text, events);
        }
        if let Some(reason) = choice.finish_reason.as_deref() {
            self.finish = Some(openai_finish(Some(reason), !self.calls.is_empty()));
            self.done = true;
        }
        true
    }

    fn push_text(&mut self, text: &str, events: &mut Vec<StreamEvent>) {
        if !text.is_empty() {
            self.content.push_str(text);
            events.push(StreamEvent::Delta(text.to_string()));
        }
    }

    /// Announce the call at `index` once its name is known, with the arguments buffered so far.
    fn announce(&mut self, index: usize, events: &mut Vec<StreamEvent>) {
        let call = &mut self.calls[index];
        if call.announced || call.name.is_empty() {
            return;
        }
        call.announced = true;
        if call.id.is_empty() {
            call.id = call_id(index);
        }
        events.push(StreamEvent::ToolCallStart { index, id: call.id.clone(), name: call.name.clone() });
        if !call.arguments.is_empty() {
            events.push(StreamEvent::ToolCallArguments { index, fragment: call.arguments.clone() });
        }
    }

    /// The slot an OpenAI-style tool-call delta belongs to. Some Ollama-compatible servers give
    /// every parallel call index 0, so a delta carrying a new id starts a new call whatever
    /// its index.
    fn openai_slot(&mut self, upstream: u64, id: Option<&str>) -> usize {
        let existing = self.calls.iter().rposition(|c| c.upstream_index == Some(upstream));
        match existing {
            Some(pos) if id.is_none_or(|id| self.calls[pos].id.is_empty() || self.calls[pos].id == id) => pos,
            _ => {
                self.calls.push(PendingCall { upstream_index: Some(upstream), ..PendingCall::default() });
                self.calls.len() - 1
            }
        }
    }

    fn openai_chunk(&mut self, value: &Value, events: &mut Vec<StreamEvent>) -> Result<(), String> {
        if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
            return Err(message.to_string());
        }
        if let Some(usage) = openai_usage(value) {
            self.usage = Some(usage);
        }
        // vLLM sends `choices: null` in its usage chunk; `pointer` reads that as no choice.
        let Some(choice) = value.pointer("/choices/0") else { return Ok(()) };
        let text = choice.pointer("/delta/content").and_then(Value::as_str).unwrap_or_default().to_string();
        self.push_text(&text, events);
        if let Some(calls) = choice.pointer("/delta/tool_calls").and_then(Value::as_array) {
            for call in calls {
                let upstream = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let id = call.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
                let index = self.openai_slot(upstream, id);
                let slot = &mut self.calls[index];
                if let Some(id) = id
                    && slot.id.is_empty()
                {
                    slot.id = id.to_string();
                }
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    slot.name.push_str(name);
                }
                let fragment = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default();
                slot.arguments.push_str(fragment);
                if slot.announced {
                    if !fragment.is_empty() {
                        events.push(StreamEvent::ToolCallArguments { index, fragment: fragment.to_string() });
                    }
                } else {
                    self.announce(index, events);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(openai_finish(Some(reason), !self.calls.is_empty()));
            self.done = true;
        }
        Ok(())
    }

    fn anthropic_event(&mut self, value: &Value, events: &mut Vec<StreamEvent>) -> Result<(), String> {
        match value.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let usage = value.pointer("/message/usage").map(anthropic_usage).unwrap_or_default();
                self.usage = Some(Usage { output_tokens: 0, ..usage });
            }
            Some("content_block_start")
                if value.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use") =>
            {
                let id = value.pointer("/content_block/id").and_then(Value::as_str).unwrap_or_default();
                let name = value.pointer("/content_block/name").and_then(Value::as_str).unwrap_or_default();
                self.calls.push(PendingCall { id: id.to_string(), name: name.to_string(), ..PendingCall::default() });
                self.announce(self.calls.len() - 1, events);
            }
            Some("content_block_delta") => match value.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => {
                    let text = value.pointer("/delta/text").and_then(Value::as_str).unwrap_or_default().to_string();
                    self.push_text(&text, events);
                }
                Some("input_json_delta") => {
                    let fragment = value.pointer("/delta/partial_json").and_then(Value::as_str).unwrap_or_default();
                    if let Some(index) = self.calls.len().checked_sub(1)
                        && !fragment.is_empty()
                    {
                        self.calls[index].arguments.push_str(fragment);
                        events.push(StreamEvent::ToolCallArguments { index, fragment: fragment.to_string() });
                    }
                }
                _ => {}
            },
            Some("message_delta") => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(anthropic_finish(Some(reason)));
                }
                if let Some(sequence) = value.pointer("/delta/stop_sequence").and_then(Value::as_str) {
                    self.stop_sequence = Some(sequence.to_string());
                }
                if let Some(output) = value.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    let usage = self.usage.get_or_insert_with(Usage::default);
                    usage.output_tokens = output;
                }
            }
            Some("message_stop") => self.done = true,
            Some("error") => {
                return Err(value
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("provider reported a stream error")
                    .to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn ollama_chunk(&mut self, value: &Value, events: &mut Vec<StreamEvent>) -> Result<(), String> {
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(error.to_string());
        }
        if let Some(message) = value.get("message") {
            let text = message.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
            self.push_text(&text, events);
            for call in function_calls(message) {
                let arguments = call.arguments.to_string();
                self.calls.push(PendingCall {
                    id: call.id,
                    name: call.name,
                    object: Some(call.arguments),
                    ..PendingCall::default()
                });
                let index = self.calls.len() - 1;
                self.announce(index, events);
                events.push(StreamEvent::ToolCallArguments { index, fragment: arguments });
            }
        }
        if value.get("done").and_then(Value::as_bool) == Some(true) {
            self.usage = ollama_usage(value);
            self.finish = Some(ollama_finish(value, !self.calls.is_empty()));
            self.done = true;
        }
        Ok(())
    }

    /// Whether the provider signalled the end of its answer.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The whole answer; an error if the stream ended before the provider said it was done.
    pub fn finish(self) -> Result<ChatResponse, String> {
        if !self.done {
            return Err("the provider's stream ended before the answer was complete".into());
        }
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| ToolCall {
                id: if call.id.is_empty() { call_id(i) } else { call.id },
                name: call.name,
                arguments: call.object.unwrap_or_else(|| arguments_from_text(&call.arguments)),
            })
            .collect();
        let finish_reason = match self.finish {
            Some(reason) => reason,
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        Ok(ChatResponse {
            content: self.content,
            tool_calls,
            usage: self.usage,
            finish_reason,
            stop_sequence: self.stop_sequence,
        })
    }
}

#[cfg(test)]
mod tests;
