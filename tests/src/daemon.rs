//! A tasksyncd process on temporary paths, and taskctl runs against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, DEADLINE};

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
        Daemon::start_configured(db, socket, log, &[], &[])
    }

    /// Starts a daemon with its files under `dir`, extra flags and environment.
    pub fn start_opts(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_configured(
            dir.join("data/tasks.db"),
            dir.join("run/tasksyncd.sock"),
            dir.join("daemon.log"),
            args,
            env,
        )
    }

    /// Starts a new daemon on this one's files (after it stopped) with `args` and `env`.
    pub fn restart(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_configured(
            self.db.clone(),
            self.socket.clone(),
            self.log.clone(),
            args,
            env,
        )
    }

    fn start_configured(
        db: PathBuf,
        socket: PathBuf,
        log: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let child = Daemon::command(&db, &socket, &log, args, env)
            .spawn()
            .expect("start tasksyncd");
        let mut daemon = Daemon {
            child: Some(child),
            db,
            socket,
            log,
        };
        daemon.wait_ready();
        daemon
    }

    /// Runs tasksyncd on these files until it exits, for a start that must fail; returns its
    /// exit code and what it logged.
    pub fn run_to_exit(
        db: &Path,
        socket: &Path,
        log: &Path,
        args: &[&str],
    ) -> (Option<i32>, String) {
        let status = Daemon::command(db, socket, log, args, &[])
            .status()
            .expect("run tasksyncd");
        (
            status.code(),
            std::fs::read_to_string(log).unwrap_or_default(),
        )
    }

    /// The command that runs tasksyncd on these files, with a clean environment.
    pub fn command(
        db: &Path,
        socket: &Path,
        log: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut command = Command::new(bin("tasksyncd"));
        command
            .arg("--db")
            .arg(db)
            .arg("--socket")
            .arg(socket)
            .args(args);
        for var in [
            "TASKSYNC_SOCKET",
            "TASKSYNC_DB",
            "TASKSYNC_SERVER_URL",
            "TASKSYNC_TOKEN",
            "SYNC_BATCH_SIZE",
            "SYNC_RETRY_ATTEMPTS",
            "XDG_CONFIG_HOME",
            "TASKSYNC_CONFIG",
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "JOURNAL_STREAM",
        ] {
            command.env_remove(var);
        }
        // Keep the machine's own config file out of the tests.
        let config_home = log.with_file_name("config");
        command
            .env("XDG_CONFIG_HOME", config_home)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        command
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

    /// Runs taskctl against this daemon with extra environment variables.
    pub fn ctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> Ctl {
        ctl_env(&self.socket, args, env)
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
    ctl_env(socket, args, &[])
}

/// Runs taskctl with `--socket socket` and extra environment variables (`COLUMNS`,
/// `NO_COLOR`, ...); the output-shaping variables of the test's own environment are removed.
pub fn ctl_env(socket: &Path, args: &[&str], env: &[(&str, &str)]) -> Ctl {
    let output = Command::new(bin("taskctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("TASKSYNC_SOCKET")
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run taskctl");
    Ctl { output }
}
