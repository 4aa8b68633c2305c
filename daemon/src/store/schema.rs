//! The SQLite schema, its forward migrations, and the settings every connection runs with.
//!
//! The schema version lives in `PRAGMA user_version`; [`migrate`] applies each missing step in
//! one transaction. Table and column names follow the original design (DESIGN.md section 3).

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

use super::StoreError;

/// Migrations in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE tasks (
    id             TEXT PRIMARY KEY NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT,
    completed      INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    sync_status    TEXT NOT NULL DEFAULT 'pending'
                   CHECK (sync_status IN ('pending', 'in-progress', 'synced', 'error', 'failed')),
    last_synced_at TEXT
) WITHOUT ROWID;
CREATE INDEX tasks_by_created_at ON tasks (created_at);

CREATE TABLE sync_queue (
    id              INTEGER PRIMARY KEY,
    op_id           TEXT NOT NULL UNIQUE,
    task_id         TEXT NOT NULL REFERENCES tasks (id),
    operation       TEXT NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    data            TEXT NOT NULL,
    changed_fields  TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    retry_count     INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'failed'))
);
CREATE INDEX sync_queue_by_task ON sync_queue (task_id, id);
CREATE INDEX sync_queue_by_next_attempt ON sync_queue (next_attempt_at)
    WHERE state = 'pending' AND next_attempt_at IS NOT NULL;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Opens the read-write connection: WAL, `synchronous=FULL`, foreign keys on.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::open(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "cannot switch {} to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read-only connection to a database the writer has already migrated.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::open(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`]. A database from a newer build is refused
/// rather than misread.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this tasksyncd understands ({SCHEMA_VERSION}); upgrade tasksyncd"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if version == 0 {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('device_id', ?1)",
                [uuid::Uuid::now_v7().to_string()],
            )?;
        }
        tx.pragma_update(None, "user_version", version as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless_and_sets_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open_writer(&path).unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let devices: u32 = conn
            .query_row(
                "SELECT count(*) FROM meta WHERE key = 'device_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(devices, 1);
        let fk: u32 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let sync: u32 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open_writer(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
