//! RAG (API.md §1.8, C17–C20): `POST /api/rag/ingest`, `POST /api/rag/search`,
//! `GET /api/rag/collections`, `DELETE /api/rag/collection` on a real server — chunking
//! strategies and their aliases, per-chunk metadata, per-user collections, the four search
//! strategies with `top_k`/`limit`, hybrid fusion weights, reranking (built-in and a mock
//! `/rerank`), the hash/ollama/openai embedders with batching (mock embedding endpoints), the
//! embedder-mismatch 409, grounded chat with `sources`, request errors, and a 10 MB ingest that
//! does not hold up other requests. Crash, restart and `ares reindex` tests are in
//! `rag_durability.rs`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, PASSWORD};
use crate::harness::{TestServer, expect_error, expect_json};
use crate::mock_provider::{MockProvider, RecordedRequest, RerankStyle, Script, Wire};

// ---------------------------------------------------------------- helpers

/// The four RAG routes (and registration) against one server, by base URL, so the in-process
/// and the binary servers share them.
#[derive(Clone)]
pub struct RagApi {
    client: reqwest::Client,
    base: String,
}

impl RagApi {
    pub fn new(client: &reqwest::Client, base: &str) -> RagApi {
        RagApi { client: client.clone(), base: base.trim_end_matches('/').to_string() }
    }

    pub fn of(server: &TestServer) -> RagApi {
        RagApi::new(server.client(), &server.base_url())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Register a fresh user; returns its access token.
    pub async fn user(&self) -> String {
        let email = format!("rag-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self
            .client
            .post(self.url("/api/auth/register"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        expect_json(response, 200).await["access_token"].as_str().unwrap().to_string()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.try_post(path, token, body).await.unwrap()
    }

    /// `post` that hands back transport errors (a server that went away).
    pub async fn try_post(&self, path: &str, token: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await
    }

    pub async fn ingest(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post("/api/rag/ingest", token, body).await
    }

    /// Ingest `content` into `collection` with the default chunking, asserting 200.
    pub async fn ingest_ok(&self, token: &str, collection: &str, content: &str) -> Value {
        self.ingest_with(token, &json!({ "collection": collection, "content": content })).await
    }

    /// Ingest `body`, asserting 200 and the response's shape; returns it.
    pub async fn ingest_with(&self, token: &str, body: &Value) -> Value {
        let response = expect_json(self.ingest(token, body).await, 200).await;
        let ids = response["document_ids"].as_array().unwrap_or_else(|| panic!("no document_ids: {response}"));
        assert_eq!(response["chunks_created"].as_u64(), Some(ids.len() as u64), "{response}");
        assert_eq!(response["collection"], body["collection"].as_str().unwrap().trim(), "{response}");
        response
    }

    pub async fn search(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post("/api/rag/search", token, body).await
    }

    /// Search, asserting 200 and that every result has the documented fields.
    pub async fn search_ok(&self, token: &str, body: &Value) -> Vec<Value> {
        let results = expect_json(self.search(token, body).await, 200).await;
        let results = results.as_array().unwrap_or_else(|| panic!("search answers an array: {results}")).clone();
        for result in &results {
            assert!(result["id"].is_string(), "{result}");
            assert!(result["content"].is_string(), "{result}");
            assert!(result["score"].is_number(), "{result}");
            assert!(result["metadata"].is_object(), "{result}");
            assert_eq!(result["collection"], body["collection"].as_str().unwrap().trim(), "{result}");
        }
        results
    }

    /// `search_ok` with a strategy and `top_k`.
    pub async fn find(&self, token: &str, collection: &str, query: &str, strategy: &str, top_k: u64) -> Vec<Value> {
        let body = json!({ "collection": collection, "query": query, "strategy": strategy, "top_k": top_k });
        self.search_ok(token, &body).await
    }

    pub async fn collections(&self, token: &str) -> Vec<Value> {
        let response = self.client.get(self.url("/api/rag/collections")).bearer_auth(token).send().await.unwrap();
        expect_json(response, 200).await.as_array().unwrap().clone()
    }

    pub async fn delete(&self, token: &str, body: &Value) -> reqwest::Response {
        self.client.delete(self.url("/api/rag/collection")).bearer_auth(token).json(body).send().await.unwrap()
    }
}

/// The ids of search results, in order.
pub fn ids(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

/// The contents of search results, in order.
fn contents(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| r["content"].as_str().unwrap().to_string()).collect()
}

/// The chunk ids an ingest created.
pub fn chunk_ids(ingested: &Value) -> Vec<String> {
    ingested["document_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn rag_server(extra: &str) -> (TestServer, RagApi) {
    let server = TestServer::builder().config(extra).start();
    let api = RagApi::of(&server);
    (server, api)
}

/// Words `w0 w1 … w{n-1}`.
fn numbered_words(n: usize) -> String {
    (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------- 10 MB

/// A deterministic document of about `bytes` bytes: pseudo-random words from a fixed
/// vocabulary, `needle` as its last word.
fn big_document(bytes: usize, needle: &str) -> String {
    const VOCABULARY: &[&str] = &[
        "river", "mountain", "ledger", "quantum", "harbor", "signal", "orchard", "copper", "lantern", "meadow",
        "tundra", "cipher", "garnet", "velvet", "bramble", "falcon", "timber", "prism", "summit", "canyon",
    ];
    let mut text = String::with_capacity(bytes + 64);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    while text.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = VOCABULARY[(state % VOCABULARY.len() as u64) as usize];
        text.push_str(word);
        text.push_str(if state.is_multiple_of(11) { ".\n" } else { " " });
    }
    text.push_str(needle);
    text
}

/// Windows for the 10 MB document: big documents take big chunks. (With the default 200/50
/// the ingest works the same, only slower in a debug build: ~9,600 chunks instead of ~1,600.)
const BIG_CHUNK_SIZE: usize = 1000;
const BIG_CHUNK_OVERLAP: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_document_ingests_while_other_requests_are_answered() {
    // A synchronous ingest of it (above the default `async_above_bytes` it would be a job).
    let config = format!(
        "[rag]\nchunk_size = {BIG_CHUNK_SIZE}\nchunk_overlap = {BIG_CHUNK_OVERLAP}\nasync_above_bytes = 33554432\n"
    );
    let (server, api) = rag_server(&config);
    let token = api.user().await;
    api.ingest_ok(&token, "small", "The lighthouse keeper logs every passing ship.").await;

    let document = big_document(10 * 1024 * 1024, "zzyzxneedle");
    let words = document.split_whitespace().count();
    let step = BIG_CHUNK_SIZE - BIG_CHUNK_OVERLAP;
    let expected_chunks = 1 + (words - BIG_CHUNK_SIZE).div_ceil(step);

    // The harness client's 30 s guard is too tight for a debug build on a busy machine.
    let patient = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build().unwrap();
    let started = Instant::now();
    let ingest = {
        let api = RagApi::new(&patient, &server.base_url());
        let token = token.clone();
        tokio::spawn(async move {
            let body = json!({ "collection": "big", "content": document, "title": "ten megabytes" });
            let response = api.ingest(&token, &body).await;
            (expect_json(response, 200).await, started.elapsed())
        })
    };

    // Meanwhile: health checks and searches of another collection, one after the other.
    let (mut health, mut search) = (Vec::new(), Vec::new());
    while !ingest.is_finished() {
        let sent = Instant::now();
        let response = server.get("/health").send().await.unwrap();
        assert_eq!(response.status(), 200);
        health.push(sent.elapsed());
        let sent = Instant::now();
        let found = api.find(&token, "small", "lighthouse ships", "hybrid", 3).await;
        search.push(sent.elapsed());
        assert_eq!(found.len(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ingested, took) = ingest.await.unwrap();
    let max = |samples: &[Duration]| samples.iter().max().copied().unwrap_or_default();
    println!(
        "10 MB ingest: {} chunks in {took:?}; {} /health answered meanwhile (slowest {:?}), {} searches (slowest {:?})",
        ingested["chunks_created"],
        health.len(),
        max(&health),
        search.len(),
        max(&search)
    );
    assert_eq!(ingested["chunks_created"], expected_chunks);
    assert!(health.len() >= 5, "too few requests overlapped the ingest ({took:?})");
    // Generous bounds (a debug build on a busy 2-core machine): the point is "answered while
    // the ingest runs", not a latency target. A stalled server would take the whole ingest.
    assert!(max(&health) < Duration::from_millis(1000), "/health stalled: {health:?}");
    assert!(max(&search) < Duration::from_millis(2000), "search of another collection stalled: {search:?}");

    // The whole document is searchable, up to its last word.
    let found = api.find(&token, "big", "zzyzxneedle", "bm25", 5).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]["content"].as_str().unwrap().ends_with("zzyzxneedle"));
    assert_eq!(found[0]["metadata"]["chunk_index"], expected_chunks - 1);
    assert_eq!(found[0]["metadata"]["title"], "ten megabytes");
    let listed = api.collections(&token).await;
    let big = listed.iter().find(|c| c["name"] == "big").unwrap();
    assert_eq!(big["chunk_count"], expected_chunks);
}

// ---------------------------------------------------------------- ingest

/// Every chunk of a collection, by chunk index: a BM25 search for every word of `text` (each
/// chunk contains some), as many results as the route allows.
async fn all_chunks(api: &RagApi, token: &str, collection: &str, text: &str) -> Vec<Value> {
    let mut found = api.find(token, collection, text, "bm25", 100).await;
    found.sort_by_key(|r| r["metadata"]["chunk_index"].as_u64().unwrap());
    found
}

/// `Sentence <i> …` of exactly `len` chars, ending with a full stop.
fn sentence(i: usize, len: usize) -> String {
    let mut text = format!("Sentence {i} covers topic{i}");
    while text.len() + 7 < len {
        text.push_str(" filler");
    }
    while text.len() + 1 < len {
        text.push('z');
    }
    text.push('.');
    assert_eq!(text.len(), len);
    text
}

/// Check an ingest's chunks: ids `<uuid>_<i>` of one document, and `expected` contents in order.
async fn assert_chunks(api: &RagApi, token: &str, ingested: &Value, text: &str, expected: &[String], strategy: &str) {
    let collection = ingested["collection"].as_str().unwrap();
    let ids = chunk_ids(ingested);
    assert_eq!(ids.len(), expected.len(), "{strategy}: {ingested}");
    let document = ids[0].rsplit_once('_').unwrap().0.to_string();
    assert!(uuid::Uuid::parse_str(&document).is_ok(), "{ids:?}");
    let numbered: Vec<String> = (0..ids.len()).map(|i| format!("{document}_{i}")).collect();
    assert_eq!(ids, numbered);

    let chunks = all_chunks(api, token, collection, text).await;
    assert_eq!(contents(&chunks), expected, "{strategy}");
    assert_eq!(self::ids(&chunks), ids, "{strategy}");
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["metadata"]["chunking_strategy"], strategy, "{chunk}");
        assert_eq!(chunk["metadata"]["document_id"], document.as_str());
        assert_eq!(chunk["metadata"]["chunk_index"], i);
    }
}

#[tokio::test]
async fn each_chunking_strategy_and_alias_cuts_documents_as_configured() {
    let (_server, api) = rag_server("[rag]\nchunk_size = 10\nchunk_overlap = 3\n");
    let token = api.user().await;

    // word: windows of chunk_size words starting every chunk_size - chunk_overlap words.
    let text = numbered_words(24);
    let windows = [(0, 10), (7, 17), (14, 24)];
    let expected: Vec<String> =
        windows.iter().map(|(a, b)| (*a..*b).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")).collect();
    for (n, alias) in [None, Some("word"), Some("words"), Some("fixed"), Some(" WORD ")].into_iter().enumerate() {
        let collection = format!("word-{n}");
        let mut body = json!({ "collection": collection, "content": text });
        if let Some(alias) = alias {
            body["chunking_strategy"] = json!(alias);
        }
        let ingested = api.ingest_with(&token, &body).await;
        assert_chunks(&api, &token, &ingested, &text, &expected, "word").await;
    }

    // sentence: whole sentences gathered while the chunk stays within 500 chars.
    let sentences: Vec<String> = (1..=5).map(|i| sentence(i, 160)).collect();
    let text = sentences.join(" ");
    let expected = vec![sentences[..3].join(" "), sentences[3..].join(" ")];
    for alias in ["sentence", "sentences", "semantic", "Sentence"] {
        let body = json!({ "collection": format!("sentence-{alias}"), "content": text, "chunking_strategy": alias });
        let ingested = api.ingest_with(&token, &body).await;
        assert_chunks(&api, &token, &ingested, &text, &expected, "sentence").await;
    }

    // paragraph: blank-line separated; a short heading stays with the paragraph after it.
    let paragraphs: Vec<String> =
        (1..=3).map(|i| format!("{}\n{}", sentence(i * 10, 120), sentence(i * 10 + 1, 120))).collect();
    let text = format!("Heading\n\n{}", paragraphs.join("\n\n  \n"));
    let expected = vec![format!("Heading\n\n{}", paragraphs[0]), paragraphs[1].clone(), paragraphs[2].clone()];
    for alias in ["paragraph", "paragraphs"] {
        let body = json!({ "collection": format!("paragraph-{alias}"), "content": text, "chunking_strategy": alias });
        let ingested = api.ingest_with(&token, &body).await;
        assert_chunks(&api, &token, &ingested, &text, &expected, "paragraph").await;
    }

    // character: 500-char windows every 400 chars, trimmed.
    let mut text = String::new();
    for i in 0.. {
        if text.len() >= 1000 {
            break;
        }
        text.push_str(&format!("t{i:03} "));
    }
    let text = text[..1000].to_string();
    let expected: Vec<String> =
        [(0, 500), (400, 900), (800, 1000)].iter().map(|(a, b)| text[*a..*b].trim().to_string()).collect();
    for alias in ["character", "char", "chars"] {
        let body = json!({ "collection": format!("character-{alias}"), "content": text, "chunking_strategy": alias });
        let ingested = api.ingest_with(&token, &body).await;
        assert_chunks(&api, &token, &ingested, &text, &expected, "character").await;
    }

    // A short document is one chunk whatever the strategy.
    for strategy in ["word", "sentence", "paragraph", "character"] {
        let body = json!({ "collection": "short", "content": "  Just one line.  ", "chunking_strategy": strategy });
        let ingested = api.ingest_with(&token, &body).await;
        assert_eq!(ingested["chunks_created"], 1, "{strategy}");
    }
    let found = api.find(&token, "short", "line", "bm25", 10).await;
    assert_eq!(contents(&found), vec!["Just one line."; 4]);
}

fn rfc3339(value: &Value) -> time::OffsetDateTime {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[tokio::test]
async fn ingest_keeps_metadata_per_chunk_and_creates_collections_per_user_on_first_use() {
    let (_server, api) = rag_server("[rag]\nchunk_size = 10\nchunk_overlap = 3\n");
    let (alice, bob) = (api.user().await, api.user().await);
    assert!(api.collections(&alice).await.is_empty());

    let first = api
        .ingest_with(
            &alice,
            &json!({
                "collection": "manuals",
                "content": numbered_words(17),
                "metadata": { "author": "Ada", "version": 3, "nested": { "pages": [1, 2] } },
                "title": "Manual", "source": "manual.pdf", "tags": ["setup", "v3"],
            }),
        )
        .await;
    assert_eq!(first["chunks_created"], 2);
    let listed = api.collections(&alice).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "manuals");
    assert_eq!(listed[0]["chunk_count"], 2);
    assert_eq!(listed[0]["embedder"], "hash-v1:384");
    assert_eq!(listed[0]["dimensions"], 384);
    let created_at = rfc3339(&listed[0]["created_at"]);
    assert!((time::OffsetDateTime::now_utc() - created_at).whole_seconds().abs() < 60, "{created_at}");

    // A second document into the same collection: its own metadata, nothing merged. Metadata
    // given only inside `metadata` (the documented form) is kept as given.
    let second = api
        .ingest_with(
            &alice,
            &json!({
                "collection": "manuals",
                "content": "Appendix about zebras",
                "metadata": { "title": "Appendix", "source": "appendix.md", "tags": ["extra"], "lang": "en" },
            }),
        )
        .await;
    let chunks = api.find(&alice, "manuals", &format!("{} zebras", numbered_words(17)), "bm25", 100).await;
    assert_eq!(chunks.len(), 3);
    for chunk in &chunks {
        let metadata = &chunk["metadata"];
        let id = chunk["id"].as_str().unwrap();
        if chunk_ids(&first).iter().any(|c| c == id) {
            assert_eq!(metadata["author"], "Ada", "{chunk}");
            assert_eq!(metadata["version"], 3);
            assert_eq!(metadata["nested"], json!({ "pages": [1, 2] }));
            assert_eq!(metadata["title"], "Manual");
            assert_eq!(metadata["source"], "manual.pdf");
            assert_eq!(metadata["tags"], json!(["setup", "v3"]));
            assert!(metadata.get("lang").is_none(), "{chunk}");
        } else {
            assert_eq!(chunk_ids(&second), [id]);
            assert_eq!(metadata["title"], "Appendix", "{chunk}");
            assert_eq!(metadata["source"], "appendix.md");
            assert_eq!(metadata["tags"], json!(["extra"]));
            assert_eq!(metadata["lang"], "en");
            assert!(metadata.get("author").is_none(), "{chunk}");
        }
        assert_eq!(metadata["chunking_strategy"], "word");
        assert_eq!(chunk["document_id"], metadata["document_id"]);
        assert_eq!(chunk["chunk_index"], metadata["chunk_index"]);
        rfc3339(&metadata["created_at"]);
    }
    let listed = api.collections(&alice).await;
    assert_eq!(listed[0]["chunk_count"], 3);
    assert_eq!(listed[0]["documents"], 2);
    assert_eq!(rfc3339(&listed[0]["created_at"]), created_at, "created_at does not move");

    // Per user: Bob sees none of Alice's, and his "manuals" is a collection of his own.
    assert!(api.collections(&bob).await.is_empty());
    api.ingest_ok(&bob, "manuals", "Bob keeps his own manual").await;
    api.ingest_ok(&alice, "recipes", "Pancakes need flour, eggs and milk").await;
    let bobs = api.collections(&bob).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!((bobs[0]["name"].as_str(), bobs[0]["chunk_count"].as_u64()), (Some("manuals"), Some(1)));
    let mut alices: Vec<(String, u64)> = api
        .collections(&alice)
        .await
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["chunk_count"].as_u64().unwrap()))
        .collect();
    alices.sort();
    assert_eq!(alices, [("manuals".to_string(), 3), ("recipes".to_string(), 1)]);
}

// ---------------------------------------------------------------- search

pub const PASSWORD_DOC: &str =
    "To reset your password, open Settings and choose Reset password. A reset link is emailed to you.";
pub const SUPPORT_DOCS: &[&str] = &[
    PASSWORD_DOC,
    "Invoices are issued monthly. Billing questions go to the finance team.",
    "Orders ship within two business days. Tracking numbers arrive by email.",
    "Two-factor authentication protects your account. Enable it under Security settings.",
    "The REST API uses bearer tokens. Rate limits apply per key.",
    "Refunds are processed within fourteen days of a return request.",
    "Holiday schedules change office hours in December.",
];

/// Ingest each of `docs` as its own document; returns each one's (single) chunk id.
pub async fn ingest_docs(api: &RagApi, token: &str, collection: &str, docs: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for doc in docs {
        let ingested = api.ingest_ok(token, collection, doc).await;
        let ids = chunk_ids(&ingested);
        assert_eq!(ids.len(), 1, "{doc}");
        out.extend(ids);
    }
    out
}

fn scores(results: &[Value]) -> Vec<f64> {
    results.iter().map(|r| r["score"].as_f64().unwrap()).collect()
}

fn assert_descending(results: &[Value]) {
    let scores = scores(results);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "not best first: {scores:?}");
}

#[tokio::test]
async fn each_search_strategy_answers_with_the_documented_fields() {
    let (_server, api) = rag_server("");
    let token = api.user().await;
    let ids = ingest_docs(&api, &token, "support", SUPPORT_DOCS).await;
    let password = ids[0].clone();

    // bm25: only lexical matches (stemmed: "resetting passwords" matches "reset password").
    let found = api.find(&token, "support", "resetting passwords", "bm25", 10).await;
    assert_eq!(self::ids(&found), std::slice::from_ref(&password));
    assert!(found[0]["score"].as_f64().unwrap() > 0.0);
    assert!(found[0].get("scores").is_none() && found[0].get("retrieval_score").is_none(), "{}", found[0]);
    assert_eq!(found[0]["content"], PASSWORD_DOC);
    // A typo finds nothing lexically, but fuzzy matching forgives it.
    assert!(api.find(&token, "support", "pasword", "bm25", 10).await.is_empty());
    let found = api.find(&token, "support", "pasword resett", "fuzzy", 10).await;
    assert_eq!(self::ids(&found)[0], password, "{found:?}");
    assert_descending(&found);

    // semantic: nearest neighbours, best first, cosine scores; the default top_k is 5.
    let found =
        api.search_ok(&token, &json!({ "collection": "support", "query": "password", "strategy": "semantic" })).await;
    assert_eq!(found.len(), 5);
    assert_eq!(self::ids(&found)[0], password);
    assert_descending(&found);
    assert!(scores(&found).iter().all(|s| (-1.0..=1.0001).contains(s)), "{:?}", scores(&found));
    assert!(found.iter().all(|r| r.get("scores").is_none()));

    // hybrid is the default: RRF of both rankings, components under `scores`; with the hash
    // embedder the semantic ranking weighs 0.5 and k is 5 (`RagConfig::fusion`).
    let found = api.search_ok(&token, &json!({ "collection": "support", "query": "reset my password" })).await;
    assert_eq!(found.len(), 5);
    assert_eq!(self::ids(&found)[0], password);
    assert_descending(&found);
    for result in &found {
        let parts = &result["scores"];
        let rank = |name: &str, weight: f64| parts[name].as_f64().map(|r| weight / (5.0 + r)).unwrap_or(0.0);
        let fused = rank("semantic_rank", 0.5) + rank("bm25_rank", 1.0);
        assert!((result["score"].as_f64().unwrap() - fused).abs() < 1e-6, "{result}");
        assert!(parts["semantic"].is_number() && parts["semantic_rank"].is_u64(), "{result}");
        if result["id"] == password.as_str() {
            assert_eq!((parts["semantic_rank"].as_u64(), parts["bm25_rank"].as_u64()), (Some(1), Some(1)), "{result}");
            assert!(parts["bm25"].as_f64().unwrap() > 0.0);
        } else {
            assert!(
                parts["bm25"].is_null() && parts["bm25_rank"].is_null(),
                "only one chunk matches lexically: {result}"
            );
        }
    }
    let explicit = api.find(&token, "support", "reset my password", "hybrid", 5).await;
    assert_eq!(self::ids(&explicit), self::ids(&found));

    // top_k and its alias limit (top_k wins when both are given).
    let search = |extra: Value| {
        let mut body = json!({ "collection": "support", "query": "account settings", "strategy": "semantic" });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let api = api.clone();
        let token = token.clone();
        async move { api.search_ok(&token, &body).await }
    };
    assert_eq!(search(json!({ "limit": 2 })).await.len(), 2);
    assert_eq!(search(json!({ "top_k": 3, "limit": 1 })).await.len(), 3);
    assert_eq!(search(json!({ "top_k": 1 })).await.len(), 1);
    let all = search(json!({ "top_k": 100 })).await;
    assert_eq!(all.len(), SUPPORT_DOCS.len());
    assert_eq!(ids.iter().collect::<HashSet<_>>(), self::ids(&all).iter().collect::<HashSet<_>>());
    // threshold drops what scores below it.
    let cut = search(json!({ "top_k": 100, "threshold": 0.2 })).await;
    assert!(!cut.is_empty() && cut.len() < all.len(), "{:?}", scores(&all));
    assert!(scores(&cut).iter().all(|s| *s >= 0.2));

    // Strategy names are case-insensitive and the reference's aliases work.
    for (alias, canonical) in [
        ("dense", "semantic"),
        ("vector", "semantic"),
        ("SEMANTIC", "semantic"),
        ("lexical", "bm25"),
        ("keyword", "bm25"),
        ("BM25", "bm25"),
        ("combined", "hybrid"),
        ("rrf", "hybrid"),
        ("Fuzzy", "fuzzy"),
    ] {
        let expected = api.find(&token, "support", "reset password email", canonical, 4).await;
        let got = api.find(&token, "support", "reset password email", alias, 4).await;
        assert_eq!(self::ids(&got), self::ids(&expected), "{alias}");
        assert_eq!(scores(&got), scores(&expected), "{alias}");
    }
}

#[tokio::test]
async fn another_users_collection_of_the_same_name_is_never_searched() {
    let (_server, api) = rag_server("");
    let (alice, bob, carol) = (api.user().await, api.user().await, api.user().await);
    let alice_ids =
        ingest_docs(&api, &alice, "notes", &["Alpha project launches in March with the orbital team."]).await;
    let bob_ids = ingest_docs(
        &api,
        &bob,
        "notes",
        &["Beta project launches in June with the harbor team.", "The harbor team meets on Fridays."],
    )
    .await;

    for strategy in ["semantic", "bm25", "fuzzy", "hybrid"] {
        for rerank in [false, true] {
            let body = json!({ "collection": "notes", "query": "project launches team harbor orbital",
                               "strategy": strategy, "top_k": 100, "rerank": rerank });
            let found = api.search_ok(&alice, &body).await;
            assert_eq!(self::ids(&found), alice_ids, "{strategy} rerank={rerank}");
            let found = api.search_ok(&bob, &body).await;
            assert_eq!(
                self::ids(&found).into_iter().collect::<HashSet<_>>(),
                bob_ids.iter().cloned().collect::<HashSet<_>>(),
                "{strategy} rerank={rerank}"
            );
            let response = api.search(&carol, &body).await;
            let error = expect_error(response, 404, "NOT_FOUND").await;
            assert_eq!(error["error"], "Collection 'notes' not found");
        }
    }
    assert!(api.collections(&carol).await.is_empty());

    // Deleting is per user too.
    expect_error(api.delete(&carol, &json!({ "collection": "notes" })).await, 404, "NOT_FOUND").await;
    expect_json(api.delete(&bob, &json!({ "collection": "notes" })).await, 200).await;
    assert_eq!(self::ids(&api.find(&alice, "notes", "project", "hybrid", 5).await), alice_ids);
    expect_error(api.search(&bob, &json!({ "collection": "notes", "query": "project" })).await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn deleting_a_collection_removes_every_chunk_and_index_entry() {
    let (server, api) = rag_server("");
    let token = api.user().await;
    let old = ingest_docs(
        &api,
        &token,
        "temp",
        &["Obsoleteword one about comets.", "Obsoleteword two about comets.", "Obsoleteword three about comets."],
    )
    .await;
    let kept = ingest_docs(&api, &token, "keep", &["Obsoleteword kept elsewhere about comets."]).await;

    let deleted = expect_json(api.delete(&token, &json!({ "collection": "temp" })).await, 200).await;
    assert_eq!(deleted, json!({ "success": true, "collection": "temp", "documents_deleted": 3 }));
    let error =
        expect_error(api.search(&token, &json!({ "collection": "temp", "query": "comets" })).await, 404, "NOT_FOUND")
            .await;
    assert_eq!(error["error"], "Collection 'temp' not found");
    let names: Vec<Value> = api.collections(&token).await.iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("keep")]);
    let error = expect_error(api.delete(&token, &json!({ "collection": "temp" })).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"], "Collection 'temp' not found");

    // The same name again is a new, empty collection: the old chunks never come back, in any
    // strategy, before or after a restart.
    let fresh = ingest_docs(&api, &token, "temp", &["Gardens bloom in spring."]).await;
    let check = |api: RagApi, token: String| {
        let (fresh, old, kept) = (fresh.clone(), old.clone(), kept.clone());
        async move {
            for strategy in ["semantic", "bm25", "fuzzy", "hybrid"] {
                for query in ["obsoleteword comets", "gardens", "Obsoleteword one about comets."] {
                    let found = api.find(&token, "temp", query, strategy, 100).await;
                    let found = self::ids(&found);
                    assert!(
                        found.iter().all(|id| fresh.contains(id)),
                        "{strategy} {query:?}: {found:?} (old: {old:?})"
                    );
                    if strategy == "semantic" || query == "gardens" {
                        assert_eq!(found, fresh, "{strategy} {query:?}");
                    }
                }
            }
            assert_eq!(self::ids(&api.find(&token, "keep", "obsoleteword", "bm25", 10).await), kept);
            let mut listed: Vec<(String, u64)> = api
                .collections(&token)
                .await
                .iter()
                .map(|c| (c["name"].as_str().unwrap().to_string(), c["chunk_count"].as_u64().unwrap()))
                .collect();
            listed.sort();
            assert_eq!(listed, [("keep".to_string(), 1), ("temp".to_string(), 1)]);
        }
    };
    check(api.clone(), token.clone()).await;
    let server = server.restart();
    check(RagApi::of(&server), token.clone()).await;
}

// ---------------------------------------------------------------- embedders

pub const PET_DOCS: &[&str] = &[
    "The car needs new tires before winter.",
    "My cat sleeps on the sofa all day.",
    "The dog barks at the mailman every morning.",
    "Quarterly revenue grew in the northern region.",
    "Bake the bread at a high temperature.",
];

/// `[rag.embedder]` for the mock: `kind` is `ollama` or `openai`.
pub fn mock_embedder_config(mock: &MockProvider, kind: &str, batch_size: usize, extra: &str) -> String {
    let base_url = if kind == "openai" { mock.openai_base_url() } else { mock.url() };
    format!(
        r#"
[rag.embedder]
type = "{kind}"
base_url = "{base_url}"
model = "mock-embed"
batch_size = {batch_size}
{extra}"#
    )
}

/// The texts of each recorded embedding call.
fn embedded_texts(requests: &[RecordedRequest]) -> Vec<Vec<String>> {
    requests
        .iter()
        .map(|r| r.body["input"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .collect()
}

#[tokio::test]
async fn remote_embedders_are_called_in_batches_and_give_meaningful_semantic_search() {
    for kind in ["ollama", "openai"] {
        let mock = MockProvider::start();
        let config = format!(
            "[rag]\nchunk_size = 10\nchunk_overlap = 2\n{}",
            mock_embedder_config(&mock, kind, 3, "api_key_env = \"RAG_EMBED_KEY\"\n")
        );
        let server = TestServer::builder().config(&config).env("RAG_EMBED_KEY", "sk-embed").start();
        let api = RagApi::of(&server);
        let token = api.user().await;
        let path = if kind == "ollama" { "/api/embed" } else { "/v1/embeddings" };

        // 60 words, windows of 10 every 8 words: 8 chunks, embedded 3 + 3 + 2.
        let text = numbered_words(60);
        let ingested = api.ingest_ok(&token, "numbers", &text).await;
        assert_eq!(ingested["chunks_created"], 8, "{kind}");
        let calls = mock.embedding_requests();
        assert_eq!(calls.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), [path; 3], "{kind}");
        let chunks = all_chunks(&api, &token, "numbers", &text).await;
        let texts = contents(&chunks);
        assert_eq!(embedded_texts(&calls), [texts[..3].to_vec(), texts[3..6].to_vec(), texts[6..].to_vec()], "{kind}");
        for call in &calls {
            assert_eq!(call.body["model"], "mock-embed");
            assert_eq!(call.header("authorization"), Some("Bearer sk-embed"), "{kind}");
        }
        let listed = api.collections(&token).await;
        assert_eq!(listed[0]["embedder"], format!("{kind}:mock-embed"));
        assert_eq!(listed[0]["dimensions"], crate::mock_provider::MOCK_EMBEDDING_DIMENSIONS);

        // One document per call (batch of 1 each) and one call per semantic query.
        let before = mock.embedding_requests().len();
        let pets = ingest_docs(&api, &token, "pets", PET_DOCS).await;
        // In one batch of 3 (openai answers it last-first: the vectors must follow `index`).
        api.ingest_ok(&token, "pets-batched", &PET_DOCS[..3].join(" ")).await;
        assert_eq!(mock.embedding_requests().len(), before + PET_DOCS.len() + 1);

        // The mock's vectors know "automobile" is a car and "kitten" a cat; BM25 does not.
        for (query, expected) in [("automobile", 0), ("kitten", 1), ("puppy", 2)] {
            let before = mock.embedding_requests().len();
            let found = api.find(&token, "pets", query, "semantic", 3).await;
            assert_eq!(self::ids(&found)[0], pets[expected], "{kind} {query}: {found:?}");
            let want = crate::mock_provider::cosine(
                &crate::mock_provider::mock_embedding(query, crate::mock_provider::MOCK_EMBEDDING_DIMENSIONS),
                &crate::mock_provider::mock_embedding(
                    PET_DOCS[expected],
                    crate::mock_provider::MOCK_EMBEDDING_DIMENSIONS,
                ),
            );
            assert!(
                (found[0]["score"].as_f64().unwrap() - f64::from(want)).abs() < 1e-4,
                "{kind}: {found:?} vs {want}"
            );
            let calls = mock.embedding_requests();
            assert_eq!(embedded_texts(&calls[before..]), [vec![query.to_string()]], "{kind}");
            assert!(api.find(&token, "pets", query, "bm25", 3).await.is_empty());
        }
        let batched = api.find(&token, "pets-batched", "automobile", "semantic", 1).await;
        assert!(batched[0]["content"].as_str().unwrap().starts_with("The car"), "{kind}: {batched:?}");

        // An embedder failure stores nothing: 502 when it answers with an error, 503 when it
        // cannot be reached.
        mock.set_embedding_status(500);
        let response = api.ingest(&token, &json!({ "collection": "broken", "content": "anything at all" })).await;
        let error = expect_error(response, 502, "LLM_ERROR").await;
        assert!(error["error"].as_str().unwrap().contains("HTTP 500"), "{error}");
        mock.set_embedding_status(200);
        let names: HashSet<String> =
            api.collections(&token).await.iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
        assert!(!names.contains("broken"), "{names:?}");
        drop(server);
        drop(mock);
    }
}

// ---------------------------------------------------------------- hybrid weights and rerank

#[tokio::test]
async fn hybrid_fuses_with_the_configured_weights_and_rrf_k() {
    // "automobile": semantically nearest is the short car document (the mock embedder maps
    // automobile → car), but only the long insurance document contains the word itself. So the
    // car document is first in the semantic ranking only, the insurance one second semantically
    // and first in BM25 — and the weights decide which wins.
    let car = "The car.";
    let insurance = "Automobile insurance covers accidents, theft and storm damage for every driver.";
    let mock = MockProvider::start();
    let mut outcomes = Vec::new();
    for (semantic_weight, bm25_weight, k) in [(1.0, 1.0, 1.0), (4.0, 1.0, 1.0), (4.0, 1.0, 60.0)] {
        let config = format!(
            "[rag]\nhybrid_semantic_weight = {semantic_weight}\nhybrid_bm25_weight = {bm25_weight}\nrrf_k = {k}\n{}",
            mock_embedder_config(&mock, "ollama", 8, "")
        );
        let (_server, api) = rag_server(&config);
        let token = api.user().await;
        let ids = ingest_docs(&api, &token, "cars", &[car, insurance]).await;
        let found = api.find(&token, "cars", "automobile", "hybrid", 5).await;
        assert_eq!(found.len(), 2, "{found:?}");
        for result in &found {
            let parts = &result["scores"];
            let (semantic_rank, bm25_rank) = (parts["semantic_rank"].as_f64(), parts["bm25_rank"].as_f64());
            if result["id"] == ids[0].as_str() {
                assert_eq!((semantic_rank, bm25_rank), (Some(1.0), None), "{result}");
            } else {
                assert_eq!((semantic_rank, bm25_rank), (Some(2.0), Some(1.0)), "{result}");
            }
            let expected =
                semantic_weight / (k + semantic_rank.unwrap()) + bm25_rank.map_or(0.0, |rank| bm25_weight / (k + rank));
            assert!((result["score"].as_f64().unwrap() - expected).abs() < 1e-6, "{result} vs {expected}");
        }
        let first = if found[0]["id"] == ids[0].as_str() { "car" } else { "insurance" };
        outcomes.push(first);
    }
    // With k = 1, weights 1:1 let the insurance document (in both rankings) win and 4:1 turn it
    // round; with k = 60 ranks matter less, and 4:1 is not enough.
    assert_eq!(outcomes, ["insurance", "car", "insurance"]);
}

/// BM25 puts X (five "alpha"s, short) above Y (the whole query, in a long text); coverage of
/// the query's words puts Y first. The "beta gamma" documents make those two words common.
const RERANK_X: &str = "alpha alpha alpha alpha alpha";
const RERANK_Y: &str =
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon";
const RERANK_FILLERS: &[&str] = &[
    "beta gamma filler one",
    "beta gamma filler two",
    "beta gamma filler three",
    "beta gamma filler four",
    "beta gamma filler five",
    "beta gamma filler six",
];
const RERANK_QUERY: &str = "alpha beta gamma";

async fn rerank_corpus(api: &RagApi, token: &str) -> Vec<String> {
    let mut docs = vec![RERANK_X, RERANK_Y];
    docs.extend_from_slice(RERANK_FILLERS);
    ingest_docs(api, token, "greek", &docs).await
}

/// The built-in rescoring, as documented in `rag::fusion::rescore`.
fn builtin_rescore(query: &str, content: &str, prior: f64, best: f64) -> f64 {
    let lower = content.to_lowercase();
    let mut words: Vec<String> =
        query.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 3).map(String::from).collect();
    words.sort();
    words.dedup();
    let coverage = words.iter().filter(|w| lower.contains(w.as_str())).count() as f64 / words.len() as f64;
    let phrase = if lower.contains(&query.to_lowercase()) { 1.0 } else { 0.0 };
    0.6 * coverage + 0.25 * phrase + 0.15 * prior / best
}

#[tokio::test]
async fn rerank_without_a_reranker_rescores_by_query_coverage() {
    let (_server, api) = rag_server("");
    let token = api.user().await;
    let ids = rerank_corpus(&api, &token).await;
    let (x, y) = (ids[0].clone(), ids[1].clone());

    let plain = api.find(&token, "greek", RERANK_QUERY, "bm25", 100).await;
    assert_eq!(self::ids(&plain)[..2], [x.clone(), y.clone()], "BM25 prefers X: {plain:?}");
    let retrieval: std::collections::HashMap<String, f64> =
        plain.iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["score"].as_f64().unwrap())).collect();

    let body =
        json!({ "collection": "greek", "query": RERANK_QUERY, "strategy": "bm25", "top_k": 100, "rerank": true });
    let reranked = api.search_ok(&token, &body).await;
    assert_eq!(reranked.len(), plain.len());
    assert_eq!(self::ids(&reranked)[0], y, "{reranked:?}");
    assert_eq!(self::ids(&reranked).last(), Some(&x), "X covers a third of the query: {reranked:?}");
    assert_descending(&reranked);
    let best = retrieval.values().copied().fold(0.0, f64::max);
    for result in &reranked {
        let id = result["id"].as_str().unwrap();
        let before = result["retrieval_score"].as_f64().unwrap_or_else(|| panic!("no retrieval_score: {result}"));
        assert!((before - retrieval[id]).abs() < 1e-5, "{result}");
        let expected = builtin_rescore(RERANK_QUERY, result["content"].as_str().unwrap(), before, best);
        assert!((result["score"].as_f64().unwrap() - expected).abs() < 1e-5, "{result} vs {expected}");
    }

    // top_k cuts after reranking the wider candidate set.
    let body = json!({ "collection": "greek", "query": RERANK_QUERY, "strategy": "bm25", "top_k": 2, "rerank": true });
    assert_eq!(self::ids(&api.search_ok(&token, &body).await), self::ids(&reranked)[..2]);
    // Hybrid results keep their components and carry the fused score as retrieval_score.
    let body = json!({ "collection": "greek", "query": RERANK_QUERY, "rerank": true, "top_k": 3 });
    let hybrid = api.search_ok(&token, &body).await;
    assert_eq!(self::ids(&hybrid)[0], y);
    for result in &hybrid {
        assert!(result["scores"].is_object() && result["retrieval_score"].as_f64().unwrap() > 0.0, "{result}");
    }
}

#[tokio::test]
async fn rerank_calls_the_configured_rerank_endpoint_in_jina_and_tei_shapes() {
    let mock = MockProvider::start();
    let config = format!("[rag]\nrerank_url = \"{}/rerank\"\nrerank_model = \"mock-reranker\"\n", mock.url());
    let (_server, api) = rag_server(&config);
    let token = api.user().await;
    let ids = rerank_corpus(&api, &token).await;
    let (x, y, filler_one) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    mock.set_rerank_scores(&[("zeta", 0.9), ("filler one", 0.4)]);

    let plain = api.find(&token, "greek", RERANK_QUERY, "bm25", 100).await;
    assert!(mock.rerank_requests().is_empty(), "no reranking unless asked");
    for style in [RerankStyle::Jina, RerankStyle::Tei] {
        mock.set_rerank_style(style);
        let before = mock.rerank_requests().len();
        let body =
            json!({ "collection": "greek", "query": RERANK_QUERY, "strategy": "bm25", "top_k": 3, "rerank": true });
        let reranked = api.search_ok(&token, &body).await;
        // The reranker's order and scores; its ties (0.0) keep the retrieval order, X first.
        assert_eq!(self::ids(&reranked), [y.clone(), filler_one.clone(), x.clone()], "{style:?}: {reranked:?}");
        let got: Vec<f64> = scores(&reranked);
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] - 0.4).abs() < 1e-6 && got[2] == 0.0, "{style:?}: {got:?}");
        for result in &reranked {
            let original = plain.iter().find(|p| p["id"] == result["id"]).unwrap();
            let retrieval = result["retrieval_score"].as_f64().unwrap();
            assert!((retrieval - original["score"].as_f64().unwrap()).abs() < 1e-5, "{result}");
        }
        // One call with every candidate, in retrieval order.
        let calls = mock.rerank_requests();
        assert_eq!(calls.len(), before + 1, "{style:?}");
        let call = &calls[before].body;
        assert_eq!(call["query"], RERANK_QUERY);
        assert_eq!(call["model"], "mock-reranker");
        assert_eq!(call["top_n"], plain.len());
        assert_eq!(call["documents"], json!(contents(&plain)));
    }
}

// ---------------------------------------------------------------- grounded chat

const HANDBOOK: &[&str] = &[
    "Vacation: every employee gets 25 vacation days per year.",
    "Expenses: submit receipts within 30 days through the expenses portal.",
    "Laptops: IT replaces laptops every three years.",
    "Parking: staff park in garage B; visitors park in garage A.",
    "Onboarding: new hires meet their buddy on the first day.",
];
const HANDBOOK_AGENT: &str = r#"
[[agents]]
name = "handbook"
model = "mock-model"
system_prompt = "You answer questions about the company handbook."
collection = "handbook"
"#;
const GROUNDING_HEADER: &str = "excerpts from the knowledge base 'handbook'";

fn system_text(request: &RecordedRequest) -> String {
    request
        .transcript()
        .into_iter()
        .filter(|(role, _)| role == "system")
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Chat with the grounded agent; returns the response and what the model was sent.
async fn grounded_chat(gw: &Gateway, token: &str, message: &str, context_id: Option<&str>) -> (Value, RecordedRequest) {
    let before = gw.mock.chat_requests().len();
    let mut body = json!({ "message": message, "agent_type": "handbook" });
    if let Some(context_id) = context_id {
        body["context_id"] = json!(context_id);
    }
    let response = gw.chat_ok(token, &body).await;
    let mut requests = gw.mock.chat_requests().split_off(before);
    assert_eq!(requests.len(), 1, "one model call");
    (response, requests.pop().unwrap())
}

#[tokio::test]
async fn a_grounded_agent_retrieves_from_the_callers_collection_for_each_message() {
    let gw = Gateway::builder(Wire::OpenAi).config(HANDBOOK_AGENT).start();
    gw.mock.set_script(Script::reply("Grounded answer."));
    let api = RagApi::of(&gw.server);
    let (alice, bob) = (api.user().await, api.user().await);
    let alice_ids = ingest_docs(&api, &alice, "handbook", HANDBOOK).await;

    let (response, request) = grounded_chat(&gw, &alice, "How many vacation days do I get?", None).await;
    assert_eq!(response["response"], "Grounded answer.");
    assert_eq!(response["agent"], "handbook");
    let sources = response["sources"].as_array().unwrap_or_else(|| panic!("sources: {response}"));
    assert_eq!(sources.len(), 4, "the top chunks: {sources:?}");
    assert_eq!(sources[0]["id"], alice_ids[0].as_str());
    assert_eq!(sources[0]["content"], HANDBOOK[0]);
    for source in sources {
        assert!(alice_ids.iter().any(|id| source["id"] == id.as_str()), "{source}");
        assert_eq!(source["collection"], "handbook");
        assert!(
            source["score"].is_number() && source["metadata"].is_object() && source["scores"].is_object(),
            "{source}"
        );
    }
    // The same chunks a hybrid search returns, in the system prompt, numbered in order.
    let searched = api.find(&alice, "handbook", "How many vacation days do I get?", "hybrid", 4).await;
    assert_eq!(ids(sources), ids(&searched));
    let system = system_text(&request);
    assert!(system.starts_with("You answer questions about the company handbook."), "{system}");
    assert!(system.contains(GROUNDING_HEADER), "{system}");
    let mut at = 0;
    for (i, source) in sources.iter().enumerate() {
        let line = format!("[{}] {}", i + 1, source["content"].as_str().unwrap());
        let found = system[at..].find(&line).unwrap_or_else(|| panic!("{line:?} not after {at} in {system}"));
        at += found + line.len();
    }
    let dialogue: Vec<(String, String)> = request.text_turns().into_iter().filter(|(r, _)| r != "system").collect();
    assert_eq!(dialogue, [("user".to_string(), "How many vacation days do I get?".to_string())]);

    // The next message of the conversation retrieves for itself.
    let context_id = response["context_id"].as_str().unwrap().to_string();
    let (response, request) = grounded_chat(&gw, &alice, "Where do visitors park?", Some(&context_id)).await;
    assert_eq!(response["sources"][0]["content"], HANDBOOK[3]);
    assert!(system_text(&request).contains(&format!("[1] {}", HANDBOOK[3])), "{}", system_text(&request));

    // Bob has no such collection yet: no error, no excerpts, empty sources.
    let (response, request) = grounded_chat(&gw, &bob, "How many vacation days do I get?", None).await;
    assert_eq!(response["sources"], json!([]), "{response}");
    assert!(!system_text(&request).contains(GROUNDING_HEADER), "{}", system_text(&request));
    assert!(system_text(&request).starts_with("You answer questions about the company handbook."));

    // His own "handbook" grounds his chats — never Alice's.
    let bob_ids = ingest_docs(&api, &bob, "handbook", &["Vacation: contractors get 10 vacation days."]).await;
    let (response, request) = grounded_chat(&gw, &bob, "How many vacation days do I get?", None).await;
    assert_eq!(ids(response["sources"].as_array().unwrap()), bob_ids);
    let system = system_text(&request);
    assert!(system.contains("[1] Vacation: contractors get 10 vacation days."), "{system}");
    assert!(!HANDBOOK.iter().any(|doc| system.contains(doc)), "{system}");
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn request_errors_have_the_documented_statuses_and_messages() {
    let (server, api) = rag_server("");
    let token = api.user().await;
    api.ingest_ok(&token, "docs", "Some content to search.").await;

    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        ("/api/rag/ingest", json!({ "content": "x" }), 400, "INVALID_INPUT", "Missing required field: collection"),
        (
            "/api/rag/ingest",
            json!({ "collection": "", "content": "x" }),
            400,
            "INVALID_INPUT",
            "Collection name required",
        ),
        (
            "/api/rag/ingest",
            json!({ "collection": "  ", "content": "x" }),
            400,
            "INVALID_INPUT",
            "Collection name required",
        ),
        ("/api/rag/ingest", json!({ "collection": "docs" }), 400, "INVALID_INPUT", "Missing required field: content"),
        ("/api/rag/ingest", json!({ "collection": "docs", "content": "" }), 400, "INVALID_INPUT", "Content required"),
        (
            "/api/rag/ingest",
            json!({ "collection": "docs", "content": " \n\t " }),
            400,
            "INVALID_INPUT",
            "Content required",
        ),
        (
            "/api/rag/ingest",
            json!({ "collection": "docs", "content": "x", "chunking_strategy": "bogus" }),
            400,
            "INVALID_INPUT",
            "Unknown chunking strategy: bogus. Use: word, sentence, paragraph, character",
        ),
        (
            "/api/rag/ingest",
            json!({ "collection": "docs", "content": "x", "metadata": ["not", "an", "object"] }),
            422,
            "UNPROCESSABLE",
            "metadata must be a JSON object",
        ),
        ("/api/rag/search", json!({ "query": "x" }), 400, "INVALID_INPUT", "Missing required field: collection"),
        (
            "/api/rag/search",
            json!({ "collection": "", "query": "x" }),
            400,
            "INVALID_INPUT",
            "Collection name required",
        ),
        ("/api/rag/search", json!({ "collection": "docs" }), 400, "INVALID_INPUT", "Missing required field: query"),
        ("/api/rag/search", json!({ "collection": "docs", "query": "" }), 400, "INVALID_INPUT", "Query required"),
        ("/api/rag/search", json!({ "collection": "docs", "query": "  " }), 400, "INVALID_INPUT", "Query required"),
        (
            "/api/rag/search",
            json!({ "collection": "docs", "query": "x", "strategy": "bogus" }),
            400,
            "INVALID_INPUT",
            "Unknown search strategy: bogus. Use: semantic, bm25, fuzzy, hybrid",
        ),
        (
            "/api/rag/search",
            json!({ "collection": "nope", "query": "x" }),
            404,
            "NOT_FOUND",
            "Collection 'nope' not found",
        ),
    ];
    for (path, body, status, code, message) in cases {
        let error = expect_error(api.post(path, &token, &body).await, status, code).await;
        assert_eq!(error["error"], message, "{path} {body}");
    }
    for (top_k, limit) in [(Some(0), None), (Some(101), None), (Some(-1), None), (None, Some(0)), (None, Some(1000))] {
        let mut body = json!({ "collection": "docs", "query": "content" });
        if let Some(top_k) = top_k {
            body["top_k"] = json!(top_k);
        }
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        let error = expect_error(api.search(&token, &body).await, 422, "UNPROCESSABLE").await;
        assert_eq!(error["error"], "top_k must be between 1 and 100", "{body}");
    }
    assert_eq!(
        api.search_ok(&token, &json!({ "collection": "docs", "query": "content", "top_k": 100 })).await.len(),
        1
    );
    let long = "n".repeat(129);
    let error =
        expect_error(api.ingest(&token, &json!({ "collection": long, "content": "x" })).await, 422, "UNPROCESSABLE")
            .await;
    assert!(error["error"].as_str().unwrap().contains("at most 128 characters"), "{error}");
    for (body, status, message) in [
        (json!({}), 400, "Missing required field: collection"),
        (json!({ "collection": " " }), 400, "Collection name required"),
        (json!({ "collection": "nope" }), 404, "Collection 'nope' not found"),
    ] {
        let response = api.delete(&token, &body).await;
        let code = if status == 400 { "INVALID_INPUT" } else { "NOT_FOUND" };
        assert_eq!(expect_error(response, status, code).await["error"], message, "{body}");
    }
    let response =
        server.client().post(server.url("/api/rag/ingest")).bearer_auth(&token).body("{not json").send().await.unwrap();
    assert_eq!(expect_error(response, 400, "INVALID_INPUT").await["error"], "Invalid JSON in request body");

    // No JWT: 401 on every route, before the body is looked at; a bad one likewise.
    let routes = [
        (Method::POST, "/api/rag/ingest"),
        (Method::POST, "/api/rag/search"),
        (Method::GET, "/api/rag/collections"),
        (Method::DELETE, "/api/rag/collection"),
    ];
    for (method, path) in routes {
        let request = server.client().request(method.clone(), server.url(path)).body("{not json");
        expect_error(request.send().await.unwrap(), 401, "AUTH_MISSING").await;
        let request = server.client().request(method.clone(), server.url(path)).bearer_auth("not-a-jwt");
        expect_error(request.json(&json!({ "collection": "docs" })).send().await.unwrap(), 401, "AUTH_INVALID_TOKEN")
            .await;
    }
    // Nothing changed.
    let listed = api.collections(&token).await;
    assert_eq!((listed.len(), listed[0]["chunk_count"].as_u64()), (1, Some(1)));
}

#[tokio::test]
async fn ingest_bodies_over_max_ingest_bytes_are_413() {
    // A document limit below the general one, and one above it.
    for (max_body, max_ingest) in [(2 * 1024 * 1024, 64 * 1024), (16 * 1024, 64 * 1024)] {
        let config = format!("[server]\nmax_body_bytes = {max_body}\n[rag]\nmax_ingest_bytes = {max_ingest}\n");
        let (server, api) = rag_server(&config);
        let token = api.user().await;
        let body_of = |content_bytes: usize| {
            json!({ "collection": "big", "content": "word ".repeat(content_bytes / 5) }).to_string()
        };
        let post = |body: String| server.client().post(server.url("/api/rag/ingest")).bearer_auth(&token).body(body);

        let fits = body_of(max_ingest - 1024);
        assert!(fits.len() <= max_ingest);
        expect_json(post(fits).send().await.unwrap(), 200).await;
        let over = body_of(max_ingest + 1024);
        assert!(over.len() > max_ingest);
        expect_error(post(over.clone()).send().await.unwrap(), 413, "PAYLOAD_TOO_LARGE").await;
        // Also without Content-Length (chunked): cut off while reading.
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            over.into_bytes().chunks(4096).map(|c| Ok(c.to_vec())).collect();
        let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
        let response = server.client().post(server.url("/api/rag/ingest")).bearer_auth(&token).body(streamed);
        expect_error(response.send().await.unwrap(), 413, "PAYLOAD_TOO_LARGE").await;
        // Only what fitted was stored.
        let listed = api.collections(&token).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["documents"], 1, "{max_body}/{max_ingest}");
        // Other routes keep the general limit.
        let search = json!({ "collection": "big", "query": "word ".repeat(max_body / 5 + 100) });
        expect_error(api.search(&token, &search).await, 413, "PAYLOAD_TOO_LARGE").await;
    }
}
