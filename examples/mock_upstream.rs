//! The benchmarks' instant OpenAI-wire upstream as a process of its own, for load tools outside
//! Rust (`benches/wrk_gateway.py`): `cargo run --release --example mock_upstream [ADDR]`
//! (default `127.0.0.1:0`) prints `http://<addr>` once it listens.

#![allow(clippy::print_stdout, clippy::expect_used)]

#[path = "../benches/support/mock_upstream.rs"]
mod mock_upstream;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_string());
    let threads = std::env::var("MOCK_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind the mock upstream");
        println!("http://{}", listener.local_addr().expect("a local address"));
        mock_upstream::serve(listener).await;
    });
}
