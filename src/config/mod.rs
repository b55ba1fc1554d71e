//! `ares.toml`: the typed configuration every service is built from.
//!
//! The file accepts every form the public ARES docs show (`[[providers]]` arrays with `type` or
//! `kind`, `base_url` or `api_base`, nested `[[providers.models]]`, top-level `[[models]]`,
//! `[[agents]]` with `[agents.toon]`) and the reference server's `[providers.<name>]` tables.
//! Loading ([`load`]) reports a wrong type with its key and line, turns unknown keys into
//! warnings, applies environment overrides and validates once; after that the config is plain
//! data that later layers read without re-checking.

mod keys;
mod load;
mod named;
pub mod pricing;
pub(crate) mod toon_dirs;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use load::{ConfigError, EnvLookup, LoadedConfig, load, load_str};
pub use pricing::PricingConfig;

/// The shipped, fully commented `ares.toml`; `ares init` writes exactly this.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../ares.toml");

/// Default port when neither `[server].port`, `PORT` nor `--port` says otherwise.
pub const DEFAULT_PORT: u16 = 3000;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    /// Accepted so configs written for the Postgres-backed ARES load unchanged; storage here is
    /// embedded, so its contents are ignored (load prints a one-line note).
    pub database: Option<toml::Value>,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    #[serde(deserialize_with = "named::seq_or_map")]
    pub providers: Vec<ProviderConfig>,
    #[serde(deserialize_with = "named::seq_or_map")]
    pub models: Vec<ModelConfig>,
    #[serde(deserialize_with = "named::seq_or_map")]
    pub agents: Vec<AgentConfig>,
    #[serde(deserialize_with = "named::seq_or_map")]
    pub workflows: Vec<WorkflowConfig>,
    pub tools: BTreeMap<String, ToolConfig>,
    pub rag: RagConfig,
    pub deploy: DeployConfig,
    #[serde(deserialize_with = "named::seq_or_map")]
    pub services: Vec<ServiceConfig>,
    /// `[config]`: directories of `*.toon` files (agents, models, tools, workflows).
    pub config: ConfigDirs,
    /// `[quotas.<tier>]`: per-tier request and token limits for API keys.
    pub quotas: QuotaConfig,
    pub memory: MemoryConfig,
    /// `[limits]`: caps on the work one request can ask for.
    pub limits: LimitsConfig,
    /// `[observability]`: what the server keeps about itself.
    pub observability: ObservabilityConfig,
    /// `[metrics]`: who may read `GET /metrics` and whether it counts per tenant.
    pub metrics: MetricsConfig,
    /// `[pricing]`: a file of model prices by provider model id.
    pub pricing: PricingConfig,
    /// `[chat]`: what answers an ARES chat that names no agent.
    pub chat: ChatConfig,
    /// `[[mcp.servers]]`: MCP servers whose tools agents may use.
    pub mcp: McpConfig,
}

/// `[mcp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct McpConfig {
    #[serde(deserialize_with = "named::seq_or_map")]
    pub servers: Vec<McpServerConfig>,
}

/// One MCP server (`[[mcp.servers]]` or `config/mcps/*.toon`, API.md §5.3): a command run with
/// its stdio as the transport, or a Streamable HTTP `url`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct McpServerConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// The child's environment on top of the server's; values may name `${VAR}`s.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub url: Option<String>,
    /// Request headers for a `url` server; values may name `${VAR}`s (kept out of the file).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per tool call; starting the server gets at least 10 s.
    #[serde(default = "defaults::mcp_timeout_secs")]
    pub timeout_secs: u64,
    /// Whether tenant and user agents may use it (operator-defined agents always may): its tools
    /// act with the server's own rights, so the operator opts in.
    #[serde(default)]
    pub allow_tenants: bool,
}

/// `[chat]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ChatConfig {
    /// The agent that answers `/api/chat` and `/v1/chat` requests without `agent_type`; unset,
    /// the built-in router picks one of its specialists (one extra model call per request).
    pub default_agent: Option<String>,
}

/// `[observability]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ObservabilityConfig {
    /// The server's own recent log lines kept in memory for
    /// `GET /api/admin/services/ares/logs`.
    pub log_buffer_lines: usize,
    /// Days the request log keeps a request (`GET /api/admin/requests`); 0 keeps none.
    pub request_log_days: u32,
    /// An OTLP/HTTP receiver (`http://collector:4318`) to export traces to; unset: no traces,
    /// and nothing is contacted.
    pub otlp_endpoint: Option<String>,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig { log_buffer_lines: 2000, request_log_days: 14, otlp_endpoint: None }
    }
}

/// `[metrics]`: `GET /metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve `/metrics` without the admin secret (e.g. behind a firewall that only lets the
    /// scraper in).
    pub public: bool,
    /// Add a `tenant` label to the request and token counters: one series per tenant, so only
    /// for a bounded number of tenants.
    pub per_tenant: bool,
}

/// `[limits]`: caps that hold whatever an agent definition says, so no caller can buy
/// unbounded upstream calls with one request.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Largest `max_tool_iterations` / `max_iterations` an agent may declare (larger → 422).
    pub max_tool_iterations: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_tool_iterations: 25 }
    }
}

/// `[memory]`: what the server learns about users from their chats (see `crate::memory`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct MemoryConfig {
    /// Learn facts and preferences from users' messages.
    pub learn: bool,
    /// Tell the model what is known about the user in their chats.
    pub inject: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self { learn: true, inject: true }
    }
}

/// A limit, or none: written as an integer or the string `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Limited(u64),
    Unlimited,
}

impl Limit {
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Limited(n) => Some(n),
            Limit::Unlimited => None,
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;
        impl serde::de::Visitor<'_> for LimitVisitor {
            type Value = Limit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer or \"unlimited\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Limit, E> {
                u64::try_from(v).map(Limit::Limited).map_err(|_| E::custom("a limit cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Limit, E> {
                Ok(Limit::Limited(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Limit, E> {
                if v == "unlimited" {
                    Ok(Limit::Unlimited)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}

/// Limits of one tier (API.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TierLimits {
    pub monthly_requests: Limit,
    pub monthly_tokens: Limit,
    pub daily_requests: Limit,
}

impl TierLimits {
    const fn new(monthly_requests: u64, monthly_tokens: u64, daily_requests: u64) -> Self {
        TierLimits {
            monthly_requests: Limit::Limited(monthly_requests),
            monthly_tokens: Limit::Limited(monthly_tokens),
            daily_requests: Limit::Limited(daily_requests),
        }
    }

    const UNLIMITED: TierLimits = TierLimits {
        monthly_requests: Limit::Unlimited,
        monthly_tokens: Limit::Unlimited,
        daily_requests: Limit::Unlimited,
    };
}

/// The documented numbers by default; each tier can be overridden as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct QuotaConfig {
    pub free: TierLimits,
    pub dev: TierLimits,
    pub pro: TierLimits,
    pub enterprise: TierLimits,
    /// `[quotas.users]`: what one JWT user's chats may use (sign-up is free, upstream calls
    /// are not).
    pub users: TierLimits,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            free: TierLimits::new(1_000, 100_000, 100),
            dev: TierLimits::new(10_000, 1_000_000, 1_000),
            pro: TierLimits::new(100_000, 10_000_000, 10_000),
            enterprise: TierLimits::UNLIMITED,
            users: TierLimits::new(10_000, 1_000_000, 1_000),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub host: String,
    /// `None` means "not in the file": then `PORT`, then [`DEFAULT_PORT`].
    pub port: Option<u16>,
    pub log_level: String,
    /// `text` (for people) or `json` (one object per line, for log shippers).
    pub log_format: String,
    /// Empty or `["*"]`: any origin, without credentials (API.md §0.5).
    pub cors_origins: Vec<String>,
    /// Per-client-IP token bucket; `0` disables the limiter.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Peers whose `X-Forwarded-For` is believed (a reverse proxy such as Caddy on loopback).
    /// None by default: the server cannot tell its proxy from any other process on a trusted
    /// address, and every such process could name its own client address (its own rate-limit
    /// bucket and audit address) by sending the header.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Default request-body limit; routes that take documents have their own, larger one.
    pub max_body_bytes: usize,
    /// Body limit of the OpenAI- and Anthropic-compatible chat routes, whose clients resend the
    /// whole conversation (a long coding-agent session with tool output runs to megabytes).
    pub max_chat_body_bytes: usize,
    /// How long graceful shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace_secs: u64,
    /// Connections served at once; further accepts wait, so memory stays bounded under a flood.
    pub max_connections: usize,
    /// A connection must finish its request head (line and headers) within this time.
    pub request_head_timeout_secs: u64,
    /// A request body that sends no byte for this long is abandoned and its connection closed.
    pub body_timeout_secs: u64,
    /// An idle keep-alive (or h2c) connection is closed after this long.
    pub idle_timeout_secs: u64,
    /// The path prefix a reverse proxy serves this server under (`/ares`), or `""`. Requests
    /// are answered with or without it (a proxy may strip it or pass it on), and the console's
    /// links carry it.
    pub public_base_path: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: None,
            log_level: "info".into(),
            log_format: "text".into(),
            cors_origins: Vec::new(),
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            trusted_proxies: Vec::new(),
            max_body_bytes: 2 * 1024 * 1024,
            max_chat_body_bytes: 16 * 1024 * 1024,
            shutdown_grace_secs: 10,
            max_connections: 1024,
            request_head_timeout_secs: 10,
            body_timeout_secs: 10,
            idle_timeout_secs: 60,
            public_base_path: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Env var holding the JWT signing secret (API.md §3.2).
    pub jwt_secret_env: String,
    /// Env var holding the admin secret when `ADMIN_API_KEY` is unset (API.md §3.6).
    pub api_key_env: String,
    /// Access-token lifetime in seconds.
    pub jwt_access_expiry: u64,
    /// Refresh-token lifetime in seconds.
    pub jwt_refresh_expiry: u64,
    /// Whether `POST /api/auth/register` is open. Unset: open when bound to loopback, closed
    /// otherwise ([`Config::registration`]).
    pub registration: Option<Registration>,
    /// Password hashes allowed to wait for a hashing slot; beyond that login and register
    /// answer 503 at once instead of queueing memory.
    pub max_pending_hashes: usize,
    /// Password hashes running at once (each holds ~19 MiB while it runs).
    pub max_concurrent_hashes: usize,
}

/// `[auth].registration`: who may create a user account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone who can reach the server may register.
    Open,
    /// Only the operator creates users (`POST /api/admin/users`).
    Closed,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret_env: "JWT_SECRET".into(),
            api_key_env: "API_KEY".into(),
            jwt_access_expiry: 900,
            jwt_refresh_expiry: 604_800,
            registration: None,
            max_pending_hashes: 64,
            max_concurrent_hashes: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Where backups go; relative paths are under the data dir. Default `<data>/backups`.
    pub backups_dir: Option<PathBuf>,
    /// Chat records (conversation turns, runs, usage, learned memory) are acknowledged before
    /// their fsync and made durable within this many milliseconds; 0 = after every commit, like
    /// everything else. A crash can lose at most this window of chat history.
    pub sync_interval_ms: u64,
    /// The database's page cache in MiB (part of the server's memory; pages beyond it come
    /// from the kernel's file cache). Default 16, `store::DEFAULT_CACHE_BYTES`.
    pub cache_mib: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { backups_dir: None, sync_interval_ms: 50, cache_mib: 16 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible API: OpenAI, Groq, NVIDIA, vLLM, llama.cpp, LocalAI, Together…
    #[serde(alias = "openai-compatible", alias = "groq", alias = "nvidia")]
    Openai,
    Anthropic,
    Ollama,
}

impl ProviderKind {
    /// The `type` a config names it by.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig {
    /// Required in `[[providers]]`; taken from the table key in `[providers.<name>]`.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", alias = "kind")]
    pub kind: ProviderKind,
    #[serde(default, alias = "api_base")]
    pub base_url: Option<String>,
    /// Env var holding the key; a provider whose variable is unset is disabled, not fatal.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub default_model: Option<String>,
    #[serde(default)]
    pub models: Vec<ProviderModel>,
    /// The TCP connect to the provider.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// The wait for an answer's head (from the call's start, a connect included), then each
    /// silence of its body.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// Retries of a failed call (connection failure, timeout, 408/429/5xx) before the model's
    /// fallbacks are tried; a retry on another healthy deployment does not wait.
    #[serde(default = "defaults::max_retries")]
    pub max_retries: u32,
    /// First backoff; doubles per retry with full jitter, capped by `retry_max_ms`. An
    /// upstream's `Retry-After` / `retry-after-ms` is honoured up to `retry_max_ms`.
    #[serde(default = "defaults::retry_initial_ms")]
    pub retry_initial_ms: u64,
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    /// The whole call, retries and fallbacks included (for a stream: until its first content;
    /// after that `read_timeout_secs` bounds each silence).
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// A stream that sends no content for this long fails and is retried elsewhere.
    #[serde(default = "defaults::first_token_timeout_secs")]
    pub first_token_timeout_secs: u64,
    /// Consecutive failures that open a deployment's circuit.
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open circuit stays open before one trial request may half-open it.
    #[serde(default = "defaults::breaker_cooldown_secs")]
    pub breaker_cooldown_secs: u64,
}

fn default_connect_timeout() -> u64 {
    10
}
fn default_read_timeout() -> u64 {
    120
}

/// The documented defaults of a provider's retry, timeout and circuit-breaker keys.
mod defaults {
    pub fn enabled() -> bool {
        true
    }
    pub fn mcp_timeout_secs() -> u64 {
        30
    }
    pub fn max_retries() -> u32 {
        2
    }
    pub fn retry_initial_ms() -> u64 {
        250
    }
    pub fn retry_max_ms() -> u64 {
        4000
    }
    pub fn timeout_secs() -> u64 {
        120
    }
    pub fn first_token_timeout_secs() -> u64 {
        30
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cooldown_secs() -> u64 {
        30
    }
}

/// `[[providers.models]]`: a model served by the enclosing provider.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderModel {
    /// Provider-side model id, e.g. `llama-3.3-70b-versatile`.
    pub id: String,
    /// Name agents use; defaults to `id`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub context_length: Option<u32>,
    #[serde(default)]
    pub tier: Option<Tier>,
    /// `false` for models that cannot call tools: agents on them are offered none.
    #[serde(default)]
    pub supports_tools: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Fast,
    Balanced,
    Powerful,
    Deepseek,
    Local,
}

impl Tier {
    pub const ALL: [Tier; 5] = [Tier::Fast, Tier::Balanced, Tier::Powerful, Tier::Deepseek, Tier::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Balanced => "balanced",
            Tier::Powerful => "powerful",
            Tier::Deepseek => "deepseek",
            Tier::Local => "local",
        }
    }

    pub fn parse(value: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// Top-level `[[models]]` (or `[models.<name>]`): a named model bound to a provider — or, with
/// `deployments`, to several upstreams serving it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub name: String,
    /// Empty when the model is defined by `deployments`.
    #[serde(default)]
    pub provider: String,
    #[serde(default, alias = "model")]
    pub model_id: String,
    /// Several upstreams serving this model, instead of `provider` + `model_id`.
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
    /// Model or tier names tried in order once this model's retries are spent.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    #[serde(default)]
    pub tier: Option<Tier>,
    #[serde(default)]
    pub context_length: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// `false` for models that cannot call tools: agents on them are offered none.
    #[serde(default)]
    pub supports_tools: Option<bool>,
    /// Dollars per million input tokens. A model without prices (here or in the
    /// `[pricing].file` for its provider model id) costs nothing: local models.
    #[serde(default)]
    pub input_usd_per_mtok: Option<f64>,
    /// Dollars per million output tokens.
    #[serde(default)]
    pub output_usd_per_mtok: Option<f64>,
    /// Dollars per million input tokens read from the provider's prompt cache; the input price
    /// when unset.
    #[serde(default)]
    pub cached_input_usd_per_mtok: Option<f64>,
}

/// One upstream serving a model: chosen by weight among those whose circuit is not open.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeploymentConfig {
    pub provider: String,
    #[serde(alias = "model")]
    pub model_id: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl ModelConfig {
    /// Where the model is served: its `deployments`, or the one `provider` + `model_id`.
    pub fn deployments(&self) -> Vec<DeploymentConfig> {
        if self.deployments.is_empty() {
            vec![DeploymentConfig { provider: self.provider.clone(), model_id: self.model_id.clone(), weight: 1 }]
        } else {
            self.deployments.clone()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    pub name: String,
    pub description: Option<String>,
    /// A model name or a tier (`fast`, `balanced`, …).
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub tools: Vec<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub max_iterations: Option<u32>,
    /// Run several tool calls of one model turn concurrently (default true).
    pub parallel_tools: Option<bool>,
    /// A RAG collection whose chunks ground every answer.
    pub collection: Option<String>,
    /// `[agents.toon]`: a structured prompt assembled into the system prompt.
    pub toon: Option<ToonPrompt>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ToonPrompt {
    pub role: Option<String>,
    pub personality: Option<String>,
    pub knowledge: Vec<String>,
    pub constraints: Vec<String>,
    /// The docs' example puts `tools` after `constraints`, which TOML reads as part of this table.
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowConfig {
    #[serde(default)]
    pub name: String,
    pub entry_agent: String,
    #[serde(default)]
    pub fallback_agent: Option<String>,
    #[serde(default = "default_max_depth")]
    pub max_depth: u8,
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u8,
    #[serde(default)]
    pub parallel_subagents: bool,
}

fn default_max_depth() -> u8 {
    3
}
fn default_max_iterations() -> u8 {
    5
}

/// `[tools.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ToolConfig {
    pub enabled: bool,
    pub description: Option<String>,
    pub timeout_secs: u64,
    /// For `web_search`: a SearXNG-compatible endpoint; unset means the tool is unavailable.
    pub url: Option<String>,
}

impl Default for ToolConfig {
    fn default() -> Self {
        Self { enabled: true, description: None, timeout_secs: 30, url: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// Built-in feature hashing: offline and deterministic, lexical rather than semantic.
    Hash,
    Ollama,
    Openai,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmbedderConfig {
    #[serde(rename = "type", alias = "kind")]
    pub kind: EmbedderKind,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub dimensions: usize,
    pub batch_size: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            kind: EmbedderKind::Hash,
            base_url: None,
            model: None,
            api_key_env: None,
            dimensions: 384,
            batch_size: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RagConfig {
    pub embedder: EmbedderConfig,
    /// `word` chunking: window size and overlap, in words.
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    /// Body limit of `POST /api/rag/ingest` (documents are bigger than API calls).
    pub max_ingest_bytes: usize,
    /// A document larger than this (bytes of text) is always ingested as a job (202), so no
    /// request is held open for minutes.
    pub async_above_bytes: usize,
    /// A `/rerank` endpoint (Jina, TEI, llama.cpp); unset means built-in rescoring.
    pub rerank_url: Option<String>,
    pub rerank_model: Option<String>,
    /// Hybrid search's weight on the semantic ranking. Unset: 1.0 with a model embedder; 0.5
    /// with `hash`, a lexical signal that mostly repeats BM25's (see [`RagConfig::fusion`]).
    pub hybrid_semantic_weight: Option<f32>,
    pub hybrid_bm25_weight: f32,
    /// Reciprocal-rank fusion's `k`. Unset: 60 with a model embedder, 5 with `hash`.
    pub rrf_k: Option<f32>,
    /// Largest `metadata` object (serialized JSON) accepted with one ingest (400 above).
    pub max_metadata_bytes: usize,
    /// Collections one user may own (403 beyond).
    pub max_collections_per_user: usize,
    /// Chunks one user may hold across all collections (403 beyond).
    pub max_chunks_per_user: u64,
    /// How vector graphs hold coordinates in memory and in their dumps.
    pub vector_precision: VectorPrecision,
    /// Candidates a semantic search keeps while walking a vector graph (HNSW `ef`). Unset:
    /// see [`RagConfig::search_beam`].
    pub search_beam: Option<usize>,
}

/// `[rag].vector_precision`: how a vector graph stores coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorPrecision {
    /// Four bytes per coordinate: exact distances.
    F32,
    /// One byte per coordinate plus one `f32` scale per vector: a quarter of the memory. The
    /// graph is walked on quantised distances and the final candidates are scored with the
    /// full-precision query against the stored codes.
    #[default]
    Int8,
}

impl VectorPrecision {
    pub fn as_str(self) -> &'static str {
        match self {
            VectorPrecision::F32 => "f32",
            VectorPrecision::Int8 => "int8",
        }
    }
}

/// How hybrid search fuses its two rankings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub semantic_weight: f32,
    pub bm25_weight: f32,
    pub k: f32,
}

impl RagConfig {
    /// The vector graphs' search beam: what is configured, else the default for the embedder.
    /// Vectors from an embedding model cluster, and a beam of 200 finds the exact top 10
    /// (recall@10 0.99–1.0 on 1,000 Gaussian clusters at 100k, p95 0.4 ms); `hash` vectors of
    /// texts are nearly equidistant, which defeats a graph's greedy walk, and it takes a beam
    /// of 3,200 to reach recall@10 0.95 on the Rust documentation (p95 2.3 ms at 91k chunks).
    /// Measured by `cargo bench --bench rag`.
    pub fn search_beam(&self) -> usize {
        let hash = self.embedder.kind == EmbedderKind::Hash;
        self.search_beam.unwrap_or(if hash { 3_200 } else { 200 }).max(1)
    }

    /// The fusion hybrid search uses: what is configured, else the defaults for the embedder.
    /// With `hash`, the "semantic" ranking shares BM25's evidence without its term weighting,
    /// so it counts half and the fusion favours the top of each list (`k` 5): on the Rust Book
    /// known-item benchmark (`cargo bench --bench rag_quality`) that is what makes hybrid beat
    /// both of its inputs (MRR@10 0.788 against BM25's 0.772; equal weights and `k` 60 gave
    /// 0.711). A model embedder keeps the usual equal weights and `k` 60.
    pub fn fusion(&self) -> Fusion {
        let hash = self.embedder.kind == EmbedderKind::Hash;
        Fusion {
            semantic_weight: self.hybrid_semantic_weight.unwrap_or(if hash { 0.5 } else { 1.0 }),
            bm25_weight: self.hybrid_bm25_weight,
            k: self.rrf_k.unwrap_or(if hash { 5.0 } else { 60.0 }),
        }
    }
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            embedder: EmbedderConfig::default(),
            chunk_size: 200,
            chunk_overlap: 50,
            max_ingest_bytes: 32 * 1024 * 1024,
            async_above_bytes: 8 * 1024 * 1024,
            rerank_url: None,
            rerank_model: None,
            hybrid_semantic_weight: None,
            hybrid_bm25_weight: 1.0,
            rrf_k: None,
            max_metadata_bytes: 64 * 1024,
            max_collections_per_user: 100,
            max_chunks_per_user: 250_000,
            vector_precision: VectorPrecision::Int8,
            search_beam: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeployConfig {
    #[serde(deserialize_with = "named::seq_or_map")]
    pub targets: Vec<DeployTarget>,
    /// Captured output kept per deploy; the tail is kept when it overflows.
    pub output_cap_bytes: usize,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self { targets: Vec::new(), output_cap_bytes: 1024 * 1024 }
    }
}

/// `[[deploy.targets]]`: the only things a deploy request may run.
#[derive(Debug, Clone, Deserialize)]
pub struct DeployTarget {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Run in order through `sh -c`, stopping at the first failure.
    pub commands: Vec<String>,
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_deploy_timeout")]
    pub timeout_secs: u64,
}

fn default_deploy_timeout() -> u64 {
    600
}

/// `[[services]]`: what `GET /api/admin/services` reports on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub name: String,
    /// A systemd unit, used when systemd is present.
    pub unit: Option<String>,
    pub port: Option<u16>,
    pub health_url: Option<String>,
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigDirs {
    pub agents_dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub tools_dir: Option<PathBuf>,
    pub workflows_dir: Option<PathBuf>,
    pub mcps_dir: Option<PathBuf>,
    pub hot_reload: bool,
}

impl Config {
    /// Whether sign-up is open: as configured, else open only on a loopback bind address (a
    /// developer's own machine), closed on anything reachable from elsewhere.
    pub fn registration(&self) -> Registration {
        if let Some(registration) = self.auth.registration {
            return registration;
        }
        let host = self.server.host.trim().trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if loopback { Registration::Open } else { Registration::Closed }
    }

    /// The port to bind: `[server].port` overrides `PORT` (as the docs say); `--port` overrides both.
    pub fn effective_port(&self, env: &EnvLookup) -> Result<u16, ConfigError> {
        if let Some(port) = self.server.port {
            return Ok(port);
        }
        match env("PORT") {
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
                message: format!("PORT must be a port number (0-65535), got {raw:?}"),
            }),
            None => Ok(DEFAULT_PORT),
        }
    }
}

/// Named sections that may be written as an array of tables or as a table of tables.
pub(crate) trait Named {
    fn name_mut(&mut self) -> &mut String;
}

macro_rules! impl_named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name_mut(&mut self) -> &mut String { &mut self.name }
        }
    )*};
}
impl_named!(ProviderConfig, ModelConfig, AgentConfig, WorkflowConfig, DeployTarget, ServiceConfig, McpServerConfig);
