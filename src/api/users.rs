//! `POST /api/auth/register|login|refresh|logout` (API.md §1.2, §3) and the admin's
//! `POST /api/admin/users` for servers whose sign-up is closed.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::api::Context;
use crate::auth::api_keys::sha256_hex;
use crate::auth::jwt::TokenKind;
use crate::clock;
use crate::config::Registration;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::users::{self, SessionRecord, UserRecord};

/// Longest accepted password, bounding the hashing cost of a request.
const MAX_PASSWORD_BYTES: usize = 1024;

/// Longest accepted email (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

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
    let session_id = uuid::Uuid::new_v4().to_string();
    let access = keys
        .issue(TokenKind::Access, &user.id, &user.email, &session_id, now, auth.jwt_access_expiry)
        .map_err(sign_error)?;
    let refresh = keys
        .issue(TokenKind::Refresh, &user.id, &user.email, &session_id, now, auth.jwt_refresh_expiry)
        .map_err(sign_error)?;
    let session = SessionRecord {
        id: session_id,
        user_id: user.id.clone(),
        expires_at: now.saturating_add(i64::try_from(auth.jwt_refresh_expiry).unwrap_or(i64::MAX)),
        created_at: now,
    };
    Ok((access, refresh, session))
}

/// The 400 for an empty email or a short password, the 400 for an overlong password and the 422
/// for something that is not an email address (register and admin create alike).
fn validate_credentials(email: &str, password: &str) -> Result<(), ApiError> {
    if email.trim().is_empty() || password.chars().count() < 8 {
        return Err(ApiError::BadRequest("Email required and password must be at least 8 characters".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!("Password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    if !is_email(email) {
        return Err(ApiError::Unprocessable("Invalid email address".into()));
    }
    Ok(())
}

/// `local@domain.tld`: one `@`, a non-empty local part, a dotted domain of non-empty labels
/// (letters, digits, `-`), no spaces or control characters. Stored verbatim (API.md §3.4).
fn is_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else { return false };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// A new user from a register body: validated, the email free, the password hashed. Not
/// stored yet: the caller writes it with what belongs in the same transaction.
async fn new_user(ctx: &Context, body: RegisterRequest, now: i64) -> Result<UserRecord, ApiError> {
    validate_credentials(&body.email, &body.password)?;
    let email = body.email.clone();
    if ctx.app.store().read(move |txn| users::by_email(txn, &email)).await?.is_some() {
        return Err(ApiError::Conflict("User already exists".into()));
    }
    let password_hash = ctx.app.hasher().hash(body.password).await?;
    Ok(UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        email: body.email,
        password_hash,
        name: body.name.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    })
}

pub async fn register(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    if ctx.app.config().registration() == Registration::Closed {
        return Err(ApiError::Forbidden("Registration is closed; ask the administrator for an account".into()));
    }
    let body: RegisterRequest = ctx.json(request).await?;
    let now = clock::now_unix();
    let user = new_user(ctx, body, now).await?;
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

/// `POST /api/admin/users`: the register body, 201 with the user (no tokens: the user logs in).
pub async fn admin_create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: RegisterRequest = ctx.json(request).await?;
    let user = new_user(ctx, body, clock::now_unix()).await?;
    let details = json!({ "email": user.email, "name": user.name });
    let entry = super::admin::audit::entry(ctx, "create_user", "user", &user.id, details);
    let stored = user.clone();
    ctx.app
        .store()
        .write(move |txn| {
            users::insert(txn, &stored)?;
            crate::store::audit::append(txn, &entry)
        })
        .await?;
    Ok(response::json(
        StatusCode::CREATED,
        &json!({
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "created_at": clock::rfc3339(user.created_at),
            "updated_at": clock::rfc3339(user.updated_at),
        }),
    ))
}

pub async fn login(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: LoginRequest = ctx.json(request).await?;
    let invalid = || ApiError::AuthenticationFailed("Invalid credentials".into());
    let email = body.email.clone();
    let user = ctx.app.store().read(move |txn| users::by_email(txn, &email)).await?;
    // An unknown email still costs one verification (against a decoy), so timing does not
    // reveal which part of the credentials was wrong.
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = ctx.app.hasher().verify(body.password, stored_hash).await?;
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
    let session = match session {
        Some(session) if session.user_id == claims.sub => session,
        _ => return Err(ApiError::InvalidToken),
    };
    let config = &ctx.app.config().auth;
    let access = ctx
        .app
        .token_keys()
        .issue(TokenKind::Access, &claims.sub, &claims.email, &session.id, clock::now_unix(), config.jwt_access_expiry)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "access_token": access, "refresh_token": body.refresh_token, "expires_in": config.jwt_access_expiry }),
    ))
}

/// Ends the session of a refresh token, and with it the access tokens issued for it. Always 200,
/// also for unknown tokens.
pub async fn logout(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: RefreshTokenRequest = ctx.json(request).await?;
    let token_hash = sha256_hex(&body.refresh_token);
    let removed = ctx.app.store().write(move |txn| users::delete_session(txn, &token_hash)).await?;
    if let Some(session) = removed {
        ctx.app.sessions().revoke(&session.id);
    }
    Ok(response::json(StatusCode::OK, &json!({ "message": "Logged out successfully" })))
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for good in ["a@example.com", "o'brien+tag@mail.example.co.uk", "x@xn--bcher-kva.example", "ü@bücher.de"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "not-an-email",
            "a@b",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            "a@-example.com",
            "a@exa_mple.com",
            " a@example.com",
            "a@example.com\n",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        assert!(!is_email(&format!("{}@example.com", "a".repeat(65))));
    }
}
