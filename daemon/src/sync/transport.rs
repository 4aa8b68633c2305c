//! The seam between the sync engine and the server: push a batch, pull changes, check health.
//!
//! [`SyncClient`] speaks HTTP to a real `tasksync-server`; tests put an in-memory server
//! behind the same trait (`sync::fake_server`) and drive whole sync rounds without a network.
//! Whatever is behind it, its answers are checked here before anything is stored: a server
//! that lies gets a [`SyncError::BadAnswer`], never a say over the local database.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tasksync_proto::events::FieldValue;
use tasksync_proto::wire::{BatchRequest, BatchResponse, ChangesResponse, ItemStatus};

use super::client::{SyncClient, SyncError};

/// A boxed future, so the trait can be used as `dyn Transport`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the sync engine needs from a sync server.
pub(crate) trait Transport: Send + Sync + 'static {
    /// The server's base URL (what status shows, and what the pull cursor is kept under).
    fn base(&self) -> &str;

    /// `GET /api/health`, answered within `timeout`: the server's sync API version.
    fn health(&self, timeout: Duration) -> BoxFuture<'_, Result<u32, SyncError>>;

    /// `POST /api/batch`.
    fn push<'a>(
        &'a self,
        batch: &'a BatchRequest,
    ) -> BoxFuture<'a, Result<BatchResponse, SyncError>>;

    /// `GET /api/changes`; with `wait`, a live pull held until a change lands.
    fn changes<'a>(
        &'a self,
        since: &'a str,
        limit: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<ChangesResponse, SyncError>>;
}

impl Transport for SyncClient {
    fn base(&self) -> &str {
        SyncClient::base(self)
    }

    fn health(&self, timeout: Duration) -> BoxFuture<'_, Result<u32, SyncError>> {
        Box::pin(SyncClient::health(self, timeout))
    }

    fn push<'a>(
        &'a self,
        batch: &'a BatchRequest,
    ) -> BoxFuture<'a, Result<BatchResponse, SyncError>> {
        Box::pin(SyncClient::push(self, batch))
    }

    fn changes<'a>(
        &'a self,
        since: &'a str,
        limit: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<ChangesResponse, SyncError>> {
        Box::pin(SyncClient::changes(self, since, limit, wait))
    }
}

/// Checks that a batch answer matches the request item for item, and that every conflict
/// carries a merged task of the right task. A merged task that fails today's validation (text
/// an older version let in) is dropped with a warning: the operation still counts as accepted,
/// and the local version stays, rather than failing the batch again and again.
pub(crate) fn check_batch_answer(
    batch: &BatchRequest,
    response: &mut BatchResponse,
) -> Result<(), SyncError> {
    if response.processed_items.len() != batch.items.len() {
        return Err(SyncError::BadAnswer(format!(
            "{} answers for {} items",
            response.processed_items.len(),
            batch.items.len()
        )));
    }
    for (item, processed) in batch.items.iter().zip(&mut response.processed_items) {
        if processed.client_id != item.id {
            return Err(SyncError::BadAnswer(format!(
                "answer for {} where {} was expected",
                processed.client_id, item.id
            )));
        }
        if processed.status == ItemStatus::Conflict {
            let resolved = processed.resolved_data.as_ref().ok_or_else(|| {
                SyncError::BadAnswer(format!("conflict for {} without resolved_data", item.id))
            })?;
            if resolved.id != item.task_id {
                return Err(SyncError::BadAnswer(format!(
                    "resolved_data for {} names another task",
                    item.id
                )));
            }
            if let Err(e) = resolved.validate() {
                tracing::warn!(
                    "the server's merged version of task {} is invalid ({e}); keeping the local version",
                    item.task_id
                );
                processed.resolved_data = None;
            }
        }
    }
    Ok(())
}

/// Checks that the page does not claim more to come from a cursor that did not move or with
/// an empty page (either would make the puller loop), and leaves out pulled tasks that fail validation (text an
/// older version let in), each with a warning: one bad task must not stop every later pull.
pub(crate) fn check_changes(since: &str, page: &mut ChangesResponse) -> Result<(), SyncError> {
    let sent = page.changes.len();
    page.changes.retain(|task| match task.validate() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("skipping pulled task {}: {e}", task.id);
            false
        }
    });
    page.conflicts.retain(|conflict| {
        let sense = FieldValue::from_json(&conflict.field, &conflict.kept).is_some()
            && FieldValue::from_json(&conflict.field, &conflict.lost).is_some();
        if !sense {
            tracing::warn!(
                "skipping a pulled conflict on task {} whose values are not {} values",
                conflict.task_id,
                conflict.field
            );
        }
        sense
    });
    if page.has_more && page.cursor == since {
        return Err(SyncError::BadAnswer(
            "has_more with a cursor that did not move".into(),
        ));
    }
    if page.has_more && sent == 0 && page.conflicts.is_empty() {
        // A page holds up to the limit asked for; an empty one with more to come is paging
        // that goes nowhere.
        return Err(SyncError::BadAnswer("has_more with an empty page".into()));
    }
    Ok(())
}
