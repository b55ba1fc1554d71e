//! Combining and re-ordering candidates: reciprocal-rank fusion for `hybrid`, and reranking —
//! by a configured `/rerank` endpoint or, without one, by a built-in rescoring.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

/// A candidate's place in each ranking it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Components {
    pub semantic: Option<(usize, f32)>,
    pub bm25: Option<(usize, f32)>,
}

/// Reciprocal-rank fusion: `Σ weight / (k + rank)` over the rankings a chunk appears in (rank
/// from 1). Returns `(seq, fused score, components)` best first; ties keep semantic order.
pub fn reciprocal_rank(
    semantic: &[(u64, f32)],
    bm25: &[(u64, f32)],
    semantic_weight: f32,
    bm25_weight: f32,
    k: f32,
) -> Vec<(u64, f32, Components)> {
    let mut fused: HashMap<u64, (f32, Components, usize)> = HashMap::new();
    for (rank, (seq, score)) in semantic.iter().enumerate() {
        let entry = fused.entry(*seq).or_insert((0.0, Components::default(), rank));
        entry.0 += semantic_weight / (k + rank as f32 + 1.0);
        entry.1.semantic = Some((rank + 1, *score));
    }
    for (rank, (seq, score)) in bm25.iter().enumerate() {
        let entry = fused.entry(*seq).or_insert((0.0, Components::default(), semantic.len() + rank));
        entry.0 += bm25_weight / (k + rank as f32 + 1.0);
        entry.1.bm25 = Some((rank + 1, *score));
    }
    let mut out: Vec<(u64, f32, Components, usize)> =
        fused.into_iter().map(|(seq, (score, parts, order))| (seq, score, parts, order)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.3.cmp(&b.3)));
    out.into_iter().map(|(seq, score, parts, _)| (seq, score, parts)).collect()
}

/// Built-in rescoring without a reranker model: how much of the query a chunk covers, blended
/// with its earlier score.
///
/// `0.6 × coverage + 0.25 × phrase bonus + 0.15 × normalised prior score`, where coverage is
/// the share of the query's distinct words (three or more letters, lower-cased) found in the
/// chunk, the phrase bonus is 1 when the whole query appears verbatim (case-insensitive), and
/// the prior is the candidate's score divided by the best candidate's.
pub fn rescore(query: &str, candidates: &[(String, f32)]) -> Vec<f32> {
    let query_lower = query.to_lowercase();
    let words: Vec<&str> = {
        let mut words: Vec<&str> =
            query_lower.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3).collect();
        words.sort_unstable();
        words.dedup();
        words
    };
    let best = candidates.iter().map(|(_, s)| *s).fold(0.0f32, f32::max);
    candidates
        .iter()
        .map(|(text, prior)| {
            let lower = text.to_lowercase();
            let coverage = if words.is_empty() {
                0.0
            } else {
                words.iter().filter(|w| lower.contains(**w)).count() as f32 / words.len() as f32
            };
            let phrase = if !query_lower.trim().is_empty() && lower.contains(query_lower.trim()) { 1.0 } else { 0.0 };
            let prior = if best > 0.0 { prior / best } else { 0.0 };
            0.6 * coverage + 0.25 * phrase + 0.15 * prior
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("reranker at {url}: {message}")]
pub struct RerankError {
    pub url: String,
    pub message: String,
}

/// Ask a `/rerank` endpoint (Jina, TEI, llama.cpp server) to score `documents` against `query`.
/// Returns one score per document, in input order. Blocking.
pub fn remote_rerank(url: &str, model: Option<&str>, query: &str, documents: &[&str]) -> Result<Vec<f32>, RerankError> {
    let fail = |message: String| RerankError { url: url.to_string(), message };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut body = json!({ "query": query, "documents": documents, "texts": documents, "top_n": documents.len(), "return_documents": false });
    if let (Some(model), Some(object)) = (model, body.as_object_mut()) {
        object.insert("model".into(), Value::from(model));
    }
    let mut response = agent.post(url).send_json(&body).map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("HTTP {}: {}", status.as_u16(), text.chars().take(300).collect::<String>())));
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    // Jina / llama.cpp: {"results":[{"index","relevance_score"}]}; TEI: [{"index","score"}].
    let items = value
        .get("results")
        .and_then(Value::as_array)
        .or_else(|| value.as_array())
        .ok_or_else(|| fail("no results in the response".into()))?;
    let mut scores = vec![f32::NEG_INFINITY; documents.len()];
    for item in items {
        let index =
            item.get("index").and_then(Value::as_u64).ok_or_else(|| fail("a result has no index".into()))? as usize;
        let score = item
            .get("relevance_score")
            .or_else(|| item.get("score"))
            .and_then(Value::as_f64)
            .ok_or_else(|| fail("a result has no score".into()))? as f32;
        if index >= documents.len() {
            return Err(fail(format!("result index {index} out of range")));
        }
        scores[index] = score;
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_and_keeps_components() {
        let semantic = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let bm25 = [(3, 12.0), (4, 9.0)];
        let fused = reciprocal_rank(&semantic, &bm25, 1.0, 1.0, 60.0);
        assert_eq!(fused[0].0, 3, "in both lists");
        assert_eq!(fused[0].2, Components { semantic: Some((3, 0.7)), bm25: Some((1, 12.0)) });
        assert_eq!(fused.len(), 4);
        assert!((fused[0].1 - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn weights_shift_the_balance() {
        let fused = reciprocal_rank(&[(1, 0.9)], &[(2, 5.0)], 1.0, 3.0, 60.0);
        assert_eq!(fused[0].0, 2);
    }

    #[test]
    fn rescoring_prefers_coverage_and_phrases() {
        let scores = rescore(
            "rust borrow checker",
            &[("the borrow checker in rust".into(), 0.5), ("rust is fast".into(), 1.0), ("unrelated".into(), 1.0)],
        );
        assert!(scores[0] > scores[1] && scores[1] > scores[2], "{scores:?}");
    }
}
