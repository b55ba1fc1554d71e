//! ARES, embedded: the ARES agent-platform API served from one binary with embedded storage.
//!
//! `build_app` turns a validated config and a data dir into an [`App`] (secrets resolved,
//! store opened and migrated); `run` serves it on a bound listener until shutdown. The `ares`
//! binary (src/main.rs, src/cli/) and the integration tests both start servers this way.

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod metering;
pub mod store;

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
    let secrets: Secrets = secrets::resolve(&config.auth, data_dir, env)?;
    let store = Store::open(&data_dir.join(store::DB_FILE), MigrationPolicy::Apply)?;
    let generated_admin_secret = match &secrets.admin_source {
        SecretSource::Generated(path) => Some((secrets.admin_secret.clone(), path.clone())),
        SecretSource::Env(_) | SecretSource::File(_) => None,
    };
    Ok(Built { app: App::new(config, data_dir, store, &secrets), generated_admin_secret })
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
    let result = http::serve(listener, app.clone(), shutdown).await;
    let closing = app.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || closing.store().close()).await {
        tracing::error!(error = %e, "closing the store failed");
    }
    result
}
