//! Command-line flags and environment variables of `tasksync-server` (DESIGN.md section 9).
//!
//! Flags win over the environment (`TASKSYNC_SERVER_*`). The token is kept out of `Debug`
//! output so that logging the configuration never leaks it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The remote sync server tasksync daemons push to and pull from.
#[derive(Clone, Parser)]
#[command(name = "tasksync-server", version, about)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, env = "TASKSYNC_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// SQLite database file (created when missing).
    #[arg(long, env = "TASKSYNC_SERVER_DB")]
    pub db: PathBuf,

    /// Bearer token every request but `/api/health` must carry; unset = no authentication.
    #[arg(long, env = "TASKSYNC_SERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// SQLite `synchronous` level: `full` makes every acknowledged batch survive a power cut;
    /// `normal` survives a crash of the server but may lose the last batches on a power cut.
    #[arg(
        long,
        env = "TASKSYNC_SERVER_SYNCHRONOUS",
        value_enum,
        default_value_t = Durability::Full
    )]
    pub synchronous: Durability,

    /// How far ahead of this server's clock an item's `updated_at` or `created_at` may lie, in
    /// seconds; an item further ahead is refused (`error`, nothing applied).
    #[arg(
        long,
        env = "TASKSYNC_SERVER_MAX_CLOCK_SKEW_SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u32).range(0..=31_536_000)
    )]
    pub max_clock_skew_secs: u32,
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    Full,
    Normal,
}

impl Durability {
    pub fn pragma_value(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("synchronous", &self.synchronous)
            .field("max_clock_skew_secs", &self.max_clock_skew_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_token_stays_out_of_debug() {
        let config = Config::try_parse_from([
            "tasksync-server",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "/tmp/x.db",
            "--token",
            "s3cret",
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.token.as_deref(), Some("s3cret"));
        assert_eq!(config.synchronous, Durability::Full);
        assert_eq!(config.max_clock_skew_secs, 600);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn db_is_required() {
        // The environment may not provide it in tests.
        if std::env::var_os("TASKSYNC_SERVER_DB").is_none() {
            assert!(Config::try_parse_from(["tasksync-server"]).is_err());
        }
    }
}
