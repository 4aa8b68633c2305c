//! Live sync: how fast a change made on one device lands in another device's store (both
//! online, loopback), and what 1,000 waiting live pulls cost the server.

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

/// Makes `changes` changes on device A (creates, then edits of them) and times each until
/// device B's store reports it, through B's event stream.
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
        let start = Instant::now();
        let task = if i % 2 == 0 || made.is_empty() {
            writer
                .create_task(NewTask {
                    title: format!("live {i}"),
                    description: None,
                    id: None,
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
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(Propagation {
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        max_ms: at(1.0),
        changes,
    })
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
