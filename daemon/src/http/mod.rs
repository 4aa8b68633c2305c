//! The HTTP API of docs/LOCAL-API.md: the original challenge's REST routes, served from the
//! same store and sync engine as the IPC socket, for apps that cannot speak postcard.
//!
//! - [`listen`]: what the daemon does at startup: load or make the token, bind the port.
//! - [`token`]: the bearer token's file (made once, 0600, reused).
//! - [`server`]: the TCP listener, per-request dispatch (token check included) and graceful
//!   shutdown.
//! - [`routes`]: which path is which route and what methods it takes (pure).
//! - [`query`]: query strings.
//! - [`tasks`]: the five task routes; [`status`]: sync, status and health; [`events`]: the
//!   event stream.
//! - [`error`]: which answer each store error gets.
//!
//! The error type and its `{error, code, timestamp, path}` body, the constant-time bearer
//! check, body reading (1 MiB cap here) and JSON parsing, and the accept loop are shared with
//! the sync server, in the `tasksync-http` crate.
//!
//! Order of checks for every request: route (404), method (405), token (401, except
//! `GET /api/health`), then the handler (400/404/413/503). Validation of task input is not
//! here: it happens in `tasksync_proto::task`, called by the store, as for IPC commands.

pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod listen;
pub(crate) mod query;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod status;
pub(crate) mod tasks;
pub(crate) mod token;

pub(crate) use listen::HttpApi;
