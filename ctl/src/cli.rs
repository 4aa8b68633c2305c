//! taskctl's command line (DESIGN.md section 8).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tasksync_proto::SyncStatus;

/// Manage your tasks through the local tasksyncd daemon.
///
/// IDs may be given as any unique prefix, git style.
#[derive(Debug, Parser)]
#[command(name = "taskctl", version, about)]
pub struct Args {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock]
    #[arg(long, global = true, env = "TASKSYNC_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print stable JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Cmd,
}

impl Args {
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(tasksync_proto::paths::default_socket_path)
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a task; prints its id (--json: the task)
    Add {
        title: String,
        /// A longer description
        #[arg(short, long)]
        description: Option<String>,
    },
    /// List tasks, newest first
    #[command(alias = "ls")]
    List {
        /// Include deleted tasks
        #[arg(long)]
        all: bool,
        /// Only tasks with this sync status (pending, in-progress, synced, error, failed)
        #[arg(long, value_parser = parse_status)]
        status: Option<SyncStatus>,
    },
    /// Show one task
    Show { id: String },
    /// Change a task
    Edit {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(short, long, conflicts_with = "clear_description")]
        description: Option<String>,
        /// Remove the description
        #[arg(long)]
        clear_description: bool,
        /// Mark completed
        #[arg(long, conflicts_with = "undone")]
        done: bool,
        /// Mark not completed
        #[arg(long)]
        undone: bool,
    },
    /// Mark a task completed
    Done { id: String },
    /// Delete a task (soft: it syncs as a tombstone)
    #[command(alias = "delete")]
    Rm { id: String },
    /// Show the daemon's state
    Status,
    /// Flush the queue to the sync server and pull changes now; wait for the result
    Sync,
    /// List queued operations, oldest first
    Queue {
        /// Only dead-lettered operations
        #[arg(long)]
        failed: bool,
    },
    /// Send dead-lettered operations again
    Retry {
        /// An operation id or task id (or a unique prefix of one)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead-lettered operation
        #[arg(long)]
        all: bool,
    },
    /// Print the bearer token of the daemon's HTTP API
    ApiToken,
    /// Stream events (current state, task changes, sync progress, connectivity) until
    /// interrupted; with --json, one object a line
    Watch,
}

fn parse_status(text: &str) -> Result<SyncStatus, String> {
    text.parse()
}
