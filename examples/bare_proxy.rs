//! The ceiling for `benches/wrk_gateway.py`: the least any gateway built on our HTTP stack can
//! do. Every request's body is forwarded unread to the upstream's `/v1/chat/completions` and
//! the upstream's answer is returned as it came (an event stream chunk by chunk as it arrives)
//! — no auth, no JSON, no storage — over the same
//! server (hyper-util `auto`, tokio's multi-thread runtime with its default workers) and the
//! same pooled upstream client (`ares::llm::upstream`) that `ares serve` uses. What ARES
//! reaches at c=32, as a fraction of this, is what governance costs; this as a fraction of the
//! upstream measured directly is what a second HTTP hop costs on the machine.
//!
//! `cargo run --release --example bare_proxy UPSTREAM_URL [ADDR]` prints `http://<addr>` once
//! it listens (default `127.0.0.1:0`).

#![allow(clippy::print_stdout, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use ares::llm::upstream::Upstream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

type ProxyBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn forward(
    upstream: Arc<Upstream>,
    target: hyper::Uri,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<ProxyBody>, Infallible> {
    let failed = |status: u16| {
        let body = Full::new(Bytes::new()).map_err(|never| match never {}).boxed();
        let mut response = hyper::Response::new(body);
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        response
    };
    let Ok(body) = request.into_body().collect().await.map(|collected| collected.to_bytes()) else {
        return Ok(failed(400));
    };
    let Ok(answer) = upstream.post_json(&target, &[], body).await else { return Ok(failed(502)) };
    let status = answer.status();
    let streamed = answer.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (body, content_type) = if streamed {
        // An event stream is passed through as its chunks arrive (the ceiling of
        // `benches/concurrency.rs`).
        (answer.into_body().boxed(), "text/event-stream")
    } else {
        let Ok(bytes) = upstream.read_all(answer.into_body()).await else { return Ok(failed(502)) };
        (Full::new(bytes).map_err(|never| match never {}).boxed(), "application/json")
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(content_type));
    Ok(response)
}

fn main() {
    let upstream = std::env::args().nth(1).expect("usage: bare_proxy UPSTREAM_URL [ADDR]");
    let addr = std::env::args().nth(2).unwrap_or_else(|| "127.0.0.1:0".to_string());
    let target: hyper::Uri =
        format!("{}/v1/chat/completions", upstream.trim_end_matches('/')).parse().expect("an http:// UPSTREAM_URL");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async move {
        let upstream =
            Arc::new(Upstream::new(Duration::from_secs(10), Duration::from_secs(60)).expect("an HTTP client"));
        // A backlog for a burst of thousands of connections, as `ares serve` has.
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind(addr.parse().expect("an IPv4 ADDR")).expect("bind the proxy");
        let listener = socket.listen(4096).expect("listen");
        println!("http://{}", listener.local_addr().expect("a local address"));
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let (upstream, target) = (upstream.clone(), target.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| forward(upstream.clone(), target.clone(), request));
                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}
