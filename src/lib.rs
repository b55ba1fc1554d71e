//! ARES, embedded: the ARES agent-platform API served from one binary with embedded storage.
//!
//! `build_app` turns a validated config and a data dir into an [`App`] (secrets resolved,
//! store opened and migrated); `run` serves it on a bound listener until shutdown. The `ares`
//! binary (src/main.rs, src/cli/) and the integration tests both start servers this way.

pub mod agents;
pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod chat;
pub mod clock;
pub mod compat;
pub mod config;
pub mod console;
pub mod deploy;
pub mod error;
pub mod http;
pub mod llm;
pub mod logs;
pub mod mcp;
pub mod memory;
pub mod metering;
pub mod orchestration;
pub mod private;
pub mod rag;
pub mod reload;
pub mod silence;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod toon;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use app::App;

use auth::secrets::{self, SecretSource, Secrets, SecretsError};
use config::{Config, EnvLookup};
use store::{MigrationPolicy, Store};

/// Why a server could not be assembled. The CLI maps these to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("search indexes: {0}")]
    Rag(#[from] rag::RagError),
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
}

/// An assembled app plus what start-up should tell the operator.
pub struct Built {
    pub app: App,
    /// Set when the admin secret was generated just now: print it once, with its location.
    pub generated_admin_secret: Option<(String, PathBuf)>,
}

/// Resolve secrets, open (and migrate) the store, and assemble the app. Blocking.
pub fn build_app(config: Config, data_dir: &Path, env: &EnvLookup) -> Result<Built, StartError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir { path: data_dir.to_path_buf(), source })?;
    if let Err(e) = private::tighten(data_dir) {
        tracing::warn!(data_dir = %data_dir.display(), error = %e, "could not make everything in the data dir private");
    }
    let secrets: Secrets = secrets::resolve(&config.auth, data_dir, env)?;
    let cache_bytes = usize::try_from(config.storage.cache_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let store = Store::open_cached(&data_dir.join(store::DB_FILE), MigrationPolicy::Apply, cache_bytes)?;
    assemble(config, data_dir, store, &secrets, env)
}

/// Start-up on an open store: its durability setting, seeding and purges, the search indexes
/// and the services. Apart from [`build_app`] so that a test can serve the app from a store of
/// its own making (one whose disk fills on demand).
fn assemble(
    config: Config,
    data_dir: &Path,
    store: Store,
    secrets: &Secrets,
    env: &EnvLookup,
) -> Result<Built, StartError> {
    store.set_sync_interval(std::time::Duration::from_millis(config.storage.sync_interval_ms));
    prepare_store(&store, &config)?;
    let rag = rag::Rag::open(&config.rag, data_dir, &store, env)?;
    let report = rag.open_report();
    if report.replayed_lexical + report.replayed_vectors > 0 {
        tracing::info!(
            lexical = report.replayed_lexical,
            vectors = report.replayed_vectors,
            elapsed_ms = report.elapsed_ms,
            "search indexes caught up with the database"
        );
    }
    let generated_admin_secret = match &secrets.admin_source {
        SecretSource::Generated(path) => Some((secrets.admin_secret.clone(), path.clone())),
        SecretSource::Env(_) | SecretSource::File(_) => None,
    };
    let app = App::new(config, data_dir, store, rag, secrets, env);
    report_stored_agents_the_config_restricts(&app)?;
    Ok(Built { app, generated_admin_secret })
}

/// Stored agents that the current config no longer allows cannot be refused any more; name
/// them, so the operator can tell their owners. Public user agents whose names a platform
/// agent holds (imported from the reference, or published before an operator configured an
/// agent of that name) answer only their owners (`agents::resolve`); agents asking for more
/// tool rounds than `[limits].max_tool_iterations` (imported, or saved before the cap was
/// lowered) run capped. One read of each agent table. Blocking (start-up only).
fn report_stored_agents_the_config_restricts(app: &App) -> Result<(), StartError> {
    let cap = app.config().limits.max_tool_iterations;
    let (user_agents, tenant_agents) =
        app.store().read_now(|txn| Ok((store::user_agents::all(txn)?, store::agents::list_all(txn)?)))?;
    let clashing: Vec<String> = user_agents
        .iter()
        .filter(|agent| agent.is_public && app.agents().reserving(&agent.name).is_some())
        .map(|agent| format!("'{}' (owner {})", agent.name, agent.user_id))
        .collect();
    if !clashing.is_empty() {
        tracing::warn!(
            count = clashing.len(),
            "public user agents named like platform agents answer only their owners: {}",
            clashing.join(", ")
        );
    }
    let mut above: Vec<String> = user_agents
        .iter()
        .filter(|agent| agent.max_tool_iterations > cap)
        .map(|agent| format!("user agent '{}' (owner {}): {}", agent.name, agent.user_id, agent.max_tool_iterations))
        .collect();
    above.extend(tenant_agents.iter().filter_map(|(tenant, agent)| {
        let rounds = agents::AgentSpec::from_tenant_agent(agent).max_iterations;
        (rounds > cap).then(|| format!("tenant agent '{}' (tenant {}): {rounds}", agent.agent_name, tenant.name))
    }));
    if !above.is_empty() {
        tracing::warn!(
            count = above.len(),
            cap,
            "stored agents ask for more tool rounds than [limits].max_tool_iterations and run capped: {}",
            above.join(", ")
        );
    }
    Ok(())
}

/// Start-up housekeeping: seed missing built-in templates (never overwriting edited or
/// imported ones) and drop sessions whose refresh tokens can no longer be valid.
fn prepare_store(store: &Store, config: &Config) -> Result<(), StartError> {
    let now = clock::now_unix();
    let refresh_lifetime = i64::try_from(config.auth.jwt_refresh_expiry).unwrap_or(i64::MAX);
    let (seeded, purged, interrupted) = store.write_blocking(|txn| {
        let seeded = store::templates::seed(txn, &agents::templates::builtin(now))?;
        // Imported rows hold an `expires_at` that is too short (API.md §3.3), so allow a
        // whole refresh lifetime on top before deleting.
        let purged = store::users::purge_expired_sessions(txn, now, refresh_lifetime)?;
        // Deploys that were running belonged to the previous process.
        let interrupted = store::deploys::mark_interrupted(txn, now)?;
        Ok((seeded, purged, interrupted))
    })?;
    let (seeded, purged, interrupted) = (seeded, purged, interrupted);
    if seeded > 0 || purged > 0 || interrupted > 0 {
        tracing::info!(
            seeded_templates = seeded,
            purged_sessions = purged,
            interrupted_deploys = interrupted,
            "store prepared"
        );
    }
    Ok(())
}

/// How often changed vector graphs are written to disk. Anything newer is replayed from the
/// database after a crash, so this bounds start-up work, not durability.
const VECTOR_DUMP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

async fn persist_vectors(app: &Arc<App>, closing: bool) {
    let app = app.clone();
    let persisted = tokio::task::spawn_blocking(move || {
        // What ingests acknowledged but no search has asked for yet goes into the indexes (and
        // the graphs' queues) before they are written.
        if let Err(e) = app.rag().index_pending(app.store()) {
            tracing::warn!(error = %e, "indexing acknowledged chunks failed; start-up will");
        }
        if closing { app.rag().close() } else { app.rag().persist() }
    });
    match persisted.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "writing vector indexes failed; they will be replayed at start"),
        Err(e) => tracing::warn!(error = %e, "vector index task failed"),
    }
}

/// Delete request log records past their retention, one bounded batch per pass; a backlog
/// (the first start after a long stop) is worked off in further batches a second apart, so
/// other writes keep flowing in between.
async fn prune_request_log(app: &App) {
    loop {
        let now_ms = clock::now_unix() * 1000;
        match app.telemetry().prune(app.store(), now_ms).await {
            Ok(deleted) if deleted == telemetry::PRUNE_BATCH => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "pruning the request log failed");
                return;
            }
        }
    }
}

/// Serve until `shutdown` resolves, drain, then flush and close the store.
pub async fn run<F>(listener: tokio::net::TcpListener, app: Arc<App>, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    if let Ok(addr) = listener.local_addr() {
        app.set_bound_addr(addr);
    }
    if let Some(limiter) = app.rate_limiter() {
        limiter.spawn_sweeper();
    }
    api::rag_jobs::resume(&app);
    let (stop_flusher, mut flusher_stopped) = tokio::sync::watch::channel(false);
    let flusher = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(metering::recorder::FLUSH_INTERVAL);
            let mut vectors_tick = tokio::time::interval(VECTOR_DUMP_INTERVAL);
            let mut prune_tick = tokio::time::interval(telemetry::PRUNE_INTERVAL);
            let mut traces_tick = tokio::time::interval(telemetry::otlp::EXPORT_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        app.usage().flush_detached(app.store());
                        app.telemetry().flush_detached(app.store());
                    }
                    _ = vectors_tick.tick() => persist_vectors(&app, false).await,
                    _ = prune_tick.tick() => prune_request_log(&app).await,
                    _ = traces_tick.tick() => {
                        if let Some(traces) = app.telemetry().traces() {
                            traces.export().await;
                        }
                    }
                    _ = flusher_stopped.changed() => return,
                }
            }
        })
    };
    let result = http::serve(listener, app.clone(), api::handle, shutdown).await;
    let _ = stop_flusher.send(true);
    let _ = flusher.await;
    // Usage and the request log of the last requests go in before the writer stops.
    app.usage().flush_detached(app.store());
    app.telemetry().flush_detached(app.store());
    if let Some(traces) = app.telemetry().traces() {
        traces.export().await;
    }
    persist_vectors(&app, true).await;
    let closing = app.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || closing.store().close()).await {
        tracing::error!(error = %e, "closing the store failed");
    }
    result
}
