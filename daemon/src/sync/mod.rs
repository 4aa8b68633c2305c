//! The sync engine: flushes the queue to the sync server in batches and pulls other devices'
//! changes (DESIGN.md sections 4 and 5).
//!
//! - [`engine`]: the task that runs sync rounds, one at a time, when asked.
//! - [`client`]: the HTTP client, which sorts failures into offline / failed attempt / bad answer.
//! - [`backoff`]: how long a failed operation waits before its next automatic attempt.
//!
//! Which rows go next is decided by `Store::next_batch` (ordering per task, retry delays,
//! dead letters); what an answer does to the database by `store::sync_writes`.

pub mod backoff;
pub mod client;
pub mod engine;

pub use engine::{Connectivity, SyncHandle, SyncSettings};
