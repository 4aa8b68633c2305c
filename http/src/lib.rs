//! tasksync-http: the HTTP plumbing the daemon's API (`tasksyncd`, docs/LOCAL-API.md) and
//! the sync server (`tasksync-server`, section 4) share, so that a fix lands once.
//!
//! - [`error`]: [`ApiError`], the `{error, [code,] timestamp, path}` answer of every refusal.
//! - [`response`]: the answer body type (whole or streamed) and JSON answers.
//! - [`bearer`]: reading `Authorization: Bearer <token>` and comparing token digests in
//!   constant time.
//! - [`body`]: reading a request body under a size cap and a time limit.
//! - [`json`]: parsing a body as one JSON object, with messages that name the field.
//! - [`serve`]: the TCP accept loop and the serving of one connection, with graceful shutdown.
//! - [`slots`]: connection caps that evict the idlest (head-less first) instead of refusing.
//! - [`fds`]: raising the open-file limit, and a connection cap that fits it.
//!
//! Routing, handlers and who a token names stay with each program.

pub mod bearer;
pub mod body;
pub mod error;
pub mod fds;
pub mod json;
pub mod response;
pub mod serve;
pub mod slots;

pub use error::{ApiError, ErrorFields};
pub use response::{empty_response, json_response, text_response, Body, HttpResponse};
