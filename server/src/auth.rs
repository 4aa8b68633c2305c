//! Bearer-token check (DESIGN.md section 11).
//!
//! The token is compared in constant time on SHA-256 digests, so neither its content nor its
//! length leaks through timing. The token itself is kept only as that digest.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The configured token, or none (every request is allowed).
#[derive(Clone)]
pub struct Auth {
    token_digest: Option<[u8; 32]>,
}

impl Auth {
    pub fn new(token: Option<&str>) -> Self {
        Auth {
            token_digest: token.map(digest),
        }
    }

    /// Whether a request with this `Authorization` header value may proceed.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        let Some(value) = authorization else {
            return false;
        };
        let Some(presented) = bearer_token(value) else {
            return false;
        };
        bool::from(digest_bytes(presented).ct_eq(expected))
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (rest.first() == Some(&b' ') && !token.is_empty()).then_some(token)
}

fn digest(token: &str) -> [u8; 32] {
    digest_bytes(token.as_bytes())
}

fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_allows_everything() {
        assert!(Auth::new(None).allows(None));
        assert!(Auth::new(None).allows(Some(b"Bearer x")));
    }

    #[test]
    fn token_must_match_exactly() {
        let auth = Auth::new(Some("s3cret"));
        assert!(auth.allows(Some(b"Bearer s3cret")));
        assert!(auth.allows(Some(b"bearer s3cret")));
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some(b"Bearer s3cre")));
        assert!(!auth.allows(Some(b"Bearer s3cret2")));
        assert!(!auth.allows(Some(b"Basic s3cret")));
        assert!(!auth.allows(Some(b"Bearers3cret")));
        assert!(!auth.allows(Some(b"Bearer ")));
        assert!(!auth.allows(Some(b"")));
    }
}
