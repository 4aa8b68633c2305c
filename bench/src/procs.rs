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
    let mut handles = Vec::new();
    for worker in 0..clients {
        let mut client = daemon.connect().await?;
        handles.push(tokio::spawn(async move {
            for i in (worker..count).step_by(clients) {
                let new = tasksync_proto::NewTask {
                    title: format!("bench task {i}"),
                    description: None,
                    id: None,
                    ..Default::default()
                };
                client.create_task(new).await?;
            }
            Ok::<(), tasksync_proto::ClientError>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(())
}
