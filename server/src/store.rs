//! The server's SQLite database: schema, migrations and every query.
//!
//! Tables:
//! - `tasks`: the merged state of each task, the LWW clock of each mergeable field, and `seq`,
//!   the change sequence number of its latest change (unique, only ever growing). Pulls read
//!   `WHERE seq > cursor ORDER BY seq`, so each task appears once, in its latest state.
//! - `applied_ops`: every op id applied, with the answer it got, so a resent item gets the
//!   same answer and is never applied twice.
//!
//! One writer connection (behind a mutex: batches are applied one at a time, one transaction
//! each) and a small pool of read-only connections; WAL lets reads run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{CachedStatement, Connection, OpenFlags, OptionalExtension, Row};
use tasksync_proto::lww::{FieldClock, FieldClocks, Versioned};
use tasksync_proto::wire::{ItemStatus, ProcessedItem, WireTask};
use tasksync_proto::Timestamp;
use uuid::Uuid;

use crate::config::Durability;

/// The schema version this server writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE tasks (
    id              BLOB PRIMARY KEY NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT,
    completed       INTEGER NOT NULL,
    is_deleted      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    device_id       BLOB NOT NULL,
    title_at        INTEGER NOT NULL,
    title_rank      INTEGER NOT NULL,
    title_device    BLOB NOT NULL,
    description_at      INTEGER NOT NULL,
    description_rank    INTEGER NOT NULL,
    description_device  BLOB NOT NULL,
    completed_clock_at      INTEGER NOT NULL,
    completed_clock_rank    INTEGER NOT NULL,
    completed_clock_device  BLOB NOT NULL,
    is_deleted_at       INTEGER NOT NULL,
    is_deleted_rank     INTEGER NOT NULL,
    is_deleted_device   BLOB NOT NULL,
    seq             INTEGER NOT NULL
);
CREATE UNIQUE INDEX tasks_by_seq ON tasks (seq);
CREATE TABLE applied_ops (
    op_id           BLOB PRIMARY KEY NOT NULL,
    task_id         BLOB NOT NULL,
    device_id       BLOB NOT NULL,
    status          TEXT NOT NULL,
    resolved_data   TEXT,
    applied_at      INTEGER NOT NULL
) WITHOUT ROWID;
";

const TASK_COLUMNS: &str = "id, title, description, completed, is_deleted, created_at, \
    updated_at, device_id, title_at, title_rank, title_device, description_at, \
    description_rank, description_device, completed_clock_at, completed_clock_rank, \
    completed_clock_device, is_deleted_at, is_deleted_rank, is_deleted_device";

/// A database failure; answered with 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "database schema version {0} is newer than this server understands ({SCHEMA_VERSION})"
    )]
    TooNew(i64),
    #[error("corrupt row in {table}: {what}")]
    Corrupt { table: &'static str, what: String },
}

impl StoreError {
    /// Whether the failure is the storage's state (full, busy, read-only, unreachable) rather
    /// than a fault in the request or the server: such failures answer 503 with `Retry-After`,
    /// so clients wait and retry instead of counting an attempt against their operations.
    pub fn is_unavailable(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => matches!(
                error.code,
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
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One page of `/api/changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesPage {
    pub changes: Vec<WireTask>,
    /// The `seq` of the last change returned, or the requested cursor when none.
    pub cursor: i64,
    pub has_more: bool,
}

/// The database, shared by all requests.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens (creating when missing) and migrates the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        conn.pragma_update(None, "synchronous", durability.pragma_value())?;
        migrate(&mut conn)?;
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Caps the database at its current size, so the next write that needs a page fails as
    /// on a full disk (tests of the 503 answer).
    #[cfg(test)]
    pub(crate) fn fill_up(&self) -> Result<()> {
        let conn = lock(&self.writer);
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        conn.pragma_update(None, "max_page_count", pages)?;
        Ok(())
    }

    /// Runs `f` with the one writer connection (callers open one transaction in it).
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E> {
        let mut conn = lock(&self.writer);
        f(&mut conn)
    }

    /// Runs `f` with a read-only connection from the pool.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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
        if pool.len() < 8 {
            pool.push(conn);
        }
        result
    }

    /// Tasks changed after `since`, at most `limit`, in change order.
    pub fn changes(&self, since: i64, limit: usize) -> Result<ChangesPage> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS}, seq FROM tasks WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
            let mut rows = stmt.query(rusqlite::params![since, fetch])?;
            let mut changes = Vec::new();
            let mut cursor = since;
            let mut has_more = false;
            while let Some(row) = rows.next()? {
                if changes.len() == limit {
                    has_more = true;
                    break;
                }
                changes.push(task_from_row(row)?.task);
                cursor = row.get(20)?;
            }
            Ok(ChangesPage {
                changes,
                cursor,
                has_more,
            })
        })
    }

    /// Every task, tombstones included, oldest first.
    pub fn all_tasks(&self) -> Result<Vec<WireTask>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut tasks = Vec::new();
            while let Some(row) = rows.next()? {
                tasks.push(task_from_row(row)?.task);
            }
            Ok(tasks)
        })
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
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew(version));
    }
    if version < 1 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "user_version", 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The statements a batch runs for each item, prepared once per transaction.
pub struct BatchWriter<'c> {
    load: CachedStatement<'c>,
    save: CachedStatement<'c>,
    answer_get: CachedStatement<'c>,
    answer_put: CachedStatement<'c>,
    next_seq: i64,
    now: Timestamp,
}

impl<'c> BatchWriter<'c> {
    /// Prepares the statements inside the batch's transaction `conn`.
    pub fn new(conn: &'c Connection) -> Result<Self> {
        let next_seq = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks")?
            .query_row([], |r| r.get(0))?;
        Ok(BatchWriter {
            load: conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?,
            save: conn.prepare_cached(&format!(
                "INSERT INTO tasks ({TASK_COLUMNS}, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) \
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, \
                 description = excluded.description, completed = excluded.completed, \
                 is_deleted = excluded.is_deleted, created_at = excluded.created_at, \
                 updated_at = excluded.updated_at, device_id = excluded.device_id, \
                 title_at = excluded.title_at, title_rank = excluded.title_rank, \
                 title_device = excluded.title_device, description_at = excluded.description_at, \
                 description_rank = excluded.description_rank, \
                 description_device = excluded.description_device, \
                 completed_clock_at = excluded.completed_clock_at, \
                 completed_clock_rank = excluded.completed_clock_rank, \
                 completed_clock_device = excluded.completed_clock_device, \
                 is_deleted_at = excluded.is_deleted_at, is_deleted_rank = excluded.is_deleted_rank, \
                 is_deleted_device = excluded.is_deleted_device, seq = excluded.seq"
            ))?,
            answer_get: conn.prepare_cached(
                "SELECT task_id, status, resolved_data FROM applied_ops WHERE op_id = ?1",
            )?,
            answer_put: conn.prepare_cached(
                "INSERT INTO applied_ops (op_id, task_id, device_id, status, resolved_data, \
                 applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            next_seq,
            now: Timestamp::now(),
        })
    }

    /// The stored version of a task, with its field clocks.
    pub fn load_task(&mut self, id: Uuid) -> Result<Option<Versioned>> {
        let mut rows = self.load.query([id.as_bytes()])?;
        match rows.next()? {
            Some(row) => Ok(Some(task_from_row(row)?)),
            None => Ok(None),
        }
    }

    /// Writes a task's merged state under the next change sequence number.
    pub fn save_task(&mut self, versioned: &Versioned) -> Result<()> {
        let t = &versioned.task;
        let c = &versioned.clocks;
        self.save.execute(rusqlite::params![
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
            self.next_seq,
        ])?;
        self.next_seq += 1;
        Ok(())
    }

    /// The answer an op id got when it was applied, with its task id, if it was.
    pub fn applied_answer(&mut self, op_id: Uuid) -> Result<Option<(Uuid, ProcessedItem)>> {
        let row = self
            .answer_get
            .query_row([op_id.as_bytes()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        let Some((task_id, status, resolved)) = row else {
            return Ok(None);
        };
        let corrupt = |what: String| StoreError::Corrupt {
            table: "applied_ops",
            what,
        };
        let task_id = uuid_from(&task_id).map_err(|_| corrupt("task_id is not a UUID".into()))?;
        let status = match status.as_str() {
            "success" => ItemStatus::Success,
            "conflict" => ItemStatus::Conflict,
            other => return Err(corrupt(format!("unknown status {other:?}"))),
        };
        let resolved_data = resolved
            .map(|json| serde_json::from_str::<WireTask>(&json))
            .transpose()
            .map_err(|e| corrupt(format!("resolved_data: {e}")))?;
        Ok(Some((
            task_id,
            ProcessedItem {
                client_id: op_id,
                server_id: task_id,
                status,
                resolved_data,
                error: None,
            },
        )))
    }

    /// Records the answer of an applied op id (`success` or `conflict`).
    pub fn record_answer(&mut self, device_id: Uuid, answer: &ProcessedItem) -> Result<()> {
        let resolved = answer
            .resolved_data
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                table: "applied_ops",
                what: format!("cannot encode resolved_data: {e}"),
            })?;
        self.answer_put.execute(rusqlite::params![
            answer.client_id.as_bytes(),
            answer.server_id.as_bytes(),
            device_id.as_bytes(),
            answer.status.as_str(),
            resolved,
            self.now.as_millis(),
        ])?;
        Ok(())
    }
}

fn uuid_from(bytes: &[u8]) -> std::result::Result<Uuid, uuid::Error> {
    Uuid::from_slice(bytes)
}

/// Reads the first 20 columns ([`TASK_COLUMNS`]) of a row.
fn task_from_row(row: &Row<'_>) -> Result<Versioned> {
    let corrupt = |what: &str| StoreError::Corrupt {
        table: "tasks",
        what: what.to_owned(),
    };
    let uuid = |i: usize, name: &str| -> Result<Uuid> {
        let bytes: Vec<u8> = row.get(i)?;
        uuid_from(&bytes).map_err(|_| corrupt(name))
    };
    let ts = |i: usize, name: &str| -> Result<Timestamp> {
        Timestamp::from_millis(row.get(i)?).ok_or_else(|| corrupt(name))
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
    };
    let clocks = FieldClocks {
        title: clock(8, "title clock")?,
        description: clock(11, "description clock")?,
        completed: clock(14, "completed clock")?,
        is_deleted: clock(17, "is_deleted clock")?,
    };
    Ok(Versioned { task, clocks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasksync_proto::wire::Operation;

    fn versioned(n: u128, title: &str) -> Versioned {
        let at = Timestamp::from_millis(1_000 + n as i64).unwrap();
        let device = Uuid::from_u128(0xD);
        Versioned {
            task: WireTask {
                id: Uuid::from_u128(n),
                title: title.into(),
                description: Some("d".into()),
                completed: false,
                created_at: at,
                updated_at: at,
                is_deleted: false,
                device_id: device,
            },
            clocks: FieldClocks::uniform(FieldClock::new(at, Operation::Create, device)),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        (dir, store)
    }

    #[test]
    fn tasks_round_trip_and_changes_page_in_seq_order() {
        let (_dir, store) = open();
        store
            .write(|conn| -> Result<()> {
                let tx = conn.transaction()?;
                let mut writer = BatchWriter::new(&tx)?;
                for n in 1..=3 {
                    writer.save_task(&versioned(n, "t"))?;
                }
                // task 1 changes again: it moves to the end of the change order.
                writer.save_task(&versioned(1, "again"))?;
                drop(writer);
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        let loaded = store
            .write(|conn| BatchWriter::new(conn)?.load_task(Uuid::from_u128(1)))
            .unwrap()
            .unwrap();
        assert_eq!(loaded, versioned(1, "again"));

        let page = store.changes(0, 2).unwrap();
        let ids: Vec<_> = page.changes.iter().map(|t| t.id.as_u128()).collect();
        assert_eq!(ids, vec![2, 3]);
        assert!(page.has_more);
        let rest = store.changes(page.cursor, 2).unwrap();
        assert_eq!(rest.changes.len(), 1);
        assert_eq!(rest.changes[0].title, "again");
        assert!(!rest.has_more);
        let empty = store.changes(rest.cursor, 2).unwrap();
        assert!(empty.changes.is_empty());
        assert_eq!(empty.cursor, rest.cursor);
        assert_eq!(store.all_tasks().unwrap().len(), 3);
    }

    #[test]
    fn answers_are_recorded_once() {
        let (_dir, store) = open();
        let answer = ProcessedItem {
            client_id: Uuid::from_u128(77),
            server_id: Uuid::from_u128(1),
            status: ItemStatus::Conflict,
            resolved_data: Some(versioned(1, "t").task),
            error: None,
        };
        store
            .write(|conn| BatchWriter::new(conn)?.record_answer(Uuid::from_u128(0xD), &answer))
            .unwrap();
        let (task_id, again) = store
            .write(|conn| BatchWriter::new(conn)?.applied_answer(Uuid::from_u128(77)))
            .unwrap()
            .unwrap();
        assert_eq!(task_id, Uuid::from_u128(1));
        assert_eq!(again, answer);
        assert!(store
            .write(|conn| BatchWriter::new(conn)?.record_answer(Uuid::from_u128(0xD), &answer))
            .is_err());
    }

    #[test]
    fn reopening_keeps_data_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = Store::open(&path, Durability::Full).unwrap();
            store
                .write(|conn| BatchWriter::new(conn)?.save_task(&versioned(5, "kept")))
                .unwrap();
        }
        let store = Store::open(&path, Durability::Full).unwrap();
        assert_eq!(store.all_tasks().unwrap()[0].title, "kept");
        drop(store);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 9)
            .unwrap();
        assert!(matches!(
            Store::open(&path, Durability::Full),
            Err(StoreError::TooNew(9))
        ));
    }
}
