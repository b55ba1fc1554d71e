//! Server-sent events: a response body fed from a channel, and the event framing of API.md §6.
//! Dropping the body (the client went away) closes the channel, which is how producers learn to
//! stop and cancel their upstream call.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body::{Body, Frame};
use tokio::sync::mpsc;

use super::{BoxError, Response, ResponseBody};
use http_body_util::BodyExt as _;

/// Seconds without output after which a `: keep-alive` comment is sent.
pub const KEEP_ALIVE_SECS: u64 = 15;

struct ChannelBody {
    events: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.events.poll_recv(cx).map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A `200 text/event-stream` response whose events come from the returned sender.
pub fn response(headers: &[(&'static str, String)]) -> (mpsc::Sender<Bytes>, Response) {
    let (sender, events) = mpsc::channel(32);
    let body: ResponseBody = ChannelBody { events }.boxed();
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let map = response.headers_mut();
    map.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    map.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    map.insert("x-accel-buffering", HeaderValue::from_static("no"));
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(*name, value);
        }
    }
    (sender, response)
}

/// One event: `data:` lines (a payload with newlines becomes several lines of one event).
pub fn data(payload: &str) -> Bytes {
    let mut out = String::with_capacity(payload.len() + 8);
    for line in payload.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A named event (`event: error`).
pub fn named(event: &str, payload: &str) -> Bytes {
    let mut out = format!("event: {event}\n").into_bytes();
    out.extend_from_slice(&data(payload));
    Bytes::from(out)
}

pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_splits_lines_and_keeps_leading_spaces() {
        assert_eq!(data(" what I"), "data:  what I\n\n");
        assert_eq!(data("a\nb"), "data: a\ndata: b\n\n");
        assert_eq!(named("error", "{}"), "event: error\ndata: {}\n\n");
    }
}
