//! Applying user commands (create, update, delete) inside the writer's transaction.
//!
//! Each change updates `tasks` and appends the full task after the operation to `sync_queue`,
//! with the fields it changed (DESIGN.md section 5).

use rusqlite::{params, OptionalExtension, Transaction};
use tasksync_proto::wire::{Field, Operation};
use tasksync_proto::{NewTask, SyncStatus, Task, TaskPatch};
use uuid::Uuid;

use super::clock::HybridClock;
use super::rows::{fields_to_json, task_from_row, TASK_COLUMNS};
use super::StoreError;

/// A user's change. Ids are full ids: prefixes are resolved before a write is queued.
#[derive(Debug)]
pub enum WriteOp {
    Create(NewTask),
    Update { id: Uuid, patch: TaskPatch },
    Delete { id: Uuid },
}

/// Applies one change. The outer error is a storage failure that aborts the whole group; the
/// inner one is this command's own refusal.
pub fn apply(
    tx: &Transaction<'_>,
    clock: &mut HybridClock,
    op: &WriteOp,
) -> rusqlite::Result<Result<Task, StoreError>> {
    match op {
        WriteOp::Create(new) => {
            if let Some(id) = new.id {
                if let Some(existing) = load(tx, id)? {
                    let same =
                        existing.title == new.title && existing.description == new.description;
                    return Ok(Err(if same {
                        StoreError::AlreadyCreated(Box::new(existing))
                    } else {
                        StoreError::Conflict(format!(
                            "task {id} already exists with another title or description"
                        ))
                    }));
                }
            }
            let now = match clock.tick() {
                Ok(now) => now,
                Err(e) => return Ok(Err(e.into())),
            };
            let mut task = Task {
                id: new.id.unwrap_or_else(Uuid::now_v7),
                title: new.title.clone(),
                description: new.description.clone(),
                completed: false,
                created_at: now,
                updated_at: now,
                is_deleted: false,
                sync_status: SyncStatus::Pending,
                last_synced_at: None,
                number: None,
            };
            tx.prepare_cached(
                "INSERT INTO tasks (id, title, description, completed, created_at, updated_at, is_deleted, sync_status)
                 VALUES (?1, ?2, ?3, 0, ?4, ?4, 0, 'pending')",
            )?
            .execute(params![task.id.to_string(), task.title, task.description, now.to_string()])?;
            task.number = number_of(tx, task.id)?;
            enqueue(tx, &task, Operation::Create, &Field::ALL)?;
            Ok(Ok(task))
        }
        WriteOp::Update { id, patch } => {
            let Some(mut task) = load_live(tx, *id)? else {
                return Ok(Err(StoreError::NotFound(id.to_string())));
            };
            let mut changed = Vec::with_capacity(3);
            if let Some(title) = &patch.title {
                task.title = title.clone();
                changed.push(Field::Title);
            }
            if let Some(description) = &patch.description {
                task.description = description.clone();
                changed.push(Field::Description);
            }
            if let Some(completed) = patch.completed {
                task.completed = completed;
                changed.push(Field::Completed);
            }
            task.updated_at = match clock.tick() {
                Ok(now) => now,
                Err(e) => return Ok(Err(e.into())),
            };
            task.sync_status = SyncStatus::Pending;
            tx.prepare_cached(
                "UPDATE tasks SET title = ?2, description = ?3, completed = ?4, updated_at = ?5, sync_status = 'pending'
                 WHERE id = ?1",
            )?
            .execute(params![
                id.to_string(),
                task.title,
                task.description,
                task.completed,
                task.updated_at.to_string()
            ])?;
            task.number = number_of(tx, task.id)?;
            enqueue(tx, &task, Operation::Update, &changed)?;
            Ok(Ok(task))
        }
        WriteOp::Delete { id } => {
            let Some(mut task) = load_live(tx, *id)? else {
                return Ok(Err(StoreError::NotFound(id.to_string())));
            };
            task.is_deleted = true;
            task.updated_at = match clock.tick() {
                Ok(now) => now,
                Err(e) => return Ok(Err(e.into())),
            };
            task.sync_status = SyncStatus::Pending;
            tx.prepare_cached("UPDATE tasks SET is_deleted = 1, updated_at = ?2, sync_status = 'pending' WHERE id = ?1")?
                .execute(params![id.to_string(), task.updated_at.to_string()])?;
            task.number = None;
            enqueue(tx, &task, Operation::Delete, &[Field::IsDeleted])?;
            Ok(Ok(task))
        }
    }
}

/// The working-set number the schema's triggers gave the task `id` (see `schema::NUMBERS`).
fn number_of(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<u32>> {
    tx.prepare_cached("SELECT number FROM tasks WHERE id = ?1")?
        .query_row([id.to_string()], |row| row.get(0))
}

/// Makes every freed working-set number that is not in `shown` reusable: a listing of the
/// whole set just showed the numbering without them. Returns how many became reusable.
pub fn release_numbers(tx: &Transaction<'_>, shown: &[u32]) -> rusqlite::Result<u64> {
    let shown = serde_json::to_string(shown)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let released = tx
        .prepare_cached(
            "UPDATE freed_numbers SET reusable = 1
             WHERE reusable = 0 AND number NOT IN (SELECT value FROM json_each(?1))",
        )?
        .execute([shown])?;
    Ok(released as u64)
}

/// The task with `id`, deleted or not.
pub fn load(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<Task>> {
    tx.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id.to_string()], task_from_row)
        .optional()
}

/// The task with `id` unless it is missing or deleted: deleted tasks cannot be changed.
fn load_live(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<Task>> {
    Ok(load(tx, id)?.filter(|t| !t.is_deleted))
}

/// Appends the full task after an operation to the sync queue.
fn enqueue(
    tx: &Transaction<'_>,
    task: &Task,
    operation: Operation,
    changed_fields: &[Field],
) -> rusqlite::Result<()> {
    let data = serde_json::to_string(task)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let fields = fields_to_json(changed_fields)?;
    tx.prepare_cached(
        "INSERT INTO sync_queue (op_id, task_id, operation, data, changed_fields, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        Uuid::now_v7().to_string(),
        task.id.to_string(),
        operation,
        data,
        fields,
        task.updated_at.to_string()
    ])?;
    Ok(())
}
