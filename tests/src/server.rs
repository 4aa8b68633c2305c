//! A tasksync-server process on a loopback port and a temporary SQLite database, or on a
//! PostgreSQL database shared with other server processes; and its `user` subcommands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::{bin, http, DEADLINE};

pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub db: PathBuf,
}

impl Server {
    /// Starts a server on a free loopback port with its database under `dir`.
    pub fn start(dir: &Path) -> Server {
        Server::start_at(dir, "127.0.0.1:0", &[])
    }

    /// Starts a server listening on `listen` (e.g. the address a stopped one had).
    pub fn start_at(dir: &Path, listen: &str, args: &[&str]) -> Server {
        let db = dir.join("server.db");
        let db_arg = db.to_string_lossy().into_owned();
        Server::spawn(dir, listen, &["--db", &db_arg], args, db)
    }

    /// Starts a server on the PostgreSQL database `url` (logging to `dir/server.log`).
    pub fn start_pg(dir: &Path, url: &str, listen: &str, args: &[&str]) -> Server {
        Server::spawn(dir, listen, &["--database-url", url], args, PathBuf::new())
    }

    fn spawn(dir: &Path, listen: &str, storage: &[&str], args: &[&str], db: PathBuf) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log");
        let mut child = Command::new(bin("tasksync-server"))
            .arg("--listen")
            .arg(listen)
            .args(storage)
            .args(args)
            .env_remove("TASKSYNC_SERVER_TOKEN")
            .env_remove("TASKSYNC_SERVER_DB")
            .env_remove("TASKSYNC_SERVER_DATABASE_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start tasksync-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "tasksync-server did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            )
        });
        Server {
            child: Some(child),
            addr,
            db,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every task the server holds, tombstones included, sorted by id.
    pub fn tasks(&self) -> Vec<serde_json::Value> {
        self.tasks_of(None)
    }

    /// The tasks of the user with `token` (or of the open server's user), sorted by id.
    pub fn tasks_of(&self, token: Option<&str>) -> Vec<serde_json::Value> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        let answer = http::request(&self.addr, "GET", "/api/tasks", &headers, b"");
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let mut tasks = answer.json().as_array().expect("array").clone();
        tasks.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        tasks
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `tasksync-server ARGS` (e.g. `user add alice --database-url URL`) to its end:
/// (exit code, stdout, stderr).
pub fn server_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(bin("tasksync-server"))
        .args(args)
        .env_remove("TASKSYNC_SERVER_TOKEN")
        .env_remove("TASKSYNC_SERVER_DB")
        .env_remove("TASKSYNC_SERVER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run tasksync-server");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `tasksync-server user add NAME` with `storage` args; returns the printed token.
pub fn add_user(storage: &[&str], name: &str) -> String {
    let args = [&["user", "add", name][..], storage].concat();
    let (code, stdout, stderr) = server_cli(&args);
    assert_eq!(code, Some(0), "user add {name}: {stderr}");
    let token = stdout.trim().to_string();
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout:?}");
    assert!(!token.is_empty());
    token
}
