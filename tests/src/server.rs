//! A tasksync-server process on a loopback port and a temporary database.

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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log");
        let mut child = Command::new(bin("tasksync-server"))
            .arg("--listen")
            .arg(listen)
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("TASKSYNC_SERVER_TOKEN")
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
        let answer = http::get(&self.addr, "/api/tasks");
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
