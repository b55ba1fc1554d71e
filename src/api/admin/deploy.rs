//! Deployments and services for the operator (API.md §8, plus events, cancel and delete).

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Context;
use crate::api::context::query;
use crate::clock;
use crate::deploy::{DeployEvent, Deployer, services};
use crate::error::ApiError;
use crate::http::{Request, Response, response, sse};
use crate::store::audit;
use crate::store::deploys::{self, DeployRecord};

/// Deploys listed by `GET /api/admin/deploys`.
const RECENT: usize = 20;

#[derive(Deserialize)]
struct DeployBody {
    target: String,
}

fn view(record: &DeployRecord) -> Value {
    json!({
        "id": record.id,
        "target": record.target,
        "status": record.status,
        "started_at": clock::rfc3339(record.started_at),
        "finished_at": record.finished_at.map(clock::rfc3339),
        "output": record.output,
        "exit_code": record.exit_code,
        "note": record.note,
    })
}

pub async fn start(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: DeployBody = ctx.json(request).await?;
    let record = Deployer::start(&ctx.app, &body.target).await?;
    let entry = super::audit::entry(ctx, "trigger_deploy", "deploy", &record.id, json!({ "target": record.target }));
    ctx.app.store().write(move |txn| audit::append(txn, &entry)).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "id": record.id, "status": "running", "message": format!("Deployment started for {}", record.target), "target": record.target }),
    ))
}

/// The record as of now: live output for a running deploy, the stored one otherwise.
async fn current(ctx: &Context, id: &str) -> Result<DeployRecord, ApiError> {
    if let Some(running) = ctx.app.deployer().running(id) {
        return Ok(running.snapshot().0);
    }
    let key = id.to_string();
    ctx.app.store().read(move |txn| deploys::get(txn, &key)).await?.ok_or_else(|| deploys::not_found(id).into())
}

pub async fn get(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    Ok(response::json(StatusCode::OK, &view(&current(ctx, id).await?)))
}

pub async fn list(ctx: &Context) -> Result<Response, ApiError> {
    let records = ctx.app.store().read(|txn| deploys::recent(txn, RECENT)).await?;
    let items: Vec<Value> = records
        .into_iter()
        .map(|r| match ctx.app.deployer().running(&r.id) {
            Some(running) => view(&running.snapshot().0),
            None => view(&r),
        })
        .collect();
    // The targets a deploy may name, so a client (the console) can offer them: what each
    // runs stays in the config, which only an operator reads.
    let targets: Vec<Value> = ctx
        .app
        .config()
        .deploy
        .targets
        .iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "timeout_secs": t.timeout_secs }))
        .collect();
    Ok(response::json(StatusCode::OK, &json!({ "deploys": items, "targets": targets })))
}

/// SSE: a `state` event with the record so far, then `output` lines and a final `status`
/// event; a finished deploy gets its state and final status at once.
pub async fn events(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let running = ctx.app.deployer().running(id);
    // Subscribe before the snapshot so no line falls between them; lines already in the
    // snapshot are skipped by sequence number.
    let subscription = running.as_ref().map(|r| r.subscribe());
    // Ended between the lookup and the subscription: its `Finished` may be gone, so serve it
    // as finished.
    let finished = running.as_ref().and_then(|r| r.finished_record());
    let subscription = if finished.is_some() { None } else { subscription };
    let (snapshot, seen) = match (&running, finished) {
        (_, Some(record)) => (record, 0),
        (Some(r), None) => r.snapshot(),
        (None, None) => (current(ctx, id).await?, 0),
    };
    let producer = sse::Producer::new(|outbox| async move {
        let state = json!({ "id": snapshot.id, "target": snapshot.target, "status": snapshot.status, "output": snapshot.output });
        if !outbox.send(sse::named("state", &state.to_string())).await {
            return;
        }
        let Some(mut events) = subscription else {
            outbox.send(sse::named("status", &view(&snapshot).to_string())).await;
            return;
        };
        loop {
            match events.recv().await {
                Ok(DeployEvent::Output { seq, line }) if seq > seen => {
                    if !outbox.send(sse::named("output", &line)).await {
                        return;
                    }
                }
                Ok(DeployEvent::Output { .. }) => {}
                Ok(DeployEvent::Finished(record)) => {
                    outbox.send(sse::named("status", &view(&record).to_string())).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let note = format!("[{missed} output lines skipped: the client fell behind]");
                    if !outbox.send(sse::named("output", &note)).await {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(sse::response(producer, sse::keep_alive(), &[]))
}

pub async fn cancel(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let Some(record) = ctx.app.deployer().cancel(id).await else {
        // Not running: unknown (404) or already finished (409).
        let existing = current(ctx, id).await?;
        return Err(ApiError::Conflict(format!(
            "Deploy '{}' is not running (status: {})",
            existing.id, existing.status
        )));
    };
    // A deploy that finished on its own just as the cancel arrived was not cancelled.
    if record.note.as_deref() == Some("cancelled") {
        let entry = super::audit::entry(ctx, "cancel_deploy", "deploy", id, json!({ "target": record.target }));
        ctx.app.store().write(move |txn| audit::append(txn, &entry)).await?;
    }
    Ok(response::json(StatusCode::OK, &view(&record)))
}

pub async fn delete(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    if ctx.app.deployer().running(id).is_some() {
        return Err(ApiError::Conflict(format!("Deploy '{id}' is still running; cancel it first")));
    }
    let entry = super::audit::entry(ctx, "delete_deploy", "deploy", id, json!({}));
    let key = id.to_string();
    ctx.app
        .store()
        .write(move |txn| {
            deploys::delete(txn, &key)?;
            audit::append(txn, &entry)
        })
        .await?;
    Ok(response::no_content())
}

pub async fn services(ctx: &Context) -> Result<Response, ApiError> {
    let own_port = ctx.app.bound_addr().map(|a| a.port());
    let mut out = BTreeMap::new();
    for service in &ctx.app.config().services {
        out.insert(service.name.clone(), services::status(service, own_port).await);
    }
    // The server itself is always a service, unless an operator configured one of that name.
    out.entry(OWN_SERVICE.to_string()).or_insert_with(|| {
        json!({
            "status": "running", "pid": std::process::id(), "port": own_port,
            "uptime_secs": ctx.app.uptime_secs(), "version": env!("CARGO_PKG_VERSION"),
            "unit": services::own_unit(),
        })
    });
    Ok(response::json(StatusCode::OK, &out))
}

/// The name the server answers to in `/api/admin/services`.
const OWN_SERVICE: &str = "ares";

#[derive(Default, Deserialize)]
struct LogsQuery {
    lines: Option<usize>,
}

pub async fn logs(ctx: &Context, name: &str, request: &Request) -> Result<Response, ApiError> {
    let config = ctx.app.config();
    let Some(service) = config.services.iter().find(|s| s.name == name) else {
        if name != OWN_SERVICE {
            return Err(ApiError::NotFound(format!("Unknown service: {name}")));
        }
        // The server's own lines, from the ring `ares serve` keeps.
        let wanted = query::<LogsQuery>(request)?.lines.unwrap_or(services::LOG_LINES);
        let lines = crate::logs::recent(wanted.clamp(1, config.observability.log_buffer_lines));
        return Ok(response::json(StatusCode::OK, &json!({ "service": name, "lines": lines })));
    };
    let lines = services::logs(service).await.map_err(|e| match e {
        services::LogError::NoSource(_) => ApiError::NotFound(e.to_string()),
        services::LogError::Read(_) => ApiError::Internal(e.to_string()),
    })?;
    Ok(response::json(StatusCode::OK, &json!({ "service": name, "lines": lines })))
}
