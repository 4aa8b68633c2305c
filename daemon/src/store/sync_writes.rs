//! What the sync engine asks the writer to record (batches taken and answered, pulled
//! changes, revived dead letters), as writer requests.
//!
//! A queue row leaves the queue once the server accepted it. A task's `sync_status` is derived
//! from the rows it still has queued ([`refresh_status`]), and a pulled or resolved task is
//! adopted as the server has it except for fields that still have a local operation queued
//! ([`merge_remote`]): those keep the local value until that operation is answered.

use std::collections::{BTreeSet, HashSet};

use rusqlite::{params, Transaction};
use tasksync_proto::ipc::{HistoryOrigin, QueueState};
use tasksync_proto::lww;
use tasksync_proto::wire::{Field, WireConflict, WireTask};
use tasksync_proto::{SyncStatus, Task, Timestamp};
use uuid::Uuid;

use super::clock::HybridClock;
use super::commands::{insert_numbered, load, write_content};
use super::history;
use super::rows::{fields_from_json, select_next_batch, QueuedOp};
use super::writer::{Executed, WriteRequest};

/// Takes the next batch to send (see [`select_next_batch`]), leaving out the `exclude` rows
/// (the sync engine's rows in flight, and rows that had their attempt in this round already):
/// marks their tasks in progress and answers the rows.
pub(crate) struct TakeBatch {
    pub(crate) limit: usize,
    /// The longest retry delay there is (see [`select_next_batch`]).
    pub(crate) longest_wait: std::time::Duration,
    pub(crate) force: bool,
    pub(crate) exclude: HashSet<i64>,
}

/// The server's answers (or the lack of one) for rows that were in flight. Answers the tasks
/// that took the server's merged version after a conflict.
pub(crate) struct FinishBatch {
    pub(crate) outcomes: Vec<(QueueRef, ItemOutcome)>,
}

/// One page of pulled changes, its conflicts and the cursor after it. Answers what changed
/// ([`Pulled`]).
pub(crate) struct StorePulled {
    pub(crate) changes: Vec<WireTask>,
    pub(crate) conflicts: Vec<WireConflict>,
    /// This device: the conflicts it took part in are its to report.
    pub(crate) device_id: Uuid,
    /// The `meta` key the cursor is kept under (one per server).
    pub(crate) cursor_key: String,
    pub(crate) cursor: String,
}

/// Sends these dead-lettered rows again, with a fresh attempt budget. Answers how many were
/// dead-lettered.
pub(crate) struct ReviveFailed {
    pub(crate) seqs: Vec<i64>,
}

/// A sync round reached the server and ended at `at`.
pub(crate) struct RecordSync {
    pub(crate) at: Timestamp,
}

// Whether each change must reach the disk before it is acknowledged: losing the others in a
// crash is harmless. Rows taken for a batch are pending again after a restart anyway, and a
// lost "accepted" only makes the daemon send those operations again, which the server answers
// from its record of applied operation ids. Pulled and merged tasks are kept durable so the
// clock never forgets a timestamp it has shown the user; failed attempts so the attempt budget
// and dead letters hold across a crash; a retry is the user's command.

impl WriteRequest for TakeBatch {
    type Output = Vec<QueuedOp>;

    fn must_be_durable(&self) -> bool {
        false
    }

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<Vec<QueuedOp>> {
        let taken = select_next_batch(
            tx,
            self.limit,
            clock.now(),
            self.longest_wait,
            self.force,
            &self.exclude,
        )?;
        for row in &taken {
            tx.prepare_cached("UPDATE tasks SET sync_status = ?2 WHERE id = ?1")?
                .execute(params![
                    row.entry.task_id.to_string(),
                    SyncStatus::InProgress
                ])?;
        }
        Ok(Ok(taken))
    }
}

impl WriteRequest for FinishBatch {
    type Output = Vec<Uuid>;

    fn must_be_durable(&self) -> bool {
        self.outcomes.iter().any(|(_, outcome)| {
            matches!(
                outcome,
                ItemOutcome::Accepted { resolved: Some(_) } | ItemOutcome::Failed { .. }
            )
        })
    }

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<Vec<Uuid>> {
        let now = clock.now();
        let mut touched = BTreeSet::new();
        let mut adopted = Vec::new();
        for (QueueRef { seq, task_id }, outcome) in &self.outcomes {
            touched.insert(*task_id);
            match outcome {
                ItemOutcome::Accepted { resolved } => {
                    // After a conflict, the fields this operation pushed: where the merged
                    // version replaces one, this device's value lost.
                    let pushed = match resolved {
                        Some(_) => pushed_fields(tx, *seq)?,
                        None => Vec::new(),
                    };
                    tx.prepare_cached("DELETE FROM sync_queue WHERE id = ?1")?
                        .execute([seq])?;
                    if let Some(remote) = resolved {
                        if adopt(tx, clock, remote, &pushed)?.changed() {
                            adopted.push(remote.id);
                        }
                    }
                }
                ItemOutcome::Failed {
                    error,
                    next_attempt_at,
                    dead,
                } => {
                    tx.prepare_cached(
                        "UPDATE sync_queue SET retry_count = retry_count + 1, error_message = ?2,
                             next_attempt_at = ?3, last_attempt_at = ?5,
                             state = ?4
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        seq,
                        error.chars().take(MAX_ERROR_CHARS).collect::<String>(),
                        next_attempt_at.to_string(),
                        if *dead {
                            QueueState::Failed
                        } else {
                            QueueState::Pending
                        },
                        now.to_string()
                    ])?;
                }
                ItemOutcome::Unsent => {}
            }
        }
        for task_id in &touched {
            refresh_status(tx, *task_id, now)?;
        }
        Ok(Ok(adopted))
    }
}

/// What a stored page changed.
#[derive(Debug, Default)]
pub(crate) struct Pulled {
    /// The tasks whose stored row changed.
    pub(crate) adopted: Vec<Uuid>,
    /// The conflicts this device took part in and learns of now, each in its task's history.
    pub(crate) conflicts: Vec<WireConflict>,
}

impl WriteRequest for StorePulled {
    type Output = Pulled;

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<Pulled> {
        let now = clock.now();
        let mut pulled = Pulled::default();
        for remote in &self.changes {
            match adopt(tx, clock, remote, &[])? {
                // New here: synced as of now, and nothing of it can be queued.
                Adoption::Added => pulled.adopted.push(remote.id),
                Adoption::Changed => {
                    pulled.adopted.push(remote.id);
                    refresh_status(tx, remote.id, now)?;
                }
                Adoption::Unchanged | Adoption::Refused => refresh_status(tx, remote.id, now)?,
            }
        }
        for conflict in &self.conflicts {
            if learns_of(conflict, self.device_id) && record_conflict(tx, conflict)? {
                pulled.conflicts.push(conflict.clone());
            }
        }
        set_meta(tx, &self.cursor_key, &self.cursor)?;
        Ok(Ok(pulled))
    }
}

/// Whether `device` learns of `conflict` from the change feed: it wrote one of the two values.
/// (The device that pushed the losing value learned of a loss from the answer already, and
/// has it in its history unless a later local edit of the field kept the answer from showing:
/// [`record_conflict`] records what the history does not have yet.)
fn learns_of(conflict: &WireConflict, device: Uuid) -> bool {
    conflict.kept_device == device || conflict.lost_device == device
}

/// Records a conflict in its task's history as the lost value (`old`) and the kept one
/// (`new`), unless the history has that loss already (the answer to this device's own push
/// recorded it, or a pull that started again from the beginning brings it twice) or the task
/// is unknown here. Answers whether it was recorded.
fn record_conflict(tx: &Transaction<'_>, conflict: &WireConflict) -> rusqlite::Result<bool> {
    use rusqlite::OptionalExtension;
    let (old, new) = (conflict.lost.to_string(), conflict.kept.to_string());
    let (task_id, field) = (conflict.task_id.to_string(), conflict.field.to_string());
    let known = tx
        .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
        .query_row([&task_id], |_| Ok(()))
        .optional()?
        .is_some();
    let recorded = tx
        .prepare_cached(
            "SELECT 1 FROM history WHERE task_id = ?1 AND field = ?2 AND old = ?3 AND conflict = 1",
        )?
        .query_row(params![task_id, field, old], |_| Ok(()))
        .optional()?
        .is_some();
    if !known || recorded {
        return Ok(false);
    }
    history::record(
        tx,
        &history::Change {
            task_id: conflict.task_id,
            field: conflict.field.clone(),
            old: &old,
            new: &new,
            origin: HistoryOrigin::Remote,
            at: conflict.at,
            conflict: true,
        },
    )?;
    Ok(true)
}

impl WriteRequest for ReviveFailed {
    type Output = u64;

    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<u64> {
        let now = clock.now();
        let mut revived = 0;
        for seq in &self.seqs {
            revived += tx
                .prepare_cached(
                    "UPDATE sync_queue SET state = ?2, retry_count = 0, next_attempt_at = NULL
                     WHERE id = ?1 AND state = ?3",
                )?
                .execute(params![seq, QueueState::Pending, QueueState::Failed])?;
            if let Some(task_id) = task_of(tx, *seq)? {
                refresh_status(tx, task_id, now)?;
            }
        }
        Ok(Ok(revived as u64))
    }
}

impl WriteRequest for RecordSync {
    type Output = ();

    fn must_be_durable(&self) -> bool {
        false
    }

    fn execute(&self, tx: &Transaction<'_>, _clock: &mut HybridClock) -> Executed<()> {
        set_meta(tx, "last_sync_at", &self.at.to_string())?;
        Ok(Ok(()))
    }
}

/// How much of a server's error message is kept with a failed operation.
const MAX_ERROR_CHARS: usize = 500;

/// A queue row and the task it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueRef {
    pub(crate) seq: i64,
    pub(crate) task_id: Uuid,
}

/// What happened to one row that was in flight.
#[derive(Debug, Clone)]
pub(crate) enum ItemOutcome {
    /// The server applied it (`resolved` is its merged task after a conflict).
    Accepted { resolved: Option<WireTask> },
    /// The server was reached and refused it; one attempt counted.
    Failed {
        error: String,
        next_attempt_at: Timestamp,
        dead: bool,
    },
    /// It was not (or may not have been) applied and counts no attempt: offline, or held
    /// back behind an earlier failed operation of its task.
    Unsent,
}

fn task_of(tx: &Transaction<'_>, seq: i64) -> rusqlite::Result<Option<Uuid>> {
    use rusqlite::OptionalExtension;
    let text: Option<String> = tx
        .prepare_cached("SELECT task_id FROM sync_queue WHERE id = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    Ok(text.and_then(|t| Uuid::parse_str(&t).ok()))
}

pub(crate) fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute(params![key, value])?;
    Ok(())
}

/// The fields the queue row `seq` changed (all of them if it is gone or unreadable).
fn pushed_fields(tx: &Transaction<'_>, seq: i64) -> rusqlite::Result<Vec<Field>> {
    use rusqlite::OptionalExtension;
    let text: Option<String> = tx
        .prepare_cached("SELECT changed_fields FROM sync_queue WHERE id = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    Ok(text
        .and_then(|text| fields_from_json(&text).ok())
        .unwrap_or_else(|| Field::ALL.to_vec()))
}

/// The fields that still have a local operation queued for `task_id`.
fn protected_fields(tx: &Transaction<'_>, task_id: Uuid) -> rusqlite::Result<BTreeSet<Field>> {
    let mut stmt = tx.prepare_cached("SELECT changed_fields FROM sync_queue WHERE task_id = ?1")?;
    let rows = stmt.query_map([task_id.to_string()], |row| row.get::<_, String>(0))?;
    let mut fields = BTreeSet::new();
    for row in rows {
        // Unreadable: protect everything rather than overwrite a local edit.
        fields.extend(fields_from_json(&row?).unwrap_or_else(|_| Field::ALL.to_vec()));
    }
    Ok(fields)
}

/// What adopting the server's version of a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adoption {
    /// A task this device did not have was added, synced as of now.
    Added,
    /// The stored row changed.
    Changed,
    /// The stored row already said exactly this (typically our own push coming back).
    Unchanged,
    /// A timestamp lies too far ahead of our clock: the task was left as it was.
    Refused,
}

impl Adoption {
    fn changed(self) -> bool {
        matches!(self, Adoption::Added | Adoption::Changed)
    }
}

/// Writes the server's version of a task, keeping protected local fields, and records each
/// field whose stored value changed in the history (origin `remote`). `pushed` are the fields
/// of an operation the server answered with this version as a conflict: one of them that
/// changes lost Last-Write-Wins, and is recorded as a conflict with the losing local value.
fn adopt(
    tx: &Transaction<'_>,
    clock: &mut HybridClock,
    remote: &WireTask,
    pushed: &[Field],
) -> rusqlite::Result<Adoption> {
    if clock.too_far_ahead(remote.updated_at) || clock.too_far_ahead(remote.created_at) {
        tracing::warn!(
            "skipping task {} from the server: its updated_at {} or created_at {} lies more than {} s ahead of this device's clock ({})",
            remote.id,
            remote.updated_at,
            remote.created_at,
            super::clock::MAX_CLOCK_SKEW.as_secs(),
            clock.now()
        );
        return Ok(Adoption::Refused);
    }
    clock.observe(remote.updated_at);
    let Some(local) = load(tx, remote.id)? else {
        // A task this device never had: no local operation can protect any of its fields
        // (every queue row is written with its task). Numbered in the insert itself, as a
        // local create is, so the row is written once and the insert trigger stays idle.
        let mut task = merge_remote(None, remote, &BTreeSet::new());
        task.last_synced_at = Some(clock.now());
        insert_numbered(tx, &task)?;
        history::record_diff(tx, None, &task, HistoryOrigin::Remote, &[])?;
        return Ok(Adoption::Added);
    };
    let protected = protected_fields(tx, remote.id)?;
    let task = merge_remote(Some(&local), remote, &protected);
    // The merged task keeps the local-only fields, so equality is equal content and clock.
    if task == local {
        return Ok(Adoption::Unchanged);
    }
    write_content(tx, &task)?;
    history::record_diff(tx, Some(&local), &task, HistoryOrigin::Remote, pushed)?;
    Ok(Adoption::Changed)
}

/// The server's task, except that `protected` fields keep their local values; the local-only
/// fields (number, sync state) stay the local task's.
pub(crate) fn merge_remote(
    local: Option<&Task>,
    remote: &WireTask,
    protected: &BTreeSet<Field>,
) -> Task {
    let Some(local) = local else {
        return remote.to_task(SyncStatus::Synced, None);
    };
    let mut task = if protected.is_empty() {
        remote.to_task(local.sync_status, local.last_synced_at)
    } else {
        let mut merged = remote.clone();
        let mine = WireTask::from_task(local, remote.device_id);
        for field in protected {
            lww::copy_value(&mut merged, &mine, field);
        }
        merged.updated_at = merged.updated_at.max(local.updated_at);
        merged.to_task(local.sync_status, local.last_synced_at)
    };
    task.number = local.number;
    task
}

/// Sets a task's `sync_status` from the rows it still has queued: none -> `synced` (and
/// `last_synced_at` = now), any dead-lettered -> `failed`,
/// any that failed an attempt -> `error`, else `pending`.
fn refresh_status(tx: &Transaction<'_>, task_id: Uuid, now: Timestamp) -> rusqlite::Result<()> {
    // Most often nothing is left queued: one cheap statement settles it.
    let synced = tx
        .prepare_cached(
            "UPDATE tasks SET sync_status = ?3, last_synced_at = ?2
             WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM sync_queue WHERE task_id = ?1)",
        )?
        .execute(params![
            task_id.to_string(),
            now.to_string(),
            SyncStatus::Synced
        ])?;
    if synced > 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE tasks SET
             sync_status = COALESCE(
                 (SELECT CASE
                      WHEN max(state = ?3) THEN ?4
                      WHEN max(retry_count > 0) THEN ?5
                      ELSE ?6 END
                  FROM sync_queue WHERE task_id = ?1 HAVING count(*) > 0),
                 ?7),
             last_synced_at = CASE WHEN EXISTS (SELECT 1 FROM sync_queue WHERE task_id = ?1)
                                   THEN last_synced_at ELSE ?2 END
         WHERE id = ?1",
    )?
    .execute(params![
        task_id.to_string(),
        now.to_string(),
        QueueState::Failed,
        SyncStatus::Failed,
        SyncStatus::Error,
        SyncStatus::Pending,
        SyncStatus::Synced
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(title: &str, completed: bool, updated_at: i64) -> WireTask {
        WireTask {
            id: Uuid::nil(),
            title: title.into(),
            description: Some("remote".into()),
            completed,
            created_at: Timestamp::from_millis(1).unwrap(),
            updated_at: Timestamp::from_millis(updated_at).unwrap(),
            is_deleted: false,
            device_id: Uuid::nil(),
            due: None,
            priority: None,
            project: None,
            tags: Default::default(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn an_unknown_task_is_adopted_whole() {
        let task = merge_remote(None, &remote("r", true, 10), &BTreeSet::new());
        assert_eq!((task.title.as_str(), task.completed), ("r", true));
        assert_eq!(task.sync_status, SyncStatus::Synced);
    }

    #[test]
    fn protected_fields_keep_local_values_and_the_rest_follow_the_server() {
        let mut local = remote("local", false, 20).to_task(SyncStatus::Pending, None);
        local.description = Some("mine".into());
        let protected = BTreeSet::from([Field::Title]);
        let task = merge_remote(Some(&local), &remote("r", true, 10), &protected);
        assert_eq!(task.title, "local");
        assert!(task.completed);
        assert_eq!(task.description.as_deref(), Some("remote"));
        assert_eq!(
            task.updated_at.as_millis(),
            20,
            "never older than the local edit"
        );
        assert_eq!(task.sync_status, SyncStatus::Pending);
    }
}
