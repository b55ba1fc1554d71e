//! Password hashing: Argon2id PHC strings (API.md §3.1), on the blocking pool behind a
//! concurrency limit.
//!
//! Each hash or verify costs ~20 ms of CPU and ~19 MiB of memory. Running them on async
//! workers would stall every other request, and running unboundedly many at once is how the
//! reference grew to 0.9 GB under login load; the semaphore caps both.

use std::sync::Arc;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

/// Hashes running at once; more wait their turn.
const MAX_CONCURRENT_HASHES: usize = 4;

fn permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)))
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password task failed: {0}")]
    Task(String),
}

/// Argon2id v19, m=19456 KiB, t=2, p=1, random 16-byte salt: the reference's parameters.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    let _permit = permits().clone().acquire_owned().await.map_err(|e| PasswordError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Task(e.to_string()))?
}

/// Verify with the parameters embedded in `phc` (imported hashes keep working whatever our
/// defaults). An unparseable stored hash is simply a failed verification.
pub async fn verify(password: String, phc: String) -> bool {
    let Ok(_permit) = permits().clone().acquire_owned().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_blocking(&password, &phc)).await.unwrap_or(false)
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a random password, verified against when the email is unknown so that a
/// failed login takes the same time whether or not the account exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let random = uuid::Uuid::new_v4().to_string();
        Argon2::default().hash_password(random.as_bytes()).map(|h| h.to_string()).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_its_own_hashes_and_reference_shaped_ones() {
        let phc = Argon2::default().hash_password(b"correcthorsebatterystaple").unwrap().to_string();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("correcthorsebatterystaple", &phc));
        assert!(!verify_blocking("wrong", &phc));
        assert!(!verify_blocking("x", "not a phc string"));
        // Parameters are read from the string: a cheaper hash still verifies.
        let cheap = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw-with-other-params")
        .unwrap()
        .to_string();
        assert!(cheap.contains("m=8,t=1,p=1"), "{cheap}");
        assert!(verify_blocking("pw-with-other-params", &cheap));
        assert!(!verify_blocking("anything", decoy_hash()));
    }
}
