//! The daemon's settings: command-line flags, then environment variables, then defaults.

use std::path::PathBuf;

use clap::Parser;

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
}

impl Config {
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
