//! Asynchronous RAG ingest jobs: `POST /api/rag/ingest` with `"async": true` (or a `content`
//! over `[rag].async_above_bytes`) answers 202 with a job; `GET /api/rag/jobs/{id}` reports its
//! state and progress (owner only), `DELETE /api/rag/jobs/{id}` cancels it (409 once it has
//! ended). Progress and cancellation are observed against a slow remote embedder (a local
//! Ollama-style `/api/embed` that sleeps before each answer), and jobs interrupted by a SIGKILL
//! or a clean stop of the real binary run again after the restart.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::harness::{BinaryServer, StubResponse, StubServer, TestServer, expect_error, expect_json, header};
use crate::mock_provider::{MOCK_EMBEDDING_DIMENSIONS, mock_embedding};
use crate::rag::{RagApi, ids};

// ---------------------------------------------------------------- a slow embedder

/// An Ollama-style embedder (`POST /api/embed`, the mock provider's bag-of-words vectors) that
/// sleeps `delay` before every answer, so an ingest job takes seconds and its progress can be
/// watched. The delay can be changed while it runs; it outlives the servers that use it.
struct SlowEmbedder {
    server: StubServer,
    delay_ms: Arc<AtomicU64>,
    calls: Arc<AtomicUsize>,
}

impl SlowEmbedder {
    fn start(delay: Duration) -> SlowEmbedder {
        let delay_ms = Arc::new(AtomicU64::new(delay.as_millis() as u64));
        let calls = Arc::new(AtomicUsize::new(0));
        let (delay, count) = (delay_ms.clone(), calls.clone());
        let server = StubServer::start(move |request| answer_embed(request, delay.clone(), count.clone()));
        SlowEmbedder { server, delay_ms, calls }
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Embedding calls received so far.
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// `[rag]` with 5-word chunks and this embedder, batches of [`BATCH`].
    fn config(&self, extra_rag: &str) -> String {
        format!(
            "[rag]\nchunk_size = 5\nchunk_overlap = 0\n{extra_rag}\n[rag.embedder]\ntype = \"ollama\"\n\
             base_url = \"http://{}\"\nmodel = \"slow-embed\"\nbatch_size = {BATCH}\n",
            self.server.addr()
        )
    }
}

async fn answer_embed(
    request: http::Request<Incoming>,
    delay_ms: Arc<AtomicU64>,
    calls: Arc<AtomicUsize>,
) -> StubResponse {
    let path = request.uri().path().to_string();
    let bytes = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let respond = |status: u16, value: Value| {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(value.to_string())))
            .expect("a response")
    };
    if path != "/api/embed" {
        return respond(404, json!({ "error": format!("slow embedder: no route {path}") }));
    }
    calls.fetch_add(1, Ordering::SeqCst);
    let delay = delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let texts: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or_default().to_string()).collect(),
        _ => Vec::new(),
    };
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| mock_embedding(t, MOCK_EMBEDDING_DIMENSIONS)).collect();
    respond(200, json!({ "model": body["model"], "embeddings": vectors }))
}

// ---------------------------------------------------------------- helpers

/// Chunks per embedding batch (the spec's batch size; the embedder is configured to match).
const BATCH: u64 = 64;
/// How often a job is polled, and how long before a test gives up on it.
const POLL: Duration = Duration::from_millis(50);
const GIVE_UP: Duration = Duration::from_secs(30);
const STATES: &[&str] = &["queued", "running", "completed", "failed", "cancelled"];

/// A document of exactly `chunks` 5-word chunks: chunk `k` is `marker w{5k+1} … w{5k+4}`, so
/// every chunk has the marker and four words of its own.
fn document(chunks: usize, marker: &str) -> String {
    (0..chunks * 5).map(|j| if j % 5 == 0 { marker.to_string() } else { format!("w{j}") }).collect::<Vec<_>>().join(" ")
}

fn is_final(state: &str) -> bool {
    matches!(state, "completed" | "failed" | "cancelled")
}

fn rfc3339(job: &Value, key: &str) -> time::OffsetDateTime {
    let text = job[key].as_str().unwrap_or_else(|| panic!("{key} is not a string: {job}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{key} is not RFC 3339 ({e}): {job}"))
}

/// The job routes against one server.
#[derive(Clone)]
struct Jobs {
    client: reqwest::Client,
    base: String,
}

impl Jobs {
    fn new(client: &reqwest::Client, base: &str) -> Jobs {
        Jobs { client: client.clone(), base: base.trim_end_matches('/').to_string() }
    }

    fn of(server: &TestServer) -> Jobs {
        Jobs::new(server.client(), &server.base_url())
    }

    fn url(&self, id: &str) -> String {
        format!("{}/api/rag/jobs/{id}", self.base)
    }

    async fn get(&self, token: &str, id: &str) -> reqwest::Response {
        self.client.get(self.url(id)).bearer_auth(token).send().await.unwrap()
    }

    async fn cancel(&self, token: &str, id: &str) -> reqwest::Response {
        self.client.delete(self.url(id)).bearer_auth(token).send().await.unwrap()
    }

    /// `GET`, asserting 200 and the documented shape.
    async fn status(&self, token: &str, id: &str) -> Value {
        let job = expect_json(self.get(token, id).await, 200).await;
        check_job(&job, id);
        job
    }

    /// Poll every [`POLL`] until `done(job)`; panics after [`GIVE_UP`], or when the job ends
    /// without `done` holding. Checks that progress never goes backwards while the job runs.
    async fn wait_until(&self, token: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.poll(token, id, what, true, done).await
    }

    /// [`Jobs::wait_until`]; `monotonic` false after a restart, where a resumed job first shows
    /// the progress it had made before the stop and then starts over from 0.
    async fn poll(&self, token: &str, id: &str, what: &str, monotonic: bool, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        let mut last_embedded = 0;
        let mut seen = Vec::new();
        loop {
            let job = self.status(token, id).await;
            let state = job["state"].as_str().unwrap().to_string();
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            if done(&job) {
                return job;
            }
            assert!(!is_final(&state), "job {id} ended ({seen:?}) before {what}: {job}");
            let embedded = job["chunks_embedded"].as_u64().unwrap();
            assert!(!monotonic || embedded >= last_embedded, "chunks_embedded went back from {last_embedded}: {job}");
            last_embedded = embedded;
            assert!(
                started.elapsed() < GIVE_UP,
                "gave up after {GIVE_UP:?} waiting for job {id} to reach {what}; states seen {seen:?}; last: {job}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Poll until the job is in a final state; returns it.
    async fn finished(&self, token: &str, id: &str) -> Value {
        self.wait_until(token, id, "a final state", |job| is_final(job["state"].as_str().unwrap())).await
    }

    /// [`Jobs::finished`] for a job resumed by a restart.
    async fn finished_after_restart(&self, token: &str, id: &str) -> Value {
        self.poll(token, id, "a final state", false, |job| is_final(job["state"].as_str().unwrap())).await
    }
}

/// The documented fields of `GET /api/rag/jobs/{id}` and their invariants.
fn check_job(job: &Value, id: &str) {
    for key in [
        "id",
        "collection",
        "state",
        "chunks_embedded",
        "chunks_total",
        "error",
        "document_ids",
        "chunks_created",
        "created_at",
        "updated_at",
        "finished_at",
    ] {
        assert!(job.get(key).is_some(), "job has no {key:?}: {job}");
    }
    assert_eq!(job["id"], id, "{job}");
    assert!(job["collection"].is_string(), "{job}");
    let state = job["state"].as_str().unwrap_or_else(|| panic!("state is not a string: {job}"));
    assert!(STATES.contains(&state), "unknown state {state:?}: {job}");
    let total = job["chunks_total"].as_u64().unwrap_or_else(|| panic!("chunks_total: {job}"));
    let embedded = job["chunks_embedded"].as_u64().unwrap_or_else(|| panic!("chunks_embedded: {job}"));
    assert!(embedded <= total, "more chunks embedded than there are: {job}");
    if state == "queued" {
        assert_eq!((total, embedded), (0, 0), "a queued job has not been chunked yet: {job}");
    }
    if state == "failed" {
        assert!(job["error"].as_str().is_some_and(|e| !e.is_empty()), "a failed job says why: {job}");
    } else {
        assert!(job["error"].is_null(), "error is null unless the job failed: {job}");
    }
    assert!(job["document_ids"].is_array(), "{job}");
    let created = rfc3339(job, "created_at");
    let updated = rfc3339(job, "updated_at");
    assert!(created <= updated, "updated before created: {job}");
    if is_final(state) {
        let finished = rfc3339(job, "finished_at");
        assert!(created <= finished, "finished before created: {job}");
    } else {
        assert!(job["finished_at"].is_null(), "finished_at is null until the job ends: {job}");
    }
}

/// A completed job's chunk ids, checked against its counters: every chunk embedded and
/// created, `chunks` of them (when given), no id twice.
fn completed_ids(job: &Value, chunks: Option<u64>) -> Vec<String> {
    assert_eq!(job["state"], "completed", "{job}");
    let ids: Vec<String> = job["document_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("chunk ids are strings: {job}")).to_string())
        .collect();
    let total = job["chunks_total"].as_u64().unwrap();
    assert!(total > 0, "{job}");
    assert_eq!(job["chunks_embedded"].as_u64(), Some(total), "{job}");
    assert_eq!(job["chunks_created"].as_u64(), Some(total), "{job}");
    assert_eq!(ids.len() as u64, total, "{job}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "chunk ids repeat: {job}");
    if let Some(chunks) = chunks {
        assert_eq!(total, chunks, "{job}");
    }
    ids
}

/// Post an ingest expected to become a job: 202, `{"job_id", "status": "queued", "collection"}`
/// and `Location: /api/rag/jobs/<id>`. Returns the id.
async fn submit(api: &RagApi, token: &str, body: &Value) -> String {
    let response = api.ingest(token, body).await;
    let location = header(&response, "location");
    let accepted = expect_json(response, 202).await;
    let id = accepted["job_id"].as_str().unwrap_or_else(|| panic!("no job_id: {accepted}")).to_string();
    assert!(!id.is_empty(), "{accepted}");
    assert_eq!(accepted["status"], "queued", "{accepted}");
    assert_eq!(accepted["collection"], body["collection"].as_str().unwrap().trim(), "{accepted}");
    assert_eq!(location.as_deref(), Some(format!("/api/rag/jobs/{id}").as_str()), "{accepted}");
    id
}

/// BM25 search of `collection` for `query`: the results, or none when the collection does not
/// exist (404).
async fn bm25_or_missing(api: &RagApi, token: &str, collection: &str, query: &str) -> Vec<Value> {
    let body = json!({ "collection": collection, "query": query, "strategy": "bm25", "top_k": 100 });
    let response = api.search(token, &body).await;
    if response.status() == 404 {
        expect_error(response, 404, "NOT_FOUND").await;
        return Vec::new();
    }
    expect_json(response, 200).await.as_array().unwrap().clone()
}

async fn chunk_count(api: &RagApi, token: &str, collection: &str) -> Option<u64> {
    let listed = api.collections(token).await;
    listed.iter().find(|c| c["name"] == collection).map(|c| c["chunk_count"].as_u64().unwrap())
}

// ---------------------------------------------------------------- a small job

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_ingest_answers_202_and_its_job_completes_with_searchable_chunks() {
    let server = TestServer::builder().config("[rag]\nchunk_size = 10\nchunk_overlap = 2\n").start();
    let (api, jobs) = (RagApi::of(&server), Jobs::of(&server));
    let token = api.user().await;
    let content = "The lighthouse keeper records every passing ship in a leather logbook. \
                   Storms are noted with the hour and the direction of the wind. \
                   The zephyrquill pen is kept in a drawer beside the lamp oil.";
    let body = json!({ "collection": "notes", "content": content, "title": "keeper", "async": true });
    let id = submit(&api, &token, &body).await;

    let job = jobs.finished(&token, &id).await;
    let chunk_ids = completed_ids(&job, None);
    assert_eq!(job["collection"], "notes", "{job}");

    // The same document ingested synchronously makes as many chunks.
    let sync = api.ingest_with(&token, &json!({ "collection": "compare", "content": content })).await;
    assert_eq!(job["chunks_created"], sync["chunks_created"], "{job} vs {sync}");

    // Searchable: the chunk with the rare word is one of the job's.
    // (The rare word is in two chunks: windows of 10 words overlap by 2.)
    let found = api.find(&token, "notes", "zephyrquill", "bm25", 5).await;
    assert_eq!(found.len(), 2, "{found:?}");
    for hit in &found {
        assert!(hit["content"].as_str().unwrap().contains("zephyrquill"), "{found:?}");
        assert_eq!(hit["metadata"]["title"], "keeper", "{found:?}");
        assert!(chunk_ids.contains(&hit["id"].as_str().unwrap().to_string()), "{found:?} vs {chunk_ids:?}");
    }
    let every = api.find(&token, "notes", "lighthouse storms zephyrquill", "hybrid", 100).await;
    assert!(ids(&every).iter().all(|id| chunk_ids.contains(id)), "{every:?}");
    assert_eq!(chunk_count(&api, &token, "notes").await, Some(chunk_ids.len() as u64));

    // The job still reads the same, and a finished job cannot be cancelled.
    let again = jobs.status(&token, &id).await;
    assert_eq!(again["state"], "completed", "{again}");
    assert_eq!(again["document_ids"], job["document_ids"], "{again}");
    expect_error(jobs.cancel(&token, &id).await, 409, "CONFLICT").await;
    assert_eq!(jobs.status(&token, &id).await["state"], "completed");
}

// ---------------------------------------------------------------- async_above_bytes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_over_async_above_bytes_is_always_a_job_and_small_content_stays_synchronous() {
    let server = TestServer::builder().config("[rag]\nasync_above_bytes = 1000\n").start();
    let (api, jobs) = (RagApi::of(&server), Jobs::of(&server));
    let token = api.user().await;

    // Over the threshold, without "async": a job.
    let big = format!("{} bigmarkerword", "The harbor master counts the boats at dawn. ".repeat(34));
    assert!(big.len() > 1000 && big.len() < 2000, "{}", big.len());
    let id = submit(&api, &token, &json!({ "collection": "big", "content": big })).await;
    let job = jobs.finished(&token, &id).await;
    let chunk_ids = completed_ids(&job, None);
    let found = api.find(&token, "big", "bigmarkerword", "bm25", 5).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(chunk_ids.contains(&found[0]["id"].as_str().unwrap().to_string()));

    // Even when the client asks for a synchronous ingest.
    let id = submit(&api, &token, &json!({ "collection": "big2", "content": big, "async": false })).await;
    completed_ids(&jobs.finished(&token, &id).await, Some(chunk_ids.len() as u64));

    // Small content without "async" (or with "async": false): the synchronous answer, as before.
    for body in [
        json!({ "collection": "small", "content": "A short note about the tide tables." }),
        json!({ "collection": "small", "content": "Another short note, about moorings.", "async": false }),
    ] {
        let response = api.ingest(&token, &body).await;
        assert!(header(&response, "location").is_none(), "a synchronous ingest has no Location");
        let ingested = expect_json(response, 200).await;
        let keys: HashSet<&str> = ingested.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["chunks_created", "document_ids", "collection"]), "{ingested}");
        assert_eq!(ingested["collection"], "small", "{ingested}");
        assert_eq!(ingested["chunks_created"], 1, "{ingested}");
        assert_eq!(ingested["document_ids"].as_array().unwrap().len(), 1, "{ingested}");
    }
    assert_eq!(api.find(&token, "small", "tide moorings", "bm25", 10).await.len(), 2);
}

// ---------------------------------------------------------------- progress and cancel

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_reports_progress_and_a_cancelled_one_leaves_nothing_behind() {
    const CHUNKS: u64 = 700; // 11 batches of 64
    let embedder = SlowEmbedder::start(Duration::from_millis(300));
    // Room for the seed chunk and the document once: the cancelled job must not hold any of it.
    let config = embedder.config(&format!("max_chunks_per_user = {}", CHUNKS + 1));
    let server = TestServer::builder().config(&config).start();
    let (api, jobs) = (RagApi::of(&server), Jobs::of(&server));
    let token = api.user().await;
    api.ingest_ok(&token, "docs", "seed chunk about anchors").await;

    let content = document(CHUNKS as usize, "cancelword");
    let calls_before = embedder.calls();
    let id = submit(&api, &token, &json!({ "collection": "docs", "content": content, "async": true })).await;
    let running = jobs
        .wait_until(&token, &id, "running with partial progress", |job| {
            let (embedded, total) = (job["chunks_embedded"].as_u64().unwrap(), job["chunks_total"].as_u64().unwrap());
            job["state"] == "running" && embedded > 0 && embedded < total
        })
        .await;
    assert_eq!(running["chunks_total"], CHUNKS, "{running}");
    assert_eq!(running["chunks_embedded"].as_u64().unwrap() % BATCH, 0, "progress moves a batch at a time: {running}");
    assert_eq!(running["collection"], "docs", "{running}");

    let cancelled = expect_json(jobs.cancel(&token, &id).await, 200).await;
    assert_eq!(cancelled["id"], id.as_str(), "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let job = jobs.finished(&token, &id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(job["error"].is_null(), "{job}");

    // It stopped: no more embedding calls once it has ended.
    let calls = embedder.calls();
    let job_calls = (calls - calls_before) as u64;
    assert!(job_calls < CHUNKS.div_ceil(BATCH), "the whole document was embedded ({job_calls} calls)");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(embedder.calls(), calls, "the cancelled job still calls the embedder");

    // None of its chunks are searchable; the seed chunk is.
    embedder.set_delay(Duration::ZERO);
    let found = bm25_or_missing(&api, &token, "docs", "cancelword w3456").await;
    assert!(found.is_empty(), "chunks of the cancelled job are searchable: {found:?}");
    for strategy in ["semantic", "hybrid", "fuzzy"] {
        let found = api.find(&token, "docs", "cancelword anchors", strategy, 100).await;
        assert!(
            found.iter().all(|r| !r["content"].as_str().unwrap().contains("cancelword")),
            "{strategy}: chunks of the cancelled job are searchable: {found:?}"
        );
        assert!(!found.is_empty(), "{strategy}: the seed chunk is still there");
    }
    assert_eq!(chunk_count(&api, &token, "docs").await, Some(1));

    // A second cancel: the job has ended.
    expect_error(jobs.cancel(&token, &id).await, 409, "CONFLICT").await;
    assert_eq!(jobs.status(&token, &id).await["state"], "cancelled");

    // Nor do its chunks count against the user's chunk limit: the whole document fits again,
    // and then not one chunk more.
    let ingested = api.ingest_with(&token, &json!({ "collection": "docs", "content": content })).await;
    assert_eq!(ingested["chunks_created"], CHUNKS, "{ingested}");
    let over = json!({ "collection": "docs", "content": "one more" });
    expect_error(api.ingest(&token, &over).await, 403, "FORBIDDEN").await;
    assert_eq!(chunk_count(&api, &token, "docs").await, Some(CHUNKS + 1));
}

// ---------------------------------------------------------------- isolation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_sees_or_cancels_a_job() {
    const CHUNKS: u64 = 200; // 4 batches
    let embedder = SlowEmbedder::start(Duration::from_millis(250));
    let server = TestServer::builder().config(&embedder.config("")).start();
    let (api, jobs) = (RagApi::of(&server), Jobs::of(&server));
    let (alice, bob) = (api.user().await, api.user().await);

    let content = document(CHUNKS as usize, "privateword");
    let id = submit(&api, &alice, &json!({ "collection": "mine", "content": content, "async": true })).await;

    // While it runs, and after it has completed, Bob gets 404 for both routes.
    expect_error(jobs.get(&bob, &id).await, 404, "NOT_FOUND").await;
    expect_error(jobs.cancel(&bob, &id).await, 404, "NOT_FOUND").await;
    let job = jobs.finished(&alice, &id).await;
    completed_ids(&job, Some(CHUNKS));
    expect_error(jobs.get(&bob, &id).await, 404, "NOT_FOUND").await;
    expect_error(jobs.cancel(&bob, &id).await, 404, "NOT_FOUND").await;

    // Unknown ids are 404 to everyone.
    let unknown = uuid::Uuid::new_v4().to_string();
    for token in [&alice, &bob] {
        expect_error(jobs.get(token, &unknown).await, 404, "NOT_FOUND").await;
        expect_error(jobs.cancel(token, &unknown).await, 404, "NOT_FOUND").await;
    }

    // Bob's cancel did nothing: Alice's chunks are all there.
    embedder.set_delay(Duration::ZERO);
    assert_eq!(chunk_count(&api, &alice, "mine").await, Some(CHUNKS));
    assert_eq!(api.find(&alice, "mine", "privateword", "bm25", 100).await.len(), 100);
    assert!(api.collections(&bob).await.is_empty());
}

// ---------------------------------------------------------------- restart

const SERVING: &str = ": serving";

fn start_binary(root: &Path, config: &str) -> BinaryServer {
    let server = BinaryServer::builder(root).config(config).start();
    server.wait_for_stderr(SERVING);
    server
}

/// The RAG and job clients of a server started by [`start_binary`].
fn clients_of(server: &BinaryServer) -> (RagApi, Jobs) {
    (RagApi::new(server.client(), &server.url("")), Jobs::new(server.client(), &server.url("")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_run_runs_again_after_the_restart_with_exactly_its_chunks() {
    const CHUNKS: u64 = 700;
    let embedder = SlowEmbedder::start(Duration::from_millis(400));
    let config = embedder.config("");
    let root = tempfile::tempdir().unwrap();
    let mut server = start_binary(root.path(), &config);
    let (api, jobs) = clients_of(&server);
    let token = api.user().await;
    api.ingest_ok(&token, "docs", "seed chunk about anchors").await;

    let content = document(CHUNKS as usize, "crashword");
    let id = submit(&api, &token, &json!({ "collection": "docs", "content": content, "async": true })).await;
    let running = jobs
        .wait_until(&token, &id, "running with at least a batch embedded", |job| {
            let (embedded, total) = (job["chunks_embedded"].as_u64().unwrap(), job["chunks_total"].as_u64().unwrap());
            job["state"] == "running" && embedded >= BATCH && embedded < total
        })
        .await;
    println!("killing the server at {running}");
    let status = server.kill();
    assert!(!status.success(), "{status:?}");

    embedder.set_delay(Duration::from_millis(20));
    let server = start_binary(root.path(), &config);
    let (api, jobs) = clients_of(&server);
    // Same secrets: the token still works.
    let job = jobs.finished_after_restart(&token, &id).await;
    let chunk_ids = completed_ids(&job, Some(CHUNKS));
    assert_eq!(job["created_at"], running["created_at"], "{job}");

    // Exactly the document's chunks (the partial ones from before the kill are gone), plus the seed.
    assert_eq!(chunk_count(&api, &token, "docs").await, Some(CHUNKS + 1));
    let found = api.find(&token, "docs", "w3456", "bm25", 10).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]["content"].as_str().unwrap().contains("w3456"));
    assert!(chunk_ids.contains(&found[0]["id"].as_str().unwrap().to_string()), "{found:?}");
    let found = api.find(&token, "docs", "crashword", "bm25", 100).await;
    assert_eq!(found.len(), 100);
    assert!(ids(&found).iter().all(|id| chunk_ids.contains(id)), "a chunk that is not the job's: {found:?}");
    let found = api.find(&token, "docs", "anchors", "bm25", 10).await;
    assert_eq!(found.len(), 1, "{found:?}");
    expect_error(jobs.cancel(&token, &id).await, 409, "CONFLICT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_running_or_queued_at_a_clean_stop_complete_after_the_restart() {
    const CHUNKS: [u64; 2] = [500, 300];
    let embedder = SlowEmbedder::start(Duration::from_millis(400));
    let config = embedder.config("");
    let root = tempfile::tempdir().unwrap();
    let mut server = start_binary(root.path(), &config);
    let (api, jobs) = clients_of(&server);
    let token = api.user().await;

    let mut submitted = Vec::new();
    for (i, chunks) in CHUNKS.into_iter().enumerate() {
        let body = json!({ "collection": format!("c{i}"), "content": document(chunks as usize, &format!("stopword{i}")),
                           "async": true });
        submitted.push(submit(&api, &token, &body).await);
    }
    jobs.wait_until(&token, &submitted[0], "running with partial progress", |job| {
        let (embedded, total) = (job["chunks_embedded"].as_u64().unwrap(), job["chunks_total"].as_u64().unwrap());
        job["state"] == "running" && embedded > 0 && embedded < total
    })
    .await;
    let second = jobs.status(&token, &submitted[1]).await;
    assert!(!is_final(second["state"].as_str().unwrap()), "the second job should not have ended yet: {second}");
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "a clean stop exits 0:\n{}", server.stderr());

    embedder.set_delay(Duration::from_millis(20));
    let server = start_binary(root.path(), &config);
    let (api, jobs) = clients_of(&server);
    for (i, (id, chunks)) in submitted.iter().zip(CHUNKS).enumerate() {
        let job = jobs.finished_after_restart(&token, id).await;
        let chunk_ids = completed_ids(&job, Some(chunks));
        let collection = format!("c{i}");
        assert_eq!(job["collection"], collection.as_str(), "{job}");
        assert_eq!(chunk_count(&api, &token, &collection).await, Some(chunks), "{collection}");
        let found = api.find(&token, &collection, &format!("stopword{i}"), "bm25", 100).await;
        assert_eq!(found.len(), 100, "{collection}");
        assert!(ids(&found).iter().all(|id| chunk_ids.contains(id)), "{collection}: {found:?}");
    }
}

// ---------------------------------------------------------------- a failing job

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_the_collection_limit_fails_with_the_reason() {
    let server = TestServer::builder().config("[rag]\nmax_collections_per_user = 1\n").start();
    let (api, jobs) = (RagApi::of(&server), Jobs::of(&server));
    let token = api.user().await;
    api.ingest_ok(&token, "first", "The only collection this user may own.").await;

    let body = json!({ "collection": "second", "content": "A document for a collection too many.", "async": true });
    let id = submit(&api, &token, &body).await;
    let job = jobs.finished(&token, &id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("collection limit"), "the error names the limit: {job}");
    assert!(
        job["document_ids"].as_array().unwrap().is_empty() && job["chunks_created"].as_u64().unwrap_or(0) == 0,
        "a failed job created nothing: {job}"
    );
    let listed = api.collections(&token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "first");
    expect_error(jobs.cancel(&token, &id).await, 409, "CONFLICT").await;

    // The same into the existing collection works as a job.
    let body = json!({ "collection": "first", "content": "A document for the existing collection.", "async": true });
    let id = submit(&api, &token, &body).await;
    completed_ids(&jobs.finished(&token, &id).await, Some(1));
}
