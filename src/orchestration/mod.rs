//! Runs that chain several agents: workflows (router → specialist, with caps) and deep research
//! (split a question, answer the parts in parallel, synthesize).
//!
//! Both count *model calls*, not agent steps, against their iteration cap, because a single agent
//! with tools may call the model several times and the cap exists to bound cost.

pub mod research;
pub mod workflow;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::agents::AgentSpec;
use crate::app::App;
use crate::error::ApiError;
use crate::llm::coordinator::{self, Turn, TurnOptions};
use crate::llm::types::{Message, Role};

/// The tokens a multi-agent run has spent so far, failed calls included: shared by its
/// (possibly parallel) branches and read by the caller for metering whatever the outcome.
#[derive(Debug, Clone, Default)]
pub struct Spend(Arc<AtomicU64>);

impl Spend {
    fn add(&self, usage: &crate::llm::types::Usage) {
        self.0.fetch_add(usage.input_tokens + usage.output_tokens, Ordering::Relaxed);
    }

    pub fn tokens(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Run `agent` once on `prompt` using at most `budget` model calls (`budget ≥ 1`), adding what
/// it cost to `spend`.
///
/// With one call left the agent is offered no tools, so the model must answer; with more, its
/// tool rounds are trimmed so that the rounds plus the final answer fit.
pub async fn run_agent(
    app: &Arc<App>,
    agent: &AgentSpec,
    prompt: String,
    budget: u32,
    spend: &Spend,
) -> Result<Turn, ApiError> {
    let model = app.llm().resolve(agent.model.as_deref())?.clone();
    let mut messages = Vec::with_capacity(2);
    if !agent.system_prompt.is_empty() {
        messages.push(Message::new(Role::System, agent.system_prompt.clone()));
    }
    messages.push(Message::new(Role::User, prompt));
    let budget = budget.max(1);
    let options = TurnOptions {
        tools: if budget >= 2 { app.tools().permitted(&agent.tools, agent.source) } else { Vec::new() },
        max_iterations: if budget >= 2 { agent.max_iterations.clamp(1, budget - 1) } else { 1 },
        parallel_tools: agent.parallel_tools,
        sampling: agent.sampling(),
        client_tools: Vec::new(),
    };
    match coordinator::run(&model, messages, &app.tools(), &options).await {
        Ok(turn) => {
            spend.add(&turn.usage);
            Ok(turn)
        }
        Err(failure) => {
            spend.add(&failure.usage);
            Err(ApiError::from(failure.error))
        }
    }
}
