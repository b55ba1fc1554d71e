//! `POST /api/rag/ingest`, `POST /api/rag/search`, `GET /api/rag/collections`,
//! `DELETE /api/rag/collection` (API.md §1.8, C17–C20). Collections belong to the calling user;
//! the work runs on the blocking pool (see `crate::rag`).

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::Context;
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::rag::chunking::Strategy;
use crate::rag::{Hit, IngestRequest, RagError, SearchRequest, SearchStrategy};

/// Longest collection name accepted.
const MAX_COLLECTION_NAME: usize = 128;
const MAX_TOP_K: i64 = 100;

async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&App) -> Result<T, RagError> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || work(&app))
        .await
        .map_err(|e| ApiError::Internal(format!("RAG task failed: {e}")))?
        .map_err(ApiError::from)
}

fn collection_name(raw: Option<String>) -> Result<String, ApiError> {
    let name = raw.ok_or_else(|| ApiError::MissingField("collection".into()))?;
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::BadRequest("Collection name required".into()));
    }
    if name.chars().count() > MAX_COLLECTION_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::Unprocessable(format!(
            "Collection name must be at most {MAX_COLLECTION_NAME} characters without control characters"
        )));
    }
    Ok(name)
}

#[derive(Deserialize)]
struct IngestBody {
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    chunking_strategy: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Run as a job (202); documents above `[rag].async_above_bytes` always are.
    #[serde(default, rename = "async")]
    run_async: Option<bool>,
}

pub async fn ingest(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let user_id = ctx.owner_id()?;
    let body: IngestBody = ctx.json(request).await?;
    let collection = collection_name(body.collection)?;
    let content = body.content.ok_or_else(|| ApiError::MissingField("content".into()))?;
    if content.trim().is_empty() {
        return Err(ApiError::BadRequest("Content required".into()));
    }
    let strategy = match body.chunking_strategy.as_deref() {
        None => Strategy::Word,
        Some(name) => Strategy::parse(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Unknown chunking strategy: {name}. Use: word, sentence, paragraph, character"
            ))
        })?,
    };
    let mut metadata = match body.metadata {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::Unprocessable("metadata must be a JSON object".into())),
    };
    // The reference's top-level title, source and tags win; absent, the documented `metadata`
    // object's own keys are kept, and only missing ones default to empty.
    let fields = [
        ("title", body.title.map(Value::from), Value::from("")),
        ("source", body.source.map(Value::from), Value::from("")),
        ("tags", body.tags.map(Value::from), Value::Array(Vec::new())),
    ];
    for (key, given, empty) in fields {
        match given {
            Some(value) => {
                metadata.insert(key.into(), value);
            }
            None => {
                metadata.entry(key).or_insert(empty);
            }
        }
    }
    metadata.insert("chunking_strategy".into(), Value::from(strategy.as_str()));
    if body.run_async == Some(true) || content.len() > ctx.app.config().rag.async_above_bytes {
        return super::rag_jobs::submit(ctx, collection, content, strategy, metadata).await;
    }

    let request = IngestRequest { user_id, collection, content, strategy, metadata };
    let outcome = blocking(&ctx.app, move |app| app.rag().ingest(app.store(), request)).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "chunks_created": outcome.chunk_ids.len(),
            "document_ids": outcome.chunk_ids,
            "collection": outcome.collection.name,
        }),
    ))
}

#[derive(Deserialize)]
struct SearchBody {
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    threshold: Option<f32>,
    #[serde(default)]
    rerank: Option<bool>,
}

pub async fn search(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let user_id = ctx.owner_id()?;
    let body: SearchBody = ctx.json(request).await?;
    let collection = collection_name(body.collection)?;
    let query = body.query.ok_or_else(|| ApiError::MissingField("query".into()))?;
    if query.trim().is_empty() {
        return Err(ApiError::BadRequest("Query required".into()));
    }
    let strategy = match body.strategy.as_deref() {
        None => SearchStrategy::Hybrid,
        Some(name) => SearchStrategy::parse(name).ok_or_else(|| {
            ApiError::BadRequest(format!("Unknown search strategy: {name}. Use: semantic, bm25, fuzzy, hybrid"))
        })?,
    };
    let top_k = body.top_k.or(body.limit).unwrap_or(5);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::Unprocessable(format!("top_k must be between 1 and {MAX_TOP_K}")));
    }
    let request = SearchRequest {
        user_id,
        collection,
        query,
        strategy,
        top_k: top_k as usize,
        threshold: body.threshold,
        rerank: body.rerank.unwrap_or(false),
    };
    let outcome = blocking(&ctx.app, move |app| app.search_rag(&request)).await?;
    let results: Vec<Value> = outcome.hits.iter().map(|hit| hit_view(hit, &outcome.collection)).collect();
    Ok(response::json(StatusCode::OK, &results))
}

/// One search result: the documented fields plus where it came from.
pub fn hit_view(hit: &Hit, collection: &str) -> Value {
    let metadata = Value::Object(hit.metadata.clone());
    let mut view = json!({
        "id": hit.chunk.chunk_id,
        "content": hit.chunk.content,
        "score": hit.score,
        "metadata": metadata,
        "collection": collection,
        "document_id": hit.chunk.document_id,
        "chunk_index": hit.chunk.index,
    });
    if let Some(object) = view.as_object_mut() {
        if let Some(parts) = hit.components {
            object.insert(
                "scores".into(),
                json!({
                    "semantic": parts.semantic.map(|(_, s)| s),
                    "semantic_rank": parts.semantic.map(|(r, _)| r),
                    "bm25": parts.bm25.map(|(_, s)| s),
                    "bm25_rank": parts.bm25.map(|(r, _)| r),
                }),
            );
        }
        if let Some(before) = hit.retrieval_score {
            object.insert("retrieval_score".into(), Value::from(before));
        }
    }
    view
}

pub async fn collections(ctx: &Context) -> Result<Response, ApiError> {
    let user_id = ctx.owner_id()?;
    let collections = blocking(&ctx.app, move |app| app.rag().collections(app.store(), &user_id)).await?;
    let body: Vec<Value> = collections
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "document_count": c.chunk_count,
                "chunk_count": c.chunk_count,
                "documents": c.document_count,
                "dimensions": c.dimensions,
                "embedder": c.embedder,
                "created_at": clock::rfc3339(c.created_at),
                "updated_at": clock::rfc3339(c.updated_at),
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &body))
}

#[derive(Deserialize)]
struct DeleteBody {
    #[serde(default)]
    collection: Option<String>,
}

pub async fn delete_collection(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let user_id = ctx.owner_id()?;
    let body: DeleteBody = ctx.json(request).await?;
    let name = collection_name(body.collection)?;
    let deleted = blocking(&ctx.app, move |app| app.rag().delete_collection(app.store(), &user_id, &name)).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "success": true, "collection": deleted.name, "documents_deleted": deleted.chunk_count }),
    ))
}
