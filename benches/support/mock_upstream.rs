//! An instant upstream speaking the OpenAI chat wire format: a fixed eight-word reply, streamed
//! (eight `chat.completion.chunk` deltas, a finish chunk, a usage chunk and `[DONE]`) when the
//! request asks for `stream: true`. What the latency benchmarks measure the gateway against:
//! it does no work, so whatever a call through ARES adds over a call to it is ARES.
//!
//! Shared by `benches/chat_latency.rs` (in-process) and `examples/mock_upstream.rs` (a process
//! of its own, for `benches/wrk_gateway.sh`).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

pub const REPLY_WORDS: [&str; 8] = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "dog."];

type MockBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(request: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<MockBody>, Infallible> {
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let stream =
        serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["stream"].as_bool()).unwrap_or(false);
    if !stream {
        let answer = json!({
            "choices": [{"message": {"role": "assistant", "content": REPLY_WORDS.concat()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 8}
        });
        let response = hyper::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(answer.to_string())).boxed())
            .expect("a valid response");
        return Ok(response);
    }
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = REPLY_WORDS
        .iter()
        .map(|w| Ok(Frame::data(Bytes::from(format!("data: {}\n\n", json!({"choices": [{"delta": {"content": w}}]}))))))
        .collect();
    frames.push(Ok(Frame::data(Bytes::from(format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 8}})
    )))));
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
    Ok(hyper::Response::builder().header("content-type", "text/event-stream").body(body).expect("a valid response"))
}

/// Serve `listener` until the runtime stops.
pub async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
