//! A tasksync-server process on a loopback port and a temporary SQLite database, or on a
//! PostgreSQL database shared with other server processes; and its `user` subcommands. The
//! one harness that starts the server, for these tests and the server crate's own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::{bin, http, wait_until, DEADLINE};

/// How to start a tasksync-server: where, on which storage, with which flags.
pub struct ServerBuilder {
    dir: PathBuf,
    listen: String,
    storage: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    open_files: Option<u64>,
}

impl ServerBuilder {
    /// Listens on `addr` (e.g. the address a stopped server had) instead of a free port.
    pub fn listen(mut self, addr: &str) -> ServerBuilder {
        self.listen = addr.to_string();
        self
    }

    /// Stores in the PostgreSQL database `url` instead of SQLite.
    pub fn postgres(mut self, url: &str) -> ServerBuilder {
        self.storage = vec!["--database-url".into(), url.into()];
        self
    }

    /// Opens the server to one user with this bearer token.
    pub fn token(self, token: &str) -> ServerBuilder {
        self.arg("--token").arg(token)
    }

    pub fn arg(mut self, arg: &str) -> ServerBuilder {
        self.args.push(arg.to_string());
        self
    }

    /// Sets an environment variable (none of the server's own are inherited).
    pub fn env(mut self, name: &str, value: &str) -> ServerBuilder {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the server with both its open-file limits (soft and hard) at `limit`.
    pub fn open_file_limit(mut self, limit: u64) -> ServerBuilder {
        self.open_files = Some(limit);
        self
    }

    /// Starts the server and waits for the address it prints; its log is `dir/server.log`.
    pub fn start(self) -> Server {
        let log = self.dir.join("server.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut command = server_command();
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt as _;
            let limit = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads the struct passed to it.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command
            .arg("--listen")
            .arg(&self.listen)
            .args(&self.storage)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start tasksync-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads every line, so the server never blocks on a full pipe.
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
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Server {
            child: Some(child),
            addr,
        }
    }
}

/// A running tasksync-server, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// A server on a free loopback port with its SQLite database `dir/server.db`.
    pub fn builder(dir: &Path) -> ServerBuilder {
        let db = dir.join("server.db");
        ServerBuilder {
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            storage: vec!["--db".into(), db.to_string_lossy().into_owned()],
            args: Vec::new(),
            env: Vec::new(),
            open_files: None,
        }
    }

    /// Starts an open server on a free loopback port with its database under `dir`.
    pub fn start(dir: &Path) -> Server {
        Server::builder(dir).start()
    }

    /// Starts a server on a free loopback port, on the PostgreSQL database `url`.
    pub fn start_pg(dir: &Path, url: &str) -> Server {
        Server::builder(dir).postgres(url).start()
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

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the server to exit; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let mut status = None;
        wait_until("tasksync-server to exit after SIGTERM", || {
            status = child.try_wait().expect("wait for tasksync-server");
            status.is_some()
        });
        status.expect("an exit status")
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
    let output = server_command()
        .args(args)
        .env("RUST_LOG", "warn")
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

/// Pushes one new task titled `title` straight to the server with `token`; returns the status.
pub fn push_task(addr: &str, token: &str, title: &str) -> u16 {
    use tasksync_proto::wire::{content_digest, BatchItem, BatchRequest, Operation, WireTask};
    use tasksync_proto::Timestamp;
    let now = Timestamp::now();
    let task = WireTask {
        id: uuid::Uuid::now_v7(),
        title: title.into(),
        description: None,
        completed: false,
        created_at: now,
        updated_at: now,
        is_deleted: false,
        device_id: uuid::Uuid::now_v7(),
        due: None,
        priority: None,
        project: None,
        tags: Default::default(),
        attributes: Default::default(),
    };
    let batch = BatchRequest {
        device_id: task.device_id,
        client_timestamp: now,
        items: vec![BatchItem {
            id: uuid::Uuid::now_v7(),
            task_id: task.id,
            operation: Operation::Create,
            changed_fields: None,
            data: task,
            created_at: now,
            retry_count: 0,
            base: Default::default(),
        }],
    };
    let body = serde_json::to_vec(&batch).expect("batch JSON");
    let bearer = format!("Bearer {token}");
    let digest = content_digest(&body);
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Digest", &digest),
    ];
    http::request(addr, "POST", "/api/batch", &headers, &body).status
}

/// Live pulls held with `token` (`GET /api/changes?since=CURSOR&wait=60`), each on its own
/// thread. `open` returns once every request is written: with nothing new after the cursor,
/// the server holds them.
pub struct HeldPulls {
    answers: mpsc::Receiver<http::Answer>,
    count: usize,
}

impl HeldPulls {
    pub fn open(addr: &str, token: &str, since: &str, count: usize) -> HeldPulls {
        let (tx, answers) = mpsc::channel();
        let (sent_tx, sent) = mpsc::channel();
        let path = format!("/api/changes?since={since}&wait=60");
        for _ in 0..count {
            let (addr, path, bearer) = (addr.to_string(), path.clone(), format!("Bearer {token}"));
            let (tx, sent_tx) = (tx.clone(), sent_tx.clone());
            std::thread::spawn(move || {
                let headers = [("Authorization", bearer.as_str())];
                let answer = http::request_after(&addr, "GET", &path, &headers, b"", || {
                    let _ = sent_tx.send(());
                });
                let _ = tx.send(answer);
            });
        }
        for _ in 0..count {
            sent.recv_timeout(DEADLINE).expect("a held pull sent");
        }
        HeldPulls { answers, count }
    }

    /// Every answer (they asked to be held 60 s; each must come within [`DEADLINE`]).
    pub fn answers(self) -> Vec<http::Answer> {
        (0..self.count)
            .map(|_| {
                self.answers
                    .recv_timeout(DEADLINE)
                    .expect("a held pull answered in time")
            })
            .collect()
    }
}

/// Rotating the token of a new user `name`, then removing the user, answers every live pull
/// held on `held_on` with the revoked token 401 within a second or so, and nothing pushed with
/// the new token (through `push_to`, which may be another process) reaches them.
pub fn check_revocation_reaches_held_pulls(
    held_on: &Server,
    push_to: &Server,
    storage: &[&str],
    name: &str,
) {
    let statuses =
        |answers: Vec<http::Answer>| answers.iter().map(|a| a.status).collect::<Vec<_>>();
    let old = add_user(storage, name);
    let held = HeldPulls::open(&held_on.addr, &old, "", 3);
    let (code, new, stderr) = server_cli(&[&["user", "token", name][..], storage].concat());
    assert_eq!(code, Some(0), "{stderr}");
    let new = new.trim().to_string();
    let rotated = std::time::Instant::now();
    // Pushed with the new token before the server may have noticed the rotation: it wakes
    // the old token's pulls, which must refuse rather than deliver it.
    assert_eq!(push_task(&push_to.addr, &new, "after rotation"), 200);
    assert_eq!(statuses(held.answers()), vec![401; 3]);
    let took = rotated.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "held pulls answered {took:?} after the rotation"
    );

    // The new token's pulls are held after the pushed task, then the user is removed.
    let page = http::request(
        &held_on.addr,
        "GET",
        "/api/changes",
        &[("Authorization", &format!("Bearer {new}"))],
        b"",
    );
    assert_eq!(page.status, 200);
    let cursor = page.json()["cursor"].as_str().expect("cursor").to_string();
    let held = HeldPulls::open(&held_on.addr, &new, &cursor, 2);
    let (code, _, stderr) = server_cli(&[&["user", "remove", name][..], storage].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        statuses(held.answers()),
        vec![401; 2],
        "a removed user's held pulls"
    );
}

/// tasksync-server with none of its `TASKSYNC_SERVER_*` variables from the test's environment.
fn server_command() -> Command {
    let mut command = Command::new(bin("tasksync-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TASKSYNC_SERVER_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}
