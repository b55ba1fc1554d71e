//! Cross-field checks that types alone cannot express. Run once at start; a failure is fatal
//! (exit code 2) and names the offending section, a doubtful but usable value is a warning.

use std::collections::BTreeSet;

use super::keys::Locator;
use super::{Config, EmbedderKind, EnvLookup, ModelConfig, ProviderConfig, ProviderKind, Tier};

pub(super) fn validate(
    config: &Config,
    env: &EnvLookup,
    file: &Locator<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mut errors = Vec::new();

    if config.server.host.trim().is_empty() {
        errors.push("server.host must not be empty".to_string());
    }
    let base = &config.server.public_base_path;
    if !base.is_empty()
        && (!base.starts_with('/') || base.contains(['?', '#', '"', '<', '>', ' ']) || base.contains("//"))
    {
        errors.push(format!(
            "server.public_base_path must be empty or a path such as \"/ares\" (starting with '/', no query, spaces or quotes), not \"{base}\""
        ));
    }
    if !matches!(config.server.log_format.as_str(), "text" | "json") {
        errors.push(format!("server.log_format must be \"text\" or \"json\", not \"{}\"", config.server.log_format));
    }
    if config.server.max_body_bytes == 0 {
        errors.push("server.max_body_bytes must be greater than 0".to_string());
    }
    if !(1..=1_000_000).contains(&config.observability.log_buffer_lines) {
        errors.push("observability.log_buffer_lines must be between 1 and 1000000".to_string());
    }
    if config.observability.request_log_days > 3650 {
        errors.push("observability.request_log_days must be at most 3650 (0 keeps no request log)".to_string());
    }
    if let Some(endpoint) = &config.observability.otlp_endpoint {
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(endpoint).is_err() {
            errors.push(format!(
                "observability.otlp_endpoint must be an http(s) URL of an OTLP/HTTP receiver (e.g. http://127.0.0.1:4318), not '{endpoint}'"
            ));
        }
    }
    if !(1..=65_536).contains(&config.storage.cache_mib) {
        errors.push("storage.cache_mib must be between 1 and 65536".to_string());
    }
    if config.storage.sync_interval_ms > 10_000 {
        errors.push("storage.sync_interval_ms must be at most 10000 (10 s of chat history at risk)".to_string());
    }
    if config.server.max_chat_body_bytes == 0 {
        errors.push("server.max_chat_body_bytes must be greater than 0".to_string());
    }
    if config.server.max_connections == 0 {
        errors.push("server.max_connections must be greater than 0".to_string());
    }
    for (key, value) in [
        ("request_head_timeout_secs", config.server.request_head_timeout_secs),
        ("body_timeout_secs", config.server.body_timeout_secs),
        ("idle_timeout_secs", config.server.idle_timeout_secs),
    ] {
        if value == 0 {
            errors.push(format!("server.{key} must be greater than 0"));
        }
    }
    if config.auth.max_concurrent_hashes == 0 {
        errors.push("auth.max_concurrent_hashes must be greater than 0".to_string());
    }
    if config.limits.max_tool_iterations == 0 {
        errors.push("limits.max_tool_iterations must be greater than 0".to_string());
    }
    if config.server.rate_limit_per_second > 0 && config.server.rate_limit_burst == 0 {
        errors.push("server.rate_limit_burst must be at least 1 when rate limiting is on".to_string());
    }
    if let Err(message) = config.effective_port(env) {
        errors.push(message.to_string());
    }

    let providers = unique_names("providers", config.providers.iter().map(|p| p.name.as_str()), &mut errors);
    for provider in &config.providers {
        if provider.kind != ProviderKind::Ollama
            && provider.base_url.is_none()
            && provider.kind != ProviderKind::Anthropic
        {
            // OpenAI-compatible providers default to api.openai.com; say so, since air-gapped
            // sites almost always mean a local endpoint.
            warnings.push(format!("providers.{}: no base_url; defaulting to https://api.openai.com/v1", provider.name));
        }
        for model in &provider.models {
            if model.id.trim().is_empty() {
                errors.push(format!("providers.{}.models: a model has an empty id", provider.name));
            }
        }
        validate_resilience(provider, &mut errors);
    }

    let mut model_names: Vec<String> = config.models.iter().map(|m| m.name.clone()).collect();
    for provider in &config.providers {
        model_names.extend(provider.models.iter().map(|m| m.name.clone().unwrap_or_else(|| m.id.clone())));
    }
    // What an agent's `model` may name besides these: the router also finds a model by its
    // provider-side id.
    let model_ids: BTreeSet<&str> = config
        .models
        .iter()
        .map(|m| m.model_id.as_str())
        .chain(config.providers.iter().flat_map(|p| p.models.iter().map(|m| m.id.as_str())))
        .collect();
    unique_names("models", config.models.iter().map(|m| m.name.as_str()), &mut errors);
    for model in &config.models {
        validate_serving(model, &providers, file, &mut errors);
        validate_prices(model, &mut errors);
        for fallback in &model.fallbacks {
            if fallback == &model.name {
                errors.push(format!("models.{}: fallbacks names the model itself", model.name));
            } else if Tier::parse(fallback).is_none() && !model_names.iter().any(|m| m == fallback) {
                errors.push(format!(
                    "models.{}: fallback '{fallback}' is neither a configured model nor a tier",
                    model.name
                ));
            }
        }
    }

    unique_names("agents", config.agents.iter().map(|a| a.name.as_str()), &mut errors);
    let cap = config.limits.max_tool_iterations;
    for agent in &config.agents {
        // `[[agents]]` and the agents directory alike (merged before validation): the cap bounds
        // the model calls one request can buy, whoever defined the agent.
        if let Some(iterations) = agent.max_iterations
            && iterations > cap
        {
            errors.push(format!(
                "agents.{}: {iterations} tool iterations (max_iterations, or max_tool_iterations in a TOON file) \
                 exceed limits.max_tool_iterations ({cap})",
                agent.name
            ));
        }
        if let Some(model) = &agent.model {
            let known = Tier::parse(model).is_some()
                || model_names.iter().any(|m| m == model)
                || model_ids.contains(model.as_str());
            if !known {
                let problem = format!("model '{model}' is neither a configured model nor a tier");
                match file.entry_key("agents", &agent.name, "model") {
                    Some(at) => errors.push(format!("{at}agents.{}.model: {problem}", agent.name)),
                    // A shipped TOON agent written for another site's models still runs.
                    None => warnings.push(format!(
                        "agents.{} (agents directory): {problem}; the default model will be used",
                        agent.name
                    )),
                }
            }
        }
    }

    validate_mcp(config, &mut errors);
    for agent in &config.agents {
        for tool in &agent.tools {
            let Some(server) = crate::mcp::server_of(tool) else { continue };
            if config.mcp.servers.iter().any(|s| s.name == server) {
                continue;
            }
            let problem = format!("tool '{tool}' names an MCP server that is not in [[mcp.servers]]");
            match file.entry_key("agents", &agent.name, "tools") {
                Some(at) => errors.push(format!("{at}agents.{}.tools: {problem}", agent.name)),
                None => warnings.push(format!("agents.{} (agents directory): {problem}", agent.name)),
            }
        }
    }

    let agent_names: BTreeSet<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
    if let Some(default) = &config.chat.default_agent {
        let builtin = crate::agents::builtin::agents().into_iter().any(|a| a.name == *default);
        if !builtin && !agent_names.contains(default.as_str()) {
            errors.push(format!("chat.default_agent: '{default}' is neither an [[agents]] entry nor a built-in agent"));
        }
    }
    unique_names("workflows", config.workflows.iter().map(|w| w.name.as_str()), &mut errors);
    for workflow in &config.workflows {
        if workflow.entry_agent.trim().is_empty() {
            errors.push(format!("workflows.{}: entry_agent must not be empty", workflow.name));
        } else if !agent_names.is_empty() && !agent_names.contains(workflow.entry_agent.as_str()) {
            warnings.push(format!(
                "workflows.{}: entry_agent '{}' is not an [[agents]] entry (it must come from another agent source)",
                workflow.name, workflow.entry_agent
            ));
        }
    }

    let rag = &config.rag;
    if rag.chunk_size == 0 {
        errors.push("rag.chunk_size must be greater than 0".to_string());
    } else if rag.chunk_overlap >= rag.chunk_size {
        errors.push(format!(
            "rag.chunk_overlap ({}) must be smaller than rag.chunk_size ({})",
            rag.chunk_overlap, rag.chunk_size
        ));
    }
    if rag.embedder.dimensions == 0 || rag.embedder.dimensions > 16_384 {
        errors.push(format!("rag.embedder.dimensions must be between 1 and 16384, got {}", rag.embedder.dimensions));
    }
    if rag.embedder.batch_size == 0 {
        errors.push("rag.embedder.batch_size must be greater than 0".to_string());
    }
    if rag.embedder.kind == EmbedderKind::Openai && rag.embedder.base_url.is_none() {
        errors.push("rag.embedder: type \"openai\" needs base_url (e.g. http://127.0.0.1:8080/v1)".to_string());
    }
    if rag.embedder.kind != EmbedderKind::Hash && rag.embedder.model.is_none() {
        errors.push("rag.embedder: model is required for the ollama and openai embedders".to_string());
    }

    unique_names("deploy.targets", config.deploy.targets.iter().map(|t| t.name.as_str()), &mut errors);
    for target in &config.deploy.targets {
        if target.commands.is_empty() {
            errors.push(format!("deploy.targets.{}: commands must list at least one command", target.name));
        }
        if target.timeout_secs == 0 {
            errors.push(format!("deploy.targets.{}: timeout_secs must be greater than 0", target.name));
        }
    }
    if config.deploy.output_cap_bytes < 1024 {
        errors.push("deploy.output_cap_bytes must be at least 1024".to_string());
    }

    unique_names("services", config.services.iter().map(|s| s.name.as_str()), &mut errors);

    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// Collects names, reporting empty and duplicate ones.
fn unique_names<'a>(
    section: &str,
    names: impl Iterator<Item = &'a str>,
    errors: &mut Vec<String>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for name in names {
        if name.trim().is_empty() {
            errors.push(format!("{section}: an entry has no name"));
        } else if !seen.insert(name) {
            errors.push(format!("{section}: '{name}' is defined twice"));
        }
    }
    seen
}

/// A model is served by `provider` + `model_id` or by `deployments`, never both, and every
/// provider it names exists.
fn validate_serving(model: &ModelConfig, providers: &BTreeSet<&str>, file: &Locator<'_>, errors: &mut Vec<String>) {
    let name = &model.name;
    if model.deployments.is_empty() {
        if model.provider.is_empty() || model.model_id.is_empty() {
            errors.push(format!("models.{name}: needs provider and model_id, or deployments"));
        } else if !providers.contains(model.provider.as_str()) {
            let at = file.entry_key("models", name, "provider").unwrap_or_default();
            errors.push(format!("{at}models.{name}.provider: '{}' is not defined in [[providers]]", model.provider));
        }
        return;
    }
    if !model.provider.is_empty() || !model.model_id.is_empty() {
        errors.push(format!("models.{name}: set either provider and model_id, or deployments, not both"));
    }
    for (i, deployment) in model.deployments.iter().enumerate() {
        if !providers.contains(deployment.provider.as_str()) {
            errors.push(format!(
                "models.{name}.deployments[{i}]: provider '{}' is not defined in [[providers]]",
                deployment.provider
            ));
        }
        if deployment.model_id.trim().is_empty() {
            errors.push(format!("models.{name}.deployments[{i}]: model_id must not be empty"));
        }
        if deployment.weight == 0 {
            errors.push(format!("models.{name}.deployments[{i}]: weight must be at least 1"));
        }
    }
}

/// Prices are dollars per million tokens: finite, not negative, below a sanity cap (a price a
/// thousand times any real one is a typo in units).
fn validate_prices(model: &ModelConfig, errors: &mut Vec<String>) {
    let prices = [
        ("input_usd_per_mtok", model.input_usd_per_mtok),
        ("output_usd_per_mtok", model.output_usd_per_mtok),
        ("cached_input_usd_per_mtok", model.cached_input_usd_per_mtok),
    ];
    for (key, price) in prices {
        if let Some(price) = price
            && !(price.is_finite() && (0.0..=100_000.0).contains(&price))
        {
            errors.push(format!(
                "models.{}.{key} must be a price in dollars per million tokens between 0 and 100000, not {price}",
                model.name
            ));
        }
    }
}

/// MCP server names become part of the tool names offered to models (`<server>__<tool>`),
/// which providers restrict to `[A-Za-z0-9_-]{1,64}`.
fn validate_mcp(config: &Config, errors: &mut Vec<String>) {
    unique_names("mcp.servers", config.mcp.servers.iter().map(|s| s.name.as_str()), errors);
    for server in &config.mcp.servers {
        let name = &server.name;
        let well_formed = !name.is_empty()
            && name.len() <= 32
            && !name.contains("__")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_formed {
            errors.push(format!(
                "mcp.servers.{name}: a name is 1-32 letters, digits, '-' or '_' (no '__'): it prefixes the tool names models see"
            ));
        }
        match (&server.command, &server.url) {
            (Some(_), Some(_)) => errors.push(format!("mcp.servers.{name}: set either command or url, not both")),
            (None, None) => {
                errors.push(format!("mcp.servers.{name}: needs a command (stdio) or a url (Streamable HTTP)"))
            }
            (None, Some(url))
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || reqwest::Url::parse(url).is_err() =>
            {
                errors.push(format!("mcp.servers.{name}: url must be an http(s) URL, not '{url}'"));
            }
            _ => {}
        }
        if server.command.is_some() && !server.headers.is_empty() {
            errors.push(format!("mcp.servers.{name}: headers apply to a url server only"));
        }
        if server.timeout_secs == 0 {
            errors.push(format!("mcp.servers.{name}.timeout_secs must be at least 1"));
        }
    }
}

fn validate_resilience(provider: &ProviderConfig, errors: &mut Vec<String>) {
    let name = &provider.name;
    let mut at_least_one = |key: &str, value: u64| {
        if value == 0 {
            errors.push(format!("providers.{name}.{key} must be at least 1"));
        }
    };
    // Zero would time out every call at once.
    at_least_one("connect_timeout_secs", provider.connect_timeout_secs);
    at_least_one("read_timeout_secs", provider.read_timeout_secs);
    at_least_one("retry_initial_ms", provider.retry_initial_ms);
    at_least_one("timeout_secs", provider.timeout_secs);
    at_least_one("first_token_timeout_secs", provider.first_token_timeout_secs);
    at_least_one("breaker_failures", u64::from(provider.breaker_failures));
    at_least_one("breaker_cooldown_secs", provider.breaker_cooldown_secs);
    if provider.retry_max_ms < provider.retry_initial_ms {
        errors.push(format!("providers.{name}.retry_max_ms must not be less than retry_initial_ms"));
    }
    if provider.max_retries > 10 {
        errors.push(format!("providers.{name}.max_retries must be at most 10"));
    }
}
