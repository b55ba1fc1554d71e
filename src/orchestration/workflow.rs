//! Workflows (API.md §1.5): an entry agent, a fallback, a depth cap and an iteration cap.
//!
//! The loop is the reference server's: run the current agent on the original query; a router's
//! answer names the next agent (the fallback when it names none that resolves); any other agent
//! ends the run. Unlike the reference, `max_iterations` is enforced — as a hard cap on model calls
//! across the whole run — and the request's `context` reaches every agent.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Spend, run_agent};
use crate::agents::AgentSpec;
use crate::agents::resolve::Choice;
use crate::app::App;
use crate::chat::{Caller, lookup_agent};
use crate::clock;
use crate::config::{Config, WorkflowConfig};
use crate::error::ApiError;

/// The final response when no step ran (the reference's literal).
pub const NO_RESPONSE: &str = "No response generated";

/// The workflows a server offers: `default` and `research` built in, then ares.toml and the
/// workflows directory (a configured workflow replaces a built-in of the same name).
pub struct Workflows {
    definitions: Vec<WorkflowConfig>,
}

impl Workflows {
    pub fn new(config: &Config) -> Workflows {
        let mut definitions = builtin();
        for configured in &config.workflows {
            match definitions.iter_mut().find(|w| w.name == configured.name) {
                Some(existing) => *existing = configured.clone(),
                None => definitions.push(configured.clone()),
            }
        }
        definitions.sort_by(|a, b| a.name.cmp(&b.name));
        Workflows { definitions }
    }

    /// Sorted by name.
    pub fn all(&self) -> &[WorkflowConfig] {
        &self.definitions
    }

    pub fn get(&self, name: &str) -> Option<&WorkflowConfig> {
        self.definitions.iter().find(|w| w.name == name)
    }
}

fn builtin() -> Vec<WorkflowConfig> {
    vec![
        WorkflowConfig {
            name: "default".into(),
            entry_agent: "router".into(),
            fallback_agent: Some("orchestrator".into()),
            max_depth: 3,
            max_iterations: 5,
            parallel_subagents: false,
        },
        WorkflowConfig {
            name: "research".into(),
            entry_agent: "orchestrator".into(),
            fallback_agent: None,
            max_depth: 3,
            max_iterations: 10,
            parallel_subagents: true,
        },
    ]
}

/// Which cap ended a run early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxDepth,
    MaxIterations,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxDepth => "max_depth",
            Limit::MaxIterations => "max_iterations",
        }
    }
}

/// One agent's turn in the reasoning path.
#[derive(Debug, Clone)]
pub struct Step {
    pub agent_name: String,
    /// What the step decided (`Routed to sales agent.`) or, for a specialist, its answer.
    pub action: String,
    pub input: String,
    pub output: String,
    pub timestamp: i64,
    pub duration_ms: u64,
    pub model_calls: u32,
    /// Set on the last step when a cap stopped the run after it.
    pub limit_reached: Option<Limit>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub final_response: String,
    pub steps: Vec<Step>,
    pub model_calls: u32,
    pub limit_reached: Option<Limit>,
    pub duration_ms: u64,
}

impl Outcome {
    /// The response body: both step field sets (API.md C8) plus what capped the run.
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|step| {
                let mut fields = json!({
                    "agent": step.agent_name,
                    "action": step.action,
                    "agent_name": step.agent_name,
                    "input": step.input,
                    "output": step.output,
                    "timestamp": step.timestamp,
                    "duration_ms": step.duration_ms,
                    "model_calls": step.model_calls,
                });
                if let (Some(limit), Some(object)) = (step.limit_reached, fields.as_object_mut()) {
                    object.insert("limit_reached".into(), Value::from(limit.as_str()));
                }
                fields
            })
            .collect();
        json!({
            "final_response": self.final_response,
            "steps_executed": self.steps.len(),
            "agents_used": self.steps.iter().map(|s| s.agent_name.as_str()).collect::<Vec<_>>(),
            "reasoning_path": steps,
            "duration_ms": self.duration_ms,
            "model_calls": self.model_calls,
            "limit_reached": self.limit_reached.map(Limit::as_str),
        })
    }
}

/// The prompt an agent sees: the query, then the caller's context as JSON when there is any.
pub fn prompt_with_context(query: &str, context: &Map<String, Value>) -> String {
    if context.is_empty() {
        return query.to_string();
    }
    let context = serde_json::to_string_pretty(context).unwrap_or_default();
    format!("{query}\n\nContext provided with this request (JSON):\n{context}")
}

/// Run `workflow` for `caller`.
pub async fn run(
    app: &Arc<App>,
    caller: &Caller,
    workflow: &WorkflowConfig,
    query: &str,
    context: &Map<String, Value>,
    spend: &Spend,
) -> Result<Outcome, ApiError> {
    let started = Instant::now();
    let prompt = prompt_with_context(query, context);
    let max_calls = u32::from(workflow.max_iterations);
    let mut steps: Vec<Step> = Vec::new();
    let mut model_calls = 0u32;
    let mut next = Some(workflow.entry_agent.clone());
    let mut limit = None;

    while let Some(name) = next.take() {
        if steps.len() >= usize::from(workflow.max_depth) {
            limit = Some(Limit::MaxDepth);
            break;
        }
        if model_calls >= max_calls {
            limit = Some(Limit::MaxIterations);
            break;
        }
        let agent = resolve(app, caller, &name, workflow.fallback_agent.as_deref()).await?;
        let step_started = Instant::now();
        let timestamp = clock::now_unix();
        let budget = max_calls - model_calls;
        let turn = run_agent(app, &agent, prompt.clone(), budget, spend).await?;
        model_calls += turn.model_calls;
        // The cap, not the agent, ended its tool rounds: it used every call it was given while
        // it still had tool rounds of its own left.
        let cut_short =
            turn.tool_calls > 0 && turn.model_calls >= budget && budget < agent.max_iterations.saturating_add(1);

        let mut action = turn.content.clone();
        if is_router(&agent) {
            let target = app.agents().route_target(&turn.content);
            let resolved = match &target {
                Some(target) => lookup_agent(app, caller, target, Choice::Picked).await.ok().map(|a| a.name),
                None => None,
            };
            next = resolved.or_else(|| workflow.fallback_agent.clone());
            action = match (&next, target.is_some()) {
                (Some(chosen), true) if target.as_deref() == Some(chosen.as_str()) => {
                    format!("Routed to {chosen} agent.")
                }
                (Some(chosen), _) => format!("No known agent named; falling back to {chosen} agent."),
                (None, _) => "No known agent named and no fallback agent; stopping.".to_string(),
            };
        }
        steps.push(Step {
            agent_name: agent.name.clone(),
            action,
            input: query.to_string(),
            output: turn.content,
            timestamp,
            duration_ms: step_started.elapsed().as_millis() as u64,
            model_calls: turn.model_calls,
            limit_reached: cut_short.then_some(Limit::MaxIterations),
        });
        if cut_short {
            limit = Some(Limit::MaxIterations);
            break;
        }
    }

    if let (Some(limit), Some(last)) = (limit, steps.last_mut()) {
        last.limit_reached = Some(limit);
    }
    Ok(Outcome {
        final_response: steps.last().map_or_else(|| NO_RESPONSE.to_string(), |s| s.output.clone()),
        steps,
        model_calls,
        limit_reached: limit,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn is_router(agent: &AgentSpec) -> bool {
    agent.name == "router"
}

/// The named agent, else the fallback (when configured); a fallback that does not resolve
/// either is the caller's 404. The definition and the router pick these names, not the caller,
/// so they resolve among platform agents and the caller's own only.
async fn resolve(app: &Arc<App>, caller: &Caller, name: &str, fallback: Option<&str>) -> Result<AgentSpec, ApiError> {
    match lookup_agent(app, caller, name, Choice::Picked).await {
        Ok(agent) => Ok(agent),
        Err(ApiError::AgentNotFound(_)) if fallback.is_some_and(|f| f != name) => {
            lookup_agent(app, caller, fallback.unwrap_or_default(), Choice::Picked).await
        }
        Err(e) => Err(e),
    }
}
