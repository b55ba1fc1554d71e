//! `POST /v1/chat/completions`: OpenAI's Chat Completions wire format over the chat service.
//! `model` is a model name, a tier, or `agent:<name>` (that agent runs, with its prompt and
//! server-side tools); the client's `tools` are offered to the model and its calls come back
//! to the client. Streams are `chat.completion.chunk` events ending in `data: [DONE]`.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::models::AGENT_PREFIX;
use crate::api::Context;
use crate::api::chat::{caller, payer};
use crate::api::streaming::{self, Framing};
use crate::chat::{self, ChatInput, History, Persona};
use crate::error::{ApiError, Dialect};
use crate::http::{Request, Response, response, sse};
use crate::llm::coordinator::Turn;
use crate::llm::types::{Message, ResponseFormat, Role, Sampling, ToolCall, ToolChoice, ToolSpec, Usage};

/// The parts of a Chat Completions request the gateway acts on.
pub struct Parsed {
    /// The model name as the client wrote it (echoed in responses).
    pub model: String,
    pub input: ChatInput,
    pub stream: bool,
    pub include_usage: bool,
}

/// Who answers a model name: `agent:<name>` → that agent, anything else → the model itself.
pub fn persona_for(model: &str) -> (Persona, Option<String>) {
    match model.strip_prefix(AGENT_PREFIX) {
        Some(agent) => (Persona::Agent(agent.to_string()), None),
        None => (Persona::Model, Some(model.to_string())),
    }
}

/// The chat-service input of a stateless dialect request for `model` (a model name, a tier or
/// `agent:<name>`): the whole conversation as the client sent it, nothing stored but the run.
pub fn stateless(
    ctx: &Context,
    model: &str,
    messages: Vec<Message>,
    client_tools: Vec<ToolSpec>,
    sampling: Sampling,
) -> Result<ChatInput, ApiError> {
    let (persona, model_name) = persona_for(model);
    // The router only ever names another agent; it is not a model (`/v1/models` omits it).
    if matches!(&persona, Persona::Agent(agent) if agent.eq_ignore_ascii_case("router")) {
        return Err(ApiError::ModelNotFound(model.into()));
    }
    let model = model_name;
    Ok(ChatInput {
        caller: caller(&ctx.principal)?,
        persona,
        model,
        messages,
        history: History::Stateless,
        client_tools,
        sampling,
    })
}

/// `temperature`, `top_p`, `stop`, `seed` and `user`, as Chat Completions and the legacy
/// completions take them.
pub fn common_sampling(body: &Map<String, Value>) -> Result<Sampling, ApiError> {
    Ok(Sampling {
        temperature: opt_f64(body, "temperature")?,
        top_p: opt_f64(body, "top_p")?,
        stop: stop_sequences(body.get("stop"), "stop")?,
        seed: match body.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| invalid("seed"))?),
        },
        user: body.get("user").and_then(Value::as_str).map(str::to_string),
        ..Sampling::default()
    })
}

/// Errors of the chat service in OpenAI's and Anthropic's terms: an agent named as a model
/// that the key cannot run is an unknown model.
pub fn model_error(model: &str, error: ApiError) -> ApiError {
    match error {
        ApiError::AgentNotFound(_) => ApiError::ModelNotFound(model.into()),
        other => other,
    }
}

pub fn required<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a Value, ApiError> {
    body.get(field).filter(|v| !v.is_null()).ok_or_else(|| ApiError::MissingField(field.into()))
}

pub fn invalid(field: impl Into<String>) -> ApiError {
    ApiError::InvalidField(field.into())
}

pub fn opt_f64(body: &Map<String, Value>, field: &str) -> Result<Option<f64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| invalid(field)),
    }
}

pub fn opt_u32(body: &Map<String, Value>, field: &str) -> Result<Option<u32>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| invalid(field)),
    }
}

/// The string at `pointer` (e.g. `/function/name`) in `value`; else 400 naming the field
/// (`{at}.function.name`).
pub fn required_str<'a>(value: &'a Value, pointer: &str, at: &str) -> Result<&'a str, ApiError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::MissingField(format!("{at}{}", pointer.replace('/', "."))))
}

/// `stop`: a string or an array of strings (OpenAI allows up to 4).
pub fn stop_sequences(value: Option<&Value>, field: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| invalid(field))).collect()
        }
        Some(_) => Err(invalid(field)),
    }
}

/// Message content: a string, or an array of parts of which only text is supported.
pub fn content_text(value: Option<&Value>, field: &str) -> Result<String, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") | Some("input_text") | Some("output_text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    Some(other) => {
                        return Err(ApiError::BadRequest(format!(
                            "Content parts of type '{other}' are not supported ({field}[{i}]); send text"
                        )));
                    }
                    None => return Err(invalid(format!("{field}[{i}].type"))),
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(field)),
    }
}

/// A tool call's `arguments` as the client echoes them: a JSON string (kept as a string when it
/// is not JSON), or already an object.
pub fn call_arguments(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(text)) if text.trim().is_empty() => json!({}),
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
        Some(other) => other.clone(),
        None => json!({}),
    }
}

/// OpenAI messages → provider-neutral ones. Tool results learn their tool's name from the
/// assistant turn that called it (Ollama wants the name).
pub fn messages(value: &Value) -> Result<Vec<Message>, ApiError> {
    let items = value.as_array().ok_or_else(|| invalid("messages"))?;
    if items.is_empty() {
        return Err(ApiError::BadRequest("messages must not be empty".into()));
    }
    let mut out: Vec<Message> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role =
            item.get("role").and_then(Value::as_str).ok_or_else(|| ApiError::MissingField(format!("{field}.role")))?;
        let content = content_text(item.get("content"), &format!("{field}.content"))?;
        let message = match role {
            "system" | "developer" => Message::new(Role::System, content),
            "user" => Message::new(Role::User, content),
            "assistant" => {
                let mut message = Message::new(Role::Assistant, content);
                if let Some(calls) = item.get("tool_calls").filter(|v| !v.is_null()) {
                    let calls = calls.as_array().ok_or_else(|| invalid(format!("{field}.tool_calls")))?;
                    for (j, call) in calls.iter().enumerate() {
                        let at = format!("{field}.tool_calls[{j}]");
                        let id = required_str(call, "/id", &at)?;
                        let name = required_str(call, "/function/name", &at)?;
                        let arguments = call_arguments(call.pointer("/function/arguments"));
                        message.tool_calls.push(ToolCall { id: id.into(), name: name.into(), arguments });
                    }
                }
                message
            }
            "tool" => {
                let id = item
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::MissingField(format!("{field}.tool_call_id")))?;
                Message::answering(&out, id, content)
            }
            _ => return Err(invalid(format!("{field}.role"))),
        };
        out.push(message);
    }
    Ok(out)
}

/// `tools: [{type: "function", function: {name, description, parameters}}]`.
pub fn tools(value: Option<&Value>) -> Result<Vec<ToolSpec>, ApiError> {
    let Some(items) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = items.as_array().ok_or_else(|| invalid("tools"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            // The Responses API flattens the function into the tool itself.
            let function = tool.get("function").unwrap_or(tool);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::MissingField(format!("tools[{i}].function.name")))?;
            Ok(ToolSpec {
                name: name.into(),
                description: function.get("description").and_then(Value::as_str).unwrap_or_default().into(),
                parameters: function
                    .get("parameters")
                    .filter(|p| !p.is_null())
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
            })
        })
        .collect()
}

/// `tool_choice`: `none` | `auto` | `required` | `{type: "function", function: {name}}`.
pub fn tool_choice(value: Option<&Value>) -> Result<Option<ToolChoice>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "none" => Ok(Some(ToolChoice::None)),
            "auto" => Ok(Some(ToolChoice::Auto)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(invalid("tool_choice")),
        },
        Some(object) => object
            .pointer("/function/name")
            .or_else(|| object.get("name"))
            .and_then(Value::as_str)
            .map(|name| Some(ToolChoice::Named(name.into())))
            .ok_or_else(|| invalid("tool_choice")),
    }
}

/// `response_format`: `{type: "text" | "json_object" | "json_schema", json_schema: {name, schema, strict}}`.
/// `field` names the object in error messages (`response_format`, or Responses' `text.format`).
pub fn response_format(value: Option<&Value>, field: &str) -> Result<Option<ResponseFormat>, ApiError> {
    let Some(format) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            // Chat Completions nests the schema under `json_schema`; Responses' `text.format` does not.
            let (spec, at) = match format.get("json_schema") {
                Some(nested) => (nested, format!("{field}.json_schema.schema")),
                None => (format, format!("{field}.schema")),
            };
            let schema = spec.get("schema").cloned().ok_or(ApiError::MissingField(at))?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: spec.get("name").and_then(Value::as_str).unwrap_or("response").into(),
                schema,
                strict: spec.get("strict").and_then(Value::as_bool),
            }))
        }
        _ => Err(invalid(format!("{field}.type"))),
    }
}

/// Parse and validate a Chat Completions body.
pub fn parse(ctx: &Context, body: Value) -> Result<Parsed, ApiError> {
    let body = match body {
        Value::Object(map) => map,
        _ => return Err(ApiError::InvalidJson),
    };
    let model =
        required(&body, "model")?.as_str().filter(|m| !m.is_empty()).ok_or_else(|| invalid("model"))?.to_string();
    let messages = messages(required(&body, "messages")?)?;
    if let Some(n) = opt_u32(&body, "n")?
        && n != 1
    {
        return Err(ApiError::BadRequest("Only n = 1 is supported".into()));
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage =
        body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    let sampling = Sampling {
        max_tokens: opt_u32(&body, "max_completion_tokens")?.or(opt_u32(&body, "max_tokens")?),
        response_format: response_format(body.get("response_format"), "response_format")?,
        tool_choice: tool_choice(body.get("tool_choice"))?,
        parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool),
        ..common_sampling(&body)?
    };
    let input = stateless(ctx, &model, messages, tools(body.get("tools"))?, sampling)?;
    Ok(Parsed { model, input, stream, include_usage })
}

/// OpenAI counts cached tokens inside `prompt_tokens`.
pub fn usage_json(tokens: Usage) -> Value {
    let mut usage = json!({
        "prompt_tokens": tokens.input_tokens,
        "completion_tokens": tokens.output_tokens,
        "total_tokens": tokens.input_tokens + tokens.output_tokens,
    });
    if tokens.cached_input_tokens > 0 {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": tokens.cached_input_tokens });
    }
    usage
}

fn tool_calls_json(calls: &[ToolCall]) -> Value {
    calls
        .iter()
        .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments.to_string() } }))
        .collect()
}

pub async fn completions(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let parsed = parse(ctx, body)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = crate::clock::now_unix();
    if parsed.stream {
        let prepared = chat::prepare(&ctx.app, parsed.input).await.map_err(|e| model_error(&parsed.model, e))?;
        let framing = ChunkFraming { id, created, model: parsed.model, include_usage: parsed.include_usage };
        return Ok(streaming::respond(&ctx.app, prepared, framing, payer(&ctx.principal), &[]).await);
    }
    let done =
        chat::complete(&ctx.app, parsed.input, ctx.token_counter()).await.map_err(|e| model_error(&parsed.model, e))?;
    let tokens = done.finished.tokens;
    ctx.note_served(done.outcome.as_ref().ok());
    let turn = done.outcome.map_err(|f| ApiError::from(f.error))?;
    let mut message = json!({
        "role": "assistant",
        "content": if turn.content.is_empty() && !turn.client_calls.is_empty() { Value::Null } else { turn.content.clone().into() },
        "refusal": null,
    });
    if !turn.client_calls.is_empty() {
        message["tool_calls"] = tool_calls_json(&turn.client_calls);
    }
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": parsed.model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": turn.finish_reason.as_str() }],
        "usage": usage_json(tokens),
        "system_fingerprint": null,
    });
    Ok(response::json(StatusCode::OK, &body))
}

/// `chat.completion.chunk` events.
struct ChunkFraming {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
}

/// One `chat.completion.chunk`, serialized from borrowed parts: one is written per token of
/// every open stream, so no JSON tree is built for it.
#[derive(Serialize)]
struct Chunk<'a, D> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: Null,
    choices: [ChunkChoice<'a, D>; 1],
    /// `null` on every chunk but the last when the client asked for usage; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Null>,
}

#[derive(Serialize)]
struct ChunkChoice<'a, D> {
    index: u32,
    delta: D,
    logprobs: Null,
    finish_reason: Option<&'a str>,
}

/// A JSON `null`.
#[derive(Serialize)]
struct Null;

#[derive(Serialize)]
struct TextDelta<'a> {
    content: &'a str,
}

impl ChunkFraming {
    fn chunk(&self, delta: impl Serialize, finish_reason: Option<&str>) -> Bytes {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: Null,
            choices: [ChunkChoice { index: 0, delta, logprobs: Null, finish_reason }],
            usage: self.include_usage.then_some(Null),
        };
        sse::data(&serde_json::to_string(&chunk).unwrap_or_default())
    }
}

impl Framing for ChunkFraming {
    fn open(&mut self) -> Vec<Bytes> {
        vec![self.chunk(json!({ "role": "assistant", "content": "", "refusal": null }), None)]
    }

    fn text(&mut self, delta: &str) -> Vec<Bytes> {
        vec![self.chunk(TextDelta { content: delta }, None)]
    }

    fn tool_call_start(&mut self, index: usize, id: &str, name: &str) -> Vec<Bytes> {
        let call =
            json!({ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } });
        vec![self.chunk(json!({ "tool_calls": [call] }), None)]
    }

    fn tool_call_arguments(&mut self, index: usize, fragment: &str) -> Vec<Bytes> {
        vec![self.chunk(json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] }), None)]
    }

    fn done(&mut self, turn: &Turn, tokens: Usage) -> Vec<Bytes> {
        let mut frames = vec![self.chunk(json!({}), Some(turn.finish_reason.as_str()))];
        if self.include_usage {
            let last = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": null,
                "choices": [],
                "usage": usage_json(tokens),
            });
            frames.push(sse::data(&last.to_string()));
        }
        frames.push(sse::data("[DONE]"));
        frames
    }

    fn failed(&mut self, error: &ApiError) -> Vec<Bytes> {
        // The SDKs raise an APIError for a chunk carrying `error`.
        vec![sse::data(&response::error_body(error, Dialect::OpenAi).to_string())]
    }
}
