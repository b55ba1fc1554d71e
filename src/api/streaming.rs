//! Streaming a chat turn to a client, whatever its dialect: the one producer behind
//! `/api/chat/stream`, `/v1/chat/stream`, `/v1/chat/completions`, `/v1/responses` and
//! `/v1/messages` with `stream: true`. It forwards the turn's deltas as they arrive, keeps the
//! connection alive, and finishes the request (run, usage, quota) also when the client left.
//! A [`Framing`] turns each step into the dialect's SSE events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::app::App;
use crate::auth::{TenantPrincipal, UserPrincipal};
use crate::chat::{self, Prepared};
use crate::error::ApiError;
use crate::http::sse;
use crate::llm::LlmError;
use crate::llm::coordinator::{Turn, TurnEvent, TurnFailure};
use crate::llm::types::{Usage, estimate_tokens};

/// How one dialect writes a streamed answer as SSE events.
pub trait Framing: Send + 'static {
    /// Events before the first delta (OpenAI's role chunk, Anthropic's `message_start`).
    fn open(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
    fn text(&mut self, delta: &str) -> Vec<Bytes>;
    /// A call of one of the client's tools began.
    fn tool_call_start(&mut self, _index: usize, _id: &str, _name: &str) -> Vec<Bytes> {
        Vec::new()
    }
    fn tool_call_arguments(&mut self, _index: usize, _fragment: &str) -> Vec<Bytes> {
        Vec::new()
    }
    /// The answer is complete; `tokens` is what the request cost in all (routing included).
    fn done(&mut self, turn: &Turn, tokens: Usage) -> Vec<Bytes>;
    /// The answer failed after the response started.
    fn failed(&mut self, error: &ApiError) -> Vec<Bytes>;
    /// Sent after `sse::KEEP_ALIVE_SECS` of silence.
    fn keep_alive(&mut self) -> Bytes {
        sse::keep_alive()
    }
}

/// Whose quota a stream's tokens are settled against when it ends.
pub enum Payer {
    Tenant(TenantPrincipal),
    User(UserPrincipal),
}

/// Start streaming `prepared` into a `200 text/event-stream` response with `headers`.
///
/// The response starts once the turn's first content has arrived (or after a keep-alive
/// period of silence): until then the router may still fail over to another deployment, and
/// waiting lets `X-Ares-Served-By` / `X-Ares-Attempts` name the one that answers.
pub async fn respond(
    app: &Arc<App>,
    prepared: Prepared,
    framing: impl Framing,
    payer: Option<Payer>,
    headers: &[(&'static str, String)],
) -> crate::http::Response {
    let mut turn_events = chat::stream(app, &prepared);
    let mut headers = headers.to_vec();
    let mut first = None;
    match tokio::time::timeout(Duration::from_secs(sse::KEEP_ALIVE_SECS), turn_events.recv()).await {
        Ok(Some(TurnEvent::Started(served))) => headers.extend(served_headers(&served)),
        Ok(other) => first = Some(other),
        Err(_) => {}
    }
    let (events, response) = sse::response(&headers);
    // The request's scope stays open until the last event is written.
    let scope = crate::telemetry::scope::current();
    let producing = produce(app.clone(), prepared, Box::new(framing), events, payer, turn_events, first);
    tokio::spawn(crate::telemetry::scope::within(scope, producing));
    response
}

/// `X-Ares-Served-By: provider/model_id` and `X-Ares-Attempts: n` for an answer.
pub fn served_headers(served: &crate::llm::router::Served) -> [(&'static str, String); 2] {
    [("x-ares-served-by", served.by.clone()), ("x-ares-attempts", served.attempts.to_string())]
}

async fn send_all(events: &tokio::sync::mpsc::Sender<Bytes>, frames: Vec<Bytes>) -> bool {
    for frame in frames {
        if events.send(frame).await.is_err() {
            return false;
        }
    }
    true
}

/// Forward the turn as it arrives (`first`: an event [`respond`] already took), then finish
/// the request — also when the client left.
async fn produce(
    app: Arc<App>,
    prepared: Prepared,
    mut framing: Box<dyn Framing>,
    events: tokio::sync::mpsc::Sender<Bytes>,
    payer: Option<Payer>,
    mut turn_events: tokio::sync::mpsc::Receiver<TurnEvent>,
    mut first: Option<Option<TurnEvent>>,
) {
    let mut text = String::new();
    let mut outcome: Result<Turn, TurnFailure>;
    let mut client_gone = !send_all(&events, framing.open()).await;
    let gone = || Err(TurnFailure { error: LlmError::ClientGone, usage: Usage::default() });
    if client_gone {
        outcome = gone();
    } else {
        let quiet_limit = Duration::from_secs(sse::KEEP_ALIVE_SECS);
        let mut last_sent = Instant::now();
        // One timer for the whole stream, moved only when it fires: a `timeout` per `recv`
        // added and removed a timer-wheel entry for every token.
        let quiet = tokio::time::sleep(quiet_limit);
        tokio::pin!(quiet);
        loop {
            let next = match first.take() {
                Some(event) => Some(event),
                None => tokio::select! {
                    event = turn_events.recv() => Some(event),
                    () = &mut quiet => {
                        let due = last_sent + quiet_limit;
                        if due > Instant::now() {
                            quiet.as_mut().reset(due);
                            continue;
                        }
                        quiet.as_mut().reset(Instant::now() + quiet_limit);
                        None
                    }
                },
            };
            let frames = match next {
                // Quiet for the keep-alive period.
                None => vec![framing.keep_alive()],
                // Came after the response started (a slow first token): too late for headers.
                Some(Some(TurnEvent::Started(_))) => Vec::new(),
                Some(Some(TurnEvent::Delta(delta))) => {
                    text.push_str(&delta);
                    framing.text(&delta)
                }
                Some(Some(TurnEvent::ToolCallStart { index, id, name })) => framing.tool_call_start(index, &id, &name),
                Some(Some(TurnEvent::ToolCallArguments { index, fragment })) => {
                    framing.tool_call_arguments(index, &fragment)
                }
                Some(Some(TurnEvent::Done(turn))) => {
                    outcome = Ok(*turn);
                    break;
                }
                Some(Some(TurnEvent::Failed(e))) => {
                    outcome = Err(*e);
                    break;
                }
                Some(None) => {
                    outcome = Err(TurnFailure {
                        error: LlmError::Protocol {
                            provider: prepared.model.provider.name.clone(),
                            message: "stream ended".into(),
                        },
                        usage: Usage::default(),
                    });
                    break;
                }
            };
            if !send_all(&events, frames).await {
                client_gone = true;
                outcome = gone();
                break;
            }
            last_sent = Instant::now();
        }
    }
    // Dropping the turn's receiver stops the coordinator and closes the provider stream.
    drop(turn_events);

    if client_gone {
        // Nothing is persisted for an abandoned answer, but what it cost is still recorded.
        let usage = Usage {
            input_tokens: prepared.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
            output_tokens: estimate_tokens(&text),
            cached_input_tokens: 0,
        };
        outcome = Err(TurnFailure { error: LlmError::ClientGone, usage });
    } else if let Ok(turn) = &mut outcome {
        // The client saw every round's text (tool rounds included): store what it saw.
        turn.content = text.clone();
    }
    let finished = chat::finish(&app, &prepared, &outcome).await;
    let tokens = match (&finished, &outcome) {
        (Ok(finished), _) => finished.tokens,
        (Err(_), Ok(turn)) => turn.usage,
        (Err(_), Err(failure)) => failure.usage,
    };
    let total = tokens.input_tokens + tokens.output_tokens;
    match &payer {
        Some(Payer::Tenant(tenant)) => super::metered::record_stream_tokens(&app, tenant, total),
        Some(Payer::User(user)) => super::metered::record_user_stream_tokens(&app, user, total),
        None => {}
    }
    if let Err(e) = &finished {
        tracing::warn!(error = %e, "finishing a stream failed");
    }
    if client_gone {
        return;
    }
    let last = match &outcome {
        Ok(turn) => framing.done(turn, tokens),
        Err(failure) => framing.failed(&ApiError::from(failure.error.clone())),
    };
    send_all(&events, last).await;
}
