//! `ares serve`: load config, resolve secrets, open and migrate the store, bind, serve until
//! SIGINT/SIGTERM, drain, close the store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::{Failure, init_server_logging, load_config, process_env, report};
use crate::{GlobalArgs, ListenArgs};

/// Written while serving so other commands (and operators) can find the running server.
pub const SERVER_FILE: &str = "server.json";

pub fn run(global: &GlobalArgs, listen: &ListenArgs) -> Result<(), Failure> {
    let mut loaded = load_config(global)?;
    if let Some(host) = &listen.host {
        loaded.config.server.host = host.clone();
    }
    if let Some(port) = listen.port {
        loaded.config.server.port = Some(port);
    }
    init_server_logging(
        &loaded.config.server.log_level,
        &loaded.config.server.log_format,
        loaded.config.observability.log_buffer_lines,
    );
    report(&loaded);
    let port = loaded.config.effective_port(&process_env).map_err(Failure::usage)?;
    let host = loaded.config.server.host.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let data_dir = global.data_dir.clone();
        let config = loaded.config;
        let built = tokio::task::spawn_blocking(move || ares::build_app(config, &data_dir, &process_env))
            .await
            .map_err(|e| Failure::runtime(format!("start-up task failed: {e}")))??;
        // Shown before binding: a secret that is shown once must be shown even if the port turns
        // out to be taken (it is stored already, and the next start will not show it).
        if let Some((secret, path)) = &built.generated_admin_secret {
            println!("Generated an admin secret (shown once): {secret}");
            println!("  stored in {} (mode 0600); set ADMIN_API_KEY to use your own", path.display());
        }

        let backlog = built.app.config().server.max_connections;
        let listener = bind(&host, port, backlog)
            .await
            .map_err(|e| Failure::runtime(format!("cannot bind {host}:{port}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Failure::runtime(format!("cannot read bound address: {e}")))?;
        let server_file = global.data_dir.join(SERVER_FILE);
        write_server_file(&server_file, addr);

        println!("ares {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
        tracing::info!(%addr, data_dir = %global.data_dir.display(), "serving");
        let registration = match built.app.config().registration() {
            ares::config::Registration::Open => "open (anyone who can reach the server may register)",
            ares::config::Registration::Closed => "closed (the admin creates users with POST /api/admin/users)",
        };
        tracing::info!(registration, "user sign-up; set [auth].registration to choose");

        let app = Arc::new(built.app);
        app.enable_reload(ares::reload::Source {
            path: global.config.clone(),
            env: Arc::new(process_env),
            host: listen.host.clone(),
            port: listen.port,
        });
        tokio::spawn(reload_on_hangup(app.clone()));
        tokio::spawn(reload_on_change(app.clone()));
        let grace_secs = app.config().server.shutdown_grace_secs;
        let result = ares::run(listener, app, shutdown_signal(grace_secs, server_file.clone())).await;
        let _ = std::fs::remove_file(&server_file);
        result.map_err(|e| Failure::runtime(format!("server error: {e}")))?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// Bind with an accept backlog of `max_connections` (the kernel caps it at `somaxconn`):
/// tokio's default of 1,024 drops the SYNs of a larger burst of clients, which then retry
/// only a second later.
async fn bind(host: &str, port: u16, backlog: usize) -> std::io::Result<tokio::net::TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => return socket.listen(u32::try_from(backlog.max(1024)).unwrap_or(u32::MAX)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to bind")))
}

fn write_server_file(path: &Path, addr: SocketAddr) {
    let body = serde_json::json!({ "pid": std::process::id(), "addr": addr.to_string() });
    if let Err(e) = std::fs::write(path, body.to_string()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the server file");
    }
}

/// `SIGHUP` re-reads the config (a failure is logged and changes nothing).
async fn reload_on_hangup(app: Arc<ares::app::App>) {
    #[cfg(unix)]
    {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /api/admin/config/reload");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            let _ = app.reload(ares::reload::Trigger::Signal).await;
        }
    }
    #[cfg(not(unix))]
    drop(app);
}

/// How often `[config].hot_reload` looks at the config file and its directories.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// `[config].hot_reload`: reload when the config file or a file in its `config/*` directories
/// changes. An invalid change is logged and keeps the running configuration; it is not retried
/// until the files change again. The setting is read every tick, so a reload can turn watching
/// on or off; the files are fingerprinted every tick either way, so an edit made just as
/// watching starts is not missed.
async fn reload_on_change(app: Arc<ares::app::App>) {
    let Some(source) = app.reload_source() else { return };
    let mut seen = ares::reload::fingerprint(&source, &app.config());
    let mut was_watching = false;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let watching = app.config().config.hot_reload;
        if watching && !was_watching {
            tracing::info!("hot reload: watching the config file and its directories");
        }
        was_watching = watching;
        let now = ares::reload::fingerprint(&source, &app.config());
        if now != seen {
            seen = now;
            if watching {
                let _ = app.reload(ares::reload::Trigger::Watch).await;
            }
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM, saying that requests in flight are given up to the
/// grace period and that a second signal stops at once. The second exits the process there and
/// then (code 130, like an interrupted program): the database stays consistent, as after any
/// crash, and only requests still in flight are cut.
async fn shutdown_signal(grace_secs: u64, server_file: std::path::PathBuf) {
    let first = next_stop_signal().await;
    tracing::info!(
        "{first} received: finishing requests in flight (up to {grace_secs} s); send it again (Ctrl-C) to stop at once"
    );
    tokio::spawn(async move {
        let second = next_stop_signal().await;
        tracing::warn!("{second} received again: stopping now, without waiting for requests in flight");
        let _ = std::fs::remove_file(&server_file);
        std::process::exit(130);
    });
}

/// The next SIGINT or SIGTERM, by name.
async fn next_stop_signal() -> &'static str {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = interrupt => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
        "SIGINT"
    }
}
