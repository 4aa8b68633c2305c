//! Running as a service: single-instance locks, signals, readiness notification, socket
//! activation and the open-file limit.
//!
//! systemd's parts (sd-notify readiness and socket activation) exist only on Unix; this is
//! the one place that says so. Elsewhere they are no-ops, so `run.rs` has no platform
//! switches of its own.

pub(crate) mod lock;
pub(crate) mod shutdown;

#[cfg(unix)]
pub(crate) mod activation;
#[cfg(unix)]
pub(crate) mod notify;

/// No service manager to tell: Task Scheduler (Windows) has no readiness protocol.
#[cfg(not(unix))]
pub(crate) mod notify {
    pub(crate) fn ready(_status: &str) {}
    pub(crate) fn reloading() {}
    pub(crate) fn stopping() {}
}
