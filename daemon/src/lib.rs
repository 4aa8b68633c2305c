//! tasksyncd as a library: the parts the binary wires together. See ARCHITECTURE.md.

pub mod app;
pub mod config;
pub mod connectivity;
pub mod events;
pub mod http;
pub mod ipc;
pub mod service;
pub mod setup;
pub(crate) mod slots;
pub mod store;
pub mod sync;
