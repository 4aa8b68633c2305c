//! The local socket front end (ARCHITECTURE.md, "Local IPC").
//!
//! - [`endpoint`]: claiming and binding the endpoint on any platform, and who may connect.
//! - `socket` (Unix): the socket's folder, permissions and peer check.
//! - `pipe` (Windows): the named pipe and its security descriptor.
//! - [`server`]: the accept loop, one task per connection.
//! - [`sniff`]: which dialect a connection speaks (HTTP or postcard), by its first byte.
//! - [`connection`]: one connection's peer check, then its dialect: HTTP goes to
//!   `crate::http`, postcard gets the handshake and framing here.
//! - [`dispatch`]: what each command does.
//!
//! Both platforms hand `server` the same `interprocess` listener and streams, so everything
//! from the accept loop on is the same code for a Unix socket and a named pipe.

pub(crate) mod connection;
pub(crate) mod dispatch;
pub(crate) mod endpoint;
#[cfg(windows)]
pub(crate) mod pipe;
pub(crate) mod server;
pub(crate) mod sniff;
#[cfg(unix)]
pub(crate) mod socket;
