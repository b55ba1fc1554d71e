//! The admin secret and its constant-time check (API.md §3.6).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// Holds only a digest of the secret: comparing fixed-length digests in constant time hides
/// both the content and the length of the secret from a timing attacker.
#[derive(Clone)]
pub struct AdminSecret {
    digest: [u8; 32],
}

impl AdminSecret {
    pub fn new(secret: &str) -> Self {
        AdminSecret { digest: Sha256::digest(secret.as_bytes()).into() }
    }

    pub fn verify(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        presented.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_exact_secret() {
        let secret = AdminSecret::new("correct horse");
        assert!(secret.verify(b"correct horse"));
        assert!(!secret.verify(b"correct hors"));
        assert!(!secret.verify(b"correct horse "));
        assert!(!secret.verify(b""));
        assert_eq!(format!("{secret:?}"), "AdminSecret(<redacted>)");
    }
}
