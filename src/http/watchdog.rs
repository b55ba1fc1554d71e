//! Per-connection deadlines, so idle or trickling clients cannot hold the connection slots.
//!
//! hyper's own HTTP/1 header timer does not cover a connection that sends nothing (hyper-util's
//! protocol detection waits for the first bytes without a timer) and runs between keep-alive
//! requests too, which would cut idle connections at the head timeout; HTTP/2 has no idle timer
//! at all. So the server keeps the deadlines itself, the same way for both protocols:
//!
//! - while a request is in flight (from its head to the end of its response body) there is no
//!   connection deadline: a slow handler or a long SSE stream is never cut; a request body that
//!   stalls is ended by [`super::body::TimedBody`];
//! - a new connection must finish its first request head within the head timeout;
//! - after a response, HTTP/1 may idle for the idle timeout, but once the next head has started
//!   (a byte has arrived) it must be finished within the head timeout; HTTP/2 may idle for the
//!   idle timeout (its pings and settings are not requests);
//! - while every connection slot is taken, idling is allowed only for the head timeout, so a
//!   waiting client gets a slot within that time.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{BoxError, ResponseBody};

/// The `[server]` timeouts that apply to a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub head: Duration,
    pub body: Duration,
    pub idle: Duration,
}

/// One connection's activity, updated by its socket ([`ActivityIo`]) and its requests
/// ([`InFlight`]); its task reads [`Watch::deadline`].
pub struct Watch {
    timeouts: Timeouts,
    state: Mutex<State>,
    /// Woken when the deadline may have moved earlier (the connection went idle, a head began).
    changed: Notify,
}

struct State {
    in_flight: usize,
    /// Requests started on this connection; none yet means the first head is still due.
    started: u64,
    http2: bool,
    /// When the connection was accepted or its last response finished.
    idle_since: Instant,
    /// The first byte read since `idle_since`: the start of the next HTTP/1 head.
    head_started: Option<Instant>,
}

impl Watch {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        let state = State { in_flight: 0, started: 0, http2: false, idle_since: Instant::now(), head_started: None };
        Arc::new(Watch { timeouts, state: Mutex::new(state), changed: Notify::new() })
    }

    /// When the connection is to be closed if nothing happens before; `None` while a request is
    /// in flight. `crowded`: every connection slot is taken.
    pub fn deadline(&self, crowded: bool) -> Option<Instant> {
        let state = self.state();
        let Timeouts { head, idle, .. } = self.timeouts;
        if state.in_flight > 0 {
            return None;
        }
        if state.started == 0 {
            return Some(state.idle_since + head);
        }
        let idle_deadline = state.idle_since + if crowded { idle.min(head) } else { idle };
        match state.head_started {
            Some(started) if !state.http2 => Some(started + head),
            _ => Some(idle_deadline),
        }
    }

    /// Wait until the deadline may have moved.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// A request head has arrived; the returned guard ends the request when dropped, and
    /// `server_wide` counts it meanwhile (`ares_http_requests_in_flight`).
    pub fn request_started(self: &Arc<Self>, http2: bool, server_wide: &IntGauge) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.started += 1;
        state.http2 = http2;
        state.head_started = None;
        server_wide.inc();
        InFlight(self.clone(), server_wide.clone())
    }

    fn request_finished(&self) {
        let mut state = self.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_started = None;
            drop(state);
            self.changed.notify_one();
        }
    }

    fn bytes_read(&self) {
        self.bytes_read_at(Instant::now());
    }

    fn bytes_read_at(&self, now: Instant) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
            drop(state);
            self.changed.notify_one();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, consistent after every statement: a panic elsewhere
        // cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in flight: from its head until its response body is finished or dropped (or the
/// request is abandoned, as when an HTTP/2 stream is reset).
pub struct InFlight(Arc<Watch>, IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
        self.1.dec();
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct TrackedBody {
    inner: ResponseBody,
    _in_flight: InFlight,
}

impl TrackedBody {
    pub fn new(inner: ResponseBody, in_flight: InFlight) -> Self {
        TrackedBody { inner, _in_flight: in_flight }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, telling its [`Watch`] when bytes arrive.
pub struct ActivityIo {
    stream: TcpStream,
    watch: Arc<Watch>,
}

impl ActivityIo {
    pub fn new(stream: TcpStream, watch: Arc<Watch>) -> Self {
        ActivityIo { stream, watch }
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts =
        Timeouts { head: Duration::from_secs(10), body: Duration::from_secs(10), idle: Duration::from_secs(60) };

    fn after(watch: &Watch, crowded: bool) -> Option<Duration> {
        watch.deadline(crowded).map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn gauge() -> IntGauge {
        IntGauge::new("in_flight", "requests in flight").unwrap()
    }

    fn near(actual: Option<Duration>, secs: u64) -> bool {
        actual.is_some_and(|d| d <= Duration::from_secs(secs) && d > Duration::from_secs(secs) - Duration::from_secs(1))
    }

    #[test]
    fn first_head_is_due_within_the_head_timeout_even_if_nothing_arrives() {
        let watch = Watch::new(TIMEOUTS);
        assert!(near(after(&watch, false), 10));
        watch.bytes_read();
        assert!(near(after(&watch, false), 10), "bytes do not extend the first head");
    }

    #[test]
    fn nothing_is_due_while_a_request_is_in_flight() {
        let watch = Watch::new(TIMEOUTS);
        let first = watch.request_started(false, &gauge());
        let second = watch.request_started(true, &gauge());
        watch.bytes_read();
        assert_eq!(watch.deadline(true), None);
        drop(first);
        assert_eq!(watch.deadline(true), None);
        drop(second);
        assert!(near(after(&watch, false), 60));
    }

    #[test]
    fn keep_alive_idles_for_the_idle_timeout_then_a_started_head_has_the_head_timeout() {
        let watch = Watch::new(TIMEOUTS);
        drop(watch.request_started(false, &gauge()));
        assert!(near(after(&watch, false), 60));
        assert!(near(after(&watch, true), 10), "a crowded server reclaims idle connections sooner");
        watch.bytes_read_at(Instant::now() + Duration::from_secs(30));
        assert!(near(after(&watch, false), 40));
    }

    #[test]
    fn http2_frames_between_requests_do_not_shorten_idling() {
        let watch = Watch::new(TIMEOUTS);
        drop(watch.request_started(true, &gauge()));
        watch.bytes_read();
        assert!(near(after(&watch, false), 60));
    }
}
