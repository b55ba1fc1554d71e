//! Subcommand implementations for the `ares` binary (not part of the library).

pub mod backup;
pub mod compat;
pub mod doctor;
pub mod init;
pub mod install_service;
pub mod mcp;
pub mod migrate;
pub mod prices;
pub mod reindex;
pub mod running;
pub mod serve;

use std::fmt;

use ares::config::{self, ConfigError, LoadedConfig};

use crate::GlobalArgs;

/// A failed command: the message for stderr and whether it was the user's input (exit 2) or
/// a runtime problem (exit 1).
pub struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    /// Bad flags or configuration: exit code 2.
    pub fn usage(message: impl fmt::Display) -> Self {
        Failure { message: message.to_string(), usage: true }
    }

    /// Anything else: exit code 1.
    pub fn runtime(message: impl fmt::Display) -> Self {
        Failure { message: message.to_string(), usage: false }
    }

    pub fn exit_code(&self) -> u8 {
        if self.usage { 2 } else { 1 }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ares::StartError> for Failure {
    fn from(e: ares::StartError) -> Self {
        match e {
            ares::StartError::Secrets(_) => Failure::usage(e),
            ares::StartError::Store(_) | ares::StartError::Rag(_) | ares::StartError::DataDir { .. } => {
                Failure::runtime(e)
            }
        }
    }
}

/// The process environment as the config layer reads it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Load and validate the config. Warnings are returned, not printed, because logging is not
/// set up until the log level is known.
pub fn load_config(global: &GlobalArgs) -> Result<LoadedConfig, Failure> {
    config::load(global.config.as_deref(), &process_env).map_err(|e: ConfigError| Failure::usage(e))
}

/// Logs go to stderr; `RUST_LOG` wins over `[server].log_level`.
pub fn init_logging(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level))
        .with_writer(std::io::stderr)
        .with_ansi(ansi())
        .try_init();
}

/// `ares serve`'s logging: stderr, and a ring of the last `buffer_lines` lines for
/// `GET /api/admin/services/ares/logs`.
pub fn init_server_logging(level: &str, format: &str, buffer_lines: usize) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ring = ares::logs::install(buffer_lines);
    // The ring keeps text lines either way: it is read by people, through the admin API.
    let ring_layer = tracing_subscriber::fmt::layer().with_writer(ring).with_ansi(false);
    let registry = tracing_subscriber::registry().with(log_filter(level)).with(ring_layer);
    let _ = if format == "json" {
        ares::logs::set_access_log(true);
        let json = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr);
        registry.with(json).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi())).try_init()
    };
}

fn log_filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(quiet_dependencies(level)))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet_dependencies("info")))
}

fn ansi() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// `[server].log_level` for our own lines; tantivy stays at WARN (its INFO lines are about its
/// own segments, not for an operator) unless `RUST_LOG` asks for more.
fn quiet_dependencies(level: &str) -> String {
    format!("{level},tantivy=warn")
}

pub fn report(loaded: &LoadedConfig) {
    for note in &loaded.notes {
        tracing::info!("{note}");
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
}
