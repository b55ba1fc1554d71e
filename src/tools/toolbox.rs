//! The tools an agent may call, their schemas for the model, and their execution with a
//! timeout. A failing tool answers the model with `{"error": "..."}` instead of failing the
//! chat, so the model can recover or explain.
//!
//! Besides the built-ins, an agent's `tools` may name MCP servers (`mcp:<server>`,
//! `mcp:<server>/<tool>`): their tools are offered as `<server>__<tool>` and run through
//! [`McpClients`], under the same rules.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agents::spec::AgentSource;
use crate::config::{Config, EnvLookup};
use crate::llm::types::{ToolCall, ToolSpec};
use crate::mcp::client::McpClients;
use crate::mcp::{self, Selection};

/// Default per-call timeout when `[tools.<name>].timeout_secs` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ToolBox {
    calculator: Option<Duration>,
    web_search: Option<(Option<String>, Duration)>,
    agent: ureq::Agent,
    mcp: Arc<McpClients>,
}

/// Why an agent may not name a tool (its save is refused).
#[derive(Debug, thiserror::Error)]
pub enum ToolRefusal {
    #[error("Tool '{tool}' not found. Available tools: {available:?}")]
    Unknown { tool: String, available: Vec<String> },
    #[error("MCP server '{0}' is not available to tenant or user agents")]
    Forbidden(String),
}

impl ToolBox {
    /// `previous`: the tool box a reload replaces; its MCP connections are kept while
    /// `[[mcp.servers]]` is unchanged.
    pub fn new(config: &Config, env: &EnvLookup, previous: Option<&ToolBox>) -> ToolBox {
        let mcp = match previous {
            Some(previous) if previous.mcp.serves(&config.mcp.servers) => previous.mcp.clone(),
            _ => Arc::new(McpClients::new(&config.mcp.servers, env)),
        };
        let timeout =
            |name: &str| config.tools.get(name).map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.timeout_secs.max(1)));
        let enabled = |name: &str| config.tools.get(name).is_none_or(|t| t.enabled);
        let calculator = enabled("calculator").then(|| timeout("calculator"));
        let web_search = enabled("web_search")
            .then(|| (config.tools.get("web_search").and_then(|t| t.url.clone()), timeout("web_search")));
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        ToolBox { calculator, web_search, agent, mcp }
    }

    pub fn mcp(&self) -> &McpClients {
        &self.mcp
    }

    /// Check the tools a tenant or user agent is saved with: built-ins that exist here, and MCP
    /// servers the operator opened to tenants (`allow_tenants`).
    pub fn check_for_tenants(&self, tools: &[String]) -> Result<(), ToolRefusal> {
        if let Some(server) = self.forbidden_for_tenants(tools) {
            return Err(ToolRefusal::Forbidden(server.to_string()));
        }
        for tool in tools.iter().filter(|tool| Selection::parse(tool).is_none()) {
            if !self.available().contains(&tool.as_str()) {
                let available = self.available().into_iter().map(str::to_string).collect();
                return Err(ToolRefusal::Unknown { tool: tool.clone(), available });
            }
        }
        Ok(())
    }

    /// The first MCP server among `tools` that tenant and user agents may not use (unknown
    /// servers included: naming one is no more allowed than naming a closed one).
    pub fn forbidden_for_tenants<'t>(&self, tools: &'t [String]) -> Option<&'t str> {
        tools
            .iter()
            .filter_map(|tool| Selection::parse(tool))
            .map(|s| s.server())
            .find(|server| !self.mcp.config(server).is_some_and(|s| s.allow_tenants))
    }

    /// The tools an agent from `source` runs with: a tenant's or user's agent loses the MCP
    /// servers not opened to tenants (saved before the operator closed one, or written to the
    /// store directly), so their tools are never offered or called.
    pub fn permitted(&self, tools: &[String], source: AgentSource) -> Vec<String> {
        if source == AgentSource::System {
            return tools.to_vec();
        }
        tools
            .iter()
            .filter(|tool| match Selection::parse(tool) {
                Some(selection) => self.mcp.config(selection.server()).is_some_and(|s| s.allow_tenants),
                None => true,
            })
            .cloned()
            .collect()
    }

    /// Names of the tools this server can run.
    pub fn available(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.calculator.is_some() {
            out.push("calculator");
        }
        if self.web_search.is_some() {
            out.push("web_search");
        }
        out
    }

    /// Schemas of `names` that exist here (unknown names are skipped), MCP servers' tools
    /// listed (and their servers started) as needed.
    pub async fn specs(&self, names: &[String]) -> Vec<ToolSpec> {
        let mut specs = self.builtin_specs(names);
        for selection in names.iter().filter_map(|name| Selection::parse(name)) {
            for spec in self.mcp_specs(&selection).await {
                if !specs.iter().any(|s| s.name == spec.name) {
                    specs.push(spec);
                }
            }
        }
        specs
    }

    /// What one `mcp:` entry offers. A server that cannot list its tools offers nothing for
    /// `mcp:<server>` (and says why in the log); a named `mcp:<server>/<tool>` is still offered,
    /// with an open schema, so that calling it tells the model what is wrong.
    async fn mcp_specs(&self, selection: &Selection<'_>) -> Vec<ToolSpec> {
        let server = selection.server();
        match self.mcp.tools(server).await {
            Ok(tools) => tools
                .into_iter()
                .filter(|tool| selection.covers(server, &tool.name))
                .map(|tool| ToolSpec {
                    name: mcp::offered_name(server, &tool.name),
                    description: tool.description,
                    parameters: tool.input_schema,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(server, error = %e, "MCP tools not offered");
                match selection {
                    Selection::One { tool, .. } => vec![ToolSpec {
                        name: mcp::offered_name(server, tool),
                        description: format!("{tool} (MCP server {server})"),
                        parameters: json!({ "type": "object" }),
                    }],
                    Selection::All { .. } => Vec::new(),
                }
            }
        }
    }

    fn builtin_specs(&self, names: &[String]) -> Vec<ToolSpec> {
        names
            .iter()
            .filter_map(|name| match name.as_str() {
                "calculator" if self.calculator.is_some() => Some(ToolSpec {
                    name: "calculator".into(),
                    description: "Evaluate an arithmetic expression: + - * / % ^, parentheses, sqrt, sin, cos, \
                        tan, log, ln, abs, exp, floor, ceil, round, pi, e."
                        .into(),
                    parameters: json!({
                        "type": "object",
                        "properties": { "expression": { "type": "string", "description": "e.g. (2 + 3) * sqrt(16)" } },
                        "required": ["expression"]
                    }),
                }),
                "web_search" if self.web_search.is_some() => Some(ToolSpec {
                    name: "web_search".into(),
                    description: "Search the web and return the top results (title, url, snippet).".into(),
                    parameters: json!({
                        "type": "object",
                        "properties": { "query": { "type": "string" } },
                        "required": ["query"]
                    }),
                }),
                _ => None,
            })
            .collect()
    }

    /// Run one call within its timeout; the result text goes back to the model.
    pub async fn execute(&self, call: &ToolCall, allowed: &[String]) -> String {
        if let Some((server, tool)) = mcp::split_offered(&call.name) {
            let permitted = allowed.iter().filter_map(|a| Selection::parse(a)).any(|s| s.covers(server, tool));
            if !permitted {
                return error(format!("Tool '{}' is not available to this agent", call.name));
            }
            return match self.mcp.call(server, tool, &call.arguments).await {
                Ok(outcome) if outcome.is_error => error(outcome.text),
                Ok(outcome) => outcome.text,
                Err(e) => error(e.to_string()),
            };
        }
        if !allowed.iter().any(|a| a == &call.name) {
            return error(format!("Tool '{}' is not available to this agent", call.name));
        }
        let (timeout, task) = match call.name.as_str() {
            "calculator" => match self.calculator {
                Some(timeout) => {
                    let arguments = call.arguments.clone();
                    (timeout, tokio::task::spawn_blocking(move || calculate(&arguments)))
                }
                None => return error("Tool 'calculator' is disabled".to_string()),
            },
            "web_search" => match &self.web_search {
                Some((url, timeout)) => {
                    let (url, arguments, agent) = (url.clone(), call.arguments.clone(), self.agent.clone());
                    (*timeout, tokio::task::spawn_blocking(move || search(agent, url.as_deref(), &arguments)))
                }
                None => return error("Tool 'web_search' is disabled".to_string()),
            },
            other => return error(format!("Unknown tool '{other}'")),
        };
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => error(format!("Tool '{}' failed: {e}", call.name)),
            Err(_) => error(format!("Tool '{}' timed out after {} s", call.name, timeout.as_secs())),
        }
    }
}

fn error(message: String) -> String {
    json!({ "error": message }).to_string()
}

fn calculate(arguments: &Value) -> String {
    let expression = match arguments {
        Value::String(s) => s.clone(),
        other => match other.get("expression").and_then(Value::as_str) {
            Some(e) => e.to_string(),
            None => return error("calculator needs an 'expression' string".into()),
        },
    };
    match super::calculator::evaluate(&expression) {
        Ok(value) => json!({ "expression": expression, "result": super::calculator::format_result(value) }).to_string(),
        Err(e) => error(format!("Cannot evaluate '{expression}': {e}")),
    }
}

/// Query a SearXNG-compatible endpoint (`?q=…&format=json`). With none configured the tool
/// answers with a clear error — the expected case on air-gapped sites.
fn search(agent: ureq::Agent, url: Option<&str>, arguments: &Value) -> String {
    let Some(url) = url else {
        return error("web_search is not configured on this server (set [tools.web_search].url)".into());
    };
    let Some(query) = arguments.get("query").and_then(Value::as_str).or_else(|| arguments.as_str()) else {
        return error("web_search needs a 'query' string".into());
    };
    let response = agent.get(url).query("q", query).query("format", "json").call();
    let mut response = match response {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return error(format!("search endpoint answered HTTP {}", r.status().as_u16())),
        Err(e) => return error(format!("search endpoint unreachable: {e}")),
    };
    let body: Value = match response.body_mut().read_json() {
        Ok(v) => v,
        Err(e) => return error(format!("search endpoint sent invalid JSON: {e}")),
    };
    let results: Vec<Value> = body
        .get("results")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .take(5)
                .map(|r| json!({ "title": r.get("title"), "url": r.get("url"), "snippet": r.get("content") }))
                .collect()
        })
        .unwrap_or_default();
    json!({ "query": query, "results": results }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolbox() -> ToolBox {
        let toml = "[[mcp.servers]]\nname = \"open\"\nurl = \"http://127.0.0.1:9/mcp\"\nallow_tenants = true\n\n\
                    [[mcp.servers]]\nname = \"closed\"\ncommand = \"true\"\n";
        let config = crate::config::load_str(toml, "test.toml", &|_| None).unwrap().config;
        ToolBox::new(&config, &|_| None, None)
    }

    #[test]
    fn tenant_and_user_agents_keep_only_servers_open_to_them() {
        let tools = toolbox();
        let named: Vec<String> =
            ["calculator", "mcp:open", "mcp:closed/x", "mcp:gone"].iter().map(|t| t.to_string()).collect();
        // An operator's agent runs with what it names.
        assert_eq!(tools.permitted(&named, AgentSource::System), named);
        // Anyone else's loses the servers not opened to tenants, and unknown ones.
        for source in [AgentSource::Tenant, AgentSource::User, AgentSource::Community] {
            assert_eq!(tools.permitted(&named, source), ["calculator", "mcp:open"], "{source:?}");
        }
        assert_eq!(tools.forbidden_for_tenants(&named), Some("closed"));
        assert!(matches!(tools.check_for_tenants(&named[..2]), Ok(())));
        assert!(matches!(tools.check_for_tenants(&named), Err(ToolRefusal::Forbidden(s)) if s == "closed"));
    }

    #[tokio::test]
    async fn a_call_outside_the_agents_entries_is_refused_before_any_server_is_asked() {
        let tools = toolbox();
        let call = ToolCall { id: "1".into(), name: "open__anything".into(), arguments: json!({}) };
        let answer = tools.execute(&call, &["mcp:closed".to_string()]).await;
        assert_eq!(answer, json!({ "error": "Tool 'open__anything' is not available to this agent" }).to_string());
    }
}
