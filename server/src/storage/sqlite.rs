//! The SQLite backend: one file, one writer connection, a few read-only connections.
//!
//! Tables (`PRAGMA user_version` 4):
//! - `users`: id, name, SHA-256 of the token (none for the tokenless `default` user of open
//!   mode), `change_seq` (the user's change counter), created_at.
//! - `tasks` (primary key `user_id, id`): the merged state of each task, the LWW clock of each
//!   mergeable field, and `seq`, the user's change number of its latest change; `extras` and
//!   `other_clocks` (version 3) hold due, priority, project, tags, attributes and their clocks
//!   (`tasksync_core::columns`).
//! - `applied_ops` (primary key `user_id, op_id`): every op id applied, with its answer.
//! - `conflicts` (primary key `user_id, seq`, version 4): the conflicts of the change feed,
//!   each as its JSON, under the user's change number it took.
//! - `settings`: `closed` once a user was added (the server is never open again).
//!
//! Version 1 (before users) is migrated into the user `default`, keeping cursors valid.
//! Batches run one at a time (a mutex over the writer, and `BEGIN IMMEDIATE` against other
//! processes on the same file), so change numbers always commit in order. Calls run on the
//! blocking pool; at most [`MAX_CONCURRENT_READS`] reads at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use tasksync_core::{
    BatchTransaction, Change, ChangeFeed, FeedConflict, Loaded, RecordedAnswer, Writes,
};
use tasksync_proto::lww::{FieldClock, FieldClocks, Versioned};
use tasksync_proto::wire::WireTask;
use tasksync_proto::Timestamp;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::Durability;
use super::{
    BatchInput, BatchOutcome, BoxFuture, ChangesPage, Result, Storage, StorageError, TokenOwner,
    UserId, UserInfo, CREDENTIALS_VERSION,
};
use crate::notify::Notifier;

/// The schema version this server writes.
const SCHEMA_VERSION: i64 = 4;
/// Store reads allowed on the blocking pool at once.
pub const MAX_CONCURRENT_READS: usize = 8;

const SCHEMA_V1: &str = "
CREATE TABLE tasks (
    id BLOB PRIMARY KEY NOT NULL, title TEXT NOT NULL, description TEXT,
    completed INTEGER NOT NULL, is_deleted INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, device_id BLOB NOT NULL,
    title_at INTEGER NOT NULL, title_rank INTEGER NOT NULL, title_device BLOB NOT NULL,
    description_at INTEGER NOT NULL, description_rank INTEGER NOT NULL,
    description_device BLOB NOT NULL,
    completed_clock_at INTEGER NOT NULL, completed_clock_rank INTEGER NOT NULL,
    completed_clock_device BLOB NOT NULL,
    is_deleted_at INTEGER NOT NULL, is_deleted_rank INTEGER NOT NULL,
    is_deleted_device BLOB NOT NULL,
    seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX tasks_by_seq ON tasks (seq);
CREATE TABLE applied_ops (
    op_id BLOB PRIMARY KEY NOT NULL, task_id BLOB NOT NULL, device_id BLOB NOT NULL,
    status TEXT NOT NULL, resolved_data TEXT, applied_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Users; tasks and op ids keyed by user. Data of version 1 moves to the user `default`.
const SCHEMA_V2: &str = "
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_sha256 BLOB UNIQUE,
    change_seq INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
INSERT INTO users (name, change_seq, created_at)
    SELECT 'default', COALESCE((SELECT MAX(seq) FROM tasks), 0),
           CAST(strftime('%s', 'now') AS INTEGER) * 1000
    WHERE EXISTS (SELECT 1 FROM tasks) OR EXISTS (SELECT 1 FROM applied_ops);
ALTER TABLE tasks RENAME TO tasks_v1;
ALTER TABLE applied_ops RENAME TO applied_ops_v1;
DROP INDEX tasks_by_seq;
CREATE TABLE tasks (
    user_id INTEGER NOT NULL, id BLOB NOT NULL, title TEXT NOT NULL, description TEXT,
    completed INTEGER NOT NULL, is_deleted INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, device_id BLOB NOT NULL,
    title_at INTEGER NOT NULL, title_rank INTEGER NOT NULL, title_device BLOB NOT NULL,
    description_at INTEGER NOT NULL, description_rank INTEGER NOT NULL,
    description_device BLOB NOT NULL,
    completed_clock_at INTEGER NOT NULL, completed_clock_rank INTEGER NOT NULL,
    completed_clock_device BLOB NOT NULL,
    is_deleted_at INTEGER NOT NULL, is_deleted_rank INTEGER NOT NULL,
    is_deleted_device BLOB NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX tasks_by_seq ON tasks (user_id, seq);
CREATE TABLE applied_ops (
    user_id INTEGER NOT NULL, op_id BLOB NOT NULL, task_id BLOB NOT NULL,
    device_id BLOB NOT NULL, status TEXT NOT NULL, resolved_data TEXT,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, op_id)
) WITHOUT ROWID;
CREATE INDEX applied_ops_by_time ON applied_ops (applied_at);
CREATE TABLE settings (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
INSERT INTO tasks SELECT (SELECT id FROM users WHERE name = 'default'), * FROM tasks_v1;
INSERT INTO applied_ops SELECT (SELECT id FROM users WHERE name = 'default'), * FROM applied_ops_v1;
DROP TABLE tasks_v1;
DROP TABLE applied_ops_v1;
";

/// The fields of API version 2: two nullable columns that old rows leave NULL.
const SCHEMA_V3: &str = "
ALTER TABLE tasks ADD COLUMN extras TEXT;
ALTER TABLE tasks ADD COLUMN other_clocks TEXT;
";

/// The conflicts of the change feed (sync API version 3), numbered with the user's changes.
const SCHEMA_V4: &str = "
CREATE TABLE conflicts (
    user_id INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
";

const TASK_COLUMNS: &str = "id, title, description, completed, is_deleted, created_at, \
    updated_at, device_id, title_at, title_rank, title_device, description_at, \
    description_rank, description_device, completed_clock_at, completed_clock_rank, \
    completed_clock_device, is_deleted_at, is_deleted_rank, is_deleted_device, extras, \
    other_clocks";

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let unavailable = match &error {
            rusqlite::Error::SqliteFailure(e, _) => matches!(
                e.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::OutOfMemory
                    | C::FileLockingProtocolFailed
            ),
            _ => false,
        };
        if unavailable {
            StorageError::Unavailable(format!("sqlite: {error}"))
        } else {
            StorageError::Internal(format!("sqlite: {error}"))
        }
    }
}

/// The SQLite storage.
pub struct Sqlite {
    inner: Arc<Inner>,
    reads: Arc<Semaphore>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Sqlite {
    /// Opens (creating when missing) and migrates the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Sqlite> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        conn.pragma_update(None, "synchronous", durability.pragma_value())?;
        migrate(&mut conn)?;
        Ok(Sqlite {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(conn),
                readers: Mutex::new(Vec::new()),
            }),
            reads: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
        })
    }

    /// Caps the database at its current size, so the next write that needs a page fails as
    /// on a full disk (tests of the 503 answer).
    #[doc(hidden)]
    pub fn fill_up(&self) -> Result<()> {
        let conn = lock(&self.inner.writer);
        // Free pages (from the migration's dropped tables) would absorb the next writes.
        conn.execute_batch("VACUUM")?;
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        conn.pragma_update(None, "max_page_count", pages)?;
        Ok(())
    }

    /// Runs `f` with the writer connection on the blocking pool.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&mut lock(&inner.writer)))
                .await
                .map_err(|e| StorageError::Internal(format!("database task: {e}")))?
        })
    }

    /// Runs `f` with a read-only connection on the blocking pool.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let inner = self.inner.clone();
        let reads = self.reads.clone();
        Box::pin(async move {
            let _permit = reads
                .acquire_owned()
                .await
                .map_err(|e| StorageError::Internal(format!("read permits: {e}")))?;
            tokio::task::spawn_blocking(move || inner.read(f))
                .await
                .map_err(|e| StorageError::Internal(format!("database task: {e}")))?
        })
    }
}

impl Inner {
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match lock(&self.readers).pop() {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                conn
            }
        };
        let result = f(&conn);
        let mut pool = lock(&self.readers);
        if pool.len() < MAX_CONCURRENT_READS {
            pool.push(conn);
        }
        result
    }
}

impl Storage for Sqlite {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
    }

    fn user_by_token(&self, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<Option<TokenOwner>>> {
        self.read(move |conn| {
            let row: Option<(UserId, Vec<u8>)> = conn
                .prepare_cached("SELECT id, token_sha256 FROM users WHERE token_sha256 = ?1")?
                .query_row([&token_sha256[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(id, stored)| {
                let stored = <[u8; 32]>::try_from(stored.as_slice())
                    .map_err(|_| corrupt("users", "token_sha256"))?;
                Ok((id, stored))
            })
            .transpose()
        })
    }

    fn requires_token(&self) -> BoxFuture<'_, Result<bool>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE token_sha256 IS NOT NULL) \
                     OR EXISTS (SELECT 1 FROM settings WHERE name = 'closed')",
                )?
                .query_row([], |r| r.get(0))?)
        })
    }

    fn ensure_user(&self, name: &str) -> BoxFuture<'_, Result<UserId>> {
        let name = name.to_owned();
        Box::pin(async move {
            let lookup = name.clone();
            let found = self
                .read(move |conn| {
                    Ok(conn
                        .prepare_cached("SELECT id FROM users WHERE name = ?1")?
                        .query_row([&lookup], |r| r.get(0))
                        .optional()?)
                })
                .await?;
            if let Some(id) = found {
                return Ok(id);
            }
            self.write(move |conn| {
                conn.execute(
                    "INSERT INTO users (name, created_at) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO NOTHING",
                    rusqlite::params![name, Timestamp::now().as_millis()],
                )?;
                Ok(
                    conn.query_row("SELECT id FROM users WHERE name = ?1", [&name], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
        })
    }

    fn add_user(&self, name: &str, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<()>> {
        let name = name.to_owned();
        self.write(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO users (name, token_sha256, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO NOTHING",
                rusqlite::params![name, &token_sha256[..], Timestamp::now().as_millis()],
            )?;
            if inserted == 0 {
                return Err(StorageError::UserExists(name));
            }
            conn.execute(
                "INSERT INTO settings (name, value) VALUES ('closed', 'true') \
                 ON CONFLICT (name) DO NOTHING",
                [],
            )?;
            Ok(())
        })
    }

    fn set_token(&self, name: &str, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<bool>> {
        let name = name.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE users SET token_sha256 = ?2 WHERE name = ?1",
                rusqlite::params![name, &token_sha256[..]],
            )? > 0;
            if changed {
                bump_credentials_version(&tx)?;
            }
            tx.commit()?;
            Ok(changed)
        })
    }

    fn credentials_version(&self) -> BoxFuture<'_, Result<i64>> {
        self.read(|conn| {
            let value: Option<String> = conn
                .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
                .query_row([CREDENTIALS_VERSION], |r| r.get(0))
                .optional()?;
            value.map_or(Ok(0), |v| {
                v.parse()
                    .map_err(|_| corrupt("settings", CREDENTIALS_VERSION))
            })
        })
    }

    fn remove_user(&self, name: &str) -> BoxFuture<'_, Result<bool>> {
        let name = name.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id: Option<UserId> = tx
                .query_row("SELECT id FROM users WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(id) = id else {
                return Ok(false);
            };
            tx.execute("DELETE FROM tasks WHERE user_id = ?1", [id])?;
            tx.execute("DELETE FROM applied_ops WHERE user_id = ?1", [id])?;
            tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
            bump_credentials_version(&tx)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserInfo>>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, created_at, token_sha256 IS NOT NULL FROM users ORDER BY name",
            )?;
            let mut rows = stmt.query([])?;
            let mut users = Vec::new();
            while let Some(row) = rows.next()? {
                users.push(UserInfo {
                    name: row.get(0)?,
                    created_at: Timestamp::from_millis(row.get(1)?)
                        .ok_or_else(|| corrupt("users", "created_at"))?,
                    has_token: row.get(2)?,
                });
            }
            Ok(users)
        })
    }

    fn apply_batch_as(
        &self,
        user: UserId,
        token_sha256: Option<[u8; 32]>,
        batch: BatchInput,
    ) -> BoxFuture<'_, Result<BatchOutcome>> {
        self.write(move |conn| apply_batch(conn, user, token_sha256, &batch))
    }

    fn changes(
        &self,
        user: UserId,
        since: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<ChangesPage>> {
        self.read(move |conn| {
            tasksync_core::block_on(tasksync_core::changes(&Feed { conn, user }, since, limit))
        })
    }

    fn all_tasks(&self, user: UserId) -> BoxFuture<'_, Result<Vec<WireTask>>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = ?1 ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([user])?;
            let mut tasks = Vec::new();
            while let Some(row) = rows.next()? {
                tasks.push(task_from_row(row)?.task);
            }
            Ok(tasks)
        })
    }

    fn prune_applied_ops(&self, cutoff: Timestamp) -> BoxFuture<'_, Result<u64>> {
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM applied_ops WHERE applied_at < ?1",
                [cutoff.as_millis()],
            )?;
            Ok(n as u64)
        })
    }

    fn connections_in_use(&self) -> Option<usize> {
        Some(MAX_CONCURRENT_READS - self.reads.available_permits())
    }

    fn watch_other_processes(&self, _notifier: Arc<Notifier>) -> BoxFuture<'static, ()> {
        // One SQLite file serves one process; nothing to listen to.
        Box::pin(async {})
    }
}

/// Applies one batch in one `IMMEDIATE` transaction (the protocol is the core's).
fn apply_batch(
    conn: &mut Connection,
    user: UserId,
    token_sha256: Option<[u8; 32]>,
    batch: &BatchInput,
) -> Result<BatchOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = tasksync_core::block_on(tasksync_core::apply_batch(
        &mut Batch {
            tx: &tx,
            user,
            token_sha256,
        },
        batch,
    ))?;
    tx.commit()?;
    Ok(outcome)
}

/// One user's batch inside an `IMMEDIATE` transaction (which already keeps out every other
/// writer). Its calls never wait, so [`tasksync_core::block_on`] runs them on the blocking
/// thread.
struct Batch<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    user: UserId,
    /// When set, the batch applies only while this is still the user's token.
    token_sha256: Option<[u8; 32]>,
}

impl BatchTransaction for Batch<'_> {
    type Error = StorageError;

    async fn load(&mut self, op_ids: &[Uuid], task_ids: &[Uuid]) -> Result<Loaded> {
        let user = self.user;
        // The token is checked in the transaction that writes (see `Storage::apply_batch_as`).
        let token = self.token_sha256.as_ref().map(|t| &t[..]);
        let last_change: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT change_seq FROM users WHERE id = ?1 \
                 AND (?2 IS NULL OR token_sha256 = ?2)",
            )?
            .query_row(rusqlite::params![user, token], |r| r.get(0))
            .optional()?;
        let mut loaded = Loaded {
            last_change: last_change.ok_or(StorageError::NoSuchUser)?,
            ..Loaded::default()
        };
        let mut answer_get = self.tx.prepare_cached(
            "SELECT task_id, status, resolved_data FROM applied_ops \
             WHERE user_id = ?1 AND op_id = ?2",
        )?;
        for op_id in op_ids {
            let row = answer_get
                .query_row(rusqlite::params![user, op_id.as_bytes()], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .optional()?;
            if let Some((task_id, status, resolved)) = row {
                let task_id =
                    Uuid::from_slice(&task_id).map_err(|_| corrupt("applied_ops", "task_id"))?;
                loaded.recorded.push(RecordedAnswer::from_columns(
                    *op_id,
                    task_id,
                    &status,
                    resolved.as_deref(),
                )?);
            }
        }
        let mut task_get = self.tx.prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = ?1 AND id = ?2"
        ))?;
        for task_id in task_ids {
            let mut rows = task_get.query(rusqlite::params![user, task_id.as_bytes()])?;
            if let Some(row) = rows.next()? {
                loaded.stored.push(task_from_row(row)?);
            }
        }
        Ok(loaded)
    }

    async fn write(&mut self, writes: Writes<'_>) -> Result<()> {
        let user = self.user;
        let mut save = self.tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO tasks (user_id, {TASK_COLUMNS}, seq) VALUES (?1, ?2, ?3, \
             ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
             ?21, ?22, ?23, ?24)"
        ))?;
        for changed in &writes.tasks {
            let t = &changed.task.task;
            let c = &changed.task.clocks;
            save.execute(rusqlite::params![
                user,
                t.id.as_bytes(),
                t.title,
                t.description,
                t.completed,
                t.is_deleted,
                t.created_at.as_millis(),
                t.updated_at.as_millis(),
                t.device_id.as_bytes(),
                c.title.updated_at.as_millis(),
                c.title.rank,
                c.title.device_id.as_bytes(),
                c.description.updated_at.as_millis(),
                c.description.rank,
                c.description.device_id.as_bytes(),
                c.completed.updated_at.as_millis(),
                c.completed.rank,
                c.completed.device_id.as_bytes(),
                c.is_deleted.updated_at.as_millis(),
                c.is_deleted.rank,
                c.is_deleted.device_id.as_bytes(),
                tasksync_core::columns::extras_column(t),
                tasksync_core::columns::other_clocks_column(c),
                changed.change,
            ])?;
        }
        let mut answer_put = self.tx.prepare_cached(
            "INSERT INTO applied_ops (user_id, op_id, task_id, device_id, status, \
             resolved_data, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let now = Timestamp::now().as_millis();
        for answer in writes.record {
            answer_put.execute(rusqlite::params![
                user,
                answer.op_id.as_bytes(),
                answer.task_id.as_bytes(),
                writes.device_id.as_bytes(),
                answer.status_column(),
                super::resolved_column(answer)?,
                now,
            ])?;
        }
        if !writes.conflicts.is_empty() {
            let mut conflict_put = self
                .tx
                .prepare_cached("INSERT INTO conflicts (user_id, seq, body) VALUES (?1, ?2, ?3)")?;
            for conflict in &writes.conflicts {
                conflict_put.execute(rusqlite::params![
                    user,
                    conflict.number,
                    tasksync_core::columns::conflict_column(&conflict.conflict),
                ])?;
            }
        }
        if let Some(last_change) = writes.last_change {
            self.tx
                .prepare_cached("UPDATE users SET change_seq = ?2 WHERE id = ?1")?
                .execute(rusqlite::params![user, last_change])?;
        }
        Ok(())
    }
}

/// One user's change feed, on a read-only connection.
struct Feed<'a> {
    conn: &'a Connection,
    user: UserId,
}

impl ChangeFeed for Feed<'_> {
    type Error = StorageError;

    async fn after(&self, since: i64, count: usize) -> Result<Vec<Change>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TASK_COLUMNS}, seq FROM tasks WHERE user_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3"
        ))?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let mut rows = stmt.query(rusqlite::params![self.user, since, count])?;
        let mut changes = Vec::new();
        while let Some(row) = rows.next()? {
            changes.push(Change {
                number: row.get(22)?,
                task: task_from_row(row)?.task,
            });
        }
        Ok(changes)
    }

    async fn conflicts_after(&self, since: i64, count: usize) -> Result<Vec<FeedConflict>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body FROM conflicts WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let mut rows = stmt.query(rusqlite::params![self.user, since, count])?;
        let mut conflicts = Vec::new();
        while let Some(row) = rows.next()? {
            conflicts.push(FeedConflict {
                number: row.get(0)?,
                conflict: tasksync_core::columns::read_conflict(&row.get::<_, String>(1)?)?,
            });
        }
        Ok(conflicts)
    }

    async fn last_change(&self) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT change_seq FROM users WHERE id = ?1")?
            .query_row([self.user], |row| row.get(0))
            .optional()?
            .ok_or(StorageError::NoSuchUser)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock rolled its transaction back; the connection is fine.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!("SQLite refused WAL mode (journal_mode={mode})");
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StorageError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
        if version >= 1 {
            tracing::info!(
                "database migrated to version 2: existing tasks belong to user `default`"
            );
        }
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Moves the credentials version on (see [`Storage::credentials_version`]).
fn bump_credentials_version(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (name, value) VALUES (?1, '1') \
         ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [CREDENTIALS_VERSION],
    )?;
    Ok(())
}

fn corrupt(table: &str, what: &str) -> StorageError {
    StorageError::Internal(format!("corrupt row in {table}: {what}"))
}

/// Reads the first 22 columns ([`TASK_COLUMNS`]) of a row.
fn task_from_row(row: &Row<'_>) -> Result<Versioned> {
    let uuid = |i: usize, name: &str| -> Result<Uuid> {
        let bytes: Vec<u8> = row.get(i)?;
        Uuid::from_slice(&bytes).map_err(|_| corrupt("tasks", name))
    };
    let ts = |i: usize, name: &str| -> Result<Timestamp> {
        Timestamp::from_millis(row.get(i)?).ok_or_else(|| corrupt("tasks", name))
    };
    let clock = |i: usize, name: &str| -> Result<FieldClock> {
        Ok(FieldClock {
            updated_at: ts(i, name)?,
            rank: row.get(i + 1)?,
            device_id: uuid(i + 2, name)?,
        })
    };
    let task = WireTask {
        id: uuid(0, "id")?,
        title: row.get(1)?,
        description: row.get(2)?,
        completed: row.get(3)?,
        is_deleted: row.get(4)?,
        created_at: ts(5, "created_at")?,
        updated_at: ts(6, "updated_at")?,
        device_id: uuid(7, "device_id")?,
        due: None,
        priority: None,
        project: None,
        tags: Default::default(),
        attributes: Default::default(),
    };
    let mut task = task;
    tasksync_core::columns::read_extras(&mut task, row.get::<_, Option<String>>(20)?.as_deref())?;
    let mut clocks = FieldClocks {
        title: clock(8, "title clock")?,
        description: clock(11, "description clock")?,
        completed: clock(14, "completed clock")?,
        is_deleted: clock(17, "is_deleted clock")?,
        others: Default::default(),
    };
    tasksync_core::columns::read_other_clocks(
        &mut clocks,
        row.get::<_, Option<String>>(21)?.as_deref(),
    )?;
    Ok(Versioned { task, clocks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_moves_to_user_default_keeping_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            let v1_columns = TASK_COLUMNS.split(", extras").next().unwrap();
            conn.execute(
                &format!(
                    "INSERT INTO tasks ({v1_columns}, seq) VALUES (?1, 'kept', NULL, 0, 0, \
                     1000, 1000, ?2, 1000, 0, ?2, 1000, 0, ?2, 1000, 0, ?2, 1000, 0, ?2, 7)"
                ),
                rusqlite::params![Uuid::from_u128(5).as_bytes(), Uuid::nil().as_bytes()],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let store = Sqlite::open(&path, Durability::Full).unwrap();
        let conn = lock(&store.inner.writer);
        let (name, seq): (String, i64) = conn
            .query_row("SELECT name, change_seq FROM users", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((name.as_str(), seq), ("default", 7));
        let title: String = conn
            .query_row("SELECT title FROM tasks WHERE seq = 7", [], |r| r.get(0))
            .unwrap();
        assert_eq!(title, "kept");
        drop(conn);
        drop(store);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 9)
            .unwrap();
        assert!(matches!(
            Sqlite::open(&path, Durability::Full),
            Err(StorageError::TooNew { found: 9, .. })
        ));
    }
}
