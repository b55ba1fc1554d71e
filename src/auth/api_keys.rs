//! Tenant API keys (API.md §3.5): generation and the parsing half of verification.
//!
//! Raw key = `ares_` + 64 lowercase hex (32 CSPRNG bytes); prefix = its first 13 characters;
//! stored hash = hex SHA-256 of the 64 hex *without* `ares_`, the reference's convention, so
//! keys imported from a reference database verify unchanged. Only the hash is ever stored.

use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// Length of the lookup prefix: `ares_` + 8 hex.
pub const PREFIX_LEN: usize = 13;

/// A freshly generated key. `raw` is shown to the client once and then dropped.
pub struct GeneratedKey {
    pub raw: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex = hex::encode(bytes);
    GeneratedKey { raw: format!("ares_{hex}"), prefix: format!("ares_{}", &hex[..8]), hash: sha256_hex(&hex) }
}

/// [`generate`] in the shape the store takes.
pub fn material() -> crate::store::api_keys::NewKeyMaterial {
    let key = generate();
    crate::store::api_keys::NewKeyMaterial { raw: key.raw, prefix: key.prefix, hash: key.hash }
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A presented bearer token, normalised: what to look up and what to compare.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey {
    /// `ares_` + the first 8 characters after it.
    pub prefix: String,
    /// The full token including `ares_`.
    pub token: String,
}

/// Normalise a bearer token per API.md §3.5 steps 2–3. Never panics, whatever the input.
pub fn parse(token: &str) -> Option<PresentedKey> {
    let token = if token.starts_with("ares_") {
        token.to_string()
    } else if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        // Holders of reference-issued raw keys, which lacked the prefix.
        format!("ares_{token}")
    } else {
        return None;
    };
    let prefix = token.get(..PREFIX_LEN)?.to_string();
    Some(PresentedKey { prefix, token })
}

/// Whether `stored_hash` matches the presented key, under either convention found in
/// reference databases (hash of the part after `ares_`, or of the whole token). Constant time.
pub fn matches(stored_hash: &str, presented: &PresentedKey) -> bool {
    // Every authenticated request gets here: the digests are written as hex on the stack.
    let without_prefix = presented.token.get(5..).map(sha256_hex_bytes).unwrap_or([0; 64]);
    let whole = sha256_hex_bytes(&presented.token);
    let a: bool = stored_hash.as_bytes().ct_eq(&without_prefix).into();
    let b: bool = stored_hash.as_bytes().ct_eq(&whole).into();
    a | b
}

/// [`sha256_hex`] without the `String`.
fn sha256_hex_bytes(value: &str) -> [u8; 64] {
    let mut out = [0; 64];
    // 32 bytes always fill 64 hex digits exactly, so this cannot fail.
    let _ = hex::encode_to_slice(Sha256::digest(value.as_bytes()), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_verify() {
        let key = generate();
        assert_eq!(key.raw.len(), 69);
        assert!(key.raw.starts_with("ares_"));
        assert_eq!(key.prefix, key.raw[..13]);
        assert_eq!(key.hash, sha256_hex(&key.raw[5..]));
        let presented = parse(&key.raw).unwrap();
        assert_eq!(presented.prefix, key.prefix);
        assert!(matches(&key.hash, &presented));
        assert!(!matches(&sha256_hex("other"), &presented));
    }

    #[test]
    fn reference_raw_keys_and_whole_token_hashes_verify() {
        let hex = "7a0c4ba97593d8da149cc4c3871950374ae4fe23b867496e39e4e294826ae913";
        let presented = parse(hex).unwrap();
        assert_eq!(presented.prefix, "ares_7a0c4ba9");
        assert!(matches(&sha256_hex(hex), &presented));
        assert!(matches(&sha256_hex(&format!("ares_{hex}")), &presented));
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for bad in ["", "ares_", "ares_1234", "bearer", "xyz", "é", "ares_é"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(token in "\\PC*") {
            if let Some(p) = parse(&token) {
                let _ = matches("00", &p);
            }
        }
    }
}
