//! CORS (API.md §0.5): any origin without credentials by default, or a configured list of
//! origins with credentials; preflights answered before routing and auth.

use reqwest::Method;

use crate::harness::{TestServer, header};

const ORIGIN: &str = "https://admin.example.com";

async fn preflight(server: &TestServer, path: &str, origin: &str) -> reqwest::Response {
    server
        .client()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-admin-secret")
        .send()
        .await
        .unwrap()
}

fn list(response: &reqwest::Response, name: &str) -> Vec<String> {
    header(response, name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn preflight_is_204_with_methods_and_headers_before_auth() {
    let server = TestServer::start();
    // An admin route without the secret: preflights carry no credentials and must still pass.
    let response = preflight(&server, "/api/admin/tenants", ORIGIN).await;
    assert_eq!(response.status(), 204);
    assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(header(&response, "access-control-allow-credentials"), None);
    let methods = list(&response, "access-control-allow-methods");
    for method in ["get", "post", "put", "delete", "options", "patch"] {
        assert!(methods.iter().any(|m| m == method), "{method} missing from {methods:?}");
    }
    let headers = list(&response, "access-control-allow-headers");
    for name in ["authorization", "content-type", "accept", "origin", "x-admin-secret", "x-request-id"] {
        assert!(headers.iter().any(|h| h == name), "{name} missing from {headers:?}");
    }
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn default_allows_any_origin_without_credentials_and_exposes_limit_headers() {
    for config in ["", "[server]\ncors_origins = [\"*\"]"] {
        let server = TestServer::builder().config(config).start();
        let response = server.get("/health").header("origin", "https://anything.example").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some("*"), "config {config:?}");
        assert_eq!(header(&response, "access-control-allow-credentials"), None);
        let exposed = list(&response, "access-control-expose-headers");
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "retry-after",
            "x-request-id",
            "x-ares-served-by",
            "x-ares-attempts",
        ] {
            assert!(exposed.iter().any(|h| h == name), "{name} not exposed: {exposed:?}");
        }
    }
}

#[tokio::test]
async fn configured_origins_are_echoed_with_credentials_and_others_get_nothing() {
    let server = TestServer::builder()
        .config(&format!("[server]\ncors_origins = [\"{ORIGIN}\", \"https://eruka.example.com\"]"))
        .start();

    let response = preflight(&server, "/api/admin/tenants", ORIGIN).await;
    assert_eq!(response.status(), 204);
    assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    assert_eq!(header(&response, "access-control-allow-credentials").as_deref(), Some("true"));
    assert!(list(&response, "vary").iter().any(|v| v == "origin"), "Vary: Origin is needed when echoing");

    let response = server.get("/health").header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    assert_eq!(header(&response, "access-control-allow-credentials").as_deref(), Some("true"));
    assert!(list(&response, "access-control-expose-headers").iter().any(|h| h == "retry-after"));

    // Error responses carry the headers too, or the browser hides the error from the page.
    let response = server.get("/api/admin/tenants").header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some(ORIGIN));

    for origin in ["https://evil.example.com", "https://admin.example.com.evil.example", "null"] {
        let response = preflight(&server, "/api/admin/tenants", origin).await;
        assert_eq!(header(&response, "access-control-allow-origin"), None, "preflight from {origin}");
        assert_eq!(header(&response, "access-control-allow-methods"), None, "preflight from {origin}");
        let response = server.get("/health").header("origin", origin).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "access-control-allow-origin"), None, "GET from {origin}");
        assert_eq!(header(&response, "access-control-allow-credentials"), None, "GET from {origin}");
    }
}

#[tokio::test]
async fn requests_without_origin_get_no_cors_headers() {
    let server = TestServer::start();
    let response = server.get("/health").send().await.unwrap();
    for name in ["access-control-allow-origin", "access-control-expose-headers", "access-control-allow-credentials"] {
        assert_eq!(header(&response, name), None, "{name}");
    }
    // OPTIONS without the preflight headers is an ordinary request: no route has OPTIONS.
    let response = server.client().request(Method::OPTIONS, server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}
