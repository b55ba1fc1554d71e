//! `POST /api/auth/register|login|refresh|logout` (API.md §1.2, §3).

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::Context;
use crate::auth::api_keys::sha256_hex;
use crate::auth::jwt::TokenKind;
use crate::auth::passwords;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::users::{self, SessionRecord, UserRecord};

/// Longest accepted password, bounding the hashing cost of a request.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
struct RegisterRequest {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct RefreshTokenRequest {
    refresh_token: String,
}

/// An access token and a refresh token for `user`, plus the session row for the refresh token.
fn issue_tokens(ctx: &Context, user: &UserRecord, now: i64) -> Result<(String, String, SessionRecord), ApiError> {
    let auth = &ctx.app.config().auth;
    let keys = ctx.app.token_keys();
    let sign_error = |e: crate::auth::jwt::TokenError| ApiError::Internal(e.to_string());
    let access =
        keys.issue(TokenKind::Access, &user.id, &user.email, now, auth.jwt_access_expiry).map_err(sign_error)?;
    let refresh =
        keys.issue(TokenKind::Refresh, &user.id, &user.email, now, auth.jwt_refresh_expiry).map_err(sign_error)?;
    let session = SessionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        expires_at: now.saturating_add(i64::try_from(auth.jwt_refresh_expiry).unwrap_or(i64::MAX)),
        created_at: now,
    };
    Ok((access, refresh, session))
}

pub async fn register(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: RegisterRequest = ctx.json(request).await?;
    if body.email.trim().is_empty() || body.password.chars().count() < 8 {
        return Err(ApiError::BadRequest("Email required and password must be at least 8 characters".into()));
    }
    if body.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!("Password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    let email = body.email.clone();
    if ctx.app.store().read(move |txn| users::by_email(txn, &email)).await?.is_some() {
        return Err(ApiError::Conflict("User already exists".into()));
    }
    let password_hash = passwords::hash(body.password).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = clock::now_unix();
    let user = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        email: body.email,
        password_hash,
        name: body.name.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let (access, refresh, session) = issue_tokens(ctx, &user, now)?;
    let (stored, refresh_hash) = (user.clone(), sha256_hex(&refresh));
    ctx.app
        .store()
        .write(move |txn| {
            users::insert(txn, &stored)?;
            users::insert_session(txn, &refresh_hash, &session)
        })
        .await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "message": "Registration successful",
            "user_id": user.id,
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": ctx.app.config().auth.jwt_access_expiry,
        }),
    ))
}

pub async fn login(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: LoginRequest = ctx.json(request).await?;
    let invalid = || ApiError::AuthenticationFailed("Invalid credentials".into());
    let email = body.email.clone();
    let user = ctx.app.store().read(move |txn| users::by_email(txn, &email)).await?;
    // An unknown email still costs one verification, so timing does not reveal which part
    // of the credentials was wrong.
    let stored_hash = user.as_ref().map_or_else(|| passwords::decoy_hash().to_string(), |u| u.password_hash.clone());
    let verified = passwords::verify(body.password, stored_hash).await;
    let user = match user {
        Some(user) if verified => user,
        _ => return Err(invalid()),
    };
    let now = clock::now_unix();
    let (access, refresh, session) = issue_tokens(ctx, &user, now)?;
    let refresh_hash = sha256_hex(&refresh);
    ctx.app.store().write(move |txn| users::insert_session(txn, &refresh_hash, &session)).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": ctx.app.config().auth.jwt_access_expiry,
            "user_id": user.id,
        }),
    ))
}

/// A new access token for a live refresh token. The presented refresh token stays valid and is
/// returned unchanged (API.md A4), so clients that keep their first token keep working.
pub async fn refresh(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: RefreshTokenRequest = ctx.json(request).await?;
    let claims = ctx.app.token_keys().verify(&body.refresh_token).map_err(|_| ApiError::InvalidToken)?;
    if claims.typ.as_deref() == Some("access") {
        return Err(ApiError::InvalidToken);
    }
    let token_hash = sha256_hex(&body.refresh_token);
    let session = ctx.app.store().read(move |txn| users::session(txn, &token_hash)).await?;
    match session {
        Some(session) if session.user_id == claims.sub => {}
        _ => return Err(ApiError::InvalidToken),
    }
    let config = &ctx.app.config().auth;
    let access = ctx
        .app
        .token_keys()
        .issue(TokenKind::Access, &claims.sub, &claims.email, clock::now_unix(), config.jwt_access_expiry)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "access_token": access, "refresh_token": body.refresh_token, "expires_in": config.jwt_access_expiry }),
    ))
}

/// Ends the session of a refresh token. Always 200, also for unknown tokens.
pub async fn logout(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: RefreshTokenRequest = ctx.json(request).await?;
    let token_hash = sha256_hex(&body.refresh_token);
    ctx.app.store().write(move |txn| users::delete_session(txn, &token_hash)).await?;
    Ok(response::json(StatusCode::OK, &json!({ "message": "Logged out successfully" })))
}
