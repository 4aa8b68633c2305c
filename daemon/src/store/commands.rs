//! Users' commands (create, update, delete, release numbers) as writer requests.
//!
//! Each change updates `tasks` and appends the full task after the operation to `sync_queue`,
//! with the fields it changed (docs/SYNC-PROTOCOL.md, section 5), and each changed field to
//! the task's history (see `history.rs`), all in the same transaction.

use rusqlite::{params, OptionalExtension, Transaction};
use tasksync_proto::events::FieldValue;
use tasksync_proto::ipc::HistoryOrigin;
use tasksync_proto::lww;
use tasksync_proto::wire::{Field, Operation, WireTask};
use tasksync_proto::{NewTask, SyncStatus, Task, TaskPatch};
use uuid::Uuid;

use super::clock::HybridClock;
use super::history;
use super::rows::{fields_to_json, task_from_row, ExtraColumns, TASK_COLUMNS};
use super::writer::{Executed, WriteRequest};
use super::StoreError;

/// Creates a task (with a client-chosen id when `id` is set) and queues its `create`.
/// Answers the task and whether it was made now: a retried create whose task exists with the
/// same title and description answers that task and `false`, writing nothing.
pub(crate) struct CreateTask(pub NewTask);

/// Changes a live task and queues an `update` naming the changed fields.
pub(crate) struct UpdateTask {
    pub(crate) id: Uuid,
    pub(crate) patch: TaskPatch,
    /// The entity tag the task must still have (`If-Match`).
    pub(crate) if_match: Option<String>,
}

/// Soft-deletes a live task and queues a `delete`.
pub(crate) struct DeleteTask {
    pub(crate) id: Uuid,
    /// The entity tag the task must still have (`If-Match`).
    pub(crate) if_match: Option<String>,
}

/// Refuses a change made against an entity tag the task no longer has (`*` matches any).
fn precondition(task: &Task, if_match: Option<&str>) -> Result<(), StoreError> {
    match if_match {
        Some(tags) => {
            let current = task.etag();
            let matches = tags
                .split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == "*" || tag == current);
            if matches {
                Ok(())
            } else {
                Err(StoreError::PreconditionFailed {
                    id: task.id,
                    current,
                })
            }
        }
        None => Ok(()),
    }
}

/// A listing showed the whole working set with these numbers: makes the freed numbers that
/// are not among them reusable; answers how many became reusable.
pub(crate) struct ReleaseNumbers(pub Vec<u32>);

impl WriteRequest for CreateTask {
    type Output = (Task, bool);

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<(Task, bool)> {
        let new = &self.0;
        if let Some(id) = new.id {
            if let Some(existing) = load(tx, id)? {
                let same = existing.title == new.title
                    && existing.description == new.description
                    && existing.due == new.due
                    && existing.priority == new.priority
                    && existing.project == new.project
                    && existing.tags == new.tags
                    && existing.attributes == new.attributes;
                return Ok(if same {
                    Ok((existing, false))
                } else {
                    Err(StoreError::Conflict(format!(
                        "task {id} already exists with other content"
                    )))
                });
            }
        }
        let now = match clock.tick() {
            Ok(now) => now,
            Err(e) => return Ok(Err(e.into())),
        };
        let mut task = Task {
            id: new.id.unwrap_or_else(crate::entropy::new_id),
            title: new.title.clone(),
            description: new.description.clone(),
            completed: false,
            created_at: now,
            updated_at: now,
            is_deleted: false,
            sync_status: SyncStatus::Pending,
            last_synced_at: None,
            number: None,
            due: new.due,
            priority: new.priority,
            project: new.project.clone(),
            tags: new.tags.clone(),
            attributes: new.attributes.clone(),
        };
        task.number = insert_numbered(tx, &task)?;
        let fields = Field::all_of(&WireTask::from_task(&task, Uuid::nil()));
        enqueue(tx, &task, Operation::Create, &fields, None)?;
        history::record_diff(tx, None, &task, HistoryOrigin::Local, &[])?;
        Ok(Ok((task, true)))
    }
}

impl WriteRequest for UpdateTask {
    /// The task, and the fields the patch changed (none: nothing was written or queued).
    type Output = (Task, Vec<Field>);

    fn execute(
        &self,
        tx: &Transaction<'_>,
        clock: &mut HybridClock,
    ) -> Executed<(Task, Vec<Field>)> {
        let (id, patch) = (self.id, &self.patch);
        let Some(mut task) = load_live(tx, id)? else {
            return Ok(Err(StoreError::NotFound(id.to_string())));
        };
        if let Err(e) = precondition(&task, self.if_match.as_deref()) {
            return Ok(Err(e));
        }
        let before = task.clone();
        // Only values that differ count: a patch that changes nothing leaves the task, its
        // clock, the queue and the history as they are (a retried PUT cannot win LWW against
        // a real edit).
        if let Err(e) = patch.apply(&mut task) {
            return Ok(Err(e.into()));
        }
        let changed = lww::diff(
            &WireTask::from_task(&before, Uuid::nil()),
            &WireTask::from_task(&task, Uuid::nil()),
        );
        if changed.is_empty() {
            return Ok(Ok((before, changed)));
        }
        task.updated_at = match clock.tick() {
            Ok(now) => now,
            Err(e) => return Ok(Err(e.into())),
        };
        task.sync_status = SyncStatus::Pending;
        write_content(tx, &task)?;
        task.number = number_of(tx, task.id)?;
        enqueue(tx, &task, Operation::Update, &changed, Some(&before))?;
        history::record_diff(tx, Some(&before), &task, HistoryOrigin::Local, &[])?;
        Ok(Ok((task, changed)))
    }
}

impl WriteRequest for DeleteTask {
    type Output = Task;

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<Task> {
        let id = self.id;
        let Some(mut task) = load_live(tx, id)? else {
            return Ok(Err(StoreError::NotFound(id.to_string())));
        };
        if let Err(e) = precondition(&task, self.if_match.as_deref()) {
            return Ok(Err(e));
        }
        let before = task.clone();
        task.is_deleted = true;
        task.updated_at = match clock.tick() {
            Ok(now) => now,
            Err(e) => return Ok(Err(e.into())),
        };
        task.sync_status = SyncStatus::Pending;
        tx.prepare_cached(
            "UPDATE tasks SET is_deleted = 1, updated_at = ?2, sync_status = ?3 WHERE id = ?1",
        )?
        .execute(params![
            id.to_string(),
            task.updated_at.to_string(),
            SyncStatus::Pending
        ])?;
        task.number = None;
        enqueue(
            tx,
            &task,
            Operation::Delete,
            &[Field::IsDeleted],
            Some(&before),
        )?;
        history::record(
            tx,
            &history::Change {
                task_id: id,
                field: Field::IsDeleted,
                old: "false",
                new: "true",
                origin: HistoryOrigin::Local,
                at: task.updated_at,
                conflict: false,
            },
        )?;
        Ok(Ok(task))
    }
}

impl WriteRequest for ReleaseNumbers {
    type Output = u64;

    /// Losing it in a crash only delays the reuse of a number.
    fn must_be_durable(&self) -> bool {
        false
    }

    fn execute(&self, tx: &Transaction<'_>, _clock: &mut HybridClock) -> Executed<u64> {
        let shown = serde_json::to_string(&self.0)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let released = tx
            .prepare_cached(
                "UPDATE freed_numbers SET reusable = 1
                 WHERE reusable = 0 AND number NOT IN (SELECT value FROM json_each(?1))",
            )?
            .execute([shown])?;
        Ok(Ok(released as u64))
    }
}

/// Inserts a task this device did not have, numbering it in the INSERT itself when it is
/// neither completed nor deleted, as the schema's insert trigger would (same view, same cap,
/// and the number leaves `freed_numbers`): the row is written once, and the trigger, which
/// numbers only tasks inserted without one, stays idle. The number is read first rather than
/// taken through `RETURNING`, which costs SQLite a temporary table on every insert. Every
/// path that adds a task (a local create, a pulled task, an imported one) inserts through
/// here. Answers the number.
pub(crate) fn insert_numbered(tx: &Transaction<'_>, task: &Task) -> rusqlite::Result<Option<u32>> {
    use rusqlite::OptionalExtension;
    let extras = ExtraColumns::of(task)?;
    let number: Option<u32> = if task.completed || task.is_deleted {
        None
    } else {
        tx.prepare_cached("SELECT number FROM next_task_number WHERE number <= 999999")?
            .query_row([], |row| row.get(0))
            .optional()?
    };
    tx.prepare_cached(
        "INSERT OR FAIL INTO tasks (id, title, description, completed, created_at, updated_at, is_deleted, sync_status, last_synced_at, number, due, priority, project, tags, attributes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        task.id.to_string(),
        task.title,
        task.description,
        task.completed,
        task.created_at.to_string(),
        task.updated_at.to_string(),
        task.is_deleted,
        task.sync_status,
        task.last_synced_at.map(|t| t.to_string()),
        number,
        extras.due,
        extras.priority,
        extras.project,
        extras.tags,
        extras.attributes,
    ])?;
    claim_number(tx, number)?;
    Ok(number)
}

/// Writes a task's content, clock and sync state over its stored row (the triggers renumber it
/// when it leaves or joins the working set).
pub(crate) fn write_content(tx: &Transaction<'_>, task: &Task) -> rusqlite::Result<()> {
    let extras = ExtraColumns::of(task)?;
    tx.prepare_cached(
        "UPDATE tasks SET title = ?2, description = ?3, completed = ?4, created_at = ?5,
             updated_at = ?6, is_deleted = ?7, sync_status = ?8, due = ?9, priority = ?10,
             project = ?11, tags = ?12, attributes = ?13
         WHERE id = ?1",
    )?
    .execute(params![
        task.id.to_string(),
        task.title,
        task.description,
        task.completed,
        task.created_at.to_string(),
        task.updated_at.to_string(),
        task.is_deleted,
        task.sync_status,
        extras.due,
        extras.priority,
        extras.project,
        extras.tags,
        extras.attributes,
    ])?;
    Ok(())
}

/// The working-set number the schema's triggers gave the task `id` (see `schema::NUMBERS`).
/// A number a task was just given in its INSERT (from `next_task_number`) leaves
/// `freed_numbers`, as the schema's numbering trigger does.
pub(crate) fn claim_number(tx: &Transaction<'_>, number: Option<u32>) -> rusqlite::Result<()> {
    if let Some(number) = number {
        tx.prepare_cached("DELETE FROM freed_numbers WHERE number = ?1")?
            .execute([number])?;
    }
    Ok(())
}

pub(crate) fn number_of(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<u32>> {
    tx.prepare_cached("SELECT number FROM tasks WHERE id = ?1")?
        .query_row([id.to_string()], |row| row.get(0))
}

/// The task with `id`, deleted or not.
pub(crate) fn load(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<Task>> {
    tx.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id.to_string()], task_from_row)
        .optional()
}

/// The task with `id` unless it is missing or deleted: deleted tasks cannot be changed.
fn load_live(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<Task>> {
    Ok(load(tx, id)?.filter(|t| !t.is_deleted))
}

/// Appends the full task after an operation to the sync queue, with the values of the
/// changed fields in `before` (the task it replaced; none for a create) as its base.
pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    task: &Task,
    operation: Operation,
    changed_fields: &[Field],
    before: Option<&Task>,
) -> rusqlite::Result<()> {
    let data = serde_json::to_string(task)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let fields = fields_to_json(changed_fields)?;
    let base = before
        .map(|before| {
            let before = WireTask::from_task(before, Uuid::nil());
            let values: serde_json::Map<String, serde_json::Value> = changed_fields
                .iter()
                .map(|field| (field.to_string(), FieldValue::of(&before, field).json()))
                .collect();
            serde_json::to_string(&values)
        })
        .transpose()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached(
        "INSERT OR FAIL INTO sync_queue (op_id, task_id, operation, data, changed_fields, created_at, base)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        crate::entropy::new_id().to_string(),
        task.id.to_string(),
        operation,
        data,
        fields,
        task.updated_at.to_string(),
        base
    ])?;
    Ok(())
}
