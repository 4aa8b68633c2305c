//! Knowing whether the sync server is reachable, cheaply.
//!
//! - [`monitor`]: the online/offline state machine and its probe schedule (pure).
//! - [`network`]: network-change hints from the OS (Linux, Windows, macOS), so a network that
//!   comes back is noticed at once instead of at the next probe.

pub(crate) mod monitor;
pub(crate) mod network;

pub(crate) use monitor::{Monitor, ProbePolicy};
pub(crate) use network::NetworkChanges;
