//! The bearer-token check (DESIGN.md section 11).
//!
//! Tokens are compared in constant time on their SHA-256 digests, so neither the content nor
//! the length of the token leaks through timing; only the digest is kept here.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The token every request but the health check must carry.
#[derive(Clone)]
pub struct BearerAuth {
    digest: [u8; 32],
}

impl BearerAuth {
    pub fn new(token: &str) -> Self {
        BearerAuth {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether a request with this `Authorization` header value may proceed.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(bearer_token) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(digest.ct_eq(&self.digest))
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        let auth = BearerAuth::new("s3cret-token");
        assert!(auth.allows(Some(b"Bearer s3cret-token")));
        assert!(auth.allows(Some(b"bearer s3cret-token")));
        assert!(auth.allows(Some(b"Bearer  s3cret-token ")));
        for refused in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearers3cret-token",
            b"Bearer s3cret-toke",
            b"Bearer s3cret-token2",
            b"Basic s3cret-token",
            b"s3cret-token",
        ] {
            assert!(
                !auth.allows(Some(refused)),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        assert!(!auth.allows(None));
    }
}
