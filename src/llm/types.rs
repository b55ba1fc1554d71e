//! Provider-neutral chat types: what the gateway sends and gets back, whatever the wire format.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    /// A tool's result, answering the assistant's tool call `tool_call_id`.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Tool calls the assistant made in this turn.
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the call this answers, and the tool's name.
    pub tool_call_id: Option<String>,
    pub tool_name: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None, tool_name: None }
    }

    /// A client's result for the call `call_id`, named after that call in `history` (Ollama
    /// wants the tool's name; the client's formats carry only the id).
    pub fn answering(history: &[Message], call_id: &str, content: impl Into<String>) -> Message {
        let name =
            history.iter().rev().flat_map(|m| m.tool_calls.iter()).find(|c| c.id == call_id).map(|c| c.name.clone());
        Message {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.to_string()),
            tool_name: Some(name.unwrap_or_default()),
        }
    }

    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Message {
        Message {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id.clone()),
            tool_name: Some(call.name.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// A JSON object (providers that send a string are parsed; unparseable text is kept as a
    /// string so the tool can report it).
    pub arguments: Value,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Which tools the model may call (OpenAI's and Anthropic's `tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool must be called.
    Named(String),
}

/// The shape the answer must take (OpenAI's `response_format`), for providers that can
/// enforce it: OpenAI-compatible servers take it as is, Ollama as `format`; Anthropic has no
/// equivalent and is sent none.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    JsonObject,
    JsonSchema { name: String, schema: Value, strict: Option<bool> },
}

/// How to sample an answer: what a client or an agent may set on a model call. `None` and
/// empty mean "the provider's default" and are not sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub max_tokens: Option<u32>,
    /// f64, as clients send them: `0.9` reaches the provider as `0.9`, not `0.8999999761581421`.
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// The end user, as the client names them (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub response_format: Option<ResponseFormat>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)`: at most one tool call per answer.
    pub parallel_tool_calls: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Provider-side model id.
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// `tools` are listed (the history refers to them) but the model must not call one: the
    /// forced final answer. Anthropic rejects tool blocks in a history without tool definitions.
    pub tools_disabled: bool,
    pub sampling: Sampling,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The whole prompt, cached part included (whatever the provider's own convention).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` read from the provider's prompt cache (priced at the cached
    /// rate, see `metering::cost`).
    pub cached_input_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    /// As reported by the provider; `None` when it reported nothing (then we estimate).
    pub usage: Option<Usage>,
    pub finish_reason: FinishReason,
    /// The stop sequence that ended the answer, when the provider names it (Anthropic does;
    /// OpenAI-compatible servers and Ollama only say `stop`).
    pub stop_sequence: Option<String>,
}

/// The answer's usage as the provider reported it, else estimated from the text.
pub fn usage_of(request: &ChatRequest, response: &ChatResponse) -> Usage {
    response.usage.unwrap_or_else(|| Usage {
        input_tokens: request.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
        output_tokens: estimate_tokens(&response.content),
        cached_input_tokens: 0,
    })
}

/// One step of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Text to forward to the client as it arrives.
    Delta(String),
    /// A tool call began: its position among this answer's calls (0, 1, … whatever index the
    /// provider used), id and tool name.
    ToolCallStart { index: usize, id: String, name: String },
    /// More of the arguments (JSON text) of the call at `index`.
    ToolCallArguments { index: usize, fragment: String },
    /// The stream ended; the whole answer, tool calls and usage included.
    Done(Box<ChatResponse>),
}

/// A configured `f32` setting as the decimal it was written as (`0.7`, not `0.699999988079071`).
pub fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// The documented estimate when a provider reports no usage: ceil(UTF-8 bytes / 4).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}
