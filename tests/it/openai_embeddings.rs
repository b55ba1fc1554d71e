//! `POST /v1/embeddings` (the OpenAI Embeddings API): the built-in `hash` model in `float` and
//! `base64`, models served by Ollama (`/api/embed`) and OpenAI-compatible (`/embeddings`)
//! providers and by `[rag.embedder]`, refusals in OpenAI's error shape, and usage.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{KEY_ENV, PROVIDER_KEY};
use crate::harness::{TestServer, expect_json, header};
use crate::mock_provider::{MOCK_EMBEDDING_DIMENSIONS, MockProvider, mock_embedding};

/// One mock behind providers of all three kinds, a model on each, and `[rag.embedder]`.
struct Setup {
    mock: MockProvider,
    server: TestServer,
    key: String,
}

const OLLAMA_MODEL: &str = "local-embed";
const OLLAMA_MODEL_ID: &str = "nomic-embed-text";
const OPENAI_MODEL: &str = "cloud-embed";
const OPENAI_MODEL_ID: &str = "text-embedding-3-small";
const ANTHROPIC_MODEL: &str = "claude";
const RAG_MODEL: &str = "rag-embed";

async fn setup() -> Setup {
    let mock = MockProvider::start();
    let config = format!(
        r#"
[[providers]]
name = "local"
type = "ollama"
base_url = "{ollama}"
connect_timeout_secs = 2
read_timeout_secs = 5

[[providers]]
name = "cloud"
type = "openai"
base_url = "{openai}"
api_key_env = "{KEY_ENV}"
connect_timeout_secs = 2
read_timeout_secs = 5

[[providers]]
name = "anthropic"
type = "anthropic"
base_url = "{ollama}"
api_key_env = "{KEY_ENV}"

[[models]]
name = "{ANTHROPIC_MODEL}"
provider = "anthropic"
model_id = "claude-model-id"
tier = "balanced"

[[models]]
name = "{OLLAMA_MODEL}"
provider = "local"
model_id = "{OLLAMA_MODEL_ID}"

[[models]]
name = "{OPENAI_MODEL}"
provider = "cloud"
model_id = "{OPENAI_MODEL_ID}"

[rag.embedder]
type = "ollama"
base_url = "{ollama}"
model = "{RAG_MODEL}"
"#,
        ollama = mock.url(),
        openai = mock.openai_base_url(),
    );
    let server = TestServer::builder().env(KEY_ENV, PROVIDER_KEY).config(&config).start();
    let provisioned = server.provision("embedder-co", "pro", "generic").await;
    let key = provisioned["raw_api_key"].as_str().unwrap().to_string();
    Setup { mock, server, key }
}

async fn embed(server: &TestServer, key: &str, body: &Value) -> reqwest::Response {
    server.v1(Method::POST, "/v1/embeddings", key).json(body).send().await.unwrap()
}

/// The vectors of a `float` answer, by index.
fn floats(answer: &Value) -> Vec<Vec<f32>> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

/// The vectors of a `base64` answer, decoded as the OpenAI SDK does (little-endian f32).
fn decoded(answer: &Value) -> Vec<Vec<f32>> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(item["embedding"].as_str().unwrap()).unwrap();
            assert_eq!(bytes.len() % 4, 0);
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        })
        .collect()
}

/// The OpenAI error body of `response`, asserting its status and `error.code`.
async fn openai_error(response: reqwest::Response, status: u16, code: Value) -> Value {
    let body = expect_json(response, status).await;
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

#[tokio::test]
async fn hash_float_and_base64_are_the_same_vectors_in_input_order() {
    let Setup { mock: _mock, server, key } = setup().await;
    let texts = ["The quick brown fox", "jumps over", "the lazy dog"];
    let answer = expect_json(embed(&server, &key, &json!({ "model": "hash", "input": texts })).await, 200).await;
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "hash");
    let items = answer["data"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (index, item) in items.iter().enumerate() {
        assert_eq!((item["object"].as_str(), item["index"].as_u64()), (Some("embedding"), Some(index as u64)));
    }
    // The same vectors RAG stores with the default hash embedder (384 dimensions).
    let hash = ares::rag::embedder::Embedder::Hash { dimensions: 384 };
    let expected = hash.embed_blocking(&texts).unwrap();
    assert_eq!(floats(&answer), expected);
    // The estimate, ceil(bytes / 4) per input: 19 → 5, 10 → 3, 12 → 3.
    assert_eq!(answer["usage"], json!({ "prompt_tokens": 11, "total_tokens": 11 }));

    let body = json!({ "model": "hash", "input": texts, "encoding_format": "base64" });
    let encoded = expect_json(embed(&server, &key, &body).await, 200).await;
    assert_eq!(decoded(&encoded), expected, "base64 decodes to the very same floats");
    assert_eq!(encoded["usage"], answer["usage"]);

    // One string is one input; `dimensions` sizes the hash vector; `float` is the default.
    let body = json!({ "model": "hash", "input": "jumps over", "dimensions": 64, "encoding_format": "float",
                       "user": "someone" });
    let one = expect_json(embed(&server, &key, &body).await, 200).await;
    assert_eq!(
        floats(&one),
        ares::rag::embedder::Embedder::Hash { dimensions: 64 }.embed_blocking(&["jumps over"]).unwrap()
    );
    for dimensions in [json!(0), json!(-1), json!("many"), json!(100_000)] {
        let body = json!({ "model": "hash", "input": "x", "dimensions": dimensions });
        openai_error(embed(&server, &key, &body).await, 400, Value::Null).await;
    }
}

#[tokio::test]
async fn ollama_and_openai_models_embed_through_their_providers() {
    let Setup { mock, server, key } = setup().await;
    let texts = ["cat cat dog", "a kitten", "the car"];
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| mock_embedding(t, MOCK_EMBEDDING_DIMENSIONS)).collect();

    // Ollama: `/api/embed` with the model id and `dimensions`; the model's own (unnormalised)
    // vectors come back; no upstream usage, so the estimate.
    let body = json!({ "model": OLLAMA_MODEL, "input": texts, "dimensions": MOCK_EMBEDDING_DIMENSIONS });
    let answer = expect_json(embed(&server, &key, &body).await, 200).await;
    assert_eq!(answer["model"], OLLAMA_MODEL);
    assert_eq!(floats(&answer), expected);
    assert_eq!(answer["usage"]["prompt_tokens"], 3 + 2 + 2, "ceil(11/4) + ceil(8/4) + ceil(7/4)");
    let recorded = mock.embedding_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/api/embed");
    assert_eq!(
        recorded[0].body,
        json!({ "model": OLLAMA_MODEL_ID, "input": texts, "dimensions": MOCK_EMBEDDING_DIMENSIONS })
    );

    // OpenAI-compatible: `/v1/embeddings` with the provider's key; the mock answers last-first,
    // the gateway orders by index; the upstream's prompt_tokens (one per text) are the usage.
    let body = json!({ "model": OPENAI_MODEL, "input": texts, "encoding_format": "base64",
                       "dimensions": MOCK_EMBEDDING_DIMENSIONS });
    let answer = expect_json(embed(&server, &key, &body).await, 200).await;
    assert_eq!(answer["model"], OPENAI_MODEL);
    assert_eq!(decoded(&answer), expected);
    assert_eq!(answer["usage"], json!({ "prompt_tokens": 3, "total_tokens": 3 }));
    let recorded = mock.embedding_requests();
    let upstream = &recorded[1];
    assert_eq!(upstream.path, "/v1/embeddings");
    assert_eq!(upstream.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    assert_eq!(
        upstream.body,
        json!({ "model": OPENAI_MODEL_ID, "input": texts, "dimensions": MOCK_EMBEDDING_DIMENSIONS }),
        "the upstream is asked for floats, whatever the client's encoding"
    );

    // The provider model id names the model too; without `dimensions` none is sent.
    let answer =
        expect_json(embed(&server, &key, &json!({ "model": OPENAI_MODEL_ID, "input": "the car" })).await, 200).await;
    assert_eq!(answer["model"], OPENAI_MODEL_ID);
    assert_eq!(floats(&answer), [mock_embedding("the car", MOCK_EMBEDDING_DIMENSIONS)]);
    assert_eq!(mock.embedding_requests()[2].body, json!({ "model": OPENAI_MODEL_ID, "input": ["the car"] }));

    // `[rag.embedder]`'s model is served by that embedder.
    let answer =
        expect_json(embed(&server, &key, &json!({ "model": RAG_MODEL, "input": ["a kitten"] })).await, 200).await;
    assert_eq!(floats(&answer), [mock_embedding("a kitten", MOCK_EMBEDDING_DIMENSIONS)]);
    let upstream = &mock.embedding_requests()[3];
    assert_eq!(
        (upstream.path.as_str(), &upstream.body),
        ("/api/embed", &json!({ "model": RAG_MODEL, "input": ["a kitten"] }))
    );

    // A server that ignores `dimensions` is a 400 naming it, not vectors of the wrong size.
    let body = json!({ "model": OLLAMA_MODEL, "input": "cat", "dimensions": 64 });
    let refused = openai_error(embed(&server, &key, &body).await, 400, Value::Null).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("dimensions = 64"), "{refused}");
    // A server that honours it.
    mock.set_embedding_dimensions(64);
    let answer = expect_json(embed(&server, &key, &body).await, 200).await;
    assert_eq!(floats(&answer), [mock_embedding("cat", 64)]);

    // Upstream failures: a 5xx is the gateway's 502; a refused input is the client's 400.
    mock.set_embedding_status(500);
    let failed = openai_error(
        embed(&server, &key, &json!({ "model": OPENAI_MODEL, "input": "x" })).await,
        502,
        json!("upstream_error"),
    )
    .await;
    assert!(failed["error"]["message"].as_str().unwrap().contains("mock embedding error"), "{failed}");
    mock.set_embedding_status(400);
    openai_error(embed(&server, &key, &json!({ "model": OLLAMA_MODEL, "input": "x" })).await, 400, Value::Null).await;
}

#[tokio::test]
async fn refusals_are_in_openais_error_shape() {
    let Setup { mock, server, key } = setup().await;

    // Anthropic has no embeddings API.
    let refused =
        openai_error(embed(&server, &key, &json!({ "model": ANTHROPIC_MODEL, "input": "x" })).await, 400, Value::Null)
            .await;
    assert_eq!(refused["error"]["type"], "invalid_request_error");
    assert!(refused["error"]["message"].as_str().unwrap().contains("no embeddings"), "{refused}");
    // A tier names a model as well: `balanced` is the Anthropic one here.
    openai_error(embed(&server, &key, &json!({ "model": "balanced", "input": "x" })).await, 400, Value::Null).await;

    // Unknown model.
    let unknown = openai_error(
        embed(&server, &key, &json!({ "model": "nope-embed", "input": "x" })).await,
        404,
        json!("model_not_found"),
    )
    .await;
    assert_eq!(unknown["error"]["param"], "model");
    assert_eq!(unknown["error"]["type"], "invalid_request_error");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("nope-embed"), "{unknown}");

    // Missing and invalid fields.
    let missing = openai_error(embed(&server, &key, &json!({ "input": "x" })).await, 400, Value::Null).await;
    assert_eq!(missing["error"]["message"], "Missing required field: model");
    assert_eq!(missing["error"]["param"], "model");
    let missing = openai_error(embed(&server, &key, &json!({ "model": "hash" })).await, 400, Value::Null).await;
    assert_eq!(missing["error"]["message"], "Missing required field: input");
    for input in [json!(""), json!([]), json!(["fine", ""])] {
        let empty =
            openai_error(embed(&server, &key, &json!({ "model": "hash", "input": input })).await, 400, Value::Null)
                .await;
        assert!(empty["error"]["message"].as_str().unwrap().contains("must not be empty"), "{empty}");
    }
    let tokens =
        openai_error(embed(&server, &key, &json!({ "model": "hash", "input": [[1, 2, 3]] })).await, 400, Value::Null)
            .await;
    assert!(tokens["error"]["message"].as_str().unwrap().contains("Token-id input"), "{tokens}");
    let body = json!({ "model": "hash", "input": "x", "encoding_format": "int8" });
    let format = openai_error(embed(&server, &key, &body).await, 400, Value::Null).await;
    assert_eq!(format["error"]["param"], "encoding_format");
    let too_many = vec!["word"; 2049];
    openai_error(embed(&server, &key, &json!({ "model": "hash", "input": too_many })).await, 400, Value::Null).await;

    // No key, a wrong key: 401 `invalid_api_key`, before the body is looked at.
    let response = server.client().post(server.url("/v1/embeddings")).json(&json!({})).send().await.unwrap();
    openai_error(response, 401, json!("invalid_api_key")).await;
    let response = embed(&server, "ares_not-a-key", &json!({ "model": "hash", "input": "x" })).await;
    openai_error(response, 401, json!("invalid_api_key")).await;

    assert!(mock.embedding_requests().is_empty(), "nothing reached a provider");
}

#[tokio::test]
async fn embedding_tokens_are_metered() {
    let Setup { mock: _mock, server, key } = setup().await;
    let before = expect_json(server.v1(Method::GET, "/v1/usage", &key).send().await.unwrap(), 200).await;
    assert_eq!(before["total_tokens"], 0);

    let response = embed(&server, &key, &json!({ "model": "hash", "input": ["12345678", "1234567890123"] })).await;
    assert!(header(&response, "x-ratelimit-remaining").is_some(), "governed like the rest of /v1");
    let first = expect_json(response, 200).await;
    assert_eq!(first["usage"]["prompt_tokens"], 2 + 4);
    let second =
        expect_json(embed(&server, &key, &json!({ "model": OPENAI_MODEL, "input": ["a", "b", "c"] })).await, 200).await;
    assert_eq!(second["usage"]["prompt_tokens"], 3);
    // A refused request counts as a request but uses no tokens.
    embed(&server, &key, &json!({ "model": "nope", "input": "x" })).await;

    let after = expect_json(server.v1(Method::GET, "/v1/usage", &key).send().await.unwrap(), 200).await;
    assert_eq!(after["total_tokens"], 6 + 3, "{after}");
    assert_eq!(after["total_api_calls"], 1 + 3, "{after}");
}
