//! One sync round: flush the queue in batches, then (optionally) pull.
//!
//! A round takes the eligible queue rows in order (at most `batch_size` per request, at most
//! one per task), marks them in flight, sends them and records each answer, until nothing is
//! eligible, the server is unreachable, or it fails a whole batch. Then it pulls
//! `/api/changes` from the stored cursor until `has_more` is false. The round only reports
//! what happened; the engine decides what that means for connectivity.

use tasksync_proto::events::{Event, SyncProgress};
use tasksync_proto::ipc::SyncReport;
use tasksync_proto::wire::{BatchItem, BatchRequest, Field, ItemStatus, Operation, WireTask};
use tasksync_proto::{Task, Timestamp};

use super::client::{SyncClient, SyncError};
use super::engine::SyncSettings;
use crate::store::{ItemOutcome, QueuedOp, Store, StoreError, SyncWrite};

/// Changes pulled per request.
const PULL_PAGE: usize = 500;

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
}

impl Outcome {
    fn note(&mut self, error: SyncError) {
        match error {
            SyncError::Unreachable(_) => self.offline = true,
            _ => self.reached = true,
        }
        self.errors.push(error.to_string());
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
    pub client: &'a SyncClient,
    pub settings: &'a SyncSettings,
}

impl Round<'_> {
    pub async fn run(&self, mode: Mode) -> Outcome {
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
    /// whole batch.
    async fn flush(&self, force: bool, outcome: &mut Outcome) -> Result<(), StoreError> {
        let round_start = Timestamp::now();
        loop {
            let rows = self.store.next_batch(
                self.settings.batch_size,
                Timestamp::now(),
                force,
                round_start,
            )?;
            if rows.is_empty() {
                return Ok(());
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
            let seqs: Vec<i64> = items.iter().map(|(seq, _, _)| *seq).collect();
            self.store
                .sync_write(SyncWrite::BeginBatch { seqs: seqs.clone() })
                .await?;
            let request = BatchRequest {
                device_id: self.store.device_id(),
                client_timestamp: Timestamp::now(),
                items: items.iter().map(|(_, item, _)| item.clone()).collect(),
            };
            self.progress(SyncProgress::BatchSent {
                items: items.len() as u32,
            });
            let answer = self.client.push(&request).await;
            let whole_batch_failed = answer.is_err();
            let (synced_before, failed_before) = (outcome.synced, outcome.failed);
            let outcomes: Vec<(i64, ItemOutcome)> = match answer {
                Ok(response) => {
                    outcome.reached = true;
                    items
                        .iter()
                        .zip(response.processed_items)
                        .map(|((seq, item, retries), processed)| {
                            let result = match processed.status {
                                ItemStatus::Success | ItemStatus::Conflict => {
                                    outcome.synced += 1;
                                    if processed.status == ItemStatus::Conflict {
                                        tracing::info!(
                                            "conflict on task {}: the server merged it; adopting its version",
                                            item.task_id
                                        );
                                    }
                                    ItemOutcome::Accepted { resolved: processed.resolved_data }
                                }
                                ItemStatus::Error => {
                                    let error = processed.error.unwrap_or_else(|| "rejected without a reason".into());
                                    outcome.errors.push(format!("task {}: {error}", item.task_id));
                                    self.failed_attempt(outcome, *retries, error, item)
                                }
                            };
                            (*seq, result)
                        })
                        .collect()
                }
                Err(error @ (SyncError::Unreachable(_) | SyncError::Unauthorized(_))) => {
                    outcome.note(error);
                    seqs.iter().map(|seq| (*seq, ItemOutcome::Unsent)).collect()
                }
                Err(error) => {
                    let message = error.to_string();
                    outcome.note(error);
                    items
                        .iter()
                        .map(|(seq, item, retries)| {
                            (
                                *seq,
                                self.failed_attempt(outcome, *retries, message.clone(), item),
                            )
                        })
                        .collect()
                }
            };
            let answered = outcomes.len();
            self.store
                .sync_write(SyncWrite::FinishBatch { outcomes })
                .await?;
            self.progress(SyncProgress::BatchAnswered {
                synced: (outcome.synced - synced_before) as u32,
                failed: (outcome.failed - failed_before) as u32,
            });
            tracing::debug!("batch of {answered} operation(s) answered");
            if whole_batch_failed {
                return Ok(());
            }
        }
    }

    /// Records a failed attempt: the next retry time, or the dead letter after the last one.
    fn failed_attempt(
        &self,
        outcome: &mut Outcome,
        retries: u32,
        error: String,
        item: &BatchItem,
    ) -> ItemOutcome {
        let attempts = retries + 1;
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
    #[allow(clippy::type_complexity)]
    fn items_for(
        &self,
        rows: &[QueuedOp],
    ) -> (Vec<(i64, BatchItem, u32)>, Vec<(i64, ItemOutcome)>) {
        let mut items = Vec::with_capacity(rows.len());
        let mut corrupt = Vec::new();
        for row in rows {
            match item_from_row(row, self.store.device_id()) {
                Ok(item) => items.push((row.seq, item, row.retry_count)),
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
                    corrupt.push((row.seq, failed));
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
            .meta("pull_cursor")
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
