//! Harness for the end-to-end tests: starts the real binaries on temporary paths and stops
//! them. Binaries are the ones `cargo test --workspace` builds into the same target folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// A running tasksyncd on a temporary database and socket.
pub struct Daemon {
    pub child: Option<Child>,
    pub db: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts a daemon with its files under `dir` and waits until it accepts connections.
    pub fn start(dir: &Path) -> Daemon {
        Daemon::start_with(
            dir.join("data/tasks.db"),
            dir.join("run/tasksyncd.sock"),
            dir.join("daemon.log"),
        )
    }

    pub fn start_with(db: PathBuf, socket: PathBuf, log: PathBuf) -> Daemon {
        let child = Daemon::spawn(&db, &socket, &log);
        let mut daemon = Daemon {
            child: Some(child),
            db,
            socket,
            log,
        };
        daemon.wait_ready();
        daemon
    }

    /// Starts tasksyncd without waiting for it.
    pub fn spawn(db: &Path, socket: &Path, log: &Path) -> Child {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Command::new(bin("tasksyncd"))
            .arg("--db")
            .arg(db)
            .arg("--socket")
            .arg(socket)
            .env_remove("TASKSYNC_SOCKET")
            .env_remove("TASKSYNC_DB")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start tasksyncd")
    }

    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let start = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tasksyncd exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "tasksyncd not ready:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// Sends `signal` and waits for the process to end; returns its exit status.
    pub fn stop_with(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, signal) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for tasksyncd") {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "tasksyncd ignored signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs taskctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Ctl {
        ctl_at(&self.socket, args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The outcome of one taskctl run.
pub struct Ctl {
    pub output: Output,
}

impl Ctl {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code(), 0, "taskctl failed: {}", self.stderr());
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout()))
    }

    /// Parses stderr as the JSON error object `--json` prints.
    pub fn json_error(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stderr)
            .unwrap_or_else(|e| panic!("bad JSON error ({e}): {}", self.stderr()))
    }
}

/// Runs taskctl with `--socket socket`.
pub fn ctl_at(socket: &Path, args: &[&str]) -> Ctl {
    let output = Command::new(bin("taskctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("TASKSYNC_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run taskctl");
    Ctl { output }
}
