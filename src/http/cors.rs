//! CORS (API.md §0.5): a configured origin list with credentials, or any origin without.
//! Exposes the rate-limit, quota and served-by headers so browsers can read them.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::Response;
use super::response;

const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS, PATCH";
const ALLOW_HEADERS: &str = "authorization, content-type, accept, origin, x-admin-secret, x-request-id";
const EXPOSE_HEADERS: &str = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, \
    X-Quota-Tokens-Remaining, Retry-After, X-Context-Id, X-Input-Tokens, X-Output-Tokens, X-Request-Id, \
    X-Ares-Served-By, X-Ares-Attempts, X-Ares-Cost-Usd, X-Budget-Remaining-Usd";

#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// `None`: any origin, no credentials.
    origins: Option<Vec<String>>,
}

impl CorsPolicy {
    pub fn new(configured: &[String]) -> Self {
        let any = configured.is_empty() || (configured.len() == 1 && configured[0] == "*");
        CorsPolicy { origins: if any { None } else { Some(configured.to_vec()) } }
    }

    /// A browser preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    pub fn preflight(&self, request_headers: &HeaderMap) -> Response {
        let mut response = http::Response::new(response::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        if self.decorate(request_headers, headers) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("3600"));
        }
        response
    }

    /// Add the CORS response headers for the request's `Origin`, if it is allowed. Returns
    /// whether it was.
    pub fn decorate(&self, request_headers: &HeaderMap, response_headers: &mut HeaderMap) -> bool {
        let Some(origin) = request_headers.get(header::ORIGIN) else {
            return false;
        };
        response_headers.append(header::VARY, HeaderValue::from_static("Origin"));
        match &self.origins {
            None => {
                response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            }
            Some(list) => {
                let allowed = origin.to_str().is_ok_and(|o| list.iter().any(|l| l == o));
                if !allowed {
                    return false;
                }
                response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                response_headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            }
        }
        response_headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        true
    }
}
