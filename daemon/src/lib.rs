//! tasksyncd as a library: the parts the binary wires together. See ARCHITECTURE.md.

pub(crate) mod app;
pub(crate) mod config;
pub(crate) mod connectivity;
pub(crate) mod entropy;
pub(crate) mod event_log;
pub(crate) mod events;
pub(crate) mod http;
pub(crate) mod ipc;
pub(crate) mod metrics;
mod run;
pub(crate) mod service;
pub(crate) mod setup;
pub(crate) mod store;
pub(crate) mod sync;

pub use run::main;
