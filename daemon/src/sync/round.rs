//! One sync round: flush the queue in batches, then (optionally) pull.
//!
//! A round takes the eligible queue rows in order (at most `batch_size` per request, at most
//! one per task), marks them in flight, sends them and records each answer, until nothing is
//! eligible, the server is unreachable, or it fails a whole batch. Then it pulls
//! `/api/changes` from the stored cursor until `has_more` is false. The round only reports
//! what happened; the engine decides what that means for connectivity.

use std::collections::VecDeque;
use std::sync::Arc;

use tasksync_proto::events::{Event, SyncProgress};
use tasksync_proto::ipc::SyncReport;
use tasksync_proto::wire::{
    BatchItem, BatchRequest, BatchResponse, Field, ItemStatus, Operation, WireTask,
};
use tasksync_proto::{Task, Timestamp};
use tokio::task::JoinHandle;

use super::client::{SyncClient, SyncError};
use super::engine::SyncSettings;
use crate::store::{ItemOutcome, QueueRef, QueuedOp, Store, StoreError, SyncWrite};

/// Changes pulled per request.
const PULL_PAGE: usize = 500;

/// Batches in flight at once.
const PIPELINE_DEPTH: usize = 4;

/// A queue row on its way to the server.
struct Pending {
    row: QueueRef,
    item: BatchItem,
    /// Failed attempts before this one.
    retries: u32,
}

/// A batch sent and not yet answered.
struct Flight {
    items: Vec<Pending>,
    answer: JoinHandle<Result<BatchResponse, SyncError>>,
}

/// How a round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Send operations that still wait out a retry delay too (`taskctl sync`).
    pub force: bool,
    /// Pull after flushing.
    pub pull: bool,
}

/// What a round did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub synced: u64,
    /// Failed attempts of operations that are not dead-lettered.
    pub failed: u64,
    pub errors: Vec<String>,
    /// The server answered at least once.
    pub reached: bool,
    /// A request could not reach the server.
    pub offline: bool,
    /// The server refused our token.
    pub unauthorized: bool,
}

impl Outcome {
    fn note(&mut self, error: SyncError) {
        self.unauthorized |= matches!(error, SyncError::Unauthorized(_));
        match error {
            SyncError::Unreachable(_) => self.offline = true,
            _ => self.reached = true,
        }
        let message = error.to_string();
        if !self.errors.contains(&message) {
            self.errors.push(message);
        }
    }

    /// The report for `taskctl sync`, counting `dead` dead-lettered operations as failed.
    pub fn report(mut self, dead: u64) -> SyncReport {
        if dead > 0 {
            self.errors.push(format!(
                "{dead} operation(s) dead-lettered: see `taskctl queue --failed`, then `taskctl retry`"
            ));
        }
        SyncReport {
            success: self.reached && !self.offline && self.errors.is_empty(),
            synced_items: self.synced,
            failed_items: self.failed + dead,
            errors: self.errors,
            offline: self.offline,
        }
    }
}

pub struct Round<'a> {
    pub store: &'a Store,
    pub client: &'a Arc<SyncClient>,
    pub settings: &'a SyncSettings,
}

impl Round<'_> {
    pub async fn run(&self, mode: Mode) -> Outcome {
        self.store.clear_in_flight();
        let mut outcome = Outcome::default();
        if let Err(e) = self.flush(mode.force, &mut outcome).await {
            outcome.errors.push(e.to_string());
        }
        if mode.pull && !outcome.offline {
            match self.pull().await {
                Ok(pulled) => {
                    outcome.reached = true;
                    if pulled > 0 {
                        tracing::info!("pulled {pulled} change(s)");
                    }
                }
                Err(e) => outcome.note(e),
            }
        }
        if outcome.synced + outcome.failed > 0 {
            tracing::info!(
                "sync round: {} operation(s) accepted, {} failed an attempt",
                outcome.synced,
                outcome.failed
            );
        }
        if outcome.reached {
            if let Err(e) = self
                .store
                .sync_write(SyncWrite::RecordSync {
                    at: Timestamp::now(),
                })
                .await
            {
                outcome.errors.push(e.to_string());
            }
        }
        outcome
    }

    fn progress(&self, progress: SyncProgress) {
        self.store.events().publish(|| Event::Sync(progress));
    }

    /// Sends batches until nothing is eligible, the server is unreachable, or it fails a
    /// whole batch. Up to [`PIPELINE_DEPTH`] batches are in flight at once: while the server
    /// works on one, the daemon records the previous answer and prepares the next batch. The
    /// batches in flight never share a task (rows in flight block their task's later rows),
    /// so each task's operations still reach the server in order.
    async fn flush(&self, force: bool, outcome: &mut Outcome) -> Result<(), StoreError> {
        let round_start = Timestamp::now();
        let mut flights = VecDeque::new();
        let mut stopped = false;
        loop {
            // Fill the pipeline. Nothing eligible now may become eligible once an answer
            // lands (a task's next row waits for the one in flight), so this runs again
            // after every landing.
            while !stopped && flights.len() < PIPELINE_DEPTH {
                match self.launch(force, round_start).await? {
                    Some(flight) => flights.push_back(flight),
                    None => break,
                }
            }
            let Some(flight) = flights.pop_front() else {
                return Ok(());
            };
            let answer = flight.answer.await.unwrap_or_else(|e| {
                Err(SyncError::BadAnswer(format!("the push task failed: {e}")))
            });
            stopped |= answer.is_err();
            let outcomes = self.judge(&flight.items, answer, outcome);
            let synced = outcomes
                .iter()
                .filter(|(_, o)| matches!(o, ItemOutcome::Accepted { .. }))
                .count();
            let land = self.store.sync_write(SyncWrite::FinishBatch { outcomes });
            // Record this answer and prepare the next batch together: the writer commits
            // both in one transaction.
            let next = async {
                if stopped {
                    Ok(None)
                } else {
                    self.launch(force, round_start).await
                }
            };
            let (landed, next) = tokio::join!(land, next);
            landed?;
            self.progress(SyncProgress::BatchAnswered {
                synced: synced as u32,
                failed: (flight.items.len() - synced) as u32,
            });
            if let Some(next) = next? {
                flights.push_back(next);
            }
        }
    }

    /// Picks the next batch, marks it in flight and sends it; `None` when nothing is eligible.
    async fn launch(
        &self,
        force: bool,
        round_start: Timestamp,
    ) -> Result<Option<Flight>, StoreError> {
        loop {
            let rows = self
                .store
                .take_batch(self.settings.batch_size, force, round_start)
                .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            let (items, corrupt) = self.items_for(&rows);
            if !corrupt.is_empty() {
                self.store
                    .sync_write(SyncWrite::FinishBatch { outcomes: corrupt })
                    .await?;
            }
            if items.is_empty() {
                continue;
            }
            let request = BatchRequest {
                device_id: self.store.device_id(),
                client_timestamp: Timestamp::now(),
                items: items.iter().map(|pending| pending.item.clone()).collect(),
            };
            self.progress(SyncProgress::BatchSent {
                items: items.len() as u32,
            });
            let client = self.client.clone();
            let answer = tokio::spawn(async move { client.push(&request).await });
            return Ok(Some(Flight { items, answer }));
        }
    }

    /// What the server's answer (or its absence) means for each row of a batch.
    fn judge(
        &self,
        items: &[Pending],
        answer: Result<BatchResponse, SyncError>,
        outcome: &mut Outcome,
    ) -> Vec<(QueueRef, ItemOutcome)> {
        match answer {
            Ok(response) => {
                outcome.reached = true;
                items
                    .iter()
                    .zip(response.processed_items)
                    .map(|(pending, processed)| {
                        let result = match processed.status {
                            ItemStatus::Success | ItemStatus::Conflict => {
                                outcome.synced += 1;
                                if processed.status == ItemStatus::Conflict {
                                    tracing::info!(
                                        "conflict on task {}: the server merged it; adopting its version",
                                        pending.item.task_id
                                    );
                                }
                                ItemOutcome::Accepted { resolved: processed.resolved_data }
                            }
                            ItemStatus::Error => {
                                let error = processed.error.unwrap_or_else(|| "rejected without a reason".into());
                                outcome.errors.push(format!("task {}: {error}", pending.item.task_id));
                                self.failed_attempt(outcome, pending, error)
                            }
                        };
                        (pending.row, result)
                    })
                    .collect()
            }
            Err(error @ (SyncError::Unreachable(_) | SyncError::Unauthorized(_))) => {
                outcome.note(error);
                items
                    .iter()
                    .map(|pending| (pending.row, ItemOutcome::Unsent))
                    .collect()
            }
            Err(error) => {
                let message = error.to_string();
                outcome.note(error);
                items
                    .iter()
                    .map(|pending| {
                        (
                            pending.row,
                            self.failed_attempt(outcome, pending, message.clone()),
                        )
                    })
                    .collect()
            }
        }
    }

    /// Records a failed attempt: the next retry time, or the dead letter after the last one.
    fn failed_attempt(
        &self,
        outcome: &mut Outcome,
        pending: &Pending,
        error: String,
    ) -> ItemOutcome {
        let item = &pending.item;
        let attempts = pending.retries + 1;
        let dead = attempts >= self.settings.max_attempts;
        if dead {
            tracing::warn!(
                "operation {} ({} of task {}) dead-lettered after {attempts} failed attempt(s): {error}",
                item.id,
                item.operation,
                item.task_id
            );
        } else {
            outcome.failed += 1;
            tracing::info!(
                "operation {} of task {} failed (attempt {attempts}): {error}",
                item.id,
                item.task_id
            );
        }
        let delay = self.settings.retry.delay(attempts);
        let next = Timestamp::from_millis(Timestamp::now().as_millis() + delay.as_millis() as i64)
            .unwrap_or_else(Timestamp::now);
        ItemOutcome::Failed {
            error,
            next_attempt_at: next,
            dead,
        }
    }

    /// The batch items for queue rows; rows that cannot be read are dead-lettered at once
    /// (they could never be sent) so they do not block the queue.
    fn items_for(&self, rows: &[QueuedOp]) -> (Vec<Pending>, Vec<(QueueRef, ItemOutcome)>) {
        let mut items = Vec::with_capacity(rows.len());
        let mut corrupt = Vec::new();
        for row in rows {
            match item_from_row(row, self.store.device_id()) {
                Ok(item) => items.push(Pending {
                    row: queue_ref(row),
                    item,
                    retries: row.retry_count,
                }),
                Err(error) => {
                    tracing::error!(
                        "queue row {} is unreadable and is dead-lettered: {error}",
                        row.op_id
                    );
                    let failed = ItemOutcome::Failed {
                        error,
                        next_attempt_at: Timestamp::now(),
                        dead: true,
                    };
                    corrupt.push((queue_ref(row), failed));
                }
            }
        }
        (items, corrupt)
    }

    /// Pulls every change since the stored cursor, one local transaction per page.
    async fn pull(&self) -> Result<u64, SyncError> {
        let store_error =
            |e: StoreError| SyncError::BadAnswer(format!("cannot store pulled changes: {e}"));
        let mut cursor = self
            .store
            .meta(&cursor_key(self.client.base()))
            .map_err(store_error)?
            .unwrap_or_default();
        let mut pulled = 0;
        loop {
            let page = self.client.changes(&cursor, PULL_PAGE).await?;
            if page.cursor == cursor && page.has_more {
                return Err(SyncError::BadAnswer(
                    "has_more with a cursor that did not move".into(),
                ));
            }
            let count = page.changes.len() as u64;
            pulled += count;
            cursor = page.cursor.clone();
            let has_more = page.has_more;
            self.store
                .sync_write(SyncWrite::ApplyPulled {
                    changes: page.changes,
                    cursor_key: cursor_key(self.client.base()),
                    cursor: page.cursor,
                })
                .await
                .map_err(store_error)?;
            if count > 0 {
                self.progress(SyncProgress::Pulled { changes: count });
            }
            if !has_more {
                return Ok(pulled);
            }
        }
    }
}

/// Where the pull cursor for the server at `base` is kept: a cursor only means something to
/// the server that issued it, so switching servers starts from the beginning.
fn cursor_key(base: &str) -> String {
    format!("pull_cursor {base}")
}

fn queue_ref(row: &QueuedOp) -> QueueRef {
    QueueRef {
        seq: row.seq,
        task_id: row.task_id,
    }
}

/// Turns a queue row into the item the server expects.
fn item_from_row(row: &QueuedOp, device_id: uuid::Uuid) -> Result<BatchItem, String> {
    let task: Task =
        serde_json::from_str(&row.data).map_err(|e| format!("unreadable task data: {e}"))?;
    let operation = match row.operation.as_str() {
        "create" => Operation::Create,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        other => return Err(format!("unknown operation {other:?}")),
    };
    let changed_fields = row
        .changed_fields
        .iter()
        .map(|name| {
            Field::ALL
                .into_iter()
                .find(|field| field.as_str() == name)
                .ok_or_else(|| format!("unknown field {name:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BatchItem {
        id: row.op_id,
        task_id: row.task_id,
        operation,
        changed_fields: Some(changed_fields),
        data: WireTask::from_task(&task, device_id),
        created_at: row.created_at,
        retry_count: row.retry_count,
    })
}
