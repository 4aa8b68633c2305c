//! Starting and stopping the real binaries the benchmarks measure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tasksync_proto::Client;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where the binaries are: next to this program unless told otherwise.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub daemon: PathBuf,
    pub server: PathBuf,
    pub ctl: PathBuf,
}

/// A running tasksyncd, killed when dropped.
pub struct DaemonProc {
    child: Child,
    pub socket: PathBuf,
}

impl DaemonProc {
    /// Starts tasksyncd with its files in `dir/name` and waits until it serves.
    pub async fn start(
        bins: &Binaries,
        dir: &Path,
        name: &str,
        args: &[&str],
    ) -> Result<DaemonProc, Error> {
        let home = dir.join(name);
        std::fs::create_dir_all(&home)?;
        let socket = home.join("run/tasksyncd.sock");
        let child = Command::new(&bins.daemon)
            .arg("--db")
            .arg(home.join("tasks.db"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (build it with cargo build --release)",
                    bins.daemon.display()
                )
            })?;
        let daemon = DaemonProc { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Client::connect(&daemon.socket, "bench").await.is_err() {
            if Instant::now() > deadline {
                return Err("tasksyncd did not start serving within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(daemon)
    }

    pub async fn connect(&self) -> Result<Client, Error> {
        Ok(Client::connect(&self.socket, "bench").await?)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running tasksync-server, killed when dropped.
pub struct ServerProc {
    child: Child,
    pub addr: String,
}

impl ServerProc {
    /// Starts tasksync-server on `listen` (port 0 for any) with its database in `dir/name`.
    pub fn start(
        bins: &Binaries,
        dir: &Path,
        name: &str,
        listen: &str,
    ) -> Result<ServerProc, Error> {
        let db = dir.join(name).join("server.db");
        let db = db.to_string_lossy().into_owned();
        ServerProc::start_with(bins, dir, name, listen, &["--db", &db])
    }

    /// Starts tasksync-server on `listen` with the storage `args` (`--db PATH` or
    /// `--database-url URL`), its files in `dir/name`.
    pub fn start_with(
        bins: &Binaries,
        dir: &Path,
        name: &str,
        listen: &str,
        args: &[&str],
    ) -> Result<ServerProc, Error> {
        let home = dir.join(name);
        std::fs::create_dir_all(&home)?;
        let mut child = Command::new(&bins.server)
            .arg("--listen")
            .arg(listen)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bins.server.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_string();
        Ok(ServerProc { child, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `count` tasks over `clients` concurrent connections.
pub async fn create_tasks(daemon: &DaemonProc, count: usize, clients: usize) -> Result<(), Error> {
    create_tasks_with(daemon, count, clients, plain_task).await
}

/// Task `i` of a plain run: a title only.
pub fn plain_task(i: usize) -> tasksync_proto::NewTask {
    tasksync_proto::NewTask {
        title: format!("bench task {i}"),
        ..Default::default()
    }
}

/// Task `i` of a rich run: every `every`-th task has two tags, a due date `i` hours from
/// 2026-12-01, a project and an attribute; the others are plain.
pub fn rich_task(i: usize, every: usize) -> tasksync_proto::NewTask {
    let mut task = plain_task(i);
    if i.is_multiple_of(every) {
        let hours = i64::try_from(i).unwrap_or(0) * 3_600_000;
        task.due = tasksync_proto::Timestamp::from_millis(1_796_083_200_000 + hours);
        task.project = Some(format!("home.room{}", i % 7));
        task.tags = [format!("tag{}", i % 13), "bench".to_string()].into();
        task.attributes = [("bench.n".to_string(), i.to_string())].into();
    }
    task
}

/// Creates `count` tasks made by `make` over `clients` connections at once.
pub async fn create_tasks_with(
    daemon: &DaemonProc,
    count: usize,
    clients: usize,
    make: fn(usize) -> tasksync_proto::NewTask,
) -> Result<(), Error> {
    let mut handles = Vec::new();
    for worker in 0..clients {
        let mut client = daemon.connect().await?;
        handles.push(tokio::spawn(async move {
            for i in (worker..count).step_by(clients) {
                client.create_task(make(i)).await?;
            }
            Ok::<(), tasksync_proto::ClientError>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(())
}
