//! What a handler gets besides the request: the app, the caller and request metadata.

use std::net::IpAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{Request, body};

pub struct Context {
    pub app: Arc<App>,
    pub principal: Principal,
    pub client_ip: IpAddr,
    pub request_id: String,
    body_limit: usize,
}

impl Context {
    pub(super) fn new(
        app: Arc<App>,
        principal: Principal,
        client_ip: IpAddr,
        request_id: &str,
        body_limit: usize,
    ) -> Self {
        Context { app, principal, client_ip, request_id: request_id.to_string(), body_limit }
    }

    /// Read the body (within the route's limit) and parse it as JSON into `T`.
    pub async fn json<T: DeserializeOwned>(&self, request: Request) -> Result<T, ApiError> {
        let (parts, incoming) = request.into_parts();
        let bytes = body::read_limited(&parts.headers, incoming, self.body_limit).await?;
        body::parse_json(&bytes)
    }
}

/// Parse a query string into `T` (unknown parameters ignored); 400 naming the bad parameter.
pub fn query<T: DeserializeOwned + Default>(request: &Request) -> Result<T, ApiError> {
    let Some(raw) = request.uri().query() else {
        return Ok(T::default());
    };
    let pairs: serde_json::Map<String, serde_json::Value> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            let value = decode(v);
            // Numbers and booleans arrive as text; let serde see them typed.
            let value = serde_json::from_str::<serde_json::Value>(&value)
                .ok()
                .filter(|parsed| parsed.is_number() || parsed.is_boolean())
                .unwrap_or(serde_json::Value::String(value));
            (decode(k), value)
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(pairs))
        .map_err(|e| ApiError::BadRequest(format!("Invalid query string: {e}")))
}
