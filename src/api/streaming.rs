//! Streaming a chat turn to a client, whatever its dialect: the one producer behind
//! `/api/chat/stream`, `/v1/chat/stream`, `/v1/chat/completions`, `/v1/responses` and
//! `/v1/messages` with `stream: true`. It forwards the turn's deltas as they arrive, keeps the
//! connection alive, and finishes the request (run, usage, quota) also when the client left.
//! A [`Framing`] turns each step into the dialect's SSE events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::app::App;
use crate::auth::{TenantPrincipal, UserPrincipal};
use crate::chat::{self, Prepared};
use crate::error::ApiError;
use crate::http::sse;
use crate::llm::LlmError;
use crate::llm::coordinator::{Turn, TurnEvent, TurnFailure, TurnSink};
use crate::llm::router::Served;
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
    mut framing: impl Framing,
    payer: Option<Payer>,
    headers: &[(&'static str, String)],
) -> crate::http::Response {
    let keep_alive = framing.keep_alive();
    let (head, served) = oneshot::channel();
    // The request's scope stays open until the producer has finished.
    let scope = crate::telemetry::scope::current();
    let mut producer = sse::Producer::new(|events| {
        let forwarder = Forwarder { framing: Box::new(framing), events, text: String::new(), head: Some(head) };
        crate::telemetry::scope::within(scope, produce(app.clone(), prepared, forwarder, payer))
    });
    let mut headers = headers.to_vec();
    let waited = producer.run_until(tokio::time::timeout(Duration::from_secs(sse::KEEP_ALIVE_SECS), served)).await;
    if let Some(Ok(Ok(Some(served)))) = waited {
        headers.extend(served_headers(&served));
    }
    sse::response(producer, keep_alive, &headers)
}

/// `X-Ares-Served-By: provider/model_id` and `X-Ares-Attempts: n` for an answer.
pub fn served_headers(served: &Served) -> [(&'static str, String); 2] {
    [("x-ares-served-by", served.by.clone()), ("x-ares-attempts", served.attempts.to_string())]
}

/// The turn's way to the client: frames each event in the client's dialect and hands it to
/// the response body.
struct Forwarder {
    framing: Box<dyn Framing>,
    events: sse::Outbox,
    /// What the client has been sent of the answer (every round's text).
    text: String,
    /// Tells [`respond`] who serves the answer, or (`None`) that the response must start
    /// without knowing; taken by the first event.
    head: Option<oneshot::Sender<Option<Served>>>,
}

impl Forwarder {
    /// Let the response start without naming who serves it (nothing will, or too late).
    fn start_response(&mut self) {
        if let Some(head) = self.head.take() {
            let _ = head.send(None);
        }
    }

    /// `false` when the client has gone.
    async fn send_all(&mut self, frames: Vec<Bytes>) -> bool {
        for frame in frames {
            if !self.events.send(frame).await {
                return false;
            }
        }
        true
    }
}

impl TurnSink for Forwarder {
    async fn send(&mut self, event: TurnEvent) -> bool {
        let frames = match event {
            TurnEvent::Started(served) => {
                // After the response started (a slow first token) it is too late for headers.
                if let Some(head) = self.head.take() {
                    let _ = head.send(Some(served));
                }
                return true;
            }
            TurnEvent::Delta(delta) => {
                self.text.push_str(&delta);
                self.framing.text(&delta)
            }
            TurnEvent::ToolCallStart { index, id, name } => self.framing.tool_call_start(index, &id, &name),
            TurnEvent::ToolCallArguments { index, fragment } => self.framing.tool_call_arguments(index, &fragment),
        };
        self.start_response();
        self.send_all(frames).await
    }

    fn hung_up(&self) -> impl Future<Output = ()> + Send + 'static {
        self.events.hung_up()
    }
}

/// Run the turn into the response, then finish the request — also when the client left.
async fn produce(app: Arc<App>, prepared: Prepared, mut forwarder: Forwarder, payer: Option<Payer>) {
    // Buffered until the response starts (the body's channel holds them).
    let opening = forwarder.framing.open();
    let mut client_gone = !forwarder.send_all(opening).await;
    let streamed = if client_gone { Ok(None) } else { chat::stream(&app, &prepared, &mut forwarder).await };
    forwarder.start_response();
    let mut outcome = match streamed {
        Ok(Some(turn)) => Ok(turn),
        Err(failure) => Err(failure),
        Ok(None) => {
            client_gone = true;
            // Nothing is persisted for an abandoned answer, but what it cost is still recorded.
            let usage = Usage {
                input_tokens: prepared.estimated_prompt_tokens(),
                output_tokens: estimate_tokens(&forwarder.text),
                cached_input_tokens: 0,
            };
            Err(TurnFailure { error: LlmError::ClientGone, usage })
        }
    };
    if let Ok(turn) = &mut outcome {
        // The client saw every round's text (tool rounds included): store what it saw.
        turn.content = std::mem::take(&mut forwarder.text);
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
        Ok(turn) => forwarder.framing.done(turn, tokens),
        Err(failure) => forwarder.framing.failed(&ApiError::from(failure.error.clone())),
    };
    forwarder.send_all(last).await;
}
