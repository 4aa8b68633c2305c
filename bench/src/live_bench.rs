//! Live sync: how fast a change made on one device lands in another device's store (both
//! online, loopback), how soon a daemon syncs again after its server restarts, and what 1,000
//! waiting live pulls cost the server.

use std::path::Path;
use std::time::{Duration, Instant};
use tasksync_proto::events::Connectivity;

use tasksync_proto::events::{ChangeOrigin, Event};
use tasksync_proto::{NewTask, TaskPatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procs::{Binaries, DaemonProc, Error, ServerProc};

pub struct Propagation {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub changes: usize,
}

/// Time between two changes: people's edits, not a stream (above about one change a second
/// sustained, a daemon batches live pulls to one a second; see `sync/pace.rs`).
const CHANGE_GAP: Duration = Duration::from_millis(300);

/// Makes `changes` changes on device A (creates, then edits of them), [`CHANGE_GAP`] apart,
/// and times each from the command until device B's store reports it, through B's event
/// stream.
pub async fn propagation(
    bins: &Binaries,
    dir: &Path,
    changes: usize,
) -> Result<Propagation, Error> {
    let server = ServerProc::start(bins, dir, "live-server", "127.0.0.1:0")?;
    // The periodic pull is an hour away: only the live pull can deliver in time.
    let args = ["--server", &server.url(), "--pull-interval-ms", "3600000"];
    let a = DaemonProc::start(bins, dir, "live-a", &args).await?;
    let b = DaemonProc::start(bins, dir, "live-b", &args).await?;
    for daemon in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.connect().await?.status().await?.state != Connectivity::Online {
            if Instant::now() > deadline {
                return Err("a daemon did not come online".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut writer = a.connect().await?;
    let mut events = b.connect().await?.subscribe().await?;
    let mut made: Vec<tasksync_proto::Task> = Vec::new();
    let mut latencies = Vec::with_capacity(changes);
    for i in 0..changes {
        tokio::time::sleep(CHANGE_GAP).await;
        let start = Instant::now();
        let task = if i % 2 == 0 || made.is_empty() {
            writer
                .create_task(NewTask {
                    title: format!("live {i}"),
                    description: None,
                    id: None,
                    ..Default::default()
                })
                .await?
        } else {
            let id = made[i % made.len()].id;
            writer
                .update_task(
                    &id.to_string(),
                    TaskPatch {
                        title: Some(format!("edit {i}")),
                        ..TaskPatch::default()
                    },
                )
                .await?
        };
        made.push(task.clone());
        let deadline = start + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, events.next_event())
                .await
                .map_err(|_| format!("change {i} did not reach device B within 10 s"))??
                .ok_or("device B closed its event stream")?;
            if let Event::TaskChanged { task: seen, origin } = event.event {
                if origin == ChangeOrigin::Remote
                    && seen.id == task.id
                    && seen.updated_at == task.updated_at
                {
                    break;
                }
            }
        }
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50_ms, p95_ms, max_ms) = percentiles(latencies);
    Ok(Propagation {
        p50_ms,
        p95_ms,
        max_ms,
        changes,
    })
}

/// p50, p95 and max of `samples`.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.95), at(1.0))
}

pub struct Restarts {
    pub p50_s: f64,
    pub p95_s: f64,
    pub max_s: f64,
    pub runs: usize,
}

/// With default settings: stops the server, leaves it down for `outage`, starts it again on
/// the same address, and times how long the daemon takes to finish a successful round
/// (`last_sync_at` moves), `runs` times.
pub async fn restart_recovery(
    bins: &Binaries,
    dir: &Path,
    runs: usize,
    outage: Duration,
) -> Result<Restarts, Error> {
    let mut server = ServerProc::start(bins, dir, "restart-server", "127.0.0.1:0")?;
    let addr = server.addr.clone();
    let daemon =
        DaemonProc::start(bins, dir, "restart-daemon", &["--server", &server.url()]).await?;
    let mut client = daemon.connect().await?;
    let mut took = Vec::with_capacity(runs);
    for run in 0..runs {
        let last = wait_for(&mut client, "online", |s| s.state == Connectivity::Online)
            .await?
            .last_sync_at;
        drop(server);
        wait_for(&mut client, "offline", |s| s.state == Connectivity::Offline).await?;
        tokio::time::sleep(outage).await;
        server = ServerProc::start(bins, dir, "restart-server", &addr)?;
        let back = Instant::now();
        wait_for(&mut client, "a successful round", |s| {
            s.state == Connectivity::Online && s.last_sync_at != last
        })
        .await
        .map_err(|e| format!("run {run}: {e}"))?;
        took.push(back.elapsed().as_secs_f64());
    }
    let (p50_s, p95_s, max_s) = percentiles(took);
    Ok(Restarts {
        p50_s,
        p95_s,
        max_s,
        runs,
    })
}

/// Polls the daemon's status every 5 ms until `done` holds (at most 60 s).
async fn wait_for(
    client: &mut tasksync_proto::Client,
    what: &str,
    done: impl Fn(&tasksync_proto::StatusInfo) -> bool,
) -> Result<tasksync_proto::StatusInfo, Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.status().await?;
        if done(&status) {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err(format!("the daemon did not reach {what} within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub struct Waiting {
    pub pulls: usize,
    pub server_rss_kib: u64,
    pub health_p99_ms: f64,
}

/// Opens `pulls` live pulls that wait (nothing changes), then measures the server's memory
/// and how fast it answers `/api/health` meanwhile.
pub async fn waiting_pulls(bins: &Binaries, dir: &Path, pulls: usize) -> Result<Waiting, Error> {
    let server = ServerProc::start(bins, dir, "waiting-server", "127.0.0.1:0")?;
    let mut held = Vec::with_capacity(pulls);
    for _ in 0..pulls {
        let mut stream = TcpStream::connect(&server.addr).await?;
        stream
            .write_all(
                format!(
                    "GET /api/changes?since=&limit=100&wait=60 HTTP/1.1\r\nHost: {}\r\n\r\n",
                    server.addr
                )
                .as_bytes(),
            )
            .await?;
        held.push(stream);
    }
    // Let the server take every request in before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let mut stream = TcpStream::connect(&server.addr).await?;
        stream
            .write_all(
                format!(
                    "GET /api/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    server.addr
                )
                .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        if !answer.starts_with(b"HTTP/1.1 200") {
            return Err("health did not answer 200 while pulls waited".into());
        }
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let rss = crate::idle_bench::rss_kib(server.pid())?;
    // Every pull is still waiting: none was answered early.
    let mut still_waiting = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte))
            .await
            .is_err()
        {
            still_waiting += 1;
        }
    }
    if still_waiting != pulls {
        return Err(format!(
            "{} of {pulls} live pulls were answered early",
            pulls - still_waiting
        )
        .into());
    }
    Ok(Waiting {
        pulls,
        server_rss_kib: rss,
        health_p99_ms: latencies[(latencies.len() - 1) * 99 / 100],
    })
}
