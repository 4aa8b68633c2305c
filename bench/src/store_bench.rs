//! Drives a real tasksyncd over its socket: durable creates with 1 and N clients, and the
//! GetTask round trip.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tasksync_proto::{Client, NewTask};

use crate::limits::{micros, percentile};

pub struct Results {
    pub creates_1: f64,
    pub creates_n: f64,
    pub get_p50_us: f64,
    pub get_p99_us: f64,
}

struct RunningDaemon(Child);

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(
    daemon: &Path,
    dir: &Path,
    window: Duration,
    clients: usize,
) -> Result<Results, Box<dyn std::error::Error>> {
    let socket = dir.join("run/tasksyncd.sock");
    let child = Command::new(daemon)
        .arg("--db")
        .arg(dir.join("tasks.db"))
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it with cargo build --release)",
                daemon.display()
            )
        })?;
    let _daemon = RunningDaemon(child);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut probe = loop {
            match Client::connect(&socket, "bench").await {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("daemon not ready: {e}").into())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let creates_1 = creates_per_second(&socket, 1, window).await?;
        let creates_n = creates_per_second(&socket, clients, window).await?;

        let ids: Vec<String> = probe
            .list_tasks(false, None)
            .await?
            .iter()
            .take(1000)
            .map(|t| t.id.to_string())
            .collect();
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
    })
}

/// `clients` connections each create tasks one after another for `window`; returns the total
/// acknowledged (durable) creates per second.
async fn creates_per_second(
    socket: &Path,
    clients: usize,
    window: Duration,
) -> Result<f64, Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for worker in 0..clients {
        let mut client = Client::connect(socket, "bench").await?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let new = NewTask {
                    title: format!("bench task {worker}-{done}"),
                    description: None,
                };
                client.create_task(new).await?;
                done += 1;
            }
            Ok::<u64, tasksync_proto::ClientError>(done)
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for handle in handles {
        total += handle.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
