//! The sync engine: flushes the queue to the sync server in batches and pulls other devices'
//! changes (docs/SYNC-PROTOCOL.md).
//!
//! - [`engine`]: the task that decides when to sync, runs one round at a time, and keeps the
//!   connectivity state (with `crate::connectivity`).
//! - [`schedule`]: when the engine acts next, as a pure state machine.
//! - [`round`]: one round: flush in batches, then pull.
//! - [`transport`]: the seam to the server (push, changes, health) and the checks every
//!   answer passes; [`client`] is its HTTP implementation, which sorts failures into offline /
//!   busy / refused token / failed attempt / bad answer.
//! - [`settings`]: what the engine needs to know.
//! - [`backoff`]: how long a failed operation waits before its next automatic attempt.
//! - [`pace`]: how often the engine may pull whatever the server does (cursor checks, the
//!   budget of live pulls that come back at once).
//!
//! Which rows go next is decided by `store::rows::select_next_batch` (ordering per task, retry delays,
//! dead letters); what an answer does to the database by `store::sync_writes`.

pub(crate) mod backoff;
pub(crate) mod client;
pub(crate) mod engine;
pub(crate) mod pace;
pub(crate) mod round;
pub(crate) mod schedule;
pub(crate) mod settings;
pub(crate) mod transport;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod simulation;

pub(crate) use engine::SyncHandle;
pub(crate) use settings::SyncSettings;
