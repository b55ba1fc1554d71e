//! The HTTP contract every route shares (API.md §0–§1.1): health and meta routes, the error
//! envelope for 4xx/5xx, body parsing and limits, the `/api/v1` alias, request ids, h2c and
//! HTTP/1.1 keep-alive.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{TestServer, expect_error, header};

#[tokio::test]
async fn health_is_exactly_ok_in_plain_text() {
    let server = TestServer::start();
    let response = server.get("/health").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"OK");
}

#[tokio::test]
async fn health_detailed_reports_version_and_database() {
    let server = TestServer::start();
    let response = server.get("/health/detailed").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["checks"]["database"]["status"], "healthy");
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(timestamp.ends_with("+00:00"), "{timestamp}");
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339).unwrap();
}

#[tokio::test]
async fn config_info_lists_names_from_the_config() {
    let server = TestServer::builder()
        .config(
            r#"
            [[providers]]
            name = "local"
            type = "ollama"
            base_url = "http://127.0.0.1:9"
            [[providers.models]]
            id = "llama3.2"
            [[models]]
            name = "fast"
            provider = "local"
            model_id = "llama3.2"
            [[agents]]
            name = "helper"
            model = "fast"
            [tools.web_search]
            enabled = false
            "#,
        )
        .start();
    let body: Value = server.get("/config/info").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["server"]["host"], "127.0.0.1");
    assert_eq!(body["server"]["port"], server.addr().port(), "the bound port, not the configured one");
    assert_eq!(body["providers"], json!(["local"]));
    assert_eq!(body["models"], json!(["fast", "llama3.2"]));
    assert_eq!(body["agents"], json!(["helper"]));
    assert_eq!(body["tools"], json!(["calculator"]));
    assert_eq!(body["ui_enabled"], true, "the console is served at /");
    let text = body.to_string();
    assert!(!text.contains(crate::harness::ADMIN_SECRET) && !text.contains(crate::harness::JWT_SECRET));
}

/// One request and the error it must produce: status, code and, where given, `Allow`.
struct Case {
    method: Method,
    path: &'static str,
    admin: bool,
    body: Option<&'static str>,
    status: u16,
    code: &'static str,
    allow: Option<&'static str>,
}

fn case(method: Method, path: &'static str, status: u16, code: &'static str) -> Case {
    Case { method, path, admin: false, body: None, status, code, allow: None }
}

impl Case {
    fn admin(mut self) -> Self {
        self.admin = true;
        self
    }
    fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body);
        self
    }
    fn allow(mut self, allow: &'static str) -> Self {
        self.allow = Some(allow);
        self
    }
}

#[tokio::test]
async fn every_error_status_has_the_json_envelope() {
    let server = TestServer::start();
    let cases = [
        case(Method::GET, "/nope", 404, "NOT_FOUND"),
        // Paths are exact: no trailing-slash tolerance, no case folding.
        case(Method::GET, "/health/", 404, "NOT_FOUND"),
        case(Method::GET, "/HEALTH", 404, "NOT_FOUND"),
        case(Method::GET, "/api/v1", 404, "NOT_FOUND"),
        case(Method::DELETE, "/health", 405, "METHOD_NOT_ALLOWED").allow("GET"),
        case(Method::POST, "/config/info", 405, "METHOD_NOT_ALLOWED").allow("GET"),
        case(Method::PUT, "/api/admin/tenants", 405, "METHOD_NOT_ALLOWED").admin().allow("GET, POST"),
        // Auth runs before the method check and before the body is read.
        case(Method::PUT, "/api/admin/tenants", 401, "AUTH_MISSING"),
        case(Method::GET, "/api/chat", 401, "AUTH_MISSING"),
        case(Method::POST, "/api/chat", 401, "AUTH_MISSING").body("{not json"),
        case(Method::POST, "/api/admin/tenants", 401, "AUTH_MISSING").body("{not json"),
        case(Method::POST, "/api/admin/tenants", 400, "INVALID_INPUT").admin().body("{not json"),
        case(Method::POST, "/api/admin/tenants", 422, "UNPROCESSABLE").admin().body(r#"{"name":"a","tier":"gold"}"#),
        case(Method::POST, "/api/admin/backup", 401, "AUTH_MISSING"),
        case(Method::GET, "/api/memory", 401, "AUTH_MISSING"),
    ];
    for case in cases {
        let label = format!("{} {} (admin: {})", case.method, case.path, case.admin);
        let mut request = if case.admin {
            server.admin(case.method.clone(), case.path)
        } else {
            server.client().request(case.method.clone(), server.url(case.path))
        };
        if let Some(body) = case.body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(header(&response, "allow").as_deref(), case.allow, "Allow header of {label}");
        assert_eq!(response.status(), case.status, "{label}");
        expect_error(response, case.status, case.code).await;
    }
}

#[tokio::test]
async fn not_found_messages_name_the_request() {
    let server = TestServer::start();
    let body = expect_error(server.get("/nope").send().await.unwrap(), 404, "NOT_FOUND").await;
    assert_eq!(body, json!({ "error": "No route for GET /nope", "code": "NOT_FOUND" }));
}

#[tokio::test]
async fn body_parse_failures_are_the_documented_400s() {
    let server = TestServer::start();
    let check = |body: &'static str, message: &'static str| {
        let request = server.admin(Method::POST, "/api/admin/tenants").header("content-type", "application/json");
        async move {
            let response = request.body(body).send().await.unwrap();
            let error = expect_error(response, 400, "INVALID_INPUT").await;
            assert_eq!(error, json!({ "error": message, "code": "INVALID_INPUT" }), "body: {body}");
        }
    };
    check("{not json", "Invalid JSON in request body").await;
    check("", "Invalid JSON in request body").await;
    check(r#"{"name":"a","tier":"pro"} trailing"#, "Invalid JSON in request body").await;
    check(r#""acme""#, "Invalid JSON in request body").await;
    check(r#"{"name":"acme"}"#, "Missing required field: tier").await;
    check(r#"{"name":5,"tier":"pro"}"#, "Invalid value for field: name").await;
    check(r#"{"name":"acme","tier":null}"#, "Invalid value for field: tier").await;

    // Content-Type is not checked: a JSON body labelled as text still parses, unknown fields
    // are ignored.
    let response = server
        .admin(Method::POST, "/api/admin/tenants")
        .header("content-type", "text/plain")
        .body(r#"{"name":"plain-label","tier":"pro","extra":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// A tenant-creation body of exactly `len` bytes (JSON padded with trailing spaces).
fn padded_body(name: &str, len: usize) -> String {
    let body = format!(r#"{{"name":"{name}","tier":"pro"}}"#);
    assert!(body.len() <= len);
    format!("{body}{}", " ".repeat(len - body.len()))
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_or_without_content_length() {
    let server = TestServer::builder().config("[server]\nmax_body_bytes = 1024").start();
    let post = || server.admin(Method::POST, "/api/admin/tenants").header("content-type", "application/json");

    let response = post().body(padded_body("at-limit", 1024)).send().await.unwrap();
    assert_eq!(response.status(), 201, "a body of exactly max_body_bytes is accepted");

    let response = post().body(padded_body("over-limit", 1025)).send().await.unwrap();
    let body = expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(body, json!({ "error": "Request body too large", "code": "PAYLOAD_TOO_LARGE" }));

    // Chunked: no Content-Length, so the limit is enforced while reading.
    let text = padded_body("chunked", 4096);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text.as_bytes().chunks(512).map(|c| Ok(c.to_vec())).collect();
    let response = post().body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))).send().await.unwrap();
    let body = expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(body["error"], "Request body too large");

    // Neither oversized tenant was stored.
    let list: Value = server.admin(Method::GET, "/api/admin/tenants").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["at-limit"]);
}

#[tokio::test]
async fn api_v1_is_an_alias_of_v1() {
    let server = TestServer::start();
    let cases: [(Method, &str, Option<&str>, u16, &str); 4] = [
        (Method::GET, "/agents", None, 401, "AUTH_MISSING"),
        (Method::POST, "/chat", None, 401, "AUTH_MISSING"),
        (Method::DELETE, "/agents", None, 401, "AUTH_MISSING"),
        // An unknown key: both spellings give the same 401.
        (Method::GET, "/usage", Some("Bearer ares_0123456789abcdef"), 401, "AUTHENTICATION_FAILED"),
    ];
    for (method, path, authorization, status, code) in cases {
        let mut bodies = Vec::new();
        for prefix in ["/v1", "/api/v1"] {
            let mut request = server.client().request(method.clone(), server.url(&format!("{prefix}{path}")));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            bodies.push(expect_error(request.send().await.unwrap(), status, code).await);
        }
        assert_eq!(bodies[0], bodies[1], "{method} {path}: /v1 and /api/v1 differ");
    }
    // Without a key: the documented 401.
    let body = expect_error(server.get("/api/v1/agents").send().await.unwrap(), 401, "AUTH_MISSING").await;
    assert_eq!(body["error"], "Missing authorization header");
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let server = TestServer::start();
    let response = server.get("/health").header("x-request-id", "trace-abc-123").send().await.unwrap();
    assert_eq!(header(&response, "x-request-id").as_deref(), Some("trace-abc-123"));

    // Also on errors, where it matters most.
    let response = server.get("/nope").header("x-request-id", "trace-404").send().await.unwrap();
    assert_eq!(header(&response, "x-request-id").as_deref(), Some("trace-404"));

    // Absent or unusable (too long): a fresh UUID.
    let long = "x".repeat(200);
    for sent in [None, Some(long.as_str())] {
        let mut request = server.get("/health");
        if let Some(value) = sent {
            request = request.header("x-request-id", value);
        }
        let response = request.send().await.unwrap();
        let id = header(&response, "x-request-id").expect("a request id");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "not a UUID: {id}");
    }
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let mut server = TestServer::start();
    let client = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let response = client.get(format!("{}/health", server.base_url())).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "OK");

    let response = client
        .post(server.url("/api/admin/tenants"))
        .header("x-admin-secret", server.admin_secret())
        .json(&json!({ "name": "over-h2", "tier": "dev" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 201);
    server.shutdown_async().await;
}

/// Read one HTTP/1.1 response with a Content-Length body from `stream`.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a Content-Length header");
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed mid-response; got {text:?}");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn http1_keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::start();
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    for path in ["/health", "/health/detailed", "/health"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {response}");
        assert!(!response.to_ascii_lowercase().contains("connection: close"), "{response}");
    }

    // And through the pooled client.
    for _ in 0..2 {
        assert_eq!(server.get("/health").send().await.unwrap().status(), 200);
    }
}

/// `GET /openapi.json` needs no credentials and describes the routes as the table serves them.
#[tokio::test]
async fn the_openapi_document_is_served_and_lists_the_routes() {
    let server = TestServer::start();
    let response = server.client().get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(crate::harness::header(&response, "content-type").as_deref(), Some("application/json"));
    let document: serde_json::Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), ares::api::routes::PATTERNS.len());
    assert_eq!(
        document["paths"]["/v1/chat/completions"]["post"]["security"][0],
        serde_json::json!({ "tenantKey": [] })
    );
    assert!(document["paths"]["/api/admin/tenants/{tenant_id}/budget"]["put"].is_object(), "{document}");
}
