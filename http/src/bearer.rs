//! The bearer token a request presents (`Authorization: Bearer <token>`, RFC 6750), and token
//! digests compared in constant time (docs/SYNC-PROTOCOL.md, section 1).
//!
//! Tokens are kept and compared only as their SHA-256 digests, in constant time, so neither
//! the content nor the length of a token leaks through timing, and no token is kept in memory
//! longer than it takes to hash it.

use hyper::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The SHA-256 of a token. Deliberately not `PartialEq`: compare with [`TokenDigest::matches`].
#[derive(Clone, Copy)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &[u8]) -> Self {
        TokenDigest(Sha256::digest(token).into())
    }

    /// A digest as stored.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenDigest(bytes)
    }

    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Whether both are the digest of the same token, in constant time.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// The digest of the token `headers` present: `None` unless there is exactly one
/// `Authorization` header and it reads `Bearer <token>` (two headers are ambiguous: a proxy
/// and this program could each read another one).
pub fn presented(headers: &HeaderMap) -> Option<TokenDigest> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    bearer_token(value.as_bytes()).map(TokenDigest::of)
}

/// Whether `headers` present the token whose digest is `expected`.
pub fn allows(headers: &HeaderMap, expected: &TokenDigest) -> bool {
    presented(headers).is_some_and(|presented| presented.matches(expected))
}

/// The token of an `Authorization` value: the scheme `Bearer` in any case, at least one space,
/// then a token; whitespace around the token is not part of it.
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
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            let value = HeaderValue::from_bytes(value).unwrap();
            headers.append(AUTHORIZATION, value);
        }
        headers
    }

    #[test]
    fn the_scheme_is_bearer_in_any_case_and_the_token_must_match_exactly() {
        let expected = TokenDigest::of(b"s3cret-token");
        for allowed in [
            &b"Bearer s3cret-token"[..],
            b"bearer s3cret-token",
            b"BEARER s3cret-token",
            b"Bearer  s3cret-token ",
        ] {
            let shown = String::from_utf8_lossy(allowed);
            assert!(allows(&headers(&[allowed]), &expected), "{shown}");
        }
        for refused in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer   ",
            b"Bearers3cret-token",
            b"Bearer\ts3cret-token",
            b"Bearer s3cret-toke",
            b"Bearer s3cret-token2",
            b"Bearer S3CRET-TOKEN",
            b"Basic s3cret-token",
            b"Token s3cret-token",
            b"s3cret-token",
            b" Bearer s3cret-token",
            b"Bearer s3cret\xff-token",
        ] {
            let shown = String::from_utf8_lossy(refused);
            assert!(!allows(&headers(&[refused]), &expected), "{shown}");
        }
        assert!(!allows(&HeaderMap::new(), &expected));
    }

    #[test]
    fn two_authorization_headers_are_refused_even_if_one_is_right() {
        let expected = TokenDigest::of(b"s3cret-token");
        let right = &b"Bearer s3cret-token"[..];
        assert!(!allows(&headers(&[right, b"Bearer other"]), &expected));
        assert!(!allows(&headers(&[b"Bearer other", right]), &expected));
        assert!(!allows(&headers(&[right, right]), &expected));
        assert!(presented(&headers(&[right, right])).is_none());
    }

    #[test]
    fn digests_compare_whole_tokens_whatever_their_length() {
        let token = TokenDigest::of(b"abcdef");
        assert!(token.matches(&TokenDigest::of(b"abcdef")));
        for other in [&b""[..], b"abcde", b"abcdefg", b"Abcdef"] {
            assert!(!token.matches(&TokenDigest::of(other)));
        }
        let stored = TokenDigest::from_bytes(token.to_bytes());
        assert!(stored.matches(&token));
        assert_eq!(format!("{stored:?}"), "TokenDigest(..)");
    }
}
