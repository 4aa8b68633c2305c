//! The command line (and the environment variables clap reads for it).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// tasksyncd: the offline-first task sync daemon. It alone owns the local database and serves
/// `taskctl` and apps over a local socket.
///
/// Every setting can also be given in the config file ($XDG_CONFIG_HOME/tasksync/config.toml)
/// under the name shown in `--print-config`. Flags win over environment variables, which win
/// over the file, which wins over the defaults.
#[derive(Debug, Clone, Parser)]
#[command(name = "tasksyncd", version, about, long_about)]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/tasksync/config.toml, if it exists]
    #[arg(long, env = "TASKSYNC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the effective settings and where each came from, then exit
    #[arg(long)]
    pub print_config: bool,

    /// SQLite database file [default: $XDG_DATA_HOME/tasksync/tasks.db]
    #[arg(long, env = "TASKSYNC_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Local socket to serve [default: $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock]
    #[arg(long, env = "TASKSYNC_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Sync server base URL, e.g. http://127.0.0.1:8080 [default: none, local only]
    #[arg(long = "server", env = "TASKSYNC_SERVER_URL", value_name = "URL")]
    pub server_url: Option<String>,

    /// Bearer token for the sync server (visible to other users in the process list: prefer
    /// token_file); it may start with '-'
    #[arg(
        long,
        env = "TASKSYNC_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,

    /// File holding the bearer token for the sync server (instead of --token)
    #[arg(
        long,
        env = "TASKSYNC_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,

    /// Extra certificates to trust for an https:// sync server (PEM file), e.g. a private CA
    #[arg(long, env = "TASKSYNC_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Most operations per sync request [default: 50]
    #[arg(long, env = "SYNC_BATCH_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: Option<u32>,

    /// Failed attempts before an operation is dead-lettered [default: 3]
    #[arg(long, env = "SYNC_RETRY_ATTEMPTS", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retry_attempts: Option<u32>,

    /// First automatic retry delay in milliseconds, doubling, jittered [default: 500]
    #[arg(long, env = "TASKSYNC_RETRY_BASE_MS", value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub retry_base_ms: Option<u64>,

    /// Longest automatic retry delay in milliseconds [default: 300000]
    #[arg(long, env = "TASKSYNC_RETRY_MAX_MS", value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub retry_max_ms: Option<u64>,

    /// How long one request to the sync server may take, in milliseconds [default: 10000]
    #[arg(long, env = "TASKSYNC_REQUEST_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub request_timeout_ms: Option<u64>,

    /// While offline, the longest wait between probes, in milliseconds (the first waits 1 s,
    /// doubling) [default: 30000]
    #[arg(long, env = "TASKSYNC_PROBE_MAX_MS", value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub probe_max_ms: Option<u64>,

    /// How long a probe (GET /api/health) may take, in milliseconds [default: 2000]
    #[arg(long, env = "TASKSYNC_PROBE_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub probe_timeout_ms: Option<u64>,

    /// While online, how often to pull other devices' changes, in milliseconds [default: 30000]
    #[arg(long, env = "TASKSYNC_PULL_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub pull_interval_ms: Option<u64>,

    /// Never sync on its own: only `taskctl sync` talks to the server (for metered networks)
    #[arg(long, env = "TASKSYNC_MANUAL_SYNC")]
    pub manual_sync: bool,

    /// Serve the HTTP API on this address, e.g. 127.0.0.1:3000 (port 0 picks a free one)
    /// [default: off]
    #[arg(long = "http", env = "TASKSYNC_HTTP", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub http_listen: Option<SocketAddr>,

    /// Let the HTTP API listen on a non-loopback address (other machines can then reach it)
    #[arg(long, env = "TASKSYNC_HTTP_ALLOW_REMOTE")]
    pub http_allow_remote: bool,

    /// File holding the HTTP API's bearer token; created with a random token if missing
    /// [default: $XDG_CONFIG_HOME/tasksync/api-token]
    #[arg(long, env = "TASKSYNC_API_TOKEN_FILE", value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    /// Log filter, e.g. info or tasksyncd=debug [default: info]
    #[arg(long = "log", env = "RUST_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The longest any millisecond setting may be: a week. Longer waits mean "never" in practice
/// and would overflow timer arithmetic.
pub const MAX_MS: u64 = 7 * 24 * 3600 * 1000;

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
    }
    Err(format!(
        "{text:?} is not an address to listen on: expected IP:PORT, e.g. 127.0.0.1:3000"
    ))
}
