//! The local socket front end (DESIGN.md section 6).
//!
//! - [`socket`]: the socket's folder, permissions and peer check.
//! - [`server`]: the accept loop, one task per connection.
//! - [`sniff`]: which dialect a connection speaks (HTTP or postcard), by its first byte.
//! - [`connection`]: one connection's peer check, then its dialect: HTTP goes to
//!   `crate::http`, postcard gets the handshake and framing here.
//! - [`dispatch`]: what each command does.

pub mod connection;
pub mod dispatch;
pub mod server;
pub(crate) mod sniff;
pub mod socket;
