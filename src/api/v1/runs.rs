//! `POST /v1/agents/{name}/run` (API.md §1.10): run one of the tenant's agents synchronously on
//! `input.message` + `input.context`. An agent failure is still HTTP 200, with status `failed`.

use std::time::Instant;

use http::StatusCode;
use serde_json::{Value, json};

use crate::agents::AgentSpec;
use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::llm::coordinator::{self, TurnOptions};
use crate::llm::types::{Message, Role};
use crate::store::{agents, runs};

pub async fn run(ctx: &Context, name: &str, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let input = body.get("input").cloned().unwrap_or_else(|| body.clone());
    let message = input
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::MissingField("input.message".into()))?
        .to_string();
    let tenant = ctx.tenant()?.clone();
    let record = ctx.app.store().read_now(|txn| agents::get(txn, &tenant.tenant_id, name))?;
    let agent = match record {
        Some(agent) if agent.enabled => agent,
        _ => return Err(ApiError::NotFound(format!("Agent not found: {name}"))),
    };
    let spec = AgentSpec::from_tenant_agent(&agent).capped(ctx.app.config().limits.max_tool_iterations);
    let model = ctx.app.llm().resolve(spec.model.as_deref())?.clone();

    let mut prompt = message.clone();
    if let Some(context) = input.get("context").filter(|c| !c.is_null()) {
        let rendered = serde_json::to_string_pretty(context).unwrap_or_default();
        prompt.push_str(&format!("\n\nContext:\n{rendered}"));
    }
    let mut messages = Vec::new();
    if !spec.system_prompt.is_empty() {
        messages.push(Message::new(Role::System, spec.system_prompt.clone()));
    }
    messages.push(Message::new(Role::User, prompt));
    let options = TurnOptions {
        tools: ctx.app.tools().permitted(&spec.tools, spec.source),
        max_iterations: spec.max_iterations,
        parallel_tools: spec.parallel_tools,
        sampling: spec.sampling(),
        client_tools: Vec::new(),
    };

    crate::chat::reserve_budget(&ctx.app, &model, &messages, options.sampling.max_tokens)?;
    let started_at = clock::now_unix();
    let started = Instant::now();
    let outcome = coordinator::run(&model, messages, &ctx.app.tools(), &options).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (status, output, error, usage) = match &outcome {
        Ok(turn) => ("completed", Some(output_of(&turn.content)), None, turn.usage),
        Err(failure) => ("failed", None, Some(failure.to_string()), failure.usage),
    };
    let tokens = usage.input_tokens + usage.output_tokens;
    ctx.add_tokens(tokens);
    ctx.note_served(outcome.as_ref().ok());
    let run = runs::AgentRunRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.tenant_id.clone(),
        agent_name: agent.agent_name.clone(),
        user_id: None,
        status: status.into(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        duration_ms,
        error: error.clone(),
        created_at: started_at,
        served_by: outcome.as_ref().ok().and_then(|turn| turn.served.as_ref()).map(|s| s.by.clone()),
        attempts: outcome.as_ref().ok().and_then(|turn| turn.served.as_ref()).map_or(0, |s| s.attempts),
        cost_micros: crate::telemetry::scope::current().map_or(0, |scope| scope.cost().micros()),
    };
    let stored = run.clone();
    ctx.app.store().write_relaxed(move |txn| runs::record(txn, &stored)).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "id": run.id,
            "agent_id": agent.id,
            "agent_name": agent.agent_name,
            "status": status,
            "input": input,
            "output": output,
            "error": error,
            "started_at": clock::rfc3339(started_at),
            "finished_at": clock::rfc3339(started_at + (duration_ms / 1000) as i64),
            "duration_ms": duration_ms,
            "tokens_used": tokens,
        }),
    ))
}

/// The model's JSON object (a ```json fence removed) when it answered JSON, else
/// `{"response": text}`.
fn output_of(reply: &str) -> Value {
    let trimmed = reply.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    match serde_json::from_str::<Value>(unfenced) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({ "response": reply }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_replies_become_the_output_and_text_is_wrapped() {
        assert_eq!(output_of(r#"{"risk_score": 0.7}"#), json!({"risk_score": 0.7}));
        assert_eq!(output_of("```json\n{\"a\": 1}\n```"), json!({"a": 1}));
        assert_eq!(output_of("plain words"), json!({"response": "plain words"}));
        assert_eq!(output_of("[1,2]"), json!({"response": "[1,2]"}));
    }
}
