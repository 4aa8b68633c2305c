//! tasksync-proto: everything the daemon and its clients must agree on.
//!
//! - [`task`]: the `Task` model, its JSON names, and the one definition of a valid task.
//! - [`timestamp`]: millisecond RFC 3339 UTC timestamps (`updated_at` is the LWW clock).
//! - [`ipc`]: the messages exchanged over the local socket; [`events`] what a subscription
//!   streams.
//! - [`codec`]: length-prefixed postcard framing, capped at [`codec::MAX_FRAME_LEN`].
//! - [`client`]: the async client used by `taskctl` and desktop apps.
//! - [`paths`]: where the socket lives by default, so both sides agree without configuration.
//! - [`wire`]: the sync HTTP API's JSON types and the `Content-Digest` helpers.
//! - [`lww`]: the field-wise Last-Write-Wins rule, shared by the server and the daemon.
//!
//! Enums that travel as names (operations, fields, states) get their names, `Display` and
//! `FromStr` from one macro (`names`), and with the `sqlite` feature `ToSql`/`FromSql`.

pub mod client;
pub mod codec;
pub mod events;
pub mod ipc;
pub mod lww;
mod names;
pub mod paths;
#[cfg(feature = "sqlite")]
mod sql;
pub mod task;
pub mod timestamp;
pub mod wire;

pub use client::{Client, ClientError};
pub use ipc::{Command, ErrorCode, IpcError, Reply, StatusInfo};
pub use names::UnknownName;
pub use task::{NewTask, Priority, SyncStatus, Task, TaskId, TaskPatch, ValidationError};
pub use timestamp::Timestamp;
