//! The local API over the daemon's socket: `GET /api/tasks/:id` in HTTP beside the postcard
//! `GetTask`, a local change until an event-stream client sees it, and durable creates from
//! many HTTP clients beside as many postcard clients.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tasksync_proto::NewTask;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::limits::{micros, percentile};
use crate::procs::{Binaries, DaemonProc, Error};
use crate::store_bench::{creates_per_second, total_rate};

pub struct Results {
    pub http_get_p50_us: f64,
    pub http_get_p99_us: f64,
    pub postcard_get_p50_us: f64,
    pub postcard_get_p99_us: f64,
    pub event_p50_us: f64,
    pub event_p99_us: f64,
    pub http_creates: f64,
    pub postcard_creates: f64,
}

/// One keep-alive HTTP/1.1 connection over the socket.
struct HttpConn {
    stream: BufReader<UnixStream>,
}

impl HttpConn {
    async fn open(socket: &Path) -> Result<HttpConn, Error> {
        Ok(HttpConn {
            stream: BufReader::new(UnixStream::connect(socket).await?),
        })
    }

    /// Sends one request and reads the answer; returns the status and body.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, Vec<u8>), Error> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut status = 0;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err("the daemon closed the connection".into());
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if status == 0 {
                status = trimmed
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some((name, value)) = trimmed.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

pub async fn run(
    bins: &Binaries,
    dir: &Path,
    window: Duration,
    clients: usize,
) -> Result<Results, Error> {
    let daemon = DaemonProc::start(bins, dir, "local-api", &[]).await?;
    let mut client = daemon.connect().await?;
    let mut ids = Vec::new();
    for n in 0..1000 {
        let new = NewTask {
            title: format!("bench task {n}"),
            description: Some("a task to read back".into()),
            id: None,
            ..Default::default()
        };
        ids.push(client.create_task(new).await?.id.to_string());
    }

    // Reads, alternating postcard and HTTP windows so that both see the same machine state.
    let mut http = HttpConn::open(&daemon.socket).await?;
    let (mut http_samples, mut postcard_samples) = (Vec::new(), Vec::new());
    let slice = window / 4;
    for _ in 0..4 {
        let start = Instant::now();
        while start.elapsed() < slice {
            for id in ids.iter().take(100) {
                let sent = Instant::now();
                client.get_task(id).await?;
                postcard_samples.push(sent.elapsed());
            }
        }
        let start = Instant::now();
        while start.elapsed() < slice {
            for id in ids.iter().take(100) {
                let sent = Instant::now();
                let (status, _) = http.call("GET", &format!("/api/tasks/{id}"), "").await?;
                http_samples.push(sent.elapsed());
                if status != 200 {
                    return Err(format!("GET /api/tasks/{id} answered {status}").into());
                }
            }
        }
    }
    http_samples.sort_unstable();
    postcard_samples.sort_unstable();

    let mut event_samples = event_latency(&daemon, &mut client, 300).await?;
    event_samples.sort_unstable();

    // Creates, alternating too: the shared machine's load drifts from second to second.
    let (mut postcard_creates, mut http_creates) = (0.0, 0.0);
    for _ in 0..3 {
        postcard_creates += creates_per_second(&daemon, clients, window / 3).await? / 3.0;
        http_creates += http_creates_per_second(&daemon, clients, window / 3).await? / 3.0;
    }
    Ok(Results {
        http_get_p50_us: micros(percentile(&http_samples, 0.50)),
        http_get_p99_us: micros(percentile(&http_samples, 0.99)),
        postcard_get_p50_us: micros(percentile(&postcard_samples, 0.50)),
        postcard_get_p99_us: micros(percentile(&postcard_samples, 0.99)),
        event_p50_us: micros(percentile(&event_samples, 0.50)),
        event_p99_us: micros(percentile(&event_samples, 0.99)),
        http_creates,
        postcard_creates,
    })
}

/// From sending a create (postcard) to an event-stream client reading its `task` event.
async fn event_latency(
    daemon: &DaemonProc,
    client: &mut tasksync_proto::Client,
    changes: usize,
) -> Result<Vec<Duration>, Error> {
    let mut stream = BufReader::new(UnixStream::connect(&daemon.socket).await?);
    stream
        .get_mut()
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut line = String::new();
    // Past the head and the opening status event.
    while !line.starts_with("event: status") {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err("the event stream ended".into());
        }
    }
    let mut samples = Vec::with_capacity(changes);
    for n in 0..changes {
        let new = NewTask {
            title: format!("event bench {n}"),
            description: None,
            id: Some(uuid_for(n)),
            ..Default::default()
        };
        let wanted = new.id.map(|id| id.to_string()).unwrap_or_default();
        let sent = Instant::now();
        client.create_task(new).await?;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Err("the event stream ended".into());
            }
            if line.starts_with("data: {\"task\"") && line.contains(&wanted) {
                break;
            }
        }
        samples.push(sent.elapsed());
    }
    Ok(samples)
}

/// A fixed, valid UUID per change (the bench needs no randomness).
fn uuid_for(n: usize) -> tasksync_proto::TaskId {
    tasksync_proto::TaskId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n as u128)
}

/// `clients` HTTP connections each `POST /api/tasks` one after another for `window`; the
/// total acknowledged (durable) creates per second.
async fn http_creates_per_second(
    daemon: &DaemonProc,
    clients: usize,
    window: Duration,
) -> Result<f64, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for worker in 0..clients {
        let mut conn = HttpConn::open(&daemon.socket).await?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("{{\"title\":\"http bench task {worker}-{done}\"}}");
                let (status, _) = conn
                    .call("POST", "/api/tasks", &body)
                    .await
                    .map_err(|e| e.to_string())?;
                if status != 201 {
                    return Err(format!("POST /api/tasks answered {status}"));
                }
                done += 1;
            }
            Ok::<u64, String>(done)
        }));
    }
    total_rate(&stop, handles, window).await
}
