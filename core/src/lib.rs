//! tasksync-core: the sync server's protocol, written once over a narrow storage transaction.
//!
//! Every implementation of the server (the SQLite and PostgreSQL backends of
//! `tasksync-server`, and the in-memory store the daemon's tests sync against) runs the same
//! code here; a backend only reads and writes what it is told, inside its own transaction:
//! - `validate`: the checks of one batch item (fields, clock skew), [`ClockLimit`].
//! - `plan`: what a batch does, as a pure function (op-id idempotency, field-wise LWW, the
//!   answer for each item, which tasks and answers to write).
//! - `answer`: a [`RecordedAnswer`] kept under its op id, and its two storage columns.
//! - `protocol`: [`apply_batch`] over a [`BatchTransaction`] (load the recorded answers and
//!   stored tasks, plan, write the plan with its change numbers, move the user's counter) and
//!   [`changes`] over a [`ChangeFeed`] (one page of the change feed, and its rules).
//! - `columns`: how storage keeps a task's fields beyond the first ones and their clocks.
//! - `memory`: a [`MemoryStore`], the same protocol over plain maps.
//!
//! Pure Rust without I/O or a runtime, so that the daemon (and its Windows build) can link it
//! without the server's database and HTTP dependencies.

mod answer;
pub mod columns;
mod memory;
mod plan;
mod protocol;
mod validate;

pub use answer::{CorruptAnswer, RecordedAnswer};
pub use memory::MemoryStore;
pub use protocol::{
    apply_batch, block_on, changes, BatchInput, BatchOutcome, BatchTransaction, Change, ChangeFeed,
    ChangedTask, ChangesPage, FeedConflict, Loaded, Writes,
};
pub use validate::ClockLimit;
