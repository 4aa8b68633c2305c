//! Sync throughput: flushing a large queue to a local tasksync-server, pulling a large change
//! set into a fresh daemon, and how fast a backlog drains once the server becomes reachable.

use std::path::Path;
use std::time::{Duration, Instant};

use tasksync_proto::events::{Event, SyncProgress};

use crate::procs::{
    create_tasks, create_tasks_with, plain_task, rich_task, Binaries, DaemonProc, Error, ServerProc,
};

/// What the operations of a flush or pull carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// A title only.
    Plain,
    /// A third of them carry two tags, a due date, a project and an attribute.
    RichThird,
}

/// A fresh name for each run's server and daemons: runs of one load repeat in a bench.
fn run_name(what: &str, load: Load) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    format!("{what}-{load:?}-{}", RUNS.fetch_add(1, Ordering::Relaxed))
}

impl Load {
    fn make(self) -> fn(usize) -> tasksync_proto::NewTask {
        match self {
            Load::Plain => plain_task,
            Load::RichThird => |i| rich_task(i, 3),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Load::Plain => "plain",
            Load::RichThird => "a third with tags, due, project, attribute",
        }
    }
}

/// Operations per second of one `taskctl sync` that flushes `ops` queued creates.
pub async fn flush_rate(
    bins: &Binaries,
    dir: &Path,
    ops: usize,
    batch: usize,
    load: Load,
) -> Result<f64, Error> {
    let name = run_name(&format!("flush-{batch}"), load);
    let server = ServerProc::start(bins, dir, &format!("{name}-server"), "127.0.0.1:0")?;
    let batch = batch.to_string();
    let daemon = DaemonProc::start(
        bins,
        dir,
        &name,
        &[
            "--server",
            &server.url(),
            "--manual-sync",
            "--batch-size",
            &batch,
        ],
    )
    .await?;
    create_tasks_with(&daemon, ops, 32, load.make()).await?;
    let mut client = daemon.connect().await?;
    // Count answered operations from the event stream rather than polling the queue.
    let mut events = daemon.connect().await?.subscribe().await?;
    let start = Instant::now();
    let sync = tokio::spawn(async move { client.sync().await });
    let mut answered = 0u64;
    while answered < ops as u64 {
        match events.next_event().await?.map(|timed| timed.event) {
            Some(Event::Sync(SyncProgress::BatchAnswered {
                synced_items,
                failed_items,
            })) => answered += u64::from(synced_items + failed_items),
            Some(_) => {}
            None => return Err("the daemon closed the event stream".into()),
        }
    }
    let elapsed = start.elapsed();
    let report = sync.await??;
    if !report.success || report.synced_items != ops as u64 {
        return Err(format!("flush did not sync everything: {report:?}").into());
    }
    Ok(ops as f64 / elapsed.as_secs_f64())
}

/// Changes per second a fresh daemon pulls from a server holding `ops` tasks.
pub async fn pull_rate(bins: &Binaries, dir: &Path, ops: usize, load: Load) -> Result<f64, Error> {
    let name = run_name("pull", load);
    let server = ServerProc::start(bins, dir, &format!("{name}-server"), "127.0.0.1:0")?;
    let writer = DaemonProc::start(
        bins,
        dir,
        &format!("{name}-writer"),
        &[
            "--server",
            &server.url(),
            "--manual-sync",
            "--batch-size",
            "500",
        ],
    )
    .await?;
    create_tasks_with(&writer, ops, 32, load.make()).await?;
    let seeded = writer.connect().await?.sync().await?;
    if !seeded.success {
        return Err(format!("seeding the server failed: {seeded:?}").into());
    }
    let reader = DaemonProc::start(
        bins,
        dir,
        &format!("{name}-reader"),
        &["--server", &server.url(), "--manual-sync"],
    )
    .await?;
    let mut client = reader.connect().await?;
    let start = Instant::now();
    let report = client.sync().await?;
    let elapsed = start.elapsed();
    let pulled = client.status().await?.tasks;
    if !report.success || pulled != ops as u64 {
        return Err(format!("pull incomplete: {pulled} of {ops} ({report:?})").into());
    }
    Ok(ops as f64 / elapsed.as_secs_f64())
}

/// Time from the server becoming reachable to an empty queue, for `ops` operations queued
/// while it was away, with probes capped at `probe_max`.
pub async fn drain_time(
    bins: &Binaries,
    dir: &Path,
    ops: usize,
    probe_max: Duration,
) -> Result<Duration, Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let address = format!("127.0.0.1:{port}");
    let name = format!("drain-{ops}");
    let probe = probe_max.as_millis().to_string();
    let daemon = DaemonProc::start(
        bins,
        dir,
        &name,
        &[
            "--server",
            &format!("http://{address}"),
            "--probe-max-ms",
            &probe,
        ],
    )
    .await?;
    create_tasks(&daemon, ops, 32).await?;
    let mut client = daemon.connect().await?;
    // Let the probe backoff reach its cap, as after a long outage.
    tokio::time::sleep(probe_max * 2).await;
    let _server = ServerProc::start(bins, dir, &format!("{name}-server"), &address)?;
    let reachable = Instant::now();
    loop {
        if client.status().await?.pending == 0 {
            return Ok(reachable.elapsed());
        }
        if reachable.elapsed() > Duration::from_secs(300) {
            return Err("the queue did not drain within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
