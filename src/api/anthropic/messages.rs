//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages wire format
//! over the chat service. `model` is a model name, a tier, or `agent:<name>` (that agent runs,
//! with its prompt and server-side tools); the client's `tools` are offered to the model and
//! its calls come back as `tool_use` blocks. Streams are the typed events of [`super::events`].

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::events::{MessageEvents, stop_fields};
use crate::api::Context;
use crate::api::chat::payer;
use crate::api::openai::chat::{
    invalid, model_error, opt_f64, opt_u32, required, required_str, stateless, stop_sequences,
};
use crate::api::streaming;
use crate::chat::{self, ChatInput, Persona};
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::llm::types::{Message, Role, Sampling, ToolCall, ToolChoice, ToolSpec, Usage, estimate_tokens};

/// The parts of a Messages request the gateway acts on.
pub struct Parsed {
    /// The model name as the client wrote it (echoed in responses).
    pub model: String,
    pub input: ChatInput,
    pub stream: bool,
}

/// Which body is parsed: `count_tokens` takes the same fields minus `max_tokens`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Create,
    CountTokens,
}

/// The `type` of a content block.
fn block_type<'a>(block: &'a Value, at: &str) -> Result<&'a str, ApiError> {
    block.get("type").and_then(Value::as_str).ok_or_else(|| ApiError::MissingField(format!("{at}.type")))
}

fn unsupported_block(kind: &str, at: &str) -> ApiError {
    ApiError::BadRequest(format!("Content blocks of type '{kind}' are not supported ({at}); send text"))
}

fn text_of(block: &Value, at: &str) -> Result<String, ApiError> {
    block.get("text").and_then(Value::as_str).map(str::to_string).ok_or_else(|| invalid(format!("{at}.text")))
}

/// A string, or an array of `text` blocks (joined by newlines): `system`, a `tool_result`'s
/// `content`.
fn plain_text(value: Option<&Value>, field: &str) -> Result<String, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                let at = format!("{field}[{i}]");
                match block_type(block, &at)? {
                    "text" => texts.push(text_of(block, &at)?),
                    other => return Err(unsupported_block(other, &at)),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(field)),
    }
}

/// A turn's `content`: a string is one text block.
fn content_blocks(value: Option<&Value>, field: &str) -> Result<Vec<Value>, ApiError> {
    match value {
        Some(Value::String(s)) => Ok(vec![json!({ "type": "text", "text": s })]),
        Some(Value::Array(blocks)) => Ok(blocks.clone()),
        None | Some(Value::Null) => Err(ApiError::MissingField(field.into())),
        Some(_) => Err(invalid(field)),
    }
}

/// A user turn: its `tool_result` blocks become tool messages (named after the `tool_use` that
/// asked for them, as Ollama wants), its text a user message after them.
fn user_turn(out: &mut Vec<Message>, blocks: &[Value], field: &str) -> Result<(), ApiError> {
    let mut texts = Vec::new();
    let mut results = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("{field}[{i}]");
        match block_type(block, &at)? {
            "text" => texts.push(text_of(block, &at)?),
            "tool_result" => {
                let id = required_str(block, "/tool_use_id", &at)?;
                let mut content = plain_text(block.get("content"), &format!("{at}.content"))?;
                // Only Anthropic's own format has `is_error`; the others learn it from the text.
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    content = format!("Error: {content}");
                }
                results.push(Message::answering(out, id, content));
            }
            other => return Err(unsupported_block(other, &at)),
        }
    }
    let only_results = texts.is_empty() && !results.is_empty();
    out.extend(results);
    if !only_results {
        out.push(Message::new(Role::User, texts.join("\n")));
    }
    Ok(())
}

/// An assistant turn: text and `tool_use` blocks; thinking blocks a client echoes back are
/// dropped (no provider here could check their signatures).
fn assistant_turn(blocks: &[Value], field: &str) -> Result<Message, ApiError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("{field}[{i}]");
        match block_type(block, &at)? {
            "text" => texts.push(text_of(block, &at)?),
            "tool_use" => {
                let id = required_str(block, "/id", &at)?;
                let name = required_str(block, "/name", &at)?;
                let arguments = block.get("input").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({}));
                calls.push(ToolCall { id: id.into(), name: name.into(), arguments });
            }
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &at)),
        }
    }
    Ok(Message { tool_calls: calls, ..Message::new(Role::Assistant, texts.join("\n")) })
}

/// `system` and `messages` → provider-neutral messages, the system prompt first.
fn messages(system: Option<&Value>, value: &Value) -> Result<Vec<Message>, ApiError> {
    let items = value.as_array().ok_or_else(|| invalid("messages"))?;
    if items.is_empty() {
        return Err(ApiError::BadRequest("messages must not be empty".into()));
    }
    let mut out: Vec<Message> = Vec::with_capacity(items.len() + 1);
    let system = plain_text(system, "system")?;
    if !system.is_empty() {
        out.push(Message::new(Role::System, system));
    }
    for (i, item) in items.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role =
            item.get("role").and_then(Value::as_str).ok_or_else(|| ApiError::MissingField(format!("{field}.role")))?;
        let content = format!("{field}.content");
        let blocks = content_blocks(item.get("content"), &content)?;
        match role {
            "user" => user_turn(&mut out, &blocks, &content)?,
            "assistant" => out.push(assistant_turn(&blocks, &content)?),
            // Claude Code sends instructions mid-conversation as `system` turns.
            "system" => out.push(Message::new(Role::System, plain_text(item.get("content"), &content)?)),
            _ => return Err(invalid(format!("{field}.role"))),
        }
    }
    Ok(out)
}

/// `tools: [{name, description, input_schema}]`. Anthropic's own server tools (web search,
/// code execution, …) have a versioned `type` and no schema: they exist only at Anthropic.
fn tools(value: Option<&Value>) -> Result<Vec<ToolSpec>, ApiError> {
    let Some(items) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = items.as_array().ok_or_else(|| invalid("tools"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if let Some(kind) = tool.get("type").and_then(Value::as_str).filter(|t| *t != "custom") {
                return Err(ApiError::BadRequest(format!(
                    "Tools of type '{kind}' are not supported (tools[{i}]); define the tool with an input_schema"
                )));
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::MissingField(format!("tools[{i}].name")))?;
            let parameters = tool
                .get("input_schema")
                .filter(|s| s.is_object())
                .cloned()
                .ok_or_else(|| ApiError::MissingField(format!("tools[{i}].input_schema")))?;
            Ok(ToolSpec {
                name: name.into(),
                description: tool.get("description").and_then(Value::as_str).unwrap_or_default().into(),
                parameters,
            })
        })
        .collect()
}

/// `tool_choice: {type: auto | any | tool {name} | none, disable_parallel_tool_use}` → the
/// choice and whether parallel calls are allowed.
fn tool_choice(value: Option<&Value>) -> Result<(Option<ToolChoice>, Option<bool>), ApiError> {
    let Some(choice) = value.filter(|v| !v.is_null()) else { return Ok((None, None)) };
    let kind = choice.get("type").and_then(Value::as_str).ok_or_else(|| invalid("tool_choice.type"))?;
    let parsed = match kind {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Named(
            choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::MissingField("tool_choice.name".into()))?
                .into(),
        ),
        _ => return Err(invalid("tool_choice.type")),
    };
    let parallel = match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(disable)) => Some(!disable),
        Some(_) => return Err(invalid("tool_choice.disable_parallel_tool_use")),
    };
    Ok((Some(parsed), parallel))
}

/// Parse and validate a Messages body. `top_k`, `thinking`, `service_tier` and other fields
/// no provider here takes are accepted and ignored.
fn parse(ctx: &Context, body: Value, purpose: Purpose) -> Result<Parsed, ApiError> {
    let body: Map<String, Value> = match body {
        Value::Object(map) => map,
        _ => return Err(ApiError::InvalidJson),
    };
    let model =
        required(&body, "model")?.as_str().filter(|m| !m.is_empty()).ok_or_else(|| invalid("model"))?.to_string();
    let max_tokens = match purpose {
        Purpose::Create => {
            required(&body, "max_tokens")?;
            Some(opt_u32(&body, "max_tokens")?.filter(|n| *n > 0).ok_or_else(|| invalid("max_tokens"))?)
        }
        Purpose::CountTokens => None,
    };
    let messages = messages(body.get("system"), required(&body, "messages")?)?;
    let (tool_choice, parallel_tool_calls) = tool_choice(body.get("tool_choice"))?;
    let user = match body.get("metadata").and_then(|m| m.get("user_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(user)) => Some(user.clone()),
        Some(_) => return Err(invalid("metadata.user_id")),
    };
    let sampling = Sampling {
        max_tokens,
        temperature: opt_f64(&body, "temperature")?,
        top_p: opt_f64(&body, "top_p")?,
        stop: stop_sequences(body.get("stop_sequences"), "stop_sequences")?,
        seed: None,
        user,
        response_format: None,
        tool_choice,
        parallel_tool_calls,
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(invalid("stream")),
    };
    let input = stateless(ctx, &model, messages, tools(body.get("tools"))?, sampling)?;
    Ok(Parsed { model, input, stream })
}

/// The documented estimate (ceil(bytes / 4)) of a prompt: every message's text and tool calls,
/// and the tools' definitions.
pub fn estimate_prompt(messages: &[Message], tools: &[ToolSpec]) -> u64 {
    let messages: u64 = messages
        .iter()
        .map(|m| {
            let calls: u64 =
                m.tool_calls.iter().map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string())).sum();
            estimate_tokens(&m.content) + calls
        })
        .sum();
    let tools: u64 = tools
        .iter()
        .map(|t| {
            estimate_tokens(&t.name) + estimate_tokens(&t.description) + estimate_tokens(&t.parameters.to_string())
        })
        .sum();
    messages + tools
}

/// A `tool_use` block's `input` is an object; a call without arguments has `{}`.
pub fn tool_input(arguments: &Value) -> Value {
    if arguments.is_null() { json!({}) } else { arguments.clone() }
}

/// Anthropic counts cache reads apart from `input_tokens`.
pub fn usage_json(tokens: Usage) -> Value {
    let cached = tokens.cached_input_tokens.min(tokens.input_tokens);
    json!({
        "input_tokens": tokens.input_tokens - cached,
        "output_tokens": tokens.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let parsed = parse(ctx, body, Purpose::Create)?;
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    if parsed.stream {
        let prepared = chat::prepare(&ctx.app, parsed.input).await.map_err(|e| model_error(&parsed.model, e))?;
        let input_tokens = estimate_prompt(&prepared.messages, &prepared.options.client_tools);
        let events = MessageEvents::new(id, parsed.model, input_tokens);
        return Ok(streaming::respond(&ctx.app, prepared, events, payer(&ctx.principal), &[]).await);
    }
    let done =
        chat::complete(&ctx.app, parsed.input, ctx.token_counter()).await.map_err(|e| model_error(&parsed.model, e))?;
    let tokens = done.finished.tokens;
    ctx.note_served(done.outcome.as_ref().ok());
    let turn = done.outcome.map_err(|f| ApiError::from(f.error))?;
    let mut content = Vec::with_capacity(1 + turn.client_calls.len());
    if !turn.content.is_empty() || turn.client_calls.is_empty() {
        content.push(json!({ "type": "text", "text": turn.content }));
    }
    for call in &turn.client_calls {
        content.push(
            json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(&call.arguments) }),
        );
    }
    let mut body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": content,
        "usage": usage_json(tokens),
    });
    if let (Some(body), Value::Object(stop)) = (body.as_object_mut(), stop_fields(&turn)) {
        body.extend(stop);
    }
    Ok(response::json(StatusCode::OK, &body))
}

/// `{"input_tokens": n}`: the estimate of what `/v1/messages` would send for this body (an
/// agent's system prompt included). Nothing is called upstream.
pub async fn count_tokens(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let parsed = parse(ctx, body, Purpose::CountTokens)?;
    let input = &parsed.input;
    let mut input_tokens = estimate_prompt(&input.messages, &input.client_tools);
    match (&input.persona, &input.model) {
        (Persona::Agent(name), _) => {
            let agent =
                chat::resolve_agent(&ctx.app, &input.caller, name).await.map_err(|e| model_error(&parsed.model, e))?;
            input_tokens += estimate_tokens(&agent.system_prompt);
        }
        (_, Some(name)) => {
            ctx.app.llm().lookup(name).ok_or_else(|| ApiError::ModelNotFound(name.clone()))?;
        }
        (_, None) => {}
    }
    Ok(response::json(StatusCode::OK, &json!({ "input_tokens": input_tokens })))
}
