//! Socket activation: taking the listening socket from the service manager (`LISTEN_FDS`,
//! `LISTEN_PID`) instead of binding one, as `tasksyncd.socket` arranges.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::os::unix::uds_local_socket::tokio::Listener as UdsListener;

/// The listening socket passed by the service manager, if there is one (only when
/// `LISTEN_PID` names this process), and the path it is bound to, when it has one.
pub(crate) fn inherited_listener() -> std::io::Result<Option<(Listener, Option<PathBuf>)>> {
    let mut fds = sd_notify::listen_fds()?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.next().is_some() {
        tracing::warn!("the service manager passed several sockets; serving the first");
    }
    // SAFETY: the service manager handed us this descriptor (LISTEN_PID is ours) and nothing
    // else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (owned, path) = bound_path(owned);
    let mut listener = Listener::from(UdsListener::try_from(owned)?);
    // The service manager owns the socket file: it must outlive us.
    listener.do_not_reclaim_name_on_drop();
    Ok(Some((listener, path)))
}

/// The file system path a Unix listening socket is bound to (for the log).
fn bound_path(fd: OwnedFd) -> (OwnedFd, Option<PathBuf>) {
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    let path = std_listener
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_pathname().map(PathBuf::from));
    (OwnedFd::from(std_listener), path)
}
