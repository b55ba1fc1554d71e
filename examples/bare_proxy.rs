//! The ceiling for `benches/wrk_gateway.py`: the least any gateway built on our HTTP stack can
//! do. Every request's body is forwarded unread to the upstream's `/v1/chat/completions` and
//! the upstream's answer is returned as it came — no auth, no JSON, no storage — over the same
//! server (hyper-util `auto`, tokio's multi-thread runtime with its default workers) and the
//! same pooled upstream client (reqwest) that `ares serve` uses. What ARES reaches at c=32,
//! as a fraction of this, is what governance costs; this as a fraction of the upstream measured
//! directly is what a second HTTP hop costs on the machine.
//!
//! `cargo run --release --example bare_proxy UPSTREAM_URL [ADDR]` prints `http://<addr>` once
//! it listens (default `127.0.0.1:0`).

#![allow(clippy::print_stdout, clippy::expect_used)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

async fn forward(
    client: reqwest::Client,
    target: String,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let failed = |status: u16| {
        let mut response = hyper::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        response
    };
    let Ok(body) = request.into_body().collect().await.map(|collected| collected.to_bytes()) else {
        return Ok(failed(400));
    };
    let sent = client.post(&target).header("content-type", "application/json").body(body).send().await;
    let Ok(answer) = sent else { return Ok(failed(502)) };
    let status = answer.status().as_u16();
    let Ok(bytes) = answer.bytes().await else { return Ok(failed(502)) };
    let mut response = hyper::Response::new(Full::new(bytes));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

fn main() {
    let upstream = std::env::args().nth(1).expect("usage: bare_proxy UPSTREAM_URL [ADDR]");
    let addr = std::env::args().nth(2).unwrap_or_else(|| "127.0.0.1:0".to_string());
    let target = format!("{}/v1/chat/completions", upstream.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async move {
        let client = reqwest::Client::builder().build().expect("an HTTP client");
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind the proxy");
        println!("http://{}", listener.local_addr().expect("a local address"));
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| forward(client.clone(), target.clone(), request));
                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}
