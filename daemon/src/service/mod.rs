//! Running as a service: single-instance locks, signals, readiness notification, socket
//! activation and the open-file limit.
//!
//! systemd's parts (sd-notify readiness and socket activation) exist only on Unix; this is
//! the one place that says so. Elsewhere they are no-ops, so `main.rs` has no platform
//! switches of its own.

pub mod fds;
pub mod lock;
pub mod shutdown;

#[cfg(unix)]
pub mod activation;
#[cfg(unix)]
pub mod notify;

/// No service manager to tell: Task Scheduler (Windows) has no readiness protocol.
#[cfg(not(unix))]
pub mod notify {
    pub fn ready(_status: &str) {}
    pub fn reloading() {}
    pub fn stopping() {}
}

/// No socket activation: Task Scheduler starts the program, which binds its own pipe.
#[cfg(not(unix))]
pub mod activation {
    use interprocess::local_socket::tokio::Listener;

    pub fn inherited_listener() -> std::io::Result<Option<(Listener, Option<std::path::PathBuf>)>> {
        Ok(None)
    }
}
