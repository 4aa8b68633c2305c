//! Harness for the end-to-end tests: starts the real binaries on temporary paths and loopback
//! ports, and stops them. Binaries are the ones `cargo test --workspace` builds into the same
//! target folder.
//!
//! - [`daemon`]: a tasksyncd process, started by a builder, and taskctl runs against it.
//! - [`server`]: a tasksync-server process, started by a builder, and its user commands.
//! - [`replica`]: the synced fields of every task a daemon or the server holds.
//! - [`http`]: one blocking HTTP request, over TCP or the daemon's socket.
//! - [`scripted`]: a fake sync server whose answers a test decides, recording every request.
//! - [`pg`]: a throwaway PostgreSQL database per test.
//! - [`proxy`]: a TCP proxy a test can cut and restore, and a server that never answers.
//! - [`watch`]: `taskctl --json watch` as a child process, its events collected.
//! - [`sse`]: the daemon's `GET /api/events` stream, read event by event.
//! - [`notify`]: a service manager's notify socket, for what the daemon says to systemd.

pub mod daemon;
pub mod http;
pub mod notify;
pub mod pg;
pub mod proxy;
pub mod replica;
pub mod scripted;
pub mod server;
pub mod sse;
pub mod watch;

pub use daemon::{ctl_at, ctl_env, Ctl, Daemon, DaemonBuilder};
pub use server::{
    add_user, check_revocation_reaches_held_pulls, push_task, server_cli, HeldPulls, Server,
    ServerBuilder,
};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long anything in these tests may take before it counts as hung.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The path of a workspace binary next to this test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the workspace tests with `cargo test --workspace`, which builds every binary",
        path.display()
    );
    path
}

/// Runs `future` to completion on a fresh single-threaded runtime (for tests that drive the
/// async `tasksync_proto::Client`).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// Polls `condition` until it holds or [`DEADLINE`] passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Waits until the wall clock is past `at` (a timestamp as the JSON of a task carries it), so
/// that what a test does next happens strictly later.
pub fn wait_until_past(at: &serde_json::Value) {
    let at: tasksync_proto::Timestamp = serde_json::from_value(at.clone())
        .unwrap_or_else(|e| panic!("not a timestamp ({e}): {at}"));
    wait_until(&format!("the clock to pass {at:?}"), || {
        tasksync_proto::Timestamp::now() > at
    });
}

/// A loopback port that was free a moment ago (bound, noted, released), for a server that
/// must start later on an address a daemon already knows.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A fresh folder `name` inside `dir`, for one more process's files.
pub fn subdir(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::create_dir_all(&path).expect("create a test folder");
    path
}
