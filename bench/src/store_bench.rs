//! Drives a real tasksyncd over its socket: durable creates with 1 and N clients, and the
//! GetTask round trip.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tasksync_proto::NewTask;

use crate::limits::{micros, percentile};
use crate::procs::{Binaries, DaemonProc, Error};

pub struct Results {
    pub creates_1: f64,
    pub creates_n: f64,
    pub get_p50_us: f64,
    pub get_p99_us: f64,
}

pub async fn run(
    bins: &Binaries,
    dir: &Path,
    window: Duration,
    clients: usize,
) -> Result<Results, Error> {
    let daemon = DaemonProc::start(bins, dir, "store", &[]).await?;
    let creates_1 = creates_per_second(&daemon, 1, window).await?;
    let creates_n = creates_per_second(&daemon, clients, window).await?;

    let mut probe = daemon.connect().await?;
    let page = probe.list_page(false, None, None, 1000).await?;
    let ids: Vec<String> = page.tasks.iter().map(|t| t.id.to_string()).collect();
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < window {
        for id in &ids {
            let sent = Instant::now();
            probe.get_task(id).await?;
            samples.push(sent.elapsed());
        }
    }
    samples.sort_unstable();
    Ok(Results {
        creates_1,
        creates_n,
        get_p50_us: micros(percentile(&samples, 0.50)),
        get_p99_us: micros(percentile(&samples, 0.99)),
    })
}

/// `clients` connections each create tasks one after another for `window`; returns the total
/// acknowledged (durable) creates per second.
pub async fn creates_per_second(
    daemon: &DaemonProc,
    clients: usize,
    window: Duration,
) -> Result<f64, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for worker in 0..clients {
        let mut client = daemon.connect().await?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let new = NewTask {
                    title: format!("bench task {worker}-{done}"),
                    description: None,
                    id: None,
                    ..Default::default()
                };
                client.create_task(new).await?;
                done += 1;
            }
            Ok::<u64, tasksync_proto::ClientError>(done)
        }));
    }
    total_rate(&stop, handles, window).await
}

/// Lets running workers go on for `window`, raises `stop`, and returns how many operations
/// they completed per second in total.
pub async fn total_rate<E: Into<Error>>(
    stop: &AtomicBool,
    workers: Vec<tokio::task::JoinHandle<Result<u64, E>>>,
    window: Duration,
) -> Result<f64, Error> {
    let start = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        total += worker.await?.map_err(Into::into)?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
