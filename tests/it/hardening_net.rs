//! Network hardening, attacked the way an attacker would: raw sockets that send nothing, half a
//! request head or half a body, idle keep-alive and h2c connections, a server whose every
//! connection slot is held by such clients, and spoofed `X-Forwarded-For` headers.
//!
//! Timeouts are configured short (1–4 s); every assertion allows a generous margin above the
//! configured time and none depends on the server being fast.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, SseReader};
use crate::harness::{BinaryServer, TestServer, expect_error};
use crate::mock_provider::{Script, Wire};

/// Head 1 s, body 1 s, idle 3 s.
const SHORT: &str = "[server]\nrequest_head_timeout_secs = 1\nbody_timeout_secs = 1\nidle_timeout_secs = 3";

/// How long a test waits for the server to act before calling it a hang; far above every
/// configured timeout, far below hyper's old 30 s header timer.
const HANG: Duration = Duration::from_secs(12);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    stream
}

/// Read until the server closes the connection; returns what arrived and when it closed.
/// Panics if it is still open after [`HANG`].
fn read_until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection ({e}); received {received:?}"),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), Instant::now())
}

/// One complete keep-alive request; returns the response head and body as text.
fn request_on(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: ares\r\n\r\n").unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response was complete: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if received.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_head_timeout() {
    let server = TestServer::builder().config(SHORT).start();
    let started = Instant::now();
    let mut stream = connect(server.addr());
    let (received, closed) = read_until_closed(&mut stream);
    assert_eq!(received, "", "nothing to answer");
    let open_for = closed - started;
    assert!(open_for >= Duration::from_millis(900), "closed before the head timeout: {open_for:?}");
    assert!(open_for < Duration::from_secs(3), "held for {open_for:?}");
}

#[test]
fn a_head_trickled_byte_by_byte_is_cut_at_the_head_timeout() {
    let server = TestServer::builder().config(SHORT).start();
    let started = Instant::now();
    let mut stream = connect(server.addr());
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: ares\r\n").unwrap();
    // A header byte every 200 ms: always active, never finished.
    let writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..60 {
            if writer.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let (received, closed) = read_until_closed(&mut stream);
    let open_for = closed - started;
    assert!(open_for < Duration::from_secs(3), "a trickled head held the connection for {open_for:?}");
    assert!(!received.contains("200 OK"), "{received}");
    trickle.join().unwrap();
}

#[test]
fn idle_keep_alive_lasts_the_idle_timeout_not_the_head_timeout() {
    let server = TestServer::builder().config(SHORT).start();
    let mut stream = connect(server.addr());
    assert!(request_on(&mut stream, "/health").starts_with("HTTP/1.1 200"));
    // Idle for longer than the head timeout, shorter than the idle timeout: still usable.
    std::thread::sleep(Duration::from_millis(1800));
    assert!(request_on(&mut stream, "/health").starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let (received, closed) = read_until_closed(&mut stream);
    assert_eq!(received, "");
    let idle_for = closed - idle_from;
    assert!(idle_for >= Duration::from_millis(2500), "closed before the idle timeout: {idle_for:?}");
    assert!(idle_for < Duration::from_secs(5), "idle connection held for {idle_for:?}");
}

#[test]
fn a_stalled_body_is_answered_408_and_the_connection_closed() {
    let server = TestServer::builder().config(SHORT).start();
    let mut stream = connect(server.addr());
    stream
        .write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: ares\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"")
        .unwrap();
    let sent = Instant::now();
    let (received, closed) = read_until_closed(&mut stream);
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.to_ascii_lowercase().contains("connection: close"), "{received}");
    assert!(received.contains("\"code\":\"REQUEST_TIMEOUT\""), "{received}");
    let waited = closed - sent;
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn a_request_refused_before_its_body_arrives_says_the_connection_closes() {
    let server = TestServer::builder().start();
    let mut stream = connect(server.addr());
    // A bad key is refused on the head alone, before any body byte has arrived: the server
    // cannot reuse the connection and must say so (an SDK reusing it saw a connection error).
    let key = format!("ares_{}", "0".repeat(40));
    write!(
        stream,
        "POST /v1/chat HTTP/1.1\r\nHost: ares\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    )
    .unwrap();
    let (received, _) = read_until_closed(&mut stream);
    assert!(received.starts_with("HTTP/1.1 401"), "{received}");
    assert!(received.to_ascii_lowercase().contains("connection: close"), "{received}");

    // A refused request without a body leaves the connection open for the next one.
    let mut stream = connect(server.addr());
    let refused = request_on(&mut stream, "/v1/agents");
    assert!(refused.starts_with("HTTP/1.1 401") && !refused.to_ascii_lowercase().contains("connection: close"));
    assert!(request_on(&mut stream, "/health").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_body_that_keeps_coming_is_not_cut() {
    let server = TestServer::builder().config(SHORT).start();
    let mut stream = connect(server.addr());
    let body = br#"{"email":"nobody@example.com","password":"wrong-password-1"}"#;
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: ares\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // 2.4 s in all, more than the head and body timeouts, but never 1 s without a byte.
    for piece in body.chunks(body.len() / 4 + 1) {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(600));
    }
    let (received, _) = read_until_closed(&mut stream);
    assert!(received.starts_with("HTTP/1.1 401"), "the login was read and judged: {received}");
}

/// The h2c preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn an_h2c_connection_without_requests_is_closed_after_the_head_timeout() {
    let server = TestServer::builder().config(SHORT).start();
    let started = Instant::now();
    let mut stream = connect(server.addr());
    stream.write_all(H2_PREFACE).unwrap();
    let (received, closed) = read_until_closed(&mut stream);
    assert!(!received.is_empty(), "the server spoke HTTP/2 (its SETTINGS)");
    let open_for = closed - started;
    assert!(open_for < Duration::from_secs(3), "an h2c connection without requests held for {open_for:?}");
}

/// An HTTP/2 frame: type, flags, stream id, payload.
type H2Frame = (u8, u8, u32, Vec<u8>);

/// Read HTTP/2 frames until the server closes the connection, acknowledging its pings as a live
/// client would; returns the frames (type, flags, stream, payload) and when it closed.
fn h2_frames_until_closed(stream: &mut TcpStream) -> (Vec<H2Frame>, Instant) {
    let mut frames = Vec::new();
    loop {
        let mut head = [0u8; 9];
        match stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) => {
                return (frames, Instant::now());
            }
            Err(e) => panic!("the server did not close the connection ({e}); frames so far {frames:?}"),
        }
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).unwrap();
        if kind == 6 && flags & 1 == 0 {
            let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
            ack.extend_from_slice(&payload);
            let _ = stream.write_all(&ack);
        }
        frames.push((kind, flags, stream_id, payload));
    }
}

#[test]
fn an_idle_h2c_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::builder().config(SHORT).start();
    let mut stream = connect(server.addr());
    stream.write_all(H2_PREFACE).unwrap();
    // HEADERS (END_STREAM | END_HEADERS) on stream 1: GET http://a/health, HPACK without Huffman.
    let block: &[u8] = b"\x82\x86\x44\x07/health\x41\x01a";
    let mut frame = vec![0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1];
    frame.extend_from_slice(block);
    stream.write_all(&frame).unwrap();
    let sent = Instant::now();
    let (frames, closed) = h2_frames_until_closed(&mut stream);
    assert!(frames.iter().any(|(kind, _, id, payload)| *kind == 0 && *id == 1 && payload == b"OK"), "{frames:?}");
    let open_for = closed - sent;
    assert!(open_for >= Duration::from_millis(2500), "closed before the idle timeout: {open_for:?}");
    assert!(open_for < Duration::from_secs(5), "an idle h2c connection held for {open_for:?}");
}

#[tokio::test]
async fn a_stalled_h2c_request_body_is_answered_408() {
    let server = TestServer::builder().config(SHORT).start();
    let client = reqwest::Client::builder().no_proxy().http2_prior_knowledge().timeout(HANG).build().unwrap();
    let first: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from_static(b"{\"email\""));
    let stalled = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
    let started = Instant::now();
    let response = client
        .post(server.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await
        .expect("an answer, not a hang");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    expect_error(response, 408, "REQUEST_TIMEOUT").await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // The connection itself is fine: other streams go on.
    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn with_every_slot_held_by_slow_clients_a_new_client_is_answered_within_the_head_timeout() {
    // Head 2 s; idle 60 s, so idle keep-alive connections hold their slots unless the server
    // reclaims them when it is full.
    let server = TestServer::builder()
        .config("[server]\nmax_connections = 4\nrequest_head_timeout_secs = 2\nbody_timeout_secs = 2\nidle_timeout_secs = 60")
        .start();
    let addr = server.addr();
    let held = tokio::task::spawn_blocking(move || {
        let silent = connect(addr);
        let mut half_head = connect(addr);
        half_head.write_all(b"GET /health HTTP/1.1\r\nHost: ares\r\n").unwrap();
        let mut idle = connect(addr);
        assert!(request_on(&mut idle, "/health").starts_with("HTTP/1.1 200"));
        let mut idle_too = connect(addr);
        assert!(request_on(&mut idle_too, "/health").starts_with("HTTP/1.1 200"));
        vec![silent, half_head, idle, idle_too]
    })
    .await
    .unwrap();

    let started = Instant::now();
    let client = reqwest::Client::builder().no_proxy().timeout(HANG).build().unwrap();
    let response = client.get(server.url("/health")).send().await.expect("answered, not starved");
    assert_eq!(response.status(), 200);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "a new client waited {waited:?} for a slot");
    drop(held);
}

#[tokio::test]
async fn with_every_slot_held_by_trickled_bodies_a_new_client_is_answered_within_the_head_timeout() {
    // Body timeout 4 s: a byte every 250 ms never trips it; only the full server does.
    let server = TestServer::builder()
        .config("[server]\nmax_connections = 2\nrequest_head_timeout_secs = 2\nbody_timeout_secs = 4\nidle_timeout_secs = 60")
        .start();
    let started = Instant::now();
    let tricklers: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = connect(server.addr());
            stream.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: ares\r\nContent-Length: 1000\r\n\r\n{").unwrap();
            std::thread::spawn(move || {
                for _ in 0..80 {
                    std::thread::sleep(Duration::from_millis(250));
                    if stream.write_all(b" ").is_err() {
                        break;
                    }
                }
                read_until_closed(&mut stream).0
            })
        })
        .collect();
    // Let both bodies start, so the slots are taken by requests in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder().no_proxy().timeout(HANG).build().unwrap();
    let response = client.get(server.url("/health")).send().await.expect("answered, not starved");
    assert_eq!(response.status(), 200);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "a new client waited {waited:?} for a slot");
    for trickler in tricklers {
        let received = trickler.join().unwrap();
        assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    }
}

#[tokio::test]
async fn slow_handlers_and_long_streams_are_not_cut_by_the_connection_timeouts() {
    let gw = Gateway::builder(Wire::OpenAi).read_timeout_secs(10).config(SHORT).start();
    let token = gw.user().await;

    // A provider that thinks for longer than the head, body and idle timeouts together.
    gw.mock.set_script(Script::reply("slow but sure").delay(Duration::from_millis(4500)));
    let body = gw.chat_ok(&token, &json!({ "message": "go", "agent_type": "product" })).await;
    assert_eq!(body["response"], "slow but sure", "{body}");

    // A stream whose chunks are further apart than every timeout.
    let reply = "one two three";
    gw.mock.set_script(Script::reply(reply).chunk_delay(Duration::from_millis(1500)));
    let response = gw.post("/api/chat/stream", &token, &json!({ "message": "go", "agent_type": "product" })).await;
    let events = SseReader::new(response).rest().await;
    let text: String = events.iter().filter(|e| e.name.is_none()).map(|e| e.data.clone()).collect();
    assert_eq!(text, reply, "{events:?}");
}

/// One token per second, burst of three.
const TIGHT: &str = "[server]\nrate_limit_per_second = 1\nrate_limit_burst = 3";

/// Send 400 `/health` requests, each claiming a different `X-Forwarded-For`; returns how many
/// passed and how long it took.
async fn spoofing_run(server: &TestServer, forwarded_for: impl Fn(u32) -> String) -> (u32, Duration) {
    let started = Instant::now();
    let mut passed = 0;
    for n in 0..400u32 {
        let response = server.get("/health").header("x-forwarded-for", forwarded_for(n)).send().await.unwrap();
        match response.status().as_u16() {
            200 => passed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    (passed, started.elapsed())
}

fn random_address(n: u32) -> String {
    format!("198.18.{}.{}", n / 200, n % 200 + 1)
}

#[tokio::test]
async fn random_forwarded_for_from_loopback_does_not_buy_fresh_buckets() {
    // Default trusted proxies: a direct client's header is its own say-so.
    let server = TestServer::builder().config(TIGHT).start();
    let (passed, took) = spoofing_run(&server, random_address).await;
    let allowed = 3 + took.as_secs() as u32 + 1;
    assert!(passed <= allowed, "{passed} of 400 spoofed requests passed in {took:?}");
}

#[tokio::test]
async fn through_a_proxy_the_address_it_appended_is_the_client() {
    // The proxy on loopback appends the address it saw to whatever the client sent.
    let config = format!("{TIGHT}\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.2\"]");
    let server = TestServer::builder().config(&config).start();
    let (passed, took) = spoofing_run(&server, |n| format!("{}, 203.0.113.50", random_address(n))).await;
    let allowed = 3 + took.as_secs() as u32 + 1;
    assert!(passed <= allowed, "{passed} of 400 spoofed requests passed in {took:?}");

    // A trusted hop in the chain is skipped; the client left of it is limited.
    let response = server.get("/health").header("x-forwarded-for", "1.2.3.4, 203.0.113.50, 10.0.0.2").send().await;
    expect_error(response.unwrap(), 429, "RATE_LIMIT_EXCEEDED").await;
    // Another real client is not.
    let response = server.get("/health").header("x-forwarded-for", "203.0.113.50, 203.0.113.51").send().await;
    assert_eq!(response.unwrap().status(), 200);
}

#[tokio::test]
async fn the_audit_log_records_the_address_the_proxy_saw() {
    let server = TestServer::builder().config("[server]\ntrusted_proxies = [\"127.0.0.1\"]").start();
    let response = server
        .admin(Method::POST, "/api/admin/tenants")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
        .json(&json!({ "name": "spoofed", "tier": "free" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let direct = TestServer::start();
    let response = direct
        .admin(Method::POST, "/api/admin/tenants")
        .header("x-forwarded-for", "6.6.6.6")
        .json(&json!({ "name": "direct", "tier": "free" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    for (server, expected) in [(&server, "203.0.113.7"), (&direct, "127.0.0.1")] {
        let body: Value = server.admin_get("/api/admin/audit-log").await;
        assert_eq!(body["entries"][0]["admin_ip"], expected, "{body}");
    }
}

// Deploy output: what a command prints never kills or stalls its deploy, and is never lost whole.

/// `[[deploy.targets]]` named `name` running `commands` (TOML literal strings) in `workdir`.
fn deploy_target(name: &str, workdir: &std::path::Path, commands: &[&str]) -> String {
    let commands: Vec<String> = commands.iter().map(|c| format!("'{c}'")).collect();
    format!(
        "[[deploy.targets]]\nname = '{name}'\ncommands = [{}]\nworkdir = '{}'\ntimeout_secs = 30\n",
        commands.join(", "),
        workdir.display()
    )
}

/// Start a deploy of `target` and wait (within [`HANG`]) until it is no longer running.
async fn deploy_and_wait(server: &TestServer, target: &str) -> (Value, Duration) {
    let response =
        server.admin(Method::POST, "/api/admin/deploy").json(&json!({ "target": target })).send().await.unwrap();
    let started = Instant::now();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap_or_else(|| panic!("no deploy id: {body}")).to_string();
    loop {
        let record = server.admin_get(&format!("/api/admin/deploy/{id}")).await;
        if record["status"] != "running" {
            return (record, started.elapsed());
        }
        assert!(started.elapsed() < HANG, "deploy still running: {record}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deploy_output_that_is_not_utf8_is_kept_and_does_not_kill_the_command() {
    let workdir = tempfile::tempdir().unwrap();
    // Bytes 0xFF 0xFE and a Latin-1 "café", then enough output that a closed pipe would be hit.
    let command = r#"printf "before\n\377\376 caf\351\n"; i=0; while [ $i -lt 2000 ]; do echo "after $i"; i=$((i+1)); done; echo done"#;
    let config = deploy_target("latin", workdir.path(), &[command]);
    let server = TestServer::builder().config(&config).start();
    let (record, _) = deploy_and_wait(&server, "latin").await;
    assert_eq!(record["status"], "success", "{record}");
    assert_eq!(record["exit_code"], 0, "{record}");
    let output = record["output"].as_str().unwrap();
    assert!(output.contains("\u{FFFD}\u{FFFD} caf\u{FFFD}\n"), "{output}");
    assert!(output.ends_with("after 1999\ndone\n"), "{output}");
}

#[tokio::test]
async fn a_deploy_ends_when_its_command_exits_even_if_a_background_process_holds_the_pipe() {
    let workdir = tempfile::tempdir().unwrap();
    let command = "sleep 37.625 & echo $! > background.pid; echo launched";
    let config = deploy_target("daemon", workdir.path(), &[command]);
    let server = TestServer::builder().config(&config).start();
    let (record, took) = deploy_and_wait(&server, "daemon").await;
    let pid = std::fs::read_to_string(workdir.path().join("background.pid")).unwrap().trim().to_string();
    // The background process is the command's business: it is left running; the test ends it.
    let alive = std::process::Command::new("kill").args(["-0", &pid]).status().unwrap().success();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    assert_eq!(record["status"], "success", "{record}");
    assert!(record["output"].as_str().unwrap().ends_with("launched\n"), "{record}");
    assert!(took < Duration::from_secs(5), "the deploy waited {took:?} for its background process");
    assert!(alive, "the background process was left alone");
}

#[tokio::test]
async fn a_line_longer_than_the_output_cap_keeps_its_tail() {
    let workdir = tempfile::tempdir().unwrap();
    let command = r#"echo first; i=0; while [ $i -lt 300 ]; do printf "abcdefghij"; i=$((i+1)); done; echo TAIL"#;
    let config = format!("[deploy]\noutput_cap_bytes = 1024\n{}", deploy_target("wide", workdir.path(), &[command]));
    let server = TestServer::builder().config(&config).start();
    let (record, _) = deploy_and_wait(&server, "wide").await;
    assert_eq!(record["status"], "success", "{record}");
    let output = record["output"].as_str().unwrap();
    assert!(output.len() <= 1024, "{} bytes", output.len());
    assert!(output.starts_with("[... earlier output truncated ...]\n"), "{output}");
    assert!(output.ends_with("abcdefghijTAIL\n"), "the end of the long line is kept: {output}");
    assert!(output.len() > 900, "most of the cap is the long line's tail: {output}");
}

// Files are private: the real binary, after it has stored users, RAG data, a backup and a deploy.

/// Every path under `dir` (itself included) whose mode gives group or other any access, with
/// its mode; and every path seen.
fn loose_paths(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    use std::os::unix::fs::PermissionsExt as _;
    let (mut loose, mut seen) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o777;
        let name = path.strip_prefix(dir).unwrap().display().to_string();
        let expected = if metadata.is_dir() { 0o700 } else { 0o600 };
        if mode & 0o077 != 0 || mode & expected != expected {
            loose.push(format!("{name} {mode:o}"));
        }
        if metadata.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        seen.push(name);
    }
    (loose, seen)
}

#[tokio::test]
async fn everything_under_the_data_dir_is_private_and_loose_modes_are_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // A data dir an older version (or a careless copy) left readable by everyone.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("notes.txt"), "left behind").unwrap();
    std::fs::set_permissions(data.join("notes.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let workdir = root.path().join("site");
    std::fs::create_dir_all(&workdir).unwrap();
    let config = deploy_target("site", &workdir, &["umask > umask.txt; echo built > built.txt"]);

    let mut server = BinaryServer::builder(root.path()).generated_secrets().config(&config).start();
    let stderr = server.wait_for_stderr("permissions tightened");
    assert!(stderr.contains("notes.txt"), "{stderr}");

    let client = server.client().clone();
    let registered: Value = client
        .post(server.url("/api/auth/register"))
        .json(&json!({ "email": "files@example.com", "password": "correct-horse-battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"].as_str().unwrap();
    let response = client
        .post(server.url("/api/rag/ingest"))
        .bearer_auth(token)
        .json(&json!({ "collection": "notes", "content": "The aurora glows green over the fjords in winter." }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let admin = |method: Method, path: &str| {
        client.request(method, server.url(path)).header("x-admin-secret", server.admin_secret())
    };
    assert_eq!(admin(Method::POST, "/api/admin/backup").send().await.unwrap().status(), 201);
    let deploy: Value = admin(Method::POST, "/api/admin/deploy")
        .json(&json!({ "target": "site" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = deploy["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    while admin(Method::GET, &format!("/api/admin/deploy/{id}")).send().await.unwrap().json::<Value>().await.unwrap()["status"]
        == "running"
    {
        assert!(started.elapsed() < HANG, "deploy still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // While serving (server.json exists) and after a graceful stop (vector graphs dumped).
    let (loose, seen) = loose_paths(&data);
    assert!(loose.is_empty(), "not private while serving: {loose:?} (of {seen:?})");
    assert!(seen.iter().any(|p| p == "server.json"), "{seen:?}");
    assert!(server.terminate().success());
    let (loose, seen) = loose_paths(&data);
    assert!(loose.is_empty(), "not private after stopping: {loose:?} (of {seen:?})");
    for expected in ["ares.redb", "secrets/admin_secret", "backups", "search", "vectors"] {
        assert!(seen.iter().any(|p| p.starts_with(expected)), "no {expected} in {seen:?}");
    }
    assert!(seen.iter().filter(|p| p.starts_with("backups/")).count() >= 2, "a backup with files: {seen:?}");
    assert!(seen.iter().filter(|p| p.starts_with("vectors/")).count() >= 2, "a dumped graph: {seen:?}");

    // The deploy ran with the operator's umask, not the server's.
    let operator = std::process::Command::new("sh").args(["-c", "umask"]).output().unwrap();
    let operator = String::from_utf8(operator.stdout).unwrap();
    assert_eq!(std::fs::read_to_string(workdir.join("umask.txt")).unwrap().trim(), operator.trim());
    let mask = u32::from_str_radix(operator.trim(), 8).unwrap();
    let built = std::fs::metadata(workdir.join("built.txt")).unwrap().permissions().mode() & 0o777;
    assert_eq!(built, 0o666 & !mask);
}
