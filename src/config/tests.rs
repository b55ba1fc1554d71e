//! Config loading: every documented form, key-and-line errors, unknown-key warnings,
//! validation and port precedence.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_ok(source: &str) -> LoadedConfig {
    match load_str(source, "ares.toml", &no_env) {
        Ok(loaded) => loaded,
        Err(e) => panic!("config should load: {e}\n---\n{source}"),
    }
}

fn load_err(source: &str) -> String {
    match load_str(source, "ares.toml", &no_env) {
        Ok(_) => panic!("config should be refused:\n{source}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shipped_config_loads_without_warnings() {
    let loaded = load_ok(DEFAULT_CONFIG_TOML);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.server.host, "127.0.0.1");
    assert_eq!(loaded.config.effective_port(&no_env).unwrap(), 3000);
    assert!(!loaded.config.providers.is_empty());
}

#[test]
fn empty_config_is_all_defaults() {
    let loaded = load_ok("");
    assert_eq!(loaded.config.server.max_body_bytes, 2 * 1024 * 1024);
    assert_eq!(loaded.config.auth.jwt_secret_env, "JWT_SECRET");
    assert!(loaded.warnings.is_empty());
}

#[test]
fn quick_start_form_with_nested_models_and_database() {
    let loaded = load_ok(
        r#"
[server]
port = 3000

[database]
url = "postgres://localhost/ares"
max_connections = 10

[[providers]]
name = "groq"
type = "openai"
base_url = "https://api.groq.com/openai/v1"
api_key_env = "GROQ_API_KEY"
[[providers.models]]
id = "llama-3.3-70b-versatile"
name = "llama-3.3-70b"
context_length = 131072

[[agents]]
name = "general-assistant"
model = "llama-3.3-70b"
system_prompt = "You are a helpful assistant."
tools = ["calculator", "web_search"]
max_tokens = 4096
"#,
    );
    let provider = &loaded.config.providers[0];
    assert_eq!(provider.kind, ProviderKind::Openai);
    assert_eq!(provider.base_url.as_deref(), Some("https://api.groq.com/openai/v1"));
    assert_eq!(provider.models[0].context_length, Some(131072));
    assert_eq!(loaded.config.agents[0].tools, ["calculator", "web_search"]);
    assert!(loaded.notes.iter().any(|n| n.contains("[database] is ignored")), "{:?}", loaded.notes);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn models_page_form_with_kind_and_api_base() {
    let loaded = load_ok(
        r#"
[[providers]]
name = "my-openai"
kind = "openai"
api_base = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
[[models]]
name = "gpt-4o"
provider = "my-openai"
model_id = "gpt-4o"
tier = "powerful"
"#,
    );
    assert_eq!(loaded.config.providers[0].base_url.as_deref(), Some("https://api.openai.com/v1"));
    let model = &loaded.config.models[0];
    assert_eq!(
        (model.provider.as_str(), model.model_id.as_str(), model.tier),
        ("my-openai", "gpt-4o", Some(Tier::Powerful))
    );
}

#[test]
fn reference_table_form_takes_names_from_keys() {
    let loaded = load_ok(
        r#"
[providers.ollama-local]
type = "ollama"
base_url = "http://localhost:11434"
default_model = "ministral-3:3b"

[models.fast]
provider = "ollama-local"
model = "ministral-3:3b"
"#,
    );
    assert_eq!(loaded.config.providers[0].name, "ollama-local");
    assert_eq!(loaded.config.models[0].name, "fast");
    assert_eq!(loaded.config.models[0].model_id, "ministral-3:3b");
}

#[test]
fn agent_toon_table_including_trailing_tools() {
    let loaded = load_ok(
        r#"
[[agents]]
name = "support-agent"
model = "balanced"
[agents.toon]
role = "Customer Support Specialist"
personality = "Professional, empathetic, solution-oriented"
knowledge = ["product documentation", "pricing plans", "common issues"]
constraints = [
"Never make up information about products",
"Escalate billing disputes to human agents",
]
tools = ["web_search"]
"#,
    );
    let toon = loaded.config.agents[0].toon.as_ref().unwrap();
    assert_eq!(toon.role.as_deref(), Some("Customer Support Specialist"));
    assert_eq!(toon.constraints.len(), 2);
    assert_eq!(toon.tools, ["web_search"]);
}

#[test]
fn deploy_services_rag_and_workflows_are_typed() {
    let loaded = load_ok(
        r#"
[deploy]
output_cap_bytes = 4096
[[deploy.targets]]
name = "ares"
commands = ["echo one", "echo two"]
workdir = "/tmp"
timeout_secs = 5
[deploy.targets.env]
RUST_LOG = "info"

[[services]]
name = "ares"
unit = "ares.service"
port = 3000
health_url = "http://127.0.0.1:3000/health"

[rag]
chunk_size = 100
chunk_overlap = 10
[rag.embedder]
type = "ollama"
base_url = "http://127.0.0.1:11434"
model = "nomic-embed-text"
dimensions = 768

[workflows.default]
entry_agent = "router"
fallback_agent = "orchestrator"
max_depth = 3
max_iterations = 5
"#,
    );
    let config = &loaded.config;
    assert_eq!(config.deploy.targets[0].commands.len(), 2);
    assert_eq!(config.deploy.targets[0].env["RUST_LOG"], "info");
    assert_eq!(config.services[0].port, Some(3000));
    assert_eq!(config.rag.embedder.kind, EmbedderKind::Ollama);
    assert_eq!(config.workflows[0].name, "default");
    assert_eq!(config.workflows[0].fallback_agent.as_deref(), Some("orchestrator"));
}

#[test]
fn wrong_type_names_the_key_and_line() {
    let message = load_err("[server]\nhost = \"127.0.0.1\"\nport = \"abc\"\n");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("server.port"), "{message}");

    let message = load_err(
        "[[providers]]\nname = \"x\"\ntype = \"ollama\"\n[[providers.models]]\nid = \"m\"\ncontext_length = \"big\"\n",
    );
    assert!(message.contains("line 6"), "{message}");
    assert!(message.contains("providers"), "{message}");
    assert!(message.contains("context_length"), "{message}");
}

#[test]
fn syntax_errors_name_the_line() {
    let message = load_err("[server]\nhost = \n");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn unknown_provider_type_is_refused_with_the_choices() {
    let message = load_err("[[providers]]\nname = \"x\"\ntype = \"cohere\"\n");
    assert!(message.contains("cohere"), "{message}");
    assert!(message.contains("openai"), "{message}");
}

#[test]
fn unknown_keys_are_warnings() {
    let loaded = load_ok("[server]\nhots = \"0.0.0.0\"\n[mystery]\nx = 1\n");
    assert!(loaded.warnings.iter().any(|w| w.contains("server.hots")), "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().any(|w| w.contains("mystery")), "{:?}", loaded.warnings);
}

#[test]
fn cross_references_are_validated() {
    let message = load_err("[[models]]\nname = \"m\"\nprovider = \"nope\"\nmodel_id = \"x\"\n");
    assert!(message.contains("line 3: models.m.provider: 'nope' is not defined"), "{message}");

    let message =
        load_err("[[providers]]\nname = \"a\"\ntype = \"ollama\"\n[[providers]]\nname = \"a\"\ntype = \"ollama\"\n");
    assert!(message.contains("'a' is defined twice"), "{message}");

    let message = load_err("[rag]\nchunk_size = 10\nchunk_overlap = 10\n");
    assert!(message.contains("chunk_overlap"), "{message}");

    let message = load_err("[[deploy.targets]]\nname = \"x\"\ncommands = []\n");
    assert!(message.contains("deploy.targets.x"), "{message}");
}

#[test]
fn agent_tool_iterations_are_capped_by_limits() {
    let message = load_err("[[agents]]\nname = \"greedy\"\nmax_iterations = 26\n");
    assert!(message.contains("agents.greedy") && message.contains("limits.max_tool_iterations (25)"), "{message}");
    let message = load_err("[limits]\nmax_tool_iterations = 3\n[[agents]]\nname = \"four\"\nmax_iterations = 4\n");
    assert!(message.contains("agents.four"), "{message}");
    load_ok("[[agents]]\nname = \"at-cap\"\nmax_iterations = 25\n");
}

#[test]
fn port_precedence_file_then_env_then_default() {
    let env_port = |name: &str| (name == "PORT").then(|| "4100".to_string());
    let bad_port = |name: &str| (name == "PORT").then(|| "eighty".to_string());
    let from_file = load_ok("[server]\nport = 4200\n").config;
    assert_eq!(from_file.effective_port(&env_port).unwrap(), 4200);
    let unset = load_ok("").config;
    assert_eq!(unset.effective_port(&env_port).unwrap(), 4100);
    assert_eq!(unset.effective_port(&no_env).unwrap(), DEFAULT_PORT);
    assert!(unset.effective_port(&bad_port).is_err());
}

#[test]
fn explicit_missing_file_is_an_error_but_default_path_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    assert!(matches!(load(Some(&missing), &no_env), Err(ConfigError::Io { .. })));
}

#[test]
fn storage_cache_is_bounded_and_defaults_to_16_mib() {
    assert_eq!(load_ok("").config.storage.cache_mib, 16);
    assert_eq!(load_ok("[storage]\ncache_mib = 256\n").config.storage.cache_mib, 256);
    for bad in ["0", "65537"] {
        let error = load_err(&format!("[storage]\ncache_mib = {bad}\n"));
        assert!(error.contains("storage.cache_mib must be between 1 and 65536"), "{error}");
    }
}

#[test]
fn an_agent_naming_an_unknown_model_is_refused_with_its_line() {
    let models = "[[providers]]\nname = \"local\"\ntype = \"ollama\"\n\n[[models]]\nname = \"fast-local\"\nprovider = \"local\"\nmodel_id = \"llama3.2:1b\"\n\n";
    let message = load_err(&format!("{models}[[agents]]\nname = \"helper\"\nmodel = \"fats-local\"\n"));
    assert!(
        message.contains(
            "ares.toml line 12: agents.helper.model: model 'fats-local' is neither a configured model nor a tier"
        ),
        "{message}"
    );
    let message = load_err(&format!("{models}[agents.helper]\nmodel = \"gpt-9\"\n"));
    assert!(message.contains("line 11: agents.helper.model"), "{message}");

    // A model name, its provider-side id, or a tier are all what the router resolves.
    for model in ["fast-local", "llama3.2:1b", "balanced"] {
        load_ok(&format!("{models}[[agents]]\nname = \"helper\"\nmodel = \"{model}\"\n"));
    }
}

#[test]
fn a_directory_agent_naming_an_unknown_model_only_warns() {
    // Shipped TOON files are written for some site's models; they must not stop a start-up.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config/agents")).unwrap();
    std::fs::write(dir.path().join("config/agents/scout.toon"), "name: scout\nmodel: elsewhere-model\n").unwrap();
    let file = dir.path().join("ares.toml");
    std::fs::write(&file, "[[providers]]\nname = \"local\"\ntype = \"ollama\"\n").unwrap();
    let loaded = super::load(Some(&file), &no_env).unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.contains("agents.scout (agents directory): model 'elsewhere-model'")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn hybrid_fusion_follows_the_embedder_unless_configured() {
    let fusion = |toml: &str| load_ok(toml).config.rag.fusion();
    let hash = fusion("");
    assert_eq!((hash.semantic_weight, hash.bm25_weight, hash.k), (0.5, 1.0, 5.0));
    let model = fusion("[rag.embedder]\ntype = \"ollama\"\nmodel = \"nomic-embed-text\"\n");
    assert_eq!((model.semantic_weight, model.bm25_weight, model.k), (1.0, 1.0, 60.0));
    let set = fusion("[rag]\nhybrid_semantic_weight = 2.0\nrrf_k = 30\n");
    assert_eq!((set.semantic_weight, set.k), (2.0, 30.0));
}
