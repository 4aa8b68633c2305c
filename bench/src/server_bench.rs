//! The sync server under load (issues 9 and 12): push throughput of 64 devices on SQLite, on
//! PostgreSQL with one and with two processes, against the raw PostgreSQL insert rate measured
//! in the same run; and live-pull wake-up across processes. (1,000 waiting live pulls are
//! measured in `live_bench`.)

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tasksync_proto::wire::{content_digest, BatchItem, BatchRequest, Field, Operation, WireTask};
use tasksync_proto::Timestamp;
use uuid::Uuid;

use tasksync_e2e::pg::TestDatabase;

use crate::limits::percentile;
use crate::procs::{Binaries, Error, ServerProc};

/// Devices pushing at once.
pub const DEVICES: usize = 64;
/// Devices per user (so 16 users): a user's batches apply one at a time by design.
pub const DEVICES_PER_USER: usize = 4;
/// Items per batch.
pub const BATCH: usize = 50;

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn open(addr: &str) -> Result<Conn, Error> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends a request and reads the whole answer: (status, body).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), Error> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(builder.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A batch of `BATCH` creates of fresh tasks.
fn batch_body(device: Uuid) -> Result<Vec<u8>, Error> {
    let now = Timestamp::now();
    let items = (0..BATCH)
        .map(|_| {
            let id = Uuid::now_v7();
            BatchItem {
                id: Uuid::now_v7(),
                task_id: id,
                operation: Operation::Create,
                changed_fields: Some(Field::ALL.to_vec()),
                data: WireTask {
                    id,
                    title: "bench task".into(),
                    description: None,
                    completed: false,
                    created_at: now,
                    updated_at: now,
                    is_deleted: false,
                    device_id: device,
                    due: None,
                    priority: None,
                    project: None,
                    tags: Default::default(),
                    attributes: Default::default(),
                },
                created_at: now,
                retry_count: 0,
                base: Default::default(),
            }
        })
        .collect();
    Ok(serde_json::to_vec(&BatchRequest {
        device_id: device,
        client_timestamp: now,
        items,
    })?)
}

/// Pushes one batch and checks every item was applied.
async fn push(conn: &mut Conn, token: Option<&str>, body: Vec<u8>) -> Result<(), Error> {
    let digest = content_digest(&body);
    let (status, answer) = conn
        .send(
            "POST",
            "/api/batch",
            token,
            &[
                ("content-digest", &digest),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await?;
    if status != 200 {
        return Err(format!(
            "push answered {status}: {}",
            String::from_utf8_lossy(&answer)
        )
        .into());
    }
    Ok(())
}

/// Creates `count` users through the CLI on `storage`; returns their tokens.
pub fn add_users(bins: &Binaries, storage: &[&str], count: usize) -> Result<Vec<String>, Error> {
    (0..count)
        .map(|n| {
            let output = std::process::Command::new(&bins.server)
                .args(["user", "add", &format!("bench{n}")])
                .args(storage)
                .env("RUST_LOG", "warn")
                .output()?;
            if !output.status.success() {
                return Err(format!(
                    "user add failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
                .into());
            }
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        })
        .collect()
}

/// Operations per second that `DEVICES` devices pushing batches of `BATCH` get through the
/// servers at `addrs` (device i uses server i mod n) during `window`.
pub async fn push_rate(
    addrs: &[String],
    tokens: &[String],
    window: Duration,
) -> Result<f64, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for device in 0..DEVICES {
        let addr = addrs[device % addrs.len()].clone();
        let token = tokens[device / DEVICES_PER_USER % tokens.len()].clone();
        let (stop, done) = (stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            let id = Uuid::now_v7();
            while !stop.load(Ordering::Relaxed) {
                push(&mut conn, Some(&token), batch_body(id)?).await?;
                if !stop.load(Ordering::Relaxed) {
                    done.fetch_add(BATCH as u64, Ordering::Relaxed);
                }
            }
            Ok::<(), Error>(())
        }));
    }
    finish(window, &stop, &done, workers).await
}

/// Rows per second PostgreSQL takes when `DEVICES` connections insert the same task rows
/// as a push, `BATCH` per transaction (one multi-row INSERT), with no server in between.
pub async fn raw_pg_rate(url: &str, window: Duration) -> Result<f64, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..DEVICES {
        let (stop, done) = (stop.clone(), done.clone());
        let url = url.to_string();
        workers.push(tokio::spawn(async move {
            let (mut client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            let user = 1_000_000 + worker as i64;
            let insert = client
                .prepare(
                    "INSERT INTO tasks (user_id, id, title, description, completed, is_deleted, \
                     created_at, updated_at, device_id, title_at, title_rank, title_device, \
                     description_at, description_rank, description_device, completed_clock_at, \
                     completed_clock_rank, completed_clock_device, is_deleted_at, \
                     is_deleted_rank, is_deleted_device, seq) \
                     SELECT $1, id, 'bench task', NULL, false, false, $2, $2, $3, $2, 0::smallint, \
                     $3, $2, 0::smallint, $3, $2, 0::smallint, $3, $2, 0::smallint, $3, seq \
                     FROM UNNEST($4::uuid[], $5::bigint[]) AS r(id, seq)",
                )
                .await?;
            let device = Uuid::now_v7();
            let mut seq = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<Uuid> = (0..BATCH).map(|_| Uuid::now_v7()).collect();
                let seqs: Vec<i64> = (0..BATCH as i64).map(|n| seq + 1 + n).collect();
                seq += BATCH as i64;
                let now = Timestamp::now().as_millis();
                let tx = client.transaction().await?;
                tx.execute(&insert, &[&user, &now, &device, &ids, &seqs])
                    .await?;
                tx.commit().await?;
                if !stop.load(Ordering::Relaxed) {
                    done.fetch_add(BATCH as u64, Ordering::Relaxed);
                }
            }
            Ok::<(), Error>(())
        }));
    }
    finish(window, &stop, &done, workers).await
}

/// Lets `workers` run for `window`, stops them, and returns the rate of `done` per second.
async fn finish(
    window: Duration,
    stop: &AtomicBool,
    done: &AtomicU64,
    workers: Vec<tokio::task::JoinHandle<Result<(), Error>>>,
) -> Result<f64, Error> {
    let start = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let count = done.load(Ordering::Relaxed);
    for worker in workers {
        worker.await??;
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Live-pull wake-up across processes: a pull waits on `waiter`, one item is pushed through
/// `pusher`; the time from sending the push to the pull's answer, `rounds` times. (p50, p95)
pub async fn wakeup_latency(
    pusher: &str,
    waiter: &str,
    token: &str,
    rounds: usize,
) -> Result<(Duration, Duration), Error> {
    let mut push_conn = Conn::open(pusher).await?;
    let mut pull_conn = Conn::open(waiter).await?;
    let device = Uuid::now_v7();
    // Start from the end of the user's changes.
    let mut cursor = String::new();
    loop {
        let (_, page) = pull_conn
            .send(
                "GET",
                &format!("/api/changes?since={cursor}&limit=5000"),
                Some(token),
                &[],
                Vec::new(),
            )
            .await?;
        let page: serde_json::Value = serde_json::from_slice(&page)?;
        cursor = page["cursor"].as_str().unwrap_or("").to_string();
        if page["has_more"] != true {
            break;
        }
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let path = format!("/api/changes?since={cursor}&wait=30");
        let token_owned = token.to_string();
        let mut conn = pull_conn;
        let pull = tokio::spawn(async move {
            let answer = conn
                .send("GET", &path, Some(&token_owned), &[], Vec::new())
                .await;
            (conn, answer, Instant::now())
        });
        // Let the pull reach the server and park (a pull that arrives late answers at once).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let body = one_item_body(device)?;
        let sent = Instant::now();
        push(&mut push_conn, Some(token), body).await?;
        let (conn, answer, answered) = pull.await?;
        let (status, body) = answer?;
        if status != 200 {
            return Err(format!("live pull answered {status}").into());
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        if page["changes"].as_array().is_none_or(|c| c.is_empty()) {
            return Err("a live pull answered without the change".into());
        }
        cursor = page["cursor"].as_str().unwrap_or("").to_string();
        samples.push(answered.saturating_duration_since(sent));
        pull_conn = conn;
    }
    samples.sort_unstable();
    Ok((percentile(&samples, 0.50), percentile(&samples, 0.95)))
}

fn one_item_body(device: Uuid) -> Result<Vec<u8>, Error> {
    let mut request: BatchRequest = serde_json::from_slice(&batch_body(device)?)?;
    request.items.truncate(1);
    Ok(serde_json::to_vec(&request)?)
}

/// Everything of this part, in one run.
pub struct Results {
    pub sqlite_1: f64,
    pub pg_1: Option<f64>,
    pub pg_2: Option<f64>,
    pub pg_raw: Option<f64>,
    pub wakeup: Option<(Duration, Duration)>,
}

/// Runs the server benchmarks; the PostgreSQL ones use a fresh database per measurement on
/// the server of `TASKSYNC_TEST_DATABASE_URL` (see `tasksync_e2e::pg`), or are skipped when
/// none answers.
pub async fn run(bins: &Binaries, dir: &Path, window: Duration) -> Result<Results, Error> {
    let users = DEVICES / DEVICES_PER_USER;
    // SQLite, one process.
    let sqlite_db = dir.join("server-bench-sqlite.db");
    let sqlite_db = sqlite_db.to_string_lossy().into_owned();
    let sqlite_args = ["--db", sqlite_db.as_str()];
    let tokens = add_users(bins, &sqlite_args, users)?;
    let sqlite = ServerProc::start_with(
        bins,
        dir,
        "server-bench-sqlite",
        "127.0.0.1:0",
        &sqlite_args,
    )?;
    let sqlite_1 = push_rate(std::slice::from_ref(&sqlite.addr), &tokens, window).await?;
    drop(sqlite);

    let mut results = Results {
        sqlite_1,
        pg_1: None,
        pg_2: None,
        pg_raw: None,
        wakeup: None,
    };
    for processes in [1usize, 2] {
        let Some(db) = TestDatabase::create() else {
            return Ok(results);
        };
        let pg_args = ["--database-url", db.url.as_str()];
        let tokens = add_users(bins, &pg_args, users)?;
        let servers = (0..processes)
            .map(|n| {
                ServerProc::start_with(
                    bins,
                    dir,
                    &format!("server-bench-pg{n}"),
                    "127.0.0.1:0",
                    &pg_args,
                )
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
        let rate = push_rate(&addrs, &tokens, window).await?;
        if processes == 1 {
            results.pg_1 = Some(rate);
        } else {
            results.pg_2 = Some(rate);
            results.wakeup = Some(wakeup_latency(&addrs[0], &addrs[1], &tokens[0], 200).await?);
        }
    }
    // The raw rate: the same rows straight into the same schema, in the same run.
    if let Some(db) = TestDatabase::create() {
        // Let the server create its schema, then stop it.
        let args = ["--database-url", db.url.as_str()];
        drop(ServerProc::start_with(
            bins,
            dir,
            "server-bench-raw",
            "127.0.0.1:0",
            &args,
        )?);
        results.pg_raw = Some(raw_pg_rate(&db.url, window).await?);
    }
    Ok(results)
}
