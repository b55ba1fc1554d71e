//! Live configuration: what a reload replaces, swapped as one, and the reload itself.
//!
//! Providers, models, agents, tools and workflows (and `[limits]`, read per request) live in
//! one [`Live`] snapshot behind an `ArcSwap`. A request takes the snapshot when it needs it
//! and keeps what it took — a chat holds its model's deployments — so a reload never changes
//! a request in flight: it finishes on the configuration it started with, and the next one
//! sees the new. Everything else was built from the config at start (the listener, the store,
//! secrets, quota meters, RAG indexes, deploy targets): a change there is reported as needing
//! a restart and the running values are kept.
//!
//! A reload re-reads the same file (and its `config/*` directories) with the same environment
//! as start-up, validates all of it, and only then swaps; an invalid file changes nothing.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::agents::Catalog;
use crate::config::{Config, ConfigError, EnvLookup};
use crate::llm::Registry;
use crate::orchestration::workflow::Workflows;
use crate::tools::toolbox::ToolBox;

/// What a reload swaps, as one.
pub struct Live {
    pub config: Config,
    pub llm: Registry,
    pub agents: Catalog,
    pub workflows: Workflows,
    pub tools: ToolBox,
}

impl Live {
    /// `previous`: the snapshot a reload replaces (what may be kept from it is kept).
    pub fn build(config: Config, llm: Registry, env: &EnvLookup, previous: Option<&Live>) -> Live {
        Live {
            agents: Catalog::new(&config),
            workflows: Workflows::new(&config),
            tools: ToolBox::new(&config, env, previous.map(|live| &live.tools)),
            llm,
            config,
        }
    }
}

/// One part of a [`Live`] snapshot; the snapshot stays alive while this does.
pub struct Part<T: 'static> {
    live: Arc<Live>,
    get: fn(&Live) -> &T,
}

impl<T> Part<T> {
    pub fn new(live: Arc<Live>, get: fn(&Live) -> &T) -> Part<T> {
        Part { live, get }
    }
}

impl<T> Deref for Part<T> {
    type Target = T;

    fn deref(&self) -> &T {
        (self.get)(&self.live)
    }
}

/// Where a reload reads from: what `ares serve` started with.
#[derive(Clone)]
pub struct Source {
    /// `None`: the default `./ares.toml`, built-in defaults when it is missing.
    pub path: Option<PathBuf>,
    pub env: Arc<EnvLookup>,
    /// `--host` / `--port`, applied over the file as at start-up.
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// What set a reload off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Api,
    Signal,
    Watch,
}

/// Names added, removed and changed in one section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl NameChanges {
    fn between<T: Debug>(old: &[(String, &T)], new: &[(String, &T)]) -> NameChanges {
        let mut changes = NameChanges::default();
        for (name, value) in new {
            match old.iter().find(|(n, _)| n == name) {
                None => changes.added.push(name.clone()),
                // Config types are plain data: equal debug renderings are equal values.
                Some((_, previous)) if format!("{previous:?}") != format!("{value:?}") => {
                    changes.changed.push(name.clone());
                }
                Some(_) => {}
            }
        }
        changes.removed =
            old.iter().filter(|(n, _)| !new.iter().any(|(m, _)| m == n)).map(|(n, _)| n.clone()).collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub providers: NameChanges,
    pub models: NameChanges,
    pub agents: NameChanges,
    pub tools: NameChanges,
    pub workflows: NameChanges,
    /// `[[mcp.servers]]`: a change gives every server a fresh connection.
    pub mcp_servers: NameChanges,
}

impl Changes {
    /// One line for the log: `models ~m, +n; agents -old`, or `nothing`.
    pub fn summary(&self) -> String {
        let sections = [
            ("providers", &self.providers),
            ("models", &self.models),
            ("agents", &self.agents),
            ("tools", &self.tools),
            ("workflows", &self.workflows),
            ("mcp servers", &self.mcp_servers),
        ];
        let parts: Vec<String> = sections
            .iter()
            .filter(|(_, changes)| !changes.is_empty())
            .map(|(section, changes)| {
                let names = changes
                    .added
                    .iter()
                    .map(|n| format!("+{n}"))
                    .chain(changes.removed.iter().map(|n| format!("-{n}")))
                    .chain(changes.changed.iter().map(|n| format!("~{n}")));
                format!("{section} {}", names.collect::<Vec<_>>().join(", "))
            })
            .collect();
        if parts.is_empty() { "nothing".to_string() } else { parts.join("; ") }
    }
}

/// A successful reload.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub changes: Changes,
    /// Sections that changed in the file but apply only after a restart (the running values
    /// were kept).
    pub restart_required: Vec<&'static str>,
}

/// The last reload, for `/health/detailed`.
#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    /// Unix seconds.
    pub at: i64,
    pub trigger: Trigger,
    pub outcome: &'static str,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("the server was not started from a config it can re-read")]
    NoSource,
    #[error("the reload failed: {0}")]
    Internal(String),
}

/// Read and validate the config again. Pure: nothing is swapped here.
pub fn read(source: &Source) -> Result<Config, ReloadError> {
    let mut config = crate::config::load(source.path.as_deref(), &*source.env)?.config;
    if let Some(host) = &source.host {
        config.server.host.clone_from(host);
    }
    if let Some(port) = source.port {
        config.server.port = Some(port);
    }
    Ok(config)
}

/// The configuration to run after a reload: `new` for what a reload may change, `running`'s
/// values for the rest, with the names of the sections that differ (they need a restart).
pub fn merge(running: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let mut restart_required = Vec::new();
    macro_rules! keep {
        ($($section:ident),*) => {$(
            if format!("{:?}", running.$section) != format!("{:?}", new.$section) {
                restart_required.push(stringify!($section));
            }
            new.$section = running.$section.clone();
        )*};
    }
    keep!(server, database, auth, storage, rag, deploy, services, quotas, memory, observability, metrics);
    (new, restart_required)
}

/// What differs between the running configuration and the next.
pub fn changes(running: &Config, next: &Config) -> Changes {
    fn named<T>(items: &[T], name: fn(&T) -> &str) -> Vec<(String, &T)> {
        items.iter().map(|item| (name(item).to_string(), item)).collect()
    }
    fn tools(config: &Config) -> Vec<(String, &crate::config::ToolConfig)> {
        config.tools.iter().map(|(name, tool)| (name.clone(), tool)).collect()
    }
    Changes {
        providers: NameChanges::between(&named(&running.providers, |p| &p.name), &named(&next.providers, |p| &p.name)),
        models: NameChanges::between(&named(&running.models, |m| &m.name), &named(&next.models, |m| &m.name)),
        agents: NameChanges::between(&named(&running.agents, |a| &a.name), &named(&next.agents, |a| &a.name)),
        tools: NameChanges::between(&tools(running), &tools(next)),
        workflows: NameChanges::between(&named(&running.workflows, |w| &w.name), &named(&next.workflows, |w| &w.name)),
        mcp_servers: NameChanges::between(
            &named(&running.mcp.servers, |m| &m.name),
            &named(&next.mcp.servers, |m| &m.name),
        ),
    }
}

/// What a hot-reloading server watches: the config file and every file in its `config/*`
/// directories, by modification time and size. Polled: no watcher thread or platform API,
/// and an editor's write-then-rename is seen like any other change.
pub fn fingerprint(source: &Source, config: &Config) -> Vec<(PathBuf, Option<(std::time::SystemTime, u64)>)> {
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path).ok().and_then(|m| m.modified().ok().map(|modified| (modified, m.len())))
    };
    let file = source.path.clone().unwrap_or_else(|| PathBuf::from("ares.toml"));
    let base = file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let mut out = vec![(file.clone(), stamp(&file))];
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in crate::config::toon_dirs::watched(&config.config) {
        dirs.insert(base.join(dir));
    }
    for dir in dirs {
        out.push((dir.clone(), stamp(&dir)));
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let stamped = stamp(&path);
            out.push((path, stamped));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::load_str(text, "test.toml", &|_: &str| None).expect("a valid config").config
    }

    const BASE: &str = r#"
[[providers]]
name = "a"
type = "openai"
base_url = "http://127.0.0.1:9/v1"

[[providers]]
name = "b"
type = "openai"
base_url = "http://127.0.0.1:10/v1"

[[models]]
name = "m"
provider = "a"
model_id = "x"
"#;

    #[test]
    fn changes_name_what_was_added_removed_and_changed() {
        let running = config(BASE);
        let next = config(
            &BASE
                .replace(
                    "name = \"b\"\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:10/v1\"",
                    "name = \"c\"\ntype = \"ollama\"",
                )
                .replace("provider = \"a\"", "provider = \"c\""),
        );
        let changes = changes(&running, &next);
        assert_eq!(
            changes.providers,
            NameChanges { added: vec!["c".into()], removed: vec!["b".into()], changed: vec![] }
        );
        assert_eq!(changes.models.changed, ["m"]);
        assert_eq!(changes.summary(), "providers +c, -b; models ~m");
        assert!(changes.agents.is_empty() && changes.tools.is_empty() && changes.workflows.is_empty());
        assert_eq!(super::changes(&running, &running), Changes::default());
        assert_eq!(Changes::default().summary(), "nothing");
    }

    #[test]
    fn sections_that_need_a_restart_keep_their_running_values_and_are_named() {
        let running = config(BASE);
        let next = config(&format!("{BASE}\n[server]\nport = 4999\n[limits]\nmax_tool_iterations = 3\n"));
        let (merged, restart_required) = merge(&running, next);
        assert_eq!(restart_required, ["server"]);
        assert_eq!(merged.server.port, running.server.port, "the listener cannot move without a restart");
        assert_eq!(merged.limits.max_tool_iterations, 3, "limits are read per request: they apply at once");
    }
}
