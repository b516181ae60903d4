//! Bearer tokens: generated from the OS's CSPRNG, stored only as SHA-256 digests.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of an admin (public API) token.
pub const ADMIN_TOKEN_PREFIX: &str = "mr_";
/// Prefix of a broker-agent token.
pub const AGENT_TOKEN_PREFIX: &str = "mra_";

/// A fresh token: the prefix and 256 random bits in hex.
pub fn generate_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// The digest stored for a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests without leaking where they differ through timing.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let a = generate_token(ADMIN_TOKEN_PREFIX);
        let b = generate_token(ADMIN_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("mr_") && a.len() == 3 + 64);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert!(digests_equal(&token_digest(&a), &token_digest(&a)));
        assert!(!digests_equal(&token_digest(&a), &token_digest(&b)));
    }
}
