//! HTTP plumbing, and the only module that knows hyper: the accept loop and graceful shutdown
//! (`server`), body limits and JSON parsing (`body`), response builders (`response`), CORS,
//! the per-IP rate limiter, client-IP resolution and per-connection deadlines (`watchdog`).

pub mod body;
pub mod client_ip;
pub mod cors;
pub mod rate_limit;
pub mod response;
pub mod server;
pub mod sse;
mod watchdog;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// Error type of response bodies (streams may fail mid-way).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body: a full buffer or a stream (SSE), boxed.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// Every request body as it arrives from hyper, with the body timeout.
pub type RequestBody = body::TimedBody;

pub type Request = http::Request<RequestBody>;
pub type Response = http::Response<ResponseBody>;

pub use server::serve;
