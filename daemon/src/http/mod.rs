//! The HTTP API of DESIGN.md section 7: the original challenge's REST routes, served from the
//! same store and sync engine as the IPC socket, for apps that cannot speak postcard.
//!
//! - [`listen`]: what the daemon does at startup: load or make the token, bind the port.
//! - [`token`]: the bearer token's file (made once, 0600, reused).
//! - [`auth`]: the constant-time `Authorization: Bearer` check.
//! - [`server`]: the accept loop, per-request dispatch and graceful shutdown.
//! - [`routes`]: which path is which route and what methods it takes (pure).
//! - [`body`]: reading a request body (1 MiB cap) and parsing JSON.
//! - [`tasks`]: the five task routes; [`status`]: sync, status and health.
//! - [`error`]: the one error type and the `{error, timestamp, path}` body.
//!
//! Order of checks for every request: route (404), method (405), token (401, except
//! `GET /api/health`), then the handler (400/404/413/503). Validation of task input is not
//! here: it happens in `tasksync_proto::task`, called by the store, as for IPC commands.

pub mod auth;
pub mod body;
pub mod error;
pub mod events;
pub mod listen;
pub mod query;
pub mod routes;
pub mod server;
pub mod status;
pub mod tasks;
pub mod token;

pub use listen::HttpApi;
