//! Server-sent events: a response body that runs its producer in place, and the event framing
//! of API.md §6.
//!
//! The producer (a chat turn reading its upstream, a deploy's output) is polled by the body
//! itself, in the connection's task, whenever the client can take more: a token read from the
//! upstream is framed and written by one task, without a channel or a second task's wake-up
//! per event (a producer task and a channel cost ~4 % of the server's CPU at 2,000 concurrent
//! streams, `perf`; `benches/concurrency.rs` ran 6-10 % less server CPU without them). A slow
//! client stops the polling, so
//! the upstream is read only as fast as the client reads. When the response is dropped (the
//! client went away, or it never started), the producer is told it was hung up on and finishes
//! on a task of its own: a chat still records what the request cost.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body::{Body, Frame};
use tokio::sync::Notify;

use super::{BoxError, Response, ResponseBody};
use crate::silence::SilenceTimer;
use http_body_util::BodyExt as _;

/// Seconds without output after which a `: keep-alive` comment is sent.
pub const KEEP_ALIVE_SECS: u64 = 15;

/// Events that may wait for the client before the producer is paused.
const QUEUE_LIMIT: usize = 32;

/// What a producer and its response share.
#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Bytes>>,
    /// The response was dropped: nothing more is sent.
    hung_up: AtomicBool,
    hang_up: Notify,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Bytes>> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_hung_up(&self) -> bool {
        self.hung_up.load(Ordering::Acquire)
    }
}

/// A producer's way to its response.
#[derive(Clone)]
pub struct Outbox(Arc<Shared>);

impl Outbox {
    /// Queue `event` for the client; `false` when the client has gone. Waits while
    /// [`QUEUE_LIMIT`] events are queued, so a slow client slows the producer down.
    pub async fn send(&self, event: Bytes) -> bool {
        if self.0.is_hung_up() {
            return false;
        }
        let queued = {
            let mut queue = self.0.queue();
            queue.push_back(event);
            queue.len()
        };
        if queued >= QUEUE_LIMIT {
            Drained(&self.0).await;
        }
        !self.0.is_hung_up()
    }

    /// Resolves when the client has gone.
    pub fn hung_up(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.0.clone();
        async move {
            loop {
                // Created before the check: `notify_waiters` reaches it from then on.
                let notified = shared.hang_up.notified();
                if shared.is_hung_up() {
                    return;
                }
                notified.await;
            }
        }
    }
}

/// Ready once the queue is below its limit or the client has gone. It registers no waker: the
/// producer is polled by its body (or [`Producer::run_until`]), which polls it again only after
/// taking every queued event; once hung up, it is ready.
struct Drained<'a>(&'a Shared);

impl Future for Drained<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_hung_up() || self.0.queue().len() < QUEUE_LIMIT { Poll::Ready(()) } else { Poll::Pending }
    }
}

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The producer's future: only ever used through `&mut` (`Mutex::get_mut`, no locking), the
/// mutex only makes the body `Sync` as [`ResponseBody`] requires.
type Exclusive = Mutex<Work>;

/// The work that feeds an event stream, run by whoever polls it: [`Producer::run_until`]
/// before the response starts, the response body after.
pub struct Producer {
    shared: Arc<Shared>,
    /// `None` once finished.
    work: Option<Exclusive>,
}

impl Producer {
    /// `produce` gets the [`Outbox`] its events go to.
    pub fn new<F>(produce: impl FnOnce(Outbox) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let work: Work = Box::pin(produce(Outbox(shared.clone())));
        Self { shared, work: Some(Mutex::new(work)) }
    }

    /// Run the producer until `until` resolves (`Some` of its output); `None` if the producer
    /// finished or filled the queue first (its events need the response to start).
    pub async fn run_until<T>(&mut self, until: impl Future<Output = T>) -> Option<T> {
        let mut until = std::pin::pin!(until);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(value) = until.as_mut().poll(cx) {
                return Poll::Ready(Some(value));
            }
            let finished = self.poll_work(cx).is_ready();
            if let Poll::Ready(value) = until.as_mut().poll(cx) {
                return Poll::Ready(Some(value));
            }
            if finished || self.shared.queue().len() >= QUEUE_LIMIT { Poll::Ready(None) } else { Poll::Pending }
        })
        .await
    }

    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(work) = &mut self.work else { return Poll::Ready(()) };
        let work = work.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(())
    }

    fn next_queued(&self) -> Option<Bytes> {
        self.shared.queue().pop_front()
    }
}

impl Drop for Producer {
    /// The response is gone: tell the producer, and let it finish on a task of its own.
    fn drop(&mut self) {
        self.shared.hung_up.store(true, Ordering::Release);
        self.shared.hang_up.notify_waiters();
        if let Some(work) = self.work.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(work.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner));
        }
    }
}

/// The body of an event stream: its producer's events, and the dialect's keep-alive event
/// after [`KEEP_ALIVE_SECS`] without one. The keep-alive lives here, where silence towards the
/// client is seen, so the producer needs no timer of its own.
struct ProducedBody {
    producer: Producer,
    keep_alive: Bytes,
    quiet: SilenceTimer,
}

impl ProducedBody {
    fn new(producer: Producer, keep_alive: Bytes, quiet_limit: Duration) -> Self {
        Self { producer, keep_alive, quiet: SilenceTimer::new(quiet_limit) }
    }
}

impl Body for ProducedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut event = self.producer.next_queued();
        if event.is_none() {
            // Polled only with nothing queued: a paused producer resumes here.
            let finished = self.producer.poll_work(cx).is_ready();
            event = self.producer.next_queued();
            if finished && event.is_none() {
                return Poll::Ready(None);
            }
        }
        if let Some(event) = event {
            self.quiet.activity();
            return Poll::Ready(Some(Ok(Frame::data(event))));
        }
        ready!(self.quiet.poll_silent(cx));
        Poll::Ready(Some(Ok(Frame::data(self.keep_alive.clone()))))
    }
}

/// A `200 text/event-stream` response with `headers`, its body the events of `producer`;
/// `keep_alive` is the dialect's keep-alive event.
pub fn response(producer: Producer, keep_alive: Bytes, headers: &[(&'static str, String)]) -> Response {
    let body: ResponseBody = ProducedBody::new(producer, keep_alive, Duration::from_secs(KEEP_ALIVE_SECS)).boxed();
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let map = response.headers_mut();
    map.reserve(super::response::HEADER_ROOM);
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
    use tokio::time::Instant;

    #[test]
    fn framing_splits_lines_and_keeps_leading_spaces() {
        assert_eq!(data(" what I"), "data:  what I\n\n");
        assert_eq!(data("a\nb"), "data: a\ndata: b\n\n");
        assert_eq!(named("error", "{}"), "event: error\ndata: {}\n\n");
    }

    async fn next_frame(body: &mut ProducedBody) -> Option<Bytes> {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        frame.ok().and_then(|f| f.into_data().ok())
    }

    /// A body whose producer forwards what the test sends it.
    fn forwarding(quiet: Duration) -> (tokio::sync::mpsc::UnboundedSender<Bytes>, ProducedBody) {
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let producer = Producer::new(|outbox| async move {
            while let Some(event) = events.recv().await {
                if !outbox.send(event).await {
                    return;
                }
            }
        });
        (sender, ProducedBody::new(producer, Bytes::from_static(b": ping\n\n"), quiet))
    }

    #[tokio::test]
    async fn the_body_sends_the_keep_alive_only_after_a_quiet_period_and_ends_with_its_producer() {
        let quiet = Duration::from_millis(300);
        let (sender, mut body) = forwarding(quiet);
        let started = Instant::now();
        // Events sent more often than the quiet period: no keep-alive between them.
        let mut last_polled = started;
        for i in 0..4 {
            sender.send(data(&i.to_string())).expect("the producer is running");
            last_polled = Instant::now();
            assert_eq!(next_frame(&mut body).await.expect("an event"), data(&i.to_string()));
            tokio::time::sleep(quiet / 3).await;
        }
        assert_eq!(next_frame(&mut body).await.expect("a keep-alive"), ": ping\n\n");
        let waited = last_polled.elapsed();
        assert!(waited >= quiet, "keep-alive {waited:?} after the last event, quiet limit {quiet:?}");
        assert!(started.elapsed() >= quiet * 2, "the events' times are not quiet time");
        drop(sender);
        assert_eq!(next_frame(&mut body).await, None, "the body ends when its producer does");
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_pauses_the_producer_at_the_queue_limit() {
        let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = produced.clone();
        let producer = Producer::new(|outbox| async move {
            for i in 0..100 {
                counter.fetch_add(1, Ordering::SeqCst);
                if !outbox.send(data(&i.to_string())).await {
                    return;
                }
            }
        });
        let mut body = ProducedBody::new(producer, keep_alive(), Duration::from_secs(60));
        assert_eq!(next_frame(&mut body).await.expect("the first event"), data("0"));
        assert_eq!(produced.load(Ordering::SeqCst), QUEUE_LIMIT, "the producer waits for the client");
        for i in 1..100 {
            assert_eq!(next_frame(&mut body).await.expect("every event"), data(&i.to_string()));
        }
        assert_eq!(next_frame(&mut body).await, None);
    }

    #[tokio::test]
    async fn a_dropped_response_tells_its_producer_which_finishes_on_its_own() {
        let (finished, finished_seen) = tokio::sync::oneshot::channel();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let producer = Producer::new(|outbox| async move {
            let hung_up = outbox.hung_up();
            tokio::pin!(hung_up);
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else { return };
                        if !outbox.send(event).await {
                            break;
                        }
                    }
                    () = &mut hung_up => break,
                }
            }
            // What a chat does after its client left: record the request.
            tokio::task::yield_now().await;
            let _ = finished.send(outbox.send(data("late")).await);
        });
        let mut body = ProducedBody::new(producer, keep_alive(), Duration::from_secs(60));
        sender.send(data("first")).expect("the producer is running");
        assert_eq!(next_frame(&mut body).await.expect("an event"), data("first"));
        // Waiting on the upstream (here, on the test) when the client goes.
        drop(body);
        let late_send = tokio::time::timeout(Duration::from_secs(5), finished_seen)
            .await
            .expect("the producer finishes without its body")
            .expect("and runs to its end");
        assert!(!late_send, "a hung-up outbox refuses events");
    }
}
