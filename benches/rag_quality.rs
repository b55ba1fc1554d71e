//! Retrieval quality on real text (issue 19 item 4): a known-item benchmark over the Rust Book
//! that every machine with this toolchain has under `$(rustc --print sysroot)/share/doc/rust/
//! html/book` (or `ARES_BENCH_BOOK=<dir>`).
//!
//! Each `<h2>`/`<h3>` section of every chapter is one document (its heading and text), ingested
//! into one collection with the default config (200-word chunks, 50 overlapping, the `hash`
//! embedder). The query is the section's heading; the relevant item is the chunk the section
//! starts (its document's first chunk). Headings used by more than one section are left out: no
//! single chunk is right for them. `fuzzy` gets the query with one typo (two adjacent letters
//! of its longest word swapped); the other strategies get it clean.
//!
//! Reports MRR@10 and recall@10 per strategy, with and without rerank (the built-in rescoring,
//! as no reranker is configured).
//!
//! `cargo bench --bench rag_quality`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};

// Shared with benches/rag.rs, which uses the rest of it.
#[allow(dead_code)]
#[path = "support/rust_docs.rs"]
mod rust_docs;

use ares::config::RagConfig;
use ares::rag::chunking::Strategy;
use ares::rag::{IngestRequest, Rag, SearchRequest, SearchStrategy};
use ares::store::{MigrationPolicy, Store};

const TOP_K: usize = 10;
const MIN_WORDS: usize = 30;

struct Section {
    heading: String,
    text: String,
}

fn book_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARES_BENCH_BOOK") {
        return PathBuf::from(dir);
    }
    rust_docs::html_root().join("book")
}

/// The `<h2>` and `<h3>` sections of one chapter's `<main>`.
fn sections(html: &str) -> Vec<Section> {
    let main = match (html.find("<main>"), html.find("</main>")) {
        (Some(start), Some(end)) if start < end => &html[start..end],
        _ => return Vec::new(),
    };
    let mut starts: Vec<usize> = Vec::new();
    for tag in ["<h2", "<h3"] {
        starts.extend(main.match_indices(tag).map(|(i, _)| i));
    }
    starts.sort_unstable();
    let mut out = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(main.len());
        let block = &main[start..end];
        let Some(close) = block.find("</h2>").or_else(|| block.find("</h3>")) else { continue };
        let heading = rust_docs::plain(&block[..close]);
        let text = rust_docs::plain(&block[close..]);
        if !heading.is_empty() && text.split_whitespace().count() >= MIN_WORDS {
            out.push(Section { heading, text });
        }
    }
    out
}

fn corpus(dir: &Path) -> Vec<Section> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the Rust Book is not at {} ({e}); set ARES_BENCH_BOOK", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .filter(|p| !p.file_name().is_some_and(|n| n == "print.html" || n == "toc.html"))
        .collect();
    files.sort();
    let mut all: Vec<Section> = files.iter().flat_map(|f| sections(&std::fs::read_to_string(f).unwrap())).collect();
    // A heading several sections share has no one right answer.
    let mut counts = std::collections::HashMap::new();
    for section in &all {
        *counts.entry(section.heading.to_lowercase()).or_insert(0) += 1;
    }
    all.retain(|s| counts[&s.heading.to_lowercase()] == 1);
    all
}

/// One typo: two adjacent letters in the middle of the query's longest word swapped.
fn with_typo(query: &str) -> String {
    let longest = query.split_whitespace().max_by_key(|w| w.chars().count()).unwrap_or("");
    let chars: Vec<char> = longest.chars().collect();
    if chars.len() < 4 {
        return query.to_string();
    }
    let mut swapped = chars.clone();
    let at = chars.len() / 2 - 1;
    swapped.swap(at, at + 1);
    let swapped: String = swapped.into_iter().collect();
    query.replacen(longest, &swapped, 1)
}

struct Score {
    mrr: f64,
    recall: f64,
}

fn evaluate(rag: &Rag, store: &Store, items: &[(String, String)], strategy: SearchStrategy, rerank: bool) -> Score {
    let (mut reciprocal, mut found) = (0.0, 0usize);
    for (query, relevant) in items {
        let query = if strategy == SearchStrategy::Fuzzy { with_typo(query) } else { query.clone() };
        let request = SearchRequest {
            user_id: "bench".into(),
            collection: "book".into(),
            query,
            strategy,
            top_k: TOP_K,
            threshold: None,
            rerank,
        };
        let hits = rag.search(store, &request).unwrap().hits;
        if let Some(rank) = hits.iter().position(|h| &h.chunk.chunk_id == relevant) {
            reciprocal += 1.0 / (rank + 1) as f64;
            found += 1;
        }
    }
    Score { mrr: reciprocal / items.len() as f64, recall: found as f64 / items.len() as f64 }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = book_dir();
    let sections = corpus(&dir);
    let temp = tempfile::tempdir().unwrap();
    let store = Store::open(&temp.path().join("ares.redb"), MigrationPolicy::Apply).unwrap();
    let env = |_: &str| None;
    // The shipped defaults; `ARES_BENCH_FUSION="<semantic weight>,<k>"` tries another fusion.
    let mut config = RagConfig::default();
    if let Ok(fusion) = std::env::var("ARES_BENCH_FUSION") {
        let mut parts = fusion.split(',').map(|p| p.trim().parse::<f32>().expect("ARES_BENCH_FUSION=<weight>,<k>"));
        config.hybrid_semantic_weight = parts.next();
        config.rrf_k = parts.next();
    }
    let rag = Rag::open(&config, temp.path(), &store, &env).unwrap();
    let mut items = Vec::with_capacity(sections.len());
    let mut chunks = 0;
    for section in &sections {
        let outcome = rag
            .ingest(
                &store,
                IngestRequest {
                    user_id: "bench".into(),
                    collection: "book".into(),
                    content: format!("{}\n\n{}", section.heading, section.text),
                    strategy: Strategy::Word,
                    metadata: serde_json::Map::new(),
                },
            )
            .unwrap();
        chunks += outcome.chunk_ids.len();
        items.push((section.heading.clone(), outcome.chunk_ids[0].clone()));
    }
    let fusion = config.fusion();
    println!(
        "\nknown-item retrieval over the Rust Book ({}): {} sections (queries), {chunks} chunks, top {TOP_K}; \
         hybrid = RRF with semantic weight {}, BM25 weight {}, k {}",
        dir.display(),
        items.len(),
        fusion.semantic_weight,
        fusion.bm25_weight,
        fusion.k
    );
    println!(
        "{:<10} {:>8} {:>10} {:>14} {:>16}",
        "strategy", "MRR@10", "recall@10", "MRR@10 rerank", "recall@10 rerank"
    );
    for (name, strategy) in [
        ("bm25", SearchStrategy::Bm25),
        ("fuzzy*", SearchStrategy::Fuzzy),
        ("semantic", SearchStrategy::Semantic),
        ("hybrid", SearchStrategy::Hybrid),
    ] {
        let plain = evaluate(&rag, &store, &items, strategy, false);
        let reranked = evaluate(&rag, &store, &items, strategy, true);
        println!(
            "{name:<10} {:>8.3} {:>10.3} {:>14.3} {:>16.3}",
            plain.mrr, plain.recall, reranked.mrr, reranked.recall
        );
    }
    println!("* fuzzy queries carry one typo each; the others are the clean headings");
}
