//! Telling the service manager how the daemon is doing (systemd's `Type=notify`): `READY=1`
//! once it serves, `RELOADING=1` and `READY=1` around a reload, `STOPPING=1` on shutdown.
//! Without `NOTIFY_SOCKET` (not started by systemd) these do nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The daemon serves its socket.
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins; follow with [`ready`].
pub(crate) fn reloading() {
    let now = monotonic_usec();
    send(&[NotifyState::Reloading, NotifyState::MonotonicUsec(now)]);
}

/// Shutdown begins.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// CLOCK_MONOTONIC in microseconds, which systemd's reload protocol asks for.
fn monotonic_usec() -> i128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; the clock id is valid.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if result != 0 {
        return 0;
    }
    i128::from(now.tv_sec) * 1_000_000 + i128::from(now.tv_nsec) / 1_000
}
