//! The writer thread: the only code that changes the database.
//!
//! Changes arrive on a channel: users' commands ([`commands`]) and the sync engine's updates
//! ([`sync_writes`]). The thread takes the first one, then every other one already waiting,
//! and applies them all in one `BEGIN IMMEDIATE` transaction: one fsync serves everyone who
//! was waiting (group commit). Answers are sent only after the commit returns, so an
//! acknowledged change is durable.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tasksync_proto::Task;
use tokio::sync::oneshot;

use super::clock::HybridClock;
use super::commands::{self, WriteOp};
use super::sync_writes::{self, set_meta, SyncApplied, SyncWrite};
use super::{InFlight, StoreError};

/// Most changes committed together; bounds the latency one group adds.
const MAX_GROUP: usize = 1024;

/// A change to the database.
#[derive(Debug)]
pub enum Change {
    /// A user's command.
    Command(WriteOp),
    /// An update from the sync engine.
    Sync(SyncWrite),
    /// A listing showed the whole working set with these numbers: release the freed ones.
    ReleaseNumbers(Vec<u32>),
}

impl Change {
    fn must_be_durable(&self) -> bool {
        match self {
            Change::Command(_) => true,
            Change::Sync(write) => write.must_be_durable(),
            // Losing it in a crash only delays the reuse of a number.
            Change::ReleaseNumbers(_) => false,
        }
    }
}

/// What a change produced: the task a command made or changed, or what a sync update did.
#[derive(Debug)]
pub enum Applied {
    Task(Task),
    Sync(SyncApplied),
    /// How many freed numbers became reusable.
    Released(u64),
}

pub enum Message {
    Change {
        change: Change,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    /// Finish what is queued before this, then stop.
    Shutdown,
}

/// Starts the writer thread on an already migrated connection.
pub fn spawn(
    conn: Connection,
    clock: HybridClock,
    in_flight: InFlight,
) -> std::io::Result<(mpsc::Sender<Message>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, clock, in_flight, rx))?;
    Ok((tx, handle))
}

fn run(
    mut conn: Connection,
    mut clock: HybridClock,
    in_flight: InFlight,
    rx: mpsc::Receiver<Message>,
) {
    let mut group = Vec::new();
    let mut durability = Durability::Full;
    // Whether to poll before sleeping: only while changes come one at a time. With many
    // clients the writer has work waiting anyway, and polling would take CPU from them.
    let mut poll = false;
    while let Ok(first) = next_message(&rx, poll) {
        let mut stop = false;
        for message in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match message {
                Message::Change { change, reply } => group.push((change, reply)),
                Message::Shutdown => {
                    stop = true;
                    break;
                }
            }
            if group.len() >= MAX_GROUP {
                break;
            }
        }
        poll = group.len() == 1;
        if !group.is_empty() {
            let changes: Vec<&Change> = group.iter().map(|(change, _)| change).collect();
            let wanted = if changes.iter().any(|c| c.must_be_durable()) {
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
            let outcomes = commit_group(&mut conn, &mut clock, &in_flight, &changes);
            for ((_, reply), outcome) in group.drain(..).zip(outcomes) {
                // Someone who went away no longer wants the answer; the change stands.
                let _ = reply.send(outcome);
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

/// How long the writer keeps polling for the next change after a commit before it sleeps.
/// Under load the next change is usually a few tens of microseconds away, and waking a
/// sleeping thread costs about that much again on a virtual machine; an idle daemon polls
/// once for this long after its last change and then sleeps for good.
const POLL_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(100);

/// The next message: polled for a moment (when `poll`), then waited for.
fn next_message(rx: &mpsc::Receiver<Message>, poll: bool) -> Result<Message, mpsc::RecvError> {
    let start = std::time::Instant::now();
    while poll && start.elapsed() < POLL_BEFORE_SLEEP {
        match rx.try_recv() {
            Ok(message) => return Ok(message),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv()
}

/// Applies a group in one transaction. A change that is refused (not found) gets its error
/// and the others still commit; a storage failure fails every change of the group.
fn commit_group(
    conn: &mut Connection,
    clock: &mut HybridClock,
    in_flight: &InFlight,
    changes: &[&Change],
) -> Vec<Result<Applied, StoreError>> {
    let attempt = |conn: &mut Connection,
                   clock: &mut HybridClock|
     -> rusqlite::Result<Vec<Result<Applied, StoreError>>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            outcomes.push(match change {
                Change::Command(op) => commands::apply(&tx, clock, op)?.map(Applied::Task),
                Change::Sync(op) => {
                    sync_writes::apply(&tx, clock, in_flight, op)?.map(Applied::Sync)
                }
                Change::ReleaseNumbers(shown) => {
                    Ok(Applied::Released(commands::release_numbers(&tx, shown)?))
                }
            });
        }
        set_meta(&tx, "clock", &clock.watermark().to_string())?;
        tx.commit()?;
        Ok(outcomes)
    };
    match attempt(conn, clock) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(
                "commit of {} change(s) failed, nothing was written: {e}",
                changes.len()
            );
            changes
                .iter()
                .map(|_| Err(StoreError::Storage(e.to_string())))
                .collect()
        }
    }
}
