//! Knowing whether the sync server is reachable, cheaply.
//!
//! - [`monitor`]: the online/offline state machine and its probe schedule (pure).
//! - [`netlink`]: on Linux, route and address changes from the kernel, so a network that
//!   comes back is noticed at once instead of at the next probe.

pub mod monitor;
pub mod netlink;

pub use monitor::{Monitor, ProbePolicy};
