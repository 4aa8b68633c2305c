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

/// The store's ceiling without a daemon: SQLite in WAL mode with `synchronous=FULL`, creates
/// (a task row and a queue row each, the daemon's tables and indexes) committed `per_commit`
/// at a time, no socket, no threads, for `window`; returns creates/s.
pub fn sqlite_commit_rate(
    dir: &Path,
    window: Duration,
    per_commit: usize,
) -> Result<f64, rusqlite::Error> {
    let path = dir.join(format!("limit-{per_commit}.db"));
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
        row.get::<_, String>(0)
    })?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         CREATE TABLE tasks (
             id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, description TEXT,
             completed INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
             updated_at TEXT NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0,
             sync_status TEXT NOT NULL DEFAULT 'pending', last_synced_at TEXT, number INTEGER
         ) WITHOUT ROWID;
         CREATE INDEX tasks_by_created_at ON tasks (created_at);
         CREATE UNIQUE INDEX tasks_by_number ON tasks (number) WHERE number IS NOT NULL;
         CREATE TABLE sync_queue (
             id INTEGER PRIMARY KEY, op_id TEXT NOT NULL UNIQUE,
             task_id TEXT NOT NULL REFERENCES tasks (id), operation TEXT NOT NULL,
             data TEXT NOT NULL, changed_fields TEXT NOT NULL, created_at TEXT NOT NULL,
             retry_count INTEGER NOT NULL DEFAULT 0, error_message TEXT,
             next_attempt_at TEXT, last_attempt_at TEXT, state TEXT NOT NULL DEFAULT 'pending'
         );
         CREATE INDEX sync_queue_by_task ON sync_queue (task_id, id);",
    )?;
    let start = Instant::now();
    let mut created = 0u64;
    while start.elapsed() < window {
        let tx = conn.transaction()?;
        for _ in 0..per_commit {
            created += 1;
            let id = uuid::Uuid::now_v7().to_string();
            let now = "2026-12-02T00:00:00.000Z";
            let data = format!(r#"{{"id":"{id}","title":"limit {created}","completed":false}}"#);
            tx.prepare_cached(
                "INSERT INTO tasks (id, title, created_at, updated_at, number) VALUES (?1, ?2, ?3, ?3, ?4)",
            )?
            .execute(rusqlite::params![id, format!("limit {created}"), now, created as i64])?;
            tx.prepare_cached(
                "INSERT INTO sync_queue (op_id, task_id, operation, data, changed_fields, created_at)
                 VALUES (?1, ?2, 'create', ?3, '[\"title\"]', ?4)",
            )?
            .execute(rusqlite::params![uuid::Uuid::now_v7().to_string(), id, data, now])?;
        }
        tx.commit()?;
    }
    let rate = created as f64 / start.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate)
}
