//! The PostgreSQL backend: many users, and any number of server processes on one database.
//!
//! tokio-postgres with a deadpool-postgres pool (README says why). The schema matches the
//! SQLite one (see [`super::sqlite`]), with native `uuid`, `boolean` and `bigint` columns; its
//! version lives in `tasksync_schema`, and migrations run under an advisory lock so that
//! processes starting together migrate once.
//!
//! Concurrency: a batch runs in one READ COMMITTED transaction that first locks the user's row
//! (`SELECT ... FOR UPDATE`). Batches of one user therefore apply one at a time across all
//! processes, each later one seeing everything the earlier ones committed; batches of
//! different users run in parallel. Each changed task takes the next value of the user's
//! counter under that lock, so change numbers commit in order and a cursor never skips a
//! late commit. The same statement that locks the row can check the request's token
//! ([`Storage::apply_batch_as`]); `set_token` and `remove_user` lock that row too, so no batch
//! applies after the revocation of its token committed. Serialization failures and deadlocks
//! are retried; a lost connection or a full disk is [`StorageError::Unavailable`] (503).
//!
//! Round trips: a batch costs two, pipelined on its connection (`BEGIN`, the lock and both
//! reads; then the writes, one statement, and `COMMIT`; a batch that met a conflict adds its
//! insert to that second trip); see `Postgres::try_apply`.
//!
//! Live pulls across processes: after a batch commits, a task of its process sends
//! `pg_notify('tasksync_changes', user_id)` (outside the batch's transaction and off the
//! request's path, several users in one statement; see `announce_changes`); each process
//! keeps one `LISTEN` connection and wakes the user's waiting pulls. When that connection is
//! lost, every waiting pull is woken to read again, so nothing missed meanwhile waits for
//! long.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tasksync_core::{
    BatchTransaction, Change, ChangeFeed, ChangedTask, FeedConflict, Loaded, RecordedAnswer, Writes,
};
use tasksync_proto::lww::{FieldClock, FieldClocks, Versioned};
use tasksync_proto::wire::WireTask;
use tasksync_proto::Timestamp;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls, Row};
use uuid::Uuid;

use super::{
    BatchInput, BatchOutcome, BoxFuture, ChangesPage, Result, Storage, StorageError, TokenOwner,
    UserId, UserInfo, CREDENTIALS_VERSION,
};
use crate::notify::Notifier;

/// The schema version this server writes.
const SCHEMA_VERSION: i64 = 4;
/// Connections per process.
pub const POOL_SIZE: usize = 16;
/// The `NOTIFY` channel of committed changes; the payload is the user id, or
/// [`CREDENTIALS_PAYLOAD`].
const CHANNEL: &str = "tasksync_changes";
/// The payload that says a token was rotated or a user removed.
const CREDENTIALS_PAYLOAD: &str = "credentials";
/// Advisory lock key held while migrating.
const MIGRATION_LOCK: i64 = 0x7461_736b_7379_6e63;
/// How long a request waits for a connection, or a connection for the server.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a batch that met a serialization failure or a deadlock.
const ATTEMPTS: usize = 3;

const SCHEMA_V1: &str = "
CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 BYTEA UNIQUE,
    change_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE tasks (
    user_id BIGINT NOT NULL, id UUID NOT NULL, title TEXT NOT NULL, description TEXT,
    completed BOOLEAN NOT NULL, is_deleted BOOLEAN NOT NULL, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, device_id UUID NOT NULL,
    title_at BIGINT NOT NULL, title_rank SMALLINT NOT NULL, title_device UUID NOT NULL,
    description_at BIGINT NOT NULL, description_rank SMALLINT NOT NULL,
    description_device UUID NOT NULL,
    completed_clock_at BIGINT NOT NULL, completed_clock_rank SMALLINT NOT NULL,
    completed_clock_device UUID NOT NULL,
    is_deleted_at BIGINT NOT NULL, is_deleted_rank SMALLINT NOT NULL,
    is_deleted_device UUID NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX tasks_by_seq ON tasks (user_id, seq);
CREATE TABLE applied_ops (
    user_id BIGINT NOT NULL, op_id UUID NOT NULL, task_id UUID NOT NULL,
    device_id UUID NOT NULL, status TEXT NOT NULL, resolved_data TEXT,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, op_id)
);
CREATE INDEX applied_ops_by_time ON applied_ops (applied_at);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The index that finds op ids to prune becomes a BRIN index. As a B-tree on `applied_at`
/// it was the one page every batch of every user inserted into (answers are recorded with
/// the time they were applied, so each insert went to its rightmost leaf): one more index
/// insertion per pushed item, all of them contending for one buffer lock. Rows are appended
/// roughly in `applied_at` order, which is what BRIN summarizes well, and a summary costs
/// inserts next to nothing; pruning (`applied_at < cutoff`, once in a while) reads the page
/// ranges whose summary overlaps the cutoff.
const SCHEMA_V2: &str = "
DROP INDEX IF EXISTS applied_ops_by_time;
CREATE INDEX applied_ops_by_time ON applied_ops USING brin (applied_at);
";

/// The fields of API version 2 (due, priority, project, tags, attributes) and their clocks:
/// two nullable columns that old rows leave NULL (`tasksync_core::columns`).
const SCHEMA_V3: &str = "
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS extras TEXT;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS other_clocks TEXT;
";

/// The conflicts of the change feed (sync API version 3), numbered with the user's changes.
const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS conflicts (
    user_id BIGINT NOT NULL, seq BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
";

const TASK_COLUMNS: &str = "id, title, description, completed, is_deleted, created_at, \
    updated_at, device_id, title_at, title_rank, title_device, description_at, \
    description_rank, description_device, completed_clock_at, completed_clock_rank, \
    completed_clock_device, is_deleted_at, is_deleted_rank, is_deleted_device, extras, \
    other_clocks";

impl From<tokio_postgres::Error> for StorageError {
    fn from(error: tokio_postgres::Error) -> Self {
        // `Display` says only "db error"; the server's message and code say what happened.
        let message = match (error.as_db_error(), std::error::Error::source(&error)) {
            (Some(db), _) => format!("postgres: {} ({})", db.message(), db.code().code()),
            (None, Some(source)) => format!("postgres: {error}: {source}"),
            (None, None) => format!("postgres: {error}"),
        };
        if is_unavailable(&error) {
            StorageError::Unavailable(message)
        } else {
            StorageError::Internal(message)
        }
    }
}

impl From<PoolError> for StorageError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => error.into(),
            other => StorageError::Unavailable(format!("postgres pool: {other}")),
        }
    }
}

/// Whether a PostgreSQL error is the database's state rather than a bug: connection lost or
/// refused, database missing, login refused, disk full, too many connections, shutting down,
/// read-only, lock contention.
fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code.starts_with("28")
                || matches!(code, "3D000" | "40001" | "40P01" | "55P03" | "25006")
        }
        None => std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|c| matches!(c.code(), "40001" | "40P01"))
}

/// The PostgreSQL storage.
pub struct Postgres {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Users whose batches changed tasks, for [`announce_changes`].
    announce: mpsc::UnboundedSender<UserId>,
}

impl Postgres {
    /// Connects to `url`, creating or migrating the schema.
    pub async fn open(url: &str) -> Result<Postgres> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StorageError::Internal(format!("database URL is not a PostgreSQL URL: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tasksync-server");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(|e| StorageError::Internal(format!("postgres pool: {e}")))?;
        let (announce, changed) = mpsc::unbounded_channel();
        tokio::spawn(announce_changes(pool.clone(), changed));
        let store = Postgres {
            pool,
            config,
            announce,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tasksync_schema (
                 id INT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
        )
        .await?;
        let version: i64 = tx
            .query_opt("SELECT version FROM tasksync_schema WHERE id = 1", &[])
            .await?
            .map(|r| r.get(0))
            .unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StorageError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            tx.batch_execute(SCHEMA_V1).await?;
        }
        if version < 2 {
            tx.batch_execute(SCHEMA_V2).await?;
        }
        if version < 3 {
            tx.batch_execute(SCHEMA_V3).await?;
        }
        if version < 4 {
            tx.batch_execute(SCHEMA_V4).await?;
        }
        tx.execute(
            "INSERT INTO tasksync_schema (id, version) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &[&SCHEMA_VERSION],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One attempt of a batch: two round trips to PostgreSQL. The first carries `BEGIN`, the
    /// lock on the user's row (which also checks the token when one is given) and the two
    /// reads; the second the writes (one statement) and `COMMIT`. Statements on one
    /// connection run in the order they were sent, so a pipeline keeps the order a sequence
    /// of awaited calls would have.
    async fn try_apply(
        &self,
        user: UserId,
        token_sha256: Option<[u8; 32]>,
        batch: &BatchInput,
    ) -> Result<BatchOutcome, Failure> {
        let client = self.pool.get().await.map_err(Failure::Pool)?;
        // Prepared once per connection, so that nothing below waits for a `Parse` and the
        // pipelined statements leave in the order they are written.
        let statements = BatchStatements {
            lock: client.prepare_cached(LOCK_SQL).await?,
            ops: client.prepare_cached(OPS_SQL).await?,
            tasks: client.prepare_cached(&tasks_sql()).await?,
            write: client.prepare_cached(&WRITE_SQL).await?,
        };
        let mut open = OpenTransaction(Some(client));
        let result = async {
            let client = open.client()?;
            let mut tx = Batch {
                client,
                statements: &statements,
                user,
                token_sha256,
                stored: HashSet::new(),
                commit_sent: false,
            };
            let outcome = tasksync_core::apply_batch(&mut tx, batch).await?;
            if !tx.commit_sent {
                // Nothing to write (every op id already answered): end the transaction.
                client.batch_execute("COMMIT").await?;
            }
            Ok::<_, Failure>(outcome)
        }
        .await;
        match result {
            Ok(outcome) => {
                open.close();
                if outcome.changed {
                    // After the commit, from another task and in another transaction (see
                    // `announce_changes`): never in the batch's transaction, whose commit would
                    // then hold PostgreSQL's database-wide notify lock across its WAL flush.
                    let _ = self.announce.send(user);
                }
                Ok(outcome)
            }
            Err(failure) => {
                open.roll_back().await;
                Err(failure)
            }
        }
    }
}

/// The statements of a batch, prepared on its connection.
struct BatchStatements {
    lock: tokio_postgres::Statement,
    ops: tokio_postgres::Statement,
    tasks: tokio_postgres::Statement,
    write: tokio_postgres::Statement,
}

/// Locks the user's row, and reads its change counter, only while `$2` (when given) is still
/// the user's token. Under READ COMMITTED, a lock that waited re-checks the row as committed
/// by whoever held it: a token replaced or a user removed meanwhile finds no row.
const LOCK_SQL: &str = "SELECT change_seq FROM users \
    WHERE id = $1 AND ($2::bytea IS NULL OR token_sha256 = $2) FOR UPDATE";

const OPS_SQL: &str = "SELECT op_id, task_id, status, resolved_data FROM applied_ops \
    WHERE user_id = $1 AND op_id = ANY($2)";

fn tasks_sql() -> String {
    format!("SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1 AND id = ANY($2)")
}

/// A connection with a transaction open on it (or about to be). Dropped before [`close`] or
/// [`roll_back`] (a request cancelled mid-batch), it rolls back from a task of its own before
/// the connection goes back to the pool, or closes the connection, which ends the
/// transaction too; so a pooled connection is never handed out inside a transaction.
///
/// [`close`]: OpenTransaction::close
/// [`roll_back`]: OpenTransaction::roll_back
struct OpenTransaction(Option<deadpool_postgres::Object>);

impl OpenTransaction {
    fn client(&self) -> Result<&deadpool_postgres::Object, Failure> {
        self.0.as_ref().ok_or_else(|| {
            Failure::Storage(StorageError::Internal(
                "a batch's connection was released early".into(),
            ))
        })
    }

    /// The transaction ended (committed): the connection goes back to the pool.
    fn close(&mut self) {
        self.0 = None;
    }

    /// Ends a failed batch's transaction; a connection that cannot even roll back is closed.
    async fn roll_back(&mut self) {
        if let Some(client) = self.0.as_ref() {
            if client.batch_execute("ROLLBACK").await.is_ok() {
                self.0 = None;
            }
        }
        // Still here: `drop` closes the connection.
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let mut open = OpenTransaction(Some(client));
                    open.roll_back().await;
                });
            }
            Err(_) => drop(deadpool_postgres::Object::take(client)),
        }
    }
}

/// One user's batch inside a READ COMMITTED transaction; `load` locks the user's row, so
/// batches of one user apply one at a time across every process.
struct Batch<'a> {
    client: &'a deadpool_postgres::Object,
    statements: &'a BatchStatements,
    user: UserId,
    /// When set, the batch applies only while this is still the user's token.
    token_sha256: Option<[u8; 32]>,
    /// The batch's tasks that `load` found stored.
    stored: HashSet<Uuid>,
    /// Whether `COMMIT` went out (with the writes).
    commit_sent: bool,
}

impl BatchTransaction for Batch<'_> {
    type Error = Failure;

    async fn load(&mut self, op_ids: &[Uuid], task_ids: &[Uuid]) -> Result<Loaded, Failure> {
        let (client, s) = (self.client, self.statements);
        let token = self.token_sha256.as_ref().map(|t| &t[..]);
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.user, &token];
        let ops_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.user, &op_ids];
        let tasks_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.user, &task_ids];
        // `BEGIN`, the lock and both reads in one round trip: `biased` polls them in this
        // order, and each sends its messages at its first poll. PostgreSQL runs them in
        // order, and under READ COMMITTED each read takes its snapshot when it starts, after
        // the lock was granted, so it sees everything the batch that held the lock committed.
        let ((), locked, op_rows, task_rows) = tokio::try_join!(
            biased;
            client.batch_execute("BEGIN"),
            client.query_opt(&s.lock, &lock_params),
            client.query(&s.ops, &ops_params),
            client.query(&s.tasks, &tasks_params),
        )?;
        let Some(row) = locked else {
            return Err(Failure::Storage(StorageError::NoSuchUser));
        };
        let recorded = op_rows
            .iter()
            .map(|row| {
                RecordedAnswer::from_columns(row.get(0), row.get(1), row.get(2), row.get(3))
                    .map_err(|e| Failure::Storage(e.into()))
            })
            .collect::<Result<_, Failure>>()?;
        let stored: Vec<Versioned> = task_rows
            .iter()
            .map(task_from_row)
            .collect::<Result<_>>()
            .map_err(Failure::Storage)?;
        self.stored = stored.iter().map(|v| v.task.id).collect();
        Ok(Loaded {
            last_change: row.get(0),
            recorded,
            stored,
        })
    }

    async fn write(&mut self, writes: Writes<'_>) -> Result<(), Failure> {
        let (client, user) = (self.client, &self.user);
        let now = Timestamp::now().as_millis();
        let columns = TaskColumns::new(&writes.tasks);
        let stored: Vec<bool> = columns
            .id
            .iter()
            .map(|id| self.stored.contains(id))
            .collect();
        let expected_updates = i64::try_from(stored.iter().filter(|s| **s).count())
            .map_err(|_| Failure::Storage(StorageError::Internal("batch too large".into())))?;
        let record_ops: Vec<Uuid> = writes.record.iter().map(|a| a.op_id).collect();
        let record_tasks: Vec<Uuid> = writes.record.iter().map(|a| a.task_id).collect();
        let record_status: Vec<&str> = writes.record.iter().map(|a| a.status_column()).collect();
        let record_resolved = writes
            .record
            .iter()
            .map(super::resolved_column)
            .collect::<Result<Vec<_>>>()
            .map_err(Failure::Storage)?;
        let mut params = columns.params(user);
        params.extend_from_slice(&[
            &record_ops as &(dyn tokio_postgres::types::ToSql + Sync),
            &record_tasks,
            &record_status,
            &record_resolved,
            &writes.device_id,
            &now,
            &writes.last_change,
            &stored,
            &expected_updates,
            &columns.extras,
            &columns.other_clocks,
        ]);
        // The writes (one statement) and `COMMIT`, in one round trip. When the writes fail,
        // the transaction is aborted and PostgreSQL answers the `COMMIT` with a rollback;
        // the writes' error is the one returned.
        self.commit_sent = true;
        if writes.conflicts.is_empty() {
            tokio::try_join!(
                biased;
                client.execute(&self.statements.write, &params),
                client.batch_execute("COMMIT"),
            )?;
        } else {
            // Conflicts are rare: their insert joins the same round trip only when there are.
            let numbers: Vec<i64> = writes.conflicts.iter().map(|c| c.number).collect();
            let bodies: Vec<String> = writes
                .conflicts
                .iter()
                .map(|c| tasksync_core::columns::conflict_column(&c.conflict))
                .collect();
            let conflict_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [user, &numbers, &bodies];
            tokio::try_join!(
                biased;
                client.execute(
                    "INSERT INTO conflicts (user_id, seq, body) \
                     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[])",
                    &conflict_params,
                ),
                client.execute(&self.statements.write, &params),
                client.batch_execute("COMMIT"),
            )?;
        }
        Ok(())
    }
}

/// One user's change feed.
struct Feed<'a> {
    client: &'a deadpool_postgres::Client,
    user: UserId,
}

impl ChangeFeed for Feed<'_> {
    type Error = StorageError;

    async fn after(&self, since: i64, count: usize) -> Result<Vec<Change>> {
        let stmt = self
            .client
            .prepare_cached(&format!(
                "SELECT {TASK_COLUMNS}, seq FROM tasks WHERE user_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            ))
            .await?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(&stmt, &[&self.user, &since, &count])
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Change {
                    number: row.get(22),
                    task: task_from_row(row)?.task,
                })
            })
            .collect()
    }

    async fn conflicts_after(&self, since: i64, count: usize) -> Result<Vec<FeedConflict>> {
        let stmt = self
            .client
            .prepare_cached(
                "SELECT seq, body FROM conflicts WHERE user_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .await?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(&stmt, &[&self.user, &since, &count])
            .await?;
        rows.iter()
            .map(|row| {
                Ok(FeedConflict {
                    number: row.get(0),
                    conflict: tasksync_core::columns::read_conflict(row.get(1))?,
                })
            })
            .collect()
    }

    async fn last_change(&self) -> Result<i64> {
        let stmt = self
            .client
            .prepare_cached("SELECT change_seq FROM users WHERE id = $1")
            .await?;
        let row = self.client.query_opt(&stmt, &[&self.user]).await?;
        row.map(|row| row.get(0)).ok_or(StorageError::NoSuchUser)
    }
}

/// Why one attempt of a batch failed.
enum Failure {
    Postgres(tokio_postgres::Error),
    Pool(PoolError),
    Storage(StorageError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Failure::Postgres(error)
    }
}

/// Every write of a batch in one statement (data-modifying CTEs each run exactly once): the
/// changed tasks (arrays `$2`..`$22` and `$32`, `$33`, and `$30`, whether the batch found the
/// task stored),
/// new ones inserted and stored ones updated; the answers (`$23`..`$26`); and the user's new
/// change counter (`$29`, none when no task changed). Which tasks exist is known from the
/// batch's own read under the user's lock, which every writer of the user's tasks takes, so
/// a plain insert cannot meet a conflict (and costs less than `ON CONFLICT`'s speculative
/// insertion). Should the two ever disagree, the statement fails, so the `COMMIT` sent
/// behind it rolls back: the insert on its unique key, a short update (`$31` rows expected)
/// on a division by zero.
static WRITE_SQL: LazyLock<String> = LazyLock::new(|| {
    let set = TASK_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "id")
        .chain(["seq"])
        .map(|c| format!("{c} = c.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH changed AS MATERIALIZED (SELECT * FROM UNNEST($2::uuid[], $3::text[], \
         $4::text[], $5::bool[], $6::bool[], $7::bigint[], $8::bigint[], $9::uuid[], \
         $10::bigint[], $11::smallint[], $12::uuid[], $13::bigint[], $14::smallint[], \
         $15::uuid[], $16::bigint[], $17::smallint[], $18::uuid[], $19::bigint[], \
         $20::smallint[], $21::uuid[], $32::text[], $33::text[], $22::bigint[], \
         $30::bool[]) \
         AS r({TASK_COLUMNS}, seq, stored)), \
         inserted AS (INSERT INTO tasks (user_id, {TASK_COLUMNS}, seq) \
         SELECT $1, {TASK_COLUMNS}, seq FROM changed WHERE NOT stored), \
         updated AS (UPDATE tasks SET {set} FROM changed c \
         WHERE c.stored AND tasks.user_id = $1 AND tasks.id = c.id RETURNING 1), \
         recorded AS (INSERT INTO applied_ops (user_id, op_id, task_id, device_id, status, \
         resolved_data, applied_at) \
         SELECT $1, op, task, $27, status, resolved, $28 \
         FROM UNNEST($23::uuid[], $24::uuid[], $25::text[], $26::text[]) \
         AS r(op, task, status, resolved)), \
         counter AS (UPDATE users SET change_seq = $29 \
         WHERE id = $1 AND $29::bigint IS NOT NULL) \
         SELECT 1 / (CASE WHEN count(*) = $31 THEN 1 ELSE 0 END) FROM updated"
    )
});

/// The tasks a batch writes as one array per column, with their new change numbers.
#[derive(Default)]
struct TaskColumns {
    id: Vec<Uuid>,
    title: Vec<String>,
    description: Vec<Option<String>>,
    completed: Vec<bool>,
    is_deleted: Vec<bool>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    device_id: Vec<Uuid>,
    clock_at: [Vec<i64>; 4],
    clock_rank: [Vec<i16>; 4],
    clock_device: [Vec<Uuid>; 4],
    seq: Vec<i64>,
    extras: Vec<Option<String>>,
    other_clocks: Vec<Option<String>>,
}

impl TaskColumns {
    fn new(tasks: &[ChangedTask<'_>]) -> Self {
        let mut c = TaskColumns::default();
        for changed in tasks {
            let (v, t) = (changed.task, &changed.task.task);
            c.id.push(t.id);
            c.title.push(t.title.clone());
            c.description.push(t.description.clone());
            c.completed.push(t.completed);
            c.is_deleted.push(t.is_deleted);
            c.created_at.push(t.created_at.as_millis());
            c.updated_at.push(t.updated_at.as_millis());
            c.device_id.push(t.device_id);
            let clocks = [
                v.clocks.title,
                v.clocks.description,
                v.clocks.completed,
                v.clocks.is_deleted,
            ];
            for (i, clock) in clocks.iter().enumerate() {
                c.clock_at[i].push(clock.updated_at.as_millis());
                c.clock_rank[i].push(i16::from(clock.rank));
                c.clock_device[i].push(clock.device_id);
            }
            c.seq.push(changed.change);
            c.extras.push(tasksync_core::columns::extras_column(t));
            c.other_clocks
                .push(tasksync_core::columns::other_clocks_column(&v.clocks));
        }
        c
    }

    fn params<'a>(
        &'a self,
        user: &'a UserId,
    ) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            user,
            &self.id,
            &self.title,
            &self.description,
            &self.completed,
            &self.is_deleted,
            &self.created_at,
            &self.updated_at,
            &self.device_id,
        ];
        for i in 0..4 {
            params.push(&self.clock_at[i]);
            params.push(&self.clock_rank[i]);
            params.push(&self.clock_device[i]);
        }
        params.push(&self.seq);
        params
    }
}

impl Storage for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
    }

    fn user_by_token(&self, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<Option<TokenOwner>>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT id, token_sha256 FROM users WHERE token_sha256 = $1")
                .await?;
            let Some(row) = client.query_opt(&stmt, &[&&token_sha256[..]]).await? else {
                return Ok(None);
            };
            let stored: &[u8] = row.get(1);
            let stored = <[u8; 32]>::try_from(stored)
                .map_err(|_| StorageError::Internal("corrupt row in users: token_sha256".into()))?;
            Ok(Some((row.get(0), stored)))
        })
    }

    fn requires_token(&self) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE token_sha256 IS NOT NULL) \
                     OR EXISTS (SELECT 1 FROM settings WHERE name = 'closed')",
                )
                .await?;
            Ok(client.query_one(&stmt, &[]).await?.get(0))
        })
    }

    fn ensure_user(&self, name: &str) -> BoxFuture<'_, Result<UserId>> {
        let name = name.to_owned();
        Box::pin(async move {
            let client = self.pool.get().await?;
            let find = client
                .prepare_cached("SELECT id FROM users WHERE name = $1")
                .await?;
            if let Some(row) = client.query_opt(&find, &[&name]).await? {
                return Ok(row.get(0));
            }
            client
                .execute(
                    "INSERT INTO users (name, created_at) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &Timestamp::now().as_millis()],
                )
                .await?;
            Ok(client.query_one(&find, &[&name]).await?.get(0))
        })
    }

    fn add_user(&self, name: &str, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<()>> {
        let name = name.to_owned();
        Box::pin(async move {
            let client = self.pool.get().await?;
            let inserted = client
                .execute(
                    "INSERT INTO users (name, token_sha256, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &&token_sha256[..], &Timestamp::now().as_millis()],
                )
                .await?;
            if inserted == 0 {
                return Err(StorageError::UserExists(name));
            }
            client
                .execute(
                    "INSERT INTO settings (name, value) VALUES ('closed', 'true') \
                     ON CONFLICT (name) DO NOTHING",
                    &[],
                )
                .await?;
            Ok(())
        })
    }

    fn set_token(&self, name: &str, token_sha256: [u8; 32]) -> BoxFuture<'_, Result<bool>> {
        let name = name.to_owned();
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE users SET token_sha256 = $2 WHERE name = $1",
                    &[&name, &&token_sha256[..]],
                )
                .await?
                > 0;
            if changed {
                bump_credentials_version(&tx).await?;
            }
            tx.commit().await?;
            if changed {
                announce_credentials(&client).await;
            }
            Ok(changed)
        })
    }

    fn credentials_version(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT value FROM settings WHERE name = $1",
                    &[&CREDENTIALS_VERSION],
                )
                .await?;
            row.map_or(Ok(0), |row| {
                row.get::<_, String>(0).parse().map_err(|_| {
                    StorageError::Internal(format!(
                        "corrupt row in settings: {CREDENTIALS_VERSION}"
                    ))
                })
            })
        })
    }

    fn remove_user(&self, name: &str) -> BoxFuture<'_, Result<bool>> {
        let name = name.to_owned();
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let Some(row) = tx
                .query_opt("SELECT id FROM users WHERE name = $1 FOR UPDATE", &[&name])
                .await?
            else {
                return Ok(false);
            };
            let id: UserId = row.get(0);
            tx.execute("DELETE FROM tasks WHERE user_id = $1", &[&id])
                .await?;
            tx.execute("DELETE FROM applied_ops WHERE user_id = $1", &[&id])
                .await?;
            tx.execute("DELETE FROM users WHERE id = $1", &[&id])
                .await?;
            bump_credentials_version(&tx).await?;
            tx.commit().await?;
            announce_credentials(&client).await;
            Ok(true)
        })
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserInfo>>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT name, created_at, token_sha256 IS NOT NULL FROM users ORDER BY name",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(UserInfo {
                        name: row.get(0),
                        created_at: Timestamp::from_millis(row.get(1)).ok_or_else(|| {
                            StorageError::Internal("corrupt row in users: created_at".into())
                        })?,
                        has_token: row.get(2),
                    })
                })
                .collect()
        })
    }

    fn apply_batch_as(
        &self,
        user: UserId,
        token_sha256: Option<[u8; 32]>,
        batch: BatchInput,
    ) -> BoxFuture<'_, Result<BatchOutcome>> {
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                match self.try_apply(user, token_sha256, &batch).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(Failure::Postgres(error)) if is_retryable(&error) && attempt < ATTEMPTS => {
                        tracing::debug!(attempt, "batch retried: {error}");
                        attempt += 1;
                    }
                    Err(Failure::Postgres(error)) => return Err(error.into()),
                    Err(Failure::Pool(error)) => return Err(error.into()),
                    Err(Failure::Storage(error)) => return Err(error),
                }
            }
        })
    }

    fn changes(
        &self,
        user: UserId,
        since: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<ChangesPage>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            tasksync_core::changes(
                &Feed {
                    client: &client,
                    user,
                },
                since,
                limit,
            )
            .await
        })
    }

    fn all_tasks(&self, user: UserId) -> BoxFuture<'_, Result<Vec<WireTask>>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1 ORDER BY created_at, id"
                ))
                .await?;
            let rows = client.query(&stmt, &[&user]).await?;
            rows.iter()
                .map(|row| Ok(task_from_row(row)?.task))
                .collect()
        })
    }

    fn prune_applied_ops(&self, cutoff: Timestamp) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            Ok(client
                .execute(
                    "DELETE FROM applied_ops WHERE applied_at < $1",
                    &[&cutoff.as_millis()],
                )
                .await?)
        })
    }

    fn connections_in_use(&self) -> Option<usize> {
        let status = self.pool.status();
        Some(status.size.saturating_sub(status.available))
    }

    fn watch_other_processes(&self, notifier: Arc<Notifier>) -> BoxFuture<'static, ()> {
        let config = self.config.clone();
        Box::pin(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match listen(&config, &notifier).await {
                    Ok(()) => tracing::warn!("LISTEN connection closed; reconnecting"),
                    Err(error) => tracing::warn!("LISTEN connection failed: {error}"),
                }
                // Notifications may have been missed: waiting pulls read again.
                notifier.notify_all();
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        })
    }
}

/// Moves the credentials version on (see [`Storage::credentials_version`]).
async fn bump_credentials_version(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO settings (name, value) VALUES ($1, '1') \
         ON CONFLICT (name) DO UPDATE SET value = (settings.value::bigint + 1)::text",
        &[&CREDENTIALS_VERSION],
    )
    .await?;
    Ok(())
}

/// Sends `NOTIFY` for users whose batches committed changes, until the storage is dropped.
///
/// One task per process, on a pooled connection, so a batch's answer never waits for it:
/// whatever users queued up while one notification was being sent go out together, in one
/// statement (one notification per user, so any process reads each payload as one user id).
/// Its transaction commits with `synchronous_commit = off`: a notification holds nothing that
/// must survive a crash (it is lost if this process dies anyway; waiting pulls elsewhere then
/// answer at their `wait`), and a commit that waited for the WAL flush would hold the notify
/// lock, which every process's notifications share, across that flush.
async fn announce_changes(pool: Pool, mut changed: mpsc::UnboundedReceiver<UserId>) {
    let mut users = std::collections::BTreeSet::new();
    while let Some(user) = changed.recv().await {
        users.insert(user);
        while let Ok(user) = changed.try_recv() {
            users.insert(user);
        }
        // User ids are numbers: the statement holds no text from outside.
        let ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        users.clear();
        let sql = format!(
            "SET LOCAL synchronous_commit TO off; \
             SELECT pg_notify('{CHANNEL}', u) FROM unnest('{{{}}}'::text[]) AS u",
            ids.join(",")
        );
        let sent = async {
            let client = pool.get().await?;
            client.batch_execute(&sql).await?;
            Ok::<_, StorageError>(())
        };
        if let Err(error) = sent.await {
            tracing::warn!("NOTIFY after a batch failed: {error}");
        }
    }
}

/// Tells every process at once that credentials changed (their polls would notice within
/// [`crate::notify::CREDENTIALS_POLL`] anyway).
async fn announce_credentials(client: &tokio_postgres::Client) {
    if let Err(error) = client
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &CREDENTIALS_PAYLOAD],
        )
        .await
    {
        tracing::debug!("NOTIFY of a credentials change failed: {error}");
    }
}

/// Listens on [`CHANNEL`] until the connection ends, waking the user of each notification.
async fn listen(
    config: &tokio_postgres::Config,
    notifier: &Notifier,
) -> std::result::Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let driver = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if note.payload() == CREDENTIALS_PAYLOAD {
                        notifier.credentials_changed();
                    } else if let Ok(user) = note.payload().parse::<UserId>() {
                        notifier.notify(user);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    };
    tokio::pin!(driver);
    let statement = format!("LISTEN {CHANNEL}");
    tokio::select! {
        ended = &mut driver => return ended,
        listening = client.batch_execute(&statement) => listening?,
    }
    tracing::debug!("listening for changes of other server processes");
    // Anything committed before LISTEN took effect is read again by waiting pulls.
    notifier.notify_all();
    driver.await
}

/// Reads the first 22 columns ([`TASK_COLUMNS`]) of a row.
fn task_from_row(row: &Row) -> Result<Versioned> {
    let corrupt = |what: &str| StorageError::Internal(format!("corrupt row in tasks: {what}"));
    let ts = |i: usize, name: &str| -> Result<Timestamp> {
        Timestamp::from_millis(row.try_get(i).map_err(|_| corrupt(name))?)
            .ok_or_else(|| corrupt(name))
    };
    let clock = |i: usize, name: &str| -> Result<FieldClock> {
        let rank: i16 = row.try_get(i + 1).map_err(|_| corrupt(name))?;
        Ok(FieldClock {
            updated_at: ts(i, name)?,
            rank: u8::try_from(rank).map_err(|_| corrupt(name))?,
            device_id: row.try_get(i + 2).map_err(|_| corrupt(name))?,
        })
    };
    let get =
        |e: tokio_postgres::Error| StorageError::Internal(format!("corrupt row in tasks: {e}"));
    let task = WireTask {
        id: row.try_get(0).map_err(get)?,
        title: row.try_get(1).map_err(get)?,
        description: row.try_get(2).map_err(get)?,
        completed: row.try_get(3).map_err(get)?,
        is_deleted: row.try_get(4).map_err(get)?,
        created_at: ts(5, "created_at")?,
        updated_at: ts(6, "updated_at")?,
        device_id: row.try_get(7).map_err(get)?,
        due: None,
        priority: None,
        project: None,
        tags: Default::default(),
        attributes: Default::default(),
    };
    let mut task = task;
    let extras: Option<&str> = row.try_get(20).map_err(get)?;
    tasksync_core::columns::read_extras(&mut task, extras)?;
    let mut clocks = FieldClocks {
        title: clock(8, "title clock")?,
        description: clock(11, "description clock")?,
        completed: clock(14, "completed clock")?,
        is_deleted: clock(17, "is_deleted clock")?,
        others: Default::default(),
    };
    let others: Option<&str> = row.try_get(21).map_err(get)?;
    tasksync_core::columns::read_other_clocks(&mut clocks, others)?;
    Ok(Versioned { task, clocks })
}
