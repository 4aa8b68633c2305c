//! `POST /api/sync`, `GET /api/status` and `GET /api/health`.
//!
//! `/api/status` counts queued operations two ways:
//! - `pending_sync_count`: operations still to be sent (waiting, or in flight), the number
//!   `taskctl status` calls `pending`; dead-lettered operations are not in it.
//! - `sync_queue_size`: every row in the sync queue, dead-lettered ones included; it is
//!   `pending_sync_count` plus `taskctl status`'s `failed`.
//!
//! `is_online` is true only while the daemon reaches its sync server (false when local only);
//! `last_sync_timestamp` is the end of the last round that reached it, or null.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;
use tasksync_proto::ipc::{StatusInfo, SyncFailure, SyncReport};
use tasksync_proto::wire::HealthResponse;
use tasksync_proto::Timestamp;

use tasksync_http::{json_response, ApiError, HttpResponse};

use crate::app::App;

/// The body of `POST /api/sync`, on success and on 503 alike.
#[derive(Debug, Serialize)]
struct SyncBody {
    success: bool,
    synced_items: u64,
    failed_items: u64,
    errors: Vec<SyncFailure>,
}

/// The body of `GET /api/status` and of the `status` event: the original challenge's four
/// fields, then those of `taskctl status --json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusBody {
    pending_sync_count: u64,
    last_sync_timestamp: Option<Timestamp>,
    is_online: bool,
    sync_queue_size: u64,
    #[serde(flatten)]
    info: StatusInfo,
}

/// `POST /api/sync`: one sync round now. 200 when the server was reached (`success` says
/// whether everything went), 503 when it could not be (offline, or no server configured).
pub(crate) async fn sync(app: &App) -> Result<HttpResponse, ApiError> {
    let report: SyncReport = app.sync.sync_now().await;
    let status = if report.offline {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = SyncBody {
        success: report.success,
        synced_items: report.synced_items,
        failed_items: report.failed_items,
        errors: report.errors,
    };
    Ok(json_response(status, &body))
}

/// `GET /api/status`.
pub(crate) async fn status(app: &Arc<App>) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, &status_body(app).await?))
}

/// What `GET /api/status` answers.
pub(crate) async fn status_body(app: &Arc<App>) -> Result<StatusBody, ApiError> {
    let info = app.scan(App::status).await?;
    Ok(StatusBody {
        pending_sync_count: info.pending,
        last_sync_timestamp: info.last_sync_at,
        is_online: info.online,
        sync_queue_size: info.pending + info.failed,
        info,
    })
}

/// `GET /api/health`: the daemon answers; needs no token.
pub(crate) fn health() -> HttpResponse {
    json_response(
        StatusCode::OK,
        &HealthResponse {
            status: "ok".into(),
            timestamp: Timestamp::now(),
        },
    )
}
