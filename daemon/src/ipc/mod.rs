//! The local socket front end (DESIGN.md section 6).
//!
//! - [`socket`]: the socket's folder, permissions and peer check.
//! - [`server`]: the accept loop, one task per connection.
//! - [`connection`]: one connection's handshake and framing.
//! - [`dispatch`]: what each command does.

pub mod connection;
pub mod dispatch;
pub mod server;
pub mod socket;
