//! One chat request, independent of HTTP: choose the agent (the router decides when none is
//! named), pick the model, rebuild the conversation history within the model's context, and —
//! once the model has answered — persist the exchange and the run record.

use std::sync::Arc;
use std::time::Instant;

use crate::agents::resolve::{self, Choice};
use crate::agents::{AgentSource, AgentSpec};
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::llm::ModelEntry;
use crate::llm::coordinator::{self, Turn, TurnFailure, TurnOptions};
use crate::llm::types::{Message, Role, Usage, estimate_tokens};
use crate::memory;
use crate::metering::periods::day_start;
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

#[derive(Debug, Clone)]
pub struct ChatInput {
    pub caller: Caller,
    pub message: String,
    /// Earlier turns supplied by the client (`messages[]` without the final user message).
    pub extra_history: Vec<Message>,
    pub agent_type: Option<String>,
    pub context_id: Option<String>,
    pub model: Option<String>,
}

/// Everything needed to run the model and to finish the request afterwards.
pub struct Prepared {
    pub agent: AgentSpec,
    pub model: ModelEntry,
    pub messages: Vec<Message>,
    pub options: TurnOptions,
    pub context_id: String,
    pub owner: String,
    pub caller: Caller,
    pub user_message: String,
    pub started: Instant,
    /// Tokens already spent deciding the route.
    pub routing_usage: Usage,
    /// Chunks retrieved from the agent's collection, as returned to the client.
    pub sources: Option<Vec<serde_json::Value>>,
}

/// Resolve agent, model and history. Errors here are ordinary JSON errors (before any stream).
pub async fn prepare(app: &Arc<App>, input: ChatInput) -> Result<Prepared, ApiError> {
    let started = Instant::now();
    if input.message.trim().is_empty() {
        return Err(ApiError::MissingField("message".into()));
    }
    let model_override = match &input.model {
        Some(name) => Some(
            app.llm()
                .lookup(name)
                .cloned()
                .ok_or_else(|| ApiError::Unprocessable(format!("Invalid model: '{name}'")))?,
        ),
        None => None,
    };
    let (agent, routing_usage) = match input.agent_type.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(name) => (resolve_agent(app, &input.caller, name).await?, Usage::default()),
        None => route(app, &input.caller, &input.message).await?,
    };
    let model = match model_override {
        Some(model) => model,
        None => app.llm().resolve(agent.model.as_deref()).map_err(ApiError::from)?.clone(),
    };

    let owner = input.caller.owner();
    // New ids are time-ordered, so same-second conversations still list newest first.
    let context_id =
        input.context_id.clone().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // Bounded (at most MAX_HISTORY_MESSAGES), so read inline rather than hop threads.
    let stored = app
        .store()
        .read_now(|txn| {
            if !conversations::usable_by(txn, &owner, &context_id)? {
                return Ok(None);
            }
            Ok(Some(conversations::recent_messages(txn, &context_id, MAX_HISTORY_MESSAGES)?))
        })?
        .ok_or_else(|| ApiError::NotFound("Conversation not found".into()))?;

    let mut history: Vec<Message> = stored
        .iter()
        .filter_map(|m| Role::parse(&m.role).map(|role| Message::new(role, m.content.clone())))
        .chain(input.extra_history)
        .collect();
    let budget = model.context_length.map_or(DEFAULT_CONTEXT_TOKENS, u64::from).saturating_sub(ANSWER_RESERVE_TOKENS);
    let fixed = estimate_tokens(&agent.system_prompt) + estimate_tokens(&input.message);
    trim_history(&mut history, budget.saturating_sub(fixed));

    let mut system_prompt = agent.system_prompt.clone();
    if let Caller::User { user_id } = &input.caller
        && app.config().memory.inject
        && let Some(section) = memory_section(app, user_id)?
    {
        system_prompt = if system_prompt.is_empty() { section } else { format!("{system_prompt}\n\n{section}") };
    }
    let sources = match (&agent.collection, &input.caller) {
        (Some(collection), Caller::User { user_id }) => {
            let hits = ground(app, user_id, collection, &input.message).await?;
            if let Some(section) = grounding_section(collection, &hits) {
                system_prompt =
                    if system_prompt.is_empty() { section } else { format!("{system_prompt}\n\n{section}") };
            }
            Some(hits.iter().map(|hit| crate::api::rag_view(hit, collection)).collect())
        }
        _ => None,
    };
    let mut messages = Vec::with_capacity(history.len() + 2);
    if !system_prompt.is_empty() {
        messages.push(Message::new(Role::System, system_prompt));
    }
    messages.extend(history);
    messages.push(Message::new(Role::User, input.message.clone()));

    let options = TurnOptions {
        tools: agent.tools.clone(),
        max_iterations: agent.max_iterations,
        parallel_tools: agent.parallel_tools,
        max_tokens: agent.max_tokens,
        temperature: agent.temperature,
    };
    Ok(Prepared {
        agent,
        model,
        messages,
        options,
        context_id,
        owner,
        caller: input.caller,
        user_message: input.message,
        started,
        routing_usage,
        sources,
    })
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
    let outcome = tokio::task::spawn_blocking(move || app.rag().search(app.store(), &request))
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
        Caller::Tenant { tenant_id } => resolve::for_tenant(app.store(), app.agents(), tenant_id, name)?,
        Caller::User { user_id } => {
            resolve::for_user(app.store(), app.agents(), user_id, name, choice).await?.map(resolve::Found::into_spec)
        }
    };
    let agent = found.ok_or_else(|| agent_not_found(name))?;
    Ok(agent.capped(app.config().limits.max_tool_iterations))
}

pub fn agent_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Agent not found: {name}"))
}

/// Ask the router agent which specialist should answer.
async fn route(app: &Arc<App>, caller: &Caller, message: &str) -> Result<(AgentSpec, Usage), ApiError> {
    let router = app.agents().get("router").cloned().ok_or_else(|| agent_not_found("router"))?;
    let model = app.llm().resolve(router.model.as_deref())?.clone();
    let messages = vec![Message::new(Role::System, router.system_prompt.clone()), Message::new(Role::User, message)];
    let options = TurnOptions {
        tools: Vec::new(),
        max_iterations: 1,
        parallel_tools: false,
        max_tokens: Some(16),
        temperature: Some(0.0),
    };
    let turn = coordinator::run(&model, messages, app.tools(), &options).await.map_err(|f| ApiError::from(f.error))?;
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
    let now = clock::now_unix();
    let duration_ms = prepared.started.elapsed().as_millis() as u64;
    let mut tokens = prepared.routing_usage;
    if let Err(failure) = outcome {
        tokens.input_tokens += failure.usage.input_tokens;
        tokens.output_tokens += failure.usage.output_tokens;
    }
    let message_id = uuid::Uuid::now_v7().to_string();
    let mut messages = Vec::new();
    if let Ok(turn) = outcome {
        tokens.input_tokens += turn.usage.input_tokens;
        tokens.output_tokens += turn.usage.output_tokens;
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
    let run = run_record(prepared, outcome.as_ref().err().map(ToString::to_string), tokens, duration_ms, now);
    // Users' own statements teach memory, in the same commit as the exchange that made them.
    let learner = match &prepared.caller {
        Caller::User { user_id } if outcome.is_ok() && app.config().memory.learn => {
            Some((user_id.clone(), memory::extract(&prepared.user_message))).filter(|(_, lessons)| !lessons.is_empty())
        }
        _ => None,
    };
    let (owner, id, day) = (prepared.owner.clone(), prepared.context_id.clone(), day_start(now));
    app.store()
        .write(move |txn| {
            if !messages.is_empty() {
                conversations::append(txn, &owner, &id, &messages, now)?;
            }
            if let Some((user_id, lessons)) = &learner {
                memory::apply(txn, user_id, lessons, now)?;
            }
            if let Some(run) = &run {
                runs::record(txn, run, day)?;
            }
            Ok(())
        })
        .await?;
    Ok(Finished { message_id, tokens, duration_ms })
}

/// A run record for tenant calls (runs belong to tenants; user chats have none).
fn run_record(
    prepared: &Prepared,
    error: Option<String>,
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
    })
}
