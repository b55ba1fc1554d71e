//! Response shapes shared by several handlers: the documented field sets plus the reference's
//! extra fields where API.md asks for the superset.

use serde_json::{Value, json};

use crate::clock;
use crate::store::agents::TenantAgentRecord;
use crate::store::api_keys::ApiKeyRecord;
use crate::store::runs::{AgentRunRecord, AgentRunStatsRecord};

/// Product types whose templates prefix agent names (`kasino-classifier`).
const PRODUCT_PREFIXES: [&str; 3] = ["generic-", "kasino-", "ehb-"];

/// The stored config as JSON (an object; anything unparseable shows as `{}`).
pub fn config_value(config_json: &str) -> Value {
    serde_json::from_str::<Value>(config_json).ok().filter(Value::is_object).unwrap_or_else(|| json!({}))
}

/// `config.agent_type`, else the name without a product prefix, else `custom` (API.md §1.9.4).
pub fn agent_type(agent_name: &str, config: &Value) -> String {
    if let Some(kind) = config.get("agent_type").and_then(Value::as_str) {
        return kind.to_string();
    }
    PRODUCT_PREFIXES
        .iter()
        .find_map(|p| agent_name.strip_prefix(p).filter(|rest| !rest.is_empty()))
        .map_or_else(|| "custom".to_string(), str::to_string)
}

fn success_rate(stats: &AgentRunStatsRecord) -> f64 {
    if stats.total == 0 { 0.0 } else { stats.completed as f64 / stats.total as f64 }
}

/// The admin tenant-agent item.
pub fn tenant_agent(agent: &TenantAgentRecord, stats: &AgentRunStatsRecord) -> Value {
    let config = config_value(&agent.config_json);
    json!({
        "id": agent.id,
        "name": agent.agent_name,
        "agent_name": agent.agent_name,
        "display_name": agent.display_name,
        "description": agent.description,
        "agent_type": agent_type(&agent.agent_name, &config),
        "status": if agent.enabled { "active" } else { "disabled" },
        "enabled": agent.enabled,
        "model": config.get("model").cloned().unwrap_or(Value::Null),
        "total_runs": stats.total,
        "success_rate": success_rate(stats),
        "last_run": stats.last_run.map(clock::rfc3339),
        "tenant_id": agent.tenant_id,
        "created_at": clock::rfc3339(agent.created_at),
        "updated_at": clock::rfc3339(agent.updated_at),
        "config": config,
    })
}

/// The V1 agent item (API.md §1.10).
pub fn v1_agent(agent: &TenantAgentRecord, stats: &AgentRunStatsRecord) -> Value {
    let config = config_value(&agent.config_json);
    json!({
        "id": agent.id,
        "name": agent.agent_name,
        "display_name": agent.display_name,
        "description": agent.description,
        "agent_type": agent_type(&agent.agent_name, &config),
        "status": if agent.enabled { "active" } else { "disabled" },
        "created_at": clock::rfc3339(agent.created_at),
        "last_run": stats.last_run.map(clock::rfc3339),
        "total_runs": stats.total,
        "success_rate": success_rate(stats),
        "config": config,
    })
}

/// An API key as listed (never its hash).
pub fn api_key(key: &ApiKeyRecord) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.key_prefix,
        "key_prefix": key.key_prefix,
        "tenant_id": key.tenant_id,
        "is_active": key.is_active,
        "created_at": clock::rfc3339(key.created_at),
        "expires_at": key.expires_at.map(clock::rfc3339),
        "last_used": key.last_used.map(clock::rfc3339),
    })
}

/// A run as the admin API lists it.
pub fn admin_run(run: &AgentRunRecord) -> Value {
    json!({
        "id": run.id,
        "status": run.status,
        "started_at": clock::rfc3339(run.created_at),
        "finished_at": clock::rfc3339(run.created_at + (run.duration_ms / 1000) as i64),
        "duration_ms": run.duration_ms,
        "tokens_used": run.input_tokens + run.output_tokens,
        "agent_name": run.agent_name,
        "tenant_id": run.tenant_id,
        "user_id": run.user_id,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "error": run.error,
        "served_by": run.served_by,
        "attempts": run.attempts,
        "cost_usd": crate::metering::cost::usd(run.cost_micros),
    })
}

/// A run as the V1 API lists it.
pub fn v1_run(run: &AgentRunRecord) -> Value {
    json!({
        "id": run.id,
        "agent_id": run.agent_name,
        "agent_name": run.agent_name,
        "status": run.status,
        "input": { "tokens": run.input_tokens },
        "output": { "tokens": run.output_tokens },
        "error": run.error,
        "started_at": clock::rfc3339(run.created_at),
        "finished_at": clock::rfc3339(run.created_at + (run.duration_ms / 1000) as i64),
        "duration_ms": run.duration_ms,
        "tokens_used": run.input_tokens + run.output_tokens,
        "served_by": run.served_by,
        "attempts": run.attempts,
        "cost_usd": crate::metering::cost::usd(run.cost_micros),
    })
}

/// One rollup's spending, named by `name_key: name` (`"model": "fast"`): dollars as a string to
/// the micro-dollar (`"1.234567"`), requests and tokens.
pub fn spend_view(name_key: &str, name: &str, c: &crate::store::costs::CostRecord) -> serde_json::Value {
    serde_json::json!({
        name_key: name,
        "cost_usd": crate::metering::cost::usd(c.cost_micros),
        "requests": c.requests,
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cached_input_tokens": c.cached_input_tokens,
    })
}

/// A tenant's spending in a usage answer: this month and today, and this month per API key and
/// per model.
pub fn cost_view(summary: &crate::store::costs::Summary) -> serde_json::Value {
    use crate::metering::cost::usd;
    let keys: Vec<serde_json::Value> = summary
        .keys
        .iter()
        .map(|(key_id, c)| serde_json::json!({ "key_id": key_id, "cost_usd": usd(c.cost_micros), "requests": c.requests }))
        .collect();
    let models: Vec<serde_json::Value> =
        summary.models.iter().map(|(model, c)| spend_view("model", model, c)).collect();
    serde_json::json!({
        "month_usd": usd(summary.month.cost_micros),
        "today_usd": usd(summary.today.cost_micros),
        "by_api_key": keys,
        "by_model": models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, config: Value, expected: &str) {
        assert_eq!(agent_type(name, &config), expected, "{name} {config}");
    }

    #[test]
    fn agent_type_is_derived_as_documented() {
        check("kasino-classifier", json!({}), "classifier");
        check("kasino-classifier", json!({"agent_type": "risk"}), "risk");
        check("risk-analyzer", json!({}), "custom");
        check("kasino-", json!({}), "custom");
    }
}
