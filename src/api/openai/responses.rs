//! `POST /v1/responses`: OpenAI's Responses API (text in, text and function calls out) over the
//! chat service. Stateless: the client sends the whole conversation as `input` items (messages,
//! its `function_call`s and their `function_call_output`s) and nothing is stored but the run, so
//! `previous_response_id` is refused. `model` is a model name, a tier, or `agent:<name>`.
//! Streams are typed events (`event: response.output_text.delta`, …) numbered by
//! `sequence_number`, ending in `response.completed` (or `response.incomplete`/`.failed`).

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::chat::{
    call_arguments, content_text, invalid, model_error, opt_f64, opt_u32, required, response_format, stateless,
    tool_choice, tools,
};
use crate::api::Context;
use crate::api::chat::payer;
use crate::api::streaming::{self, Framing};
use crate::chat::{self, ChatInput};
use crate::error::ApiError;
use crate::http::{Request, Response, response, sse};
use crate::llm::coordinator::Turn;
use crate::llm::types::{FinishReason, Message, Role, Sampling, ToolCall, Usage};

/// The parts of a Responses request the gateway acts on.
struct Parsed {
    input: ChatInput,
    stream: bool,
    envelope: Envelope,
}

pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let Parsed { input, stream, envelope } = parse(ctx, body)?;
    if stream {
        let prepared = chat::prepare(&ctx.app, input).await.map_err(|e| model_error(&envelope.model, e))?;
        let framing = EventFraming::new(envelope);
        return Ok(streaming::respond(&ctx.app, prepared, framing, payer(&ctx.principal), &[]).await);
    }
    let done =
        chat::complete(&ctx.app, input, ctx.token_counter()).await.map_err(|e| model_error(&envelope.model, e))?;
    let tokens = done.finished.tokens;
    ctx.note_served(done.outcome.as_ref().ok());
    let turn = done.outcome.map_err(|f| ApiError::from(f.error))?;
    let status = item_status(turn.finish_reason);
    let mut items = Vec::new();
    if !turn.content.is_empty() || turn.client_calls.is_empty() {
        items.push(Item::message(turn.content.clone(), status));
    }
    items.extend(turn.client_calls.iter().map(|c| Item::call(c, c.arguments.to_string())));
    let body = envelope.object(&Outcome::Finished(turn.finish_reason), &items, Some(tokens));
    Ok(response::json(StatusCode::OK, &body))
}

/// Parse and validate a Responses body.
fn parse(ctx: &Context, body: Value) -> Result<Parsed, ApiError> {
    let Value::Object(body) = body else { return Err(ApiError::InvalidJson) };
    let model =
        required(&body, "model")?.as_str().filter(|m| !m.is_empty()).ok_or_else(|| invalid("model"))?.to_string();
    if body.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::BadRequest("previous_response_id is not supported: send the whole conversation".into()));
    }
    if body.get("conversation").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::BadRequest("conversation is not supported: send the whole conversation".into()));
    }
    let mut messages = Vec::new();
    let instructions = match body.get("instructions") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(invalid("instructions")),
    };
    if let Some(text) = instructions.as_ref().filter(|t| !t.is_empty()) {
        messages.push(Message::new(Role::System, text.clone()));
    }
    messages.extend(input_messages(required(&body, "input")?)?);
    let text_format = body.get("text").and_then(|t| t.get("format"));
    let sampling = Sampling {
        max_tokens: opt_u32(&body, "max_output_tokens")?,
        temperature: opt_f64(&body, "temperature")?,
        top_p: opt_f64(&body, "top_p")?,
        user: body.get("user").and_then(Value::as_str).map(str::to_string),
        response_format: response_format(text_format, "text.format")?,
        tool_choice: tool_choice(body.get("tool_choice"))?,
        parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool),
        ..Sampling::default()
    };
    let input = stateless(ctx, &model, messages, function_tools(body.get("tools"))?, sampling)?;
    let envelope = Envelope::new(model, &body);
    Ok(Parsed { input, stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false), envelope })
}

/// `tools`: function tools only (`{type: "function", name, description, parameters}`); the
/// hosted tools (web search, file search, …) are OpenAI's own.
fn function_tools(value: Option<&Value>) -> Result<Vec<crate::llm::types::ToolSpec>, ApiError> {
    if let Some(Value::Array(items)) = value {
        for (i, tool) in items.iter().enumerate() {
            match tool.get("type").and_then(Value::as_str) {
                Some("function") => {}
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "Tools of type '{other}' are not supported (tools[{i}]); send function tools"
                    )));
                }
                None => return Err(ApiError::MissingField(format!("tools[{i}].type"))),
            }
        }
    }
    tools(value)
}

/// `input`: a string (one user message) or input items — messages (`type` may be left out),
/// `function_call` and `function_call_output`. Calls join the assistant message before them,
/// so a replayed `[message, function_call, function_call]` is one assistant turn.
fn input_messages(value: &Value) -> Result<Vec<Message>, ApiError> {
    let items = match value {
        Value::String(text) => return Ok(vec![Message::new(Role::User, text.clone())]),
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::BadRequest("input must not be empty".into()));
        }
        Value::Array(items) => items,
        _ => return Err(invalid("input")),
    };
    let mut out: Vec<Message> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("input[{i}]");
        let text_of = |key: &str| -> Result<String, ApiError> {
            item.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ApiError::MissingField(format!("{field}.{key}")))
        };
        match item.get("type").and_then(Value::as_str).unwrap_or("message") {
            "message" => {
                let role = match text_of("role")?.as_str() {
                    "system" | "developer" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    _ => return Err(invalid(format!("{field}.role"))),
                };
                out.push(Message::new(role, content_text(item.get("content"), &format!("{field}.content"))?));
            }
            "function_call" => {
                let call = ToolCall {
                    id: text_of("call_id")?,
                    name: text_of("name")?,
                    arguments: call_arguments(item.get("arguments")),
                };
                match out.last_mut() {
                    Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                    _ => out.push(Message { tool_calls: vec![call], ..Message::new(Role::Assistant, "") }),
                }
            }
            "function_call_output" => {
                let id = text_of("call_id")?;
                let output = content_text(item.get("output"), &format!("{field}.output"))?;
                out.push(Message::answering(&out, &id, output));
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Input items of type '{other}' are not supported ({field}); send messages, function_call and \
                     function_call_output items"
                )));
            }
        }
    }
    Ok(out)
}

/// How a response ended, for its `status` and details.
enum Outcome<'a> {
    InProgress,
    Finished(FinishReason),
    Failed(&'a ApiError),
}

/// The response object around the output: identity and the request's settings, echoed back.
struct Envelope {
    id: String,
    created_at: i64,
    /// The model name as the client wrote it.
    model: String,
    settings: Map<String, Value>,
}

impl Envelope {
    fn new(model: String, body: &Map<String, Value>) -> Envelope {
        let given = |key: &str, default: Value| body.get(key).filter(|v| !v.is_null()).cloned().unwrap_or(default);
        let settings = json!({
            "instructions": given("instructions", Value::Null),
            "max_output_tokens": given("max_output_tokens", Value::Null),
            "temperature": given("temperature", Value::Null),
            "top_p": given("top_p", Value::Null),
            "tool_choice": given("tool_choice", "auto".into()),
            "tools": given("tools", json!([])),
            "parallel_tool_calls": given("parallel_tool_calls", true.into()),
            "text": given("text", json!({ "format": { "type": "text" } })),
            "user": given("user", Value::Null),
            "metadata": given("metadata", json!({})),
            "previous_response_id": null,
            "reasoning": null,
            // Nothing is kept: every request carries its whole conversation.
            "store": false,
            "truncation": "disabled",
        });
        let Value::Object(settings) = settings else { return Envelope::empty(model) };
        Envelope { settings, ..Envelope::empty(model) }
    }

    fn empty(model: String) -> Envelope {
        Envelope {
            id: format!("resp_{}", uuid::Uuid::now_v7().simple()),
            created_at: crate::clock::now_unix(),
            model,
            settings: Map::new(),
        }
    }

    fn object(&self, outcome: &Outcome, items: &[Item], tokens: Option<Usage>) -> Value {
        let (status, incomplete, error) = match outcome {
            Outcome::InProgress => ("in_progress", Value::Null, Value::Null),
            Outcome::Finished(FinishReason::Length) => {
                ("incomplete", json!({ "reason": "max_output_tokens" }), Value::Null)
            }
            Outcome::Finished(_) => ("completed", Value::Null, Value::Null),
            Outcome::Failed(error) => ("failed", Value::Null, failure_json(error)),
        };
        let output_text: String = items
            .iter()
            .filter_map(|item| match item {
                Item::Message { text, .. } => Some(text.as_str()),
                Item::Call { .. } => None,
            })
            .collect();
        let mut object = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "model": self.model,
            "output": items.iter().map(Item::to_json).collect::<Vec<_>>(),
            // The SDKs compute this themselves; plain HTTP clients get it too.
            "output_text": output_text,
            "usage": tokens.map(usage_json),
        });
        if let Value::Object(map) = &mut object {
            map.extend(self.settings.clone());
        }
        object
    }
}

/// `response.error`: OpenAI's codes for a response that failed part-way.
fn failure_json(error: &ApiError) -> Value {
    let code = match error.openai_fields().1 {
        Some("rate_limit_exceeded") => "rate_limit_exceeded",
        _ => "server_error",
    };
    json!({ "code": code, "message": error.to_string() })
}

fn usage_json(tokens: Usage) -> Value {
    json!({
        "input_tokens": tokens.input_tokens,
        "input_tokens_details": { "cached_tokens": tokens.cached_input_tokens },
        "output_tokens": tokens.output_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": tokens.input_tokens + tokens.output_tokens,
    })
}

/// A message cut short by `max_output_tokens` is `incomplete`.
fn item_status(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "incomplete",
        FinishReason::Stop | FinishReason::ToolCalls => "completed",
    }
}

/// One output item.
enum Item {
    Message { id: String, text: String, status: &'static str },
    Call { id: String, call_id: String, name: String, arguments: String, status: &'static str },
}

impl Item {
    fn message(text: String, status: &'static str) -> Item {
        Item::Message { id: format!("msg_{}", uuid::Uuid::now_v7().simple()), text, status }
    }

    fn call(call: &ToolCall, arguments: String) -> Item {
        Item::Call {
            id: format!("fc_{}", uuid::Uuid::now_v7().simple()),
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments,
            status: "completed",
        }
    }

    fn id(&self) -> &str {
        match self {
            Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    fn status(&self) -> &'static str {
        match self {
            Item::Message { status, .. } | Item::Call { status, .. } => status,
        }
    }

    fn set_status(&mut self, new: &'static str) {
        match self {
            Item::Message { status, .. } | Item::Call { status, .. } => *status = new,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Item::Message { id, text, status } => json!({
                "type": "message",
                "id": id,
                "status": status,
                "role": "assistant",
                "content": [text_part(text)],
            }),
            Item::Call { id, call_id, name, arguments, status } => json!({
                "type": "function_call",
                "id": id,
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
                "status": status,
            }),
        }
    }
}

fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [] })
}

/// The Responses API's typed stream events. A message item opens at the first text delta (a
/// reply that is only function calls has none) and closes when a call starts or the answer
/// ends; function-call items close when the answer ends, with their whole arguments.
struct EventFraming {
    envelope: Envelope,
    sequence: u64,
    items: Vec<Item>,
    /// The message item receiving text, while open.
    open_message: Option<usize>,
    /// Positions in `items` of the client's tool calls, by their index.
    calls: Vec<usize>,
}

impl EventFraming {
    fn new(envelope: Envelope) -> EventFraming {
        EventFraming { envelope, sequence: 0, items: Vec::new(), open_message: None, calls: Vec::new() }
    }

    fn event(&mut self, kind: &str, mut payload: Value) -> Bytes {
        payload["type"] = kind.into();
        payload["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        sse::named(kind, &payload.to_string())
    }

    fn open_message(&mut self, frames: &mut Vec<Bytes>) -> usize {
        if let Some(at) = self.open_message {
            return at;
        }
        let at = self.items.len();
        self.items.push(Item::message(String::new(), "in_progress"));
        let id = self.items[at].id().to_string();
        let added = json!({ "output_index": at, "item": { "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": [] } });
        frames.push(self.event("response.output_item.added", added));
        let part = json!({ "item_id": id, "output_index": at, "content_index": 0, "part": text_part("") });
        frames.push(self.event("response.content_part.added", part));
        self.open_message = Some(at);
        at
    }

    fn close_message(&mut self, status: &'static str, frames: &mut Vec<Bytes>) {
        let Some(at) = self.open_message.take() else { return };
        self.items[at].set_status(status);
        let Item::Message { id, text, .. } = &self.items[at] else { return };
        let (id, text) = (id.clone(), text.clone());
        let done = json!({ "item_id": id, "output_index": at, "content_index": 0, "text": text, "logprobs": [] });
        frames.push(self.event("response.output_text.done", done));
        let part = json!({ "item_id": id, "output_index": at, "content_index": 0, "part": text_part(&text) });
        frames.push(self.event("response.content_part.done", part));
        let item = self.items[at].to_json();
        frames.push(self.event("response.output_item.done", json!({ "output_index": at, "item": item })));
    }

    /// Close call `index`, filling in arguments that never streamed from the finished turn.
    fn close_call(&mut self, index: usize, turn: &Turn, frames: &mut Vec<Bytes>) {
        let at = self.calls[index];
        let Item::Call { id, call_id, name, arguments, status } = &mut self.items[at] else { return };
        *status = "completed";
        let late = if arguments.is_empty() {
            let whole = turn.client_calls.iter().find(|c| c.id == *call_id).map(|c| c.arguments.to_string());
            whole.inspect(|whole| arguments.clone_from(whole))
        } else {
            None
        };
        let (id, name, arguments) = (id.clone(), name.clone(), arguments.clone());
        if let Some(delta) = late {
            let payload = json!({ "item_id": id, "output_index": at, "delta": delta });
            frames.push(self.event("response.function_call_arguments.delta", payload));
        }
        let payload = json!({ "item_id": id, "output_index": at, "name": name, "arguments": arguments });
        frames.push(self.event("response.function_call_arguments.done", payload));
        let item = self.items[at].to_json();
        frames.push(self.event("response.output_item.done", json!({ "output_index": at, "item": item })));
    }
}

impl Framing for EventFraming {
    fn open(&mut self) -> Vec<Bytes> {
        let response = self.envelope.object(&Outcome::InProgress, &[], None);
        vec![
            self.event("response.created", json!({ "response": response })),
            self.event("response.in_progress", json!({ "response": response })),
        ]
    }

    fn text(&mut self, delta: &str) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let at = self.open_message(&mut frames);
        if let Item::Message { text, .. } = &mut self.items[at] {
            text.push_str(delta);
        }
        let id = self.items[at].id().to_string();
        let payload = json!({ "item_id": id, "output_index": at, "content_index": 0, "delta": delta, "logprobs": [] });
        frames.push(self.event("response.output_text.delta", payload));
        frames
    }

    fn tool_call_start(&mut self, index: usize, id: &str, name: &str) -> Vec<Bytes> {
        let mut frames = Vec::new();
        self.close_message("completed", &mut frames);
        if index != self.calls.len() {
            tracing::warn!(index, known = self.calls.len(), "tool calls out of order in a stream");
            return frames;
        }
        let call = ToolCall { id: id.into(), name: name.into(), arguments: Value::Null };
        let mut item = Item::call(&call, String::new());
        item.set_status("in_progress");
        let at = self.items.len();
        let json = item.to_json();
        self.items.push(item);
        self.calls.push(at);
        frames.push(self.event("response.output_item.added", json!({ "output_index": at, "item": json })));
        frames
    }

    fn tool_call_arguments(&mut self, index: usize, fragment: &str) -> Vec<Bytes> {
        let Some(&at) = self.calls.get(index) else { return Vec::new() };
        let Item::Call { id, arguments, .. } = &mut self.items[at] else { return Vec::new() };
        arguments.push_str(fragment);
        let payload = json!({ "item_id": id.clone(), "output_index": at, "delta": fragment });
        vec![self.event("response.function_call_arguments.delta", payload)]
    }

    fn done(&mut self, turn: &Turn, tokens: Usage) -> Vec<Bytes> {
        let mut frames = Vec::new();
        if self.items.is_empty() {
            // An empty answer is still one (empty) message.
            self.open_message(&mut frames);
        }
        self.close_message(item_status(turn.finish_reason), &mut frames);
        for index in 0..self.calls.len() {
            self.close_call(index, turn, &mut frames);
        }
        let outcome = Outcome::Finished(turn.finish_reason);
        let kind = match turn.finish_reason {
            FinishReason::Length => "response.incomplete",
            FinishReason::Stop | FinishReason::ToolCalls => "response.completed",
        };
        let response = self.envelope.object(&outcome, &self.items, Some(tokens));
        frames.push(self.event(kind, json!({ "response": response })));
        frames
    }

    fn failed(&mut self, error: &ApiError) -> Vec<Bytes> {
        for item in self.items.iter_mut().filter(|item| item.status() == "in_progress") {
            item.set_status("incomplete");
        }
        let response = self.envelope.object(&Outcome::Failed(error), &self.items, None);
        vec![self.event("response.failed", json!({ "response": response }))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(content: &str, finish_reason: FinishReason) -> Turn {
        Turn {
            content: content.into(),
            usage: Usage { input_tokens: 3, output_tokens: 4, cached_input_tokens: 0 },
            finish_reason,
            tool_calls: 0,
            client_calls: Vec::new(),
            stop_sequence: None,
            model_calls: 1,
            served: None,
        }
    }

    fn events(frames: &[Bytes]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(f).unwrap_or_default();
                let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
                serde_json::from_str(data).unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn a_reply_cut_by_max_output_tokens_is_incomplete() {
        let envelope = Envelope::new("m".into(), &Map::new());
        let items = [Item::message("cut".into(), item_status(FinishReason::Length))];
        let object = envelope.object(&Outcome::Finished(FinishReason::Length), &items, None);
        assert_eq!(object["status"], "incomplete");
        assert_eq!(object["incomplete_details"], json!({ "reason": "max_output_tokens" }));
        assert_eq!(object["output"][0]["status"], "incomplete");

        let mut framing = EventFraming::new(Envelope::new("m".into(), &Map::new()));
        framing.open();
        framing.text("cut");
        let last = events(&framing.done(&turn("cut", FinishReason::Length), Usage::default()));
        let end = last.last().cloned().unwrap_or_default();
        assert_eq!(end["type"], "response.incomplete");
        assert_eq!(end["response"]["incomplete_details"]["reason"], "max_output_tokens");
    }

    #[test]
    fn an_empty_answer_is_one_empty_message() {
        let mut framing = EventFraming::new(Envelope::new("m".into(), &Map::new()));
        framing.open();
        let kinds: Vec<Value> = events(&framing.done(&turn("", FinishReason::Stop), Usage::default()))
            .iter()
            .map(|e| e["type"].clone())
            .collect();
        let expected = [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ];
        assert_eq!(kinds, expected.map(Value::from));
    }

    #[test]
    fn calls_join_the_assistant_message_before_them() {
        let input = json!([
            { "role": "user", "content": "q" },
            { "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "checking" }] },
            { "type": "function_call", "call_id": "c1", "name": "a", "arguments": "{\"x\":1}" },
            { "type": "function_call", "call_id": "c2", "name": "b", "arguments": "" },
            { "type": "function_call_output", "call_id": "c2", "output": "two" },
            { "type": "function_call_output", "call_id": "c1", "output": [{ "type": "input_text", "text": "one" }] },
        ]);
        let messages = input_messages(&input).unwrap_or_default();
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Tool]);
        let calls = &messages[1].tool_calls;
        assert_eq!((messages[1].content.as_str(), calls.len()), ("checking", 2));
        assert_eq!((calls[0].arguments.clone(), calls[1].arguments.clone()), (json!({ "x": 1 }), json!({})));
        assert_eq!((messages[2].tool_name.as_deref(), messages[2].content.as_str()), (Some("b"), "two"));
        assert_eq!((messages[3].tool_call_id.as_deref(), messages[3].content.as_str()), (Some("c1"), "one"));

        let leading_call = json!([{ "type": "function_call", "call_id": "c", "name": "a", "arguments": "{}" }]);
        let messages = input_messages(&leading_call).unwrap_or_default();
        assert_eq!((messages.len(), messages[0].role), (1, Role::Assistant));
        assert!(input_messages(&json!([{ "type": "reasoning" }])).is_err());
        assert!(input_messages(&json!(7)).is_err());
    }
}
