//! The server's storage behind one small trait, with two backends: SQLite ([`sqlite`], the
//! embedded default) and PostgreSQL ([`postgres`], many users and many server processes).
//!
//! The trait speaks in whole operations (apply a batch, read a page of changes, manage users),
//! each one transaction. The protocol of the two data calls lives once, in `tasksync-core`
//! ([`tasksync_core::apply_batch`], [`tasksync_core::changes`]): a backend implements only the
//! core's transaction (read the recorded answers, the stored tasks and the change counter of a
//! batch; write the plan; read the change feed) under its own locking. Both backends pass the
//! same conformance suite (`server/tests/storage.rs`).
//!
//! Invariants every backend keeps:
//! - every row belongs to one user, and every primary key starts with the user id;
//! - a user's batches are applied one at a time (a lock on the user's row), and each changed
//!   task takes the next value of the user's change counter inside that transaction, so change
//!   numbers commit in order and a cursor never skips a change that committed late;
//! - an op id is applied once per user; its answer is kept for the retention period.

mod durability;
pub mod postgres;
pub mod sqlite;

pub use durability::Durability;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tasksync_proto::wire::WireTask;
use tasksync_proto::Timestamp;

pub use tasksync_core::{BatchInput, BatchOutcome, ChangesPage};

use crate::notify::Notifier;

/// A user's id in storage (the first column of every primary key).
pub type UserId = i64;

/// A user found by token: its id and the stored SHA-256 of its token.
pub type TokenOwner = (UserId, [u8; 32]);

/// The user that `--token` and the open single-user mode act as.
pub const DEFAULT_USER: &str = "default";

/// A boxed future, so that [`Storage`] can be used as `dyn Storage`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Full, busy, read-only or unreachable: answered 503 with `Retry-After`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The user was removed (or never existed): answered 401.
    #[error("no such user")]
    NoSuchUser,
    /// `user add` of a name that is taken.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// The database was written by a newer server.
    #[error("database schema version {found} is newer than this server understands ({supported})")]
    TooNew { found: i64, supported: i64 },
    /// Anything else: a bug or a corrupt row; answered 500.
    #[error("{0}")]
    Internal(String),
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub created_at: Timestamp,
    /// Whether the user has a token (the `default` user of open mode has none).
    pub has_token: bool,
}

/// The storage of the sync server. Every data call names the user it acts for.
pub trait Storage: Send + Sync {
    /// `sqlite` or `postgres`, for logs and `/api/health`.
    fn backend(&self) -> &'static str;

    /// Answers when the storage answers a trivial query.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// The user whose token has this SHA-256, if any, with the stored digest (which the
    /// caller compares again in constant time).
    fn user_by_token(&self, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<Option<TokenOwner>>>;

    /// Whether requests need a token: once a user was added with a token, the server is
    /// never open again, even after the last user is removed (else, without `--token`, the
    /// server is open).
    fn requires_token(&self) -> BoxFuture<'_, Result<bool>>;

    /// The id of the user `name`, created without a token when missing.
    fn ensure_user(&self, name: &str) -> BoxFuture<'_, Result<UserId>>;

    /// Creates the user `name` with a token; [`StorageError::UserExists`] if taken.
    fn add_user(&self, name: &str, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<()>>;

    /// Replaces the user's token; false when there is no such user.
    fn set_token(&self, name: &str, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<bool>>;

    /// Deletes the user with all its tasks and op ids; false when there is no such user.
    fn remove_user(&self, name: &str) -> BoxFuture<'_, Result<bool>>;

    /// A number that changes whenever a token is replaced or a user removed (by any process),
    /// so that open requests can check their token again.
    fn credentials_version(&self) -> BoxFuture<'_, Result<i64>>;

    /// Every user, by name.
    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserInfo>>>;

    /// Applies a batch for `user` in one transaction (see [`tasksync_core::apply_batch`]).
    fn apply_batch(&self, user: UserId, batch: BatchInput) -> BoxFuture<'_, Result<BatchOutcome>> {
        self.apply_batch_as(user, None, batch)
    }

    /// [`Storage::apply_batch`], and with `Some(token_sha256)` only while that digest is still
    /// the user's token: checked inside the batch's transaction, under the lock on the user's
    /// row that `set_token` and `remove_user` also take, so a batch is never applied after
    /// the revocation of its token committed. Else [`StorageError::NoSuchUser`] (401), with
    /// nothing applied. This lets the server keep a per-process cache of token owners that
    /// saves a lookup but never authorizes a write on its own (`crate::auth`).
    fn apply_batch_as(
        &self,
        user: UserId,
        token_sha256: Option<[u8; 32]>,
        batch: BatchInput,
    ) -> BoxFuture<'_, Result<BatchOutcome>>;

    /// The user's tasks changed after `since`, at most `limit`, in change order (see
    /// [`tasksync_core::changes`]).
    fn changes(&self, user: UserId, since: i64, limit: usize)
        -> BoxFuture<'_, Result<ChangesPage>>;

    /// Every task of the user, tombstones included, oldest first.
    fn all_tasks(&self, user: UserId) -> BoxFuture<'_, Result<Vec<WireTask>>>;

    /// Forgets op ids applied before `cutoff`; returns how many.
    fn prune_applied_ops(&self, cutoff: Timestamp) -> BoxFuture<'_, Result<u64>>;

    /// Storage connections in use right now, for the metrics.
    fn connections_in_use(&self) -> Option<usize> {
        None
    }

    /// Runs until the process stops, waking `notifier` for changes committed by *other*
    /// processes (PostgreSQL `LISTEN`); a backend without other processes returns at once.
    fn watch_other_processes(&self, notifier: Arc<Notifier>) -> BoxFuture<'static, ()>;
}

/// Where the server keeps its data, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Sqlite {
        path: std::path::PathBuf,
        durability: Durability,
    },
    Postgres {
        url: String,
    },
}

/// Opens (creating and migrating the schema) the configured storage.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Storage>> {
    match config {
        StorageConfig::Sqlite { path, durability } => {
            let path = path.clone();
            let durability = *durability;
            let store =
                tokio::task::spawn_blocking(move || sqlite::Sqlite::open(&path, durability))
                    .await
                    .map_err(|e| StorageError::Internal(format!("opening SQLite: {e}")))??;
            Ok(Arc::new(store))
        }
        StorageConfig::Postgres { url } => Ok(Arc::new(postgres::Postgres::open(url).await?)),
    }
}

/// The `settings` row whose value [`Storage::credentials_version`] reads; `set_token` and
/// `remove_user` bump it in their transaction.
pub(crate) const CREDENTIALS_VERSION: &str = "credentials_version";

impl From<tasksync_core::CorruptAnswer> for StorageError {
    fn from(error: tasksync_core::CorruptAnswer) -> Self {
        StorageError::Internal(error.to_string())
    }
}

/// The `resolved_data` column of a recorded answer.
pub(crate) fn resolved_column(answer: &tasksync_core::RecordedAnswer) -> Result<Option<String>> {
    answer
        .resolved_column()
        .map_err(|e| StorageError::Internal(format!("cannot encode resolved_data: {e}")))
}
