//! `POST /v1/embeddings` (OpenAI's Embeddings API): texts in, one vector each out, as JSON
//! floats or base64. The `model` names the embedder: `hash` is the built-in hash embedder, the
//! model of `[rag.embedder]` is that embedder, and any other name the registry knows (model,
//! provider model id, tier) is embedded by that model's provider — Ollama `/api/embed`, an
//! OpenAI-compatible `/embeddings`; Anthropic has no embeddings API (400).

use base64::Engine as _;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Context;
use crate::app::App;
use crate::config::EmbedderKind;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::llm::types::estimate_tokens;
use crate::rag::embedder::{Embedder, Embeddings};

/// The model name of the built-in hash embedder.
pub const HASH_MODEL: &str = "hash";
/// Texts per request, OpenAI's own limit (clients batch within it). Their total size is bounded
/// by the route's body limit (`[server].max_body_bytes`), so one request's work and its answer
/// (at most this many vectors) stay bounded.
pub const MAX_INPUTS: usize = 2048;
/// The widest `hash` vector a client may ask for: that of OpenAI's widest model.
pub const MAX_HASH_DIMENSIONS: usize = 3072;

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: Option<String>,
    input: Option<Value>,
    encoding_format: Option<String>,
    dimensions: Option<u64>,
    // `user` (an end-user id for the provider's abuse monitoring) is accepted and not used.
}

#[derive(Serialize)]
struct EmbeddingsView {
    object: &'static str,
    data: Vec<EmbeddingView>,
    model: String,
    usage: UsageView,
}

#[derive(Serialize)]
struct EmbeddingView {
    object: &'static str,
    index: usize,
    embedding: VectorView,
}

/// `float`: the coordinates; `base64`: their little-endian `f32` bytes, standard alphabet.
#[derive(Serialize)]
#[serde(untagged)]
enum VectorView {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct UsageView {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Who embeds: the app's `[rag.embedder]` (shared, with its keep-alive agent) or one built for
/// this request.
enum Source {
    Rag,
    Own(Embedder),
}

pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: EmbeddingsRequest = ctx.json(request).await?;
    let model = body.model.ok_or_else(|| ApiError::MissingField("model".into()))?;
    let texts = input_texts(body.input)?;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return Err(ApiError::InvalidField("encoding_format".into())),
    };
    let dimensions = match body.dimensions {
        Some(0) => return Err(ApiError::InvalidField("dimensions".into())),
        other => other.map(|d| usize::try_from(d).unwrap_or(usize::MAX)),
    };
    let source = source(&ctx.app, &model, dimensions)?;
    let estimate = texts.iter().map(|text| estimate_tokens(text)).sum::<u64>();
    let Embeddings { vectors, prompt_tokens } = embed(&ctx.app, source, texts, dimensions).await?;
    if let (Some(wanted), Some(got)) = (dimensions, vectors.first().map(Vec::len))
        && wanted != got
    {
        return Err(ApiError::BadRequest(format!(
            "The model '{model}' returned {got}-dimensional embeddings: it does not support dimensions = {wanted}"
        )));
    }
    let tokens = prompt_tokens.unwrap_or(estimate);
    ctx.add_tokens(tokens);
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingView {
            object: "embedding",
            index,
            embedding: if base64 { VectorView::Base64(encode_base64(&vector)) } else { VectorView::Float(vector) },
        })
        .collect();
    let usage = UsageView { prompt_tokens: tokens, total_tokens: tokens };
    Ok(response::json(StatusCode::OK, &EmbeddingsView { object: "list", data, model, usage }))
}

/// The texts of `input`: a string or an array of strings, none empty, at most [`MAX_INPUTS`].
/// Token-id input (arrays of integers) is refused with a 400 naming it: the built-in and Ollama
/// embedders take text only.
fn input_texts(input: Option<Value>) -> Result<Vec<String>, ApiError> {
    let empty = || ApiError::BadRequest("'input' must not be empty".into());
    let texts = match input {
        None | Some(Value::Null) => return Err(ApiError::MissingField("input".into())),
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) if items.is_empty() => return Err(empty()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                Value::Number(_) | Value::Array(_) => Err(ApiError::BadRequest(
                    "Token-id input (arrays of integers) is not supported: send 'input' as text".into(),
                )),
                _ => Err(ApiError::InvalidField("input".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::InvalidField("input".into())),
    };
    if texts.iter().any(String::is_empty) {
        return Err(empty());
    }
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::BadRequest(format!(
            "'input' has {} texts; at most {MAX_INPUTS} are allowed",
            texts.len()
        )));
    }
    Ok(texts)
}

/// The embedder `model` names (module docs); 404 `model_not_found` for any other name. `hash`
/// vectors are `dimensions` wide, else `[rag.embedder].dimensions` (so they equal RAG's).
fn source(app: &App, model: &str, dimensions: Option<usize>) -> Result<Source, ApiError> {
    if model == HASH_MODEL {
        if dimensions.is_some_and(|d| d > MAX_HASH_DIMENSIONS) {
            return Err(ApiError::BadRequest(format!(
                "The '{HASH_MODEL}' model supports 1 to {MAX_HASH_DIMENSIONS} dimensions"
            )));
        }
        let configured = app.config().rag.embedder.dimensions.max(1);
        return Ok(Source::Own(Embedder::Hash { dimensions: dimensions.unwrap_or(configured) }));
    }
    if app.config().rag.embedder.kind != EmbedderKind::Hash && app.rag().embedder().model() == Some(model) {
        return Ok(Source::Rag);
    }
    let llm = app.llm();
    let entry = llm.lookup(model).ok_or_else(|| ApiError::ModelNotFound(model.to_string()))?;
    match Embedder::for_provider(&entry.provider, &entry.model_id)? {
        Some(embedder) => Ok(Source::Own(embedder)),
        None => Err(ApiError::BadRequest(format!(
            "The model '{model}' is served by provider '{}', an Anthropic API, which has no embeddings endpoint",
            entry.provider.name
        ))),
    }
}

/// Run the (blocking) embedding call on the blocking pool.
async fn embed(
    app: &std::sync::Arc<App>,
    source: Source,
    texts: Vec<String>,
    dimensions: Option<usize>,
) -> Result<Embeddings, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embedder = match &source {
            Source::Rag => app.rag().embedder(),
            Source::Own(embedder) => embedder,
        };
        embedder.embed_raw_blocking(&refs, dimensions)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("embedding task failed: {e}")))?
    .map_err(ApiError::from)
}

/// The little-endian `f32` bytes of `vector` in standard base64 (what OpenAI's SDKs decode
/// with `numpy.frombuffer(.., dtype="float32")`).
fn encode_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        // 1.0f32 = 0x3f800000 → bytes 00 00 80 3f; -2.0f32 = 0xc0000000 → 00 00 00 c0.
        assert_eq!(encode_base64(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(encode_base64(&[]), "");
    }

    #[test]
    fn inputs() {
        let texts = |v: Value| input_texts(Some(v)).map_err(|e| e.to_string());
        assert_eq!(texts(Value::from("a")), Ok(vec!["a".to_string()]));
        assert_eq!(texts(serde_json::json!(["a", "b"])), Ok(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(input_texts(None).map_err(|e| e.to_string()), Err("Missing required field: input".into()));
        assert_eq!(texts(Value::Null), Err("Missing required field: input".into()));
        assert_eq!(texts(Value::from("")), Err("'input' must not be empty".into()));
        assert_eq!(texts(serde_json::json!([])), Err("'input' must not be empty".into()));
        assert_eq!(texts(serde_json::json!(["a", ""])), Err("'input' must not be empty".into()));
        assert!(texts(serde_json::json!([1, 2])).is_err_and(|e| e.contains("Token-id input")));
        assert!(texts(serde_json::json!([[1, 2]])).is_err_and(|e| e.contains("Token-id input")));
        assert_eq!(texts(serde_json::json!({"a": 1})), Err("Invalid value for field: input".into()));
        assert_eq!(texts(serde_json::json!(["a", {}])), Err("Invalid value for field: input".into()));
        let many = Value::Array(vec![Value::from("x"); MAX_INPUTS + 1]);
        assert!(texts(many).is_err_and(|e| e.contains("at most 2048")));
    }
}
