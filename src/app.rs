//! `App`: every long-lived service of a running server, built once from the config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::agents::Catalog;
use crate::auth::admin::AdminSecret;
use crate::auth::failures::FailedAttempts;
use crate::auth::jwt::TokenKeys;
use crate::auth::passwords::Hasher;
use crate::auth::secrets::Secrets;
use crate::auth::sessions::SessionCache;
use crate::chat::journal::Journal;
use crate::config::Config;
use crate::deploy::Deployer;
use crate::http::cors::CorsPolicy;
use crate::http::rate_limit::IpRateLimiter;
use crate::llm::Registry;
use crate::llm::health::CircuitChanges;
use crate::metering::Meter;
use crate::metering::budget::BudgetMeter;
use crate::metering::recorder::UsageRecorder;
use crate::orchestration::workflow::Workflows;
use crate::rag::Rag;
use crate::reload::{self, LastReload, Live, Part, ReloadError, Trigger};
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::tools::toolbox::ToolBox;

pub struct App {
    /// Providers, models, agents, tools and workflows with the config they came from: swapped
    /// as one by a reload (see `reload.rs`).
    live: ArcSwap<Live>,
    /// What a reload re-reads (set by `ares serve`); `None`: reloads are refused.
    reload_source: Mutex<Option<reload::Source>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    last_reload: Mutex<Option<LastReload>>,
    /// Where circuit changes go (the audit log); kept for the registries reloads build.
    circuit_changes: CircuitChanges,
    data_dir: PathBuf,
    store: Arc<Store>,
    admin_secret: AdminSecret,
    /// Signs and verifies access and refresh tokens.
    token_keys: TokenKeys,
    /// Password hashing threads and their bounded queue.
    hasher: Hasher,
    /// Live and logged-out sessions seen by the access-token check.
    sessions: SessionCache,
    /// In-memory quota counters per tenant.
    meter: Meter,
    /// In-memory quota counters per JWT user (`[quotas.users]`), apart from tenants' so that ids
    /// cannot collide.
    user_meter: Meter,
    /// Usage events waiting for the next batched commit.
    usage: UsageRecorder,
    /// Finished chats' records on their way to the writer.
    journal: Arc<Journal>,
    /// Collections, chunks and their search indexes.
    rag: Rag,
    ingest_jobs: crate::rag::jobs::IngestJobs,
    deployer: Deployer,
    /// Metrics, the request log and trace export.
    telemetry: Arc<Telemetry>,
    /// Tenants' and keys' dollar budgets, and what is reserved against them.
    budgets: Arc<BudgetMeter>,
    /// Failed admin-secret and API-key attempts, logged at most once per address per minute.
    failed_attempts: FailedAttempts,
    key_cache: crate::auth::key_cache::KeyCache,
    tenant_agent_cache: crate::agents::resolve::TenantAgentCache,
    agent_pages: crate::api::v1::agents::AgentPages,
    /// When each API key's `last_used` was last written, so it is written at most once a minute.
    key_use: Mutex<HashMap<String, i64>>,
    cors: CorsPolicy,
    /// The web UI's files, served at `/` and `/console/`.
    console: crate::console::Console,
    /// `None` when `[server].rate_limit_per_second = 0`.
    rate_limiter: Option<IpRateLimiter>,
    started_at: Instant,
    /// Unix seconds at start: a stable `created` for things that exist since start-up (the
    /// configured models of `GET /v1/models`), where now minus uptime would wobble by a second.
    started_unix: i64,
    /// The address actually bound (the configured port may be 0 or overridden by `PORT`).
    bound_addr: OnceLock<SocketAddr>,
}

impl App {
    /// Assemble the services. The store must already be open (and migrated).
    pub fn new(
        config: Config,
        data_dir: &Path,
        store: Store,
        rag: Rag,
        secrets: &Secrets,
        env: &crate::config::EnvLookup,
    ) -> App {
        let cors = CorsPolicy::new(&config.server.cors_origins);
        let rate_limiter = IpRateLimiter::new(config.server.rate_limit_per_second, config.server.rate_limit_burst);
        let store = Arc::new(store);
        let telemetry = Arc::new(Telemetry::new(&config));
        let observed = telemetry.clone();
        store.observe_commits(Arc::new(move |elapsed, batch| observed.metrics.store_commit(elapsed, batch)));
        let circuit_changes = audit_circuit_changes(&store);
        let budgets = Arc::new(BudgetMeter::new(Some(alert_budget_crossings(&store))));
        let llm = Registry::new(&config, env, Some(circuit_changes.clone()), None);
        App {
            reload_source: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            last_reload: Mutex::new(None),
            circuit_changes,
            data_dir: data_dir.to_path_buf(),
            store,
            admin_secret: AdminSecret::new(&secrets.admin_secret),
            token_keys: TokenKeys::new(&secrets.jwt_secret),
            hasher: Hasher::new(config.auth.max_concurrent_hashes, config.auth.max_pending_hashes),
            sessions: SessionCache::default(),
            meter: Meter::new(config.quotas),
            user_meter: Meter::new(config.quotas),
            usage: UsageRecorder::default(),
            journal: Arc::default(),
            rag,
            ingest_jobs: crate::rag::jobs::IngestJobs::default(),
            deployer: Deployer::new(config.deploy.targets.clone(), config.deploy.output_cap_bytes),
            key_use: Mutex::new(HashMap::new()),
            failed_attempts: FailedAttempts::default(),
            key_cache: crate::auth::key_cache::new(),
            tenant_agent_cache: crate::agents::resolve::tenant_agent_cache(),
            agent_pages: crate::store::generational::Generational::new(crate::api::v1::agents::AGENT_PAGES_CAPACITY),
            telemetry,
            budgets,
            cors,
            console: crate::console::Console::new(&config.server.public_base_path),
            rate_limiter,
            started_at: Instant::now(),
            started_unix: crate::clock::now_unix(),
            bound_addr: OnceLock::new(),
            live: ArcSwap::from_pointee(Live::build(config, llm, env, None)),
        }
    }

    /// The running configuration. A request that needs it several times takes it once: a reload
    /// may swap it between two calls.
    pub fn config(&self) -> Part<Config> {
        Part::new(self.live.load_full(), |live| &live.config)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn admin_secret(&self) -> &AdminSecret {
        &self.admin_secret
    }

    pub fn token_keys(&self) -> &TokenKeys {
        &self.token_keys
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    pub fn user_meter(&self) -> &Meter {
        &self.user_meter
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub fn sessions(&self) -> &SessionCache {
        &self.sessions
    }

    pub fn llm(&self) -> Part<Registry> {
        Part::new(self.live.load_full(), |live| &live.llm)
    }

    pub fn agents(&self) -> Part<Catalog> {
        Part::new(self.live.load_full(), |live| &live.agents)
    }

    pub fn rag(&self) -> &Rag {
        &self.rag
    }

    pub fn ingest_jobs(&self) -> &crate::rag::jobs::IngestJobs {
        &self.ingest_jobs
    }

    pub fn workflows(&self) -> Part<Workflows> {
        Part::new(self.live.load_full(), |live| &live.workflows)
    }

    pub fn tools(&self) -> Part<ToolBox> {
        Part::new(self.live.load_full(), |live| &live.tools)
    }

    /// Let reloads re-read `source` (what the server started from).
    pub fn enable_reload(&self, source: reload::Source) {
        if let Ok(mut slot) = self.reload_source.lock() {
            *slot = Some(source);
        }
    }

    pub fn reload_source(&self) -> Option<reload::Source> {
        self.reload_source.lock().ok().and_then(|slot| slot.clone())
    }

    pub fn last_reload(&self) -> Option<LastReload> {
        self.last_reload.lock().ok().and_then(|slot| slot.clone())
    }

    /// Re-read and re-validate the config; on success swap providers, models, agents, tools and
    /// workflows at once (requests in flight keep what they took). An invalid config changes
    /// nothing. Circuits of deployments that are still configured keep their state.
    pub async fn reload(&self, trigger: Trigger) -> Result<reload::Report, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let outcome = self.reload_now().await;
        let (error, level) = match &outcome {
            Ok(report) => {
                tracing::info!(?trigger, changed = %report.changes.summary(), "configuration reloaded");
                if !report.restart_required.is_empty() {
                    tracing::warn!(
                        sections = ?report.restart_required,
                        "changed in the config but only applied after a restart: the running values are kept"
                    );
                }
                (None, "ok")
            }
            Err(e) => {
                tracing::warn!(?trigger, "configuration reload failed, nothing changed: {e}");
                (Some(e.to_string()), "error")
            }
        };
        if let Ok(mut slot) = self.last_reload.lock() {
            *slot = Some(LastReload { at: crate::clock::now_unix(), trigger, outcome: level, error });
        }
        outcome
    }

    async fn reload_now(&self) -> Result<reload::Report, ReloadError> {
        let source = self.reload_source().ok_or(ReloadError::NoSource)?;
        let reader = source.clone();
        let read = tokio::task::spawn_blocking(move || reload::read(&reader))
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))??;
        let running = self.live.load_full();
        let (next, restart_required) = reload::merge(&running.config, read);
        let changes = reload::changes(&running.config, &next);
        let llm = Registry::new(&next, &*source.env, Some(self.circuit_changes.clone()), Some(&running.llm));
        self.live.store(Arc::new(Live::build(next, llm, &*source.env, Some(&running))));
        Ok(reload::Report { changes, restart_required })
    }

    pub fn deployer(&self) -> &Deployer {
        &self.deployer
    }

    pub fn usage(&self) -> &UsageRecorder {
        &self.usage
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Commit buffered usage, so that usage reports include every finished request.
    pub async fn flush_usage(&self) -> Result<(), crate::store::Error> {
        self.telemetry.flush_detached(&self.store);
        self.usage.flush(&self.store).await
    }

    /// Record that an API key authenticated a request; persisted at most once a minute per key.
    pub fn note_key_use(&self, key_id: &str, now: i64) {
        let due = match self.key_use.lock() {
            Ok(mut seen) => {
                let last = seen.get(key_id).copied().unwrap_or(i64::MIN);
                let due = now.saturating_sub(last) >= 60;
                if due {
                    seen.insert(key_id.to_string(), now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let key_id = key_id.to_string();
            self.store.write_detached(move |txn| crate::store::api_keys::touch(txn, &key_id, now));
        }
    }

    /// A RAG search, timed for `ares_rag_search_duration_seconds`. Blocking: call it from the
    /// blocking pool.
    pub fn search_rag(
        &self,
        request: &crate::rag::SearchRequest,
    ) -> Result<crate::rag::SearchOutcome, crate::rag::RagError> {
        let started = Instant::now();
        let outcome = self.rag.search(&self.store, request);
        self.telemetry.metrics.rag_search(request.strategy.as_str(), started.elapsed());
        outcome
    }

    pub fn budgets(&self) -> &Arc<BudgetMeter> {
        &self.budgets
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub fn failed_attempts(&self) -> &FailedAttempts {
        &self.failed_attempts
    }

    /// API keys as their last lookup found them (see `auth::key_cache`).
    pub fn key_cache(&self) -> &crate::auth::key_cache::KeyCache {
        &self.key_cache
    }

    /// Tenants' agents as their last lookup found them (see `agents::resolve::TenantAgentCache`).
    pub fn tenant_agent_cache(&self) -> &crate::agents::resolve::TenantAgentCache {
        &self.tenant_agent_cache
    }

    /// Rendered pages of `GET /v1/agents` (see `api::v1::agents::AgentPages`).
    pub fn agent_pages(&self) -> &crate::api::v1::agents::AgentPages {
        &self.agent_pages
    }

    pub fn cors(&self) -> &CorsPolicy {
        &self.cors
    }

    pub fn console(&self) -> &crate::console::Console {
        &self.console
    }

    pub fn rate_limiter(&self) -> Option<&IpRateLimiter> {
        self.rate_limiter.as_ref()
    }

    /// Recorded by `ares::run` once the listener is bound.
    pub fn bound_addr(&self) -> Option<SocketAddr> {
        self.bound_addr.get().copied()
    }

    pub(crate) fn set_bound_addr(&self, addr: SocketAddr) {
        let _ = self.bound_addr.set(addr);
    }

    /// Unix seconds when the app was built.
    pub fn started_unix(&self) -> i64 {
        self.started_unix
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started_at.elapsed().as_secs()
    }
}

/// Circuits that open or close are written to the audit log (queued: the request that tipped
/// the circuit does not wait for it).
/// A warning at 80 % and a critical alert at 100 % of a budget, once per period (like quotas').
fn alert_budget_crossings(store: &Arc<Store>) -> crate::metering::budget::Crossings {
    let store = store.clone();
    Arc::new(move |crossing: crate::metering::budget::BudgetCrossing| {
        use crate::metering::cost::usd_cents;
        let (severity, verb) =
            if crossing.percent >= 100 { ("critical", "reached") } else { ("warning", "is at 80% of") };
        let period = if crossing.period == "month" { "monthly" } else { "daily" };
        let alert = crate::store::alerts::AlertRecord {
            id: uuid::Uuid::now_v7().to_string(),
            severity: severity.into(),
            source: "budget".into(),
            title: format!("The {} {verb} its {period} budget", crossing.subject),
            message: format!(
                "The {} ({}) has spent ${} of its {period} budget of ${}.",
                crossing.subject,
                crossing.tenant_id,
                usd_cents(crossing.spent_micros),
                usd_cents(crossing.limit_micros)
            ),
            tenant_id: Some(crossing.tenant_id.clone()),
            resolved: false,
            created_at: crate::clock::now_unix(),
            resolved_at: None,
            resolved_by: None,
        };
        let key = format!(
            "budget:{}:{}:{}:{}:{}",
            crossing.tenant_id, crossing.subject, crossing.period, crossing.period_start, crossing.percent
        );
        store.write_detached(move |txn| crate::store::alerts::raise_once(txn, &key, &alert));
    })
}

fn audit_circuit_changes(store: &Arc<Store>) -> crate::llm::health::CircuitChanges {
    let store = store.clone();
    Arc::new(move |change: crate::llm::health::CircuitChange| {
        let details = serde_json::json!({
            "actor": "system",
            "provider": change.provider,
            "model_id": change.model_id,
            "consecutive_failures": change.consecutive_failures,
            "last_error": change.last_error,
        });
        let entry = crate::store::audit::AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            action: if change.opened { "open_circuit" } else { "close_circuit" }.to_string(),
            resource_type: "provider".to_string(),
            resource_id: Some(format!("{}/{}", change.provider, change.model_id)),
            details: Some(details.to_string()),
            admin_ip: None,
            created_at: crate::clock::now_unix(),
        };
        store.write_detached(move |txn| crate::store::audit::append(txn, &entry));
    })
}
