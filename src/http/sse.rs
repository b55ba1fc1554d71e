//! Server-sent events: a response body fed from a channel, and the event framing of API.md §6.
//! Dropping the body (the client went away) closes the channel, which is how producers learn to
//! stop and cancel their upstream call.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body::{Body, Frame};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::{BoxError, Response, ResponseBody};
use http_body_util::BodyExt as _;

/// Seconds without output after which a `: keep-alive` comment is sent.
pub const KEEP_ALIVE_SECS: u64 = 15;

/// The body of an event stream: events from a channel, and the dialect's keep-alive event
/// after `KEEP_ALIVE_SECS` without one. The keep-alive lives here, where silence towards the
/// client is seen, so the producer needs no timer of its own.
struct ChannelBody {
    events: mpsc::Receiver<Bytes>,
    keep_alive: Bytes,
    quiet_limit: Duration,
    /// One timer for the whole stream, moved only when it fires (moving it for every event
    /// would add and remove a timer-wheel entry per token).
    quiet: Pin<Box<Sleep>>,
    last_sent: Instant,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(event) = self.events.poll_recv(cx) {
            self.last_sent = Instant::now();
            return Poll::Ready(event.map(|bytes| Ok(Frame::data(bytes))));
        }
        loop {
            ready!(self.quiet.as_mut().poll(cx));
            let now = Instant::now();
            let due = self.last_sent + self.quiet_limit;
            if due > now {
                self.quiet.as_mut().reset(due);
                continue;
            }
            let next = now + self.quiet_limit;
            self.quiet.as_mut().reset(next);
            self.last_sent = now;
            return Poll::Ready(Some(Ok(Frame::data(self.keep_alive.clone()))));
        }
    }
}

/// The sending half of an event stream, and its body for [`response`]: `keep_alive` is the
/// dialect's keep-alive event.
pub fn channel(keep_alive: Bytes) -> (mpsc::Sender<Bytes>, EventBody) {
    channel_quiet_for(keep_alive, Duration::from_secs(KEEP_ALIVE_SECS))
}

/// [`channel`] with its keep-alive after `quiet_limit` of silence.
fn channel_quiet_for(keep_alive: Bytes, quiet_limit: Duration) -> (mpsc::Sender<Bytes>, EventBody) {
    let (sender, events) = mpsc::channel(32);
    let now = Instant::now();
    let quiet = Box::pin(tokio::time::sleep_until(now + quiet_limit));
    (sender, EventBody(ChannelBody { events, keep_alive, quiet_limit, quiet, last_sent: now }))
}

/// An event stream's body, not yet sent.
pub struct EventBody(ChannelBody);

/// A `200 text/event-stream` response with `body`.
pub fn response(body: EventBody, headers: &[(&'static str, String)]) -> Response {
    let body: ResponseBody = body.0.boxed();
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
    response
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

    async fn next_frame(body: &mut ChannelBody) -> Option<Bytes> {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        frame.ok().and_then(|f| f.into_data().ok())
    }

    #[tokio::test]
    async fn the_body_sends_the_keep_alive_only_after_a_quiet_period_and_ends_with_its_sender() {
        let quiet = Duration::from_millis(300);
        let (sender, EventBody(mut body)) = channel_quiet_for(Bytes::from_static(b": ping\n\n"), quiet);
        let started = Instant::now();
        // Events sent more often than the quiet period: no keep-alive between them.
        let mut last_polled = started;
        for i in 0..4 {
            sender.send(data(&i.to_string())).await.expect("the body is open");
            last_polled = Instant::now();
            assert_eq!(next_frame(&mut body).await.expect("an event"), data(&i.to_string()));
            tokio::time::sleep(quiet / 3).await;
        }
        assert_eq!(next_frame(&mut body).await.expect("a keep-alive"), ": ping\n\n");
        let waited = last_polled.elapsed();
        assert!(waited >= quiet, "keep-alive {waited:?} after the last event, quiet limit {quiet:?}");
        assert!(started.elapsed() >= quiet * 2, "the events' times are not quiet time");
        drop(sender);
        assert_eq!(next_frame(&mut body).await, None, "the body ends when its sender is dropped");
    }
}
