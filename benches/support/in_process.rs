//! The benchmarks' ARES: the library served in-process on a loopback port with bench secrets,
//! and a tenant provisioned on it.

use std::sync::Arc;

pub const ADMIN_SECRET: &str = "bench-admin";

/// A running server; [`Server::stop`] shuts it down gracefully.
pub struct Server {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Held for the server's life: its data directory.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serve `config` (TOML) from a fresh data directory.
    pub async fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("a temp dir");
        let env = |name: &str| match name {
            "ADMIN_API_KEY" => Some(ADMIN_SECRET.to_string()),
            "JWT_SECRET" => Some("bench-jwt-secret-bench-jwt-secret-0123".to_string()),
            _ => None,
        };
        let loaded = ares::config::load_str(config, "bench.toml", &env).expect("a valid bench config");
        let built = ares::build_app(loaded.config, dir.path(), &env).expect("the app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("a local address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ares::run(listener, Arc::new(built.app), async {
            let _ = stopped.await;
        }));
        Server { base, stop, task, _dir: dir }
    }

    /// Provision a tenant on `tier` (product type `product_type`) and return its raw API key.
    pub async fn provision(&self, client: &reqwest::Client, tier: &str, product_type: &str) -> String {
        let provisioned: serde_json::Value = client
            .post(format!("{}/api/admin/provision-client", self.base))
            .header("x-admin-secret", ADMIN_SECRET)
            .json(&serde_json::json!({ "name": "bench", "tier": tier, "product_type": product_type, "api_key_name": "bench" }))
            .send()
            .await
            .expect("provisioning answers")
            .json()
            .await
            .expect("provisioning answers JSON");
        provisioned["raw_api_key"].as_str().expect("a raw API key").to_string()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
