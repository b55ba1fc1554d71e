//! Access and refresh tokens: HS256 JWTs with the reference's claims (API.md §3.2, §3.3).
//!
//! Tokens we mint add `typ` (`access` | `refresh`), on refresh tokens a random `jti` so two
//! logins in the same second get distinct tokens, and on access tokens the session id (`sid`),
//! so a logout ends them too. None is required when verifying: tokens issued by the reference
//! (same secret) keep working until their `exp`. `nbf` is honoured when present.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The session (refresh token) an access token was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// Signs and verifies with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(String);

impl TokenKeys {
    pub fn new(secret: &str) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// Mint a token for `user_id` valid for `lifetime_secs` from `now`; access tokens name the
    /// session `session_id`.
    pub fn issue(
        &self,
        kind: TokenKind,
        user_id: &str,
        email: &str,
        session_id: &str,
        now: i64,
        lifetime_secs: u64,
    ) -> Result<String, TokenError> {
        let claims = Claims {
            sub: user_id.to_string(),
            email: email.to_string(),
            iat: now,
            exp: now.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX)),
            typ: Some(kind.as_str().to_string()),
            jti: (kind == TokenKind::Refresh).then(|| uuid::Uuid::new_v4().to_string()),
            sid: (kind == TokenKind::Access).then(|| session_id.to_string()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError(e.to_string()))
    }

    /// Check signature (HS256 only), `exp` (required) and `nbf` (when present), both with 60 s
    /// leeway, and decode the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError(format!("{:?}", e.kind())))
    }

    /// [`TokenKeys::verify`] for the access middleware: also refuses tokens that say they
    /// are refresh tokens (legacy tokens carry no `typ` and are accepted).
    pub fn verify_access(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.verify(token)?;
        if claims.typ.as_deref() == Some("refresh") {
            return Err(TokenError("a refresh token cannot be used as an access token".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn now() -> i64 {
        crate::clock::now_unix()
    }

    #[test]
    fn signs_and_verifies_with_the_reference_claims() {
        let keys = TokenKeys::new(SECRET);
        let token = keys.issue(TokenKind::Access, "user-1", "a@example.com", "s-1", now(), 900).unwrap();
        let claims = keys.verify_access(&token).unwrap();
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.email, "a@example.com");
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.sid.as_deref(), Some("s-1"));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn refuses_expired_foreign_and_refresh_tokens() {
        let keys = TokenKeys::new(SECRET);
        let expired = keys.issue(TokenKind::Access, "u", "e", "s", now() - 2000, 900).unwrap();
        assert!(keys.verify(&expired).is_err());
        let within_leeway = keys.issue(TokenKind::Access, "u", "e", "s", now() - 930, 900).unwrap();
        assert!(keys.verify(&within_leeway).is_ok());
        let other = TokenKeys::new("another-secret-another-secret-another");
        assert!(other.verify(&keys.issue(TokenKind::Access, "u", "e", "s", now(), 900).unwrap()).is_err());
        let refresh = keys.issue(TokenKind::Refresh, "u", "e", "s", now(), 900).unwrap();
        assert!(keys.verify(&refresh).is_ok());
        assert!(keys.verify_access(&refresh).is_err());
        assert!(keys.verify("garbage").is_err());
        assert!(keys.verify("").is_err());
    }

    #[test]
    fn legacy_tokens_without_typ_are_access_tokens() {
        let keys = TokenKeys::new(SECRET);
        #[derive(Serialize)]
        struct Legacy<'a> {
            sub: &'a str,
            email: &'a str,
            iat: i64,
            exp: i64,
        }
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Legacy { sub: "u", email: "e", iat: now(), exp: now() + 900 },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(keys.verify_access(&token).unwrap().typ, None);
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let keys = TokenKeys::new(SECRET);
        #[derive(Serialize)]
        struct WithNbf {
            sub: &'static str,
            email: &'static str,
            iat: i64,
            exp: i64,
            nbf: i64,
        }
        let sign = |nbf: i64| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &WithNbf { sub: "u", email: "e", iat: now(), exp: now() + 7200, nbf },
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        };
        assert!(keys.verify_access(&sign(now() + 3600)).is_err());
        assert!(keys.verify_access(&sign(now() + 30)).is_ok(), "within the leeway");
        assert!(keys.verify_access(&sign(now() - 10)).is_ok());
    }
}
