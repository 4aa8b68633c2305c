//! Who a request acts for (docs/SYNC-PROTOCOL.md, sections 1 and 9).
//!
//! A bearer token is hashed with SHA-256 and looked up among the users' token digests on
//! every request, so `user add/remove/token` take effect at once, on every process; the found
//! digest is compared again in constant time. A push may instead take its user from this
//! process's cache of token owners (emptied whenever credentials change anywhere), because
//! its own transaction checks the token again under the user's lock: the cache saves a
//! query, it never authorizes a write (see [`Auth::authenticate_push`]).
//! `--token T` is the user `default`. With neither `--token` nor any user ever added with a
//! token, the server is open: every request is `default`. Removing the last user does not
//! open a server again.
//! Tokens themselves are never stored nor logged. Reading the header and comparing digests
//! is `tasksync_http::bearer`'s, shared with the daemon's API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::HeaderMap;
use tasksync_http::bearer::{self, TokenDigest};
use tokio::sync::watch;

use crate::storage::{Storage, StorageError, UserId, DEFAULT_USER};

/// Token owners a process remembers at most; past it the cache starts again empty. Only
/// tokens that named a user are kept, so this bounds users, not requests.
const MAX_CACHED_OWNERS: usize = 65_536;

/// The `--token` of single-user mode, kept only as its digest, and the process's cache of
/// token owners (pushes only, see [`Auth::authenticate_push`]).
#[derive(Clone)]
pub struct Auth {
    token_digest: Option<TokenDigest>,
    owners: Arc<Mutex<TokenOwners>>,
    /// The credentials version of this process ([`crate::notify::Notifier::credentials`]):
    /// it moves when any process rotates a token or removes a user.
    credentials: watch::Receiver<u64>,
}

/// Token digest -> user, as last read from storage, under one credentials version.
#[derive(Default)]
struct TokenOwners {
    version: u64,
    owners: HashMap<[u8; 32], UserId>,
}

/// Who a push acts for, and how to hold it to that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    /// The token's digest, which the batch's own transaction checks is still the user's
    /// ([`Storage::apply_batch_as`]); none for `--token` and open mode, which storage does not
    /// hold.
    pub token_sha256: Option<[u8; 32]>,
    /// Whether `user` came from the cache rather than from storage just now.
    pub cached: bool,
}

impl Caller {
    /// A user storage named just now, with nothing left to check.
    pub fn checked_now(user: UserId) -> Caller {
        Caller {
            user,
            token_sha256: None,
            cached: false,
        }
    }
}

impl Auth {
    /// `credentials` is the process's credentials version: every change empties the cache.
    pub fn new(token: Option<&str>, credentials: watch::Receiver<u64>) -> Self {
        Auth {
            token_digest: token.map(|t| TokenDigest::of(t.as_bytes())),
            owners: Arc::default(),
            credentials,
        }
    }

    /// The user a request with these headers acts for; `None` = 401. Always asks storage, so
    /// a token revoked by any process is refused at once: reads and pulls use this.
    pub async fn authenticate(
        &self,
        storage: &dyn Storage,
        headers: &HeaderMap,
    ) -> Result<Option<UserId>, StorageError> {
        Ok(self
            .caller(storage, headers, false)
            .await?
            .map(|caller| caller.user))
    }

    /// The caller of a push: [`Auth::authenticate`], but a token this process saw name a user
    /// since credentials last changed is taken from the cache, without a query. That never
    /// authorizes a write on its own: the batch's transaction checks the digest again under
    /// the user's lock ([`Storage::apply_batch_as`]), so a batch is refused once the
    /// revocation of its token committed, whether or not this process heard of it yet. When
    /// that check fails for a cached caller, call [`Auth::forget`] and
    /// [`Auth::authenticate_push`] again.
    pub async fn authenticate_push(
        &self,
        storage: &dyn Storage,
        headers: &HeaderMap,
    ) -> Result<Option<Caller>, StorageError> {
        self.caller(storage, headers, true).await
    }

    /// Drops a cached owner that storage no longer confirms.
    pub fn forget(&self, caller: &Caller) {
        if let (true, Some(digest)) = (caller.cached, caller.token_sha256) {
            self.lock().owners.remove(&digest);
        }
    }

    async fn caller(
        &self,
        storage: &dyn Storage,
        headers: &HeaderMap,
        use_cache: bool,
    ) -> Result<Option<Caller>, StorageError> {
        let presented = bearer::presented(headers);
        if let (Some(presented), Some(expected)) = (&presented, &self.token_digest) {
            if presented.matches(expected) {
                let user = storage.ensure_user(DEFAULT_USER).await?;
                return Ok(Some(Caller {
                    user,
                    token_sha256: None,
                    cached: false,
                }));
            }
        }
        if let Some(presented) = presented {
            let digest = presented.to_bytes();
            if use_cache {
                if let Some(user) = self.cached(&digest) {
                    return Ok(Some(Caller {
                        user,
                        token_sha256: Some(digest),
                        cached: true,
                    }));
                }
            }
            // Read before the lookup: an owner found under a version that moved meanwhile is
            // not kept.
            let version = *self.credentials.borrow();
            if let Some((user, stored)) = storage.user_by_token(digest).await? {
                if presented.matches(&TokenDigest::from_bytes(stored)) {
                    self.remember(digest, user, version);
                    return Ok(Some(Caller {
                        user,
                        token_sha256: Some(digest),
                        cached: false,
                    }));
                }
            }
        }
        if self.token_digest.is_none() && !storage.requires_token().await? {
            // Open single-user mode (local use): no token configured anywhere.
            let user = storage.ensure_user(DEFAULT_USER).await?;
            return Ok(Some(Caller {
                user,
                token_sha256: None,
                cached: false,
            }));
        }
        Ok(None)
    }

    /// The cached owner of `digest`, after emptying the cache if credentials changed.
    fn cached(&self, digest: &[u8; 32]) -> Option<UserId> {
        let version = *self.credentials.borrow();
        let mut cache = self.lock();
        if cache.version != version {
            cache.owners.clear();
            cache.version = version;
        }
        cache.owners.get(digest).copied()
    }

    fn remember(&self, digest: [u8; 32], user: UserId, read_under: u64) {
        let mut cache = self.lock();
        if *self.credentials.borrow() != read_under {
            return;
        }
        if cache.version != read_under {
            cache.owners.clear();
            cache.version = read_under;
        }
        if cache.owners.len() >= MAX_CACHED_OWNERS {
            cache.owners.clear();
        }
        cache.owners.insert(digest, user);
    }

    /// The cached owner of `digest`, if any (for tests).
    #[cfg(test)]
    pub(crate) fn cached_user(&self, digest: &[u8; 32]) -> Option<UserId> {
        self.cached(digest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenOwners> {
        self.owners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
