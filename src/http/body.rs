//! Reading request bodies: a size limit enforced while reading (and up front from
//! `Content-Length`), and JSON parsing whose failures become the documented 400 messages
//! (API.md §0.2) instead of serde's wording; and [`TimedBody`], the request body that gives up
//! on a client that stops sending.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Limited};
use serde::de::DeserializeOwned;

use super::{BoxError, RequestBody};
use crate::error::ApiError;

/// A request body that fails with [`BodyTimeout`] when no byte arrives for its timeout
/// (`[server].body_timeout_secs`) while it is being read. The clock runs only while the handler
/// waits for the body, so a handler that is slow for other reasons is never cut by it.
///
/// While every connection slot is taken, a body still arriving a head timeout after its request
/// began is given up too (at its next read), so a client trickling a byte at a time cannot hold
/// a slot that a waiting client needs.
pub struct TimedBody {
    inner: Source,
    clock: BodyClock,
    /// Armed when a read finds nothing to take; disarmed by every frame.
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

enum Source {
    Incoming(hyper::body::Incoming),
    /// A body the server wrote itself (an MCP tool's call of a route): complete from the start.
    Complete(Option<Bytes>),
}

/// The limits a [`TimedBody`] keeps.
pub struct BodyClock {
    /// The longest wait for the next byte.
    pub timeout: Duration,
    /// When the request began (its head arrived).
    pub started: tokio::time::Instant,
    /// How long the whole body may take while `crowded`.
    pub crowded_limit: Duration,
    /// `true` while every connection slot is taken.
    pub crowded: tokio::sync::watch::Receiver<bool>,
}

impl TimedBody {
    pub fn new(inner: hyper::body::Incoming, clock: BodyClock) -> Self {
        let timer = Box::pin(tokio::time::sleep(clock.timeout));
        TimedBody { inner: Source::Incoming(inner), clock, timer, armed: false }
    }

    /// A body already in hand, for a request the server makes of its own routes.
    pub fn complete(bytes: Bytes) -> Self {
        let (_, crowded) = tokio::sync::watch::channel(false);
        let clock = BodyClock {
            timeout: Duration::from_secs(3600),
            started: tokio::time::Instant::now(),
            crowded_limit: Duration::from_secs(3600),
            crowded,
        };
        let timer = Box::pin(tokio::time::sleep(clock.timeout));
        TimedBody { inner: Source::Complete(Some(bytes)), clock, timer, armed: false }
    }

    fn deadline(&self) -> tokio::time::Instant {
        let next_byte = tokio::time::Instant::now() + self.clock.timeout;
        if *self.clock.crowded.borrow() {
            next_byte.min(self.clock.started + self.clock.crowded_limit)
        } else {
            next_byte
        }
    }
}

/// The client sent no body byte for the body timeout (or, on a full server, was too slow).
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time (body timeout {0:?})")]
pub struct BodyTimeout(Duration);

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let incoming = match &mut this.inner {
            Source::Incoming(incoming) => incoming,
            Source::Complete(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match Pin::new(incoming).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)))
            }
            Poll::Pending => {
                if !this.armed {
                    this.armed = true;
                    let deadline = this.deadline();
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.clock.timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Source::Incoming(incoming) => incoming.is_end_stream(),
            Source::Complete(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Source::Incoming(incoming) => incoming.size_hint(),
            Source::Complete(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// Read the whole body, refusing more than `limit` bytes with 413.
pub async fn read_limited(headers: &http::HeaderMap, body: RequestBody, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge),
        Err(e) if e.is::<BodyTimeout>() => Err(ApiError::RequestTimeout),
        Err(e) => Err(ApiError::BadRequest(format!("Could not read request body: {e}"))),
    }
}

/// Parse JSON whatever the `Content-Type` says ([D] treats a wrong content type as a 400 case
/// only when the body is not JSON). Unknown fields are ignored.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request body is an object; serde would otherwise read `["acme","pro"]` as a struct.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidJson);
    }
    // Path tracking costs on every field, and only an error needs it: a body is parsed plainly
    // first, and only one that fails is parsed again with the path, to name the field.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer.end().map_err(|_| ApiError::InvalidJson)?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::InvalidJson,
        Category::Data => {
            let message = e.to_string();
            if let Some(field) = missing_field_name(&message) {
                let field = if path.is_empty() || path == "." { field.to_string() } else { format!("{path}.{field}") };
                ApiError::MissingField(field)
            } else if path.is_empty() || path == "." {
                // The top level has the wrong shape (an array where an object belongs, say).
                ApiError::InvalidJson
            } else {
                ApiError::InvalidField(path.to_string())
            }
        }
    }
}

/// serde's message for a missing field is "missing field `x` at line …".
fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}
