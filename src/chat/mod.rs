//! One chat request, independent of HTTP and of the client's dialect: the provider-neutral chat
//! service behind `/api/chat`, `/v1/chat`, `/v1/chat/completions`, `/v1/responses` and
//! `/v1/messages`. It chooses who answers (a named agent, the router's pick, or the bare model),
//! picks the model, assembles the conversation within the model's context — an ARES
//! conversation's stored turns, or the whole history a stateless client sends — and, once the
//! model has answered, records the run (and, for ARES conversations, the exchange).

pub mod journal;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use self::journal::ChatRecord;
use crate::agents::resolve::{self, Choice};
use crate::agents::{AgentSource, AgentSpec};
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::llm::coordinator::{self, Turn, TurnFailure, TurnOptions};
use crate::llm::types::{Message, Role, Sampling, ToolSpec, Usage, estimate_tokens};
use crate::llm::{LlmError, ModelEntry};
use crate::memory;
use crate::metering::budget::BudgetError;
use crate::rag::{Hit, RagError, SearchRequest, SearchStrategy};
use crate::store::conversations::{self, MessageRecord};
use crate::store::memory as memory_store;
use crate::store::runs;

/// Context assumed when a model declares none.
const DEFAULT_CONTEXT_TOKENS: u64 = 8192;
/// Room kept for the answer when trimming history.
const ANSWER_RESERVE_TOKENS: u64 = 1024;
/// Most stored messages ever loaded as history.
const MAX_HISTORY_MESSAGES: usize = 200;

/// Who is chatting.
#[derive(Debug, Clone)]
pub enum Caller {
    User { user_id: String },
    Tenant { tenant_id: String },
}

impl Caller {
    /// Conversation owner key.
    pub fn owner(&self) -> String {
        match self {
            Caller::User { user_id } => format!("user:{user_id}"),
            Caller::Tenant { tenant_id } => format!("tenant:{tenant_id}"),
        }
    }
}

/// Who answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persona {
    /// The router picks a specialist (ARES chat without `agent_type`).
    Routed,
    /// This agent: `agent_type`, or `agent:<name>` as a model name. Its prompt, tools, the
    /// caller's memory (users) and its collection.
    Agent(String),
    /// No agent: the model itself, with the client's own system prompt and tools.
    Model,
}

/// Where the conversation lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// An ARES conversation: its stored turns come first (`None`: a new conversation), and the
    /// exchange is appended to it.
    Stored { context_id: Option<String> },
    /// OpenAI and Anthropic clients send the whole conversation every time; nothing is stored
    /// but the run.
    Stateless,
}

#[derive(Debug, Clone)]
pub struct ChatInput {
    pub caller: Caller,
    pub persona: Persona,
    /// A model name, provider model id or tier; `None`: the agent's own (or the default).
    pub model: Option<String>,
    /// The conversation as the client sends it, ending with the turn to answer (a user message,
    /// or the results of the client's tools).
    pub messages: Vec<Message>,
    pub history: History,
    /// The client's tools: offered to the model, never run by the server.
    pub client_tools: Vec<ToolSpec>,
    /// The client's sampling settings; unset ones fall back to the agent's, then the model's.
    pub sampling: Sampling,
}

/// Everything needed to run the model and to finish the request afterwards.
pub struct Prepared {
    pub agent: AgentSpec,
    pub model: ModelEntry,
    pub messages: Vec<Message>,
    pub options: TurnOptions,
    /// The conversation (for stateless requests: a fresh id, never stored).
    pub context_id: String,
    /// Whether the exchange is appended to the stored conversation.
    pub stored: bool,
    pub owner: String,
    pub caller: Caller,
    pub user_message: String,
    pub started: Instant,
    /// Tokens already spent deciding the route.
    pub routing_usage: Usage,
    /// Chunks retrieved from the agent's collection (`None`: the agent has none).
    pub sources: Option<(String, Vec<Hit>)>,
}

impl Prepared {
    /// What the prompt is taken to have cost when the client left before the provider said:
    /// the provider was sent it (or is being sent it) and bills it, answered or not.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        self.messages.iter().map(|m| estimate_tokens(&m.content)).sum()
    }
}

/// Output tokens a request is assumed to be able to produce when neither it nor its model sets
/// `max_tokens`, for its budget reservation.
const DEFAULT_RESERVED_OUTPUT_TOKENS: u64 = 4096;

/// Refuse a tenant's request whose budgets have nothing left, before any model call.
fn check_budget_open(app: &App) -> Result<(), ApiError> {
    let Some(scope) = crate::telemetry::scope::current() else { return Ok(()) };
    let Some((tenant_id, key_id)) = scope.tenant_and_key() else { return Ok(()) };
    // A one-micro-dollar hold, released at once: admitted only if something is left.
    app.budgets()
        .reserve(app.store(), &tenant_id, key_id.as_deref(), 1, clock::now_unix())
        .map(drop)
        .map_err(budget_error)
}

fn budget_error(error: BudgetError) -> ApiError {
    match error {
        BudgetError::Exceeded(exceeded) => ApiError::BudgetExceeded(exceeded.message),
        BudgetError::Store(e) => ApiError::from(e),
    }
}

/// Reserve what the request may cost — its prompt at the input price plus its `max_tokens`
/// (else the model's, else [`DEFAULT_RESERVED_OUTPUT_TOKENS`]) at the output price — against
/// its tenant's and API key's budgets, held until the request ends (see `metering::budget`).
/// 402 when a budget cannot cover it. Requests that are not a tenant's have no budget.
pub(crate) fn reserve_budget(
    app: &App,
    model: &ModelEntry,
    messages: &[Message],
    max_tokens: Option<u32>,
) -> Result<(), ApiError> {
    let Some(scope) = crate::telemetry::scope::current() else { return Ok(()) };
    let Some((tenant_id, key_id)) = scope.tenant_and_key() else { return Ok(()) };
    let output = max_tokens.or(model.max_tokens).map_or(DEFAULT_RESERVED_OUTPUT_TOKENS, u64::from);
    let usage = Usage {
        input_tokens: messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
        output_tokens: output,
        cached_input_tokens: 0,
    };
    // Rounded up: a reservation must not be smaller than what it stands for.
    let estimate = model.prices.cost(&usage).micros_up();
    let reservation = app
        .budgets()
        .reserve(app.store(), &tenant_id, key_id.as_deref(), estimate, clock::now_unix())
        .map_err(budget_error)?;
    scope.hold_budget(reservation);
    Ok(())
}

/// The agent that stands for a bare model call: no prompt, no tools, named after the model so
/// the run record says which model answered.
fn bare_agent(model: &ModelEntry) -> AgentSpec {
    AgentSpec {
        name: model.name.clone(),
        display_name: model.name.clone(),
        description: String::new(),
        source: crate::agents::AgentSource::System,
        id: None,
        model: Some(model.name.clone()),
        system_prompt: String::new(),
        tools: Vec::new(),
        max_tokens: None,
        temperature: None,
        max_iterations: 1,
        parallel_tools: true,
        enabled: true,
        collection: None,
    }
}

/// Resolve agent, model and history. Errors here are ordinary JSON errors (before any stream).
/// An unknown model name is `ApiError::ModelNotFound`.
pub async fn prepare(app: &Arc<App>, input: ChatInput) -> Result<Prepared, ApiError> {
    // A chat's turn, run and usage are written after its answer: with the storage failed it
    // would be answered and forgotten, its upstream tokens billed to nobody.
    app.store().check_writable()?;
    let started = Instant::now();
    let stored = matches!(input.history, History::Stored { .. });
    let mut client_messages = input.messages;
    let last = client_messages.pop().ok_or_else(|| ApiError::MissingField("messages".into()))?;
    if stored && (last.role != Role::User || last.content.trim().is_empty()) {
        return Err(ApiError::MissingField("message".into()));
    }
    // The text the router, memory and retrieval look at: the latest user message.
    let user_message = match last.role {
        Role::User => last.content.clone(),
        _ => client_messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default(),
    };
    let model_override = match &input.model {
        Some(name) => Some(app.llm().lookup(name).cloned().ok_or_else(|| ApiError::ModelNotFound(name.clone()))?),
        None => None,
    };
    let (agent, routing_usage) = match &input.persona {
        Persona::Agent(name) => (resolve_agent(app, &input.caller, name).await?, Usage::default()),
        Persona::Routed => {
            // The router's own call comes before the answering model is known: a budget that
            // has nothing left refuses it too.
            check_budget_open(app)?;
            // Boxed: the router's model call is most of this function's state (8 KiB), which
            // a stream would otherwise hold until its first token.
            Box::pin(route(app, &input.caller, &user_message)).await?
        }
        Persona::Model => {
            let model = match &model_override {
                Some(model) => model.clone(),
                None => app.llm().resolve(None)?.clone(),
            };
            (bare_agent(&model), Usage::default())
        }
    };
    let model = match model_override {
        Some(model) => model,
        None => app.llm().resolve(agent.model.as_deref()).map_err(ApiError::from)?.clone(),
    };
    if let Some(scope) = crate::telemetry::scope::current() {
        let agent_name = (!matches!(input.persona, Persona::Model)).then_some(agent.name.as_str());
        scope.note_agent(agent_name, &model.name);
    }

    let owner = input.caller.owner();
    // New ids are time-ordered, so same-second conversations still list newest first.
    let requested_context = match &input.history {
        History::Stored { context_id } => context_id.clone().filter(|c| !c.trim().is_empty()),
        History::Stateless => None,
    };
    let continues = requested_context.is_some();
    let context_id = requested_context.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let remembers = matches!(input.caller, Caller::User { .. }) && app.config().memory.inject;
    if continues || (remembers && input.persona != Persona::Model) {
        // The previous turn's exchange and lessons may still be queued (see `finish`).
        app.journal().settle(app.store()).await;
    }
    // A new conversation (its id was just made) has no turns to load.
    let stored_turns = if continues {
        // Bounded (at most MAX_HISTORY_MESSAGES), so read inline rather than hop threads.
        app.store()
            .read_now(|txn| {
                if !conversations::usable_by(txn, &owner, &context_id)? {
                    return Ok(None);
                }
                Ok(Some(conversations::recent_messages(txn, &context_id, MAX_HISTORY_MESSAGES)?))
            })?
            .ok_or_else(|| ApiError::NotFound("Conversation not found".into()))?
    } else {
        Vec::new()
    };

    let mut history: Vec<Message> = stored_turns
        .iter()
        .filter_map(|m| Role::parse(&m.role).map(|role| Message::new(role, m.content.clone())))
        .chain(client_messages)
        .collect();
    // A stateless client's conversation goes as sent: it manages its own context, and cutting
    // it could drop its system message or separate a tool call from its result, which
    // providers reject. A stored conversation (plain text turns) is trimmed to the model.
    if stored {
        let budget =
            model.context_length.map_or(DEFAULT_CONTEXT_TOKENS, u64::from).saturating_sub(ANSWER_RESERVE_TOKENS);
        let fixed = estimate_tokens(&agent.system_prompt) + estimate_tokens(&last.content);
        trim_history(&mut history, budget.saturating_sub(fixed));
    }

    let mut system_prompt = agent.system_prompt.clone();
    if let Caller::User { user_id } = &input.caller
        && remembers
        && input.persona != Persona::Model
        && let Some(section) = memory_section(app, user_id)?
    {
        system_prompt = if system_prompt.is_empty() { section } else { format!("{system_prompt}\n\n{section}") };
    }
    let sources = match (&agent.collection, &input.caller) {
        (Some(collection), Caller::User { user_id }) => {
            let hits = ground(app, user_id, collection, &user_message).await?;
            if let Some(section) = grounding_section(collection, &hits) {
                system_prompt =
                    if system_prompt.is_empty() { section } else { format!("{system_prompt}\n\n{section}") };
            }
            Some((collection.clone(), hits))
        }
        _ => None,
    };
    let mut messages = Vec::with_capacity(history.len() + 2);
    if !system_prompt.is_empty() {
        messages.push(Message::new(Role::System, system_prompt));
    }
    messages.extend(history);
    messages.push(last);

    let agent_sampling = agent.sampling();
    let sampling = Sampling {
        max_tokens: input.sampling.max_tokens.or(agent_sampling.max_tokens),
        temperature: input.sampling.temperature.or(agent_sampling.temperature),
        ..input.sampling
    };
    reserve_budget(app, &model, &messages, sampling.max_tokens)?;
    let options = TurnOptions {
        tools: app.tools().permitted(&agent.tools, agent.source),
        max_iterations: agent.max_iterations,
        parallel_tools: agent.parallel_tools,
        sampling,
        client_tools: input.client_tools,
    };
    Ok(Prepared {
        agent,
        model,
        messages,
        options,
        context_id,
        stored,
        owner,
        caller: input.caller,
        user_message,
        started,
        routing_usage,
        sources,
    })
}

/// A whole non-streamed request: prepare, run the turn, finish. The turn's failure is returned
/// inside [`Completed`] (with what it cost), so the caller can meter before reporting it.
///
/// The request's tokens are added to `request_tokens` (the counter its quota settles from):
/// the turn's once it is over, or, when its client leaves first (the handler is dropped and never
/// returns), an estimate of the prompt the provider was sent, as an abandoned stream's is counted.
pub async fn complete(app: &Arc<App>, input: ChatInput, request_tokens: &AtomicU64) -> Result<Completed, ApiError> {
    let prepared = prepare(app, input).await?;
    let (outcome, finished) = {
        let mut unfinished = UnfinishedTurn { app, prepared: &prepared, request_tokens, finished: false };
        let outcome =
            coordinator::run(&prepared.model, prepared.messages.clone(), &app.tools(), &prepared.options).await;
        // Counted and queued before anything else is awaited: from here the turn is accounted
        // for, whatever happens to the request.
        let (finished, record) = records(app, &prepared, &outcome);
        count_request_tokens(request_tokens, &finished.tokens);
        unfinished.finished = true;
        if let Some(record) = record {
            app.journal().record(app.store(), record).await?;
        }
        (outcome, finished)
    };
    Ok(Completed { prepared, finished, outcome })
}

/// A finished non-streamed request.
pub struct Completed {
    pub prepared: Prepared,
    pub finished: Finished,
    pub outcome: Result<Turn, TurnFailure>,
}

/// Run the turn streamed into `sink` (see `coordinator::stream`); `Ok(None)`: the client left.
pub async fn stream(
    app: &App,
    prepared: &Prepared,
    sink: &mut impl coordinator::TurnSink,
) -> Result<Option<Turn>, TurnFailure> {
    coordinator::stream(&prepared.model, prepared.messages.clone(), &app.tools(), &prepared.options, sink).await
}

/// Chunks retrieved for each grounded message.
const GROUNDING_TOP_K: usize = 4;

/// The best chunks of the user's `collection` for `message` (hybrid search); none when the
/// user has no such collection yet.
async fn ground(app: &Arc<App>, user_id: &str, collection: &str, message: &str) -> Result<Vec<Hit>, ApiError> {
    let request = SearchRequest {
        user_id: user_id.to_string(),
        collection: collection.to_string(),
        query: message.to_string(),
        strategy: SearchStrategy::Hybrid,
        top_k: GROUNDING_TOP_K,
        threshold: None,
        rerank: false,
    };
    let app = app.clone();
    let outcome = tokio::task::spawn_blocking(move || app.search_rag(&request))
        .await
        .map_err(|e| ApiError::Internal(format!("retrieval task failed: {e}")))?;
    match outcome {
        Ok(found) => Ok(found.hits),
        Err(RagError::CollectionNotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn grounding_section(collection: &str, hits: &[Hit]) -> Option<String> {
    if hits.is_empty() {
        return None;
    }
    let mut section = format!(
        "Answer using the following excerpts from the knowledge base '{collection}'. Cite them as [1], [2], … \
         and say so when they do not contain the answer.\n"
    );
    for (i, hit) in hits.iter().enumerate() {
        section.push_str(&format!("\n[{}] {}\n", i + 1, hit.chunk.content));
    }
    Some(section)
}

/// What is known about the user, as a system-prompt section. Bounded per user, so read inline.
fn memory_section(app: &App, user_id: &str) -> Result<Option<String>, ApiError> {
    let (facts, preferences) = app
        .store()
        .read_now(|txn| Ok((memory_store::facts(txn, user_id)?, memory_store::preferences(txn, user_id)?)))?;
    Ok(memory::prompt_section(&facts, &preferences))
}

/// Keep the most recent messages that fit `budget` tokens (estimated).
fn trim_history(history: &mut Vec<Message>, budget: u64) {
    let mut used = 0;
    let mut keep_from = history.len();
    for (i, message) in history.iter().enumerate().rev() {
        used += estimate_tokens(&message.content) + 4;
        if used > budget {
            break;
        }
        keep_from = i;
    }
    history.drain(..keep_from);
}

/// The agent the caller names in chat (see `agents::resolve` for who may shadow whom).
/// The router cannot be chosen directly in chat: it only ever answers with an agent name.
pub async fn resolve_agent(app: &Arc<App>, caller: &Caller, name: &str) -> Result<AgentSpec, ApiError> {
    if name.eq_ignore_ascii_case("router") {
        return Err(ApiError::BadRequest("Router agent cannot be called directly".into()));
    }
    lookup_agent(app, caller, name, Choice::Named).await
}

/// The agent `name` means for `caller`, capped at `[limits].max_tool_iterations` tool rounds
/// whatever its record says. Without [`resolve_agent`]'s restriction on the router (workflows
/// start there). `Choice::Picked` for names the router or a workflow chose: those never run
/// another user's agent.
pub async fn lookup_agent(app: &Arc<App>, caller: &Caller, name: &str, choice: Choice) -> Result<AgentSpec, ApiError> {
    let found = match caller {
        Caller::Tenant { tenant_id } => {
            resolve::for_tenant(app.store(), app.tenant_agent_cache(), &app.agents(), tenant_id, name)?
        }
        Caller::User { user_id } => {
            resolve::for_user(app.store(), &app.agents(), user_id, name, choice).await?.map(resolve::Found::into_spec)
        }
    };
    let agent = found.ok_or_else(|| agent_not_found(name))?;
    Ok(agent.capped(app.config().limits.max_tool_iterations))
}

pub fn agent_not_found(name: &str) -> ApiError {
    ApiError::AgentNotFound(name.to_string())
}

/// Ask the router agent which specialist should answer.
async fn route(app: &Arc<App>, caller: &Caller, message: &str) -> Result<(AgentSpec, Usage), ApiError> {
    let router = app.agents().get("router").cloned().ok_or_else(|| agent_not_found("router"))?;
    let model = app.llm().resolve(router.model.as_deref())?.clone();
    let messages = vec![Message::new(Role::System, router.system_prompt.clone()), Message::new(Role::User, message)];
    let options = TurnOptions {
        max_iterations: 1,
        sampling: Sampling { max_tokens: Some(16), temperature: Some(0.0), ..Sampling::default() },
        ..TurnOptions::default()
    };
    let turn = coordinator::run(&model, messages, &app.tools(), &options).await.map_err(|f| ApiError::from(f.error))?;
    let chosen = app.agents().parse_route(&turn.content);
    let agent = match lookup_agent(app, caller, &chosen, Choice::Picked).await {
        Ok(agent) => agent,
        Err(_) => lookup_agent(app, caller, crate::agents::builtin::ROUTER_FALLBACK, Choice::Picked).await?,
    };
    tracing::debug!(route = %chosen, "router chose an agent");
    Ok((agent, turn.usage))
}

/// What a finished (or failed) turn amounts to, for the response and the records.
pub struct Finished {
    pub message_id: String,
    pub tokens: Usage,
    pub duration_ms: u64,
}

/// Persist the exchange (on success) and the run record (tenants), whatever the outcome; a
/// failure's tokens (earlier tool rounds, an abandoned stream's estimate) are counted too.
pub async fn finish(
    app: &Arc<App>,
    prepared: &Prepared,
    outcome: &Result<Turn, TurnFailure>,
) -> Result<Finished, ApiError> {
    let (finished, record) = records(app, prepared, outcome);
    // Chat records: the client is answered once they are queued (see `journal`). Every later
    // read sees them (readers settle the queue first: the next turn waits for this one's commit
    // if it has not happened yet), and they are durable within `[storage].sync_interval_ms`.
    if let Some(record) = record {
        app.journal().record(app.store(), record).await?;
    }
    Ok(finished)
}

/// What [`finish`] reports and stores for `outcome`; `None`: nothing to store.
fn records(app: &App, prepared: &Prepared, outcome: &Result<Turn, TurnFailure>) -> (Finished, Option<ChatRecord>) {
    let now = clock::now_unix();
    let duration_ms = prepared.started.elapsed().as_millis() as u64;
    let mut tokens = prepared.routing_usage;
    if let Err(failure) = outcome {
        tokens.input_tokens += failure.usage.input_tokens;
        tokens.output_tokens += failure.usage.output_tokens;
        tokens.cached_input_tokens += failure.usage.cached_input_tokens;
    }
    let message_id = uuid::Uuid::now_v7().to_string();
    let mut messages = Vec::new();
    if let Ok(turn) = outcome {
        tokens.input_tokens += turn.usage.input_tokens;
        tokens.output_tokens += turn.usage.output_tokens;
        tokens.cached_input_tokens += turn.usage.cached_input_tokens;
    }
    if let Ok(turn) = outcome
        && prepared.stored
    {
        messages = vec![
            MessageRecord {
                id: uuid::Uuid::now_v7().to_string(),
                role: "user".into(),
                content: prepared.user_message.clone(),
                created_at: now,
            },
            MessageRecord {
                id: message_id.clone(),
                role: "assistant".into(),
                content: turn.content.clone(),
                created_at: now,
            },
        ];
    }
    let served = outcome.as_ref().ok().and_then(|turn| turn.served.as_ref());
    let run = run_record(prepared, outcome.as_ref().err().map(ToString::to_string), served, tokens, duration_ms, now);
    // Users' own statements teach memory, in the same commit as the exchange that made them.
    let learner = match &prepared.caller {
        Caller::User { user_id } if outcome.is_ok() && prepared.stored && app.config().memory.learn => {
            Some((user_id.clone(), memory::extract(&prepared.user_message))).filter(|(_, lessons)| !lessons.is_empty())
        }
        _ => None,
    };
    let finished = Finished { message_id, tokens, duration_ms };
    if messages.is_empty() && learner.is_none() && run.is_none() {
        return (finished, None);
    }
    let record = ChatRecord {
        owner: prepared.owner.clone(),
        context_id: prepared.context_id.clone(),
        messages,
        lessons: learner,
        run,
        now,
    };
    (finished, Some(record))
}

/// Add a turn's tokens to its request's counter, which its quota settles from.
fn count_request_tokens(request_tokens: &AtomicU64, tokens: &Usage) {
    request_tokens.fetch_add(tokens.input_tokens + tokens.output_tokens, Ordering::Relaxed);
}

/// Records a plain request's turn as failed when its client leaves before the answer: the
/// handler is dropped mid-call (the upstream call is cancelled with it), so [`complete`] never
/// finishes, and without this the run would vanish from the tenant's runs and agent statistics,
/// and its prompt from the quota, while a stream abandoned the same way is recorded and counted.
/// Nothing came back, so only the prompt's estimate is counted.
struct UnfinishedTurn<'a> {
    app: &'a App,
    prepared: &'a Prepared,
    request_tokens: &'a AtomicU64,
    finished: bool,
}

impl Drop for UnfinishedTurn<'_> {
    fn drop(&mut self) {
        // A panicking turn is answered 500 and logged as the bug it is, not as a client leaving.
        if self.finished || std::thread::panicking() {
            return;
        }
        let usage = Usage { input_tokens: self.prepared.estimated_prompt_tokens(), ..Usage::default() };
        let abandoned = Err(TurnFailure { error: LlmError::ClientGone, usage });
        let (finished, record) = records(self.app, self.prepared, &abandoned);
        count_request_tokens(self.request_tokens, &finished.tokens);
        if let Some(record) = record {
            self.app.journal().record_detached(self.app.store(), record);
        }
    }
}

/// A run record for tenant calls (runs belong to tenants; user chats have none).
fn run_record(
    prepared: &Prepared,
    error: Option<String>,
    served: Option<&crate::llm::router::Served>,
    tokens: Usage,
    duration_ms: u64,
    now: i64,
) -> Option<runs::AgentRunRecord> {
    let Caller::Tenant { tenant_id } = &prepared.caller else { return None };
    if matches!(prepared.agent.source, AgentSource::User | AgentSource::Community) {
        return None;
    }
    Some(runs::AgentRunRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.clone(),
        agent_name: prepared.agent.name.clone(),
        user_id: None,
        status: if error.is_some() { "failed".into() } else { "completed".into() },
        input_tokens: tokens.input_tokens,
        output_tokens: tokens.output_tokens,
        duration_ms,
        error,
        created_at: now,
        served_by: served.map(|s| s.by.clone()),
        attempts: served.map_or(0, |s| s.attempts),
        // The request's model calls so far (its router pick, tool rounds, fallbacks): one run
        // per request, so the request's cost is the run's.
        cost_micros: crate::telemetry::scope::current().map_or(0, |scope| scope.cost().micros()),
    })
}
