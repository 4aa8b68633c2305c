//! The writer thread: the only code that changes the database.
//!
//! Each request is a [`WriteRequest`] with its own output type: users' commands
//! ([`commands`](super::commands)) and the sync engine's updates
//! ([`sync_writes`](super::sync_writes)). The thread takes the first request waiting, then
//! every other one already waiting, and runs them all in one `BEGIN IMMEDIATE` transaction:
//! one fsync serves everyone who was waiting (group commit). Answers are sent only after the
//! commit returns, so an acknowledged change is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::clock::HybridClock;
use super::sync_writes::set_meta;
use super::StoreError;

/// Most requests committed together; bounds the latency one group adds.
const MAX_GROUP: usize = 1024;

/// What executing a request gives: the outer error is a storage failure that aborts the whole
/// group; the inner one is this request's own refusal (not found, conflict), which the others
/// of the group do not share.
pub(crate) type Executed<T> = rusqlite::Result<Result<T, StoreError>>;

/// A change the writer makes, and what it answers.
pub(crate) trait WriteRequest: Send + 'static {
    type Output: Send + 'static;

    /// Whether the answer may only go out once the change is on disk (see [`Durability`]).
    fn must_be_durable(&self) -> bool {
        true
    }

    /// Makes the change inside the group's transaction.
    fn execute(&self, tx: &Transaction<'_>, clock: &mut HybridClock) -> Executed<Self::Output>;
}

/// Where the answer to a request goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request with its reply, as the writer holds it: the channel carries requests of every
/// type, each still answering with its own.
trait Job: Send {
    fn must_be_durable(&self) -> bool;
    /// Executes the request, keeping its outcome until the group's commit is known.
    fn execute(&mut self, tx: &Transaction<'_>, clock: &mut HybridClock) -> rusqlite::Result<()>;
    /// Sends the kept outcome, or `failure` when the group did not commit.
    fn answer(self: Box<Self>, failure: Option<&str>);
}

struct Queued<R: WriteRequest> {
    request: R,
    reply: Reply<R::Output>,
    outcome: Option<Result<R::Output, StoreError>>,
}

impl<R: WriteRequest> Job for Queued<R> {
    fn must_be_durable(&self) -> bool {
        self.request.must_be_durable()
    }

    fn execute(&mut self, tx: &Transaction<'_>, clock: &mut HybridClock) -> rusqlite::Result<()> {
        self.outcome = Some(self.request.execute(tx, clock)?);
        Ok(())
    }

    fn answer(self: Box<Self>, failure: Option<&str>) {
        let outcome = match (failure, self.outcome) {
            (None, Some(outcome)) => outcome,
            (Some(error), _) => Err(StoreError::Storage(error.to_string())),
            (None, None) => Err(StoreError::Storage("the request was not executed".into())),
        };
        // Someone who went away no longer wants the answer; the change stands.
        let _ = self.reply.send(outcome);
    }
}

enum Message {
    Job(Box<dyn Job>),
    /// Finish what is queued before this, then stop.
    Shutdown,
}

/// The handle the store sends requests through.
pub(crate) struct Writer {
    how: How,
    /// Transactions committed (read by the group-commit test).
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

/// Where requests are executed.
enum How {
    /// On the writer thread, in groups.
    Thread {
        tx: mpsc::Sender<Message>,
        thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    },
    /// On the caller's thread, each in its own transaction, before `submit` returns: the
    /// simulation runs a whole world on one thread, so that it replays bit for bit.
    #[cfg(test)]
    Inline(std::sync::Mutex<Option<(Connection, HybridClock)>>),
}

impl Writer {
    /// Starts the writer thread on an already migrated connection.
    pub(crate) fn spawn(conn: Connection, clock: HybridClock) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, clock, rx, &counter))?;
        Ok(Writer {
            how: How::Thread {
                tx,
                thread: std::sync::Mutex::new(Some(thread)),
            },
            commits,
        })
    }

    /// A writer without a thread: each request commits on the caller's thread (see
    /// [`How::Inline`]). Commits are not fsynced: a simulated crash is a process crash.
    #[cfg(test)]
    pub(crate) fn inline(conn: Connection, clock: HybridClock) -> rusqlite::Result<Writer> {
        conn.pragma_update(None, "synchronous", "OFF")?;
        Ok(Writer {
            how: How::Inline(std::sync::Mutex::new(Some((conn, clock)))),
            commits: Arc::default(),
        })
    }

    /// Queues `request`; resolves to its answer once the group holding it committed.
    pub(crate) async fn submit<R: WriteRequest>(
        &self,
        request: R,
    ) -> Result<R::Output, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Queued {
            request,
            reply,
            outcome: None,
        });
        match &self.how {
            How::Thread { tx, .. } => tx.send(Message::Job(job)).map_err(|_| StoreError::Closed)?,
            #[cfg(test)]
            How::Inline(state) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let Some((conn, clock)) = state.as_mut() else {
                    return Err(StoreError::Closed);
                };
                let mut group: [Box<dyn Job>; 1] = [job];
                let failure = commit_group(conn, clock, &mut group)
                    .map(|()| self.commits.fetch_add(1, Ordering::Relaxed))
                    .err()
                    .map(|e| e.to_string());
                let [job] = group;
                job.answer(failure.as_deref());
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether requests commit on the caller's thread.
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.how, How::Inline(_))
    }

    /// How many transactions the writer has committed: fewer than the requests it answered
    /// when groups shared commits.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Finishes every request already queued, checkpoints the WAL and stops the thread.
    pub(crate) fn shut_down(&self) {
        match &self.how {
            How::Thread { tx, thread } => {
                let _ = tx.send(Message::Shutdown);
                let thread = thread.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(thread) = thread {
                    if thread.join().is_err() {
                        tracing::error!("the store writer thread panicked");
                    }
                }
            }
            #[cfg(test)]
            How::Inline(state) => drop(state.lock().unwrap_or_else(|p| p.into_inner()).take()),
        }
    }
}

fn run(
    mut conn: Connection,
    mut clock: HybridClock,
    rx: mpsc::Receiver<Message>,
    commits: &AtomicU64,
) {
    let mut group: Vec<Box<dyn Job>> = Vec::new();
    let mut durability = Durability::Full;
    // Whether to poll before sleeping: only while requests come one at a time. With many
    // clients the writer has work waiting anyway, and polling would take CPU from them.
    let mut poll = false;
    let mut last_group = 0;
    while let Ok(first) = next_message(&rx, poll) {
        let stop = gather(&rx, first, &mut group, last_group);
        last_group = group.len();
        poll = group.len() == 1;
        if !group.is_empty() {
            let wanted = if group.iter().any(|job| job.must_be_durable()) {
                Durability::Full
            } else {
                Durability::Deferred
            };
            if wanted != durability {
                match conn.pragma_update(None, "synchronous", wanted.pragma()) {
                    Ok(()) => durability = wanted,
                    Err(e) => {
                        tracing::warn!("cannot switch synchronous to {}: {e}", wanted.pragma())
                    }
                }
            }
            let failure = match commit_group(&mut conn, &mut clock, &mut group) {
                Ok(()) => {
                    commits.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    tracing::error!(
                        "commit of {} request(s) failed, nothing was written: {e}",
                        group.len()
                    );
                    Some(e.to_string())
                }
            };
            for job in group.drain(..) {
                job.answer(failure.as_deref());
            }
        }
        if stop {
            break;
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!("final WAL checkpoint failed: {e}");
    }
}

/// Executes a group in one transaction. A request that is refused (not found) keeps its error
/// and the others still commit; a storage failure fails the whole group.
fn commit_group(
    conn: &mut Connection,
    clock: &mut HybridClock,
    group: &mut [Box<dyn Job>],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in group.iter_mut() {
        job.execute(&tx, clock)?;
    }
    set_meta(&tx, "clock", &clock.watermark().to_string())?;
    tx.commit()
}

/// How long the writer waits for the requesters it just answered to send their next request,
/// so that they join the next group rather than wait out a commit of their own (see
/// [`gather`]). Much less than one fsync.
const GATHER_WAIT: Duration = Duration::from_micros(250);

/// Collects a group into `group`, starting with `first`: every request already waiting, then,
/// while the group is smaller than the previous one (`expected`: requesters that were just
/// answered usually send again at once), those arriving within [`GATHER_WAIT`]. Without that
/// wait, requesters split into two cohorts that alternate, each paying a commit. Returns true
/// when asked to shut down.
fn gather(
    rx: &mpsc::Receiver<Message>,
    first: Message,
    group: &mut Vec<Box<dyn Job>>,
    expected: usize,
) -> bool {
    let deadline = Instant::now() + GATHER_WAIT;
    let mut next = Some(first);
    loop {
        let message = match next.take().map(Ok).unwrap_or_else(|| rx.try_recv()) {
            Ok(message) => message,
            Err(mpsc::TryRecvError::Empty) if group.len() < expected => {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(message) => message,
                    Err(_) => return false,
                }
            }
            Err(_) => return false,
        };
        match message {
            Message::Job(job) => group.push(job),
            Message::Shutdown => return true,
        }
        if group.len() >= MAX_GROUP {
            return false;
        }
    }
}

/// How a commit reaches the disk. `Full` fsyncs the WAL before the commit returns; a
/// `Deferred` commit is written to the WAL and becomes durable with the next `Full` one (or a
/// checkpoint). A crash can lose a deferred commit but never corrupts the database, and the
/// WAL keeps commits in order, so a `Full` commit makes every earlier one durable too. If
/// switching fails, commits simply stay at the previous, stricter-or-equal setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Full,
    Deferred,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Deferred => "NORMAL",
        }
    }
}

/// How long the writer keeps polling for the next request after a commit before it sleeps.
/// Under load the next request is usually a few tens of microseconds away, and waking a
/// sleeping thread costs about that much again on a virtual machine; an idle daemon polls
/// once for this long after its last request and then sleeps for good.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(100);

/// The next message: polled for a moment (when `poll`), then waited for.
fn next_message(rx: &mpsc::Receiver<Message>, poll: bool) -> Result<Message, mpsc::RecvError> {
    let start = Instant::now();
    while poll && start.elapsed() < POLL_BEFORE_SLEEP {
        match rx.try_recv() {
            Ok(message) => return Ok(message),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv()
}
