//! `ares doctor`: check an install without changing anything, one line per check with what to
//! do about a failure. Exit 0 when every check passes, 1 otherwise; `--json` for scripts,
//! `--offline` to skip contacting providers, embedders and rerankers.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Failure, process_env};
use crate::GlobalArgs;
use ares::auth::secrets;
use ares::config::{self, Config, EmbedderKind};
use ares::store::{self, Store, migrations};

/// How long a reachability probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Free space wanted beyond the database's own size (a migration snapshot or backup copies it).
const HEADROOM_BYTES: u64 = 256 * 1024 * 1024;
/// No clock that reads earlier than this (2026-01-01) runs this build: it is wrong.
const EARLIEST_SANE_UNIX: i64 = 1_767_225_600;

#[derive(Debug, serde::Serialize)]
struct Check {
    name: &'static str,
    /// `ok`, `fail` or `skipped`.
    status: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, status: "ok", detail: detail.into(), fix: None }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, status: "fail", detail: detail.into(), fix: Some(fix.into()) }
}

fn skipped(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, status: "skipped", detail: detail.into(), fix: None }
}

pub fn run(global: &GlobalArgs, offline: bool, json: bool) -> Result<(), Failure> {
    let mut checks = Vec::new();
    let loaded = match config::load(global.config.as_deref(), &process_env) {
        Ok(loaded) => {
            let what = loaded.path.as_ref().map_or("no config file: the built-in defaults apply".to_string(), |p| {
                format!("{} parses and validates", p.display())
            });
            let warnings = if loaded.warnings.is_empty() {
                String::new()
            } else {
                format!(" ({} warning(s): {})", loaded.warnings.len(), loaded.warnings.join("; "))
            };
            checks.push(ok("config", format!("{what}{warnings}")));
            Some(loaded)
        }
        Err(e) => {
            checks.push(fail("config", e.to_string(), "edit the config at the key and line named"));
            None
        }
    };
    let data_dir = global.data_dir.as_path();
    checks.push(check_data_dir(data_dir));
    checks.extend(check_secrets(data_dir, loaded.as_ref().map(|l| &l.config)));
    checks.push(check_disk(data_dir));
    checks.push(check_migrations(data_dir));
    checks.push(check_clock(data_dir));
    if let Some(loaded) = &loaded {
        checks.push(check_port(&loaded.config));
        checks.extend(check_upstreams(&loaded.config, offline));
        checks.extend(check_mcp_servers(&loaded.config, offline));
    }
    let failed = checks.iter().filter(|c| c.status == "fail").count();
    if json {
        let report = serde_json::json!({ "ok": failed == 0, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for check in &checks {
            let mark = match check.status {
                "ok" => "✓",
                "fail" => "✗",
                _ => "–",
            };
            match &check.fix {
                Some(fix) => println!("{mark} {}: {} — fix: {fix}", check.name, check.detail),
                None => println!("{mark} {}: {}", check.name, check.detail),
            }
        }
    }
    if failed == 0 { Ok(()) } else { Err(Failure::runtime(format!("{failed} of {} checks failed", checks.len()))) }
}

/// Writable and private (0700), or creatable.
fn check_data_dir(dir: &Path) -> Check {
    let Ok(meta) = std::fs::metadata(dir) else {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return match writable(parent) {
            Ok(()) => ok("data dir", format!("{} does not exist yet; it is created on first start", dir.display())),
            Err(e) => fail(
                "data dir",
                format!("{} does not exist and {} is not writable: {e}", dir.display(), parent.display()),
                "create it for the user ares runs as, or pass --data-dir",
            ),
        };
    };
    if !meta.is_dir() {
        return fail("data dir", format!("{} is not a directory", dir.display()), "pass --data-dir a directory");
    }
    if let Err(e) = writable(dir) {
        return fail(
            "data dir",
            format!("{} is not writable: {e}", dir.display()),
            "chown it to the user ares runs as",
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return fail(
            "data dir",
            format!("{} is readable by others (mode {mode:o})", dir.display()),
            format!("chmod 700 {} (ares tightens it at start, too)", dir.display()),
        );
    }
    ok("data dir", format!("{} is writable and private (mode {mode:o})", dir.display()))
}

fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".ares-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Each secret from the environment, or a private file under `data/secrets`, or generated at
/// the next start.
fn check_secrets(data_dir: &Path, config: Option<&Config>) -> Vec<Check> {
    // The variables the server reads, in its order (a broken config: the defaults').
    let auth = config.map(|c| c.auth.clone()).unwrap_or_default();
    let admin_vars: Vec<String> = secrets::admin_secret_vars(&auth).map(str::to_string).to_vec();
    let wanted =
        [("admin secret", admin_vars, "admin_secret"), ("JWT secret", vec![auth.jwt_secret_env.clone()], "jwt_secret")];
    wanted
        .into_iter()
        .map(|(what, envs, file)| {
            if let Some(name) = envs.iter().find(|name| process_env(name).is_some_and(|v| !v.is_empty())) {
                return ok("secrets", format!("{what} from ${name}"));
            }
            let path = data_dir.join("secrets").join(file);
            match std::fs::metadata(&path) {
                Err(_) => ok("secrets", format!("{what}: none yet; generated into {} at first start", path.display())),
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => fail(
                    "secrets",
                    format!(
                        "{what} in {} is readable by others (mode {:o})",
                        path.display(),
                        meta.permissions().mode() & 0o777
                    ),
                    format!("chmod 600 {}", path.display()),
                ),
                Ok(meta) if meta.len() == 0 => fail(
                    "secrets",
                    format!("{what} file {} is empty", path.display()),
                    "delete it to have a new one generated",
                ),
                Ok(_) => ok("secrets", format!("{what} in {} (private)", path.display())),
            }
        })
        .collect()
}

/// Room for the database to be copied once more (a backup or a pre-migration snapshot).
fn check_disk(data_dir: &Path) -> Check {
    let existing = data_dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("."));
    let stats = match rustix::fs::statvfs(existing) {
        Ok(stats) => stats,
        Err(e) => {
            return fail("disk", format!("cannot read free space of {}: {e}", existing.display()), "check the mount");
        }
    };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    let db = std::fs::metadata(data_dir.join(store::DB_FILE)).map_or(0, |m| m.len());
    let mib = |bytes: u64| bytes / (1024 * 1024);
    if free < db.saturating_add(HEADROOM_BYTES) {
        return fail(
            "disk",
            format!("{} MiB free, database {} MiB: not enough for a backup or migration snapshot", mib(free), mib(db)),
            "free disk space, or move old backups off the box",
        );
    }
    ok("disk", format!("{} MiB free, database {} MiB", mib(free), mib(db)))
}

fn check_migrations(data_dir: &Path) -> Check {
    let path = data_dir.join(store::DB_FILE);
    if !path.exists() {
        return ok("migrations", format!("no database yet at {}; created on first start", path.display()));
    }
    match Store::inspect(&path) {
        Ok(rows) => {
            let pending: Vec<String> =
                rows.iter().filter(|r| r.applied_at.is_none()).map(|r| r.version.to_string()).collect();
            let latest = migrations::latest(migrations::MIGRATIONS);
            if pending.is_empty() {
                ok("migrations", format!("schema version {latest}, nothing pending"))
            } else {
                ok(
                    "migrations",
                    format!("pending {} (applied at the next start, after a snapshot)", pending.join(", ")),
                )
            }
        }
        Err(store::Error::Locked { .. }) => {
            ok("migrations", "the database is open in a running server (which applied them at its start)")
        }
        Err(e) => {
            fail("migrations", e.to_string(), "restore a backup (`ares restore`) or use the binary that wrote it")
        }
    }
}

/// The port is free, or held by this data dir's own server.
fn check_port(config: &Config) -> Check {
    let port = config.server.port.or_else(|| process_env("PORT").and_then(|p| p.parse().ok())).unwrap_or(3000);
    let host = config.server.host.clone();
    let addr = format!("{host}:{port}");
    let Some(socket) = std::net::ToSocketAddrs::to_socket_addrs(&addr).ok().and_then(|mut a| a.next()) else {
        return fail("port", format!("{addr} does not resolve"), "set [server].host to an address of this machine");
    };
    match TcpListener::bind(socket) {
        Ok(_) => ok("port", format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if held_by_ares(socket) {
                ok("port", format!("{addr} is held by a running ares (its /health answers OK)"))
            } else {
                fail("port", format!("{addr} is taken by another program"), "stop it, or set [server].port")
            }
        }
        Err(e) => {
            fail("port", format!("cannot bind {addr}: {e}"), "use a port above 1023, or run with the right privileges")
        }
    }
}

fn held_by_ares(socket: SocketAddr) -> bool {
    let host = if socket.ip().is_unspecified() { "127.0.0.1".to_string() } else { socket.ip().to_string() };
    let url = format!("http://{host}:{}/health", socket.port());
    probe(&url).is_ok_and(|(status, body)| status == 200 && body.trim() == "OK")
}

fn check_clock(data_dir: &Path) -> Check {
    let now = ares::clock::now_unix();
    if now < EARLIEST_SANE_UNIX {
        return fail(
            "clock",
            format!("the clock reads {}", ares::clock::rfc3339(now)),
            "set the time (timedatectl set-ntp true)",
        );
    }
    let written = std::fs::metadata(data_dir.join(store::DB_FILE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    if let Some(written) = written
        && written > now + 300
    {
        return fail(
            "clock",
            format!(
                "the database was written at {}, after now ({})",
                ares::clock::rfc3339(written),
                ares::clock::rfc3339(now)
            ),
            "set the time (timedatectl set-ntp true): quotas, budgets and retention count in UTC periods",
        );
    }
    ok("clock", format!("now is {}", ares::clock::rfc3339(now)))
}

/// Every provider, embedder and reranker answers HTTP at all (any status counts: reachable is
/// what is checked, not credentials).
fn check_upstreams(config: &Config, offline: bool) -> Vec<Check> {
    let mut targets: Vec<(String, String)> = config
        .providers
        .iter()
        .map(|p| {
            let url = p.base_url.clone().unwrap_or_else(|| ares::llm::provider::default_base_url(p.kind).to_string());
            (format!("provider '{}'", p.name), url)
        })
        .collect();
    if config.rag.embedder.kind != EmbedderKind::Hash
        && let Some(url) = &config.rag.embedder.base_url
    {
        targets.push(("embedder".to_string(), url.clone()));
    }
    if let Some(url) = &config.rag.rerank_url {
        targets.push(("reranker".to_string(), url.clone()));
    }
    if targets.is_empty() {
        return vec![ok("upstreams", "no provider, embedder or reranker configured")];
    }
    targets
        .into_iter()
        .map(|(what, url)| {
            if offline {
                return skipped("upstreams", format!("{what} at {url} (--offline)"));
            }
            match probe(&url) {
                Ok((status, _)) => ok("upstreams", format!("{what} at {url} answers (HTTP {status})")),
                Err(e) => fail(
                    "upstreams",
                    format!("{what} at {url} is unreachable: {e}"),
                    "check its base_url and that it runs (an air-gapped site points it at a local endpoint)",
                ),
            }
        })
        .collect()
}

/// Every enabled MCP server starts and lists its tools (a stdio server is run and stopped;
/// a `url` server is contacted, so `--offline` skips it).
fn check_mcp_servers(config: &Config, offline: bool) -> Vec<Check> {
    let servers: Vec<_> = config.mcp.servers.iter().filter(|s| s.enabled).collect();
    if servers.is_empty() {
        return Vec::new();
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return vec![fail("mcp", "cannot start a runtime to try the MCP servers", "report this as a bug")];
    };
    let clients = ares::mcp::client::McpClients::new(&config.mcp.servers, &process_env);
    runtime.block_on(async move {
        let mut checks = Vec::new();
        for server in servers {
            let name = &server.name;
            if offline && server.url.is_some() {
                checks.push(skipped("mcp", format!("MCP server '{name}' at a url (--offline)")));
                continue;
            }
            checks.push(match clients.tools(name).await {
                Ok(tools) => ok("mcp", format!("MCP server '{name}' starts and lists {} tool(s)", tools.len())),
                Err(e) => fail(
                    "mcp",
                    e.to_string(),
                    "check its command and args (run them by hand), its url and headers, and timeout_secs",
                ),
            });
        }
        // The servers it started stop with their connections, inside the runtime.
        drop(clients);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        checks
    })
}

/// One bounded GET: the status and (small) body, or why there was none.
fn probe(url: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(PROBE_TIMEOUT)).http_status_as_error(false).build().into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
    Ok((status, body))
}
