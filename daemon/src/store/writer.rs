//! The writer thread: the only code that changes the database.
//!
//! Commands arrive on a channel. The thread takes the first one, then every other one already
//! waiting, and applies them all in one `BEGIN IMMEDIATE` transaction: one fsync serves every
//! client that was waiting (group commit). Each change updates `tasks` and appends the full
//! task to `sync_queue` in that same transaction. Replies are sent only after the commit
//! returns, so an acknowledged command is durable.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tasksync_proto::{NewTask, SyncStatus, Task, TaskPatch, Timestamp};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::clock::HybridClock;
use super::rows::{task_from_row, TASK_COLUMNS};
use super::StoreError;

/// Most commands committed together; bounds the latency one group adds.
const MAX_GROUP: usize = 1024;

/// The fields a `create` sets, in DESIGN.md section 5's names.
const ALL_FIELDS: &[&str] = &["title", "description", "completed", "is_deleted"];

/// A change to apply. Ids are full ids: prefixes are resolved before a write is queued.
#[derive(Debug)]
pub enum WriteOp {
    Create(NewTask),
    Update { id: Uuid, patch: TaskPatch },
    Delete { id: Uuid },
}

pub enum Message {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<Task, StoreError>>,
    },
    /// Finish what is queued before this, then stop.
    Shutdown,
}

/// Starts the writer thread on an already migrated connection.
pub fn spawn(
    conn: Connection,
    clock: HybridClock,
) -> std::io::Result<(mpsc::Sender<Message>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, clock, rx))?;
    Ok((tx, handle))
}

fn run(mut conn: Connection, mut clock: HybridClock, rx: mpsc::Receiver<Message>) {
    let mut group = Vec::new();
    'serve: while let Ok(first) = rx.recv() {
        let mut stop = false;
        for message in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match message {
                Message::Write { op, reply } => group.push((op, reply)),
                Message::Shutdown => {
                    stop = true;
                    break;
                }
            }
            if group.len() >= MAX_GROUP {
                break;
            }
        }
        if !group.is_empty() {
            let ops: Vec<&WriteOp> = group.iter().map(|(op, _)| op).collect();
            let results = commit_group(&mut conn, &mut clock, &ops);
            for ((_, reply), result) in group.drain(..).zip(results) {
                // A client that went away no longer wants its answer; the write stands.
                let _ = reply.send(result);
            }
        }
        if stop {
            break 'serve;
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!("final WAL checkpoint failed: {e}");
    }
}

/// Applies `ops` in one transaction. A command that is refused (not found) gets its error and
/// the others still commit; a storage failure fails every command of the group.
pub fn commit_group(
    conn: &mut Connection,
    clock: &mut HybridClock,
    ops: &[&WriteOp],
) -> Vec<Result<Task, StoreError>> {
    let attempt = |conn: &mut Connection,
                   clock: &mut HybridClock|
     -> rusqlite::Result<Vec<Result<Task, StoreError>>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(apply(&tx, clock, op)?);
        }
        tx.prepare_cached("INSERT INTO meta (key, value) VALUES ('clock', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
            .execute([clock.watermark().to_string()])?;
        tx.commit()?;
        Ok(results)
    };
    match attempt(conn, clock) {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(
                "commit of {} command(s) failed, nothing was written: {e}",
                ops.len()
            );
            ops.iter()
                .map(|_| Err(StoreError::Storage(e.to_string())))
                .collect()
        }
    }
}

/// Applies one change. The outer error is a storage failure that aborts the group; the inner
/// one is this command's own refusal.
fn apply(
    tx: &Transaction<'_>,
    clock: &mut HybridClock,
    op: &WriteOp,
) -> rusqlite::Result<Result<Task, StoreError>> {
    match op {
        WriteOp::Create(new) => {
            let now = clock.tick(Timestamp::now());
            let task = Task {
                id: Uuid::now_v7(),
                title: new.title.clone(),
                description: new.description.clone(),
                completed: false,
                created_at: now,
                updated_at: now,
                is_deleted: false,
                sync_status: SyncStatus::Pending,
                last_synced_at: None,
            };
            tx.prepare_cached(
                "INSERT INTO tasks (id, title, description, completed, created_at, updated_at, is_deleted, sync_status)
                 VALUES (?1, ?2, ?3, 0, ?4, ?4, 0, 'pending')",
            )?
            .execute(params![task.id.to_string(), task.title, task.description, now.to_string()])?;
            enqueue(tx, &task, "create", ALL_FIELDS)?;
            Ok(Ok(task))
        }
        WriteOp::Update { id, patch } => {
            let Some(mut task) = load_live(tx, *id)? else {
                return Ok(Err(StoreError::NotFound(id.to_string())));
            };
            let mut changed = Vec::with_capacity(3);
            if let Some(title) = &patch.title {
                task.title = title.clone();
                changed.push("title");
            }
            if let Some(description) = &patch.description {
                task.description = description.clone();
                changed.push("description");
            }
            if let Some(completed) = patch.completed {
                task.completed = completed;
                changed.push("completed");
            }
            task.updated_at = clock.tick(Timestamp::now());
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
            enqueue(tx, &task, "update", &changed)?;
            Ok(Ok(task))
        }
        WriteOp::Delete { id } => {
            let Some(mut task) = load_live(tx, *id)? else {
                return Ok(Err(StoreError::NotFound(id.to_string())));
            };
            task.is_deleted = true;
            task.updated_at = clock.tick(Timestamp::now());
            task.sync_status = SyncStatus::Pending;
            tx.prepare_cached(
                "UPDATE tasks SET is_deleted = 1, updated_at = ?2, sync_status = 'pending' WHERE id = ?1",
            )?
            .execute(params![id.to_string(), task.updated_at.to_string()])?;
            enqueue(tx, &task, "delete", &["is_deleted"])?;
            Ok(Ok(task))
        }
    }
}

/// The task with `id` unless it is missing or deleted: deleted tasks cannot be changed.
fn load_live(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<Task>> {
    let task = tx
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id.to_string()], task_from_row)
        .optional()?;
    Ok(task.filter(|t| !t.is_deleted))
}

/// Appends the full task after an operation to the sync queue.
fn enqueue(
    tx: &Transaction<'_>,
    task: &Task,
    operation: &str,
    changed_fields: &[&str],
) -> rusqlite::Result<()> {
    let data = serde_json::to_string(task)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let fields = serde_json::to_string(changed_fields)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
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
