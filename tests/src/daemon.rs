//! A tasksyncd process on temporary paths, started by a [`DaemonBuilder`], and taskctl runs
//! against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, wait_until, DEADLINE};

/// How to start a tasksyncd: its files, flags and environment. The environment is clean: the
/// variables tasksyncd reads are removed and the machine's config folder is replaced by one
/// beside the log, so only what a test gives counts.
#[derive(Clone)]
pub struct DaemonBuilder {
    db: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl DaemonBuilder {
    /// Syncs with the server at `url`.
    pub fn server(self, url: &str) -> DaemonBuilder {
        self.arg("--server").arg(url)
    }

    /// Syncs only when asked (`taskctl sync`).
    pub fn manual_sync(self) -> DaemonBuilder {
        self.arg("--manual-sync")
    }

    /// Sends `token` to the server; as `--token=TOKEN`, since a token may start with '-'.
    pub fn token(self, token: &str) -> DaemonBuilder {
        self.arg(&format!("--token={token}"))
    }

    pub fn arg(mut self, arg: &str) -> DaemonBuilder {
        self.args.push(arg.to_string());
        self
    }

    pub fn args(self, args: &[&str]) -> DaemonBuilder {
        args.iter().fold(self, |builder, arg| builder.arg(arg))
    }

    /// Sets an environment variable (a later one of the same name wins).
    pub fn env(mut self, name: &str, value: &str) -> DaemonBuilder {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn db(mut self, db: &Path) -> DaemonBuilder {
        self.db = db.to_path_buf();
        self
    }

    pub fn socket(mut self, socket: &Path) -> DaemonBuilder {
        self.socket = socket.to_path_buf();
        self
    }

    pub fn log(mut self, log: &Path) -> DaemonBuilder {
        self.log = log.to_path_buf();
        self
    }

    /// The command that runs tasksyncd so, its stderr appended to the log file.
    pub fn command(&self) -> Command {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = Command::new(bin("tasksyncd"));
        command
            .arg("--db")
            .arg(&self.db)
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.args);
        // None of the daemon's settings leak in from the test's own environment.
        for (name, _) in std::env::vars_os() {
            if is_daemon_setting(&name) {
                command.env_remove(name);
            }
        }
        for var in [
            "XDG_CONFIG_HOME",
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "JOURNAL_STREAM",
        ] {
            command.env_remove(var);
        }
        // Keep the machine's own config file out of the tests.
        command
            .env("XDG_CONFIG_HOME", self.log.with_file_name("config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        command
    }

    /// Starts the daemon and waits until it accepts connections.
    pub fn start(self) -> Daemon {
        let child = self.command().spawn().expect("start tasksyncd");
        let mut daemon = Daemon {
            child: Some(child),
            db: self.db.clone(),
            socket: self.socket.clone(),
            log: self.log.clone(),
            builder: self,
        };
        daemon.wait_ready();
        daemon
    }

    /// Runs tasksyncd until it exits, for a start that must fail; returns its exit code and
    /// what it logged.
    pub fn run_to_exit(self) -> (Option<i32>, String) {
        let status = self.command().status().expect("run tasksyncd");
        (
            status.code(),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

/// A running tasksyncd on a temporary database and socket.
pub struct Daemon {
    pub child: Option<Child>,
    pub db: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    builder: DaemonBuilder,
}

impl Daemon {
    /// A daemon with its files under `dir` (`data/tasks.db`, `run/tasksyncd.sock`,
    /// `daemon.log`), no flags yet.
    pub fn builder(dir: &Path) -> DaemonBuilder {
        DaemonBuilder {
            db: dir.join("data/tasks.db"),
            socket: dir.join("run/tasksyncd.sock"),
            log: dir.join("daemon.log"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Starts a local-only daemon with its files under `dir`.
    pub fn start(dir: &Path) -> Daemon {
        Daemon::builder(dir).start()
    }

    /// Starts the usual device of the sync tests: files under `dir`, syncing with the server
    /// at `url` only when asked (`taskctl sync`).
    pub fn start_manual_sync(dir: &Path, url: &str) -> Daemon {
        Daemon::builder(dir).server(url).manual_sync().start()
    }

    /// A new daemon on this one's files (after it stopped), with the flags and environment
    /// this one had; more may be added.
    pub fn restart(&self) -> DaemonBuilder {
        self.builder.clone()
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

    /// `taskctl --json add TITLE`: the new task (the run must succeed).
    pub fn add(&self, title: &str) -> Value {
        self.ctl(&["--json", "add", title]).json()
    }

    /// `taskctl --json add TITLE`: the new task's id.
    pub fn add_id(&self, title: &str) -> String {
        let task = self.add(title);
        task["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a task without an id: {task}"))
            .to_string()
    }

    /// `taskctl --json show REFERENCE`: the task (the run must succeed).
    pub fn show(&self, reference: &str) -> Value {
        self.ctl(&["--json", "show", reference]).json()
    }

    /// `taskctl --json show REFERENCE`: the task, or `None` when taskctl finds none.
    pub fn task(&self, reference: &str) -> Option<Value> {
        let run = self.ctl(&["--json", "show", reference]);
        (run.code() == 0).then(|| run.json())
    }

    /// `taskctl --json status`.
    pub fn status(&self) -> Value {
        self.ctl(&["--json", "status"]).json()
    }

    /// `taskctl --json sync`: its exit code and its report.
    pub fn sync(&self) -> (i32, Value) {
        let run = self.ctl(&["--json", "sync"]);
        let report = serde_json::from_slice(&run.output.stdout)
            .unwrap_or_else(|_| panic!("no sync report: {} / {}", run.stdout(), run.stderr()));
        (run.code(), report)
    }

    /// Waits until `taskctl status` reports connectivity `state` (`online`, `offline`,
    /// `unauthorized`).
    pub fn wait_for_state(&self, state: &str) {
        wait_until(&format!("the daemon to be {state}"), || {
            self.status()["state"] == state
        });
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
    pub fn json(&self) -> Value {
        assert_eq!(self.code(), 0, "taskctl failed: {}", self.stderr());
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout()))
    }

    /// Asserts the exit code and that stderr (what taskctl told the user) has `words`.
    #[track_caller]
    pub fn assert_says(&self, code: i32, words: &str) {
        let stderr = self.stderr();
        assert_eq!(self.code(), code, "{stderr}");
        assert!(stderr.contains(words), "{words:?} not in: {stderr}");
    }

    /// Asserts the JSON error `--json` prints on stderr: its `code`, and `words` in its
    /// message; returns it.
    #[track_caller]
    pub fn assert_json_error(&self, code: &str, words: &str) -> Value {
        let error = self.json_error();
        assert_eq!(error["error"]["code"], code, "{error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{words:?} not in: {error}");
        error
    }

    /// Parses stderr as the JSON error object `--json` prints.
    pub fn json_error(&self) -> Value {
        serde_json::from_slice(&self.output.stderr)
            .unwrap_or_else(|e| panic!("bad JSON error ({e}): {}", self.stderr()))
    }
}

/// Runs taskctl with `--socket socket`.
/// Whether the daemon reads the environment variable `name` as a setting: every
/// `TASKSYNC_*` variable, and the original challenge's `SYNC_BATCH_SIZE` and
/// `SYNC_RETRY_ATTEMPTS` (any `SYNC_*`, to be safe).
fn is_daemon_setting(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("TASKSYNC_") || name.starts_with("SYNC_")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_of_the_daemon_is_kept_from_it() {
        for name in [
            "TASKSYNC_SOCKET",
            "TASKSYNC_PULL_INTERVAL_MS",
            "TASKSYNC_HTTP",
            "TASKSYNC_MANUAL_SYNC",
            "TASKSYNC_SOMETHING_NEW",
            "SYNC_BATCH_SIZE",
            "SYNC_RETRY_ATTEMPTS",
        ] {
            assert!(is_daemon_setting(name.as_ref()), "{name}");
        }
        for name in ["PATH", "HOME", "RUST_LOG", "MY_TASKSYNC_THING"] {
            assert!(!is_daemon_setting(name.as_ref()), "{name}");
        }
    }
}
