//! Response builders. JSON bodies carry `Content-Type: application/json` with no charset, as
//! the reference does (API.md §0.2).

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use serde::Serialize;

use super::{Response, ResponseBody};
use crate::error::{ApiError, Dialect};

pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> ResponseBody {
    full(Bytes::new())
}

/// Header room reserved in a new response for what the pipeline adds to an answer (content
/// type, request id, tokens, context, served-by, attempts, cost, quota): growing the map on the
/// way reallocated it twice per response, 2 % of the server's CPU at 32 concurrent chats and a
/// tenth of its malloc lock waits (`perf`).
pub const HEADER_ROOM: usize = 12;

fn with_body(status: StatusCode, content_type: &'static str, body: ResponseBody) -> Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().reserve(HEADER_ROOM);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serialize `value` as the JSON body. Serialization of our own view types cannot fail in
/// practice; if it does, the client gets a 500 rather than a half-written body.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_body(status, "application/json", full(bytes)),
        Err(e) => error(&ApiError::Internal(format!("cannot serialize response: {e}"))),
    }
}

/// A body already serialised as JSON (a cached page).
pub fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    with_body(status, "application/json", full(body))
}

pub fn text(status: StatusCode, body: &'static str) -> Response {
    with_body(status, "text/plain; charset=utf-8", full(body))
}

/// A body built at run time, with its content type (`/metrics`).
pub fn text_owned(status: StatusCode, content_type: &'static str, body: String) -> Response {
    with_body(status, content_type, full(body))
}

pub fn no_content() -> Response {
    let mut response = http::Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The error envelope `{"error", "code"}` (+ `retry_after` for 429) and its headers.
pub fn error(err: &ApiError) -> Response {
    error_in(err, Dialect::Ares)
}

/// The error body in `dialect`'s shape, same status and headers:
/// - ARES: `{"error", "code"}` (+ `retry_after` for 429);
/// - OpenAI: `{"error": {"message", "type", "param", "code"}}`;
/// - Anthropic: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_in(err: &ApiError, dialect: Dialect) -> Response {
    let (status, _) = err.status_and_code();
    let mut response = json(status, &error_body(err, dialect));
    let headers = response.headers_mut();
    if let ApiError::MethodNotAllowed { allow } = err {
        let allow: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
        if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
            headers.insert(header::ALLOW, value);
        }
    }
    if let Some(retry_after_secs) = err.retry_after() {
        let value = HeaderValue::from(retry_after_secs);
        headers.insert(header::RETRY_AFTER, value.clone());
        headers.insert("x-ratelimit-after", value);
    }
    response
}

/// The JSON of an error in `dialect`'s shape (also what a stream's error event carries).
pub fn error_body(err: &ApiError, dialect: Dialect) -> serde_json::Value {
    match dialect {
        Dialect::Ares => {
            let (_, code) = err.status_and_code();
            let mut body = serde_json::json!({ "error": err.to_string(), "code": code });
            if let Some(retry_after_secs) = err.retry_after() {
                body["retry_after"] = retry_after_secs.into();
            }
            body
        }
        Dialect::OpenAi => {
            let (kind, code, param) = err.openai_fields();
            serde_json::json!({ "error": { "message": err.to_string(), "type": kind, "param": param, "code": code } })
        }
        Dialect::Anthropic => {
            serde_json::json!({ "type": "error", "error": { "type": err.anthropic_type(), "message": err.to_string() } })
        }
    }
}
