//! The HTTP client for the sync server (docs/SYNC-PROTOCOL.md): push a batch, pull changes
//! (optionally as a live long-poll), check health. It sorts every failure into what the engine
//! must do about it; [`super::transport`] checks that the answers make sense.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use tasksync_proto::ipc::{SyncErrorKind, SyncFailure};
use tasksync_proto::wire::{
    content_digest, BatchRequest, BatchResponse, ChangesResponse, ErrorBody, HealthResponse,
    BATCH_PATH, CHANGES_PATH, CONTENT_DIGEST_HEADER, HEALTH_PATH,
};

/// Largest answer we read from the server.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a request to the server did not produce a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SyncError {
    /// Nothing answered (refused, reset, timed out): we are offline. No attempt counts.
    #[error("offline: the sync server is unreachable: {0}")]
    Unreachable(String),
    /// The server refused our credentials; no attempt counts, the user must act.
    #[error("the server refused our token ({0}): check token / token_file")]
    Unauthorized(u16),
    /// The server (or a proxy before it) is there but cannot serve now: 408, 429, 502, 503,
    /// 504. No attempt counts; try again after `retry_after` (its `Retry-After`) or a backoff.
    #[error("the sync server is busy or down ({status}): {message}")]
    Busy {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 413: the batch is too large for the server; send it in smaller pieces.
    #[error("the sync server refused the batch as too large (413)")]
    TooLarge,
    /// The server answered with an error status; the batch counts a failed attempt.
    #[error("server answered {status}: {message}")]
    Failed { status: u16, message: String },
    /// 410: the server did not issue our pull cursor (it was restored from an older backup,
    /// or the cursor came from elsewhere); pull again from the beginning. A push that got it
    /// counts a failed attempt, as any other refusal.
    #[error("the sync server does not know our pull cursor (410): {0}")]
    CursorUnknown(String),
    /// The server's answer makes no sense; the batch counts a failed attempt.
    #[error("server sent a bad answer: {0}")]
    BadAnswer(String),
    /// Something failed on this device (its database, a panicked task, a batch that cannot
    /// be encoded): no operation is to blame, so no attempt counts and the rows stay queued.
    #[error("local error: {0}")]
    Local(String),
}

impl SyncError {
    /// How reports and `last_error` classify this error.
    pub(crate) fn kind(&self) -> SyncErrorKind {
        match self {
            SyncError::Unreachable(_) => SyncErrorKind::Offline,
            SyncError::Unauthorized(_) => SyncErrorKind::Unauthorized,
            SyncError::Busy { .. } => SyncErrorKind::Busy,
            SyncError::TooLarge | SyncError::Failed { .. } | SyncError::CursorUnknown(_) => {
                SyncErrorKind::Rejected
            }
            SyncError::BadAnswer(_) => SyncErrorKind::BadAnswer,
            SyncError::Local(_) => SyncErrorKind::Local,
        }
    }
}

impl From<&SyncError> for SyncFailure {
    fn from(error: &SyncError) -> Self {
        SyncFailure::new(error.kind(), error.to_string())
    }
}

pub(crate) struct SyncClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

impl SyncClient {
    /// A client for the server at `base` (`http://` or `https://host:port`, no trailing slash
    /// needed). HTTPS trusts the Mozilla root certificates plus those in `ca_file` (PEM).
    pub(crate) fn new(
        base: &str,
        token: Option<String>,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<SyncClient, ClientSetupError> {
        let base = check_url(base)?;
        let mut plain = HttpConnector::new();
        plain.set_nodelay(true);
        plain.set_connect_timeout(Some(timeout));
        plain.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(plain);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(SyncClient {
            http,
            base,
            token,
            timeout,
        })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/health`, answered within `timeout`: the server's sync API version (1 for a
    /// server that does not say, or whose body is not the expected one: it answered, which
    /// is what a probe asks).
    pub(crate) async fn health(&self, timeout: Duration) -> Result<u32, SyncError> {
        let body = self.send(Method::GET, HEALTH_PATH, None, timeout).await?;
        Ok(serde_json::from_slice::<HealthResponse>(&body).map_or(1, |h| h.api_version))
    }

    /// `POST /api/batch`.
    pub(crate) async fn push(&self, batch: &BatchRequest) -> Result<BatchResponse, SyncError> {
        let body = serde_json::to_vec(batch)
            .map_err(|e| SyncError::Local(format!("cannot encode batch: {e}")))?;
        let answer = self
            .send(Method::POST, BATCH_PATH, Some(body), self.timeout)
            .await?;
        parse(&answer)
    }

    /// `GET /api/changes?since=..&limit=..[&wait=..]`. With `wait`, the server holds the
    /// request until a change lands or `wait` runs out, so the answer may take that long
    /// plus the usual request timeout.
    pub(crate) async fn changes(
        &self,
        since: &str,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<ChangesResponse, SyncError> {
        let mut path = format!("{CHANGES_PATH}?since={}&limit={limit}", encode_query(since));
        let mut timeout = self.timeout;
        if let Some(wait) = wait {
            path.push_str(&format!("&wait={}", wait.as_secs()));
            timeout += wait;
        }
        let answer = self.send(Method::GET, &path, None, timeout).await?;
        parse_changes(&answer)
    }

    /// Sends one request and returns the body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Bytes, SyncError> {
        let uri = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&uri);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(bytes) => {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .header(CONTENT_DIGEST_HEADER, content_digest(&bytes));
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| SyncError::Unreachable(format!("bad request for {uri}: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| SyncError::Unreachable(describe(&e)))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_retry_after);
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| SyncError::Unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, SyncError>((status, retry_after, bytes))
        };
        let (status, retry_after, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SyncError::Unreachable(format!("no answer within {timeout:?}")))??;
        if status.is_success() {
            return Ok(bytes);
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(SyncError::Unauthorized(status.as_u16()));
        }
        let message = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => server_text(&body.error),
            Err(_) => server_text(&String::from_utf8_lossy(&bytes[..bytes.len().min(4096)])),
        };
        Err(match status.as_u16() {
            413 => SyncError::TooLarge,
            410 => SyncError::CursorUnknown(message),
            status @ (408 | 429 | 502 | 503 | 504) => SyncError::Busy {
                status,
                message,
                retry_after,
            },
            status => SyncError::Failed { status, message },
        })
    }
}

/// Why no sync client can be made from the settings.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientSetupError {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("server URL {0:?} must start with https:// or http://")]
    WrongScheme(String),
    #[error("server URL {0:?} has no host")]
    NoHost(String),
    #[error("ca_file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("ca_file {} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("TLS setup: {0}")]
    Tls(rustls::Error),
}

/// Checks a server base URL and returns it without a trailing slash.
pub(crate) fn check_url(base: &str) -> Result<String, ClientSetupError> {
    let base = base.trim_end_matches('/').to_string();
    let uri: hyper::Uri = match base.parse() {
        Ok(uri) => uri,
        Err(e) => {
            let reason = e.to_string();
            return Err(ClientSetupError::InvalidUrl { url: base, reason });
        }
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(ClientSetupError::WrongScheme(base));
    }
    if uri.host().is_none() {
        return Err(ClientSetupError::NoHost(base));
    }
    Ok(base)
}

/// The TLS settings: TLS 1.2 and 1.3 with rustls' safe defaults, trusting the Mozilla roots
/// and every certificate in `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let bad = |reason: String| ClientSetupError::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientSetupError::NoCertificate(path.to_path_buf()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientSetupError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SyncError> {
    serde_json::from_slice(bytes).map_err(|e| SyncError::BadAnswer(server_text(&e.to_string())))
}

/// A page of changes as sent, each entry still unparsed.
#[derive(serde::Deserialize)]
struct RawChanges {
    changes: Vec<Box<serde_json::value::RawValue>>,
    cursor: String,
    has_more: bool,
    #[serde(default)]
    conflicts: Vec<Box<serde_json::value::RawValue>>,
}

/// Parses a page of changes entry by entry: an entry that is not a task (a non-UUID id, a
/// missing field), or a conflict that is not one, is logged and skipped, and the rest of the
/// page and its cursor still count, so one bad row on the server cannot stop every later pull.
fn parse_changes(bytes: &[u8]) -> Result<ChangesResponse, SyncError> {
    // The common case in one pass; the entry-by-entry parse only for a page that has a bad
    // entry (parsing every page twice cost a tenth of the pull rate).
    if let Ok(page) = serde_json::from_slice::<ChangesResponse>(bytes) {
        return Ok(page);
    }
    let raw: RawChanges = parse(bytes)?;
    Ok(ChangesResponse {
        changes: parse_each(&raw.changes, "an entry that is not a task"),
        cursor: raw.cursor,
        has_more: raw.has_more,
        conflicts: parse_each(&raw.conflicts, "a conflict that makes no sense"),
    })
}

/// The entries that parse as `T`; each other one is logged as `what` and skipped.
fn parse_each<T: DeserializeOwned>(
    entries: &[Box<serde_json::value::RawValue>],
    what: &str,
) -> Vec<T> {
    entries
        .iter()
        .filter_map(|entry| match serde_json::from_str(entry.get()) {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::warn!(
                    "skipping a pulled {what} ({}): {}",
                    server_text(&e.to_string()),
                    server_text(entry.get())
                );
                None
            }
        })
        .collect()
}

/// Most characters of a server's text (an error body, an item error) the daemon keeps.
pub(crate) const MAX_SERVER_TEXT: usize = 500;

/// A text from the server as the daemon may keep and show it: control characters escaped,
/// cut to [`MAX_SERVER_TEXT`] characters (marked with `…`). No server can make status,
/// events or frames large, or put terminal escapes in them.
pub(crate) fn server_text(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SERVER_TEXT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The most telling part of a client error: hyper wraps the OS error several levels deep.
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// A `Retry-After` in seconds (the HTTP-date form is not used by sync servers, and a proxy
/// that sends one simply gets our own backoff).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Percent-encodes a query value (cursors are opaque strings).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let timeout = Duration::from_secs(1);
        assert!(SyncClient::new("http://127.0.0.1:8080/", None, timeout, None).is_ok());
        assert_eq!(
            SyncClient::new("http://127.0.0.1:8080/", None, timeout, None)
                .unwrap()
                .base(),
            "http://127.0.0.1:8080"
        );
        assert!(SyncClient::new("https://127.0.0.1:8443", None, timeout, None).is_ok());
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "not a url"] {
            assert!(SyncClient::new(bad, None, timeout, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn setup_errors_say_what_is_wrong() {
        let message = |result: Result<String, ClientSetupError>| result.unwrap_err().to_string();
        assert_eq!(
            message(check_url("ftp://x")),
            r#"server URL "ftp://x" must start with https:// or http://"#
        );
        assert!(message(check_url("not a url")).starts_with(r#"invalid server URL "not a url": "#));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = tls_config(Some(&missing)).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("ca_file {}: ", missing.display())),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        assert_eq!(
            tls_config(Some(&empty)).unwrap_err().to_string(),
            format!("ca_file {} holds no PEM certificate", empty.display())
        );
    }

    #[test]
    fn retry_after_takes_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn server_text_is_escaped_and_cut() {
        assert_eq!(server_text("disk full"), "disk full");
        assert_eq!(server_text("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
        let long = server_text(&"x".repeat(2 * 1024 * 1024));
        assert_eq!(long.chars().count(), MAX_SERVER_TEXT + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_pulled_entry_that_is_not_a_task_is_skipped_and_the_cursor_moves() {
        let good = serde_json::json!({
            "id": "0193a4f2-0000-7000-8000-000000000001", "title": "ok", "description": null,
            "completed": false, "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z", "is_deleted": false,
            "device_id": "0193a4f2-0000-7000-8000-000000000002"
        });
        let mut bad = good.clone();
        bad["id"] = "not-a-uuid".into();
        let body = serde_json::json!({"changes": [bad, good, 7], "cursor": "9", "has_more": false});
        let page = parse_changes(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(page.changes.len(), 1);
        assert_eq!(page.changes[0].title, "ok");
        assert_eq!(page.cursor, "9");
        assert!(matches!(
            parse_changes(b"{\"changes\": 5}"),
            Err(SyncError::BadAnswer(_))
        ));
    }

    #[test]
    fn a_conflict_that_makes_no_sense_is_skipped_and_a_page_of_conflicts_alone_is_fine() {
        let conflict = serde_json::json!({
            "task_id": "0193a4f2-0000-7000-8000-000000000001", "field": "title",
            "kept": "B", "kept_device": "0193a4f2-0000-7000-8000-00000000000b",
            "lost": "A", "lost_device": "0193a4f2-0000-7000-8000-00000000000a",
            "op_id": "0193a4f2-0000-7000-8000-000000000003",
            "pushed_by": "0193a4f2-0000-7000-8000-00000000000a",
            "at": "2026-01-01T00:00:00.000Z"
        });
        let mut unknown_field = conflict.clone();
        unknown_field["field"] = "colour".into();
        let mut wrong_kind = conflict.clone();
        wrong_kind["kept"] = true.into();
        let body = serde_json::json!({
            "changes": [], "cursor": "9", "has_more": true,
            "conflicts": [unknown_field, conflict, wrong_kind]
        });
        let mut page = parse_changes(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(page.conflicts.len(), 2, "the unknown field is skipped");
        super::super::transport::check_changes("5", &mut page).unwrap();
        assert_eq!(
            page.conflicts.len(),
            1,
            "a title that is a boolean is skipped"
        );
        assert_eq!(page.conflicts[0].lost, "A");
    }

    #[test]
    fn cursors_are_percent_encoded() {
        assert_eq!(encode_query("12"), "12");
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }
}
