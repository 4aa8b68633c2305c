//! The physical limits every result is compared with: how fast this disk makes a write
//! durable, and how fast a local socket carries a round trip.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Appends 4 KiB and calls fdatasync, as a WAL commit does, for `window`; returns syncs/s.
pub fn fdatasync_rate(dir: &Path, window: Duration) -> std::io::Result<f64> {
    let path = dir.join("fdatasync.probe");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let page = [0x5au8; 4096];
    let start = Instant::now();
    let mut syncs = 0u64;
    while start.elapsed() < window {
        file.write_all(&page)?;
        file.sync_data()?;
        syncs += 1;
    }
    let rate = syncs as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(rate)
}

pub struct PingPong {
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Bounces 64 bytes between two threads over a Unix socket pair for `window`.
pub fn unix_ping_pong(window: Duration) -> std::io::Result<PingPong> {
    let (mut near, mut far) = UnixStream::pair()?;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while far.read_exact(&mut buf).is_ok() {
            if far.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut buf = [7u8; 64];
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < window {
        let sent = Instant::now();
        near.write_all(&buf)?;
        near.read_exact(&mut buf)?;
        samples.push(sent.elapsed());
    }
    let rate = samples.len() as f64 / start.elapsed().as_secs_f64();
    drop(near);
    let _ = echo.join();
    samples.sort_unstable();
    Ok(PingPong {
        rate,
        p50_us: micros(percentile(&samples, 0.50)),
        p99_us: micros(percentile(&samples, 0.99)),
    })
}

pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
