//! Request bodies: read with a 1 MiB cap, parsed as JSON into a route's input type.
//!
//! A body over the cap is answered with 413, after reading and discarding up to
//! [`DRAIN_BYTES`] more of it, so the client can finish sending and read the answer instead
//! of meeting a reset connection. A client that sent `Expect: 100-continue` is answered at
//! once, before it sends the body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, CONTENT_LENGTH, EXPECT};
use hyper::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body read (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How much of a refused body is read and thrown away before answering.
pub const DRAIN_BYTES: usize = 4 * 1024 * 1024;
/// How long reading a body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The request body, read at most once; what no handler read is drained before answering.
pub struct RequestBody {
    body: Option<Incoming>,
    declared: Option<u64>,
    expects_continue: bool,
}

impl RequestBody {
    pub fn new(headers: &HeaderMap, body: Incoming) -> Self {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let expects_continue = headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        RequestBody {
            body: Some(body),
            declared,
            expects_continue,
        }
    }

    /// The whole body; 413 over [`MAX_BODY_BYTES`].
    pub async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        let too_large = || {
            ApiError::too_large(format!(
                "body is larger than {MAX_BODY_BYTES} bytes (1 MiB)"
            ))
        };
        if self.declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            self.drain().await;
            return Err(too_large());
        }
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        match tokio::time::timeout(BODY_TIMEOUT, read_capped(body, MAX_BODY_BYTES)).await {
            Ok(Ok(Read::Whole(bytes))) => Ok(bytes),
            Ok(Ok(Read::TooLarge)) => Err(too_large()),
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
        let worth_it = !self.expects_continue
            && !body.is_end_stream()
            && self
                .declared
                .is_none_or(|len| len <= (MAX_BODY_BYTES + DRAIN_BYTES) as u64);
        if worth_it {
            let limit = MAX_BODY_BYTES + DRAIN_BYTES;
            let _ = tokio::time::timeout(BODY_TIMEOUT, read_capped(body, limit)).await;
        }
    }
}

enum Read {
    Whole(Bytes),
    TooLarge,
}

/// Reads `body` up to `limit` bytes; past it, keeps reading (and discarding) up to
/// [`DRAIN_BYTES`] more, then stops.
async fn read_capped(mut body: Incoming, limit: usize) -> Result<Read, hyper::Error> {
    let mut buffer = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            buffer.extend_from_slice(&data);
        } else if seen > limit.saturating_add(DRAIN_BYTES) {
            break;
        }
    }
    if seen > limit {
        return Ok(Read::TooLarge);
    }
    Ok(Read::Whole(buffer.freeze()))
}

/// Parses a JSON body into `T`: 400 for malformed JSON or a body of the wrong shape, with
/// serde's message (it names the field and the place).
/// Only a JSON object is taken (serde would also read a struct from an array).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(body).map_err(|error| {
        use serde_json::error::Category;
        let message = match error.classify() {
            Category::Syntax | Category::Eof if body.trim_ascii().is_empty() => {
                "the body is empty; expected a JSON object".to_string()
            }
            Category::Syntax | Category::Eof | Category::Io => format!("malformed JSON: {error}"),
            Category::Data => format!("invalid request body: {error}"),
        };
        ApiError::bad_request(message)
    })?;
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        title: String,
    }

    #[test]
    fn json_errors_say_what_is_wrong() {
        let message = |body: &[u8]| parse_json::<Input>(body).unwrap_err().message;
        assert!(message(b"{").starts_with("malformed JSON"));
        assert!(message(b"{\"title\": \"a\"} x").starts_with("malformed JSON"));
        assert!(message(b"").contains("empty"));
        assert!(message(b"{}").contains("missing field `title`"));
        assert!(message(b"{\"title\": 5}").contains("invalid type"));
        assert!(message(b"{\"title\": \"a\", \"x\": 1}").contains("unknown field `x`"));
        assert!(message(b"[]").starts_with("invalid request body"));
        assert!(message(b"[\"a\"]").contains("expected a JSON object"));
        assert_eq!(
            parse_json::<Input>(b"{\"title\":\"a\"}").unwrap().title,
            "a"
        );
    }
}
