//! `POST /api/research` (API.md §1.4, C9, C10): deep research by the `research` workflow's
//! entry agent.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agents::resolve::Choice;
use crate::api::Context;
use crate::chat::lookup_agent;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::orchestration::Spend;
use crate::orchestration::research::{self, ResearchRequest};

const DEFAULT_DEPTH: i64 = 3;
const DEFAULT_MAX_ITERATIONS: i64 = 5;
/// Used when no `research` workflow exists (it is built in, but a config could not remove it).
const DEFAULT_AGENT: &str = "orchestrator";

#[derive(Deserialize)]
struct ResearchBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    depth: Option<i64>,
    #[serde(default)]
    max_iterations: Option<i64>,
}

pub async fn research(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    // A user, or a tenant through MCP's `research` tool.
    let caller = crate::api::chat::caller(&ctx.principal)?;
    let body: ResearchBody = ctx.json(request).await?;
    let query = body.query.filter(|q| !q.trim().is_empty()).ok_or_else(|| ApiError::MissingField("query".into()))?;
    let depth = body.depth.unwrap_or(DEFAULT_DEPTH);
    if !(1..=10).contains(&depth) {
        return Err(ApiError::BadRequest("depth must be between 1 and 10".into()));
    }
    let max_iterations = body.max_iterations.unwrap_or(DEFAULT_MAX_ITERATIONS);
    if !(1..=50).contains(&max_iterations) {
        return Err(ApiError::BadRequest("max_iterations must be between 1 and 50".into()));
    }

    let workflows = ctx.app.workflows();
    let workflow = workflows.get("research");
    let agent_name = workflow.map_or(DEFAULT_AGENT, |w| w.entry_agent.as_str());
    // The workflow, not the caller, names this agent: never another user's.
    let agent = lookup_agent(&ctx.app, &caller, agent_name, Choice::Picked).await?;
    let request = ResearchRequest {
        query,
        depth: depth as u32,
        max_iterations: max_iterations as u32,
        parallel: workflow.is_none_or(|w| w.parallel_subagents),
    };
    let spend = Spend::default();
    let outcome = research::run(&ctx.app, &agent, &request, &spend).await;
    ctx.add_tokens(spend.tokens());
    let outcome = outcome?;

    let sources: Vec<Value> = outcome.sources.iter().map(|s| Value::from(s.title.as_str())).collect();
    let details: Vec<Value> = outcome
        .sources
        .iter()
        .map(|s| json!({ "title": s.title, "url": s.url, "relevance_score": s.relevance_score }))
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "findings": outcome.findings,
            "sources": sources,
            "source_details": details,
            "duration_ms": outcome.duration_ms,
            "model_calls": outcome.model_calls,
            "sub_questions": outcome.sub_questions,
            "agent": agent.name,
        }),
    ))
}
