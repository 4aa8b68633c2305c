//! Who a request acts for (DESIGN.md sections 4a and 11).
//!
//! A bearer token is hashed with SHA-256 and looked up among the users' token digests on
//! every request, so `user add/remove/token` take effect at once, on every process; the found
//! digest is compared again in constant time. `--token T` is the user `default`. With neither
//! `--token` nor any user ever added with a token, the server is open: every request is
//! `default`. Removing the last user does not open a server again.
//! Tokens themselves are never stored nor logged.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::storage::{Storage, StorageError, UserId, DEFAULT_USER};

/// The `--token` of single-user mode, kept only as its digest.
#[derive(Clone)]
pub struct Auth {
    token_digest: Option<[u8; 32]>,
}

impl Auth {
    pub fn new(token: Option<&str>) -> Self {
        Auth {
            token_digest: token.map(|t| digest(t.as_bytes())),
        }
    }

    /// The user a request with this `Authorization` header value acts for; `None` = 401.
    pub async fn authenticate(
        &self,
        storage: &dyn Storage,
        authorization: Option<&[u8]>,
    ) -> Result<Option<UserId>, StorageError> {
        let presented = authorization.and_then(bearer_token).map(digest);
        if let (Some(presented), Some(expected)) = (&presented, &self.token_digest) {
            if bool::from(presented.ct_eq(expected)) {
                return storage.ensure_user(DEFAULT_USER).await.map(Some);
            }
        }
        if let Some(presented) = presented {
            if let Some((user, stored)) = storage.user_by_token(presented).await? {
                if bool::from(presented.ct_eq(&stored)) {
                    return Ok(Some(user));
                }
            }
        }
        if self.token_digest.is_none() && !storage.requires_token().await? {
            // Open single-user mode (local use): no token configured anywhere.
            return storage.ensure_user(DEFAULT_USER).await.map(Some);
        }
        Ok(None)
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

/// The SHA-256 of a token, as stored.
pub fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// A fresh token: 32 random bytes, base64url without padding (43 characters).
pub fn new_token() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_parsed_strictly() {
        assert_eq!(bearer_token(b"Bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer_token(b"bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer_token(b"Basic s3cret"), None);
        assert_eq!(bearer_token(b"Bearers3cret"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b""), None);
    }

    #[test]
    fn tokens_are_fresh_and_url_safe() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
