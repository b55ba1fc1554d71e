//! Who is calling: the single place where a route's auth requirement becomes a [`Principal`]
//! (API.md §0.7, §3). Handlers never read auth headers themselves.

pub mod admin;
pub mod secrets;

use http::HeaderMap;

use crate::api::routes::AuthRequirement;
use crate::app::App;
use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A route that needs no credentials.
    Anonymous,
    /// The operator, proven by `X-Admin-Secret`.
    Admin,
}

/// Resolve `requirement` against the request headers. Runs before the body is read, so an
/// unauthenticated request with a malformed body gets 401, not 400 (API.md §0.7).
pub fn authenticate(app: &App, requirement: AuthRequirement, headers: &HeaderMap) -> Result<Principal, ApiError> {
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
        AuthRequirement::Jwt => {
            bearer(headers)?;
            Err(ApiError::NotImplemented(
                "User accounts and JWT authentication are not available in this build yet".into(),
            ))
        }
        AuthRequirement::ApiKey => {
            bearer(headers)?;
            Err(ApiError::NotImplemented("Tenant API-key authentication is not available in this build yet".into()))
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, API.md §3.2).
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or(ApiError::MissingAuthorization)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::InvalidToken);
    }
    Ok(token.trim())
}
