//! What a broken or hostile sync server costs a daemon: a server that answers every live pull
//! at once with the same page (the same task, the cursor it was asked from) for a window,
//! counting the pulls it gets and the daemon's CPU seconds.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::idle_bench::cpu_seconds;
use crate::procs::{Binaries, DaemonProc, Error};

pub struct Hostile {
    pub pulls_per_second: f64,
    /// Share of one core the daemon used.
    pub cpu_share: f64,
}

/// One task, always the same.
const TASK: &str = r#"{"id":"0193a4f2-0000-7000-8000-000000000001","title":"the same task","description":null,"completed":false,"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z","is_deleted":false,"device_id":"0193a4f2-0000-7000-8000-0000000000aa"}"#;

/// Runs a daemon against the repeating server for `window` (after a few seconds to settle).
pub async fn same_page(bins: &Binaries, dir: &Path, window: Duration) -> Result<Hostile, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let pulls = Arc::new(AtomicU64::new(0));
    let counted = pulls.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, counted.clone()));
        }
    });
    let daemon = DaemonProc::start(bins, dir, "hostile-daemon", &["--server", &url]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu_before, pulls_before) = (cpu_seconds(daemon.pid())?, pulls.load(Ordering::Relaxed));
    tokio::time::sleep(window).await;
    let (cpu_after, pulls_after) = (cpu_seconds(daemon.pid())?, pulls.load(Ordering::Relaxed));
    server.abort();
    let seconds = window.as_secs_f64();
    Ok(Hostile {
        pulls_per_second: (pulls_after - pulls_before) as f64 / seconds,
        cpu_share: (cpu_after - cpu_before) / seconds,
    })
}

/// Answers every request on one keep-alive connection at once.
async fn serve(mut stream: TcpStream, pulls: Arc<AtomicU64>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..end + 4 + length);
        let target = head.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = if target.starts_with("/api/health") {
            (
                "200 OK",
                r#"{"status":"ok","timestamp":"2026-01-01T00:00:00.000Z"}"#.to_string(),
            )
        } else if target.starts_with("/api/changes") {
            pulls.fetch_add(1, Ordering::Relaxed);
            let since = target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("since="))
                .filter(|s| !s.is_empty())
                .unwrap_or("5");
            let page = format!(r#"{{"changes":[{TASK}],"cursor":"{since}","has_more":false}}"#);
            ("200 OK", page)
        } else {
            (
                "503 Service Unavailable",
                r#"{"error":"not here","timestamp":"2026-01-01T00:00:00.000Z","path":"/"}"#.into(),
            )
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
