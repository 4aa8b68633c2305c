//! One sync round: flush the queue in batches, then (optionally) pull.
//!
//! A round takes the eligible queue rows in order (at most `batch_size` per request, at most
//! one per task), marks them in flight, sends them and records each answer, until nothing is
//! eligible, the server is unreachable, or it fails a whole batch. Then it pulls
//! `/api/changes` from the stored cursor, one slice at a time (at most [`SLICE_PAGES`] pages
//! or [`SLICE_TIME`]), until `has_more` is false: an automatic round pulls one slice and
//! leaves the rest to the next round, so local changes are pushed in between; a forced round
//! (`taskctl sync`) flushes again between slices and gives up after `forced_pull_budget`
//! (30 s) with an error that says so. A cursor that goes backwards or comes back within a round is
//! a bad answer ([`CursorCheck`]). The round only reports what happened; the engine decides
//! what that means for connectivity and when to pull again.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tasksync_proto::events::{ChangeOrigin, Event, FieldConflict, FieldValue, SyncProgress};
use tasksync_proto::ipc::{
    Kept, ResolvedConflict, ResolvedField, SyncErrorKind, SyncFailure, SyncReport,
};
use tasksync_proto::lww::same_value;
use tasksync_proto::wire::{
    BatchItem, BatchRequest, BatchResponse, ChangesResponse, Field, ItemStatus, Operation,
    ProcessedItem, WireConflict, WireTask, FIELDS_API_VERSION,
};
use tasksync_proto::{Task, Timestamp};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::{server_text, SyncError};
use super::pace::CursorCheck;
use super::settings::SyncSettings;
use super::transport::{check_batch_answer, check_changes, Transport};
use crate::events::Events;
use crate::store::{ItemOutcome, QueueRef, QueuedOp, Store, StoreError};

/// Changes pulled per request.
pub(crate) const PULL_PAGE: usize = 500;

/// Batches in flight at once.
const PIPELINE_DEPTH: usize = 4;

/// Most pages one pull slice takes (10,000 changes).
pub(crate) const SLICE_PAGES: usize = 20;
/// Most pages stored in one local transaction (2,000 changes): larger transactions write
/// fewer index pages per change, but hold the writer, and every local command, longer.
const STORE_PAGES: usize = 4;
/// Longest a pull slice runs before local changes get their turn.
pub(crate) const SLICE_TIME: Duration = Duration::from_secs(2);

/// Queue rows sent to the server and not yet answered (by local sequence number), shared
/// with [`SyncHandle`](super::SyncHandle) so `taskctl queue` can show them. Being in flight
/// is a state of this run only: after a crash every row is simply pending again, so it is
/// kept in memory rather than written for every row of every batch.
pub(crate) type InFlight = Arc<Mutex<HashSet<i64>>>;

/// The in-flight set; a poisoned lock still holds a usable set.
pub(crate) fn lock(in_flight: &InFlight) -> MutexGuard<'_, HashSet<i64>> {
    in_flight.lock().unwrap_or_else(|p| p.into_inner())
}

/// A queue row on its way to the server.
struct Outgoing {
    row: QueueRef,
    item: BatchItem,
    /// Failed attempts before this one.
    retries: u32,
}

/// What [`Round::launch`] did: the batch it sent, if any, and the rows it held back.
#[derive(Default)]
struct Launched {
    flight: Option<Flight>,
    held: Vec<QueueRef>,
}

/// A batch sent and not yet answered. Dropping it (the round was dropped, say at shutdown)
/// aborts its request, as dropping a live pull does.
struct Flight {
    items: Vec<Outgoing>,
    answer: JoinHandle<Result<BatchResponse, SyncError>>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.answer.abort();
    }
}

/// How a round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode {
    /// Send operations that still wait out a retry delay too (`taskctl sync`).
    pub(crate) force: bool,
    /// Pull after flushing.
    pub(crate) pull: bool,
}

/// What a round did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) synced: u64,
    /// Failed attempts of operations that are not dead-lettered.
    pub(crate) failed: u64,
    /// Operations dead-lettered by this round.
    pub(crate) dead: u64,
    /// Tasks whose stored row changed through what was pulled.
    pub(crate) pulled: u64,
    /// The conflicts the server resolved, field by field.
    pub(crate) resolved: Vec<ResolvedConflict>,
    pub(crate) errors: Vec<SyncFailure>,
    /// The server answered at least once.
    pub(crate) reached: bool,
    /// A request could not reach the server.
    pub(crate) offline: bool,
    /// The server refused our token.
    pub(crate) unauthorized: bool,
    /// The server asked us to come back later (408, 429, 502, 503, 504), after its
    /// `Retry-After` if it gave one.
    pub(crate) busy: Option<Option<Duration>>,
    /// What made the round fail as a whole: no answer, a refused token, a busy server, a
    /// nonsensical answer, a failed batch or a local failure. Item errors alone do not.
    pub(crate) round_error: Option<SyncFailure>,
    /// The pull stopped with more to come (`Some(true)` if its last slice changed stored
    /// tasks, so the rest follows at once; `Some(false)` if it changed nothing, such as our
    /// own operations coming back, or a server that repeats itself: the rest waits a short
    /// backoff).
    pub(crate) more_to_pull: Option<bool>,
    /// The server did not know our cursor, and the pull started again from the beginning.
    pub(crate) cursor_restarted: bool,
}

impl Outcome {
    pub(crate) fn note(&mut self, error: SyncError) {
        match &error {
            SyncError::Unreachable(_) => self.offline = true,
            SyncError::Unauthorized(_) => {
                self.unauthorized = true;
                self.reached = true;
            }
            SyncError::Busy { retry_after, .. } => {
                self.busy = Some(self.busy.flatten().max(*retry_after));
                self.reached = true;
            }
            // Says nothing about the server.
            SyncError::Local(_) => {}
            _ => self.reached = true,
        }
        let failure = SyncFailure::from(&error);
        if self.round_error.is_none() {
            self.round_error = Some(failure.clone());
        }
        if !self.errors.contains(&failure) {
            self.errors.push(failure);
        }
    }

    /// The round failed for a reason of its own (not an answer of the server's).
    fn failed(&mut self, failure: SyncFailure) {
        self.round_error.get_or_insert_with(|| failure.clone());
        self.errors.push(failure);
    }

    /// A storage failure: the round could not record what it did.
    fn store_failed(&mut self, error: StoreError) {
        self.failed(SyncFailure::new(
            SyncErrorKind::Local,
            format!("local error: {error}"),
        ));
    }

    /// Whether the server was reached and answered every request it was sent.
    pub(crate) fn succeeded(&self) -> bool {
        self.reached && self.round_error.is_none()
    }

    /// Whether pulling makes sense after the flush.
    fn may_pull(&self) -> bool {
        !self.offline && !self.unauthorized && self.busy.is_none()
    }

    /// The report for `taskctl sync`, counting `dead` dead-lettered operations as failed.
    pub(crate) fn report(&self, dead: u64) -> SyncReport {
        let mut errors = self.errors.clone();
        if dead > 0 {
            errors.push(SyncFailure::new(
                SyncErrorKind::DeadLettered,
                format!(
                    "{dead} operation(s) dead-lettered: see `taskctl queue --failed`, then `taskctl retry`"
                ),
            ));
        }
        SyncReport {
            success: self.reached && !self.offline && errors.is_empty(),
            synced_items: self.synced,
            failed_items: self.failed + dead,
            errors,
            offline: self.offline,
            pulled_items: self.pulled,
            conflicts: self.resolved.len() as u64,
            resolved: self.resolved.clone(),
        }
    }

    /// The `sync` event that ends the round: its report, counting the operations this round
    /// dead-lettered (a forced round's caller also counts those dead-lettered before).
    pub(crate) fn finished(&self) -> Event {
        Event::Sync(SyncProgress::RoundFinished(self.report(self.dead)))
    }
}

pub(crate) struct Round<'a> {
    pub(crate) store: &'a Store,
    pub(crate) events: &'a Events,
    pub(crate) in_flight: &'a InFlight,
    pub(crate) transport: &'a Arc<dyn Transport>,
    pub(crate) settings: &'a SyncSettings,
    /// What the engine knows of the server's sync API version.
    pub(crate) server_api: &'a ServerApi,
}

/// The server's sync API version as last learned from `/api/health` (0: not known yet).
#[derive(Debug, Default)]
pub(crate) struct ServerApi(AtomicU32);

impl ServerApi {
    /// A server known to speak this build's API.
    #[cfg(test)]
    pub(crate) fn current() -> ServerApi {
        ServerApi(AtomicU32::new(tasksync_proto::wire::SYNC_API_VERSION))
    }

    pub(crate) fn learn(&self, version: u32) {
        self.0.store(version, Ordering::Relaxed);
    }

    fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Whether a server of API version 1 can store `item` as it is (after
/// [`for_api_1`]): nothing of API 2 in its task, and nothing of it among its changed fields
/// (a create lists every field, and an empty one of API 2 is left out for it).
fn fits_api_1(item: &BatchItem) -> bool {
    !item.data.has_v2_fields()
        && (item.operation == Operation::Create
            || item
                .changed_fields
                .iter()
                .flatten()
                .all(|field| field.is_v1()))
}

/// `item` as a daemon of API 1 would have sent it: only the fields that server knows.
fn for_api_1(mut item: BatchItem) -> BatchItem {
    if let Some(fields) = &mut item.changed_fields {
        fields.retain(|field| field.is_v1());
    }
    item
}

impl Round<'_> {
    pub(crate) async fn run(&self, mode: Mode) -> Outcome {
        // No batch of an earlier round can still be in flight, and a batch that was taken but
        // never sent (its round failed) must become eligible again.
        lock(self.in_flight).clear();
        let mut outcome = Outcome::default();
        if self.server_api.get() < FIELDS_API_VERSION {
            // Not known, or an older server that may have been upgraded since: ask (only
            // then, so a current server costs no request).
            if let Ok(version) = self.transport.health(self.settings.request_timeout).await {
                self.server_api.learn(version);
            }
        }
        let started = Instant::now();
        let mut cursors = CursorCheck::default();
        let mut force = mode.force;
        loop {
            if let Err(e) = self.flush(force, &mut outcome).await {
                outcome.store_failed(e);
            }
            // A forced round sends waiting rows once; later flushes send only what is due.
            force = false;
            if !(mode.pull && outcome.may_pull()) {
                break;
            }
            match self.pull_slice(&mut cursors).await {
                Ok(slice) => {
                    outcome.reached = true;
                    outcome.pulled += slice.changed;
                    outcome.resolved.extend(slice.conflicts);
                    outcome.cursor_restarted |= slice.restarted;
                    if slice.finished {
                        break;
                    }
                    let budget = self.settings.forced_pull_budget;
                    if mode.force && started.elapsed() < budget {
                        continue;
                    }
                    outcome.more_to_pull = Some(slice.changed > 0);
                    if mode.force {
                        outcome.failed(SyncFailure::new(
                            SyncErrorKind::Unfinished,
                            format!(
                                "the pull is not finished after {budget:?}: the server still has \
                                 more changes; the rest follows in the background"
                            ),
                        ));
                    }
                    break;
                }
                Err(e) => {
                    outcome.note(e);
                    break;
                }
            }
        }
        if outcome.synced + outcome.failed + outcome.pulled > 0 || outcome.round_error.is_some() {
            tracing::info!(
                "sync round: {} operation(s) accepted, {} failed an attempt, {} task(s) changed by the pull, {} conflict(s) resolved{}",
                outcome.synced,
                outcome.failed,
                outcome.pulled,
                outcome.resolved.len(),
                outcome
                    .round_error
                    .as_ref()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            );
        }
        if outcome.succeeded() {
            let at = self.store.now();
            if let Err(e) = self.store.record_sync(at).await {
                outcome.store_failed(e);
            }
        }
        outcome
    }

    fn progress(&self, progress: SyncProgress) {
        self.events.publish(|| Event::Sync(progress));
    }

    /// Sends batches until nothing is eligible, the server is unreachable, or it fails a
    /// whole batch. Up to [`PIPELINE_DEPTH`] batches are in flight at once: while the server
    /// works on one, the daemon records the previous answer and prepares the next batch. The
    /// batches in flight never share a task (rows in flight block their task's later rows),
    /// so each task's operations still reach the server in order.
    async fn flush(&self, force: bool, outcome: &mut Outcome) -> Result<(), StoreError> {
        // Rows that had their attempt in this round: a forced round sends each row once.
        let mut done = HashSet::new();
        let mut held = Vec::new();
        let mut flights = VecDeque::new();
        let mut stopped = false;
        // Shrinks when the server answers 413 (too large): the rows go out again in halves.
        let mut limit = self.settings.batch_size;
        loop {
            // Fill the pipeline. Nothing eligible now may become eligible once an answer
            // lands (a task's next row waits for the one in flight), so this runs again
            // after every landing.
            while !stopped && flights.len() < PIPELINE_DEPTH {
                let launched = self.launch(force, &done, limit).await?;
                done.extend(launched.held.iter().map(|row| row.seq));
                held.extend(launched.held);
                match launched.flight {
                    Some(flight) => flights.push_back(flight),
                    None => break,
                }
            }
            let Some(mut flight) = flights.pop_front() else {
                if !held.is_empty() {
                    outcome.failed(SyncFailure::new(
                        SyncErrorKind::ServerTooOld,
                        format!(
                            "the sync server speaks sync API version {} and cannot store due \
                             dates, priorities, projects, tags or attributes: {} operation(s) \
                             using them stay queued until it is upgraded",
                            self.server_api.get().max(1),
                            held.len()
                        ),
                    ));
                }
                return Ok(());
            };
            // A push task that panicked (or was cancelled) says nothing about the server nor
            // the batch: a local error, and the rows stay queued.
            let answer = (&mut flight.answer)
                .await
                .unwrap_or_else(|e| Err(SyncError::Local(format!("the push task failed: {e}"))));
            if matches!(answer, Err(SyncError::TooLarge)) && flight.items.len() > 1 {
                limit = limit.min(flight.items.len() / 2).max(1);
                tracing::info!("the server found a batch too large; sending at most {limit} operation(s) a batch");
            } else {
                stopped |= answer.is_err();
            }
            let outcomes = self.outcomes_of(&flight.items, answer, outcome);
            done.extend(
                outcomes
                    .iter()
                    .filter(|(_, o)| matches!(o, ItemOutcome::Failed { .. }))
                    .map(|(row, _)| row.seq),
            );
            let count = |accepted: bool| {
                outcomes
                    .iter()
                    .filter(|(_, o)| match o {
                        ItemOutcome::Accepted { .. } => accepted,
                        ItemOutcome::Failed { .. } => !accepted,
                        _ => false,
                    })
                    .count() as u32
            };
            // Rows that were not answered (offline, busy, refused token) count nothing and
            // are not reported as answered.
            let answered = (count(true), count(false));
            self.land(&outcomes);
            let land = self.finish_batch(outcomes);
            // Record this answer and prepare the next batch together: the writer commits
            // both in one transaction. `biased` polls `land` first, so the writer records the
            // answer before it takes the next batch (which may retake unsent rows).
            let next = async {
                if stopped {
                    Ok(Launched::default())
                } else {
                    self.launch(force, &done, limit).await
                }
            };
            let (landed, next) = tokio::join!(biased; land, next);
            landed?;
            let next = next?;
            done.extend(next.held.iter().map(|row| row.seq));
            held.extend(next.held);
            let next = Ok::<_, StoreError>(next.flight);
            if answered != (0, 0) {
                self.progress(SyncProgress::BatchAnswered {
                    synced_items: answered.0,
                    failed_items: answered.1,
                });
            }
            if let Some(next) = next? {
                flights.push_back(next);
            }
        }
    }

    /// Rows whose answer is about to be recorded are no longer in flight.
    fn land(&self, outcomes: &[(QueueRef, ItemOutcome)]) {
        let mut in_flight = lock(self.in_flight);
        for (row, _) in outcomes {
            in_flight.remove(&row.seq);
        }
    }

    /// Records answers; reports the tasks that took the server's merged version, and the sync
    /// state of every task of the batch (`task_sync`).
    async fn finish_batch(&self, outcomes: Vec<(QueueRef, ItemOutcome)>) -> Result<(), StoreError> {
        let tasks: Vec<uuid::Uuid> = outcomes.iter().map(|(row, _)| row.task_id).collect();
        let adopted = self.store.finish_batch(outcomes).await?;
        publish_adopted(self.store, self.events, &adopted);
        self.events.publish_task_sync(self.store, tasks);
        Ok(())
    }

    /// Picks the next batch, marks it in flight and sends it; no flight when nothing is
    /// eligible. Rows the server's API cannot store are held back, unsent.
    async fn launch(
        &self,
        force: bool,
        done: &HashSet<i64>,
        limit: usize,
    ) -> Result<Launched, StoreError> {
        let mut launched = Launched::default();
        loop {
            let exclude = lock(self.in_flight)
                .union(done)
                .copied()
                .chain(launched.held.iter().map(|row| row.seq))
                .collect();
            let longest_wait = self.settings.retry.max;
            let rows = self
                .store
                .take_batch(limit, longest_wait, force, exclude)
                .await?;
            if rows.is_empty() {
                return Ok(launched);
            }
            lock(self.in_flight).extend(rows.iter().map(|row| row.seq));
            let (items, mut set_aside) = self.items_for(&rows);
            let items = self.fit_to_server(items, &mut set_aside, &mut launched.held);
            if !set_aside.is_empty() {
                self.land(&set_aside);
                self.finish_batch(set_aside).await?;
            }
            if items.is_empty() {
                continue;
            }
            let request = BatchRequest {
                device_id: self.store.device_id(),
                client_timestamp: self.store.now(),
                items: items.iter().map(|outgoing| outgoing.item.clone()).collect(),
            };
            self.progress(SyncProgress::BatchSent {
                items: items.len() as u32,
            });
            let transport = self.transport.clone();
            let answer = tokio::spawn(async move {
                let mut response = transport.push(&request).await?;
                check_batch_answer(&request, &mut response)?;
                Ok(response)
            });
            launched.flight = Some(Flight { items, answer });
            return Ok(launched);
        }
    }

    /// The items a server of the known API version can store, as it expects them; the rest
    /// are set aside unsent (no attempt counts) and listed in `held`.
    fn fit_to_server(
        &self,
        items: Vec<Outgoing>,
        set_aside: &mut Vec<(QueueRef, ItemOutcome)>,
        held: &mut Vec<QueueRef>,
    ) -> Vec<Outgoing> {
        if self.server_api.get() >= FIELDS_API_VERSION {
            return items;
        }
        let mut fit = Vec::with_capacity(items.len());
        for mut outgoing in items {
            if fits_api_1(&outgoing.item) {
                outgoing.item = for_api_1(outgoing.item);
                fit.push(outgoing);
            } else {
                set_aside.push((outgoing.row, ItemOutcome::Unsent));
                held.push(outgoing.row);
            }
        }
        fit
    }

    /// What the server's answer (or its absence) means for each row of a batch.
    ///
    /// Answers that blame items (an item `error`, a whole-batch 500 or other 4xx/5xx, an
    /// answer that makes no sense, a 413 for a single operation) count a failed attempt.
    /// Answers that blame the server or the path (no answer, 401, 408, 429, 502, 503, 504,
    /// a 413 for several operations, which go out again in smaller batches) count nothing:
    /// the rows simply stay queued.
    fn outcomes_of(
        &self,
        items: &[Outgoing],
        answer: Result<BatchResponse, SyncError>,
        outcome: &mut Outcome,
    ) -> Vec<(QueueRef, ItemOutcome)> {
        let unsent = |items: &[Outgoing]| {
            items
                .iter()
                .map(|outgoing| (outgoing.row, ItemOutcome::Unsent))
                .collect()
        };
        match answer {
            Ok(response) => {
                outcome.reached = true;
                items
                    .iter()
                    .zip(response.processed_items)
                    .map(|(outgoing, processed)| {
                        (
                            outgoing.row,
                            self.item_outcome(outgoing, processed, outcome),
                        )
                    })
                    .collect()
            }
            Err(SyncError::TooLarge) if items.len() > 1 => {
                outcome.reached = true;
                unsent(items)
            }
            Err(error) if !counts_an_attempt(&error) => {
                outcome.note(error);
                unsent(items)
            }
            Err(error) => {
                let message = error.to_string();
                outcome.note(error);
                items
                    .iter()
                    .map(|outgoing| {
                        (
                            outgoing.row,
                            self.failed_attempt(outcome, outgoing, message.clone()),
                        )
                    })
                    .collect()
            }
        }
    }

    /// A `conflict` event for each field where the server kept another device's value.
    fn publish_conflicts(&self, ours: &WireTask, resolved: &WireTask, conflict: &ResolvedConflict) {
        for field in conflict.fields.iter().filter(|f| f.kept == Kept::Remote) {
            self.events.publish(|| {
                Event::Conflict(FieldConflict {
                    task_id: resolved.id,
                    field: field.field.clone(),
                    kept: FieldValue::of(resolved, &field.field),
                    kept_device: resolved.device_id,
                    lost: FieldValue::of(ours, &field.field),
                    lost_device: self.store.device_id(),
                })
            });
        }
    }

    /// What one item's answer means for its row.
    fn item_outcome(
        &self,
        pending: &Outgoing,
        processed: ProcessedItem,
        outcome: &mut Outcome,
    ) -> ItemOutcome {
        match processed.status {
            ItemStatus::Success => {
                outcome.synced += 1;
                ItemOutcome::Accepted { resolved: None }
            }
            ItemStatus::Conflict => {
                outcome.synced += 1;
                if let Some(resolved) = &processed.resolved_data {
                    let conflict = describe_conflict(&pending.item, resolved);
                    tracing::info!(
                        "conflict on task {}: the server merged it ({})",
                        pending.item.task_id,
                        conflict
                            .fields
                            .iter()
                            .map(|f| format!("{} kept the {} value", f.field, f.kept))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    self.publish_conflicts(&pending.item.data, resolved, &conflict);
                    outcome.resolved.push(conflict);
                }
                ItemOutcome::Accepted {
                    resolved: processed.resolved_data,
                }
            }
            ItemStatus::Error => {
                let error = processed
                    .error
                    .as_deref()
                    .map_or_else(|| "rejected without a reason".into(), server_text);
                outcome.errors.push(SyncFailure::new(
                    SyncErrorKind::Rejected,
                    format!("task {}: {error}", pending.item.task_id),
                ));
                self.failed_attempt(outcome, pending, error)
            }
        }
    }

    /// Records a failed attempt: the next retry time, or the dead letter after the last one.
    fn failed_attempt(
        &self,
        outcome: &mut Outcome,
        pending: &Outgoing,
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
            outcome.dead += 1;
        } else {
            outcome.failed += 1;
            tracing::info!(
                "operation {} of task {} failed (attempt {attempts}): {error}",
                item.id,
                item.task_id
            );
        }
        let delay = self.settings.retry.delay(attempts);
        let now = self.store.now();
        let next =
            Timestamp::from_millis(now.as_millis() + delay.as_millis() as i64).unwrap_or(now);
        ItemOutcome::Failed {
            error,
            next_attempt_at: next,
            dead,
        }
    }

    /// The batch items for queue rows; rows that cannot be read are dead-lettered at once
    /// (they could never be sent) so they do not block the queue.
    fn items_for(&self, rows: &[QueuedOp]) -> (Vec<Outgoing>, Vec<(QueueRef, ItemOutcome)>) {
        let mut items = Vec::with_capacity(rows.len());
        let mut corrupt = Vec::new();
        for row in rows {
            match item_from_row(row, self.store.device_id()) {
                Ok(item) => items.push(Outgoing {
                    row: queue_ref(row),
                    item,
                    retries: row.entry.retry_count,
                }),
                Err(error) => {
                    tracing::error!(
                        "queue row {} is unreadable and is dead-lettered: {error}",
                        row.entry.id
                    );
                    let failed = ItemOutcome::Failed {
                        error,
                        next_attempt_at: self.store.now(),
                        dead: true,
                    };
                    corrupt.push((queue_ref(row), failed));
                }
            }
        }
        (items, corrupt)
    }

    /// Pulls from the stored cursor until the server has no more, [`SLICE_PAGES`] pages were
    /// stored, or [`SLICE_TIME`] passed. Pages are fetched and checked in groups of up to
    /// [`STORE_PAGES`], and a group is stored in one local transaction: a pull writes each
    /// index page it touches once per transaction, and random task ids spread every page of
    /// changes over most of the index. While a group is stored the next one is fetched, so
    /// the server's reads and the local writes overlap. Groups are stored in order; a group
    /// fetched ahead of a store that fails is dropped (the stored cursor did not move past
    /// it), and the pages fetched before a fetch fails are stored before the error is
    /// answered.
    pub(crate) async fn pull_slice(&self, cursors: &mut CursorCheck) -> Result<Slice, SyncError> {
        let started = Instant::now();
        let mut cursor = read_cursor(self.store, self.transport.base())?;
        let mut slice = Slice::default();
        let mut pages_left = SLICE_PAGES;
        let (mut group, mut fetch) = self
            .fetch_group(&mut cursor, cursors, pages_left.min(STORE_PAGES))
            .await;
        loop {
            pages_left = pages_left.saturating_sub(group.len());
            slice.received += group
                .iter()
                .map(|page| page.changes.len() as u64)
                .sum::<u64>();
            let has_more = group.last().is_none_or(|page| page.has_more);
            if fetch.is_ok() && has_more && pages_left > 0 && started.elapsed() < SLICE_TIME {
                let (stored, next) = tokio::join!(
                    self.store_pages(&mut slice, group),
                    self.fetch_group(&mut cursor, cursors, pages_left.min(STORE_PAGES))
                );
                stored?;
                (group, fetch) = next;
                continue;
            }
            self.store_pages(&mut slice, group).await?;
            match fetch {
                Ok(()) => {
                    slice.finished = !has_more;
                    return Ok(slice);
                }
                Err(SyncError::CursorUnknown(reason)) if !cursor.is_empty() => {
                    tracing::warn!(
                        "the sync server does not know our pull cursor {cursor:?} ({reason}); pulling everything again"
                    );
                    let restart = ChangesResponse {
                        changes: Vec::new(),
                        cursor: String::new(),
                        has_more: true,
                        conflicts: Vec::new(),
                    };
                    store_page(self.store, self.events, self.transport.base(), restart).await?;
                    *cursors = CursorCheck::default();
                    cursor.clear();
                    slice.restarted = true;
                    (group, fetch) = self
                        .fetch_group(&mut cursor, cursors, pages_left.clamp(1, STORE_PAGES))
                        .await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Fetches and checks pages from `cursor` (moving it past each) until `max_pages`, the
    /// server has no more, or a fetch or check fails: answers the pages and how it ended.
    async fn fetch_group(
        &self,
        cursor: &mut String,
        cursors: &mut CursorCheck,
        max_pages: usize,
    ) -> (Vec<ChangesResponse>, Result<(), SyncError>) {
        let mut group = Vec::new();
        while group.len() < max_pages {
            let mut page = match self.transport.changes(cursor, PULL_PAGE, None).await {
                Ok(page) => page,
                Err(error) => return (group, Err(error)),
            };
            let checked =
                check_changes(cursor, &mut page).and_then(|()| cursors.step(cursor, &page.cursor));
            if let Err(error) = checked {
                return (group, Err(error));
            }
            cursor.clone_from(&page.cursor);
            let has_more = page.has_more;
            group.push(page);
            if !has_more {
                break;
            }
        }
        (group, Ok(()))
    }

    /// Stores checked pages, in order, in one local transaction, and counts what they did.
    async fn store_pages(
        &self,
        slice: &mut Slice,
        pages: Vec<ChangesResponse>,
    ) -> Result<(), SyncError> {
        let Some(merged) = merge_pages(pages) else {
            return Ok(());
        };
        let stored = store_page(self.store, self.events, self.transport.base(), merged).await?;
        slice.changed += stored.changed;
        slice.conflicts.extend(stored.conflicts);
        Ok(())
    }
}

/// Consecutive pages as one: their changes and conflicts in order, the last one's cursor.
fn merge_pages(pages: Vec<ChangesResponse>) -> Option<ChangesResponse> {
    let mut pages = pages.into_iter();
    let mut merged = pages.next()?;
    for page in pages {
        merged.changes.extend(page.changes);
        merged.conflicts.extend(page.conflicts);
        merged.cursor = page.cursor;
        merged.has_more = page.has_more;
    }
    Some(merged)
}

/// What one pull slice did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Slice {
    /// Stored tasks that changed.
    pub(crate) changed: u64,
    /// The conflicts of the feed this device learned of.
    pub(crate) conflicts: Vec<ResolvedConflict>,
    /// Changes the server sent (our own coming back included).
    pub(crate) received: u64,
    /// The server said there is no more.
    pub(crate) finished: bool,
    /// The server did not know the cursor: the pull started again from the beginning.
    pub(crate) restarted: bool,
}

/// The stored pull cursor for the server at `base` (empty: from the start).
pub(crate) fn read_cursor(store: &Store, base: &str) -> Result<String, SyncError> {
    Ok(store
        .meta(&cursor_key(base))
        .map_err(store_error)?
        .unwrap_or_default())
}

/// What storing one page did.
pub(crate) struct StoredPage {
    /// Stored tasks that changed.
    pub(crate) changed: u64,
    /// The conflicts of the page this device took part in and learned of now.
    pub(crate) conflicts: Vec<ResolvedConflict>,
}

/// Stores one checked page of changes, its conflicts and its cursor, and publishes what
/// changed and each conflict learned.
pub(crate) async fn store_page(
    store: &Store,
    events: &Events,
    base: &str,
    page: ChangesResponse,
) -> Result<StoredPage, SyncError> {
    let pulled = store
        .store_pulled(page, cursor_key(base))
        .await
        .map_err(store_error)?;
    publish_adopted(store, events, &pulled.adopted);
    let changed = pulled.adopted.len() as u64;
    if changed > 0 {
        events.publish(|| {
            Event::Sync(SyncProgress::Pulled {
                pulled_items: changed,
            })
        });
    }
    let conflicts = pulled
        .conflicts
        .iter()
        .map(|conflict| learned_conflict(store, events, conflict))
        .collect();
    Ok(StoredPage { changed, conflicts })
}

/// Logs and publishes a conflict of the feed this device took part in; answers it as a
/// round reports it.
fn learned_conflict(store: &Store, events: &Events, conflict: &WireConflict) -> ResolvedConflict {
    let me = store.device_id();
    let kept = if conflict.kept_device == me {
        Kept::Local
    } else {
        Kept::Remote
    };
    tracing::info!(
        "conflict on task {}: {} was edited here and on another device; the {kept} value {} was kept, {} lost (see taskctl log)",
        conflict.task_id,
        conflict.field,
        server_text(&conflict.kept.to_string()),
        server_text(&conflict.lost.to_string()),
    );
    let values = (
        FieldValue::from_json(&conflict.field, &conflict.kept),
        FieldValue::from_json(&conflict.field, &conflict.lost),
    );
    if let (Some(kept), Some(lost)) = values {
        events.publish(|| {
            Event::Conflict(FieldConflict {
                task_id: conflict.task_id,
                field: conflict.field.clone(),
                kept,
                kept_device: conflict.kept_device,
                lost,
                lost_device: conflict.lost_device,
            })
        });
    }
    ResolvedConflict {
        task_id: conflict.task_id,
        title: store
            .get(conflict.task_id)
            .map(|task| task.title)
            .unwrap_or_default(),
        fields: vec![ResolvedField {
            field: conflict.field.clone(),
            kept,
        }],
    }
}

/// Reports tasks whose stored row took the server's version (pulled, or merged after a
/// conflict).
fn publish_adopted(store: &Store, events: &Events, adopted: &[uuid::Uuid]) {
    if !events.has_subscribers() {
        return;
    }
    for id in adopted {
        if let Ok(task) = store.get(*id) {
            events.publish(|| Event::TaskChanged {
                task,
                origin: ChangeOrigin::Remote,
            });
        }
    }
}

/// The database failed us: a local error, not the server's.
fn store_error(e: StoreError) -> SyncError {
    SyncError::Local(format!("cannot store pulled changes: {e}"))
}

/// Whether an error answer to a whole batch counts a failed attempt against each of its
/// operations. Only an answer that blames them does: the server rejected the batch, or sent
/// an answer that makes no sense. No answer, a refused token, a busy server and anything that
/// failed here count nothing. (A 413 for several operations counts nothing either: they go
/// out again in smaller batches; see `outcomes_of`.)
pub(crate) fn counts_an_attempt(error: &SyncError) -> bool {
    match error {
        SyncError::TooLarge
        | SyncError::Failed { .. }
        | SyncError::CursorUnknown(_)
        | SyncError::BadAnswer(_) => true,
        SyncError::Unreachable(_)
        | SyncError::Unauthorized(_)
        | SyncError::Busy { .. }
        | SyncError::Local(_) => false,
    }
}

/// Which of the pushed fields kept our value and which another device's newer one.
fn describe_conflict(item: &BatchItem, resolved: &WireTask) -> ResolvedConflict {
    let fields = item
        .changed_fields
        .clone()
        .unwrap_or_else(|| Field::all_of(&item.data))
        .into_iter()
        .map(|field| ResolvedField {
            kept: if same_value(&item.data, resolved, &field) {
                Kept::Local
            } else {
                Kept::Remote
            },
            field,
        })
        .collect();
    ResolvedConflict {
        task_id: item.task_id,
        title: resolved.title.clone(),
        fields,
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
        task_id: row.entry.task_id,
    }
}

/// Turns a queue row into the item the server expects.
fn item_from_row(row: &QueuedOp, device_id: uuid::Uuid) -> Result<BatchItem, String> {
    let task: Task =
        serde_json::from_str(&row.data).map_err(|e| format!("unreadable task data: {e}"))?;
    Ok(BatchItem {
        id: row.entry.id,
        task_id: row.entry.task_id,
        operation: row.entry.operation,
        changed_fields: Some(row.entry.changed_fields.clone()),
        data: WireTask::from_task(&task, device_id),
        created_at: row.entry.created_at,
        retry_count: row.entry.retry_count,
        base: match &row.base {
            Some(base) => {
                serde_json::from_str(base).map_err(|e| format!("unreadable base: {e}"))?
            }
            None => Default::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tasksync_proto::ipc::QueueState;
    use tasksync_proto::NewTask;

    use super::*;
    use crate::sync::transport::BoxFuture;

    /// Which answers to a whole batch count a failed attempt against its operations, and how
    /// reports name each. Only the server's rejection or a nonsensical answer blame the
    /// operations; the path, the server's mood and this device never do.
    #[test]
    fn only_a_rejection_or_a_bad_answer_counts_an_attempt() {
        let table = [
            (
                SyncError::Unreachable("refused".into()),
                false,
                SyncErrorKind::Offline,
            ),
            (
                SyncError::Unauthorized(401),
                false,
                SyncErrorKind::Unauthorized,
            ),
            (
                SyncError::Busy {
                    status: 503,
                    message: "later".into(),
                    retry_after: None,
                },
                false,
                SyncErrorKind::Busy,
            ),
            (SyncError::TooLarge, true, SyncErrorKind::Rejected),
            (
                SyncError::Failed {
                    status: 500,
                    message: "boom".into(),
                },
                true,
                SyncErrorKind::Rejected,
            ),
            (
                SyncError::CursorUnknown("since: \"9\"".into()),
                true,
                SyncErrorKind::Rejected,
            ),
            (
                SyncError::BadAnswer("nonsense".into()),
                true,
                SyncErrorKind::BadAnswer,
            ),
            (
                SyncError::Local("the push task failed".into()),
                false,
                SyncErrorKind::Local,
            ),
        ];
        let local = store_error(StoreError::Storage("disk full".into()));
        assert_eq!(
            local.kind(),
            SyncErrorKind::Local,
            "a store failure is ours"
        );
        for (error, counts, kind) in table {
            assert_eq!(counts_an_attempt(&error), counts, "{error:?}");
            let failure = SyncFailure::from(&error);
            assert_eq!(failure.kind, kind, "{error:?}");
            assert_eq!(failure.message, error.to_string());
        }
    }

    /// A round's errors land in its outcome with their kinds; a local one does not claim the
    /// server was reached.
    #[test]
    fn noted_errors_keep_their_kind_and_only_answers_mean_reached() {
        let mut outcome = Outcome::default();
        outcome.note(SyncError::Local("disk".into()));
        assert!(!outcome.reached);
        assert_eq!(
            outcome.round_error.as_ref().map(|e| e.kind),
            Some(SyncErrorKind::Local)
        );
        outcome.note(SyncError::Busy {
            status: 503,
            message: "later".into(),
            retry_after: None,
        });
        assert!(outcome.reached);
        let kinds: Vec<_> = outcome.errors.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [SyncErrorKind::Local, SyncErrorKind::Busy]);
        let report = outcome.report(2);
        assert_eq!(report.failed_items, 2);
        assert_eq!(
            report.errors.last().map(|e| e.kind),
            Some(SyncErrorKind::DeadLettered)
        );
    }

    /// A transport whose push panics, as a bug in the push task would.
    struct Panics;

    impl Transport for Panics {
        fn base(&self) -> &str {
            "http://panics.invalid"
        }

        fn health(&self, _: Duration) -> BoxFuture<'_, Result<u32, SyncError>> {
            Box::pin(async { Ok(tasksync_proto::wire::SYNC_API_VERSION) })
        }

        fn push<'a>(
            &'a self,
            _: &'a BatchRequest,
        ) -> BoxFuture<'a, Result<BatchResponse, SyncError>> {
            Box::pin(async { panic!("a bug in the push task") })
        }

        fn changes<'a>(
            &'a self,
            _: &'a str,
            _: usize,
            _: Option<Duration>,
        ) -> BoxFuture<'a, Result<ChangesResponse, SyncError>> {
            Box::pin(async { Err(SyncError::Unreachable("no".into())) })
        }
    }

    #[tokio::test]
    async fn a_panicked_push_task_is_a_local_error_and_counts_no_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tasks.db")).unwrap();
        for title in ["one", "two"] {
            store
                .create(NewTask {
                    title: title.into(),
                    description: None,
                    id: None,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let transport: Arc<dyn Transport> = Arc::new(Panics);
        let settings = SyncSettings {
            max_attempts: 1,
            ..SyncSettings::default()
        };
        let outcome = Round {
            store: &store,
            events: &Events::default(),
            in_flight: &InFlight::default(),
            transport: &transport,
            settings: &settings,
            server_api: &ServerApi::current(),
        }
        .run(Mode {
            force: true,
            pull: false,
        })
        .await;
        assert!(!outcome.succeeded());
        assert_eq!((outcome.synced, outcome.failed, outcome.dead), (0, 0, 0));
        let error = outcome.round_error.clone().expect("a round error");
        assert_eq!(error.kind, SyncErrorKind::Local, "{error:?}");
        assert!(error.message.contains("push task failed"), "{error:?}");
        // Even with a budget of one attempt, nothing is dead-lettered: the rows wait, unsent.
        let queue = store.queue(false).unwrap();
        assert_eq!(queue.len(), 2);
        for row in &queue {
            assert_eq!(row.entry.state, QueueState::Pending, "{row:?}");
            assert_eq!(row.entry.retry_count, 0, "{row:?}");
        }
    }

    /// A transport whose push never answers, and says when its request is dropped.
    struct Hangs(Arc<std::sync::atomic::AtomicBool>);

    struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Transport for Hangs {
        fn base(&self) -> &str {
            "http://hangs.invalid"
        }

        fn health(&self, _: Duration) -> BoxFuture<'_, Result<u32, SyncError>> {
            Box::pin(async { Ok(tasksync_proto::wire::SYNC_API_VERSION) })
        }

        fn push<'a>(
            &'a self,
            _: &'a BatchRequest,
        ) -> BoxFuture<'a, Result<BatchResponse, SyncError>> {
            let guard = SetOnDrop(self.0.clone());
            Box::pin(async move {
                let _guard = guard;
                std::future::pending().await
            })
        }

        fn changes<'a>(
            &'a self,
            _: &'a str,
            _: usize,
            _: Option<Duration>,
        ) -> BoxFuture<'a, Result<ChangesResponse, SyncError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_dropped_round_aborts_its_requests_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tasks.db")).unwrap();
        store
            .create(NewTask {
                title: "waits".into(),
                description: None,
                id: None,
                ..Default::default()
            })
            .await
            .unwrap();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let transport: Arc<dyn Transport> = Arc::new(Hangs(dropped.clone()));
        let settings = SyncSettings::default();
        let events = Events::default();
        let in_flight = InFlight::default();
        let round = Round {
            store: &store,
            events: &events,
            in_flight: &in_flight,
            transport: &transport,
            settings: &settings,
            server_api: &ServerApi::current(),
        };
        let mode = Mode {
            force: true,
            pull: false,
        };
        let timed_out = tokio::time::timeout(Duration::from_millis(200), round.run(mode)).await;
        assert!(timed_out.is_err(), "the push never answers");
        for _ in 0..100 {
            if dropped.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the push task outlived its round");
    }
}
