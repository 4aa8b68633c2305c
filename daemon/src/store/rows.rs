//! Conversions between SQLite rows and the proto types.

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::Row;
use tasksync_proto::ipc::{QueueEntry, QueueState};
use tasksync_proto::wire::Field;
use tasksync_proto::{Task, Timestamp};
use uuid::Uuid;

/// The column list every task query selects, in the order [`task_from_row`] reads.
pub(crate) const TASK_COLUMNS: &str =
    "id, title, description, completed, created_at, updated_at, is_deleted, sync_status, last_synced_at, number, due, priority, project, tags, attributes";

/// An operation in the sync queue: what `taskctl queue` shows of it (`entry`, whose state
/// is never in flight here: only the sync engine knows that), its order and its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedOp {
    /// Local sequence number: the order operations were made in.
    pub(crate) seq: i64,
    /// The full task after the operation, as JSON.
    pub(crate) data: String,
    /// Per changed field, the value the operation replaced, as a JSON object (none for a
    /// create, and for operations queued before schema version 5).
    pub(crate) base: Option<String>,
    pub(crate) entry: QueueEntry,
}

pub(crate) const QUEUE_COLUMNS: &str =
    "id, op_id, task_id, operation, data, changed_fields, created_at, retry_count, error_message, state, next_attempt_at, base";

fn corrupt(column: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        what.to_string().into(),
    )
}

fn uuid_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(column)?;
    Uuid::parse_str(&text).map_err(|e| corrupt(column, e))
}

fn timestamp_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Timestamp> {
    let text: String = row.get(column)?;
    text.parse().map_err(|e| corrupt(column, e))
}

fn optional_timestamp_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Timestamp>> {
    let text: Option<String> = row.get(column)?;
    text.map(|t| t.parse().map_err(|e| corrupt(column, e)))
        .transpose()
}

/// Reads a task from a row selected with [`TASK_COLUMNS`].
pub(crate) fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: uuid_at(row, 0)?,
        title: row.get(1)?,
        description: row.get(2)?,
        completed: row.get(3)?,
        created_at: timestamp_at(row, 4)?,
        updated_at: timestamp_at(row, 5)?,
        is_deleted: row.get(6)?,
        sync_status: row.get(7)?,
        last_synced_at: optional_timestamp_at(row, 8)?,
        number: row.get(9)?,
        due: optional_timestamp_at(row, 10)?,
        priority: row.get(11)?,
        project: row.get(12)?,
        tags: json_at(row, 13)?,
        attributes: json_at(row, 14)?,
    })
}

fn json_at<T: serde::de::DeserializeOwned>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

/// The columns of a task's fields beyond the first ones, as [`task_from_row`] reads them:
/// `due`, `priority`, `project`, `tags`, `attributes`.
pub(crate) struct ExtraColumns {
    pub(crate) due: Option<String>,
    pub(crate) priority: Option<tasksync_proto::Priority>,
    pub(crate) project: Option<String>,
    pub(crate) tags: String,
    pub(crate) attributes: String,
}

impl ExtraColumns {
    pub(crate) fn of(task: &Task) -> rusqlite::Result<ExtraColumns> {
        Ok(ExtraColumns {
            due: task.due.map(|due| due.to_string()),
            priority: task.priority,
            project: task.project.clone(),
            tags: to_json(&task.tags)?,
            attributes: to_json(&task.attributes)?,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The `changed_fields` column: a JSON array of field names.
pub(crate) fn fields_to_json(fields: &[Field]) -> rusqlite::Result<String> {
    serde_json::to_string(fields).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Reads a `changed_fields` column written by [`fields_to_json`].
pub(crate) fn fields_from_json(text: &str) -> serde_json::Result<Vec<Field>> {
    serde_json::from_str(text)
}

/// Reads a queue entry from a row selected with [`QUEUE_COLUMNS`].
pub(crate) fn queued_op_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedOp> {
    Ok(QueuedOp {
        seq: row.get(0)?,
        data: row.get(4)?,
        base: row.get(11)?,
        entry: QueueEntry {
            id: uuid_at(row, 1)?,
            task_id: uuid_at(row, 2)?,
            operation: row.get(3)?,
            changed_fields: fields_from_json(&row.get::<_, String>(5)?)
                .map_err(|e| corrupt(5, e))?,
            created_at: timestamp_at(row, 6)?,
            retry_count: row.get(7)?,
            error_message: row.get(8)?,
            state: row.get(9)?,
            next_attempt_at: optional_timestamp_at(row, 10)?,
        },
    })
}

/// The next operations to send, oldest first, at most one per task: each task's earliest
/// queued row, if it is pending, not in `exclude` (rows in flight, and rows that already had
/// their attempt in this round) and its retry delay is over, or `force` ignores the delay. A
/// retry time more than `longest_wait` away was set by a clock that has since gone back (no
/// delay is that long): such a row is due at once rather than stuck for the size of the jump. A
/// task's later rows wait until its earlier ones are accepted, so its operations reach the
/// server in order; rows in flight block their task the same way.
pub(crate) fn select_next_batch(
    conn: &rusqlite::Connection,
    limit: usize,
    now: Timestamp,
    longest_wait: Duration,
    force: bool,
    exclude: &HashSet<i64>,
) -> rusqlite::Result<Vec<QueuedOp>> {
    let latest = Timestamp::from_millis(
        now.as_millis()
            .saturating_add(i64::try_from(longest_wait.as_millis()).unwrap_or(i64::MAX)),
    )
    .unwrap_or(now);
    // Each excluded row takes at most one place among the candidates: skipping them here,
    // before a row is decoded, beats sending the set to SQLite.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {QUEUE_COLUMNS} FROM sync_queue AS q
         WHERE q.state = ?4
           AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= ?1 OR q.next_attempt_at > ?5 OR ?2)
           AND NOT EXISTS (SELECT 1 FROM sync_queue AS e WHERE e.task_id = q.task_id AND e.id < q.id)
         ORDER BY q.id LIMIT ?3"
    ))?;
    let mut rows = stmt.query(rusqlite::params![
        now.to_string(),
        force,
        (limit + exclude.len()) as i64,
        QueueState::Pending,
        latest.to_string()
    ])?;
    let mut batch = Vec::with_capacity(limit.min(1024));
    while batch.len() < limit {
        let Some(row) = rows.next()? else { break };
        if !exclude.contains(&row.get(0)?) {
            batch.push(queued_op_from_row(row)?);
        }
    }
    Ok(batch)
}
