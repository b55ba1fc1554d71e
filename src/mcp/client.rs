//! MCP servers as tool sources: one connection per configured server, started on first use.
//!
//! A server that exits is started again on its next use, at once the first time and then with
//! a growing pause between attempts (1 s doubling to 60 s), so a server that crashes on every
//! call cannot turn each model turn into a process spawn. A server that cannot start is a tool
//! error the model (and the log) can read, never a failed boot. Each server's tool list is
//! cached until it sends `notifications/tools/list_changed`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, Tool};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use crate::config::{EnvLookup, McpServerConfig};

/// The longest pause between start attempts of a failing server.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The shortest time a server is given to start and initialise.
const MIN_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a stdio server's stderr kept to explain a failed start.
const STDERR_LINES: usize = 20;

/// A tool of one server, as the model is offered it.
#[derive(Debug, Clone)]
pub struct RemoteTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// The outcome of one call, as text for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    pub text: String,
    /// The server marked the result as an error (`isError`).
    pub is_error: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server '{0}' is not configured")]
    Unknown(String),
    #[error("MCP server '{0}' is disabled")]
    Disabled(String),
    #[error("MCP server '{server}' is unavailable: {message}")]
    Unavailable { server: String, message: String },
    #[error("MCP server '{server}' did not answer within {secs} s")]
    Timeout { server: String, secs: u64 },
    #[error("MCP server '{server}' failed the call: {message}")]
    Call { server: String, message: String },
}

/// The configured servers and their connections. Built with the tool box; a config reload keeps
/// it while `[[mcp.servers]]` is unchanged, else builds a fresh one (the old connections close
/// when the last request using them ends).
pub struct McpClients {
    servers: BTreeMap<String, Arc<Slot>>,
}

impl std::fmt::Debug for McpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClients").field("servers", &self.servers.keys().collect::<Vec<_>>()).finish()
    }
}

struct Slot {
    config: McpServerConfig,
    /// `env` and `headers` with their `${VAR}`s replaced, or what is missing.
    resolved: Result<Resolved, String>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct Resolved {
    env: Vec<(String, String)>,
    headers: HashMap<http::HeaderName, http::HeaderValue>,
}

#[derive(Default)]
struct State {
    running: Option<Connection>,
    /// Failed starts and exits since the last successful call.
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: Option<String>,
}

struct Connection {
    /// Always `Some` until dropped.
    service: Option<RunningService<RoleClient, Listener>>,
    stale_tools: Arc<AtomicBool>,
    tools: Option<Vec<RemoteTool>>,
    /// The runtime the connection runs on: closing it stops the child from a task of that
    /// runtime, so the last reference may be dropped anywhere (a test's thread, a reload).
    runtime: tokio::runtime::Handle,
}

impl Connection {
    fn peer(&self, server: &str) -> Result<&rmcp::service::Peer<RoleClient>, McpError> {
        self.service.as_ref().map(|s| s.peer()).ok_or_else(|| McpError::Unavailable {
            server: server.to_string(),
            message: "its connection is closing".to_string(),
        })
    }

    fn is_closed(&self) -> bool {
        self.service.as_ref().is_none_or(|s| s.is_closed() || s.is_transport_closed())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _entered = self.runtime.enter();
        drop(self.service.take());
    }
}

/// Our side of a connection: who we are, and a flag the server's `tools/list_changed` sets.
#[derive(Clone)]
struct Listener {
    stale_tools: Arc<AtomicBool>,
}

impl ClientHandler for Listener {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("ares", env!("CARGO_PKG_VERSION")))
    }

    fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) -> impl Future<Output = ()> + Send + '_ {
        self.stale_tools.store(true, Ordering::Release);
        std::future::ready(())
    }
}

impl McpClients {
    pub fn new(servers: &[McpServerConfig], env: &EnvLookup) -> McpClients {
        let slots = servers
            .iter()
            .map(|config| {
                let slot = Slot {
                    config: config.clone(),
                    resolved: resolve(config, env),
                    state: tokio::sync::Mutex::new(State::default()),
                };
                (config.name.clone(), Arc::new(slot))
            })
            .collect();
        McpClients { servers: slots }
    }

    /// Whether these connections serve exactly `servers` (a reload may keep them).
    pub fn serves(&self, servers: &[McpServerConfig]) -> bool {
        servers.len() == self.servers.len()
            && servers.iter().all(|config| self.config(&config.name).is_some_and(|running| running == config))
    }

    pub fn config(&self, server: &str) -> Option<&McpServerConfig> {
        self.servers.get(server).map(|slot| &slot.config)
    }

    /// The server's tools, listing them (and starting the server) when not cached.
    pub async fn tools(&self, server: &str) -> Result<Vec<RemoteTool>, McpError> {
        let slot = self.slot(server)?;
        let timeout = timeout_of(&slot.config);
        let mut state = slot.state.lock().await;
        let connection = connect(slot, &mut state).await?;
        if connection.stale_tools.swap(false, Ordering::AcqRel) {
            connection.tools = None;
        }
        if let Some(tools) = &connection.tools {
            return Ok(tools.clone());
        }
        let listed = tokio::time::timeout(timeout, connection.peer(server)?.list_all_tools()).await;
        let tools: Vec<RemoteTool> = match listed {
            Ok(Ok(tools)) => tools.iter().map(remote_tool).collect(),
            Ok(Err(e)) => {
                let error = McpError::Unavailable { server: server.to_string(), message: format!("tools/list: {e}") };
                return Err(error);
            }
            Err(_) => return Err(McpError::Timeout { server: server.to_string(), secs: timeout.as_secs() }),
        };
        connection.tools = Some(tools.clone());
        Ok(tools)
    }

    /// Call `tool` of `server` within the server's `timeout_secs`.
    pub async fn call(&self, server: &str, tool: &str, arguments: &Value) -> Result<CallOutcome, McpError> {
        let slot = self.slot(server)?;
        let timeout = timeout_of(&slot.config);
        let peer = {
            let mut state = slot.state.lock().await;
            connect(slot, &mut state).await?.peer(server)?.clone()
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map.clone()),
            Value::Null => {}
            other => {
                let message = format!("arguments must be a JSON object, got {other}");
                return Err(McpError::Call { server: server.to_string(), message });
            }
        }
        let result = match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(McpError::Call { server: server.to_string(), message: e.to_string() }),
            Err(_) => return Err(McpError::Timeout { server: server.to_string(), secs: timeout.as_secs() }),
        };
        slot.state.lock().await.failures = 0;
        let mut parts: Vec<String> =
            result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect();
        if parts.is_empty()
            && let Some(structured) = &result.structured_content
        {
            parts.push(structured.to_string());
        }
        Ok(CallOutcome { text: parts.join("\n"), is_error: result.is_error.unwrap_or(false) })
    }

    fn slot(&self, server: &str) -> Result<&Arc<Slot>, McpError> {
        let slot = self.servers.get(server).ok_or_else(|| McpError::Unknown(server.to_string()))?;
        if !slot.config.enabled {
            return Err(McpError::Disabled(server.to_string()));
        }
        Ok(slot)
    }
}

fn timeout_of(config: &McpServerConfig) -> Duration {
    Duration::from_secs(config.timeout_secs.max(1))
}

/// Starting gets at least [`MIN_START_TIMEOUT`]: an interpreter or `npx` on a busy machine may
/// take seconds to answer `initialize`, which a short per-call timeout should not turn into a
/// failure.
fn start_timeout_of(config: &McpServerConfig) -> Duration {
    timeout_of(config).max(MIN_START_TIMEOUT)
}

/// The live connection, starting the server when there is none (or it exited) and the backoff
/// allows.
async fn connect<'s>(slot: &Slot, state: &'s mut State) -> Result<&'s mut Connection, McpError> {
    let config = &slot.config;
    let resolved = slot
        .resolved
        .as_ref()
        .map_err(|message| McpError::Unavailable { server: config.name.clone(), message: message.clone() })?;
    let now = Instant::now();
    if state.running.as_ref().is_some_and(Connection::is_closed) {
        state.running = None;
        state.failures += 1;
        state.last_error = Some("it exited".to_string());
        // A server that ran and then exited is restarted at once the first time.
        state.next_attempt = (state.failures > 1).then(|| now + backoff(state.failures - 1));
        tracing::warn!(server = %config.name, "MCP server exited; it is started again on its next use");
    }
    if state.running.is_none() {
        if let Some(at) = state.next_attempt
            && at > now
        {
            let wait = at.duration_since(now).as_secs().max(1);
            let last = state.last_error.as_deref().unwrap_or("unknown error");
            let message = format!("{last}; the next start attempt is in {wait} s");
            return Err(McpError::Unavailable { server: config.name.clone(), message });
        }
        match tokio::time::timeout(start_timeout_of(config), start(config, resolved)).await {
            Ok(Ok(connection)) => {
                tracing::info!(server = %config.name, "MCP server started");
                state.running = Some(connection);
                state.next_attempt = None;
            }
            outcome => {
                let message = match outcome {
                    Ok(Err(message)) => message,
                    _ => format!("it did not finish starting within {} s", start_timeout_of(config).as_secs()),
                };
                state.failures += 1;
                state.next_attempt = Some(now + backoff(state.failures));
                state.last_error = Some(message.clone());
                tracing::warn!(server = %config.name, error = %message, "MCP server cannot start");
                return Err(McpError::Unavailable { server: config.name.clone(), message });
            }
        }
    }
    state
        .running
        .as_mut()
        .ok_or_else(|| McpError::Unavailable { server: config.name.clone(), message: "no connection".to_string() })
}

/// 1 s after the first failure, doubling to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

async fn start(config: &McpServerConfig, resolved: &Resolved) -> Result<Connection, String> {
    let stale_tools = Arc::new(AtomicBool::new(false));
    let listener = Listener { stale_tools: stale_tools.clone() };
    let service = match (&config.command, &config.url) {
        (Some(command), _) => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(&config.args).envs(resolved.env.iter().map(|(k, v)| (k, v)));
            // Its own process group, so stopping it also stops what it started (`npx` runs node).
            let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
            wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
            let (transport, stderr) = TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run `{command}`: {e}"))?;
            let tail = Arc::new(Mutex::new(VecDeque::new()));
            let reader = stderr.map(|stderr| tokio::spawn(keep_stderr(config.name.clone(), stderr, tail.clone())));
            match listener.serve(transport).await {
                Ok(service) => service,
                Err(e) => {
                    // The child has probably exited: let its last words arrive.
                    if let Some(reader) = reader {
                        let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
                    }
                    let lines: Vec<String> = tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
                    return Err(if lines.is_empty() {
                        format!("it did not initialise: {e}")
                    } else {
                        format!("it did not initialise: {e}; its stderr: {}", lines.join(" | "))
                    });
                }
            }
        }
        (None, Some(url)) => {
            crate::mcp::install_tls_provider();
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(resolved.headers.clone()),
            );
            listener.serve(transport).await.map_err(|e| format!("it did not initialise: {e}"))?
        }
        (None, None) => return Err("it has neither a command nor a url".to_string()),
    };
    Ok(Connection { service: Some(service), stale_tools, tools: None, runtime: tokio::runtime::Handle::current() })
}

/// The server's `env` and `headers` with `${VAR}`s from the environment: once, when the
/// config is read, so a missing variable is a clear error at the server's first use.
fn resolve(config: &McpServerConfig, env: &EnvLookup) -> Result<Resolved, String> {
    let mut resolved = Resolved::default();
    for (name, value) in &config.env {
        let value = expand(value, env).map_err(|var| format!("env {name} needs ${var}, which is not set"))?;
        resolved.env.push((name.clone(), value));
    }
    for (name, value) in &config.headers {
        let value = expand(value, env).map_err(|var| format!("header {name} needs ${var}, which is not set"))?;
        let header = http::HeaderName::try_from(name.as_str()).map_err(|e| format!("header {name}: {e}"))?;
        let value = http::HeaderValue::try_from(value).map_err(|e| format!("header {name}: {e}"))?;
        resolved.headers.insert(header, value);
    }
    Ok(resolved)
}

/// A stdio server's stderr: logged at debug, and the last lines kept for a failed start.
async fn keep_stderr(server: String, stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "ares::mcp::stderr", server = %server, "{line}");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// `${VAR}` replaced by the environment's value; `Err(VAR)` when it is not set.
fn expand(value: &str, env: &EnvLookup) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else { break };
        let var = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        out.push_str(&env(var).ok_or_else(|| var.to_string())?);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn remote_tool(tool: &Tool) -> RemoteTool {
    RemoteTool {
        name: tool.name.to_string(),
        description: tool.description.as_deref().unwrap_or_default().to_string(),
        input_schema: Value::Object((*tool.input_schema).clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand_and_a_missing_one_is_named() {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(expand("Bearer ${TOKEN}", &env).as_deref(), Ok("Bearer s3cret"));
        assert_eq!(expand("${TOKEN}-${TOKEN}", &env).as_deref(), Ok("s3cret-s3cret"));
        assert_eq!(expand("plain $TOKEN {x}", &env).as_deref(), Ok("plain $TOKEN {x}"));
        assert_eq!(expand("x ${MISSING}", &env), Err("MISSING".to_string()));
    }

    #[test]
    fn backoff_grows_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
