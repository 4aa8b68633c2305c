//! Who a request acts for (docs/SYNC-PROTOCOL.md, sections 1 and 9).
//!
//! A bearer token is hashed with SHA-256 and looked up among the users' token digests on
//! every request, so `user add/remove/token` take effect at once, on every process; the found
//! digest is compared again in constant time. `--token T` is the user `default`. With neither
//! `--token` nor any user ever added with a token, the server is open: every request is
//! `default`. Removing the last user does not open a server again.
//! Tokens themselves are never stored nor logged. Reading the header and comparing digests
//! is `tasksync_http::bearer`'s, shared with the daemon's API.

use hyper::HeaderMap;
use tasksync_http::bearer::{self, TokenDigest};

use crate::storage::{Storage, StorageError, UserId, DEFAULT_USER};

/// The `--token` of single-user mode, kept only as its digest.
#[derive(Clone)]
pub struct Auth {
    token_digest: Option<TokenDigest>,
}

impl Auth {
    pub fn new(token: Option<&str>) -> Self {
        Auth {
            token_digest: token.map(|t| TokenDigest::of(t.as_bytes())),
        }
    }

    /// The user a request with these headers acts for; `None` = 401.
    pub async fn authenticate(
        &self,
        storage: &dyn Storage,
        headers: &HeaderMap,
    ) -> Result<Option<UserId>, StorageError> {
        let presented = bearer::presented(headers);
        if let (Some(presented), Some(expected)) = (&presented, &self.token_digest) {
            if presented.matches(expected) {
                return storage.ensure_user(DEFAULT_USER).await.map(Some);
            }
        }
        if let Some(presented) = presented {
            if let Some((user, stored)) = storage.user_by_token(presented.to_bytes()).await? {
                if presented.matches(&TokenDigest::from_bytes(stored)) {
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

/// The SHA-256 of a token, as stored.
pub fn digest(token: &[u8]) -> [u8; 32] {
    TokenDigest::of(token).to_bytes()
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
    fn tokens_are_fresh_and_url_safe() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
