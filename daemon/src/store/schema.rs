//! The SQLite schema, its forward migrations, and the settings every connection runs with.
//!
//! The schema version lives in `PRAGMA user_version`; [`migrate`] applies each missing step in
//! one transaction. Table and column names follow the original challenge's design.

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

use super::StoreError;

/// The body of the triggers that give a task entering the working set its number: the next
/// free one (see `next_task_number`), taken out of `freed_numbers` if it came from there.
macro_rules! give_number {
    () => {
        r#"BEGIN
    UPDATE tasks SET number = (SELECT number FROM next_task_number)
     WHERE id = NEW.id AND (SELECT number FROM next_task_number) <= 999999;
    DELETE FROM freed_numbers WHERE number = (SELECT number FROM tasks WHERE id = NEW.id);
END;
"#
    };
}

/// The view and the triggers of working-set numbers (see [`NUMBERS`]); made again whenever
/// `tasks` is rebuilt.
macro_rules! numbering {
    () => {
        concat!(
            r#"
CREATE VIEW next_task_number AS
SELECT COALESCE(
    (SELECT min(number) FROM freed_numbers WHERE reusable = 1),
    max(COALESCE((SELECT max(number) FROM tasks WHERE number IS NOT NULL), 0),
        COALESCE((SELECT max(number) FROM freed_numbers), 0)) + 1) AS number;

CREATE TRIGGER tasks_number_on_insert AFTER INSERT ON tasks
WHEN NEW.completed = 0 AND NEW.is_deleted = 0 AND NEW.number IS NULL
"#,
            give_number!(),
            r#"
CREATE TRIGGER tasks_number_on_return AFTER UPDATE OF completed, is_deleted ON tasks
WHEN NEW.completed = 0 AND NEW.is_deleted = 0 AND NEW.number IS NULL
"#,
            give_number!(),
            r#"
CREATE TRIGGER tasks_number_on_leave AFTER UPDATE OF completed, is_deleted ON tasks
WHEN NEW.number IS NOT NULL AND (NEW.completed = 1 OR NEW.is_deleted = 1)
BEGIN
    INSERT OR REPLACE INTO freed_numbers (number, reusable) VALUES (NEW.number, 0);
    UPDATE tasks SET number = NULL WHERE id = NEW.id;
END;

CREATE TRIGGER tasks_number_on_delete AFTER DELETE ON tasks
WHEN OLD.number IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO freed_numbers (number, reusable) VALUES (OLD.number, 0);
END;
"#
        )
    };
}

/// Migrations in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    NUMBERS,
    HISTORY,
    FIELDS,
    BASES,
    LIGHTER_WRITES,
];

/// Version 6: lighter writes, which every change pays for on its hot path (a pull of many
/// new tasks most).
///
/// - The index on `history.at` served only the prune by age, which reads the whole table for
///   the count per task anyway, and the search for the last local change, which now goes by
///   the table's own order. The by-task index keeps the task id alone (a task's at most 1,000
///   entries are sorted when read), a third smaller: random task ids spread a pull's new
///   entries over most of its leaves in every transaction.
/// - A CHECK of `x IN (three or more constants)` makes SQLite build a temporary table each
///   time it runs: on every INSERT, and on every UPDATE of the column (a task's sync state
///   changes with every batch). The same checks written as `=` comparisons cost nothing.
///   `history`, `tasks` and `sync_queue` are rebuilt with them, keeping every row, its id and
///   its number. The queue is set aside while `tasks` is rebuilt (nothing may refer to a
///   table that is dropped while foreign keys are on), and the working-set numbering (view
///   and triggers) is made again on the new table.
const LIGHTER_WRITES: &str = concat!(
    r#"
CREATE TABLE history_v6 (
    id       INTEGER PRIMARY KEY,
    task_id  TEXT NOT NULL,
    field    TEXT NOT NULL CHECK (
                 field = 'title' OR field = 'description' OR field = 'completed'
                 OR field = 'is_deleted' OR field = 'due' OR field = 'priority'
                 OR field = 'project' OR field LIKE 'tag:_%' OR field LIKE 'attribute:_%'),
    old      TEXT NOT NULL,
    new      TEXT NOT NULL,
    origin   TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
    at       TEXT NOT NULL,
    conflict INTEGER NOT NULL DEFAULT 0 CHECK (conflict IN (0, 1))
);
INSERT INTO history_v6 (id, task_id, field, old, new, origin, at, conflict)
    SELECT id, task_id, field, old, new, origin, at, conflict FROM history;
DROP TABLE history;
ALTER TABLE history_v6 RENAME TO history;
CREATE INDEX history_by_task ON history (task_id);

CREATE TABLE queue_set_aside AS SELECT * FROM sync_queue;
DROP TABLE sync_queue;
DROP VIEW next_task_number;

CREATE TABLE tasks_v6 (
    id             TEXT PRIMARY KEY NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT,
    completed      INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    sync_status    TEXT NOT NULL DEFAULT 'pending'
                   CHECK (sync_status = 'pending' OR sync_status = 'in-progress'
                          OR sync_status = 'synced' OR sync_status = 'error'
                          OR sync_status = 'failed'),
    last_synced_at TEXT,
    number         INTEGER,
    due            TEXT,
    priority       TEXT CHECK (priority = 'H' OR priority = 'M' OR priority = 'L'),
    project        TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    attributes     TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
INSERT INTO tasks_v6 (id, title, description, completed, created_at, updated_at, is_deleted,
                      sync_status, last_synced_at, number, due, priority, project, tags,
                      attributes)
    SELECT id, title, description, completed, created_at, updated_at, is_deleted, sync_status,
           last_synced_at, number, due, priority, project, tags, attributes
      FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_v6 RENAME TO tasks;
CREATE INDEX tasks_by_created_at ON tasks (created_at);
CREATE UNIQUE INDEX tasks_by_number ON tasks (number) WHERE number IS NOT NULL;
CREATE INDEX tasks_by_due ON tasks (due) WHERE due IS NOT NULL;
"#,
    numbering!(),
    r#"
CREATE TABLE sync_queue (
    id              INTEGER PRIMARY KEY,
    op_id           TEXT NOT NULL UNIQUE,
    task_id         TEXT NOT NULL REFERENCES tasks (id),
    operation       TEXT NOT NULL
                    CHECK (operation = 'create' OR operation = 'update' OR operation = 'delete'),
    data            TEXT NOT NULL,
    changed_fields  TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    retry_count     INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    base            TEXT
);
INSERT INTO sync_queue (id, op_id, task_id, operation, data, changed_fields, created_at,
                        retry_count, error_message, next_attempt_at, last_attempt_at, state,
                        base)
    SELECT id, op_id, task_id, operation, data, changed_fields, created_at, retry_count,
           error_message, next_attempt_at, last_attempt_at, state, base
      FROM queue_set_aside;
DROP TABLE queue_set_aside;
CREATE INDEX sync_queue_by_task ON sync_queue (task_id, id);
CREATE INDEX sync_queue_by_next_attempt ON sync_queue (next_attempt_at)
    WHERE state = 'pending' AND next_attempt_at IS NOT NULL;
"#
);

/// Version 5: each queued operation keeps, per changed field, the value it replaced (its
/// `base`, a JSON object), which the server needs to tell a concurrent edit from a later one.
/// Operations queued before have none, and meet no conflict on the server.
const BASES: &str = r#"
ALTER TABLE sync_queue ADD COLUMN base TEXT;
"#;

/// Version 4: the fields of section 3a of the task (docs/LOCAL-API.md, "A task"). Existing
/// tasks have none of them: no due date, priority or project, no tags or attributes. `due` is
/// RFC 3339 text like every timestamp here, so it sorts in time order; tags and attributes
/// are JSON (an array, sorted; an object). The history's `field` takes their names too
/// (`tag:<tag>`, `attribute:<key>`): its table is rebuilt with the wider check, keeping every
/// entry and its number.
const FIELDS: &str = r#"
ALTER TABLE tasks ADD COLUMN due TEXT;
ALTER TABLE tasks ADD COLUMN priority TEXT CHECK (priority IN ('H', 'M', 'L'));
ALTER TABLE tasks ADD COLUMN project TEXT;
ALTER TABLE tasks ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
CREATE INDEX tasks_by_due ON tasks (due) WHERE due IS NOT NULL;
CREATE TABLE history_v4 (
    id       INTEGER PRIMARY KEY,
    task_id  TEXT NOT NULL,
    field    TEXT NOT NULL CHECK (
                 field IN ('title', 'description', 'completed', 'is_deleted', 'due', 'priority',
                           'project')
                 OR field LIKE 'tag:_%' OR field LIKE 'attribute:_%'),
    old      TEXT NOT NULL,
    new      TEXT NOT NULL,
    origin   TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
    at       TEXT NOT NULL,
    conflict INTEGER NOT NULL DEFAULT 0 CHECK (conflict IN (0, 1))
);
INSERT INTO history_v4 (id, task_id, field, old, new, origin, at, conflict)
    SELECT id, task_id, field, old, new, origin, at, conflict FROM history;
DROP TABLE history;
ALTER TABLE history_v4 RENAME TO history;
CREATE INDEX history_by_task ON history (task_id, at, id);
CREATE INDEX history_by_at ON history (at);
"#;

/// Version 3: the local history of each task (see `history.rs`): one row per changed field
/// per change, its old and new value as JSON text. No foreign key: an entry costs no lookup
/// of its task, and entries go by age and count, not with their task. Existing tasks start
/// with an empty history.
const HISTORY: &str = r#"
CREATE TABLE history (
    id       INTEGER PRIMARY KEY,
    task_id  TEXT NOT NULL,
    field    TEXT NOT NULL CHECK (field IN ('title', 'description', 'completed', 'is_deleted')),
    old      TEXT NOT NULL,
    new      TEXT NOT NULL,
    origin   TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
    at       TEXT NOT NULL,
    conflict INTEGER NOT NULL DEFAULT 0 CHECK (conflict IN (0, 1))
);
CREATE INDEX history_by_task ON history (task_id, at, id);
CREATE INDEX history_by_at ON history (at);
"#;

/// Version 2: working-set numbers (README, "Naming tasks"), kept by triggers so that every
/// path that writes `tasks` (commands, the HTTP API, pulled and merged tasks) keeps them
/// right without knowing about them. A local create numbers its task in its INSERT through
/// the same view instead (see `commands::CreateTask`), which the insert trigger lets be.
///
/// - `tasks.number` is set exactly while a task is neither completed nor deleted, and unique.
/// - A task that leaves the set puts its number in `freed_numbers` (not yet reusable); one
///   that enters gets the lowest reusable freed number, else one above every number in use
///   or freed. Numbers stop at 999,999 (six digits): past that a task has none.
/// - `ReleaseNumbers` (sent after a listing of the whole set) marks freed numbers reusable.
///
/// Existing tasks of the set are numbered oldest first.
const NUMBERS: &str = concat!(
    r#"
ALTER TABLE tasks ADD COLUMN number INTEGER;
CREATE UNIQUE INDEX tasks_by_number ON tasks (number) WHERE number IS NOT NULL;

CREATE TABLE freed_numbers (
    number   INTEGER PRIMARY KEY,
    reusable INTEGER NOT NULL DEFAULT 0 CHECK (reusable IN (0, 1))
);

WITH ranked AS (
    SELECT id, row_number() OVER (ORDER BY created_at, id) AS n
    FROM tasks WHERE completed = 0 AND is_deleted = 0
)
UPDATE tasks SET number = ranked.n FROM ranked WHERE ranked.id = tasks.id AND ranked.n <= 999999;

"#,
    numbering!()
);

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Opens the read-write connection: WAL, `synchronous=FULL`, foreign keys on, statement
/// journals in memory, a 16 MiB page cache.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::open(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    // A statement that may fail halfway (several rows, triggers) journals the pages it
    // touches; in memory rather than in a temporary file, and a page cache that holds a pull
    // page's working set, so a large transaction neither writes pages twice nor reads back
    // the ones it spilled (both showed as the largest costs of a pull in a profile).
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read-only connection to a database the writer has already migrated.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
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
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if version == 0 {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('device_id', ?1)",
                [crate::entropy::new_id().to_string()],
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

    /// A database left at `version` by an older build.
    fn at_version(path: &Path, version: usize) -> Connection {
        let conn = open_writer(path).unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as u32)
            .unwrap();
        conn
    }

    fn numbers(conn: &Connection) -> Vec<(String, Option<u32>)> {
        let mut stmt = conn
            .prepare("SELECT title, number FROM tasks ORDER BY title")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn insert(conn: &Connection, title: &str, created: &str, completed: bool, deleted: bool) {
        conn.execute(
            "INSERT INTO tasks (id, title, created_at, updated_at, completed, is_deleted)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
            rusqlite::params![
                uuid::Uuid::now_v7().to_string(),
                title,
                created,
                completed,
                deleted
            ],
        )
        .unwrap();
    }

    #[test]
    fn the_numbers_migration_numbers_the_working_set_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = at_version(&path, 1);
        insert(&conn, "b", "2026-01-02T00:00:00.000Z", false, false);
        insert(&conn, "a", "2026-01-01T00:00:00.000Z", false, false);
        insert(&conn, "done", "2026-01-01T00:00:00.000Z", true, false);
        insert(&conn, "gone", "2026-01-01T00:00:00.000Z", false, true);
        migrate(&mut conn).unwrap();
        let expected = [
            ("a".to_string(), Some(1)),
            ("b".into(), Some(2)),
            ("done".into(), None),
            ("gone".into(), None),
        ];
        assert_eq!(numbers(&conn), expected);
    }

    #[test]
    fn triggers_hold_freed_numbers_until_released_and_number_arrivals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open_writer(&path).unwrap();
        migrate(&mut conn).unwrap();
        let t = "2026-01-01T00:00:00.000Z";
        insert(&conn, "a", t, false, false);
        insert(&conn, "b", t, false, false);
        insert(&conn, "c", t, false, false);
        insert(&conn, "arrived done", t, true, false);
        conn.execute("UPDATE tasks SET completed = 1 WHERE title = 'a'", [])
            .unwrap();
        conn.execute("UPDATE tasks SET is_deleted = 1 WHERE title = 'b'", [])
            .unwrap();
        insert(&conn, "d", t, false, false);
        let got = numbers(&conn);
        assert_eq!(got[0], ("a".into(), None));
        assert_eq!(got[2], ("b".into(), None));
        assert_eq!(got[3], ("c".into(), Some(3)), "stable while in the set");
        assert_eq!(got[4], ("d".into(), Some(4)), "freed 1 and 2 are held");
        // A listing showed 3 and 4: 1 and 2 become reusable, lowest first.
        conn.execute(
            "UPDATE freed_numbers SET reusable = 1 WHERE number NOT IN (3, 4)",
            [],
        )
        .unwrap();
        insert(&conn, "e", t, false, false);
        conn.execute("UPDATE tasks SET completed = 0 WHERE title = 'a'", [])
            .unwrap();
        // An upsert that rewrites the flags of a task in the set keeps its number.
        conn.execute(
            "UPDATE tasks SET completed = 0, is_deleted = 0 WHERE title = 'c'",
            [],
        )
        .unwrap();
        let got = numbers(&conn);
        assert_eq!(got[5], ("e".into(), Some(1)));
        assert_eq!(got[4], ("d".into(), Some(4)));
        assert_eq!(got[0], ("a".into(), Some(2)), "undone: back in the set");
        assert_eq!(got[3], ("c".into(), Some(3)));
        let held: u32 = conn
            .query_row("SELECT count(*) FROM freed_numbers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, 0);
    }

    #[test]
    fn the_history_migration_keeps_every_task_and_queue_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = at_version(&path, 2);
        insert(&conn, "a", "2026-01-01T00:00:00.000Z", false, false);
        let id: String = conn
            .query_row("SELECT id FROM tasks", [], |r| r.get(0))
            .unwrap();
        conn.execute(
            "INSERT INTO sync_queue (op_id, task_id, operation, data, changed_fields, created_at)
             VALUES ('op', ?1, 'create', '{}', '[]', '2026-01-01T00:00:00.000Z')",
            [&id],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(numbers(&conn), [("a".to_string(), Some(1))]);
        let (queued, history): (u32, u32) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM sync_queue), (SELECT count(*) FROM history)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((queued, history), (1, 0));
    }

    #[test]
    fn the_fields_migration_keeps_tasks_queue_and_history_and_widens_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = at_version(&path, 3);
        insert(&conn, "a", "2026-01-01T00:00:00.000Z", false, false);
        let id: String = conn
            .query_row("SELECT id FROM tasks", [], |r| r.get(0))
            .unwrap();
        conn.execute(
            "INSERT INTO history (task_id, field, old, new, origin, at)
             VALUES (?1, 'title', 'null', '\"a\"', 'local', '2026-01-01T00:00:00.000Z')",
            [&id],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let (title, tags, attributes, due): (String, String, String, Option<String>) = conn
            .query_row("SELECT title, tags, attributes, due FROM tasks", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!(
            (title.as_str(), tags.as_str(), attributes.as_str(), due),
            ("a", "[]", "{}", None)
        );
        let (entries, first): (u32, i64) = conn
            .query_row("SELECT count(*), min(id) FROM history", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((entries, first), (1, 1));
        for field in ["tag:shop", "attribute:app.x", "due"] {
            conn.execute(
                "INSERT INTO history (task_id, field, old, new, origin, at)
                 VALUES (?1, ?2, 'null', 'true', 'local', '2026-01-02T00:00:00.000Z')",
                [&id, field],
            )
            .unwrap();
        }
        assert!(conn
            .execute(
                "INSERT INTO history (task_id, field, old, new, origin, at)
                 VALUES (?1, 'colour', 'null', 'true', 'local', '2026-01-02T00:00:00.000Z')",
                [&id],
            )
            .is_err());
    }

    /// How many temporary tables SQLite builds to run `sql` (each a cost on every run).
    fn temporary_tables(conn: &Connection, sql: &str) -> usize {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let opcodes: Vec<String> = stmt
            .query_map([], |r| r.get(1))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        opcodes.iter().filter(|op| *op == "OpenEphemeral").count()
    }

    #[test]
    fn the_lighter_writes_migration_keeps_every_row_its_id_and_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = at_version(&path, 5);
        let t = "2026-01-01T00:00:00.000Z";
        insert(&conn, "a", t, false, false);
        insert(&conn, "b", t, false, false);
        insert(&conn, "done", t, false, false);
        conn.execute(
            "UPDATE tasks SET completed = 1, priority = 'H', tags = '[\"x\"]' WHERE title = 'done'",
            [],
        )
        .unwrap();
        let id: String = conn
            .query_row("SELECT id FROM tasks WHERE title = 'a'", [], |r| r.get(0))
            .unwrap();
        let numbered = numbers(&conn);
        type Row = (String, String, bool, Option<String>, String, Option<u32>);
        let rows = |conn: &Connection| -> Vec<Row> {
            conn.prepare(
                "SELECT id, title, completed, priority, tags, number FROM tasks ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
        };
        let tasks_before = rows(&conn);
        conn.execute(
            "INSERT INTO history (id, task_id, field, old, new, origin, at, conflict)
             VALUES (7, ?1, 'tag:x', 'false', 'true', 'remote', '2026-01-01T00:00:00.000Z', 1)",
            [&id],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sync_queue (id, op_id, task_id, operation, data, changed_fields,
                                     created_at, retry_count, state, base)
             VALUES (9, 'op', ?1, 'update', '{}', '[\"title\"]', '2026-01-01T00:00:00.000Z', 2,
                     'failed', '{\"title\":\"a\"}')",
            [&id],
        )
        .unwrap();
        let history_insert = "INSERT INTO history (task_id, field, old, new, origin, at, conflict)
                              VALUES ('t', 'title', 'null', '\"a\"', 'local', 'now', 0)";
        let queue_insert = "INSERT INTO sync_queue (op_id, task_id, operation, data,
                                                    changed_fields, created_at)
                            VALUES ('o', 't', 'create', '{}', '[]', 'now')";
        let task_insert = "INSERT INTO tasks (id, title, created_at, updated_at, sync_status,
                                              priority)
                           VALUES ('t', 'x', 'now', 'now', 'synced', 'H')";
        let status_update = "UPDATE tasks SET sync_status = 'synced' WHERE id = 't'";
        assert_eq!(temporary_tables(&conn, history_insert), 1);
        assert_eq!(temporary_tables(&conn, queue_insert), 1);
        assert_eq!(temporary_tables(&conn, task_insert), 2);
        assert_eq!(temporary_tables(&conn, status_update), 1);
        migrate(&mut conn).unwrap();
        assert_eq!(rows(&conn), tasks_before);
        assert_eq!(numbers(&conn), numbered);
        for sql in [history_insert, queue_insert, task_insert, status_update] {
            assert_eq!(temporary_tables(&conn, sql), 0, "{sql}");
        }
        // The numbering triggers live on: a task that leaves the set frees its number, one
        // that arrives takes the next.
        conn.execute("UPDATE tasks SET is_deleted = 1 WHERE title = 'b'", [])
            .unwrap();
        insert(&conn, "c", t, false, false);
        let after: Vec<_> = numbers(&conn)
            .into_iter()
            .filter(|(_, n)| n.is_some())
            .collect();
        assert_eq!(
            after,
            [("a".to_string(), Some(1)), ("c".to_string(), Some(4))]
        );
        let entry: (i64, String, String, bool) = conn
            .query_row(
                "SELECT id, task_id, field, conflict FROM history",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(entry, (7, id.clone(), "tag:x".into(), true));
        let queued: (i64, String, u32, String, Option<String>) = conn
            .query_row(
                "SELECT id, task_id, retry_count, state, base FROM sync_queue",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            queued,
            (
                9,
                id.clone(),
                2,
                "failed".into(),
                Some("{\"title\":\"a\"}".into())
            )
        );
        assert_eq!(temporary_tables(&conn, history_insert), 0);
        assert_eq!(temporary_tables(&conn, queue_insert), 0);
        // The checks still hold, and the queue still refers to its tasks.
        for bad in [
            "INSERT INTO history (task_id, field, old, new, origin, at)
             VALUES ('t', 'colour', 'null', 'true', 'local', 'now')",
            "INSERT INTO sync_queue (op_id, task_id, operation, data, changed_fields, created_at)
             VALUES ('o2', 'no such task', 'create', '{}', '[]', 'now')",
        ] {
            assert!(conn.execute(bad, []).is_err(), "{bad}");
        }
        let bad_operation = conn.execute(
            "INSERT INTO sync_queue (op_id, task_id, operation, data, changed_fields, created_at)
             VALUES ('o3', ?1, 'merge', '{}', '[]', 'now')",
            [&id],
        );
        assert!(bad_operation.is_err());
        let bad_status = conn.execute("UPDATE tasks SET sync_status = 'lost' WHERE id = ?1", [&id]);
        assert!(bad_status.is_err());
        let bad_priority = conn.execute("UPDATE tasks SET priority = 'X' WHERE id = ?1", [&id]);
        assert!(bad_priority.is_err());
        let leftovers: u32 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%v6' OR name = 'queue_set_aside'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leftovers, 0);
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema
                 WHERE type IN ('index', 'trigger', 'view') AND sql IS NOT NULL
                 ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "history_by_task",
                "next_task_number",
                "sync_queue_by_next_attempt",
                "sync_queue_by_task",
                "tasks_by_created_at",
                "tasks_by_due",
                "tasks_by_number",
                "tasks_number_on_delete",
                "tasks_number_on_insert",
                "tasks_number_on_leave",
                "tasks_number_on_return",
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open_writer(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
