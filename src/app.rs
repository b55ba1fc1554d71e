//! `App`: every long-lived service of a running server, built once from the config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::auth::admin::AdminSecret;
use crate::auth::secrets::Secrets;
use crate::config::Config;
use crate::http::cors::CorsPolicy;
use crate::http::rate_limit::IpRateLimiter;
use crate::store::Store;

pub struct App {
    config: Config,
    data_dir: PathBuf,
    store: Store,
    admin_secret: AdminSecret,
    /// Signing key for access tokens; consumed by the identity layer.
    jwt_secret: String,
    cors: CorsPolicy,
    /// `None` when `[server].rate_limit_per_second = 0`.
    rate_limiter: Option<IpRateLimiter>,
    started_at: Instant,
    /// The address actually bound (the configured port may be 0 or overridden by `PORT`).
    bound_addr: OnceLock<SocketAddr>,
}

impl App {
    /// Assemble the services. The store must already be open (and migrated).
    pub fn new(config: Config, data_dir: &Path, store: Store, secrets: &Secrets) -> App {
        let cors = CorsPolicy::new(&config.server.cors_origins);
        let rate_limiter = IpRateLimiter::new(config.server.rate_limit_per_second, config.server.rate_limit_burst);
        App {
            data_dir: data_dir.to_path_buf(),
            store,
            admin_secret: AdminSecret::new(&secrets.admin_secret),
            jwt_secret: secrets.jwt_secret.clone(),
            cors,
            rate_limiter,
            started_at: Instant::now(),
            bound_addr: OnceLock::new(),
            config,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
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

    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    pub fn cors(&self) -> &CorsPolicy {
        &self.cors
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

    pub fn uptime_secs(&self) -> u64 {
        self.started_at.elapsed().as_secs()
    }
}
