//! Users and their tokens (API.md §1.2, §3.1–§3.4): register, login, refresh, logout, the JWT
//! claims, and the access-token check on JWT routes.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::harness::{JWT_SECRET, TestServer, expect_error, expect_json};

/// What a JWT route (`GET /api/conversations`) answers once authentication passed.
const PAST_AUTH: u16 = 200;

const PASSWORD: &str = "correct horse battery";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn post(server: &TestServer, path: &str, body: Value) -> reqwest::Response {
    server.client().post(server.url(path)).json(&body).send().await.unwrap()
}

async fn login(server: &TestServer, email: &str, password: &str) -> reqwest::Response {
    post(server, "/api/auth/login", json!({ "email": email, "password": password })).await
}

async fn refresh(server: &TestServer, token: &str) -> reqwest::Response {
    post(server, "/api/auth/refresh", json!({ "refresh_token": token })).await
}

/// `GET /api/conversations` (a JWT route) with `authorization` as given (no header when `None`).
async fn jwt_route(server: &TestServer, authorization: Option<&str>) -> reqwest::Response {
    let mut request = server.client().get(server.url("/api/conversations"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

async fn assert_past_auth(server: &TestServer, authorization: &str) {
    let response = jwt_route(server, Some(authorization)).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, PAST_AUTH, "{authorization:?} did not pass the access-token check: {body}");
}

async fn assert_invalid_token(server: &TestServer, authorization: &str) {
    let body = expect_error(jwt_route(server, Some(authorization)).await, 401, "AUTH_INVALID_TOKEN").await;
    assert_eq!(body, json!({ "error": "Invalid or expired token", "code": "AUTH_INVALID_TOKEN" }), "{authorization:?}");
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url, as JWT segments use it.
fn base64url_decode(text: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let value = BASE64URL.iter().position(|&a| a == c).unwrap_or_else(|| panic!("not base64url: {text:?}"));
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn base64url_encode(bytes: &[u8]) -> String {
    let (mut out, mut acc, mut bits) = (String::new(), 0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(BASE64URL[((acc >> bits) & 63) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE64URL[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// The header and claims of a JWT, decoded without verifying anything.
pub(crate) fn decode_jwt(token: &str) -> (Map<String, Value>, Map<String, Value>) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "a JWT has three segments: {token}");
    let part = |s: &str| -> Map<String, Value> { serde_json::from_slice(&base64url_decode(s)).unwrap() };
    (part(segments[0]), part(segments[1]))
}

/// An HS256 token over `claims`, signed with `secret`.
fn sign(claims: &Value, secret: &str, algorithm: jsonwebtoken::Algorithm) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), claims, &key).unwrap()
}

fn keys(map: &Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn register_answers_the_superset_body_and_login_issues_tokens() {
    let server = TestServer::start();
    let body = server.register("alice@example.com", PASSWORD).await;
    let mut fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["access_token", "expires_in", "message", "refresh_token", "user_id"]);
    assert_eq!(body["message"], "Registration successful");
    assert_eq!(body["expires_in"], 900);
    let user_id = body["user_id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(user_id).unwrap().hyphenated().to_string(), user_id);
    assert_ne!(body["access_token"], body["refresh_token"]);
    assert_past_auth(&server, &format!("Bearer {}", body["access_token"].as_str().unwrap())).await;

    let login = expect_json(login(&server, "alice@example.com", PASSWORD).await, 200).await;
    assert_eq!(login["user_id"], user_id);
    assert_eq!(login["expires_in"], 900);
    assert_past_auth(&server, &format!("Bearer {}", login["access_token"].as_str().unwrap())).await;
    // A fresh session per login: the refresh token differs from the registration's, also when
    // both are issued within the same second (the random `jti`).
    assert_ne!(login["refresh_token"], body["refresh_token"]);
    expect_json(refresh(&server, login["refresh_token"].as_str().unwrap()).await, 200).await;
}

#[tokio::test]
async fn register_validates_email_and_password_length_and_refuses_duplicates() {
    let server = TestServer::start();
    let short =
        json!({ "error": "Email required and password must be at least 8 characters", "code": "INVALID_INPUT" });
    // "ééééééé" is 7 characters in 14 bytes: the rule counts characters.
    for (email, password) in [("", "long enough"), ("bob@example.com", "1234567"), ("bob@example.com", "ééééééé")]
    {
        let response = post(&server, "/api/auth/register", json!({ "email": email, "password": password })).await;
        assert_eq!(expect_error(response, 400, "INVALID_INPUT").await, short, "{email:?} / {password:?}");
    }
    for (body, field) in
        [(json!({ "password": PASSWORD }), "email"), (json!({ "email": "bob@example.com" }), "password")]
    {
        let response = post(&server, "/api/auth/register", body).await;
        let error = expect_error(response, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], format!("Missing required field: {field}"));
    }
    // Eight characters, multibyte: accepted (so the refusals created nothing), and the password
    // works for login.
    let multibyte = "пароль12";
    assert_eq!(multibyte.chars().count(), 8);
    let created = server.register("bob@example.com", multibyte).await;
    let login_body = expect_json(login(&server, "bob@example.com", multibyte).await, 200).await;
    assert_eq!(login_body["user_id"], created["user_id"]);

    let response =
        post(&server, "/api/auth/register", json!({ "email": "bob@example.com", "password": PASSWORD })).await;
    let body = expect_error(response, 409, "CONFLICT").await;
    assert_eq!(body, json!({ "error": "User already exists", "code": "CONFLICT" }));
    // The refused duplicate did not replace the password.
    expect_json(login(&server, "bob@example.com", multibyte).await, 200).await;
    // Emails are matched verbatim (API.md §3.4): another case is another user.
    let other = server.register("Bob@example.com", PASSWORD).await;
    assert_ne!(other["user_id"], created["user_id"]);
}

#[tokio::test]
async fn login_refuses_a_wrong_password_and_an_unknown_email_alike() {
    let server = TestServer::start();
    server.register("carol@example.com", PASSWORD).await;
    let expected = json!({ "error": "Invalid credentials", "code": "AUTHENTICATION_FAILED" });
    for (email, password) in [("carol@example.com", "wrong password"), ("nobody@example.com", PASSWORD)] {
        let body = expect_error(login(&server, email, password).await, 401, "AUTHENTICATION_FAILED").await;
        assert_eq!(body, expected, "{email} / {password:?}");
    }
    let response = post(&server, "/api/auth/login", json!({ "email": "carol@example.com" })).await;
    let body = expect_error(response, 400, "INVALID_INPUT").await;
    assert_eq!(body["error"], "Missing required field: password");
}

#[tokio::test]
async fn tokens_are_hs256_with_the_reference_claims() {
    let server = TestServer::start();
    let before = now();
    let body = server.register("dave@example.com", PASSWORD).await;
    let after = now();

    let (header, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    // The reference's four claims, plus `typ` and the session id `sid` (so logout ends it).
    assert_eq!(keys(&claims), ["email", "exp", "iat", "sid", "sub", "typ"], "{claims:?}");
    assert_eq!(claims["sub"], body["user_id"]);
    assert_eq!(claims["email"], "dave@example.com");
    assert_eq!(claims["typ"], "access");
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=after).contains(&iat), "iat {iat} not within [{before}, {after}]");
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);

    // The refresh token: same claims plus a random `jti`, valid for the refresh lifetime.
    let (header, claims) = decode_jwt(body["refresh_token"].as_str().unwrap());
    assert_eq!(header["alg"], "HS256");
    assert_eq!(keys(&claims), ["email", "exp", "iat", "jti", "sub", "typ"], "{claims:?}");
    assert_eq!(claims["typ"], "refresh");
    assert_eq!(claims["sub"], body["user_id"]);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 604_800);
}

#[tokio::test]
async fn refresh_returns_a_new_access_token_and_keeps_the_refresh_token() {
    let server = TestServer::start();
    let registered = server.register("erin@example.com", PASSWORD).await;
    let refresh_token = registered["refresh_token"].as_str().unwrap();

    for round in 0..2 {
        let body = expect_json(refresh(&server, refresh_token).await, 200).await;
        assert_eq!(keys(body.as_object().unwrap()), ["access_token", "expires_in", "refresh_token"]);
        assert_eq!(body["refresh_token"], refresh_token, "round {round}: no rotation");
        assert_eq!(body["expires_in"], 900);
        let access = body["access_token"].as_str().unwrap();
        let (_, claims) = decode_jwt(access);
        assert_eq!(claims["sub"], registered["user_id"]);
        assert_eq!(claims["typ"], "access");
        assert_past_auth(&server, &format!("Bearer {access}")).await;
    }

    // An access token is not a refresh token, and garbage is not a token.
    let invalid = json!({ "error": "Invalid or expired token", "code": "AUTH_INVALID_TOKEN" });
    for token in [registered["access_token"].as_str().unwrap(), "garbage", ""] {
        assert_eq!(expect_error(refresh(&server, token).await, 401, "AUTH_INVALID_TOKEN").await, invalid, "{token}");
    }
    // A well-signed refresh token without a session (never issued by this server) is refused.
    let forged = json!({
        "sub": registered["user_id"], "email": "erin@example.com", "iat": now(), "exp": now() + 3600,
        "typ": "refresh", "jti": "not-a-session",
    });
    let token = sign(&forged, JWT_SECRET, jsonwebtoken::Algorithm::HS256);
    assert_eq!(expect_error(refresh(&server, &token).await, 401, "AUTH_INVALID_TOKEN").await, invalid);

    // A missing field is the documented 400 with a JSON body ([H] 11_auth_negative).
    let response = post(&server, "/api/auth/refresh", json!({})).await;
    let body = expect_error(response, 400, "INVALID_INPUT").await;
    assert_eq!(body, json!({ "error": "Missing required field: refresh_token", "code": "INVALID_INPUT" }));
}

#[tokio::test]
async fn logout_ends_the_session_and_is_always_200() {
    let server = TestServer::start();
    let registered = server.register("frank@example.com", PASSWORD).await;
    let other_session = expect_json(login(&server, "frank@example.com", PASSWORD).await, 200).await;
    let token = registered["refresh_token"].as_str().unwrap();
    expect_json(refresh(&server, token).await, 200).await;

    let logged_out = json!({ "message": "Logged out successfully" });
    for (round, body) in [json!({ "refresh_token": token }), json!({ "refresh_token": token })].into_iter().enumerate()
    {
        let response = post(&server, "/api/auth/logout", body).await;
        assert_eq!(expect_json(response, 200).await, logged_out, "logout {round}");
    }
    expect_error(refresh(&server, token).await, 401, "AUTH_INVALID_TOKEN").await;
    // Unknown and garbage tokens: still 200; no header needed.
    for garbage in ["garbage", "", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let response = post(&server, "/api/auth/logout", json!({ "refresh_token": garbage })).await;
        assert_eq!(expect_json(response, 200).await, logged_out, "{garbage:?}");
    }
    let response = post(&server, "/api/auth/logout", json!({})).await;
    expect_error(response, 400, "INVALID_INPUT").await;

    // Only that session ended: the user's other session still refreshes and its access token
    // works, while the ended session's access token is refused from now on.
    expect_json(refresh(&server, other_session["refresh_token"].as_str().unwrap()).await, 200).await;
    assert_past_auth(&server, &format!("Bearer {}", other_session["access_token"].as_str().unwrap())).await;
    assert_invalid_token(&server, &format!("Bearer {}", registered["access_token"].as_str().unwrap())).await;
}

#[tokio::test]
async fn jwt_routes_accept_only_valid_access_tokens() {
    let server = TestServer::start();
    let registered = server.register("grace@example.com", PASSWORD).await;
    let access = registered["access_token"].as_str().unwrap();

    let body = expect_error(jwt_route(&server, None).await, 401, "AUTH_MISSING").await;
    assert_eq!(body, json!({ "error": "Missing authorization header", "code": "AUTH_MISSING" }));

    // The scheme is case-insensitive (API.md A12).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert_past_auth(&server, &format!("{scheme} {access}")).await;
    }

    let refresh_token = registered["refresh_token"].as_str().unwrap();
    let claims = |iat: i64, exp: i64| json!({ "sub": registered["user_id"], "email": "grace@example.com", "iat": iat, "exp": exp });
    let other_secret =
        sign(&claims(now(), now() + 900), "another-secret-another-secret-0123", jsonwebtoken::Algorithm::HS256);
    let expired = sign(&claims(now() - 2000, now() - 1000), JWT_SECRET, jsonwebtoken::Algorithm::HS256);
    let hs384 = sign(&claims(now(), now() + 900), JWT_SECRET, jsonwebtoken::Algorithm::HS384);
    let unsigned = format!(
        "{}.{}.",
        base64url_encode(br#"{"alg":"none","typ":"JWT"}"#),
        base64url_encode(claims(now(), now() + 900).to_string().as_bytes())
    );
    let mut tampered_claims = decode_jwt(access).1;
    tampered_claims.insert("sub".into(), json!("someone-else"));
    let signature = access.rsplit('.').next().unwrap();
    let tampered = format!(
        "{}.{}.{signature}",
        access.split('.').next().unwrap(),
        base64url_encode(Value::Object(tampered_claims).to_string().as_bytes())
    );
    for bad in [
        "Bearer garbage".to_string(),
        format!("Bearer {refresh_token}"),
        format!("Bearer {other_secret}"),
        format!("Bearer {expired}"),
        format!("Bearer {hs384}"),
        format!("Bearer {unsigned}"),
        format!("Bearer {tampered}"),
        format!("Basic {access}"),
        format!("Token {access}"),
        access.to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
    ] {
        assert_invalid_token(&server, &bad).await;
    }

    // A legacy token (the reference's four claims, no `typ`) signed with the secret is accepted,
    // as are tokens within the 60 s leeway on `exp`.
    let legacy = sign(&claims(now(), now() + 900), JWT_SECRET, jsonwebtoken::Algorithm::HS256);
    assert_past_auth(&server, &format!("Bearer {legacy}")).await;
    let in_leeway = sign(&claims(now() - 930, now() - 30), JWT_SECRET, jsonwebtoken::Algorithm::HS256);
    assert_past_auth(&server, &format!("Bearer {in_leeway}")).await;

    // Authentication runs before the body is read: a malformed body without a token is 401.
    let response = server
        .client()
        .request(Method::POST, server.url("/api/chat"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "AUTH_MISSING").await;
}

#[tokio::test]
async fn users_and_sessions_survive_a_restart() {
    let server = TestServer::start();
    let registered = server.register("heidi@example.com", PASSWORD).await;
    let server = server.restart();

    let login_body = expect_json(login(&server, "heidi@example.com", PASSWORD).await, 200).await;
    assert_eq!(login_body["user_id"], registered["user_id"]);
    let refreshed = expect_json(refresh(&server, registered["refresh_token"].as_str().unwrap()).await, 200).await;
    assert_eq!(decode_jwt(refreshed["access_token"].as_str().unwrap()).1["sub"], registered["user_id"]);
    // The access token issued before the restart is still valid (same secret).
    assert_past_auth(&server, &format!("Bearer {}", registered["access_token"].as_str().unwrap())).await;
    let response =
        post(&server, "/api/auth/register", json!({ "email": "heidi@example.com", "password": PASSWORD })).await;
    expect_error(response, 409, "CONFLICT").await;
}
