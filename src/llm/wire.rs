//! Provider wire formats as pure functions: request bodies out, responses and stream lines in.
//! No I/O here, so every conversion is unit-tested without a network.

use serde_json::{Value, json};

use super::types::{ChatRequest, ChatResponse, FinishReason, Role, ToolCall, Usage};
use crate::config::ProviderKind;

/// Anthropic requires `max_tokens`; this is used when the agent sets none.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 4096;

/// Request body for `kind`.
pub fn request_body(kind: ProviderKind, request: &ChatRequest, stream: bool) -> Value {
    match kind {
        ProviderKind::Openai => openai_request(request, stream),
        ProviderKind::Anthropic => anthropic_request(request, stream),
        ProviderKind::Ollama => ollama_request(request, stream),
    }
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

fn openai_request(request: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let mut out = json!({ "role": m.role.as_str(), "content": m.content });
            if !m.tool_calls.is_empty() {
                out["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({ "id": c.id, "type": "function",
                                "function": { "name": c.name, "arguments": c.arguments.to_string() } })
                    })
                    .collect();
            }
            if let Some(id) = &m.tool_call_id {
                out["tool_call_id"] = id.clone().into();
            }
            out
        })
        .collect();
    let mut body = json!({ "model": request.model, "messages": messages, "stream": stream });
    if !request.tools.is_empty() {
        body["tools"] = function_tools(request);
        if request.tools_disabled {
            body["tool_choice"] = "none".into();
        }
    }
    if let Some(max) = request.max_tokens {
        body["max_tokens"] = max.into();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = t.into();
    }
    if stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
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
    Some(Usage {
        input_tokens: usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
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
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
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
        if request.tools_disabled {
            body["tool_choice"] = json!({ "type": "none" });
        }
    }
    if let Some(t) = request.temperature {
        body["temperature"] = t.into();
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
    let usage = body.get("usage").map(|u| Usage {
        input_tokens: u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
    });
    Ok(ChatResponse {
        content,
        finish_reason: anthropic_finish(body.get("stop_reason").and_then(Value::as_str)),
        tool_calls,
        usage,
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
    // Ollama has no tool_choice: a forced final answer simply lists no tools.
    if !request.tools.is_empty() && !request.tools_disabled {
        body["tools"] = function_tools(request);
    }
    let mut options = serde_json::Map::new();
    if let Some(max) = request.max_tokens {
        options.insert("num_predict".into(), max.into());
    }
    if let Some(t) = request.temperature {
        options.insert("temperature".into(), t.into());
    }
    if !options.is_empty() {
        body["options"] = Value::Object(options);
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
    (input.is_some() || output.is_some())
        .then(|| Usage { input_tokens: input.unwrap_or(0), output_tokens: output.unwrap_or(0) })
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
    })
}

// ---------------------------------------------------------------- streams

/// Turns a provider's stream, line by line, into text deltas and a final response.
pub struct StreamDecoder {
    kind: ProviderKind,
    content: String,
    /// Tool calls being assembled: (id, name, argument text or object).
    calls: Vec<(String, String, String, Option<Value>)>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    done: bool,
}

impl StreamDecoder {
    pub fn new(kind: ProviderKind) -> Self {
        StreamDecoder { kind, content: String::new(), calls: Vec::new(), usage: None, finish: None, done: false }
    }

    /// Feed one line (without its newline); returns the text it adds, if any.
    pub fn line(&mut self, line: &str) -> Result<Option<String>, String> {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with(':') || line.starts_with("event:") {
            return Ok(None);
        }
        match self.kind {
            ProviderKind::Openai | ProviderKind::Anthropic => {
                let Some(data) = line.strip_prefix("data:") else { return Ok(None) };
                let data = data.trim_start();
                if data == "[DONE]" {
                    self.done = true;
                    return Ok(None);
                }
                let value: Value = serde_json::from_str(data).map_err(|e| format!("malformed stream chunk: {e}"))?;
                if self.kind == ProviderKind::Openai { self.openai_chunk(&value) } else { self.anthropic_event(&value) }
            }
            ProviderKind::Ollama => {
                let value: Value = serde_json::from_str(line).map_err(|e| format!("malformed stream chunk: {e}"))?;
                self.ollama_chunk(&value)
            }
        }
    }

    fn push_text(&mut self, text: &str) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        self.content.push_str(text);
        Some(text.to_string())
    }

    fn openai_chunk(&mut self, value: &Value) -> Result<Option<String>, String> {
        if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
            return Err(message.to_string());
        }
        if let Some(usage) = openai_usage(value) {
            self.usage = Some(usage);
        }
        let Some(choice) = value.pointer("/choices/0") else { return Ok(None) };
        if let Some(calls) = choice.pointer("/delta/tool_calls").and_then(Value::as_array) {
            for call in calls {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                while self.calls.len() <= index {
                    self.calls.push((String::new(), String::new(), String::new(), None));
                }
                let slot = &mut self.calls[index];
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    slot.0 = id.to_string();
                }
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    slot.2.push_str(arguments);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(openai_finish(Some(reason), !self.calls.is_empty()));
            self.done = true;
        }
        let text = choice.pointer("/delta/content").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(self.push_text(&text))
    }

    fn anthropic_event(&mut self, value: &Value) -> Result<Option<String>, String> {
        match value.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let input = value.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
                self.usage = Some(Usage { input_tokens: input, output_tokens: 0 });
                Ok(None)
            }
            Some("content_block_start") => {
                if value.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use") {
                    let id = value.pointer("/content_block/id").and_then(Value::as_str).unwrap_or_default();
                    let name = value.pointer("/content_block/name").and_then(Value::as_str).unwrap_or_default();
                    self.calls.push((id.to_string(), name.to_string(), String::new(), None));
                }
                Ok(None)
            }
            Some("content_block_delta") => match value.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => {
                    let text = value.pointer("/delta/text").and_then(Value::as_str).unwrap_or_default().to_string();
                    Ok(self.push_text(&text))
                }
                Some("input_json_delta") => {
                    if let (Some(slot), Some(part)) =
                        (self.calls.last_mut(), value.pointer("/delta/partial_json").and_then(Value::as_str))
                    {
                        slot.2.push_str(part);
                    }
                    Ok(None)
                }
                _ => Ok(None),
            },
            Some("message_delta") => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(anthropic_finish(Some(reason)));
                }
                if let Some(output) = value.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    let usage = self.usage.get_or_insert_with(Usage::default);
                    usage.output_tokens = output;
                }
                Ok(None)
            }
            Some("message_stop") => {
                self.done = true;
                Ok(None)
            }
            Some("error") => Err(value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("provider reported a stream error")
                .to_string()),
            _ => Ok(None),
        }
    }

    fn ollama_chunk(&mut self, value: &Value) -> Result<Option<String>, String> {
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(error.to_string());
        }
        let mut text = String::new();
        if let Some(message) = value.get("message") {
            for call in function_calls(message) {
                self.calls.push((call.id, call.name, String::new(), Some(call.arguments)));
            }
            text = message.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
        }
        if value.get("done").and_then(Value::as_bool) == Some(true) {
            self.usage = ollama_usage(value);
            self.finish = Some(ollama_finish(value, !self.calls.is_empty()));
            self.done = true;
        }
        Ok(self.push_text(&text))
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
            .map(|(i, (id, name, text, object))| ToolCall {
                id: if id.is_empty() { call_id(i) } else { id },
                name,
                arguments: object.unwrap_or_else(|| arguments_from_text(&text)),
            })
            .collect();
        let finish_reason = match self.finish {
            Some(reason) => reason,
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        Ok(ChatResponse { content: self.content, tool_calls, usage: self.usage, finish_reason })
    }
}

#[cfg(test)]
mod tests;
