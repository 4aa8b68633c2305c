//! The daemon's settings: command-line flags, then environment variables, then defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::sync::backoff::RetryPolicy;
use crate::sync::SyncSettings;

/// tasksyncd: the offline-first task sync daemon. It alone owns the local database and serves
/// `taskctl` and apps over a local socket.
#[derive(Debug, Clone, Parser)]
#[command(name = "tasksyncd", version, about, long_about = None)]
pub struct Config {
    /// SQLite database file [default: $XDG_DATA_HOME/tasksync/tasks.db]
    #[arg(long, env = "TASKSYNC_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Local socket to serve [default: $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock]
    #[arg(long, env = "TASKSYNC_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Sync server base URL, e.g. http://127.0.0.1:8080 [default: none, local only]
    #[arg(long, env = "TASKSYNC_SERVER_URL", value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token for the sync server
    #[arg(
        long,
        env = "TASKSYNC_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Most operations per sync request
    #[arg(long, env = "SYNC_BATCH_SIZE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,

    /// Failed attempts before an operation is dead-lettered
    #[arg(long, env = "SYNC_RETRY_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retry_attempts: u32,

    /// First automatic retry delay in milliseconds (doubles, jittered)
    #[arg(long, env = "TASKSYNC_RETRY_BASE_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_base_ms: u64,

    /// Longest automatic retry delay in milliseconds
    #[arg(long, env = "TASKSYNC_RETRY_MAX_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_max_ms: u64,

    /// How long one request to the sync server may take, in milliseconds
    #[arg(long, env = "TASKSYNC_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
}

impl Config {
    /// The sync engine's settings.
    pub fn sync_settings(&self) -> SyncSettings {
        SyncSettings {
            server: self.server.clone().filter(|s| !s.trim().is_empty()),
            token: self.token.clone().filter(|t| !t.is_empty()),
            batch_size: self.batch_size as usize,
            max_attempts: self.retry_attempts,
            retry: RetryPolicy {
                base: Duration::from_millis(self.retry_base_ms),
                max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
            },
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        }
    }

    /// The database path, made absolute so messages and the lock file name it unambiguously.
    pub fn db_path(&self) -> PathBuf {
        absolute(
            self.db
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(default_db_path),
        )
    }

    /// The socket path, made absolute.
    pub fn socket_path(&self) -> PathBuf {
        absolute(
            self.socket
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(tasksync_proto::paths::default_socket_path),
        )
    }
}

/// `$XDG_DATA_HOME/tasksync/tasks.db`, else `~/.local/share/tasksync/tasks.db`, else
/// `./tasks.db` when no home is known.
fn default_db_path() -> PathBuf {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        });
    match data_home {
        Some(dir) => dir.join("tasksync").join("tasks.db"),
        None => PathBuf::from("tasks.db"),
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
