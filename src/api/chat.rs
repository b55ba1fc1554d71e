//! `POST /api/chat`, `/api/chat/stream` (JWT) and `/v1/chat`, `/v1/chat/stream` (API key):
//! one request shape (API.md C1/C3), the superset response, and true token streaming — the
//! ARES dialect over the chat service.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::streaming::{self, Framing, Payer};
use crate::api::Context;
use crate::auth::Principal;
use crate::chat::{self, Caller, ChatInput, History, Persona};
use crate::error::ApiError;
use crate::http::{Request, Response, response, sse};
use crate::llm::coordinator::Turn;
use crate::llm::types::{FinishReason, Message, Role, Sampling, Usage};

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    messages: Option<Vec<TurnBody>>,
    #[serde(default)]
    agent_type: Option<String>,
    #[serde(default)]
    context_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct TurnBody {
    role: String,
    content: String,
}

/// The chat caller a principal is.
pub fn caller(principal: &Principal) -> Result<Caller, ApiError> {
    match principal {
        Principal::User(user) => Ok(Caller::User { user_id: user.user_id.clone() }),
        Principal::Tenant(tenant) => Ok(Caller::Tenant { tenant_id: tenant.tenant_id.clone() }),
        other => Err(ApiError::Internal(format!("chat needs a user or tenant, got {other:?}"))),
    }
}

/// Whose quota a stream is settled against.
pub fn payer(principal: &Principal) -> Option<Payer> {
    match principal {
        Principal::Tenant(tenant) => Some(Payer::Tenant(tenant.clone())),
        Principal::User(user) => Some(Payer::User(user.clone())),
        _ => None,
    }
}

/// `message`, or the last user turn of `messages[]` with the turns before it as history.
async fn input(ctx: &Context, request: Request) -> Result<ChatInput, ApiError> {
    let body: ChatBody = ctx.json(request).await?;
    // An empty final message is refused by `chat::prepare` (Missing required field: message).
    let messages = match (body.message, body.messages) {
        (Some(message), turns) => {
            let mut history = convert(turns.unwrap_or_default())?;
            history.push(Message::new(Role::User, message));
            history
        }
        (None, Some(turns)) => {
            let mut turns = convert(turns)?;
            let last_user = turns
                .iter()
                .rposition(|m| m.role == Role::User)
                .ok_or_else(|| ApiError::MissingField("message".into()))?;
            turns.truncate(last_user + 1);
            turns
        }
        (None, None) => return Err(ApiError::MissingField("message".into())),
    };
    // `model: "agent:<name>"` names an agent, as on the OpenAI-compatible routes.
    let agent_type = body.agent_type.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let named_agent = body.model.as_deref().and_then(|m| m.strip_prefix(super::openai::models::AGENT_PREFIX));
    let (persona, model) = match (agent_type, named_agent) {
        (Some(agent), _) => (Persona::Agent(agent.to_string()), body.model),
        (None, Some(agent)) => (Persona::Agent(agent.to_string()), None),
        // `[chat].default_agent` answers when the client names none; else the router picks.
        (None, None) => match ctx.app.config().chat.default_agent.clone() {
            Some(agent) => (Persona::Agent(agent), body.model),
            None => (Persona::Routed, body.model),
        },
    };
    Ok(ChatInput {
        caller: caller(&ctx.principal)?,
        persona,
        model,
        messages,
        history: History::Stored { context_id: body.context_id },
        client_tools: Vec::new(),
        sampling: Sampling::default(),
    })
}

fn convert(turns: Vec<TurnBody>) -> Result<Vec<Message>, ApiError> {
    turns
        .into_iter()
        .enumerate()
        .map(|(i, t)| match Role::parse(&t.role) {
            Some(role @ (Role::User | Role::Assistant | Role::System)) => Ok(Message::new(role, t.content)),
            _ => Err(ApiError::InvalidField(format!("messages[{i}].role"))),
        })
        .collect()
}

/// ARES keeps its documented 422 for a model it does not know.
fn ares_model_error(error: ApiError) -> ApiError {
    match error {
        ApiError::ModelNotFound(name) => ApiError::Unprocessable(format!("Invalid model: '{name}'")),
        other => other,
    }
}

/// The answer of a non-streaming chat, written straight from the turn instead of through a
/// JSON map (once per chat). Fields in the order a map wrote them (sorted), so the bytes are
/// the same.
#[derive(serde::Serialize)]
struct ChatAnswer<'a> {
    agent: &'a str,
    agent_source: &'a str,
    content: &'a str,
    context_id: &'a str,
    finish_reason: &'a str,
    id: &'a str,
    model: &'a str,
    response: &'a str,
    sources: Option<Vec<serde_json::Value>>,
    tokens_used: u64,
}

/// Non-streaming chat for both APIs.
pub async fn chat(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let input = input(ctx, request).await?;
    let done = chat::complete(&ctx.app, input, ctx.token_counter()).await.map_err(ares_model_error)?;
    let (prepared, finished) = (&done.prepared, &done.finished);
    ctx.note_served(done.outcome.as_ref().ok());
    let turn = done.outcome.map_err(|f| ApiError::from(f.error))?;
    let sources = prepared
        .sources
        .as_ref()
        .map(|(collection, hits)| hits.iter().map(|hit| super::rag::hit_view(hit, collection)).collect::<Vec<_>>());
    let body = ChatAnswer {
        agent: &prepared.agent.name,
        agent_source: prepared.agent.source.as_str(),
        content: &turn.content,
        context_id: &prepared.context_id,
        finish_reason: turn.finish_reason.as_str(),
        id: &finished.message_id,
        model: &prepared.model.name,
        response: &turn.content,
        sources,
        tokens_used: finished.tokens.input_tokens + finished.tokens.output_tokens,
    };
    let mut response = response::json(StatusCode::OK, &body);
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-input-tokens", finished.tokens.input_tokens.to_string()),
        ("x-output-tokens", finished.tokens.output_tokens.to_string()),
        ("x-context-id", prepared.context_id.clone()),
    ] {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// The two ARES stream payload formats (API.md §6).
#[derive(Clone)]
enum AresFraming {
    /// `/api/chat/stream`: raw text chunks.
    Text,
    /// `/v1/chat/stream`: JSON deltas, a final finish_reason + tokens_used event.
    JsonDeltas { context_id: String },
}

impl Framing for AresFraming {
    fn text(&mut self, delta: &str) -> Vec<bytes::Bytes> {
        vec![match self {
            AresFraming::Text => sse::data(delta),
            // Written directly (once per token): the same JSON as `{"delta": …, "finish_reason":
            // null}` without building a map for it.
            AresFraming::JsonDeltas { .. } => bytes::Bytes::from(format!(
                "data: {{\"delta\":{},\"finish_reason\":null}}\n\n",
                serde_json::Value::from(delta)
            )),
        }]
    }

    fn done(&mut self, turn: &Turn, tokens: Usage) -> Vec<bytes::Bytes> {
        match self {
            AresFraming::Text => Vec::new(),
            AresFraming::JsonDeltas { context_id } => vec![sse::data(
                &json!({
                    "delta": "",
                    "finish_reason": if turn.finish_reason == FinishReason::Length { "length" } else { "stop" },
                    "tokens_used": tokens.input_tokens + tokens.output_tokens,
                    "context_id": context_id,
                })
                .to_string(),
            )],
        }
    }

    fn failed(&mut self, error: &ApiError) -> Vec<bytes::Bytes> {
        let (_, code) = error.status_and_code();
        vec![match self {
            AresFraming::JsonDeltas { .. } => sse::data(
                &json!({ "delta": "", "finish_reason": "error", "error": error.to_string(), "code": code }).to_string(),
            ),
            AresFraming::Text => sse::named("error", &json!({ "error": error.to_string(), "code": code }).to_string()),
        }]
    }
}

pub async fn stream(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let input = input(ctx, request).await?;
    let prepared = chat::prepare(&ctx.app, input).await.map_err(ares_model_error)?;
    let framing = if matches!(ctx.principal, Principal::Tenant(_)) {
        AresFraming::JsonDeltas { context_id: prepared.context_id.clone() }
    } else {
        AresFraming::Text
    };
    let headers = [("x-context-id", prepared.context_id.clone()), ("x-agent", prepared.agent.name.clone())];
    Ok(streaming::respond(&ctx.app, prepared, framing, payer(&ctx.principal), &headers).await)
}
