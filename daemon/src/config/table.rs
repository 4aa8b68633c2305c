//! Every daemon setting, once: file key and type, default, flag, environment variable, value
//! name, help, and any range or check. The flags, the file's keys, `--help`, `--print-config`
//! and [`Values`] all come from here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::paths;
use super::resolve::Resolver;
use super::setting::{settings, Setting};
use super::value::{Field, Secret, Value};
use crate::sync::SyncSettings;

/// The longest any millisecond setting may be: a week. Longer waits mean "never" in practice
/// and would overflow timer arithmetic.
const MAX_MS: u64 = 7 * 24 * 3600 * 1000;

/// The sync engine's own defaults, in milliseconds.
fn ms(pick: impl FnOnce(SyncSettings) -> Duration) -> u64 {
    u64::try_from(pick(SyncSettings::default()).as_millis()).unwrap_or(MAX_MS)
}

settings! {
    /// SQLite database file [default: $XDG_DATA_HOME/tasksync/tasks.db, or
    /// ~/.local/share/tasksync/tasks.db when XDG_DATA_HOME is unset]
    db: PathBuf = paths::default_db_path(), "--db", "TASKSYNC_DB", "PATH", restart: true;

    /// Local socket to serve [default: $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock, or
    /// $TMPDIR/tasksync-<uid>/tasksyncd.sock when XDG_RUNTIME_DIR is unset]
    socket: PathBuf = tasksync_proto::paths::default_socket_path(),
        "--socket", tasksync_proto::paths::SOCKET_ENV, "PATH", restart: true;

    /// Sync server base URL, e.g. http://127.0.0.1:8080 [default: none, local only]
    server_url: Option<String> = None, "--server", "TASKSYNC_SERVER_URL", "URL",
        check: |url| crate::sync::client::check_url(url).map(drop).map_err(|e| e.to_string());

    /// Bearer token for the sync server (visible to other users in the process list: prefer
    /// token_file); it may start with '-'
    token: Option<Secret> = None, "--token", "TASKSYNC_TOKEN", "TOKEN";

    /// File holding the bearer token for the sync server (instead of --token)
    token_file: Option<PathBuf> = None, "--token-file", "TASKSYNC_TOKEN_FILE", "PATH",
        clap: |arg| arg.conflicts_with("token");

    /// Extra certificates to trust for an https:// sync server (PEM file), e.g. a private CA
    ca_file: Option<PathBuf> = None, "--ca-file", "TASKSYNC_CA_FILE", "PATH";

    /// Most operations per sync request
    batch_size: u32 = SyncSettings::default().batch_size.try_into().unwrap_or(1000),
        "--batch-size", "SYNC_BATCH_SIZE", "BATCH_SIZE", range: Some(1..=1000);

    /// Failed attempts before an operation is dead-lettered
    retry_attempts: u32 = SyncSettings::default().max_attempts,
        "--retry-attempts", "SYNC_RETRY_ATTEMPTS", "RETRY_ATTEMPTS", range: Some(1..=100);

    /// First automatic retry delay in milliseconds, doubling, jittered
    retry_base_ms: u64 = ms(|d| d.retry.base),
        "--retry-base-ms", "TASKSYNC_RETRY_BASE_MS", "RETRY_BASE_MS", range: Some(1..=MAX_MS);

    /// Longest automatic retry delay in milliseconds
    retry_max_ms: u64 = ms(|d| d.retry.max),
        "--retry-max-ms", "TASKSYNC_RETRY_MAX_MS", "RETRY_MAX_MS", range: Some(1..=MAX_MS);

    /// How long one request to the sync server may take, in milliseconds
    request_timeout_ms: u64 = ms(|d| d.request_timeout), "--request-timeout-ms",
        "TASKSYNC_REQUEST_TIMEOUT_MS", "REQUEST_TIMEOUT_MS", range: Some(1..=MAX_MS);

    /// While offline, the longest wait between probes, in milliseconds, before a jitter of up
    /// to half of it (the first waits 2 s, doubling)
    probe_max_ms: u64 = ms(|d| d.probe.max),
        "--probe-max-ms", "TASKSYNC_PROBE_MAX_MS", "PROBE_MAX_MS", range: Some(1..=MAX_MS);

    /// How long a probe (GET /api/health) may take, in milliseconds
    probe_timeout_ms: u64 = ms(|d| d.probe.timeout), "--probe-timeout-ms",
        "TASKSYNC_PROBE_TIMEOUT_MS", "PROBE_TIMEOUT_MS", range: Some(1..=MAX_MS);

    /// While online, how often to pull other devices' changes, in milliseconds
    pull_interval_ms: u64 = ms(|d| d.pull_interval), "--pull-interval-ms",
        "TASKSYNC_PULL_INTERVAL_MS", "PULL_INTERVAL_MS", range: Some(1..=MAX_MS);

    /// Never sync on its own: only `taskctl sync` talks to the server (for metered networks)
    manual_sync: bool = !SyncSettings::default().automatic,
        "--manual-sync", "TASKSYNC_MANUAL_SYNC", "";

    /// How many days the local history of each task (`taskctl log`) keeps a change; a task
    /// keeps at most its newest 1000 changes
    history_days: u32 = 90, "--history-days", "TASKSYNC_HISTORY_DAYS", "DAYS",
        range: Some(1..=36500), restart: true;

    /// Serve the HTTP API on this address, e.g. 127.0.0.1:3000 (port 0 picks a free one)
    /// [default: off]
    http_listen: Option<SocketAddr> = None, "--http", "TASKSYNC_HTTP", "ADDR", restart: true;

    /// Let the HTTP API listen on a non-loopback address (other machines can then reach it)
    http_allow_remote: bool = false,
        "--http-allow-remote", "TASKSYNC_HTTP_ALLOW_REMOTE", "", restart: true;

    /// File holding the HTTP API's bearer token; created with a random token if missing
    /// [default: $XDG_CONFIG_HOME/tasksync/api-token, or ~/.config/tasksync/api-token when
    /// XDG_CONFIG_HOME is unset]
    api_token_file: Option<PathBuf> = paths::default_token_path(),
        "--api-token-file", "TASKSYNC_API_TOKEN_FILE", "PATH", restart: true;

    /// Log filter, e.g. info or tasksyncd=debug
    log: String = "info".to_string(), "--log", "RUST_LOG", "FILTER",
        check: |filter| tracing_subscriber::EnvFilter::try_new(filter)
            .map(drop)
            .map_err(|e| format!("{filter:?} is not a log filter: {e}"));

    /// Log lines as human text (text) or as one JSON object each, for log shippers (json)
    log_format: String = "text".to_string(), "--log-format", "TASKSYNC_LOG_FORMAT", "FORMAT",
        restart: true,
        check: |format| match format {
            "text" | "json" => Ok(()),
            other => Err(format!("{other:?} is not a log format: use text or json")),
        };
}
