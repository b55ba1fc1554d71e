//! `[config]` directories of `*.toon` files (API.md §5.3): agents, models, tools, workflows and MCP servers
//! kept one entity per file, merged into the typed config before validation so every later
//! layer sees a single list.
//!
//! ares.toml wins over a file of the same name: the TOML file is the one an operator edits
//! deliberately, the directories are usually shipped defaults. A file that does not decode, or
//! names a provider that does not exist, is skipped with a warning rather than failing start-up,
//! as the reference server does.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{AgentConfig, Config, ConfigDirs, McpServerConfig, ModelConfig, ToolConfig, WorkflowConfig};
use crate::toon;

/// Directories used when `[config]` names none, relative to the config file.
const DEFAULT_AGENTS_DIR: &str = "config/agents";
const DEFAULT_MODELS_DIR: &str = "config/models";
const DEFAULT_TOOLS_DIR: &str = "config/tools";
const DEFAULT_WORKFLOWS_DIR: &str = "config/workflows";
const DEFAULT_MCPS_DIR: &str = "config/mcps";

/// One TOON agent document (§5.2).
#[derive(Deserialize)]
struct AgentFile {
    name: String,
    model: String,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    max_tool_iterations: Option<u32>,
    #[serde(default)]
    parallel_tools: Option<bool>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    collection: Option<String>,
}

#[derive(Deserialize)]
struct ModelFile {
    name: String,
    provider: String,
    model: String,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    context_length: Option<u32>,
    #[serde(default)]
    supports_tools: Option<bool>,
    #[serde(default)]
    input_usd_per_mtok: Option<f64>,
    #[serde(default)]
    output_usd_per_mtok: Option<f64>,
    #[serde(default)]
    cached_input_usd_per_mtok: Option<f64>,
}

#[derive(Deserialize)]
struct ToolFile {
    name: String,
    #[serde(flatten)]
    config: ToolConfig,
}

/// Loads the directories into `config`. `base` is the directory of ares.toml.
pub(super) fn merge(config: &mut Config, base: &Path, warnings: &mut Vec<String>) {
    let dirs = config.config.clone();
    let agents: Vec<AgentFile> = read_dir(base, dirs.agents_dir.as_deref(), DEFAULT_AGENTS_DIR, warnings);
    for file in agents {
        if config.agents.iter().any(|a| a.name == file.name) {
            continue;
        }
        config.agents.push(AgentConfig {
            name: file.name,
            description: file.description,
            model: Some(file.model),
            system_prompt: file.system_prompt,
            tools: file.tools,
            max_tokens: file.max_tokens,
            temperature: file.temperature,
            max_iterations: file.max_tool_iterations,
            parallel_tools: file.parallel_tools,
            collection: file.collection,
            toon: None,
        });
    }

    let models: Vec<ModelFile> = read_dir(base, dirs.models_dir.as_deref(), DEFAULT_MODELS_DIR, warnings);
    for file in models {
        if config.models.iter().any(|m| m.name == file.name) {
            continue;
        }
        if !config.providers.iter().any(|p| p.name == file.provider) {
            warnings.push(format!(
                "model '{}' from the models directory skipped: provider '{}' is not defined in ares.toml",
                file.name, file.provider
            ));
            continue;
        }
        config.models.push(ModelConfig {
            name: file.name,
            provider: file.provider,
            model_id: file.model,
            deployments: Vec::new(),
            fallbacks: Vec::new(),
            tier: None,
            context_length: file.context_length,
            temperature: Some(file.temperature.unwrap_or(0.7)),
            max_tokens: Some(file.max_tokens.unwrap_or(512)),
            supports_tools: file.supports_tools,
            input_usd_per_mtok: file.input_usd_per_mtok,
            output_usd_per_mtok: file.output_usd_per_mtok,
            cached_input_usd_per_mtok: file.cached_input_usd_per_mtok,
        });
    }

    let tools: Vec<ToolFile> = read_dir(base, dirs.tools_dir.as_deref(), DEFAULT_TOOLS_DIR, warnings);
    for file in tools {
        config.tools.entry(file.name).or_insert(file.config);
    }

    let workflows: Vec<WorkflowConfig> = read_dir(base, dirs.workflows_dir.as_deref(), DEFAULT_WORKFLOWS_DIR, warnings);
    for file in workflows {
        if !config.workflows.iter().any(|w| w.name == file.name) {
            config.workflows.push(file);
        }
    }

    let mcps: Vec<McpServerConfig> = read_dir(base, dirs.mcps_dir.as_deref(), DEFAULT_MCPS_DIR, warnings);
    for file in mcps {
        if config.mcp.servers.iter().any(|m| m.name == file.name) {
            continue;
        }
        if file.command.is_none() && file.url.is_none() {
            warnings.push(format!("MCP server '{}' from the mcps directory skipped: it has no command", file.name));
            continue;
        }
        config.mcp.servers.push(file);
    }
}

/// The four directories `merge` reads, relative to the config file: what a hot-reloading
/// server watches.
pub fn watched(dirs: &ConfigDirs) -> [PathBuf; 5] {
    let dir =
        |configured: Option<&PathBuf>, default: &str| configured.cloned().unwrap_or_else(|| PathBuf::from(default));
    [
        dir(dirs.agents_dir.as_ref(), DEFAULT_AGENTS_DIR),
        dir(dirs.models_dir.as_ref(), DEFAULT_MODELS_DIR),
        dir(dirs.tools_dir.as_ref(), DEFAULT_TOOLS_DIR),
        dir(dirs.workflows_dir.as_ref(), DEFAULT_WORKFLOWS_DIR),
        dir(dirs.mcps_dir.as_ref(), DEFAULT_MCPS_DIR),
    ]
}

/// Every decodable `*.toon` file of one directory, in file-name order; the first file claiming
/// a name wins.
fn read_dir<T: DeserializeOwned + Named>(
    base: &Path,
    configured: Option<&Path>,
    default: &str,
    warnings: &mut Vec<String>,
) -> Vec<T> {
    let dir: PathBuf = base.join(configured.unwrap_or(Path::new(default)));
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            if configured.is_some() {
                warnings.push(format!("config directory {} cannot be read: {e}", dir.display()));
            }
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toon"))
        .collect();
    paths.sort();

    let mut out: Vec<T> = Vec::new();
    for path in paths {
        match read_file::<T>(&path) {
            Ok(entity) if out.iter().any(|e| e.name() == entity.name()) => {
                warnings.push(format!(
                    "{}: '{}' is already defined by another file; skipped",
                    path.display(),
                    entity.name()
                ));
            }
            Ok(entity) if entity.name().trim().is_empty() => {
                warnings.push(format!("{}: name must not be empty; skipped", path.display()));
            }
            Ok(entity) => out.push(entity),
            Err(message) => warnings.push(format!("{}: {message}; skipped", path.display())),
        }
    }
    out
}

fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let fields = toon::decode(&text).map_err(|e| e.to_string())?;
    let object: Map<String, Value> = fields.into_iter().collect();
    serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())
}

trait Named {
    fn name(&self) -> &str;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(&self) -> &str { &self.name }
        }
    )*};
}
named!(AgentFile, ModelFile, ToolFile, WorkflowConfig, McpServerConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn files_merge_under_toml_entries() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path();
        write(
            &root.join("config/agents"),
            "support.toon",
            "name: support\nmodel: fast\nsystem_prompt: \"Help.\\nBe brief.\"\ntools[1]: calculator\nmax_tool_iterations: 3\nparallel_tools: true\ndescription: Support desk",
        );
        write(&root.join("config/agents"), "router.toon", "name: router\nmodel: fast");
        write(&root.join("config/agents"), "broken.toon", "this is not toon");
        write(
            &root.join("config/models"),
            "quick.toon",
            "name: quick\nprovider: local\nmodel: llama3.2:1b\nmax_tokens: 256",
        );
        write(&root.join("config/models"), "ghost.toon", "name: ghost\nprovider: nowhere\nmodel: x");
        write(&root.join("config/tools"), "calculator.toon", "name: calculator\nenabled: false\ntimeout_secs: 5");
        write(
            &root.join("config/workflows"),
            "triage.toon",
            "name: triage\nentry_agent: support\nfallback_agent: orchestrator\nmax_depth: 2\nparallel_subagents: true",
        );
        let toml = "[[providers]]\nname = \"local\"\ntype = \"ollama\"\n\n[[agents]]\nname = \"router\"\nmodel = \"balanced\"\n";
        let mut loaded = load_str(toml, "ares.toml", &|_| None).unwrap();
        merge(&mut loaded.config, root, &mut loaded.warnings);
        let config = loaded.config;

        let support = config.agents.iter().find(|a| a.name == "support").unwrap();
        assert_eq!(support.system_prompt.as_deref(), Some("Help.\nBe brief."));
        assert_eq!(support.tools, ["calculator"]);
        assert_eq!(support.max_iterations, Some(3));
        assert_eq!(support.parallel_tools, Some(true));
        let routers: Vec<_> = config.agents.iter().filter(|a| a.name == "router").collect();
        assert_eq!(routers.len(), 1);
        assert_eq!(routers[0].model.as_deref(), Some("balanced"), "ares.toml wins");

        let quick = config.models.iter().find(|m| m.name == "quick").unwrap();
        assert_eq!(
            (quick.model_id.as_str(), quick.max_tokens, quick.temperature),
            ("llama3.2:1b", Some(256), Some(0.7))
        );
        assert!(!config.models.iter().any(|m| m.name == "ghost"));
        assert!(!config.tools["calculator"].enabled);
        assert_eq!(config.tools["calculator"].timeout_secs, 5);

        let triage = config.workflows.iter().find(|w| w.name == "triage").unwrap();
        assert_eq!((triage.entry_agent.as_str(), triage.max_depth, triage.max_iterations), ("support", 2, 5));
        assert!(triage.parallel_subagents);

        let warnings = loaded.warnings.join("\n");
        assert!(warnings.contains("broken.toon"), "{warnings}");
        assert!(warnings.contains("provider 'nowhere'"), "{warnings}");
    }

    #[test]
    fn a_missing_default_directory_is_silent_but_a_configured_one_warns() {
        let base = tempfile::tempdir().unwrap();
        let mut loaded = load_str("", "ares.toml", &|_| None).unwrap();
        merge(&mut loaded.config, base.path(), &mut loaded.warnings);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let mut loaded = load_str("[config]\nagents_dir = \"agents\"\n", "ares.toml", &|_| None).unwrap();
        merge(&mut loaded.config, base.path(), &mut loaded.warnings);
        assert!(loaded.warnings.iter().any(|w| w.contains("cannot be read")), "{:?}", loaded.warnings);
    }
}
