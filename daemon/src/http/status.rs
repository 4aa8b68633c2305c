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
use tasksync_proto::ipc::{StatusBody, SyncReport};
use tasksync_proto::wire::HealthResponse;
use tasksync_proto::Timestamp;

use tasksync_http::{json_response, ApiError, HttpResponse};

use crate::app::App;

/// `POST /api/sync`: one sync round now. 200 when the server was reached (`success` says
/// whether everything went), 503 when it could not be (offline, or no server configured).
/// The body, on success and on 503 alike, is the sync report of `taskctl sync --json` and of
/// the `sync` event: `{success, synced_items, failed_items, errors, ...}`.
pub(crate) async fn sync(app: &App) -> Result<HttpResponse, ApiError> {
    let report: SyncReport = app.sync.sync_now().await;
    let status = if report.offline {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &report))
}

/// `GET /api/status`: the status object ([`StatusBody`]), also the `status` event's.
pub(crate) async fn status(app: &Arc<App>) -> Result<HttpResponse, ApiError> {
    let info = app.scan(App::status).await?;
    Ok(json_response(StatusCode::OK, &StatusBody::from(&info)))
}

/// `GET /api/metrics`: the daemon's metrics in the Prometheus text format.
pub(crate) async fn metrics(app: &Arc<App>) -> Result<HttpResponse, ApiError> {
    let counts = app.scan(|app| app.store.counts()).await?;
    let text = app
        .metrics
        .render(counts.pending, counts.failed, app.sync.connectivity().state);
    Ok(tasksync_http::text_response(
        crate::metrics::CONTENT_TYPE,
        text,
    ))
}

/// `GET /api/health`: the daemon answers; needs no token. The sync server's health body plus
/// the local API's version.
pub(crate) fn health() -> HttpResponse {
    json_response(
        StatusCode::OK,
        &HealthResponse {
            status: "ok".into(),
            timestamp: Timestamp::now(),
            api_version: tasksync_proto::ipc::LOCAL_API_VERSION,
        },
    )
}
