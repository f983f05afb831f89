//! Random secrets and their digests: session cookies, CSRF tokens, API tokens, one-time passwords.
//!
//! Session and API tokens carry at least 128 bits from the OS generator, so a fast SHA-256 digest
//! is enough to store them (there is nothing to brute-force); passwords use argon2id instead
//! ([`super::password`]).

use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of API tokens, so leaked ones are easy to recognise in code and logs scanners.
pub const API_TOKEN_PREFIX: &str = "wfl_";

/// `bytes` random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A new session cookie value (128 bits).
pub fn new_session_token() -> String {
    random_hex(16)
}

/// A new API token: `wfl_` and 43 alphanumeric characters (≈256 bits).
pub fn new_api_token() -> String {
    format!(
        "{API_TOKEN_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 43)
    )
}

/// A one-time password of 20 alphanumeric characters (≈119 bits).
pub fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

/// SHA-256 hex digest: what the database stores instead of a token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_digested() {
        let (a, b) = (new_session_token(), new_session_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let token = new_api_token();
        assert!(token.starts_with(API_TOKEN_PREFIX) && token.len() == 47);
        assert_eq!(digest("abc").len(), 64);
        assert_ne!(digest(&token), token);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
