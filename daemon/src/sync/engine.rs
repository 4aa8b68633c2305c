//! The sync engine task: one sync round at a time, flush then pull.
//!
//! A round takes queue rows in order (at most `batch_size` per request), marks them in
//! flight, sends them, and records each answer; it repeats until nothing is eligible. Then it
//! pulls `/api/changes` from the stored cursor until `has_more` is false. Commands never wait
//! for any of this: the engine talks to the store like any other client of the writer.

use std::sync::Arc;
use std::time::Duration;

use tasksync_proto::ipc::SyncReport;
use tasksync_proto::wire::{BatchItem, BatchRequest, Field, ItemStatus, Operation, WireTask};
use tasksync_proto::{Task, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use super::backoff::RetryPolicy;
use super::client::{SyncClient, SyncError};
use crate::service::shutdown::Shutdown;
use crate::store::{ItemOutcome, QueuedOp, Store, StoreError, SyncWrite};

/// Changes pulled per request.
const PULL_PAGE: usize = 500;

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Base URL of the sync server; `None` = local only.
    pub server: Option<String>,
    pub token: Option<String>,
    /// Most operations per `POST /api/batch` (`SYNC_BATCH_SIZE`).
    pub batch_size: usize,
    /// Failed attempts before an operation is dead-lettered (`SYNC_RETRY_ATTEMPTS`).
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            server: None,
            token: None,
            batch_size: 50,
            max_attempts: 3,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether the daemon can reach its sync server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// No server configured.
    LocalOnly,
    Online,
    Offline,
}

impl Connectivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Connectivity::LocalOnly => "local-only",
            Connectivity::Online => "online",
            Connectivity::Offline => "offline",
        }
    }
}

enum Request {
    /// Run a round now (resending operations that wait out a retry delay) and report.
    SyncNow(oneshot::Sender<SyncReport>),
}

/// Handle to the engine, shared by the front ends.
#[derive(Clone)]
pub struct SyncHandle {
    requests: mpsc::Sender<Request>,
    connectivity: watch::Receiver<Connectivity>,
    server: Option<String>,
}

impl SyncHandle {
    /// Runs a sync round now, after any round already running, and returns its report.
    pub async fn sync_now(&self) -> SyncReport {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::SyncNow(reply)).await.is_err() {
            return stopped_report();
        }
        answer.await.unwrap_or_else(|_| stopped_report())
    }

    pub fn connectivity(&self) -> Connectivity {
        *self.connectivity.borrow()
    }

    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }
}

fn stopped_report() -> SyncReport {
    SyncReport {
        success: false,
        synced_items: 0,
        failed_items: 0,
        errors: vec!["the sync engine is shutting down".into()],
        offline: true,
    }
}

/// Starts the engine task.
pub fn spawn(
    store: Arc<Store>,
    settings: SyncSettings,
    shutdown: Shutdown,
) -> Result<SyncHandle, String> {
    let client = match &settings.server {
        Some(url) => Some(SyncClient::new(
            url,
            settings.token.clone(),
            settings.request_timeout,
        )?),
        None => None,
    };
    let initial = if client.is_some() {
        Connectivity::Offline
    } else {
        Connectivity::LocalOnly
    };
    let (connectivity_tx, connectivity) = watch::channel(initial);
    let (requests, receiver) = mpsc::channel(64);
    let server = client.as_ref().map(|c| c.base().to_string());
    let engine = Engine {
        store,
        client,
        settings,
        connectivity: connectivity_tx,
    };
    tokio::spawn(engine.run(receiver, shutdown));
    Ok(SyncHandle {
        requests,
        connectivity,
        server,
    })
}

struct Engine {
    store: Arc<Store>,
    client: Option<SyncClient>,
    settings: SyncSettings,
    connectivity: watch::Sender<Connectivity>,
}

/// What one round did so far.
#[derive(Default)]
struct Tally {
    synced: u64,
    /// Failed attempts of operations that are not dead-lettered.
    failed: u64,
    errors: Vec<String>,
    reached: bool,
    offline: bool,
}

impl Engine {
    async fn run(self, mut requests: mpsc::Receiver<Request>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::SyncNow(reply)) => {
                        let report = self.round(true).await;
                        let _ = reply.send(report);
                    }
                    None => return,
                },
                _ = shutdown.requested() => return,
            }
        }
    }

    /// One sync round: flush, then pull if the server was reached. `force` sends operations
    /// that still wait out a retry delay too.
    async fn round(&self, force: bool) -> SyncReport {
        let Some(client) = &self.client else {
            return SyncReport {
                success: false,
                synced_items: 0,
                failed_items: 0,
                errors: vec![
                    "no sync server configured (local only): set --server or TASKSYNC_SERVER_URL"
                        .into(),
                ],
                offline: true,
            };
        };
        let mut tally = Tally::default();
        if let Err(e) = self.flush(client, force, &mut tally).await {
            tally.errors.push(e.to_string());
        }
        if tally.reached || !tally.offline {
            match self.pull(client).await {
                Ok(pulled) => {
                    tally.reached = true;
                    if pulled > 0 {
                        tracing::info!("pulled {pulled} change(s)");
                    }
                }
                Err(e) => self.note_failure(&mut tally, e),
            }
        }
        if tally.reached {
            if let Err(e) = self
                .store
                .sync_write(SyncWrite::RecordSync {
                    at: Timestamp::now(),
                })
                .await
            {
                tally.errors.push(e.to_string());
            }
        }
        let dead = match self.store.counts() {
            Ok(counts) => counts.failed,
            Err(e) => {
                tally.errors.push(e.to_string());
                0
            }
        };
        if dead > 0 {
            tally.errors.push(format!("{dead} operation(s) dead-lettered: see `taskctl queue --failed`, then `taskctl retry`"));
        }
        SyncReport {
            success: tally.reached && !tally.offline && tally.errors.is_empty(),
            synced_items: tally.synced,
            failed_items: tally.failed + dead,
            errors: tally.errors,
            offline: tally.offline,
        }
    }

    fn set_connectivity(&self, state: Connectivity) {
        let changed = self.connectivity.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        if changed {
            tracing::info!("sync server is now {}", state.as_str());
        }
    }

    fn note_failure(&self, tally: &mut Tally, error: SyncError) {
        match error {
            SyncError::Unreachable(_) => {
                tally.offline = true;
                self.set_connectivity(Connectivity::Offline);
            }
            _ => {
                tally.reached = true;
                self.set_connectivity(Connectivity::Online);
            }
        }
        tally.errors.push(error.to_string());
    }

    /// Sends batches until nothing is eligible, the server is unreachable, or it fails a
    /// whole batch.
    async fn flush(
        &self,
        client: &SyncClient,
        force: bool,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
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
            let answer = client.push(&request).await;
            let whole_batch_failed = answer.is_err();
            let outcomes: Vec<(i64, ItemOutcome)> = match answer {
                Ok(response) => {
                    tally.reached = true;
                    self.set_connectivity(Connectivity::Online);
                    items
                        .iter()
                        .zip(response.processed_items)
                        .map(|((seq, item, retries), processed)| {
                            let outcome = match processed.status {
                                ItemStatus::Success | ItemStatus::Conflict => {
                                    tally.synced += 1;
                                    if processed.status == ItemStatus::Conflict {
                                        tracing::info!(
                                            "conflict on task {}: adopted the server's merge",
                                            item.task_id
                                        );
                                    }
                                    ItemOutcome::Accepted {
                                        resolved: processed.resolved_data,
                                    }
                                }
                                ItemStatus::Error => {
                                    let error = processed
                                        .error
                                        .unwrap_or_else(|| "rejected without a reason".into());
                                    tally.errors.push(format!("task {}: {error}", item.task_id));
                                    self.failed_attempt(tally, *retries, error, item)
                                }
                            };
                            (*seq, outcome)
                        })
                        .collect()
                }
                Err(SyncError::Unreachable(reason)) => {
                    self.note_failure(tally, SyncError::Unreachable(reason));
                    seqs.iter().map(|seq| (*seq, ItemOutcome::Unsent)).collect()
                }
                Err(error @ SyncError::Unauthorized(_)) => {
                    self.note_failure(tally, error);
                    seqs.iter().map(|seq| (*seq, ItemOutcome::Unsent)).collect()
                }
                Err(error) => {
                    let message = error.to_string();
                    self.note_failure(tally, error);
                    items
                        .iter()
                        .map(|(seq, item, retries)| {
                            (
                                *seq,
                                self.failed_attempt(tally, *retries, message.clone(), item),
                            )
                        })
                        .collect()
                }
            };
            let sent = outcomes.len();
            self.store
                .sync_write(SyncWrite::FinishBatch { outcomes })
                .await?;
            tracing::debug!("batch of {sent} operation(s) answered");
            if whole_batch_failed {
                return Ok(());
            }
        }
    }

    /// Records a failed attempt: the next retry time, or the dead letter after the last one.
    fn failed_attempt(
        &self,
        tally: &mut Tally,
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
            tally.failed += 1;
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
                    corrupt.push((
                        row.seq,
                        ItemOutcome::Failed {
                            error,
                            next_attempt_at: Timestamp::now(),
                            dead: true,
                        },
                    ));
                }
            }
        }
        (items, corrupt)
    }

    /// Pulls every change since the stored cursor, one local transaction per page.
    async fn pull(&self, client: &SyncClient) -> Result<u64, SyncError> {
        let store_error =
            |e: StoreError| SyncError::BadAnswer(format!("cannot store pulled changes: {e}"));
        let mut cursor = self
            .store
            .meta("pull_cursor")
            .map_err(store_error)?
            .unwrap_or_default();
        let mut pulled = 0;
        loop {
            let page = client.changes(&cursor, PULL_PAGE).await?;
            self.set_connectivity(Connectivity::Online);
            if page.cursor == cursor && page.has_more {
                return Err(SyncError::BadAnswer(
                    "has_more with a cursor that did not move".into(),
                ));
            }
            pulled += page.changes.len() as u64;
            cursor = page.cursor.clone();
            let has_more = page.has_more;
            self.store
                .sync_write(SyncWrite::ApplyPulled {
                    changes: page.changes,
                    cursor: page.cursor,
                })
                .await
                .map_err(store_error)?;
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
