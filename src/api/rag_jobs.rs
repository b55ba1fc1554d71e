//! Asynchronous ingest: `POST /api/rag/ingest` with `"async": true` (or a document above
//! `[rag].async_above_bytes`) answers 202 with a job; `GET /api/rag/jobs/{id}` shows its
//! progress and `DELETE /api/rag/jobs/{id}` cancels it.
//!
//! The job is a redb record holding the document until it ends, so a job the server was
//! running or had queued when it stopped is run again at the next start (`resume`): the
//! batches it had written were rolled back at start-up like any interrupted ingest, and it
//! starts over from the stored text. Progress is written as each batch commits; the final state
//! is written durably.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use crate::api::Context;
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Response, response};
use crate::rag::chunking::Strategy;
use crate::rag::{IngestRequest, RagError};
use crate::store::rag_jobs::{self, JobDocument, JobState, RagJobRecord};

/// How long a cancel waits for a running job to stop (it stops between two batches).
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// Store the job and start it; answers 202 with its id.
pub(crate) async fn submit(
    ctx: &Context,
    collection: String,
    content: String,
    strategy: Strategy,
    metadata: Map<String, Value>,
) -> Result<Response, ApiError> {
    let now = clock::now_unix();
    let job = RagJobRecord {
        id: uuid::Uuid::new_v4().to_string(),
        owner: ctx.owner_id()?,
        collection: collection.clone(),
        state: JobState::Queued,
        chunks_total: 0,
        chunks_embedded: 0,
        error: None,
        chunk_ids: Vec::new(),
        document: Some(JobDocument {
            content,
            strategy: strategy.as_str().to_string(),
            metadata_json: Value::Object(metadata).to_string(),
        }),
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    let id = job.id.clone();
    let stored = Arc::new(job);
    ctx.app.store().write(move |txn| rag_jobs::put(txn, &stored)).await?;
    start(ctx.app.clone(), id.clone());
    let mut answer =
        response::json(StatusCode::ACCEPTED, &json!({ "job_id": id, "status": "queued", "collection": collection }));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/rag/jobs/{id}")) {
        answer.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(answer)
}

/// Run again the jobs that were queued or running when the server stopped.
pub fn resume(app: &Arc<App>) {
    match app.store().read_now(rag_jobs::unfinished) {
        Ok(jobs) => {
            if !jobs.is_empty() {
                tracing::info!(jobs = jobs.len(), "resuming RAG ingest jobs interrupted by a stop");
            }
            for job in jobs {
                start(app.clone(), job.id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read RAG ingest jobs to resume"),
    }
}

pub async fn get(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let job = owned(ctx, id).await?;
    Ok(response::json(StatusCode::OK, &view(&job)))
}

/// Cancel a queued or running job: a queued one at once, a running one between two batches
/// (what it wrote is rolled back). Answers the state it ended in.
pub async fn cancel(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let job = owned(ctx, id).await?;
    if job.state.is_final() {
        return Err(ApiError::Conflict(format!("Job {id} has already {}", ended(job.state))));
    }
    // A queued job is cancelled in the store (its runner then skips it); a running one is told.
    let key = id.to_string();
    let cancelled_queued = ctx
        .app
        .store()
        .write(move |txn| {
            let mut changed = false;
            rag_jobs::update(txn, &key, |job| {
                if job.state == JobState::Queued {
                    finish(job, JobState::Cancelled, None);
                    changed = true;
                }
            })?;
            Ok(changed)
        })
        .await?;
    if !cancelled_queued {
        ctx.app.ingest_jobs().cancel(id);
    }
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    loop {
        let job = owned(ctx, id).await?;
        if job.state.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(response::json(StatusCode::OK, &json!({ "id": job.id, "state": job.state.as_str() })));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The caller's job; another owner's is as unknown as a missing one.
async fn owned(ctx: &Context, id: &str) -> Result<RagJobRecord, ApiError> {
    let owner = ctx.owner_id()?;
    let key = id.to_string();
    let job = ctx.app.store().read(move |txn| rag_jobs::get(txn, &key)).await?;
    job.filter(|job| job.owner == owner).ok_or_else(|| ApiError::NotFound(format!("Job {id} not found")))
}

fn ended(state: JobState) -> &'static str {
    match state {
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        _ => "been cancelled",
    }
}

fn view(job: &RagJobRecord) -> Value {
    json!({
        "id": job.id,
        "collection": job.collection,
        "state": job.state.as_str(),
        "chunks_embedded": job.chunks_embedded,
        "chunks_total": job.chunks_total,
        "error": job.error,
        "document_ids": job.chunk_ids,
        "chunks_created": job.chunk_ids.len(),
        "created_at": clock::rfc3339(job.created_at),
        "updated_at": clock::rfc3339(job.updated_at),
        "finished_at": job.finished_at.map(clock::rfc3339),
    })
}

fn finish(job: &mut RagJobRecord, state: JobState, error: Option<String>) {
    let now = clock::now_unix();
    job.state = state;
    job.error = error;
    job.document = None;
    job.updated_at = now;
    job.finished_at = Some(now);
}

/// Queue the job: it runs when the one before it is done.
fn start(app: Arc<App>, id: String) {
    let flag = app.ingest_jobs().track(&id);
    tokio::spawn(async move {
        let turn = app.ingest_jobs().turn();
        let permit = turn.acquire_owned().await;
        if let Err(e) = run(&app, &id, flag).await {
            tracing::warn!(job = %id, error = %e, "RAG ingest job could not record its outcome");
        }
        drop(permit);
        app.ingest_jobs().untrack(&id);
    });
}

async fn run(app: &Arc<App>, id: &str, cancelled: Arc<AtomicBool>) -> Result<(), ApiError> {
    // Queued → running, unless it was cancelled (or has ended) meanwhile.
    let key = id.to_string();
    let job = app
        .store()
        .write(move |txn| {
            let mut started = None;
            rag_jobs::update(txn, &key, |job| {
                if !job.state.is_final() {
                    job.state = JobState::Running;
                    job.chunks_embedded = 0;
                    job.updated_at = clock::now_unix();
                    started = Some(job.clone());
                }
            })?;
            Ok(started)
        })
        .await?;
    let Some(job) = job else { return Ok(()) };
    let Some(document) = job.document.clone() else { return Ok(()) };
    let request = IngestRequest {
        user_id: job.owner.clone(),
        collection: job.collection.clone(),
        content: document.content,
        strategy: Strategy::parse(&document.strategy).unwrap_or(Strategy::Word),
        metadata: serde_json::from_str(&document.metadata_json).unwrap_or_default(),
    };
    let worker = app.clone();
    let key = id.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let progress = |done: usize, total: usize| {
            let key = key.clone();
            worker.store().write_detached(move |txn| {
                rag_jobs::update(txn, &key, |job| {
                    job.chunks_embedded = done as u64;
                    job.chunks_total = total as u64;
                    job.updated_at = clock::now_unix();
                })
            });
            !cancelled.load(Ordering::Acquire)
        };
        worker.rag().ingest_watched(worker.store(), request, &progress)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("RAG job task failed: {e}")))?;
    let key = id.to_string();
    let outcome = Arc::new(outcome);
    app.store()
        .write(move |txn| {
            rag_jobs::update(txn, &key, |job| match outcome.as_ref() {
                Ok(done) => {
                    job.chunk_ids = done.chunk_ids.clone();
                    job.chunks_embedded = done.chunk_ids.len() as u64;
                    job.chunks_total = done.chunk_ids.len() as u64;
                    finish(job, JobState::Completed, None);
                }
                Err(RagError::Cancelled) => finish(job, JobState::Cancelled, None),
                Err(e) => finish(job, JobState::Failed, Some(e.to_string())),
            })
        })
        .await?;
    Ok(())
}
