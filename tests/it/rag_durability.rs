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

/// Logged when a stop (or the periodic persist) could not sync the lexical index or dump the
/// vector graphs: the next start then replays what a clean stop should have saved.
const PERSIST_FAILED: &str = "writing vector indexes failed";

fn stop(server: &mut BinaryServer) {
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "a clean stop exits 0");
    // Logged after the persist; the log is read from a pipe that may lag the exit.
    let log = server.wait_for_stderr("stopped cleanly");
    assert!(!log.contains(PERSIST_FAILED), "a clean stop persists the search indexes:\n{log}");
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

// ---------------------------------------------------------------- concurrent ingests

/// Concurrent ingesters, each into its own collection: 0 and 1 for the first user, 2 and 3 for
/// the second.
const INGESTERS: usize = 4;
const DOCS_PER_INGESTER: usize = 15;
/// Words every chunk of a [`crash_document`] holds (all its fillers), so a semantic search for
/// them reaches every chunk of a collection.
const FILLER_QUERY: &str = "orbit lantern quarry meadow";

fn ingester_collection(ingester: usize) -> String {
    format!("many{ingester}")
}

/// Ids of `found`, after checking they are all chunks `collection` acknowledged so far (only
/// this ingester writes it: anything else is another collection's or a rolled-back chunk).
/// Every id is added to `seen`.
fn acked_only(found: &[Value], acked: &HashSet<String>, seen: &mut HashSet<String>, label: &str) -> Vec<String> {
    let found = ids(found);
    let foreign: Vec<&String> = found.iter().filter(|id| !acked.contains(*id)).collect();
    assert!(foreign.is_empty(), "{label}: not acknowledged in this collection: {foreign:?}");
    seen.extend(found.iter().cloned());
    found
}

/// One ingester: ingest its documents one by one, and right after each acknowledgement find
/// the document with every strategy. Returns the chunk ids acknowledged and every id any
/// search answered.
async fn ingest_then_search(api: RagApi, token: String, ingester: usize) -> (HashSet<String>, HashSet<String>) {
    let collection = ingester_collection(ingester);
    let (mut acked, mut seen) = (HashSet::new(), HashSet::new());
    for i in 0..DOCS_PER_INGESTER {
        let marker = format!("k{ingester}q{i}");
        let body = json!({ "collection": collection, "content": crash_document(&marker, ingester, i) });
        let chunks = chunk_ids(&api.ingest_with(&token, &body).await);
        assert_eq!(chunks.len(), DOC_CHUNKS, "{marker}");
        let document: HashSet<String> = chunks.iter().cloned().collect();
        acked.extend(chunks);

        // bm25: the marker is in every chunk of this document and in nothing else.
        let lexical = api.find(&token, &collection, &marker, "bm25", 100).await;
        let found = acked_only(&lexical, &acked, &mut seen, &format!("{marker} bm25"));
        assert_eq!(found.into_iter().collect::<HashSet<_>>(), document, "{marker} bm25");

        // fuzzy: the document, and neighbours one edit away (k0q1 ~ k0q10) at most.
        let fuzzy = api.find(&token, &collection, &marker, "fuzzy", 100).await;
        let found: HashSet<_> = acked_only(&fuzzy, &acked, &mut seen, &format!("{marker} fuzzy")).into_iter().collect();
        assert!(found.is_superset(&document), "{marker} fuzzy: {found:?}");

        // semantic: each chunk's own text finds that very chunk first (cosine 1), whether the
        // builder has put it in the graph yet or it is still queued ...
        for result in &lexical {
            let (id, content) = (result["id"].as_str().unwrap(), result["content"].as_str().unwrap());
            let label = format!("{marker} semantic by the text of {id}");
            let semantic = api.find(&token, &collection, content, "semantic", 5).await;
            let first = acked_only(&semantic, &acked, &mut seen, &label).into_iter().next();
            assert_eq!(first.as_deref(), Some(id), "{label}: {semantic:?}");
            let score = semantic[0]["score"].as_f64().unwrap();
            assert!((score - 1.0).abs() < 1e-4, "{label}: {semantic:?}");
        }
        // ... the marker alone ranks the document's chunks above every other ...
        let semantic = api.find(&token, &collection, &marker, "semantic", 100).await;
        let found = acked_only(&semantic, &acked, &mut seen, &format!("{marker} semantic"));
        assert_eq!(found[..DOC_CHUNKS].iter().cloned().collect::<HashSet<_>>(), document, "{marker}: {semantic:?}");
        // ... and words of every chunk reach every chunk acknowledged so far.
        let semantic = api.find(&token, &collection, FILLER_QUERY, "semantic", 100).await;
        let found = acked_only(&semantic, &acked, &mut seen, &format!("{marker} semantic (fillers)"));
        assert_eq!(found.into_iter().collect::<HashSet<_>>(), acked, "{marker} semantic (fillers)");

        // hybrid: both rankings put the document first.
        let hybrid = api.find(&token, &collection, &marker, "hybrid", 100).await;
        let found = acked_only(&hybrid, &acked, &mut seen, &format!("{marker} hybrid"));
        assert_eq!(found[..DOC_CHUNKS].iter().cloned().collect::<HashSet<_>>(), document, "{marker}: {hybrid:?}");
    }
    (acked, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_into_many_collections_are_searchable_when_acknowledged_and_isolated() {
    let root = tempfile::tempdir().unwrap();
    let (mut server, _) = start(root.path(), CRASH_CONFIG);
    let api = api_of(&server);
    let users = [api.user().await, api.user().await];
    let owner = |ingester: usize| &users[ingester / 2];

    let ingesters: Vec<_> = (0..INGESTERS)
        .map(|ingester| tokio::spawn(ingest_then_search(api.clone(), owner(ingester).clone(), ingester)))
        .collect();
    let mut acked = Vec::new();
    let mut seen = Vec::new();
    for ingester in ingesters {
        let (ingester_acked, ingester_seen) = ingester.await.unwrap();
        assert_eq!(ingester_acked.len(), DOCS_PER_INGESTER * DOC_CHUNKS);
        acked.push(ingester_acked);
        seen.push(ingester_seen);
    }
    // No search ever answered with another ingester's chunk (acked_only checked each answer
    // against its own collection; the chunk ids of the collections are disjoint besides).
    for (ingester, seen) in seen.iter().enumerate() {
        for (other, acked) in acked.iter().enumerate().filter(|(other, _)| *other != ingester) {
            assert!(seen.is_disjoint(acked), "ingester {ingester} was answered with chunks of ingester {other}");
        }
    }

    // Each user lists exactly their own collections, with every acknowledged chunk counted;
    // the other user's collections are not found.
    for (user, token) in users.iter().enumerate() {
        let listed: HashMap<String, (u64, u64)> = api
            .collections(token)
            .await
            .iter()
            .map(|c| {
                let counts = (c["chunk_count"].as_u64().unwrap(), c["documents"].as_u64().unwrap());
                (c["name"].as_str().unwrap().to_string(), counts)
            })
            .collect();
        let expected: HashMap<String, (u64, u64)> = (0..INGESTERS)
            .filter(|ingester| ingester / 2 == user)
            .map(|ingester| {
                let counts = (acked[ingester].len() as u64, DOCS_PER_INGESTER as u64);
                (ingester_collection(ingester), counts)
            })
            .collect();
        assert_eq!(listed, expected, "user {user}");
        for ingester in (0..INGESTERS).filter(|ingester| ingester / 2 != user) {
            let body = json!({ "collection": ingester_collection(ingester), "query": "orbit" });
            let error = expect_error(api.search(token, &body).await, 404, "NOT_FOUND").await;
            assert_eq!(error["error"], format!("Collection '{}' not found", ingester_collection(ingester)));
        }
    }

    // The graphs may still have been building at the stop: their queues are dumped with them,
    // so a clean restart replays nothing and every chunk is still reached.
    stop(&mut server);
    let (server, log) = start(root.path(), CRASH_CONFIG);
    assert!(!log.contains(CAUGHT_UP), "a clean restart rebuilds nothing:\n{log}");
    let api = api_of(&server);
    for (ingester, acked) in acked.iter().enumerate() {
        let collection = ingester_collection(ingester);
        let found = api.find(owner(ingester), &collection, FILLER_QUERY, "semantic", 100).await;
        assert_eq!(&ids(&found).into_iter().collect::<HashSet<_>>(), acked, "{collection}");
        let found = api.find(owner(ingester), &collection, FILLER_QUERY, "bm25", 100).await;
        assert_eq!(&ids(&found).into_iter().collect::<HashSet<_>>(), acked, "{collection}");
    }
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

/// Chunking for [`support_corpus`]: several chunks for the longer documents.
const SUPPORT_CONFIG: &str = "[rag]\nchunk_size = 12\nchunk_overlap = 4\n";

/// Two users with a `support` collection each, for [`answers`]: documents of one or more
/// chunks, another user's same-named collection, and a deleted collection (whose documents the
/// lexical index still holds as deletions). Returns alice's and bob's tokens and how many
/// chunks are live.
async fn support_corpus(api: &RagApi) -> (String, String, u64) {
    let (alice, bob) = (api.user().await, api.user().await);
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
    (alice, bob, live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_corrupt_indexes_are_rebuilt_from_the_database_with_identical_answers() {
    let root = tempfile::tempdir().unwrap();
    let config = SUPPORT_CONFIG;
    let (mut server, log) = start(root.path(), config);
    assert!(!log.contains(CAUGHT_UP), "a fresh start replays nothing:\n{log}");
    let api = api_of(&server);
    let (alice, bob, live) = support_corpus(&api).await;
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

// ---------------------------------------------------------------- unsynced lexical index

/// What the server logs when it drops the lexical index to rebuild it.
const UNUSABLE: &str = "search index unusable; rebuilding it from the database";
/// The marker the lexical index writes before its first unsynced write (its boot id inside).
const UNSYNCED_MARKER: &str = "unsynced";
/// The running kernel's boot id, as the server reads it.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// A boot id no kernel hands out: the marker of writes from "before a reboot".
const OTHER_BOOT: &str = "00000000-0000-0000-0000-000000000000";

fn current_boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID).ok().map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_index_left_unsynced_by_a_machine_crash_is_rebuilt_with_identical_answers() {
    let root = tempfile::tempdir().unwrap();
    let marker = root.path().join("data").join("search").join(UNSYNCED_MARKER);
    let (mut server, log) = start(root.path(), SUPPORT_CONFIG);
    assert!(!log.contains(UNUSABLE), "{log}");
    let api = api_of(&server);
    let (alice, bob, live) = support_corpus(&api).await;
    let before = answers(&api, &alice, &bob).await;
    stop(&mut server);
    assert!(!marker.exists(), "a clean stop syncs the index and removes the marker");

    // The machine went down with index writes in flight: a marker from another boot. The index
    // files themselves are intact here, but nothing says so: the whole lexical index is rebuilt
    // from redb, and only it (the graph dumps of the clean stop are complete).
    std::fs::write(&marker, OTHER_BOOT).unwrap();
    let (mut server, log) = start(root.path(), SUPPORT_CONFIG);
    assert!(log.contains(UNUSABLE), "{log}");
    assert!(log.contains(CAUGHT_UP), "{log}");
    assert!(log.contains(&format!("lexical={live}")) && log.contains("vectors=0"), "{live}:\n{log}");
    // The rebuilt index marks its own (unsynced) writes with this boot's id, if at all.
    match std::fs::read_to_string(&marker) {
        Ok(marked) => {
            assert_ne!(marked.trim(), OTHER_BOOT, "the stale marker survived the rebuild");
            if let Some(current) = current_boot_id() {
                assert_eq!(marked.trim(), current);
            }
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
    }
    assert_same_answers(&before, &answers(&api_of(&server), &alice, &bob).await);
    stop(&mut server);
    assert!(!marker.exists(), "a clean stop syncs the rebuilt index and removes the marker");

    // Only the process died (same boot): the page cache kept every write, so the index is
    // trusted as it is — nothing dropped, nothing replayed.
    let Some(current) = current_boot_id() else {
        eprintln!("skipping the same-boot half: {BOOT_ID} is not readable on this machine");
        return;
    };
    std::fs::write(&marker, format!("{current}\n")).unwrap();
    let (mut server, log) = start(root.path(), SUPPORT_CONFIG);
    assert!(!log.contains(UNUSABLE), "a marker from this boot is trusted:\n{log}");
    assert!(!log.contains(CAUGHT_UP), "a trusted index replays nothing:\n{log}");
    assert_same_answers(&before, &answers(&api_of(&server), &alice, &bob).await);
    stop(&mut server);
    assert!(!marker.exists(), "a clean stop removes the marker it found");
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
