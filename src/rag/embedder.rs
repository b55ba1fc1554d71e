//! Embedders: chunk and query text in, one L2-normalised vector per text out.
//!
//! - `hash` (the default) is built in: signed feature hashing of words, word pairs and
//!   character trigrams. It is offline, instant and deterministic forever, and it is
//!   **lexical, not semantic**: texts are close when they share words (or, through trigrams,
//!   near-spellings of words), never because they mean the same thing — "car" and "automobile"
//!   are unrelated to it. Its vectors are persisted, so the hashing is pinned: FNV-1a 64 from
//!   the `fnv` crate plus a fixed bit mixer, never std's `DefaultHasher`. Any change to what is
//!   hashed must bump `HASH_VERSION`, which changes the descriptor and so refuses old
//!   collections instead of silently searching them with different vectors.
//! - `ollama` (`POST /api/embed`) and `openai` (`POST {base_url}/embeddings`, any
//!   OpenAI-compatible server) call a model over HTTP with ureq. Those calls block: run them on
//!   the blocking pool. Built from `[rag.embedder]` ([`Embedder::from_config`]) for RAG, or
//!   from a configured chat provider and a model id ([`Embedder::for_provider`]) for
//!   `POST /v1/embeddings`.

use std::hash::Hasher as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{EmbedderConfig, EmbedderKind, EnvLookup, ProviderKind};
use crate::llm::LlmError;
use crate::llm::provider::Provider;

/// Part of the hash descriptor: bump it whenever the hash features or their weights change.
const HASH_VERSION: &str = "hash-v1";
const WORD_WEIGHT: f32 = 1.0;
const BIGRAM_WEIGHT: f32 = 0.5;
const TRIGRAM_WEIGHT: f32 = 0.25;
/// First byte hashed for each feature family, so a word and a trigram never share a hash.
const WORD_TAG: u8 = b'w';
const BIGRAM_TAG: u8 = b'b';
const TRIGRAM_TAG: u8 = b't';
/// Separates the two words of a bigram; 0xFF never occurs in UTF-8.
const BIGRAM_SEPARATOR: u8 = 0xFF;

const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";
const DEFAULT_OLLAMA_MODEL: &str = "nomic-embed-text";
const DEFAULT_OPENAI_URL: &str = "https://api.openai.com/v1";
const DEFAULT_OPENAI_MODEL: &str = "text-embedding-3-small";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A CPU-only server can take a while over a full batch of long chunks (and loads the model on
/// first use).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);
/// ureq's default 10 MB body cap is too small for big batches of wide vectors as JSON text.
const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;
/// Characters of a non-JSON error body quoted in an error.
const ERROR_BODY_CHARS: usize = 300;
/// Texts per call to a provider's embeddings endpoint: OpenAI's own per-request input limit,
/// so a client's batch (already within it) goes upstream as one call.
const PROVIDER_BATCH_SIZE: usize = 2048;

/// The configured embedder. Build with [`Embedder::from_config`]; nothing is contacted until
/// [`Embedder::embed_blocking`].
pub enum Embedder {
    /// Built-in feature hashing into `dimensions` coordinates.
    Hash { dimensions: usize },
    /// An Ollama server's `/api/embed`.
    Ollama(RemoteEmbedder),
    /// An OpenAI-compatible `/embeddings` endpoint.
    OpenAi(RemoteEmbedder),
}

/// Endpoint, model, key and keep-alive HTTP agent of a remote embedder.
pub struct RemoteEmbedder {
    base_url: String,
    model: String,
    api_key: Option<String>,
    /// The key variable named by `api_key_env` when it is not set: a hint for 401s.
    missing_key_env: Option<String>,
    batch_size: usize,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::fmt::Debug for RemoteEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEmbedder")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// What one embedding call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// The tokens the server says it read (OpenAI `usage.prompt_tokens`, Ollama
    /// `prompt_eval_count`), summed over batches; `None` when any batch did not say.
    pub prompt_tokens: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The server could not be reached or did not answer in time.
    #[error("embedder {embedder} is unavailable: {message}")]
    Unavailable { embedder: String, message: String },
    /// The server answered with an error status (`status`, its message quoted in `message`).
    #[error("embedder {embedder} failed: {message}")]
    Status { embedder: String, status: u16, message: String },
    /// The server answered, but with an unusable body.
    #[error("embedder {embedder} failed: {message}")]
    Protocol { embedder: String, message: String },
    /// Vectors of different lengths (within one call).
    #[error("embedding dimension mismatch: expected {expected}, got {got}")]
    Dimension { expected: usize, got: usize },
}

impl Embedder {
    /// Build from `[rag.embedder]`; nothing is contacted. Config validation guarantees a model
    /// for remote embedders and a base URL for `openai`; if absent anyway, the usual defaults are
    /// used rather than failing here. A key variable that is named but unset means no
    /// `Authorization` header (local servers need none).
    pub fn from_config(config: &EmbedderConfig, env: &EnvLookup) -> Embedder {
        let remote = |default_url: &str, default_model: &str| {
            let (api_key, missing_key_env) = match &config.api_key_env {
                Some(var) => match env(var).filter(|v| !v.trim().is_empty()) {
                    Some(key) => (Some(key.trim().to_string()), None),
                    None => (None, Some(var.clone())),
                },
                None => (None, None),
            };
            let base_url = config.base_url.as_deref().unwrap_or(default_url).trim_end_matches('/').to_string();
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_recv_response(Some(RESPONSE_TIMEOUT))
                .timeout_recv_body(Some(RESPONSE_TIMEOUT))
                .user_agent(concat!("ares/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent();
            RemoteEmbedder {
                base_url,
                model: config.model.clone().unwrap_or_else(|| default_model.to_string()),
                api_key,
                missing_key_env,
                batch_size: config.batch_size.max(1),
                agent,
            }
        };
        match config.kind {
            EmbedderKind::Hash => Embedder::Hash { dimensions: config.dimensions.max(1) },
            EmbedderKind::Ollama => Embedder::Ollama(remote(DEFAULT_OLLAMA_URL, DEFAULT_OLLAMA_MODEL)),
            EmbedderKind::Openai => Embedder::OpenAi(remote(DEFAULT_OPENAI_URL, DEFAULT_OPENAI_MODEL)),
        }
    }

    /// The embedder of model `model_id` on a configured chat provider: its base URL, key,
    /// HTTP agent (timeouts, keep-alive) and, for Ollama, `POST {base}/api/embed`, for
    /// OpenAI-compatible servers `POST {base}/embeddings`. `Ok(None)` for a provider kind with
    /// no embeddings API (Anthropic); [`LlmError::Disabled`] when the provider's key is unset.
    /// Nothing is contacted.
    pub fn for_provider(provider: &Provider, model_id: &str) -> Result<Option<Embedder>, LlmError> {
        if let Some(reason) = provider.disabled_reason() {
            return Err(LlmError::Disabled { provider: provider.name.clone(), reason: reason.to_string() });
        }
        let remote = RemoteEmbedder {
            base_url: provider.base_url().trim_end_matches('/').to_string(),
            model: model_id.to_string(),
            api_key: provider.api_key().map(str::to_string),
            missing_key_env: None,
            batch_size: PROVIDER_BATCH_SIZE,
            agent: provider.http_agent().clone(),
        };
        Ok(match provider.kind {
            ProviderKind::Ollama => Some(Embedder::Ollama(remote)),
            ProviderKind::Openai => Some(Embedder::OpenAi(remote)),
            ProviderKind::Anthropic => None,
        })
    }

    /// Stable identity stored with each collection: `hash-v1:384`, `ollama:nomic-embed-text`,
    /// `openai:text-embedding-3-small`. A collection embedded under another descriptor cannot be
    /// searched with this embedder. The server URL is not part of it: the same model elsewhere
    /// gives the same vectors.
    pub fn descriptor(&self) -> String {
        match self {
            Embedder::Hash { dimensions } => format!("{HASH_VERSION}:{dimensions}"),
            Embedder::Ollama(remote) => format!("ollama:{}", remote.model),
            Embedder::OpenAi(remote) => format!("openai:{}", remote.model),
        }
    }

    /// The remote model's id (`nomic-embed-text`); `None` for `hash`.
    pub fn model(&self) -> Option<&str> {
        match self {
            Embedder::Hash { .. } => None,
            Embedder::Ollama(remote) | Embedder::OpenAi(remote) => Some(&remote.model),
        }
    }

    /// For logs and error messages: `hash (384 dimensions)`,
    /// `ollama nomic-embed-text at http://127.0.0.1:11434`.
    pub fn describe(&self) -> String {
        match self {
            Embedder::Hash { dimensions } => format!("hash ({dimensions} dimensions)"),
            Embedder::Ollama(remote) => format!("ollama {} at {}", remote.model, remote.base_url),
            Embedder::OpenAi(remote) => format!("openai-compatible {} at {}", remote.model, remote.base_url),
        }
    }

    /// Embed `texts`, in order, one L2-normalised vector each; remote calls go in batches of
    /// `batch_size`. All vectors have one length (`dimensions` for `hash`; whatever the model
    /// returns for remote embedders) or the call fails with [`EmbedError::Dimension`]. A text with
    /// nothing to hash gives the zero vector, whose cosine with anything is taken as 0.
    /// Blocking for remote embedders: call from the blocking pool.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = self.embed_raw_blocking(texts, None)?.vectors;
        // Hash vectors are normalised already (and persisted: not a bit may change).
        if !matches!(self, Embedder::Hash { .. }) {
            vectors.iter_mut().for_each(|vector| l2_normalise(vector));
        }
        Ok(vectors)
    }

    /// Embed `texts` as the model returns them (not re-normalised: a gateway hands clients the
    /// model's own vectors), with the server's token count. `dimensions`, when given, is the
    /// `hash` embedder's width and is passed on to remote servers as their `dimensions`
    /// parameter (whether they honour it is theirs to decide; the caller checks). Vectors are
    /// non-empty, finite and of one length, else an error. Blocking for remote embedders: call
    /// from the blocking pool.
    pub fn embed_raw_blocking(&self, texts: &[&str], dimensions: Option<usize>) -> Result<Embeddings, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut prompt_tokens = Some(0u64);
        match self {
            Embedder::Hash { dimensions: configured } => {
                let width = dimensions.unwrap_or(*configured);
                vectors.extend(texts.iter().map(|text| hash_embed(text, width)));
                prompt_tokens = None;
            }
            Embedder::Ollama(remote) | Embedder::OpenAi(remote) => {
                let embedder = self.descriptor();
                let openai = matches!(self, Embedder::OpenAi(_));
                for batch in texts.chunks(remote.batch_size.max(1)) {
                    let (batch_vectors, batch_tokens) = if openai {
                        remote.openai_batch(&embedder, batch, dimensions)?
                    } else {
                        remote.ollama_batch(&embedder, batch, dimensions)?
                    };
                    for vector in &batch_vectors {
                        if vector.is_empty() {
                            return Err(protocol(&embedder, "the server returned an empty embedding"));
                        }
                        if vector.iter().any(|x| !x.is_finite()) {
                            return Err(protocol(&embedder, "the server returned a non-finite value"));
                        }
                    }
                    prompt_tokens = prompt_tokens.zip(batch_tokens).map(|(sum, tokens)| sum + tokens);
                    vectors.extend(batch_vectors);
                }
            }
        }
        if let Some(expected) = vectors.first().map(Vec::len)
            && let Some(other) = vectors.iter().find(|v| v.len() != expected)
        {
            return Err(EmbedError::Dimension { expected, got: other.len() });
        }
        Ok(Embeddings { vectors, prompt_tokens })
    }
}

// ---------------------------------------------------------------- hash

/// The hash of one feature: FNV-1a 64 over the given byte strings, then murmur3's 64-bit
/// finaliser so that every output bit (the index's low bits and the sign's top bit alike)
/// depends on every input byte. Both steps are fixed arithmetic: stable across platforms and
/// Rust versions.
fn feature_hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    for part in parts {
        hasher.write(part);
    }
    let mut h = hasher.finish();
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Signed feature hashing: the coordinate is `hash % dimensions`, the sign the hash's top bit,
/// so collisions cancel out on average instead of piling up.
fn add_feature(vector: &mut [f32], hash: u64, weight: f32) {
    let index = (hash % vector.len() as u64) as usize;
    if let Some(slot) = vector.get_mut(index) {
        *slot += if hash >> 63 == 1 { -weight } else { weight };
    }
}

/// Features of `text`: each lower-cased alphanumeric word (weight 1), each pair of adjacent
/// words (0.5), and each char trigram of each word padded as `^word$` (0.25 each, so
/// "retrieval" and "retreival" still share `^re`, `ret`, `etr`, `val`, `al$`). L2-normalised;
/// the zero vector when the text has no word.
fn hash_embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0.0f32; dimensions.max(1)];
    let mut word = String::new();
    let mut previous = String::new();
    let mut padded = String::new();
    let mut bounds: Vec<usize> = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()).filter(|raw| !raw.is_empty()) {
        word.clear();
        word.extend(raw.chars().flat_map(char::to_lowercase));
        add_feature(&mut vector, feature_hash(&[&[WORD_TAG], word.as_bytes()]), WORD_WEIGHT);
        if !previous.is_empty() {
            let hash = feature_hash(&[&[BIGRAM_TAG], previous.as_bytes(), &[BIGRAM_SEPARATOR], word.as_bytes()]);
            add_feature(&mut vector, hash, BIGRAM_WEIGHT);
        }
        padded.clear();
        padded.push('^');
        padded.push_str(&word);
        padded.push('$');
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(offset, _)| offset));
        bounds.push(padded.len());
        for window in bounds.windows(4) {
            if let Some(trigram) = padded.get(window[0]..window[3]) {
                add_feature(&mut vector, feature_hash(&[&[TRIGRAM_TAG], trigram.as_bytes()]), TRIGRAM_WEIGHT);
            }
        }
        std::mem::swap(&mut previous, &mut word);
    }
    l2_normalise(&mut vector);
    vector
}

/// Scale to unit length; the zero vector stays zero.
fn l2_normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in vector.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

// ---------------------------------------------------------------- remote

#[derive(Deserialize)]
struct OllamaEmbedResponse {
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiEmbedResponse {
    data: Vec<OpenAiEmbedding>,
    #[serde(default)]
    usage: Option<OpenAiEmbedUsage>,
}

#[derive(Deserialize)]
struct OpenAiEmbedUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiEmbedding {
    /// Position in the request's `input`; the spec allows any order. Some servers omit it.
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

fn protocol(embedder: &str, message: impl Into<String>) -> EmbedError {
    EmbedError::Protocol { embedder: embedder.to_string(), message: message.into() }
}

/// Vectors of one batch and the tokens the server counted for it, if it said.
type Batch = (Vec<Vec<f32>>, Option<u64>);

impl RemoteEmbedder {
    /// `{"model", "input", "dimensions"?}`: the request body of both wire formats.
    fn payload(&self, batch: &[&str], dimensions: Option<usize>) -> Value {
        let mut payload = json!({"model": self.model, "input": batch});
        if let Some(dimensions) = dimensions {
            payload["dimensions"] = dimensions.into();
        }
        payload
    }

    fn ollama_batch(&self, embedder: &str, batch: &[&str], dimensions: Option<usize>) -> Result<Batch, EmbedError> {
        let url = format!("{}/api/embed", self.base_url);
        let body = self.post(embedder, &url, &self.payload(batch, dimensions))?;
        let response: OllamaEmbedResponse = serde_json::from_slice(&body)
            .map_err(|e| protocol(embedder, format!("malformed response from {url}: {e}")))?;
        check_count(embedder, &url, batch.len(), response.embeddings.len())?;
        Ok((response.embeddings, response.prompt_eval_count))
    }

    fn openai_batch(&self, embedder: &str, batch: &[&str], dimensions: Option<usize>) -> Result<Batch, EmbedError> {
        let url = format!("{}/embeddings", self.base_url);
        let body = self.post(embedder, &url, &self.payload(batch, dimensions))?;
        let response: OpenAiEmbedResponse = serde_json::from_slice(&body)
            .map_err(|e| protocol(embedder, format!("malformed response from {url}: {e}")))?;
        check_count(embedder, &url, batch.len(), response.data.len())?;
        let tokens = response.usage.and_then(|usage| usage.prompt_tokens);
        let mut items: Vec<(usize, Vec<f32>)> = response
            .data
            .into_iter()
            .enumerate()
            .map(|(position, item)| (item.index.unwrap_or(position), item.embedding))
            .collect();
        items.sort_by_key(|(index, _)| *index);
        if let Some((position, (index, _))) = items.iter().enumerate().find(|(position, (index, _))| position != index)
        {
            return Err(protocol(
                embedder,
                format!("response from {url} has no embedding for input {position} (found index {index})"),
            ));
        }
        Ok((items.into_iter().map(|(_, embedding)| embedding).collect(), tokens))
    }

    /// POST `payload` as JSON; the response body once the status is a success.
    fn post(&self, embedder: &str, url: &str, payload: &Value) -> Result<Vec<u8>, EmbedError> {
        let mut request = self.agent.post(url).header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", &format!("Bearer {key}"));
        }
        let payload = payload.to_string();
        let response = request.send(payload.as_bytes()).map_err(|e| transport_error(embedder, url, e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if !(200..300).contains(&status) {
            let text = body.with_config().limit(1024 * 1024).read_to_string().unwrap_or_default();
            let detail = error_text(&text).unwrap_or_else(|| text.trim().chars().take(ERROR_BODY_CHARS).collect());
            let mut message = format!("HTTP {status} from {url}");
            if !detail.is_empty() {
                message.push_str(": ");
                message.push_str(&detail);
            }
            if let (401 | 403, Some(var)) = (status, &self.missing_key_env) {
                message.push_str(&format!(" (environment variable {var} is not set, so no API key was sent)"));
            }
            return Err(EmbedError::Status { embedder: embedder.to_string(), status, message });
        }
        body.with_config().limit(MAX_RESPONSE_BYTES).read_to_vec().map_err(|e| transport_error(embedder, url, e))
    }
}

fn check_count(embedder: &str, url: &str, expected: usize, got: usize) -> Result<(), EmbedError> {
    if expected == got {
        Ok(())
    } else {
        Err(protocol(embedder, format!("sent {expected} texts to {url} but got {got} embeddings back")))
    }
}

/// The error text of an error body: `{"error": "..."}` (Ollama), `{"error": {"message": ...}}`
/// (OpenAI) or `{"message": "..."}`.
fn error_text(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let message = value
        .pointer("/error/message")
        .or_else(|| value.get("error").filter(|e| e.is_string()))
        .or_else(|| value.get("message"))?;
    message.as_str().map(str::to_string)
}

fn transport_error(embedder: &str, url: &str, error: ureq::Error) -> EmbedError {
    let unavailable = |message: String| EmbedError::Unavailable { embedder: embedder.to_string(), message };
    match error {
        ureq::Error::Timeout(_) => unavailable(format!("no answer from {url} in time")),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            unavailable(format!("no answer from {url} in time"))
        }
        ureq::Error::BodyExceedsLimit(limit) => {
            protocol(embedder, format!("response from {url} is larger than {limit} bytes"))
        }
        other => unavailable(format!("cannot reach {url}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn hash(dimensions: usize) -> Embedder {
        let config = EmbedderConfig { dimensions, ..EmbedderConfig::default() };
        Embedder::from_config(&config, &no_env)
    }

    fn embed_one(embedder: &Embedder, text: &str) -> Vec<f32> {
        match embedder.embed_blocking(&[text]) {
            Ok(mut vectors) if vectors.len() == 1 => vectors.remove(0),
            other => panic!("embedding {text:?}: {other:?}"),
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn norm(v: &[f32]) -> f32 {
        dot(v, v).sqrt()
    }

    // ------------------------------------------------ hash

    #[test]
    fn hash_descriptor_and_description() {
        let embedder = hash(384);
        assert_eq!(embedder.descriptor(), "hash-v1:384");
        assert_eq!(embedder.describe(), "hash (384 dimensions)");
        assert_eq!(hash(64).descriptor(), "hash-v1:64");
        assert_eq!(format!("{embedder:?}"), "hash (384 dimensions)");
    }

    #[test]
    fn hash_vectors_have_the_configured_dimensions() {
        for dimensions in [1, 2, 64, 384, 1024] {
            let embedder = hash(dimensions);
            let vectors = embedder.embed_blocking(&["alpha beta", "gamma", ""]).unwrap_or_default();
            assert_eq!(vectors.len(), 3);
            assert!(vectors.iter().all(|v| v.len() == dimensions), "{dimensions}");
        }
        // 0 is refused by config validation; should it get here anyway it is not a panic
        assert_eq!(embed_one(&hash(0), "x").len(), 1);
        assert!(hash(384).embed_blocking(&[]).is_ok_and(|v| v.is_empty()));
    }

    #[test]
    fn hash_vectors_are_unit_length_and_no_words_is_zero() {
        let embedder = hash(384);
        for text in ["hello", "Hello, world! Hello again.", "日本語のテキスト", "a b c d e f g h i j k"] {
            assert!((norm(&embed_one(&embedder, text)) - 1.0).abs() < 1e-5, "{text}");
        }
        for text in ["", "   ", "?!... --- 🎉"] {
            assert!(embed_one(&embedder, text).iter().all(|&x| x == 0.0), "{text:?}");
        }
    }

    #[test]
    fn hash_is_deterministic_and_case_and_punctuation_insensitive() {
        let embedder = hash(384);
        let a = embed_one(&embedder, "The quick brown fox");
        assert_eq!(a, embed_one(&embedder, "The quick brown fox"));
        assert_eq!(a, embed_one(&embedder, "  the QUICK, brown... fox!"));
        assert_eq!(a, embed_one(&hash(384), "The quick brown fox"));
        assert_ne!(a, embed_one(&embedder, "fox brown quick the"), "bigrams make order count");
    }

    /// Pinned values: these vectors are stored on disk, so any change here is a format change
    /// and must come with a new `HASH_VERSION`. (The numbers were computed independently, by a
    /// few lines of Python implementing FNV-1a 64 and murmur3's finaliser.)
    /// Text, dimensions, and the non-zero coordinates of its vector.
    type Pinned = (&'static str, usize, &'static [(usize, f32)]);

    #[test]
    fn hash_vectors_are_pinned() {
        assert_eq!(feature_hash(&[b"w", b"hello"]), 12_925_445_065_663_306_319);
        assert_eq!(feature_hash(&[b"whello"]), 12_925_445_065_663_306_319);
        let pinned: [Pinned; 2] = [
            (
                "Hello world",
                384,
                &[
                    (36, 0.294_883_9),
                    (43, 0.147_442),
                    (62, 0.147_442),
                    (126, 0.147_442),
                    (159, -0.147_442),
                    (241, -0.147_442),
                    (256, -0.147_442),
                    (268, -0.589_767_8),
                    (290, 0.147_442),
                    (308, 0.147_442),
                    (335, -0.589_767_8),
                    (355, -0.147_442),
                    (369, -0.147_442),
                ],
            ),
            (
                "Café Ünïcode 42",
                64,
                &[
                    (1, 0.122_169_4),
                    (8, 0.122_169_4),
                    (9, 0.122_169_4),
                    (13, -0.122_169_4),
                    (28, 0.488_677_8),
                    (34, 0.122_169_4),
                    (40, -0.122_169_4),
                    (42, -0.122_169_4),
                    (45, -0.244_338_9),
                    (50, -0.244_338_9),
                    (51, -0.488_677_8),
                    (56, -0.122_169_4),
                    (57, -0.122_169_4),
                    (58, -0.122_169_4),
                    (61, 0.488_677_8),
                    (63, -0.122_169_4),
                ],
            ),
        ];
        for (text, dimensions, expected) in pinned {
            let vector = embed_one(&hash(dimensions), text);
            let nonzero: Vec<(usize, f32)> =
                vector.iter().enumerate().filter(|(_, x)| **x != 0.0).map(|(i, x)| (i, *x)).collect();
            assert_eq!(nonzero.len(), expected.len(), "{text}: {nonzero:?}");
            for (&(index, value), &(pinned_index, pinned_value)) in nonzero.iter().zip(expected) {
                assert_eq!(index, pinned_index, "{text}: {nonzero:?}");
                assert!((value - pinned_value).abs() < 1e-6, "{text}: {nonzero:?}");
            }
        }
    }

    #[test]
    fn shared_words_score_higher_than_unrelated_text() {
        let embedder = hash(384);
        let query = embed_one(&embedder, "how do I reset my password");
        let related = embed_one(&embedder, "To reset your password, open Settings and choose Reset password.");
        let unrelated = embed_one(&embedder, "Quarterly revenue grew by twelve percent in the northern region.");
        assert!(
            dot(&query, &related) > dot(&query, &unrelated) + 0.2,
            "{} vs {}",
            dot(&query, &related),
            dot(&query, &unrelated)
        );
        assert!(dot(&query, &related) > 0.3);
    }

    #[test]
    fn a_typo_still_overlaps() {
        let embedder = hash(384);
        let right = embed_one(&embedder, "retrieval");
        let typo = embed_one(&embedder, "retreival");
        let other = embed_one(&embedder, "banana");
        assert!(dot(&right, &typo) > 0.1, "{}", dot(&right, &typo));
        assert!(dot(&right, &typo) > dot(&right, &other));
    }

    // ------------------------------------------------ remote: a real HTTP server on port 0

    /// What the test server saw of one request.
    #[derive(Debug)]
    struct Seen {
        request_line: String,
        authorization: Option<String>,
        body: Value,
    }

    /// Serve the canned `(status, body)` answers, one connection each, in order; return the base
    /// URL and what each request carried.
    fn serve(answers: Vec<(u16, String)>) -> (String, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, answer) in answers {
                let Ok((stream, _)) = listener.accept() else { return };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let (mut length, mut authorization) = (0, None);
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = sender.send(Seen { request_line: request_line.trim_end().to_string(), authorization, body });
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                reader.get_mut().write_all(response.as_bytes()).unwrap();
            }
        });
        (url, receiver)
    }

    fn remote(kind: EmbedderKind, base_url: &str, batch_size: usize, env: &EnvLookup) -> Embedder {
        let config = EmbedderConfig {
            kind,
            base_url: Some(base_url.to_string()),
            model: Some("test-model".to_string()),
            api_key_env: Some("TEST_EMBED_KEY".to_string()),
            dimensions: 384,
            batch_size,
        };
        Embedder::from_config(&config, env)
    }

    #[test]
    fn remote_descriptors() {
        let ollama = EmbedderConfig {
            kind: EmbedderKind::Ollama,
            model: Some("nomic-embed-text".to_string()),
            ..EmbedderConfig::default()
        };
        let ollama = Embedder::from_config(&ollama, &no_env);
        assert_eq!(ollama.descriptor(), "ollama:nomic-embed-text");
        assert_eq!(ollama.describe(), "ollama nomic-embed-text at http://127.0.0.1:11434");
        let openai = EmbedderConfig {
            kind: EmbedderKind::Openai,
            base_url: Some("http://127.0.0.1:8080/v1/".to_string()),
            model: Some("text-embedding-3-small".to_string()),
            ..EmbedderConfig::default()
        };
        let openai = Embedder::from_config(&openai, &|_: &str| Some("sk-secret".to_string()));
        assert_eq!(openai.descriptor(), "openai:text-embedding-3-small");
        assert_eq!(openai.describe(), "openai-compatible text-embedding-3-small at http://127.0.0.1:8080/v1");
        let Embedder::OpenAi(inner) = &openai else { panic!("not openai") };
        assert!(!format!("{inner:?}").contains("sk-secret"));
    }

    #[test]
    fn ollama_embeds_in_batches_and_normalises() {
        let (url, seen) = serve(vec![
            (200, r#"{"model":"test-model","embeddings":[[3.0,4.0],[0.0,2.0]]}"#.to_string()),
            (200, r#"{"embeddings":[[1.0,0.0]]}"#.to_string()),
        ]);
        let embedder = remote(EmbedderKind::Ollama, &url, 2, &no_env);
        let vectors = embedder.embed_blocking(&["one", "two", "three"]).unwrap();
        assert_eq!(vectors, [vec![0.6, 0.8], vec![0.0, 1.0], vec![1.0, 0.0]]);
        let first = seen.recv().unwrap();
        assert_eq!(first.request_line, "POST /api/embed HTTP/1.1");
        assert_eq!(first.body, json!({"model": "test-model", "input": ["one", "two"]}));
        assert_eq!(first.authorization, None, "TEST_EMBED_KEY is not set");
        assert_eq!(seen.recv().unwrap().body, json!({"model": "test-model", "input": ["three"]}));
    }

    #[test]
    fn openai_sends_the_key_and_orders_by_index() {
        let (url, seen) = serve(vec![(
            200,
            r#"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[0.0,5.0]},
                {"object":"embedding","index":0,"embedding":[2.0,0.0]}],"model":"test-model"}"#
                .to_string(),
        )]);
        let env = |name: &str| (name == "TEST_EMBED_KEY").then(|| "sk-test".to_string());
        let embedder = remote(EmbedderKind::Openai, &format!("{url}/v1"), 64, &env);
        let vectors = embedder.embed_blocking(&["first", "second"]).unwrap();
        assert_eq!(vectors, [vec![1.0, 0.0], vec![0.0, 1.0]]);
        let request = seen.recv().unwrap();
        assert_eq!(request.request_line, "POST /v1/embeddings HTTP/1.1");
        assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test"));
        assert_eq!(request.body, json!({"model": "test-model", "input": ["first", "second"]}));
    }

    #[test]
    fn raw_embeddings_pass_dimensions_keep_the_models_vectors_and_count_tokens() {
        let (url, seen) = serve(vec![
            (200, r#"{"model":"test-model","embeddings":[[3.0,4.0]],"prompt_eval_count":7}"#.to_string()),
            (
                200,
                r#"{"data":[{"index":0,"embedding":[0.0,2.0]}],"usage":{"prompt_tokens":5,"total_tokens":5}}"#
                    .to_string(),
            ),
            (200, r#"{"data":[{"index":0,"embedding":[0.0,2.0]}]}"#.to_string()),
        ]);
        let ollama = remote(EmbedderKind::Ollama, &url, 8, &no_env).embed_raw_blocking(&["one"], Some(2)).unwrap();
        assert_eq!(ollama, Embeddings { vectors: vec![vec![3.0, 4.0]], prompt_tokens: Some(7) });
        assert_eq!(seen.recv().unwrap().body, json!({"model": "test-model", "input": ["one"], "dimensions": 2}));
        let openai = remote(EmbedderKind::Openai, &url, 8, &no_env);
        assert_eq!(openai.embed_raw_blocking(&["two"], None).unwrap().prompt_tokens, Some(5));
        assert_eq!(seen.recv().unwrap().body, json!({"model": "test-model", "input": ["two"]}));
        assert_eq!(openai.embed_raw_blocking(&["three"], None).unwrap().prompt_tokens, None, "no usage given");
        let hashed = hash(384).embed_raw_blocking(&["Hello world"], Some(64)).unwrap();
        assert_eq!(hashed.vectors, [hash_embed("Hello world", 64)]);
        assert_eq!(hashed.prompt_tokens, None);
    }

    #[test]
    fn an_error_status_carries_the_servers_message() {
        let (url, _seen) =
            serve(vec![(404, r#"{"error":"model \"test-model\" not found, try pulling it first"}"#.into())]);
        let err = remote(EmbedderKind::Ollama, &url, 8, &no_env).embed_blocking(&["x"]).unwrap_err();
        let EmbedError::Status { embedder, status: 404, message } = &err else { panic!("{err:?}") };
        assert_eq!(embedder, "ollama:test-model");
        assert!(message.contains("HTTP 404") && message.contains("not found, try pulling it first"), "{message}");

        let (url, _seen) = serve(vec![(
            401,
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#.into(),
        )]);
        let err = remote(EmbedderKind::Openai, &url, 8, &no_env).embed_blocking(&["x"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("HTTP 401") && message.contains("Incorrect API key provided"), "{message}");
        assert!(message.contains("TEST_EMBED_KEY is not set"), "{message}");
    }

    #[test]
    fn bad_bodies_are_protocol_errors() {
        let cases = [
            (EmbedderKind::Ollama, "not json at all", "malformed response"),
            (EmbedderKind::Ollama, r#"{"embedding":[1.0]}"#, "malformed response"),
            (EmbedderKind::Ollama, r#"{"embeddings":[[1.0]]}"#, "sent 2 texts"),
            (EmbedderKind::Ollama, r#"{"embeddings":[[1.0],[]]}"#, "empty embedding"),
            (
                EmbedderKind::Openai,
                r#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#,
                "no embedding for input 1",
            ),
            (EmbedderKind::Openai, r#"{"data":[{"index":0,"embedding":[1.0]}]}"#, "got 1 embeddings"),
        ];
        for (kind, answer, expected) in cases {
            let (url, _seen) = serve(vec![(200, answer.to_string())]);
            match remote(kind, &url, 8, &no_env).embed_blocking(&["a", "b"]) {
                Err(EmbedError::Protocol { message, .. }) => assert!(message.contains(expected), "{answer}: {message}"),
                other => panic!("{answer}: {other:?}"),
            }
        }
    }

    #[test]
    fn vectors_of_different_lengths_are_a_dimension_error() {
        let (url, _seen) = serve(vec![(200, r#"{"embeddings":[[1.0,0.0,0.0],[1.0,0.0]]}"#.into())]);
        match remote(EmbedderKind::Ollama, &url, 8, &no_env).embed_blocking(&["a", "b"]) {
            Err(EmbedError::Dimension { expected: 3, got: 2 }) => {}
            other => panic!("{other:?}"),
        }
        // also across batches
        let (url, _seen) =
            serve(vec![(200, r#"{"embeddings":[[1.0,0.0]]}"#.into()), (200, r#"{"embeddings":[[1.0]]}"#.into())]);
        match remote(EmbedderKind::Ollama, &url, 1, &no_env).embed_blocking(&["a", "b"]) {
            Err(EmbedError::Dimension { expected: 2, got: 1 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_refused_is_unavailable_and_names_the_url() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let err = remote(EmbedderKind::Ollama, &url, 8, &no_env).embed_blocking(&["x"]).unwrap_err();
        let EmbedError::Unavailable { embedder, message } = &err else { panic!("{err:?}") };
        assert_eq!(embedder, "ollama:test-model");
        assert!(message.contains(&format!("{url}/api/embed")), "{message}");
        assert!(err.to_string().starts_with("embedder ollama:test-model is unavailable: cannot reach"), "{err}");
        // nothing to embed: no request at all
        assert!(remote(EmbedderKind::Ollama, &url, 8, &no_env).embed_blocking(&[]).is_ok_and(|v| v.is_empty()));
    }
}
