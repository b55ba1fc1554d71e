//! `GET /health`, `/health/detailed`, `/config/info` (API.md §1.1).

use http::StatusCode;
use serde_json::json;

use crate::api::Context;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Response, response};

/// Exactly `OK`, text/plain: load balancers and the reference's Hurl suite compare the body.
pub fn health() -> Response {
    response::text(StatusCode::OK, "OK")
}

/// Always 200; `status` is `degraded` when the database does not answer.
pub async fn detailed(ctx: &Context) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let database = match ctx.app.store().ping().await {
        Ok(()) => json!({ "status": "healthy" }),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database ping failed");
            json!({ "status": "unhealthy", "error": e.to_string() })
        }
    };
    let healthy = database["status"] == "healthy";
    let config = ctx.app.config();
    let body = json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "database": database },
        "providers": config.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        "agents": config.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        "latency_ms": started.elapsed().as_millis() as u64,
        "uptime_secs": ctx.app.uptime_secs(),
        "timestamp": clock::rfc3339_precise_now(),
        "config_reload": ctx.app.last_reload().map(|last| json!({
            "at": clock::rfc3339(last.at), "trigger": last.trigger, "outcome": last.outcome, "error": last.error,
        })),
    });
    Ok(response::json(StatusCode::OK, &body))
}

/// Names only, from the config; no secrets.
pub fn config_info(ctx: &Context) -> Response {
    let config = ctx.app.config();
    let mut models: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    for provider in &config.providers {
        models.extend(provider.models.iter().map(|m| m.name.as_deref().unwrap_or(&m.id)));
    }
    let tools: Vec<&str> = ["calculator", "web_search"]
        .into_iter()
        .filter(|name| config.tools.get(*name).is_none_or(|t| t.enabled))
        .collect();
    let body = json!({
        "server": {
            "host": config.server.host,
            "port": ctx.app.bound_addr().map_or(config.server.port.unwrap_or(crate::config::DEFAULT_PORT), |a| a.port()),
            "log_level": config.server.log_level,
        },
        "providers": config.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        "models": models,
        "agents": config.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        "tools": tools,
        "workflows": config.workflows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        // The reference says whether its UI was compiled in; the console always is (`GET /`).
        "ui_enabled": true,
    });
    response::json(StatusCode::OK, &body)
}
