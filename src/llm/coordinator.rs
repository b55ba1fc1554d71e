//! The tool-call loop: ask the model; if it calls tools, run them (in parallel when allowed,
//! each within its timeout), feed the results back and ask again; after `max_iterations` tool
//! rounds, ask once more without tools for a final answer. Streaming runs the same loop with
//! each model turn streamed, forwarding text as it arrives.
//!
//! Tools come from two places. The agent's tools run here, on the server. A client's tools
//! (OpenAI `tools`, Anthropic `tools`) are only offered to the model: an answer that calls one
//! ends the turn and the calls go back to the client, which runs them and asks again — the
//! server never executes a client's tool.

use futures_util::future::join_all;

use super::error::LlmError;
use super::registry::ModelEntry;
use super::router::{self, Served};
use super::types::{
    ChatRequest, ChatResponse, FinishReason, Message, Role, Sampling, StreamEvent, ToolCall, ToolSpec, Usage, usage_of,
};
use crate::tools::toolbox::ToolBox;

/// How an agent's turn is run.
#[derive(Debug, Clone, Default)]
pub struct TurnOptions {
    /// Server-side tools the agent may call (empty: the model is offered none of them).
    pub tools: Vec<String>,
    pub max_iterations: u32,
    pub parallel_tools: bool,
    /// Unset fields fall back to the model's configured `max_tokens` and `temperature`.
    pub sampling: Sampling,
    /// The client's own tools: offered to the model, never run here.
    pub client_tools: Vec<ToolSpec>,
}

impl TurnOptions {
    fn is_client_tool(&self, name: &str) -> bool {
        self.client_tools.iter().any(|t| t.name == name)
    }
}

/// The outcome of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub content: String,
    pub usage: Usage,
    pub finish_reason: FinishReason,
    /// Tool calls executed during the turn.
    pub tool_calls: usize,
    /// Calls of the client's tools that ended the turn (`finish_reason` is then `ToolCalls`).
    pub client_calls: Vec<ToolCall>,
    /// The stop sequence that ended the answer, when the provider named it.
    pub stop_sequence: Option<String>,
    /// Model calls made (one per tool round, plus the answer): what iteration caps count.
    pub model_calls: u32,
    /// Who produced the answer (the last model call), after how many upstream requests.
    pub served: Option<Served>,
}

/// A turn that failed, with the tokens it had already spent (earlier tool rounds).
#[derive(Debug, Clone)]
pub struct TurnFailure {
    pub error: LlmError,
    pub usage: Usage,
}

impl std::fmt::Display for TurnFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// What a streamed turn produces as it goes (its outcome is what [`stream`] returns).
#[derive(Debug)]
pub enum TurnEvent {
    /// The first model call's first content arrived from this deployment (before any other
    /// event; not repeated for later tool rounds).
    Started(Served),
    Delta(String),
    /// A call of one of the client's tools began (indexes count the client's calls only).
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallArguments {
        index: usize,
        fragment: String,
    },
}

/// The agent's tools' schemas, once per turn (listing an MCP server's tools may start it).
async fn offered(model: &ModelEntry, tools: &ToolBox, options: &TurnOptions) -> Vec<ToolSpec> {
    if offers_tools(model, options) { tools.specs(&options.tools).await } else { Vec::new() }
}

/// Whether a request offers the agent's tools.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ToolMode {
    None,
    Offer,
    /// Listed but not callable: the forced final answer.
    ListOnly,
}

const FINAL_ANSWER_NOTE: &str = "You have used all the tool calls available for this request. Answer now with what you have, without calling tools.";

fn request(
    model: &ModelEntry,
    messages: &[Message],
    offered: &[ToolSpec],
    options: &TurnOptions,
    mode: ToolMode,
) -> ChatRequest {
    let mut specs = if mode == ToolMode::None { Vec::new() } else { offered.to_vec() };
    specs.extend(options.client_tools.iter().cloned());
    let mut sampling = options.sampling.clone();
    sampling.max_tokens = sampling.max_tokens.or(model.max_tokens);
    sampling.temperature = sampling.temperature.or(model.temperature.map(super::types::decimal));
    ChatRequest {
        model: model.model_id.clone(),
        messages: messages.to_vec(),
        tools: specs,
        tools_disabled: mode == ToolMode::ListOnly,
        sampling,
    }
}

async fn run_tools(calls: &[ToolCall], tools: &ToolBox, options: &TurnOptions) -> Vec<Message> {
    if options.parallel_tools {
        let results = join_all(calls.iter().map(|call| tools.execute(call, &options.tools))).await;
        calls.iter().zip(results).map(|(call, result)| Message::tool_result(call, result)).collect()
    } else {
        let mut out = Vec::with_capacity(calls.len());
        for call in calls {
            out.push(Message::tool_result(call, tools.execute(call, &options.tools).await));
        }
        out
    }
}

/// Tools are offered when the agent has some and the model is not known to lack support.
fn offers_tools(model: &ModelEntry, options: &TurnOptions) -> bool {
    !options.tools.is_empty() && model.supports_tools != Some(false)
}

fn modes(offer: bool) -> (ToolMode, ToolMode) {
    if offer { (ToolMode::Offer, ToolMode::ListOnly) } else { (ToolMode::None, ToolMode::None) }
}

fn add(total: &mut Usage, usage: Usage) {
    total.input_tokens += usage.input_tokens;
    total.output_tokens += usage.output_tokens;
    total.cached_input_tokens += usage.cached_input_tokens;
}

/// Run a whole turn and return the final answer.
pub async fn run(
    model: &ModelEntry,
    mut messages: Vec<Message>,
    tools: &ToolBox,
    options: &TurnOptions,
) -> Result<Turn, TurnFailure> {
    let mut usage = Usage::default();
    let mut calls_made = 0;
    let mut model_calls = 0;
    let (during, last) = modes(offers_tools(model, options));
    // Boxed, like `run_tools` below: see `stream_loop`.
    let offered = Box::pin(offered(model, tools, options)).await;
    for _ in 0..options.max_iterations.max(1) {
        let mut req = request(model, &messages, &offered, options, during);
        let (response, served) =
            router::complete(&model.route, &mut req).await.map_err(|error| TurnFailure { error, usage })?;
        model_calls += 1;
        add(&mut usage, usage_of(&req, &response));
        if let Some(turn) = client_turn(&response, options, usage, calls_made, model_calls, &served) {
            return Ok(turn);
        }
        // A model offered no tools that calls one anyway gets no tool round: its text is the answer.
        if response.tool_calls.is_empty() || during == ToolMode::None {
            return Ok(Turn {
                content: response.content,
                usage,
                finish_reason: response.finish_reason,
                tool_calls: calls_made,
                client_calls: Vec::new(),
                stop_sequence: response.stop_sequence,
                model_calls,
                served: Some(served),
            });
        }
        calls_made += response.tool_calls.len();
        let results = Box::pin(run_tools(&response.tool_calls, tools, options)).await;
        messages.push(Message { tool_calls: response.tool_calls, ..Message::new(Role::Assistant, response.content) });
        messages.extend(results);
    }
    messages.push(Message::new(Role::User, FINAL_ANSWER_NOTE));
    let mut req = request(model, &messages, &offered, options, last);
    let (response, served) =
        router::complete(&model.route, &mut req).await.map_err(|error| TurnFailure { error, usage })?;
    add(&mut usage, usage_of(&req, &response));
    Ok(Turn {
        content: response.content,
        usage,
        finish_reason: response.finish_reason,
        tool_calls: calls_made,
        client_calls: Vec::new(),
        stop_sequence: response.stop_sequence,
        model_calls: model_calls + 1,
        served: Some(served),
    })
}

/// The turn that ends because the model called the client's tools: those calls go back to the
/// client (any server-tool calls beside them are dropped; the model may repeat them next time).
fn client_turn(
    response: &ChatResponse,
    options: &TurnOptions,
    usage: Usage,
    tool_calls: usize,
    model_calls: u32,
    served: &Served,
) -> Option<Turn> {
    let client_calls: Vec<ToolCall> =
        response.tool_calls.iter().filter(|c| options.is_client_tool(&c.name)).cloned().collect();
    (!client_calls.is_empty()).then(|| Turn {
        content: response.content.clone(),
        usage,
        finish_reason: FinishReason::ToolCalls,
        tool_calls,
        client_calls,
        stop_sequence: None,
        model_calls,
        served: Some(served.clone()),
    })
}

/// Where a streamed turn's events go as they happen: the client's response, written by the
/// task that serves the request (no task or channel of the turn's own between the upstream
/// and the client).
pub trait TurnSink: Send {
    /// Forward `event`; `false` when the client has gone, which stops the turn.
    fn send(&mut self, event: TurnEvent) -> impl Future<Output = bool> + Send;
    /// Resolves when the client has gone: watched while the provider is silent, so its
    /// connection is closed at once rather than at the next token.
    fn hung_up(&self) -> impl Future<Output = ()> + Send + 'static;
}

/// Run a turn with every model call streamed into `sink`: text is forwarded as it arrives.
/// `Ok(None)` when the client went away (the provider's stream is then closed).
pub async fn stream(
    model: &ModelEntry,
    messages: Vec<Message>,
    tools: &ToolBox,
    options: &TurnOptions,
    sink: &mut impl TurnSink,
) -> Result<Option<Turn>, TurnFailure> {
    let outcome = stream_loop(model, messages, tools, options, sink).await;
    if let Err(failure) = &outcome
        && let Some(scope) = crate::telemetry::scope::current()
    {
        let error = crate::error::ApiError::from(failure.error.clone());
        scope.note_late_error(error.status_and_code().1, &error.to_string());
    }
    outcome
}

/// `Ok(None)`: the client went away.
async fn stream_loop(
    model: &ModelEntry,
    mut messages: Vec<Message>,
    tools: &ToolBox,
    options: &TurnOptions,
    out: &mut impl TurnSink,
) -> Result<Option<Turn>, TurnFailure> {
    let mut usage = Usage::default();
    let mut calls_made = 0;
    let (during, final_mode) = modes(offers_tools(model, options));
    // Boxed, like `run_tools` below: MCP tool discovery and tool calls are most of this
    // loop's state (6.5 KiB each), which every stream's task would otherwise hold throughout.
    let offered = Box::pin(offered(model, tools, options)).await;
    let rounds = options.max_iterations.max(1);
    // Whether an earlier round streamed text: the next round's text starts a new paragraph
    // rather than running on ("Let me compute." + "6*7 is 42.").
    let mut said_something = false;
    for round in 0..=rounds {
        let last = round == rounds;
        if last {
            messages.push(Message::new(Role::User, FINAL_ANSWER_NOTE));
        }
        let mut req = request(model, &messages, &offered, options, if last { final_mode } else { during });
        let streamed = stream_one(model, &mut req, options, round == 0, &mut said_something, out)
            .await
            .map_err(|error| TurnFailure { error, usage })?;
        let Some((response, served)) = streamed else {
            return Ok(None);
        };
        add(&mut usage, usage_of(&req, &response));
        if let Some(turn) = client_turn(&response, options, usage, calls_made, round + 1, &served) {
            return Ok(Some(turn));
        }
        if response.tool_calls.is_empty() || last || during == ToolMode::None {
            return Ok(Some(Turn {
                content: response.content,
                usage,
                finish_reason: response.finish_reason,
                tool_calls: calls_made,
                client_calls: Vec::new(),
                stop_sequence: response.stop_sequence,
                model_calls: round + 1,
                served: Some(served),
            }));
        }
        calls_made += response.tool_calls.len();
        let results = Box::pin(run_tools(&response.tool_calls, tools, options)).await;
        messages.push(Message { tool_calls: response.tool_calls, ..Message::new(Role::Assistant, response.content) });
        messages.extend(results);
    }
    Ok(None)
}

/// Stream one model call, forwarding its text and its calls of the client's tools (renumbered
/// among themselves); `Ok(None)` if the client went away. The router fails over until the
/// call's first content; `first_call` announces who serves it ([`TurnEvent::Started`]).
async fn stream_one(
    model: &ModelEntry,
    request: &mut ChatRequest,
    options: &TurnOptions,
    first_call: bool,
    said_something: &mut bool,
    out: &mut impl TurnSink,
) -> Result<Option<(ChatResponse, Served)>, LlmError> {
    // Boxed: the upstream call's future (connecting, sending) is only needed until the first
    // content, and every open stream would otherwise carry its space to the end.
    let opened = Box::pin(router::open_stream(&model.route, request, out.hung_up())).await?;
    let Some(router::OpenStream { first, events: mut incoming, end }) = opened else { return Ok(None) };
    if first_call && !out.send(TurnEvent::Started(end.served.clone())).await {
        end.finish(Err(&LlmError::ClientGone));
        return Ok(None);
    }
    let mut forwarding = Forwarding { separate: *said_something, first_text: true, forwarded: Vec::new() };
    let mut next = Some(Ok(first));
    let hung_up = out.hung_up();
    tokio::pin!(hung_up);
    let outcome = loop {
        let Some(event) = next.take() else {
            break Err(LlmError::Protocol {
                provider: end.provider.clone(),
                message: "the stream ended without an answer".into(),
            });
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => break Err(error),
        };
        match forwarding.step(event, options, said_something, out).await {
            Step::Continue => {
                next = tokio::select! {
                    biased;
                    event = incoming.next() => event,
                    () = &mut hung_up => break Ok(None),
                }
            }
            Step::Done(response) => break Ok(Some(response)),
            Step::ClientGone => break Ok(None),
        }
    };
    // Dropping the provider's stream closes its connection.
    drop(incoming);
    let served = end.served.clone();
    match &outcome {
        Ok(Some(response)) => end.finish(Ok((usage_of(request, response), response.finish_reason))),
        Ok(None) => end.finish(Err(&LlmError::ClientGone)),
        Err(error) => end.finish(Err(error)),
    }
    outcome.map(|done| done.map(|response| (response, served)))
}

/// What happened to one provider event.
enum Step {
    Continue,
    Done(ChatResponse),
    ClientGone,
}

/// Forwarding state of one streamed model call.
struct Forwarding {
    /// An earlier round said something: this round's text starts a new paragraph.
    separate: bool,
    first_text: bool,
    /// Provider call index → the client's index, for calls of the client's tools.
    forwarded: Vec<usize>,
}

impl Forwarding {
    async fn step(
        &mut self,
        event: StreamEvent,
        options: &TurnOptions,
        said_something: &mut bool,
        out: &mut impl TurnSink,
    ) -> Step {
        let turn_event = match event {
            StreamEvent::Delta(text) => {
                *said_something = true;
                if std::mem::take(&mut self.first_text)
                    && self.separate
                    && !out.send(TurnEvent::Delta("\n\n".into())).await
                {
                    return Step::ClientGone;
                }
                TurnEvent::Delta(text)
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                if !options.is_client_tool(&name) {
                    return Step::Continue;
                }
                self.forwarded.push(index);
                TurnEvent::ToolCallStart { index: self.forwarded.len() - 1, id, name }
            }
            StreamEvent::ToolCallArguments { index, fragment } => {
                let Some(client_index) = self.forwarded.iter().position(|i| *i == index) else {
                    return Step::Continue;
                };
                TurnEvent::ToolCallArguments { index: client_index, fragment }
            }
            StreamEvent::Done(response) => return Step::Done(*response),
        };
        if out.send(turn_event).await { Step::Continue } else { Step::ClientGone }
    }
}
