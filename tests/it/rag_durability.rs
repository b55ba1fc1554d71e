//! RAG storage on the real binary: SIGKILL during ingests then restart (every acknowledged
//! document searchable, nothing half-indexed in the way), deleted or corrupt derived indexes
//! rebuilt from the database with identical answers, clean restarts that replay nothing (read
//! from the server's log), and an embedder change that answers 409 until `ares reindex` (the
//! real CLI, server stopped) re-embeds the collections.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ADMIN_SECRET, BinaryServer, JWT_SECRET, expect_error, expect_json, run_cli};
use crate::mock_provider::{MOCK_EMBEDDING_DIMENSIONS, MockProvider, cosine, mock_embedding};
use crate::rag::{PET_DOCS, RagApi, SUPPORT_DOCS, chunk_ids, ids, ingest_docs, mock_embedder_config};

/// What the server logs at start-up when it had to replay chunks into an index.
const CAUGHT_UP: &str = "search indexes caught up with the database";
/// Logged once the server is up (after any replay).
const SERVING: &str = ": serving";
const SECRETS: &[(&str, &str)] = &[("ADMIN_API_KEY", ADMIN_SECRET), ("JWT_SECRET", JWT_SECRET)];

fn api_of(server: &BinaryServer) -> RagApi {
    RagApi::new(server.client(), &server.url(""))
}

/// Start the binary on `root` and return it with its start-up log (everything up to "serving").
fn start(root: &Path, config: &str) -> (BinaryServer, String) {
    let server = BinaryServer::builder(root).config(config).start();
    let log = server.wait_for_stderr(SERVING);
    (server, log)
}

fn stop(server: &mut BinaryServer) {
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "a clean stop exits 0");
}

// ---------------------------------------------------------------- SIGKILL during ingest

const WORKERS: usize = 4;
/// Words of each document; with 20-word windows every 15 words: 3 chunks.
const DOC_WORDS: usize = 50;
const DOC_CHUNKS: usize = 3;
const CRASH_CONFIG: &str = "[rag]\nchunk_size = 20\nchunk_overlap = 5\n";

/// Worker `w`'s document `i`: its marker word every fifth word, so every chunk contains it.
fn crash_document(marker: &str, worker: usize, i: usize) -> String {
    const FILLER: &[&str] = &["orbit", "lantern", "quarry", "meadow", "cobalt", "harbor", "thistle", "ember"];
    (0..DOC_WORDS)
        .map(|j| if j % 5 == 0 { marker.to_string() } else { FILLER[(worker + i + j) % FILLER.len()].to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
struct Ingests {
    /// marker → chunk ids, for each 200.
    acked: HashMap<String, Vec<String>>,
    /// Sent but never answered: the kill caught them.
    unanswered: Vec<String>,
    unexpected: Vec<String>,
}

fn collection_of(worker: usize) -> String {
    format!("c{worker}")
}

fn worker_of(marker: &str) -> usize {
    marker[1..].split('x').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingests_keeps_every_acknowledged_document_searchable() {
    let root = tempfile::tempdir().unwrap();
    let (mut server, _) = start(root.path(), CRASH_CONFIG);
    let api = api_of(&server);
    let tokens = [api.user().await, api.user().await];

    let seen = Arc::new(Mutex::new(Ingests::default()));
    let signaled = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (api, token) = (api.clone(), tokens[worker % 2].clone());
            let (seen, signaled) = (seen.clone(), signaled.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let marker = format!("m{worker}x{i}");
                    let body =
                        json!({ "collection": collection_of(worker), "content": crash_document(&marker, worker, i) });
                    let sent = match api.try_post("/api/rag/ingest", &token, &body).await {
                        Ok(response) if response.status() == 200 => response.json::<Value>().await.map(Ok),
                        Ok(response) => Ok(Err(response.status())),
                        Err(e) => Err(e),
                    };
                    let mut seen = seen.lock().unwrap();
                    match sent {
                        Ok(Ok(body)) => {
                            seen.acked.insert(marker, chunk_ids(&body));
                        }
                        Ok(Err(status)) => seen.unexpected.push(format!("{marker}: HTTP {status}")),
                        Err(_) if signaled.load(Ordering::SeqCst) => {
                            seen.unanswered.push(marker);
                            return;
                        }
                        Err(e) => {
                            seen.unexpected.push(format!("{marker}: {e}"));
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let seen = seen.lock().unwrap();
            assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
            if seen.acked.len() >= 40 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "ingests too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signaled.store(true, Ordering::SeqCst);
    let status = server.kill();
    assert!(!status.success(), "{status:?}");
    for worker in workers {
        worker.await.unwrap();
    }
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
    assert!(!seen.unanswered.is_empty(), "the kill should catch ingests in flight");
    assert!(seen.acked.values().all(|ids| ids.len() == DOC_CHUNKS));

    // Restart: the graphs were never written since these ingests, so they are replayed.
    let (server, log) = start(root.path(), CRASH_CONFIG);
    assert!(log.contains(CAUGHT_UP), "{log}");
    let api = api_of(&server);

    // Each document is all there or not at all: every acknowledged one, and an unanswered one
    // only if its commit made it.
    let mut expected: Vec<HashSet<String>> = vec![HashSet::new(); WORKERS];
    for (marker, chunks) in &seen.acked {
        let worker = worker_of(marker);
        let found = api.find(&tokens[worker % 2], &collection_of(worker), marker, "bm25", 100).await;
        assert_eq!(ids(&found).into_iter().collect::<HashSet<_>>(), chunks.iter().cloned().collect(), "{marker}");
        expected[worker].extend(chunks.iter().cloned());
    }
    for marker in &seen.unanswered {
        let worker = worker_of(marker);
        let found = api.find(&tokens[worker % 2], &collection_of(worker), marker, "bm25", 100).await;
        let found = ids(&found);
        assert!(found.is_empty() || found.len() == DOC_CHUNKS, "{marker}: half a document: {found:?}");
        expected[worker].extend(found);
    }
    let check_all = |api: RagApi, expected: Vec<HashSet<String>>| {
        let tokens = tokens.clone();
        async move {
            for (worker, expected) in expected.iter().enumerate() {
                let (token, collection) = (&tokens[worker % 2], collection_of(worker));
                // Semantic search reaches every chunk (the graph was rebuilt completely) ...
                let found = api.find(token, &collection, "orbit lantern quarry", "semantic", 100).await;
                assert_eq!(&ids(&found).into_iter().collect::<HashSet<_>>(), expected, "{collection}");
                // ... and the other strategies only ever name stored chunks.
                for strategy in ["bm25", "fuzzy", "hybrid"] {
                    let found = api.find(token, &collection, "orbit lantern quarry m1x1", strategy, 100).await;
                    assert!(!found.is_empty(), "{collection} {strategy}");
                    assert!(ids(&found).iter().all(|id| expected.contains(id)), "{collection} {strategy}");
                }
                let listed = api.collections(token).await;
                let listed = listed.iter().find(|c| c["name"] == collection.as_str()).unwrap();
                assert_eq!(listed["chunk_count"], expected.len(), "{collection}");
            }
        }
    };
    check_all(api.clone(), expected.clone()).await;

    // The recovered server takes new documents; a clean stop and start then replays nothing.
    let marker = "m0x999999";
    let ingested = api
        .ingest_with(&tokens[0], &json!({ "collection": collection_of(0), "content": crash_document(marker, 0, 7) }))
        .await;
    expected[0].extend(chunk_ids(&ingested));
    let mut server = server;
    stop(&mut server);
    let (server, log) = start(root.path(), CRASH_CONFIG);
    assert!(!log.contains(CAUGHT_UP), "a clean restart rebuilds nothing:\n{log}");
    check_all(api_of(&server), expected).await;
}

// ---------------------------------------------------------------- rebuilding derived indexes

/// Every answer a set of searches gives: (label, ids in order, scores).
async fn answers(api: &RagApi, alice: &str, bob: &str) -> Vec<(String, Vec<String>, Vec<f64>)> {
    let queries = [
        "reset my password",
        "billing invoices finance",
        "pasword resett",
        "orders tracking email",
        "security account settings",
        "refund return",
    ];
    let mut out = Vec::new();
    for (who, token) in [("alice", alice), ("bob", bob)] {
        for strategy in ["bm25", "fuzzy", "semantic", "hybrid"] {
            for query in queries {
                for rerank in [false, true] {
                    let body = json!({ "collection": "support", "query": query, "strategy": strategy,
                                       "top_k": 10, "rerank": rerank });
                    let found = api.search_ok(token, &body).await;
                    let scores = found.iter().map(|r| r["score"].as_f64().unwrap()).collect();
                    out.push((format!("{who} {strategy} {query:?} rerank={rerank}"), ids(&found), scores));
                }
            }
        }
    }
    out
}

fn assert_same_answers(before: &[(String, Vec<String>, Vec<f64>)], after: &[(String, Vec<String>, Vec<f64>)]) {
    assert_eq!(before.len(), after.len());
    for ((label, ids_before, scores_before), (_, ids_after, scores_after)) in before.iter().zip(after) {
        assert_eq!(ids_after, ids_before, "{label}: {scores_before:?} vs {scores_after:?}");
        for (a, b) in scores_before.iter().zip(scores_after) {
            assert!((a - b).abs() < 1e-5, "{label}: {scores_before:?} vs {scores_after:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_corrupt_indexes_are_rebuilt_from_the_database_with_identical_answers() {
    let root = tempfile::tempdir().unwrap();
    let config = "[rag]\nchunk_size = 12\nchunk_overlap = 4\n";
    let (mut server, log) = start(root.path(), config);
    assert!(!log.contains(CAUGHT_UP), "a fresh start replays nothing:\n{log}");
    let api = api_of(&server);
    let (alice, bob) = (api.user().await, api.user().await);
    // Documents of one or more chunks, another user's same-named collection, and a deleted
    // collection (whose documents the lexical index still holds as deletions).
    let ingest = |token: &str, collection: &str, docs: Vec<String>| {
        let (api, token, collection) = (api.clone(), token.to_string(), collection.to_string());
        async move {
            for doc in docs {
                api.ingest_ok(&token, &collection, &doc).await;
            }
        }
    };
    let texts = |docs: &[&str]| docs.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    ingest(&alice, "support", texts(SUPPORT_DOCS)).await;
    ingest(&alice, "support", vec![SUPPORT_DOCS.join(" ")]).await;
    ingest(&bob, "support", texts(&SUPPORT_DOCS[2..5])).await;
    ingest(&bob, "support", vec!["Password managers keep every reset link safe.".to_string()]).await;
    ingest(&alice, "scratch", texts(&SUPPORT_DOCS[..3])).await;
    expect_json(api.delete(&alice, &json!({ "collection": "scratch" })).await, 200).await;
    let mut live = 0;
    for token in [&alice, &bob] {
        live += api.collections(token).await.iter().map(|c| c["chunk_count"].as_u64().unwrap()).sum::<u64>();
    }
    let before = answers(&api, &alice, &bob).await;
    stop(&mut server);

    // Both derived indexes gone: rebuilt from redb at start, the same answers.
    for dir in ["search", "vectors"] {
        std::fs::remove_dir_all(root.path().join("data").join(dir)).unwrap();
    }
    let (mut server, log) = start(root.path(), config);
    assert!(log.contains(CAUGHT_UP), "{log}");
    assert!(log.contains(&format!("lexical={live}")) && log.contains(&format!("vectors={live}")), "{live}:\n{log}");
    assert_same_answers(&before, &answers(&api_of(&server), &alice, &bob).await);
    stop(&mut server);

    // Nothing to do after a clean stop.
    let (mut server, log) = start(root.path(), config);
    assert!(!log.contains(CAUGHT_UP), "a clean restart rebuilds nothing:\n{log}");
    assert_same_answers(&before, &answers(&api_of(&server), &alice, &bob).await);
    stop(&mut server);

    // Damaged files (a torn graph dump, an unreadable index) are rebuilt too.
    let data = root.path().join("data");
    let mut truncated = 0;
    for collection in std::fs::read_dir(data.join("vectors")).unwrap() {
        for file in std::fs::read_dir(collection.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.file_name().is_some_and(|n| n != "manifest.json") {
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
                truncated += 1;
            }
        }
    }
    assert!(truncated >= 2, "graph dumps of both collections");
    std::fs::write(data.join("search").join("meta.json"), b"{ not the index metadata").unwrap();
    let (server, log) = start(root.path(), config);
    assert!(log.contains(CAUGHT_UP), "{log}");
    assert_same_answers(&before, &answers(&api_of(&server), &alice, &bob).await);
}

// ---------------------------------------------------------------- embedder change and reindex

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_embedder_is_a_409_until_ares_reindex_re_embeds_the_collections() {
    let mock = MockProvider::start();
    let root = tempfile::tempdir().unwrap();
    let (mut server, _) = start(root.path(), "");
    let api = api_of(&server);
    let token = api.user().await;
    let pets = ingest_docs(&api, &token, "pets", PET_DOCS).await;
    api.ingest_ok(&token, "notes", "Water the plants on Mondays.").await;
    stop(&mut server);

    // Same data, now configured for the (mock) Ollama embedder in batches of 2.
    let ollama = mock_embedder_config(&mock, "ollama", 2, "");
    let (mut server, log) = start(root.path(), &ollama);
    // Start-up says so before any search fails, with the fix.
    let warning =
        log.lines().find(|l| l.contains("WARN") && l.contains("ares reindex")).unwrap_or_else(|| panic!("{log}"));
    assert!(warning.contains("collections=2") && warning.contains("hash-v1:384"), "{warning}");
    let api = api_of(&server);
    for strategy in ["semantic", "hybrid"] {
        let body = json!({ "collection": "pets", "query": "automobile", "strategy": strategy });
        let error = expect_error(api.search(&token, &body).await, 409, "CONFLICT").await;
        let message = error["error"].as_str().unwrap();
        for needle in ["'pets'", "hash-v1:384", "ollama:mock-embed", "ares reindex"] {
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
    }
    let error = expect_error(
        api.ingest(&token, &json!({ "collection": "pets", "content": "A kitten." })).await,
        409,
        "CONFLICT",
    )
    .await;
    assert!(error["error"].as_str().unwrap().contains("ares reindex"), "{error}");
    assert!(mock.embedding_requests().is_empty(), "a refused ingest embeds nothing");
    // Lexical search needs no embeddings and keeps working meanwhile.
    assert_eq!(ids(&api.find(&token, "pets", "tires", "bm25", 5).await), [pets[0].clone()]);
    // New collections use the new embedder.
    api.ingest_ok(&token, "fresh", "The kitten chases a ball.").await;
    assert_eq!(mock.embedding_requests().len(), 1);
    let embedders: HashMap<String, String> = api
        .collections(&token)
        .await
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["embedder"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(embedders["pets"], "hash-v1:384");
    assert_eq!(embedders["fresh"], "ollama:mock-embed");

    // reindex refuses to run next to a live server, and changes nothing.
    let config_path = root.path().join("ares-test.toml");
    let data_dir = root.path().join("data");
    let args = ["--config", config_path.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap(), "reindex"];
    let refused = run_cli(root.path(), &args, SECRETS);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert_eq!(mock.embedding_requests().len(), 1);
    stop(&mut server);

    // With the server stopped it re-embeds pets (5 chunks: 3 calls of ≤ 2) and notes (1 call).
    let before = mock.embedding_requests().len();
    let out = run_cli(root.path(), &args, SECRETS);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.starts_with("reindexed 7 chunks in 3 collections (6 re-embedded)"), "{}", out.stdout);
    let calls = mock.embedding_requests().split_off(before);
    let sizes: Vec<usize> = calls.iter().map(|c| c.body["input"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [2, 2, 1, 1], "{calls:#?}");

    // The collections work again, with the new embedder's vectors; the rebuilt indexes are
    // complete, so the start replays nothing.
    let (_server, log) = start(root.path(), &ollama);
    assert!(!log.contains(CAUGHT_UP), "{log}");
    let api = api_of(&_server);
    let listed = api.collections(&token).await;
    for collection in &listed {
        assert_eq!(collection["embedder"], "ollama:mock-embed", "{collection}");
        assert_eq!(collection["dimensions"], MOCK_EMBEDDING_DIMENSIONS, "{collection}");
    }
    for (query, expected) in [("automobile", 0), ("kitten", 1), ("puppy", 2)] {
        let found = api.find(&token, "pets", query, "semantic", 3).await;
        assert_eq!(ids(&found)[0], pets[expected], "{query}: {found:?}");
        let want = cosine(
            &mock_embedding(query, MOCK_EMBEDDING_DIMENSIONS),
            &mock_embedding(PET_DOCS[expected], MOCK_EMBEDDING_DIMENSIONS),
        );
        assert!((found[0]["score"].as_f64().unwrap() - f64::from(want)).abs() < 1e-4, "{found:?}");
        let hybrid = api.find(&token, "pets", query, "hybrid", 3).await;
        assert_eq!(ids(&hybrid)[0], pets[expected], "{query}");
    }
    api.ingest_ok(&token, "pets", "A kitten naps.").await;
}
