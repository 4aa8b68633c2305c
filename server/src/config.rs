//! Command-line flags, subcommands and environment variables of `tasksync-server`
//! (README, "Syncing between devices").
//!
//! Flags win over the environment (`TASKSYNC_SERVER_*`). The storage options are global, so
//! `user ...` subcommands take them too. The token and the database URL (which may hold a
//! password) are kept out of `Debug` output, so logging the configuration never leaks them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::storage::{Durability, StorageConfig};

/// The remote sync server tasksync daemons push to and pull from.
#[derive(Clone, Parser)]
#[command(name = "tasksync-server", version, about)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, env = "TASKSYNC_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// SQLite database file (created when missing): the embedded default storage.
    #[arg(long, env = "TASKSYNC_SERVER_DB", global = true)]
    pub db: Option<PathBuf>,

    /// PostgreSQL URL (`postgres://user@host:5432/db`): many users and server processes.
    #[arg(
        long,
        env = "TASKSYNC_SERVER_DATABASE_URL",
        hide_env_values = true,
        global = true,
        conflicts_with = "db"
    )]
    pub database_url: Option<String>,

    /// Single-user mode: the bearer token of the user `default` (users made with
    /// `user add` keep working beside it). Without it and without users, the server is open.
    #[arg(long, env = "TASKSYNC_SERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// SQLite `synchronous` level: `full` makes every acknowledged batch survive a power cut;
    /// `normal` survives a crash of the server but may lose the last batches on a power cut.
    #[arg(
        long,
        env = "TASKSYNC_SERVER_SYNCHRONOUS",
        value_enum,
        default_value_t = Durability::Full,
        global = true
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

    /// Days an applied op id is remembered (a resend within them gets the same answer; an
    /// older resend is harmless anyway, as LWW does not apply it again).
    #[arg(
        long,
        env = "TASKSYNC_SERVER_OP_RETENTION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    pub op_retention_days: u32,

    /// Serve `GET /metrics` on this address instead of on `--listen` (e.g. a private
    /// interface only the monitoring system reaches).
    #[arg(long, env = "TASKSYNC_SERVER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log lines as human text or as one JSON object each (for log shippers).
    #[arg(
        long,
        env = "TASKSYNC_SERVER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do instead of serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Manage the users of this server (takes effect at once, on running servers too).
    #[command(subcommand)]
    User(UserCommand),
    /// Print the man page (roff) and exit: `tasksync-server man | man -l -`.
    #[command(hide = true)]
    Man,
}

/// The man page of `tasksync-server` (roff), with the `user` subcommands.
pub fn man_page() -> Vec<u8> {
    use clap::CommandFactory as _;
    let mut page = Vec::new();
    clap_mangen::Man::new(Config::command())
        .render(&mut page)
        .expect("rendering into memory cannot fail");
    page
}

/// `tasksync-server user ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create a user and print its new token once, on stdout.
    Add { name: String },
    /// List the users.
    List,
    /// Delete a user and all its tasks; its devices get 401 from then on.
    Remove { name: String },
    /// Issue a new token for a user (printed once), revoking the old one.
    Token { name: String },
}

impl Config {
    /// The storage the options name, or what to give when they name none.
    pub fn storage(&self) -> Result<StorageConfig, String> {
        match (&self.database_url, &self.db) {
            (Some(url), _) => Ok(StorageConfig::Postgres { url: url.clone() }),
            (None, Some(path)) => Ok(StorageConfig::Sqlite {
                path: path.clone(),
                durability: self.synchronous,
            }),
            (None, None) => Err("no storage given: pass --db PATH (SQLite) or \
                 --database-url postgres://... (PostgreSQL)"
                .into()),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("command", &self.command)
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("synchronous", &self.synchronous)
            .field("max_clock_skew_secs", &self.max_clock_skew_secs)
            .field("op_retention_days", &self.op_retention_days)
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// Checks a user name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?} is not allowed: use 1 to 64 of A-Z a-z 0-9 . _ @ -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("tasksync-server").chain(args.iter().copied()))
    }

    #[test]
    fn flags_parse_and_secrets_stay_out_of_debug() {
        let config = parse(&[
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
        assert_eq!(config.op_retention_days, 30);
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(matches!(config.storage(), Ok(StorageConfig::Sqlite { .. })));
        let pg = parse(&["--database-url", "postgres://u:pw@h/db"]).unwrap();
        assert!(matches!(pg.storage(), Ok(StorageConfig::Postgres { .. })));
        assert!(!format!("{pg:?}").contains("pw"));
    }

    #[test]
    fn user_subcommands_take_the_storage_options() {
        let config = parse(&["user", "add", "alice", "--db", "/tmp/x.db"]).unwrap();
        assert!(matches!(
            config.command,
            Some(Command::User(UserCommand::Add { ref name })) if name == "alice"
        ));
        assert!(config.storage().is_ok());
        let config = parse(&["--database-url", "postgres://h/db", "user", "list"]).unwrap();
        assert!(matches!(
            config.storage(),
            Ok(StorageConfig::Postgres { .. })
        ));
    }

    #[test]
    fn storage_is_required_and_exclusive() {
        if std::env::var_os("TASKSYNC_SERVER_DB").is_none()
            && std::env::var_os("TASKSYNC_SERVER_DATABASE_URL").is_none()
        {
            assert!(parse(&[]).unwrap().storage().is_err());
            assert!(parse(&["--db", "x", "--database-url", "postgres://h/db"]).is_err());
        }
    }

    #[test]
    fn user_names_are_checked() {
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("a.b-c_d@e").is_ok());
        for bad in ["", "a b", "x".repeat(65).as_str(), "é", "a/b"] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }
}
