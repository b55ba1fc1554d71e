//! Hardening, "memory is bounded under abuse" (RAG): each test replays an attack on a real server.
//! Metadata copied into every chunk (RSS and database growth of a 1 MB ingest carrying the
//! largest allowed metadata, on the real binary), metadata over `[rag].max_metadata_bytes`
//! (400), per-user collection and chunk limits under concurrent ingests (403, never an
//! overshoot), an unrelated write held behind a large ingest, an ingest cut by SIGKILL rolled
//! back at start-up with its reservation released, and schema-8 chunk records (written by the
//! previous binary, `tests/fixtures/rag/`) migrated with identical search results.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{BinaryServer, TestServer, expect_error, expect_json};
use crate::mock_provider::MockProvider;
use crate::rag::{RagApi, mock_embedder_config};

/// `[rag].max_metadata_bytes` by default.
const DEFAULT_MAX_METADATA: usize = 65_536;
/// 20-word windows every 15 words: a document of `15k + 5` words has `k` chunks.
const SMALL_CHUNKS: &str = "[rag]\nchunk_size = 20\nchunk_overlap = 5\n";

/// A document of exactly `chunks` chunks under [`SMALL_CHUNKS`], made of `marker` and numbered
/// words.
fn document_of(chunks: usize, marker: &str) -> String {
    let words = 15 * chunks + 5;
    (0..words).map(|i| if i % 5 == 0 { marker.to_string() } else { format!("w{i}") }).collect::<Vec<_>>().join(" ")
}

/// About `bytes` of prose-like text from a small vocabulary (deterministic).
fn prose(bytes: usize) -> String {
    const WORDS: &[&str] =
        &["river", "mountain", "ledger", "quantum", "harbor", "signal", "orchard", "copper", "lantern", "meadow"];
    let mut text = String::with_capacity(bytes + 16);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while text.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    text
}

fn vm_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

fn file_mb(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len() / (1024 * 1024)
}

// ---------------------------------------------------------------- metadata stored once

/// Before: every chunk carried its own copy of the metadata, so 64 KB of metadata on a 1 MB
/// document (~960 chunks) grew the database by ~196 MB and RSS by ~210 MB (500 KB of metadata:
/// ~580 MB and ~1 GB). Now it is stored once per document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mb_ingest_with_the_largest_metadata_stays_small_in_memory_and_on_disk() {
    let root = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(root.path()).start();
    let patient = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build().unwrap();
    let api = RagApi::new(&patient, &server.url(""));
    let token = api.user().await;
    // Warm up: the search index writer, the first graph and the allocator's arenas exist.
    api.ingest_ok(&token, "warm-up", &prose(64 * 1024)).await;

    // The merged metadata (blob, title, source, tags, chunking strategy) just under the cap.
    let blob = "m".repeat(DEFAULT_MAX_METADATA - 200);
    let body = json!({ "collection": "big-metadata", "content": prose(1024 * 1024), "metadata": { "blob": blob } });
    let db = server.data_dir().join("ares.redb");
    let (rss_before, db_before) = (vm_rss_mb(server.pid()), file_mb(&db));
    let ingested = api.ingest_with(&token, &body).await;
    let (rss_after, db_after) = (vm_rss_mb(server.pid()), file_mb(&db));
    let chunks = ingested["chunks_created"].as_u64().unwrap();
    println!(
        "1 MB + {} B metadata: {chunks} chunks; RSS {rss_before} -> {rss_after} MB, database {db_before} -> {db_after} MB",
        blob.len()
    );
    assert!(chunks > 900, "{chunks}");
    // Stored once: ~2.7 MB of chunk text and embeddings plus the metadata (old: +196 MB).
    assert!(db_after - db_before <= 32, "database grew {db_before} -> {db_after} MB");
    // Old: +210 MB. What remains is the request, the chunk texts and one batch.
    assert!(rss_after.saturating_sub(rss_before) <= 100, "RSS grew {rss_before} -> {rss_after} MB");

    // Search results still carry each chunk's full metadata.
    let results = api.find(&token, "big-metadata", "lantern harbor", "hybrid", 5).await;
    assert_eq!(results.len(), 5);
    let document_id = ingested["document_ids"][0].as_str().unwrap().rsplit_once('_').unwrap().0.to_string();
    for result in &results {
        let metadata = &result["metadata"];
        assert_eq!(metadata["blob"].as_str().map(str::len), Some(blob.len()), "{}", result["id"]);
        assert_eq!(metadata["document_id"], document_id);
        assert_eq!(metadata["chunk_index"], result["chunk_index"]);
        assert_eq!(format!("{document_id}_{}", metadata["chunk_index"]), result["id"].as_str().unwrap());
        assert!(metadata["created_at"].as_str().unwrap().ends_with('Z'), "{metadata}");
        assert_eq!(metadata["chunking_strategy"], "word");
        assert_eq!((metadata["title"].as_str(), metadata["tags"].as_array().map(Vec::len)), (Some(""), Some(0)));
    }
}

// ---------------------------------------------------------------- metadata cap

#[tokio::test]
async fn metadata_over_max_metadata_bytes_is_a_400() {
    let server = TestServer::builder().config("[rag]\nmax_metadata_bytes = 1024\n").start();
    let api = RagApi::of(&server);
    let token = api.user().await;
    let content = "The lighthouse keeper logs every passing ship.";

    let over = json!({ "collection": "c", "content": content, "metadata": { "blob": "x".repeat(2000) } });
    let error = expect_error(api.ingest(&token, &over).await, 400, "INVALID_INPUT").await;
    assert!(error["error"].as_str().unwrap().contains("Metadata too large"), "{error}");
    // Title, source and tags are stored with the metadata and count towards it.
    let title = json!({ "collection": "c", "content": content, "title": "t".repeat(2000) });
    expect_error(api.ingest(&token, &title).await, 400, "INVALID_INPUT").await;
    let tags = json!({ "collection": "c", "content": content, "tags": vec!["tag"; 400] });
    expect_error(api.ingest(&token, &tags).await, 400, "INVALID_INPUT").await;
    // Nothing was created by the refusals.
    assert!(api.collections(&token).await.is_empty());

    let within = json!({ "collection": "c", "content": content, "metadata": { "blob": "x".repeat(800) } });
    api.ingest_with(&token, &within).await;
    let found = api.find(&token, "c", "lighthouse", "bm25", 1).await;
    assert_eq!(found[0]["metadata"]["blob"].as_str().map(str::len), Some(800));
}

// ---------------------------------------------------------------- per-user limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_limit_is_a_403_and_exact_under_concurrent_ingests() {
    let server = TestServer::builder().config("[rag]\nmax_collections_per_user = 3\n").start();
    let api = RagApi::of(&server);
    let (alice, bob) = (api.user().await, api.user().await);

    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let (api, token) = (api.clone(), alice.clone());
            tokio::spawn(async move {
                let body = json!({ "collection": format!("c{i}"), "content": format!("document number {i} of many") });
                let response = api.ingest(&token, &body).await;
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        if status == 403 {
            assert_eq!(body["code"], "FORBIDDEN", "{body}");
            assert!(body["error"].as_str().unwrap().contains("Collection limit"), "{body}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [[200; 3].as_slice(), [403; 9].as_slice()].concat(), "exactly the limit, no overshoot");
    let owned = api.collections(&alice).await;
    assert_eq!(owned.len(), 3, "{owned:?}");

    // Existing collections still take documents; another user has a limit of their own.
    let existing = owned[0]["name"].as_str().unwrap().to_string();
    api.ingest_ok(&alice, &existing, "another document for an existing collection").await;
    for i in 0..3 {
        api.ingest_ok(&bob, &format!("b{i}"), "bob's own document").await;
    }
    let fourth = json!({ "collection": "b3", "content": "one too many" });
    expect_error(api.ingest(&bob, &fourth).await, 403, "FORBIDDEN").await;

    // Deleting one makes room for one.
    expect_json(api.delete(&alice, &json!({ "collection": existing })).await, 200).await;
    api.ingest_ok(&alice, "replacement", "a new collection in the freed slot").await;
    let again = json!({ "collection": "one-more", "content": "and no more" });
    expect_error(api.ingest(&alice, &again).await, 403, "FORBIDDEN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chunk_limit_is_a_403_and_exact_under_concurrent_ingests() {
    let config = format!("{SMALL_CHUNKS}max_chunks_per_user = 10\n");
    let server = TestServer::builder().config(&config).start();
    let api = RagApi::of(&server);
    let (alice, bob) = (api.user().await, api.user().await);

    // Twelve 3-chunk documents at once, in two collections: 3 fit (9 chunks), a 4th would be 12.
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let (api, token) = (api.clone(), alice.clone());
            tokio::spawn(async move {
                let body = json!({ "collection": format!("c{}", i % 2), "content": document_of(3, &format!("m{i}")) });
                let response = api.ingest(&token, &body).await;
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut accepted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            (200, body) => {
                assert_eq!(body["chunks_created"], 3, "{body}");
                accepted += 1;
            }
            (403, body) => {
                assert_eq!(body["code"], "FORBIDDEN", "{body}");
                assert!(body["error"].as_str().unwrap().contains("Chunk limit"), "{body}");
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(accepted, 3, "exactly the limit, no overshoot");
    let held = |collections: &[Value]| collections.iter().map(|c| c["chunk_count"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(held(&api.collections(&alice).await), 9);

    // One more chunk fits; then nothing does. Bob is not affected.
    api.ingest_ok(&alice, "c0", &document_of(1, "last")).await;
    let over = json!({ "collection": "c0", "content": document_of(1, "over") });
    expect_error(api.ingest(&alice, &over).await, 403, "FORBIDDEN").await;
    api.ingest_ok(&bob, "c0", &document_of(3, "bob")).await;

    // A deleted collection gives its chunks back. Which of c0 and c1 the accepted ingests went
    // to depends on their order (c1 may not exist at all), so delete whichever holds chunks.
    let collections = api.collections(&alice).await;
    let victim = collections.iter().find(|c| c["chunk_count"].as_u64().unwrap() > 0).expect("a collection with chunks");
    let (victim_name, freed) = (victim["name"].as_str().unwrap().to_string(), victim["chunk_count"].as_u64().unwrap());
    expect_json(api.delete(&alice, &json!({ "collection": victim_name })).await, 200).await;
    api.ingest_ok(&alice, "c2", &document_of(freed as usize, "refill")).await;
    expect_error(api.ingest(&alice, &over).await, 403, "FORBIDDEN").await;
    assert_eq!(held(&api.collections(&alice).await), 10);
}

// ---------------------------------------------------------------- other writers interleave

/// Before: the whole document was written in one transaction under a global lock, so a logout
/// (one tiny write) waited for all of it — seconds with large metadata. Now the document is
/// committed in batches through the group-commit writer, and other writes share those commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_write_is_not_held_behind_a_large_ingest() {
    let server = TestServer::start();
    let patient = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build().unwrap();
    let api = RagApi::new(&patient, &server.base_url());
    let token = api.user().await;
    api.ingest_ok(&token, "small", "The lighthouse keeper logs every passing ship.").await;

    let body = json!({
        "collection": "big",
        "content": prose(3 * 1024 * 1024),
        "metadata": { "blob": "b".repeat(32 * 1024) },
    });
    let started = Instant::now();
    let ingest = {
        let (api, token) = (api.clone(), token.clone());
        tokio::spawn(async move { (expect_json(api.ingest(&token, &body).await, 200).await, started.elapsed()) })
    };
    let (mut writes, mut searches) = (Vec::new(), Vec::new());
    while !ingest.is_finished() {
        // Logout of an unknown refresh token: one small write through the writer.
        let sent = Instant::now();
        let refresh = uuid::Uuid::new_v4().to_string();
        let response = server.client().post(server.url("/api/auth/logout")).json(&json!({ "refresh_token": refresh }));
        assert_eq!(response.send().await.unwrap().status(), 200);
        writes.push(sent.elapsed());
        let sent = Instant::now();
        assert_eq!(api.find(&token, "small", "lighthouse", "hybrid", 1).await.len(), 1);
        searches.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ingested, took) = ingest.await.unwrap();
    let max = |samples: &[Duration]| samples.iter().max().copied().unwrap_or_default();
    println!(
        "{} chunks in {took:?}; {} logouts meanwhile (slowest {:?}), {} searches of another collection (slowest {:?})",
        ingested["chunks_created"],
        writes.len(),
        max(&writes),
        searches.len(),
        max(&searches)
    );
    assert!(writes.len() >= 10, "too few writes overlapped the ingest ({took:?})");
    // Generous (a debug build on a busy machine); before, the slowest logout took the whole
    // document's transaction.
    assert!(max(&writes) < Duration::from_millis(1000), "a logout waited for the ingest: {writes:?}");
    assert!(max(&searches) < Duration::from_millis(2000), "a search waited for the ingest: {searches:?}");
}

// ---------------------------------------------------------------- crash mid-ingest

/// Before, a document was one transaction; now it is many, so a SIGKILL can leave part of one
/// behind. Start-up rolls both interrupted ingests back: their chunks (also out of the lexical
/// index, where they would outrank and crowd out live chunks), the collection one of them
/// created, and their reservations against the chunk limit (which would otherwise leak and lock
/// the user out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingests_cut_by_sigkill_are_rolled_back_at_start_up_with_their_reservations() {
    const BIG: usize = 2000;
    let root = tempfile::tempdir().unwrap();
    let config = format!("{SMALL_CHUNKS}max_chunks_per_user = {}\n", 2 * BIG + 1);
    let mut server = BinaryServer::builder(root.path()).config(&config).start();
    let patient = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build().unwrap();
    let api = RagApi::new(&patient, &server.url(""));
    let token = api.user().await;
    // One chunk that mentions the word once; the interrupted documents mention it in every chunk.
    let keep = format!("crashword {}", (1..20).map(|i| format!("k{i}")).collect::<Vec<_>>().join(" "));
    api.ingest_ok(&token, "kept", &keep).await;

    let ingests: Vec<_> = ["kept", "fresh"]
        .into_iter()
        .map(|collection| {
            let (api, token) = (api.clone(), token.clone());
            let body = json!({ "collection": collection, "content": document_of(BIG, "crashword") });
            tokio::spawn(async move { api.try_post("/api/rag/ingest", &token, &body).await.map(|r| r.status()) })
        })
        .collect();
    // Wait until both have committed some batches but not all, then kill.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let collections = api.collections(&token).await;
        let written = |name: &str| {
            collections.iter().find(|c| c["name"] == name).map_or(0, |c| c["chunk_count"].as_u64().unwrap() as usize)
        };
        if (2..=BIG).contains(&written("kept")) && (1..BIG).contains(&written("fresh")) {
            break;
        }
        assert!(ingests.iter().all(|i| !i.is_finished()), "an ingest finished before it could be interrupted");
        assert!(Instant::now() < deadline, "no partial ingests seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for ingest in ingests {
        assert!(ingest.await.unwrap().is_err(), "the ingest was never answered");
    }

    let server = BinaryServer::builder(root.path()).config(&config).start();
    let log = server.wait_for_stderr(": serving");
    assert!(log.contains("rolled back ingests interrupted by a crash"), "{log}");
    let api = RagApi::new(&patient, &server.url(""));
    // Same secrets, so the access token is still valid across the restart.
    let collections = api.collections(&token).await;
    assert_eq!(collections.len(), 1, "the half-written new collection is gone: {collections:?}");
    assert_eq!((&collections[0]["name"], &collections[0]["chunk_count"]), (&json!("kept"), &json!(1)));
    let search = json!({ "collection": "fresh", "query": "crashword", "strategy": "bm25" });
    expect_error(api.search(&token, &search).await, 404, "NOT_FOUND").await;
    let found = api.find(&token, "kept", "crashword", "bm25", 1).await;
    assert_eq!(found.len(), 1, "rolled-back chunks must not take the only result slot");
    assert_eq!(found[0]["content"], keep.as_str());
    // The reservations were released: 3 more chunks fit, and both documents again do not.
    api.ingest_ok(&token, "after", &document_of(3, "after")).await;
    let both = json!({ "collection": "kept", "content": document_of(2 * BIG, "again") });
    expect_error(api.ingest(&token, &both).await, 403, "FORBIDDEN").await;
    assert_eq!(api.find(&token, "after", "after", "bm25", 10).await.len(), 3);
}

/// An ingest that fails half-way (the remote embedder starts failing after some batches were
/// committed) is rolled back at once: its chunks, the collection it created, its reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_that_fails_half_way_is_rolled_back() {
    const BIG: usize = 2000;
    let mock = MockProvider::start();
    let config =
        format!("{SMALL_CHUNKS}max_chunks_per_user = {BIG}\n{}", mock_embedder_config(&mock, "ollama", 64, ""));
    let server = TestServer::builder().config(&config).start();
    let patient = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build().unwrap();
    let api = RagApi::new(&patient, &server.base_url());
    let token = api.user().await;

    let ingest = {
        let (api, token) = (api.clone(), token.clone());
        let body = json!({ "collection": "doomed", "content": document_of(BIG, "failword") });
        tokio::spawn(async move {
            let response = api.ingest(&token, &body).await;
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let collections = api.collections(&token).await;
        let written =
            collections.iter().find(|c| c["name"] == "doomed").map_or(0, |c| c["chunk_count"].as_u64().unwrap());
        if written > 0 && (written as usize) < BIG {
            break;
        }
        assert!(!ingest.is_finished(), "the ingest finished before the embedder could fail");
        assert!(Instant::now() < deadline, "no partial ingest seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    mock.set_embedding_status(500);
    let (status, body) = ingest.await.unwrap();
    assert_eq!(status, 502, "{body}");
    mock.set_embedding_status(200);

    assert!(api.collections(&token).await.is_empty(), "the collection the ingest created is gone");
    let search = json!({ "collection": "doomed", "query": "failword", "strategy": "bm25" });
    expect_error(api.search(&token, &search).await, 404, "NOT_FOUND").await;
    // The whole reservation is free again: the same document fits, all of it.
    let retried = json!({ "collection": "doomed", "content": document_of(BIG, "failword") });
    let ingested = api.ingest_with(&token, &retried).await;
    assert_eq!(ingested["chunks_created"], BIG);
    let one_more = json!({ "collection": "doomed", "content": document_of(1, "over") });
    expect_error(api.ingest(&token, &one_more).await, 403, "FORBIDDEN").await;
}

// ---------------------------------------------------------------- schema 8 chunks migrate

fn rag_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rag").join(name)
}

/// `rag-schema-v8.redb` was written by the previous binary (chunks with their own metadata);
/// `rag-schema-v8.json` holds its ingest and search answers. After migration the same searches
/// answer the same chunks with the same metadata, and the chunks count against the user's limit.
#[tokio::test]
async fn schema_8_chunks_migrate_to_documents_with_identical_search_results() {
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(rag_fixture("rag-schema-v8.json")).unwrap()).unwrap();
    let existing: u64 =
        recorded["ingests"].as_array().unwrap().iter().map(|i| i["response"]["chunks_created"].as_u64().unwrap()).sum();
    let data = tempfile::tempdir().unwrap();
    std::fs::copy(rag_fixture("rag-schema-v8.redb"), data.path().join("ares.redb")).unwrap();
    // The fusion the answers were recorded under (the defaults then; the hash embedder's are
    // now 0.5 and k 5): this test is about what migration keeps, not about fusion.
    let config =
        format!("{SMALL_CHUNKS}max_chunks_per_user = {}\nhybrid_semantic_weight = 1.0\nrrf_k = 60.0\n", existing + 3);
    let server = TestServer::builder().config(&config).data_dir(data.path()).start();
    let api = RagApi::of(&server);
    let login = server
        .client()
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": "fixture-rag@example.com", "password": "fixture-password-123" }))
        .send()
        .await
        .unwrap();
    let token = expect_json(login, 200).await["access_token"].as_str().unwrap().to_string();

    for search in recorded["searches"].as_array().unwrap() {
        let before = search["response"].as_array().unwrap();
        let after = api.search_ok(&token, &search["request"]).await;
        assert_eq!(after.len(), before.len(), "{}", search["request"]);
        for (old, new) in before.iter().zip(&after) {
            for field in ["id", "content", "metadata", "document_id", "chunk_index", "collection"] {
                assert_eq!(old[field], new[field], "{field} of {}", old["id"]);
            }
            let (old_score, new_score) = (old["score"].as_f64().unwrap(), new["score"].as_f64().unwrap());
            assert!((old_score - new_score).abs() < 1e-4, "{old_score} vs {new_score}");
        }
    }
    // The migrated chunks are counted: 3 more fit, then none.
    api.ingest_ok(&token, "notes", &document_of(3, "fresh")).await;
    let over = json!({ "collection": "notes", "content": document_of(1, "over") });
    expect_error(api.ingest(&token, &over).await, 403, "FORBIDDEN").await;
}

// ---------------------------------------------------------------- quiet dependencies

/// tantivy logs every commit and merge at DEBUG; an operator who sets `log_level = "debug"` to
/// follow the server should not get a line per indexing round from it. It stays at WARN unless
/// `RUST_LOG` asks for it (which shows the lines exist and are only filtered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_library_logs_at_warn_unless_rust_log_asks_for_more() {
    let root = tempfile::tempdir().unwrap();
    let config = "[server]\nlog_level = \"debug\"\n";
    for rust_log in [None, Some("debug")] {
        let mut builder = BinaryServer::builder(root.path()).config(config);
        if let Some(level) = rust_log {
            builder = builder.env("RUST_LOG", level);
        }
        let mut server = builder.start();
        let api = RagApi::new(server.client(), &server.url(""));
        let token = api.user().await;
        api.ingest_ok(&token, "quiet", "a few words to index in one collection").await;
        // A search brings the index up to the ingest: a tantivy commit has run by its answer.
        let found = api.search(&token, &json!({ "collection": "quiet", "query": "index words" })).await;
        assert_eq!(found.status(), 200);
        server.terminate();
        let log = server.stderr();
        match rust_log {
            None => {
                assert!(log.contains("DEBUG ares"), "the server's own DEBUG lines are kept: {log}");
                assert!(!log.contains("tantivy"), "{log}");
            }
            Some(_) => assert!(log.contains("tantivy"), "RUST_LOG=debug lets them through: {log}"),
        }
    }
}
