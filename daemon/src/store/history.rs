//! The local history of each task (schema version 3): one row per changed field per change,
//! written in the same transaction as the change by every write path (commands, pulled
//! changes, the server's merged version after a conflict), so that no value is ever
//! unrecoverable, including one that lost Last-Write-Wins (`conflict = 1`, the lost value as
//! `old`). Pruned by age and by count per task ([`PruneHistory`]), never on the hot path.

use rusqlite::{params, Connection, Transaction};
use tasksync_proto::events::FieldValue;
use tasksync_proto::ipc::{HistoryEntry, HistoryOrigin};
use tasksync_proto::lww;
use tasksync_proto::wire::{Field, WireTask};
use tasksync_proto::{Task, TaskPatch, Timestamp};
use uuid::Uuid;

use super::clock::HybridClock;
use super::writer::{Executed, WriteRequest};

/// How many entries a task keeps at most: the newest.
pub(crate) const KEEP_PER_TASK: u32 = 1000;

/// Most entries one read answers: a task never has more than [`KEEP_PER_TASK`] after a
/// prune, and between prunes the newest of them are what matters.
const READ_LIMIT: u32 = KEEP_PER_TASK;

/// One change of one field, as it is written.
pub(crate) struct Change<'a> {
    pub(crate) task_id: Uuid,
    pub(crate) field: Field,
    pub(crate) old: &'a str,
    pub(crate) new: &'a str,
    pub(crate) origin: HistoryOrigin,
    pub(crate) at: Timestamp,
    pub(crate) conflict: bool,
}

/// Appends one entry (a cached statement: this runs on the create and update paths).
pub(crate) fn record(tx: &Transaction<'_>, change: &Change<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO history (task_id, field, old, new, origin, at, conflict)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        change.task_id.to_string(),
        change.field,
        change.old,
        change.new,
        change.origin,
        change.at.to_string(),
        change.conflict
    ])?;
    Ok(())
}

/// Records every field of `after` that differs from `before` (when there was no `before`: the
/// title and each other field that is set, with `old` = `null`; a field left blank, such as
/// no description or not completed, is no change); fields in `lost` are recorded as
/// conflicts.
pub(crate) fn record_diff(
    tx: &Transaction<'_>,
    before: Option<&Task>,
    after: &Task,
    origin: HistoryOrigin,
    lost: &[Field],
) -> rusqlite::Result<()> {
    let after_wire = WireTask::from_task(after, Uuid::nil());
    let (fields, before_wire) = match before {
        Some(before) => {
            let before_wire = WireTask::from_task(before, Uuid::nil());
            (lww::diff(&before_wire, &after_wire), Some(before_wire))
        }
        None => {
            let mut blank = after_wire.clone();
            blank.description = None;
            blank.completed = false;
            blank.is_deleted = false;
            blank.due = None;
            blank.priority = None;
            blank.project = None;
            blank.tags.clear();
            blank.attributes.clear();
            let mut fields = vec![Field::Title];
            fields.extend(lww::diff(&blank, &after_wire));
            (fields, None)
        }
    };
    let values: Vec<(Field, String, String)> = fields
        .into_iter()
        .map(|field| {
            let old = match &before_wire {
                Some(before) => FieldValue::of(before, &field).json().to_string(),
                None => "null".to_string(),
            };
            let new = FieldValue::of(&after_wire, &field).json().to_string();
            (field, old, new)
        })
        .collect();
    let changes: Vec<Change<'_>> = values
        .iter()
        .map(|(field, old, new)| Change {
            task_id: after.id,
            field: field.clone(),
            old,
            new,
            origin,
            at: after.updated_at,
            conflict: lost.contains(field),
        })
        .collect();
    record_all(tx, &changes)
}

/// Appends entries, four in one statement while four remain: fewer statements for a task
/// created with several fields set, or an edit of several fields.
fn record_all(tx: &Transaction<'_>, changes: &[Change<'_>]) -> rusqlite::Result<()> {
    let mut fours = changes.chunks_exact(4);
    for four in &mut fours {
        let owned: Vec<(String, String)> = four
            .iter()
            .map(|change| (change.task_id.to_string(), change.at.to_string()))
            .collect();
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(28);
        for (change, (task_id, at)) in four.iter().zip(&owned) {
            params.extend([
                task_id as &dyn rusqlite::ToSql,
                &change.field,
                &change.old,
                &change.new,
                &change.origin,
                at,
                &change.conflict,
            ]);
        }
        tx.prepare_cached(
            "INSERT INTO history (task_id, field, old, new, origin, at, conflict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7), (?8, ?9, ?10, ?11, ?12, ?13, ?14),
                    (?15, ?16, ?17, ?18, ?19, ?20, ?21), (?22, ?23, ?24, ?25, ?26, ?27, ?28)",
        )?
        .execute(&params[..])?;
    }
    for change in fours.remainder() {
        record(tx, change)?;
    }
    Ok(())
}

/// The entries of `task_id`, newest first.
pub(crate) fn read(conn: &Connection, task_id: Uuid) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, field, old, new, origin, conflict, id FROM history
         WHERE task_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![task_id.to_string(), READ_LIMIT], |row| {
        let at: String = row.get(0)?;
        Ok(HistoryEntry {
            at: at
                .parse()
                .map_err(|e: tasksync_proto::timestamp::TimestampError| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        e.to_string().into(),
                    )
                })?,
            field: row.get(1)?,
            old: row.get(2)?,
            new: row.get(3)?,
            origin: row.get(4)?,
            conflict: row.get(5)?,
            entry: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// The field and the earlier value (JSON text) of entry `entry` of `task_id`, if it exists.
pub(crate) fn entry(
    conn: &Connection,
    task_id: Uuid,
    entry: i64,
) -> rusqlite::Result<Option<(Field, String)>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached("SELECT field, old FROM history WHERE id = ?1 AND task_id = ?2")?
        .query_row(params![entry, task_id.to_string()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
}

/// One local change: its task and, per field it changed, the value before (JSON text).
pub(crate) type LocalChange = (Uuid, Vec<(Field, String)>);

/// This device's last local change (of `task`, or of any task): the one it recorded last,
/// whatever time it says (an import keeps a file's times). One command's change shares one
/// `at`. Found from the newest entry backwards: the table's own order, no index on `at`.
pub(crate) fn last_local_change(
    conn: &Connection,
    task: Option<Uuid>,
) -> rusqlite::Result<Option<LocalChange>> {
    use rusqlite::OptionalExtension;
    let last: Option<(String, String)> = match task {
        Some(task) => conn
            .prepare_cached(
                "SELECT task_id, at FROM history WHERE origin = ?1 AND task_id = ?2
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![HistoryOrigin::Local, task.to_string()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT task_id, at FROM history WHERE origin = ?1 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![HistoryOrigin::Local], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?,
    };
    let Some((task_id, at)) = last else {
        return Ok(None);
    };
    let Ok(id) = Uuid::parse_str(&task_id) else {
        return Ok(None);
    };
    let fields = conn
        .prepare_cached(
            "SELECT field, old FROM history WHERE task_id = ?1 AND at = ?2 AND origin = ?3
             ORDER BY id",
        )?
        .query_map(params![task_id, at, HistoryOrigin::Local], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((id, fields)))
}

/// Adds to `patch` the edit that gives `field` back the value `old` (JSON text), or says why
/// there is none.
pub(crate) fn restore_into(patch: &mut TaskPatch, field: &Field, old: &str) -> Result<(), String> {
    use serde_json::Value;
    let value: Value =
        serde_json::from_str(old).map_err(|e| format!("its earlier value is unreadable: {e}"))?;
    match (field, value) {
        (Field::Due, Value::Null) => patch.due = Some(None),
        (Field::Due, Value::String(due)) => {
            patch.due = Some(Some(due.parse().map_err(|e| format!("{e}"))?))
        }
        (Field::Priority, Value::Null) => patch.priority = Some(None),
        (Field::Priority, Value::String(priority)) => {
            patch.priority = Some(Some(priority.parse().map_err(|e| format!("{e}"))?))
        }
        (Field::Project, Value::Null) => patch.project = Some(None),
        (Field::Project, Value::String(project)) => patch.project = Some(Some(project)),
        (Field::Tag(tag), Value::Bool(true)) => {
            patch.add_tags.insert(tag.clone());
        }
        (Field::Tag(tag), Value::Bool(false)) => {
            patch.remove_tags.insert(tag.clone());
        }
        (Field::Attribute(key), Value::Null) => {
            patch.attributes.insert(key.clone(), None);
        }
        (Field::Attribute(key), Value::String(value)) => {
            patch.attributes.insert(key.clone(), Some(value));
        }
        (Field::Title, Value::String(title)) => patch.title = Some(title),
        (Field::Description, Value::String(text)) => patch.description = Some(Some(text)),
        (Field::Description, Value::Null) => patch.description = Some(None),
        (Field::Completed, Value::Bool(done)) => patch.completed = Some(done),
        (Field::IsDeleted, _) => {
            return Err(
                "a deletion is not undone by a restore (a deleted task stays deleted; \
                        its values stay readable in its history)"
                    .into(),
            )
        }
        (field, Value::Null) => {
            return Err(format!("it made the task: {field} had no earlier value"))
        }
        (field, other) => return Err(format!("{other} is not a value of {field}")),
    }
    Ok(())
}

/// Deletes entries made before `cutoff` and, per task, all but the newest `keep`. Answers
/// how many went.
pub(crate) struct PruneHistory {
    pub(crate) cutoff: Timestamp,
    pub(crate) keep: u32,
}

impl WriteRequest for PruneHistory {
    type Output = u64;

    /// Losing a prune in a crash only means the next one deletes more.
    fn must_be_durable(&self) -> bool {
        false
    }

    fn execute(&self, tx: &Transaction<'_>, _clock: &mut HybridClock) -> Executed<u64> {
        let old = tx
            .prepare_cached("DELETE FROM history WHERE at < ?1")?
            .execute([self.cutoff.to_string()])?;
        let surplus = tx
            .prepare_cached(
                "DELETE FROM history WHERE id IN (
                     SELECT id FROM (
                         SELECT id, row_number() OVER (
                             PARTITION BY task_id ORDER BY at DESC, id DESC) AS n
                         FROM history)
                     WHERE n > ?1)",
            )?
            .execute([self.keep])?;
        Ok(Ok((old + surplus) as u64))
    }
}
