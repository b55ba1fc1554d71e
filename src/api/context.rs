//! What a handler gets besides the request: the app, the caller and request metadata.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::{Principal, TenantPrincipal, UserPrincipal};
use crate::error::ApiError;
use crate::http::{Request, body};
use crate::llm::coordinator::Turn;
use crate::llm::router::Served;

pub struct Context {
    pub app: Arc<App>,
    pub principal: Principal,
    pub client_ip: IpAddr,
    pub request_id: String,
    body_limit: usize,
    /// LLM tokens this request consumed, reported by handlers for metering.
    tokens: AtomicU64,
    /// Who answered the request's model call, for `X-Ares-Served-By` / `X-Ares-Attempts`.
    served: std::sync::Mutex<Option<Served>>,
}

impl Context {
    pub(super) fn new(
        app: Arc<App>,
        principal: Principal,
        client_ip: IpAddr,
        request_id: &str,
        body_limit: usize,
    ) -> Self {
        Context {
            app,
            principal,
            client_ip,
            request_id: request_id.to_string(),
            body_limit,
            tokens: AtomicU64::new(0),
            served: Default::default(),
        }
    }

    /// Read the body (within the route's limit) and parse it as JSON into `T`.
    pub async fn json<T: DeserializeOwned>(&self, request: Request) -> Result<T, ApiError> {
        let bytes = self.body(request).await?;
        body::parse_json(&bytes)
    }

    /// Read the raw body within the route's limit.
    pub async fn body(&self, request: Request) -> Result<bytes::Bytes, ApiError> {
        let (parts, incoming) = request.into_parts();
        body::read_limited(&parts.headers, incoming, self.body_limit).await
    }

    /// The user of a JWT route. Routes declare their auth, so anything else is a bug.
    pub fn user(&self) -> Result<&UserPrincipal, ApiError> {
        match &self.principal {
            Principal::User(user) => Ok(user),
            other => Err(ApiError::Internal(format!("expected a user principal, got {other:?}"))),
        }
    }

    /// Whose RAG collections and research a request works on: a user's own, or, for a tenant
    /// key (through MCP), the tenant's, in a namespace no user id can take.
    pub fn owner_id(&self) -> Result<String, ApiError> {
        match &self.principal {
            Principal::User(user) => Ok(user.user_id.clone()),
            Principal::Tenant(tenant) => Ok(format!("tenant:{}", tenant.tenant_id)),
            other => Err(ApiError::Internal(format!("expected a user or tenant principal, got {other:?}"))),
        }
    }

    /// The tenant of an API-key route.
    pub fn tenant(&self) -> Result<&TenantPrincipal, ApiError> {
        match &self.principal {
            Principal::Tenant(tenant) => Ok(tenant),
            other => Err(ApiError::Internal(format!("expected a tenant principal, got {other:?}"))),
        }
    }

    pub fn add_tokens(&self, tokens: u64) {
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }

    /// The counter behind [`Context::add_tokens`], for a chat that adds to it even when its
    /// handler is dropped (see `chat::complete`).
    pub fn token_counter(&self) -> &AtomicU64 {
        &self.tokens
    }

    pub fn tokens_used(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// Note who answered the request's model call (the last noted wins).
    pub fn note_served(&self, turn: Option<&Turn>) {
        if let Some(served) = turn.and_then(|t| t.served.clone())
            && let Ok(mut slot) = self.served.lock()
        {
            *slot = Some(served);
        }
    }

    pub fn served(&self) -> Option<Served> {
        self.served.lock().ok().and_then(|slot| slot.clone())
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
