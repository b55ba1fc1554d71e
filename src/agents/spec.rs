//! An agent ready to run: where it came from, its model, prompt, tools and limits — whatever
//! its source (built-in, `[[agents]]` in ares.toml, a tenant's agents).

use serde_json::Value;

use crate::config::{AgentConfig, ToonPrompt};
use crate::store::agents::TenantAgentRecord;
use crate::store::user_agents::UserAgentRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSource {
    /// Built in or from ares.toml: every user and tenant may use it.
    System,
    /// One of the calling tenant's agents.
    Tenant,
    /// One of the calling user's agents.
    User,
    /// Another user's public agent, named by the caller.
    Community,
}

impl AgentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentSource::System => "system",
            AgentSource::Tenant => "tenant",
            AgentSource::User => "user",
            AgentSource::Community => "community",
        }
    }
}

/// Tool rounds per request when the agent does not say.
pub const DEFAULT_MAX_ITERATIONS: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub source: AgentSource,
    /// The tenant agent's id, for run records.
    pub id: Option<String>,
    /// A model name or tier; `None` = the default model.
    pub model: Option<String>,
    pub system_prompt: String,
    pub tools: Vec<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub max_iterations: u32,
    pub parallel_tools: bool,
    pub enabled: bool,
    /// A RAG collection of the calling user that grounds every answer.
    pub collection: Option<String>,
}

impl AgentSpec {
    /// The agent's own sampling settings; a request's may override them.
    pub fn sampling(&self) -> crate::llm::types::Sampling {
        crate::llm::types::Sampling {
            max_tokens: self.max_tokens,
            temperature: self.temperature.map(crate::llm::types::decimal),
            ..Default::default()
        }
    }

    /// An `[[agents]]` entry; an `[agents.toon]` table is assembled into the system prompt.
    pub fn from_config(config: &AgentConfig) -> AgentSpec {
        let mut prompt = config.system_prompt.clone().unwrap_or_default();
        let mut tools = config.tools.clone();
        if let Some(toon) = &config.toon {
            let assembled = assemble_toon_prompt(toon);
            prompt = if prompt.is_empty() { assembled } else { format!("{prompt}\n\n{assembled}") };
            for tool in &toon.tools {
                if !tools.contains(tool) {
                    tools.push(tool.clone());
                }
            }
        }
        AgentSpec {
            name: config.name.clone(),
            display_name: config.name.clone(),
            description: config.description.clone().unwrap_or_default(),
            source: AgentSource::System,
            id: None,
            model: config.model.clone(),
            system_prompt: prompt,
            tools,
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            max_iterations: config.max_iterations.unwrap_or(DEFAULT_MAX_ITERATIONS),
            parallel_tools: config.parallel_tools.unwrap_or(true),
            enabled: true,
            collection: config.collection.clone(),
        }
    }

    /// A user's agent: `source` says whether it is the caller's own or a community one.
    pub fn from_user_agent(agent: &UserAgentRecord, source: AgentSource) -> AgentSpec {
        AgentSpec {
            name: agent.name.clone(),
            display_name: agent.display_name.clone().unwrap_or_else(|| agent.name.clone()),
            description: agent.description.clone().unwrap_or_default(),
            source,
            id: Some(agent.id.clone()),
            model: Some(agent.model.clone()),
            system_prompt: agent.system_prompt.clone().unwrap_or_default(),
            tools: agent.tools.clone(),
            max_tokens: None,
            temperature: None,
            max_iterations: agent.max_tool_iterations.max(1),
            parallel_tools: agent.parallel_tools,
            enabled: true,
            collection: None,
        }
    }

    /// At most `cap` tool rounds (`[limits].max_tool_iterations`): applied whenever an agent
    /// is resolved to run, because stored records (imports, a cap lowered since) may say more.
    pub fn capped(mut self, cap: u32) -> AgentSpec {
        self.max_iterations = self.max_iterations.min(cap.max(1));
        self
    }

    /// A tenant agent; its JSON config supplies model, prompt, tools and limits.
    pub fn from_tenant_agent(agent: &TenantAgentRecord) -> AgentSpec {
        let config: Value = serde_json::from_str(&agent.config_json).unwrap_or(Value::Null);
        let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_string);
        let number = |key: &str| config.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
        AgentSpec {
            name: agent.agent_name.clone(),
            display_name: agent.display_name.clone(),
            description: agent.description.clone().unwrap_or_default(),
            source: AgentSource::Tenant,
            id: Some(agent.id.clone()),
            model: text("model"),
            system_prompt: text("system_prompt").unwrap_or_default(),
            tools: config
                .get("tools")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            max_tokens: number("max_tokens"),
            temperature: config.get("temperature").and_then(Value::as_f64).map(|t| t as f32),
            max_iterations: number("max_tool_iterations")
                .or_else(|| number("max_iterations"))
                .unwrap_or(DEFAULT_MAX_ITERATIONS),
            parallel_tools: config.get("parallel_tools").and_then(Value::as_bool).unwrap_or(true),
            enabled: agent.enabled,
            collection: None,
        }
    }
}

/// Role, personality, knowledge and constraints as one system prompt.
pub fn assemble_toon_prompt(toon: &ToonPrompt) -> String {
    let mut parts = Vec::new();
    if let Some(role) = &toon.role {
        parts.push(format!("You are a {role}."));
    }
    if let Some(personality) = &toon.personality {
        parts.push(format!("Personality: {personality}."));
    }
    if !toon.knowledge.is_empty() {
        parts.push(format!("You are knowledgeable about: {}.", toon.knowledge.join(", ")));
    }
    if !toon.constraints.is_empty() {
        let rules: Vec<String> = toon.constraints.iter().map(|c| format!("- {c}")).collect();
        parts.push(format!("Rules you always follow:\n{}", rules.join("\n")));
    }
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toon_tables_become_one_prompt_and_add_their_tools() {
        let config = AgentConfig {
            name: "support-agent".into(),
            toon: Some(ToonPrompt {
                role: Some("Customer Support Specialist".into()),
                personality: Some("Professional, empathetic".into()),
                knowledge: vec!["pricing plans".into()],
                constraints: vec!["Never make up information".into(), "Escalate billing disputes".into()],
                tools: vec!["web_search".into()],
            }),
            ..AgentConfig::default()
        };
        let spec = AgentSpec::from_config(&config);
        assert!(spec.system_prompt.starts_with("You are a Customer Support Specialist."));
        assert!(spec.system_prompt.contains("- Escalate billing disputes"));
        assert_eq!(spec.tools, ["web_search"]);
    }
}
