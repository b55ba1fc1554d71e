//! The HTTP client chat calls go out on: hyper-util's pooled client over rustls, one per
//! provider, kept for the life of the registry.
//!
//! Not reqwest, which this replaced on the hot path: every reqwest request parsed its URL twice
//! (its redirect layer on the way out, its response URL on the way back) and passed through
//! redirect and retry layers a provider call never uses — 6 µs of the ~115 µs of CPU a governed
//! chat cost at c=32 (`perf`). Here the endpoint is parsed once when the provider is built and
//! each call is one pooled request.
//!
//! Timeouts: `connect_timeout_secs` for the TCP connect; `read_timeout_secs` for the response
//! head (from the call's start, a connect included) and then for each read of the body, so a
//! stream may run longer than the read timeout as long as the provider never goes silent for
//! that long.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::silence::SilenceTimer;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

const USER_AGENT: &str = concat!("ares/", env!("CARGO_PKG_VERSION"));

/// Why a call produced no usable response.
#[derive(Debug)]
pub enum CallError {
    /// The connect, the response head or a body read took longer than its timeout.
    Timeout,
    /// Connection refused or reset, DNS, TLS: the chain of causes, for the message.
    Transport(String),
}

/// One provider's connection pool and read timeout.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    read_timeout: Duration,
}

impl Upstream {
    /// Nothing is contacted. Fails only if the TLS configuration cannot be built.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Result<Upstream, String> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        // Requests are written whole and answered at once: no Nagle delay on small writes.
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Upstream { client, read_timeout })
    }

    /// POST `body` as JSON to `uri` with `headers`; the response once its head has arrived.
    pub async fn post_json(
        &self,
        uri: &http::Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: impl Into<Bytes>,
    ) -> Result<http::Response<Incoming>, CallError> {
        let mut request = http::Request::new(Full::new(body.into()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.clone();
        let map = request.headers_mut();
        // Room for hyper's `host` and `content-length` too: a map that grows reallocates.
        map.reserve(headers.len() + 4);
        map.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        map.insert(http::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        for (name, value) in headers {
            map.insert(name.clone(), value.clone());
        }
        // From the call's start: a connect, when the pool has no idle connection, counts too
        // (and is itself cut at the connect timeout).
        match tokio::time::timeout(self.read_timeout, self.client.request(request)).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Err(e)) => Err(transport(&e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// `body` to be read chunk by chunk, each read bounded by the read timeout.
    pub fn streamed(&self, body: Incoming) -> StreamedBody {
        StreamedBody { body, silence: SilenceTimer::new(self.read_timeout) }
    }

    /// The whole of `body`.
    pub async fn read_all(&self, body: Incoming) -> Result<Bytes, CallError> {
        let mut body = self.streamed(body);
        let Some(first) = body.next_chunk().await? else { return Ok(Bytes::new()) };
        let Some(second) = body.next_chunk().await? else { return Ok(first) };
        let mut all = Vec::with_capacity(first.len() + second.len());
        all.extend_from_slice(&first);
        all.extend_from_slice(&second);
        while let Some(more) = body.next_chunk().await? {
            all.extend_from_slice(&more);
        }
        Ok(Bytes::from(all))
    }
}

/// A response body read chunk by chunk: no read may wait longer than the read timeout, kept by
/// one timer for the whole body, moved only when it fires. A timeout per read added and
/// removed a timer-wheel entry for every token of a stream (1.2 % of the server's CPU at 2,000
/// concurrent streams, `perf`). Dropping it closes the connection.
pub struct StreamedBody {
    body: Incoming,
    silence: SilenceTimer,
}

impl StreamedBody {
    /// The next data (`None` at the end); a timeout when none came for the read timeout.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, CallError> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, CallError>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => return Poll::Ready(Ok(None)),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(transport(&e))),
                Poll::Ready(Some(Ok(frame))) => {
                    self.silence.activity();
                    // Trailers carry nothing a chat reads.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Ok(Some(data)));
                    }
                }
                Poll::Pending => {
                    ready!(self.silence.poll_silent(cx));
                    return Poll::Ready(Err(CallError::Timeout));
                }
            }
        }
    }
}

/// A transport failure, with its causes; a connect that timed out is a timeout.
fn transport(error: &(dyn std::error::Error + 'static)) -> CallError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return CallError::Timeout;
        }
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    CallError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn upstream(read_timeout: Duration) -> Upstream {
        Upstream::new(Duration::from_secs(2), read_timeout).unwrap()
    }

    #[tokio::test]
    async fn a_refused_connection_names_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri: http::Uri = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap()).parse().unwrap();
        drop(listener);
        match upstream(Duration::from_secs(2)).post_json(&uri, &[], "{}").await {
            Err(CallError::Transport(message)) => {
                assert!(message.to_lowercase().contains("refused"), "{message}")
            }
            other => panic!("expected a transport error, got {:?}", other.map(|r| r.status())),
        }
    }

    #[tokio::test]
    async fn a_head_that_never_comes_is_a_timeout_and_a_silent_body_too() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // The first connection never answers; the second sends a head and one chunk, then
        // goes silent.
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (_silent, _) = listener.accept().await.unwrap();
            let (mut stalled, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stalled.read(&mut buffer).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            stalled.write_all(head.as_bytes()).await.unwrap();
            stalled.write_all(b"6\r\ndata:1\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let uri: http::Uri = format!("http://{address}/v1/chat/completions").parse().unwrap();
        let client = upstream(Duration::from_millis(300));
        assert!(matches!(client.post_json(&uri, &[], "{}").await, Err(CallError::Timeout)));
        let response = client.post_json(&uri, &[], "{}").await.unwrap();
        let mut body = client.streamed(response.into_body());
        assert_eq!(body.next_chunk().await.unwrap().as_deref(), Some(&b"data:1"[..]));
        assert!(matches!(body.next_chunk().await, Err(CallError::Timeout)));
        server.abort();
    }

    #[tokio::test]
    async fn a_stream_may_outlast_the_read_timeout_but_not_go_silent_for_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Six chunks 100 ms apart (600 ms in all, twice the read timeout), then silence.
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            for i in 0..6 {
                stream.write_all(format!("6\r\ndata:{i}\r\n").as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let uri: http::Uri = format!("http://{address}/v1/chat/completions").parse().unwrap();
        let client = upstream(Duration::from_millis(300));
        let mut body = client.streamed(client.post_json(&uri, &[], "{}").await.unwrap().into_body());
        // The chunks span 500 ms, more than the read timeout: none of the reads times out.
        for i in 0..6 {
            let chunk = body.next_chunk().await.unwrap();
            assert_eq!(chunk.as_deref(), Some(format!("data:{i}").as_bytes()));
        }
        // Taken in the same poll that saw the last chunk: the silence starts here.
        let last_chunk = Instant::now();
        assert!(matches!(body.next_chunk().await, Err(CallError::Timeout)));
        let silent_for = last_chunk.elapsed();
        assert!(
            silent_for >= Duration::from_millis(290) && silent_for < Duration::from_secs(3),
            "timed out {silent_for:?} after the last chunk; the read timeout is 300 ms"
        );
        server.abort();
    }
}
