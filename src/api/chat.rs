//! `POST /api/chat`, `/api/chat/stream` (JWT) and `/v1/chat`, `/v1/chat/stream` (API key):
//! one request shape (API.md C1/C3), the superset response, and true token streaming.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::Context;
use crate::app::App;
use crate::auth::{Principal, TenantPrincipal, UserPrincipal};
use crate::chat::{self, Caller, ChatInput, Prepared};
use crate::error::ApiError;
use crate::http::{Request, Response, response, sse};
use crate::llm::LlmError;
use crate::llm::coordinator::{self, Turn, TurnEvent, TurnFailure};
use crate::llm::types::{FinishReason, Message, Role, Usage, estimate_tokens};

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

fn caller(principal: &Principal) -> Result<Caller, ApiError> {
    match principal {
        Principal::User(user) => Ok(Caller::User { user_id: user.user_id.clone() }),
        Principal::Tenant(tenant) => Ok(Caller::Tenant { tenant_id: tenant.tenant_id.clone() }),
        other => Err(ApiError::Internal(format!("chat needs a user or tenant, got {other:?}"))),
    }
}

/// `message`, or the last user turn of `messages[]` with the turns before it as history.
async fn input(ctx: &Context, request: Request) -> Result<ChatInput, ApiError> {
    let body: ChatBody = ctx.json(request).await?;
    let (message, history) = match (body.message, body.messages) {
        (Some(message), turns) => (message, convert(turns.unwrap_or_default())?),
        (None, Some(turns)) => {
            let mut turns = convert(turns)?;
            let last_user = turns
                .iter()
                .rposition(|m| m.role == Role::User)
                .ok_or_else(|| ApiError::MissingField("message".into()))?;
            let prompt = turns.remove(last_user);
            turns.truncate(last_user);
            (prompt.content, turns)
        }
        (None, None) => return Err(ApiError::MissingField("message".into())),
    };
    Ok(ChatInput {
        caller: caller(&ctx.principal)?,
        message,
        extra_history: history,
        agent_type: body.agent_type,
        context_id: body.context_id,
        model: body.model,
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

/// Non-streaming chat for both APIs.
pub async fn chat(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let input = input(ctx, request).await?;
    let prepared = chat::prepare(&ctx.app, input).await?;
    let outcome =
        coordinator::run(&prepared.model, prepared.messages.clone(), ctx.app.tools(), &prepared.options).await;
    let finished = chat::finish(&ctx.app, &prepared, &outcome).await?;
    ctx.add_tokens(finished.tokens.input_tokens + finished.tokens.output_tokens);
    let turn = outcome.map_err(|f| ApiError::from(f.error))?;
    let body = json!({
        "id": finished.message_id,
        "response": turn.content,
        "content": turn.content,
        "agent": prepared.agent.name,
        "agent_source": prepared.agent.source.as_str(),
        "context_id": prepared.context_id,
        "sources": prepared.sources,
        "model": prepared.model.name,
        "tokens_used": finished.tokens.input_tokens + finished.tokens.output_tokens,
        "finish_reason": turn.finish_reason.as_str(),
    });
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

/// The two stream payload formats (API.md §6).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `/api/chat/stream`: raw text chunks.
    Text,
    /// `/v1/chat/stream`: JSON deltas, a final finish_reason + tokens_used event.
    JsonDeltas,
}

pub async fn stream(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let format = if matches!(ctx.principal, Principal::Tenant(_)) { Format::JsonDeltas } else { Format::Text };
    let input = input(ctx, request).await?;
    let prepared = chat::prepare(&ctx.app, input).await?;
    let headers = [("x-context-id", prepared.context_id.clone()), ("x-agent", prepared.agent.name.clone())];
    let (events, response) = sse::response(&headers);
    let payer = match &ctx.principal {
        Principal::Tenant(tenant) => Some(Payer::Tenant(tenant.clone())),
        Principal::User(user) => Some(Payer::User(user.clone())),
        _ => None,
    };
    tokio::spawn(produce(ctx.app.clone(), prepared, format, events, payer));
    Ok(response)
}

/// Whose quota a stream's tokens are settled against when it ends.
enum Payer {
    Tenant(TenantPrincipal),
    User(UserPrincipal),
}

/// Forward the turn's text as it arrives, then finish the request — also when the client left.
async fn produce(
    app: Arc<App>,
    prepared: Prepared,
    format: Format,
    events: tokio::sync::mpsc::Sender<bytes::Bytes>,
    payer: Option<Payer>,
) {
    let mut turn_events = coordinator::stream(
        prepared.model.clone(),
        prepared.messages.clone(),
        app.tools().clone(),
        prepared.options.clone(),
    );
    let mut text = String::new();
    let mut outcome: Result<Turn, TurnFailure>;
    let mut client_gone = false;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(sse::KEEP_ALIVE_SECS), turn_events.recv()).await;
        match next {
            Err(_) => {
                if events.send(sse::keep_alive()).await.is_err() {
                    client_gone = true;
                    outcome = Err(TurnFailure { error: LlmError::ClientGone, usage: Usage::default() });
                    break;
                }
            }
            Ok(Some(TurnEvent::Delta(delta))) => {
                text.push_str(&delta);
                let frame = match format {
                    Format::Text => sse::data(&delta),
                    Format::JsonDeltas => sse::data(&json!({ "delta": delta, "finish_reason": null }).to_string()),
                };
                if events.send(frame).await.is_err() {
                    client_gone = true;
                    outcome = Err(TurnFailure { error: LlmError::ClientGone, usage: Usage::default() });
                    break;
                }
            }
            Ok(Some(TurnEvent::Done(turn))) => {
                outcome = Ok(turn);
                break;
            }
            Ok(Some(TurnEvent::Failed(e))) => {
                outcome = Err(e);
                break;
            }
            Ok(None) => {
                outcome = Err(TurnFailure {
                    error: LlmError::Protocol {
                        provider: prepared.model.provider.name.clone(),
                        message: "stream ended".into(),
                    },
                    usage: Usage::default(),
                });
                break;
            }
        }
    }
    // Dropping the turn's receiver stops the coordinator and closes the provider stream.
    drop(turn_events);

    if client_gone {
        // Nothing is persisted for an abandoned answer, but what it cost is still recorded.
        let usage = Usage {
            input_tokens: prepared.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
            output_tokens: estimate_tokens(&text),
        };
        outcome = Err(TurnFailure { error: LlmError::ClientGone, usage });
    } else if let Ok(turn) = &mut outcome {
        // The client saw every round's text (tool rounds included): store what it saw.
        turn.content = text.clone();
    }
    let finished = chat::finish(&app, &prepared, &outcome).await;
    let tokens = finished.as_ref().map(|f| f.tokens.input_tokens + f.tokens.output_tokens).unwrap_or(0);
    match &payer {
        Some(Payer::Tenant(tenant)) => super::metered::record_stream_tokens(&app, tenant, tokens),
        Some(Payer::User(user)) => super::metered::record_user_stream_tokens(&app, user, tokens),
        None => {}
    }
    if client_gone {
        return;
    }
    let last = match (&outcome, format) {
        (Ok(turn), Format::JsonDeltas) => Some(sse::data(
            &json!({
                "delta": "",
                "finish_reason": if turn.finish_reason == FinishReason::Length { "length" } else { "stop" },
                "tokens_used": tokens,
                "context_id": prepared.context_id,
            })
            .to_string(),
        )),
        (Ok(_), Format::Text) => None,
        (Err(failure), format) => {
            let (_, code) = ApiError::from(failure.error.clone()).status_and_code();
            let error = json!({ "error": failure.to_string(), "code": code });
            Some(match format {
                Format::JsonDeltas => sse::data(
                    &json!({ "delta": "", "finish_reason": "error", "error": error["error"], "code": code })
                        .to_string(),
                ),
                Format::Text => sse::named("error", &error.to_string()),
            })
        }
    };
    if let Some(last) = last {
        let _ = events.send(last).await;
    }
    if let Err(e) = finished {
        tracing::warn!(error = %e, "finishing a stream failed");
    }
}
