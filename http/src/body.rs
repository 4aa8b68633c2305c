//! Request bodies: read whole under a size cap and a time limit, or drained.
//!
//! A body over the cap is answered with 413 after reading and discarding up to
//! `DRAIN_BYTES` more of it, so that a client still sending can finish and read the answer
//! instead of meeting a reset connection; draining stops as soon as the client pauses for
//! `DRAIN_STALL`, so one that announced a large body and sends nothing is answered at once.
//! A client that sent `Expect: 100-continue` is answered before it sends anything.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, CONTENT_LENGTH, EXPECT};
use hyper::StatusCode;

use crate::error::ApiError;

/// How much of a refused body is read and thrown away before answering.
pub(crate) const DRAIN_BYTES: usize = 4 * 1024 * 1024;
/// How long a body may take to arrive (408 past it).
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a pause ends the draining of a refused body.
pub(crate) const DRAIN_STALL: Duration = Duration::from_secs(1);

/// A request's body, read at most once; call [`RequestBody::drain`] before answering so that
/// what no handler read does not reset the connection.
pub struct RequestBody {
    body: Option<Incoming>,
    limit: usize,
    declared: Option<u64>,
    expects_continue: bool,
}

impl RequestBody {
    /// The body of a request with `headers`, of which at most `limit` bytes are taken.
    pub fn new(headers: &HeaderMap, body: Incoming, limit: usize) -> Self {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let expects_continue = headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        RequestBody {
            body: Some(body),
            limit,
            declared,
            expects_continue,
        }
    }

    /// The whole body: 413 over the limit, 408 when it arrives too slowly, 400 when the
    /// connection fails under it; empty when it was read already.
    pub async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        let too_large = ApiError::too_large(format!("body is larger than {} bytes", self.limit));
        if self.declared.is_some_and(|len| len > self.limit as u64) {
            self.drain().await;
            return Err(too_large);
        }
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        match tokio::time::timeout(BODY_TIMEOUT, read_capped(body, self.limit)).await {
            Ok(Ok(Some(bytes))) => Ok(bytes),
            Ok(Ok(None)) => Err(too_large),
            Ok(Err(error)) => Err(ApiError::bad_request(format!(
                "cannot read the body: {error}"
            ))),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body took longer than {BODY_TIMEOUT:?} to arrive"),
            )),
        }
    }

    /// Reads and throws away what is left of the body (bounded), unless the client waits for
    /// `100 Continue` before sending it or it is too large to be worth reading.
    pub async fn drain(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        let limit = self.limit + DRAIN_BYTES;
        let worth_it = !self.expects_continue
            && !body.is_end_stream()
            && self.declared.is_none_or(|len| len <= limit as u64);
        if worth_it {
            let _ = tokio::time::timeout(BODY_TIMEOUT, discard(body, limit)).await;
        }
    }
}

/// Reads `body` whole if it has at most `limit` bytes; else discards up to `DRAIN_BYTES`
/// more of it and answers `None`.
async fn read_capped(mut body: Incoming, limit: usize) -> Result<Option<Bytes>, hyper::Error> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > limit {
            discard(body, DRAIN_BYTES).await;
            return Ok(None);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Some(buffer.freeze()))
}

/// Reads and drops up to about `limit` bytes of `body`; stops early at its end, at an error,
/// or when nothing arrives for `DRAIN_STALL`.
async fn discard(mut body: Incoming, limit: usize) {
    let mut seen = 0usize;
    while seen <= limit {
        match tokio::time::timeout(DRAIN_STALL, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}
