//! The daemon's settings: command-line flags, then environment variables, then defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::connectivity::ProbePolicy;
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

    /// While offline, the longest wait between probes of the server, in milliseconds (the
    /// first probe waits 1 s, doubling)
    #[arg(long, env = "TASKSYNC_PROBE_MAX_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_max_ms: u64,

    /// How long a probe (GET /api/health) may take, in milliseconds
    #[arg(long, env = "TASKSYNC_PROBE_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_timeout_ms: u64,

    /// Never sync on its own: only `taskctl sync` talks to the server (for metered networks)
    #[arg(long, env = "TASKSYNC_MANUAL_SYNC")]
    pub manual_sync: bool,

    /// While online, how often to pull other devices' changes, in milliseconds
    #[arg(long, env = "TASKSYNC_PULL_INTERVAL_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub pull_interval_ms: u64,

    /// Serve the HTTP API on this address, e.g. 127.0.0.1:3000 (port 0 picks a free one)
    /// [default: off]
    #[arg(long = "http", env = "TASKSYNC_HTTP", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub http: Option<SocketAddr>,

    /// Let the HTTP API listen on a non-loopback address (other machines can then reach it)
    #[arg(long, env = "TASKSYNC_HTTP_ALLOW_REMOTE", requires = "http")]
    pub http_allow_remote: bool,

    /// File holding the HTTP API's bearer token; created with a random token if missing
    /// [default: $XDG_CONFIG_HOME/tasksync/api-token]
    #[arg(long, env = "TASKSYNC_API_TOKEN_FILE", value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,
}

/// The first wait between probes while offline.
const PROBE_MIN_MS: u64 = 1_000;
/// How long a local change waits for company before it is flushed.
const FLUSH_DEBOUNCE_MS: u64 = 50;

/// The HTTP API's settings, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// The bearer token's file.
    pub token_file: PathBuf,
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
            probe: ProbePolicy {
                min: Duration::from_millis(PROBE_MIN_MS.min(self.probe_max_ms)),
                max: Duration::from_millis(self.probe_max_ms),
                timeout: Duration::from_millis(self.probe_timeout_ms),
            },
            pull_interval: Duration::from_millis(self.pull_interval_ms),
            flush_debounce: Duration::from_millis(FLUSH_DEBOUNCE_MS),
            automatic: !self.manual_sync,
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

    /// The HTTP API's settings: `None` while it is off, an error for an address it must not
    /// listen on or a token file that cannot be placed.
    pub fn http_settings(&self) -> Result<Option<HttpSettings>, String> {
        let Some(listen) = self.http else {
            return Ok(None);
        };
        if !is_loopback(listen.ip()) && !self.http_allow_remote {
            return Err(format!(
                "refusing to serve the HTTP API on {listen}: it is not a loopback address, so \
                 other machines could reach it. Use 127.0.0.1:PORT, or add --http-allow-remote \
                 if you really want that"
            ));
        }
        let token_file = match self
            .api_token_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => path,
            None => default_token_path().ok_or(
                "cannot tell where to keep the HTTP API token: neither XDG_CONFIG_HOME nor HOME \
                 is set; give --api-token-file PATH",
            )?,
        };
        Ok(Some(HttpSettings {
            listen,
            token_file: absolute(token_file),
        }))
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

/// `$XDG_CONFIG_HOME/tasksync/api-token`, else `~/.config/tasksync/api-token`.
fn default_token_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .map(|dir| dir.join("tasksync").join("api-token"))
}

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
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

/// 127.0.0.0/8 and ::1, also written as an IPv4-mapped IPv6 address.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("tasksyncd").chain(args.iter().copied()))
    }

    #[test]
    fn http_is_off_by_default() {
        assert_eq!(config(&[]).unwrap().http_settings(), Ok(None));
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:3000"),
            Ok("127.0.0.1:3000".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("localhost:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::1]:80"),
            Ok("[::1]:80".parse().unwrap())
        );
        for bad in ["3000", "127.0.0.1", "example.com:80", "localhost:x", ""] {
            assert!(parse_listen_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_addresses_need_the_flag() {
        let file = ["--api-token-file", "/tmp/t"];
        for local in [
            "127.0.0.1:0",
            "127.8.9.1:1",
            "[::1]:0",
            "[::ffff:127.0.0.1]:0",
        ] {
            let settings = config(&[&["--http", local][..], &file].concat())
                .unwrap()
                .http_settings();
            assert!(matches!(settings, Ok(Some(_))), "{local}: {settings:?}");
        }
        for remote in ["0.0.0.0:0", "[::]:0", "192.168.1.2:3000"] {
            let error = config(&[&["--http", remote][..], &file].concat())
                .unwrap()
                .http_settings()
                .unwrap_err();
            assert!(error.contains("--http-allow-remote"), "{error}");
            let allowed = config(&[&["--http", remote, "--http-allow-remote"][..], &file].concat())
                .unwrap()
                .http_settings();
            assert!(matches!(allowed, Ok(Some(_))), "{remote}");
        }
        assert!(config(&["--http-allow-remote"]).is_err(), "needs --http");
    }
}
