//! Who is calling: the single place where a route's auth requirement becomes a [`Principal`]
//! (API.md §0.7, §3). Handlers never read auth headers themselves.

pub mod admin;
pub mod api_keys;
pub mod failures;
pub mod jwt;
pub mod key_cache;
pub mod passwords;
pub mod secrets;
pub mod sessions;

use http::HeaderMap;

use crate::app::App;
use crate::error::ApiError;
use crate::metering::TenantTier;
use crate::store::Watched;
use crate::store::api_keys as key_store;

/// What a route demands of the caller before its handler runs (`api::routes::Route::auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequirement {
    None,
    /// `Authorization: Bearer <access JWT>`: a user.
    Jwt,
    /// `Authorization: Bearer ares_…` (or `x-api-key: ares_…`, as Anthropic clients send it): a
    /// tenant.
    ApiKey,
    /// `X-Admin-Secret`: the operator.
    Admin,
    /// A metrics scraper: the admin secret as `X-Admin-Secret` or as a bearer token (what
    /// Prometheus' `bearer_token` sends), or nobody with `[metrics] public = true`.
    Scraper,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A route that needs no credentials.
    Anonymous,
    /// The operator, proven by `X-Admin-Secret`.
    Admin,
    /// A user, proven by an access JWT.
    User(UserPrincipal),
    /// A tenant, proven by one of its API keys.
    Tenant(TenantPrincipal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPrincipal {
    pub user_id: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPrincipal {
    pub tenant_id: String,
    pub tenant_name: String,
    /// Read from the tenant row on every request, so a tier change applies to the next one.
    pub tier: TenantTier,
    pub key_id: String,
    /// The key's public prefix, which the request log names it by.
    pub key_prefix: String,
}

/// Resolve `requirement` against the request headers. Runs before the body is read, so an
/// unauthenticated request with a malformed body gets 401, not 400 (API.md §0.7).
pub async fn authenticate(app: &App, requirement: AuthRequirement, headers: &HeaderMap) -> Result<Principal, ApiError> {
    match requirement {
        AuthRequirement::None => Ok(Principal::Anonymous),
        AuthRequirement::Admin => {
            let presented = headers.get("x-admin-secret").ok_or(ApiError::MissingAdminSecret)?;
            if app.admin_secret().verify(presented.as_bytes()) {
                Ok(Principal::Admin)
            } else {
                Err(ApiError::InvalidAdminSecret)
            }
        }
        AuthRequirement::Scraper => {
            if app.config().metrics.public {
                return Ok(Principal::Anonymous);
            }
            let presented = match (headers.get("x-admin-secret"), bearer(headers)) {
                (Some(secret), _) => secret.as_bytes(),
                (None, Ok(token)) => token.as_bytes(),
                (None, Err(_)) => return Err(ApiError::MissingAdminSecret),
            };
            if app.admin_secret().verify(presented) { Ok(Principal::Admin) } else { Err(ApiError::InvalidAdminSecret) }
        }
        AuthRequirement::Jwt => {
            let token = bearer(headers).map_err(|e| match e {
                BearerError::Missing => ApiError::MissingAuthorization,
                BearerError::Malformed => ApiError::InvalidToken,
            })?;
            let claims = app.token_keys().verify_access(token).map_err(|_| ApiError::InvalidToken)?;
            // Tokens without `sid` predate sessions in tokens (or come from the reference with
            // the same secret): accepted until their `exp`, as API.md §3.2 requires.
            if let Some(session_id) = &claims.sid
                && !session_is_live(app, session_id, &claims.sub)?
            {
                return Err(ApiError::InvalidToken);
            }
            Ok(Principal::User(UserPrincipal { user_id: claims.sub, email: claims.email }))
        }
        AuthRequirement::ApiKey => {
            // Anthropic's SDKs (and Claude Code) send the key as `x-api-key`.
            if headers.get(http::header::AUTHORIZATION).is_none()
                && let Some(key) = headers.get("x-api-key")
            {
                let key = key.to_str().map_err(|_| ApiError::AuthenticationFailed("Invalid API key".into()))?;
                return authenticate_key(app, key.trim()).await.map(Principal::Tenant);
            }
            let token = bearer(headers).map_err(|e| match e {
                BearerError::Missing => ApiError::MissingAuthorization,
                BearerError::Malformed => {
                    ApiError::AuthenticationFailed("Invalid Authorization format. Expected: Bearer ares_...".into())
                }
            })?;
            authenticate_key(app, token).await.map(Principal::Tenant)
        }
    }
}

/// Whether the session an access token names is still logged in, and is `user_id`'s: from the
/// in-memory cache, else one point read (then cached).
fn session_is_live(app: &App, session_id: &str, user_id: &str) -> Result<bool, ApiError> {
    let owner = match app.sessions().lookup(session_id) {
        Some(owner) => owner,
        None => {
            let stored = app.store().read_now(|txn| crate::store::users::session_by_id(txn, session_id))?;
            let owner = stored.map(|session| session.user_id);
            app.sessions().note_store_answer(session_id, owner.clone());
            owner
        }
    };
    Ok(owner.as_deref() == Some(user_id))
}

/// API.md §3.5: prefix lookup, active and unexpired, hash match under either convention.
async fn authenticate_key(app: &App, token: &str) -> Result<TenantPrincipal, ApiError> {
    let invalid = || ApiError::AuthenticationFailed("Invalid API key".into());
    let presented = api_keys::parse(token).ok_or_else(invalid)?;
    // Noted before the read: a change committed after it moves the generation, so what the
    // read found is cached under a generation that is already stale.
    let generation = app.store().generation(Watched::Credentials);
    let found = match app.key_cache().get(presented.prefix.as_str(), generation) {
        Some(found) => found,
        None => {
            let found = app.store().read_now(|txn| key_store::by_prefix(txn, &presented.prefix))?;
            let found = std::sync::Arc::new(found.ok_or_else(invalid)?);
            app.key_cache().put(presented.prefix.clone(), generation, found.clone());
            found
        }
    };
    let (key, tenant) = &*found;
    let now = crate::clock::now_unix();
    if !key.is_usable(now) || !api_keys::matches(&key.key_hash, &presented) {
        return Err(invalid());
    }
    app.note_key_use(&key.id, now);
    Ok(TenantPrincipal {
        tenant_id: tenant.id.clone(),
        tenant_name: tenant.name.clone(),
        tier: TenantTier::from_stored(&tenant.tier),
        key_id: key.id.clone(),
        key_prefix: key.key_prefix.clone(),
    })
}

pub enum BearerError {
    Missing,
    Malformed,
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, API.md §3.2).
pub fn bearer(headers: &HeaderMap) -> Result<&str, BearerError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or(BearerError::Missing)?;
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(BearerError::Malformed);
    }
    Ok(token.trim())
}
