//! The daemon's local endpoint on any platform: claimed early (so a second daemon stops before
//! it touches anything), bound, and the check of who may connect.
//!
//! - Unix: the socket from systemd's socket activation, or our own socket in a private
//!   folder, guarded by a lock file next to it (see [`super::socket`]).
//! - Windows: the named pipe, created for the current user only (see [`super::pipe`]). The
//!   pipe itself is the guard: claiming checks that nobody serves the name, and only the
//!   first instance of a pipe may be created. The pipe is created just before it is served.

use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::tokio::Stream;

#[cfg(unix)]
use crate::service::lock::{lock_path_for, InstanceLock};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The endpoint this daemon serves; holds its single-instance guard until dropped.
pub(crate) struct Endpoint {
    path: PathBuf,
    listener: Option<Listener>,
    /// The socket the service manager passed, by name.
    inherited: Option<String>,
    #[cfg(unix)]
    _lock: Option<InstanceLock>,
}

impl Endpoint {
    /// Takes the endpoint at `path` for this daemon (`holder` says who we are, for the
    /// message a second daemon gets), or says why it cannot.
    pub(crate) fn claim(path: &Path, holder: &str) -> Result<Endpoint, Error> {
        #[cfg(unix)]
        {
            if let Some((listener, bound)) = crate::service::activation::inherited_listener()? {
                let name = bound.map_or("an unnamed socket".into(), |p| p.display().to_string());
                return Ok(Endpoint {
                    path: path.to_path_buf(),
                    listener: Some(listener),
                    inherited: Some(name),
                    _lock: None,
                });
            }
            super::socket::prepare_dir(path)?;
            let lock = InstanceLock::acquire(&lock_path_for(path), holder)?;
            super::socket::remove_stale(path)?;
            Ok(Endpoint {
                path: path.to_path_buf(),
                listener: None,
                inherited: None,
                _lock: Some(lock),
            })
        }
        #[cfg(windows)]
        {
            let _ = holder;
            super::pipe::ensure_free(path)?;
            Ok(Endpoint {
                path: path.to_path_buf(),
                listener: None,
                inherited: None,
            })
        }
    }

    /// The socket the service manager passed in (socket activation), by name.
    pub(crate) fn inherited(&self) -> Option<&str> {
        self.inherited.as_deref()
    }

    /// What this endpoint serves, for the log.
    pub(crate) fn name(&self) -> String {
        match &self.inherited {
            Some(name) => name.clone(),
            None => self.path.display().to_string(),
        }
    }

    /// The listener to serve, bound now if it is not yet.
    pub(crate) fn listen(&mut self) -> Result<Listener, Error> {
        if let Some(listener) = self.listener.take() {
            return Ok(listener);
        }
        #[cfg(unix)]
        return Ok(super::socket::bind(&self.path)?);
        #[cfg(windows)]
        Ok(super::pipe::bind(&self.path)?)
    }
}

/// Whether the peer on `stream` may use this daemon: `Err` says why not.
///
/// On Unix the peer's uid must be ours or root's. On Windows the pipe's security descriptor
/// admits only our user and Windows enforces it when the client opens the pipe, so whoever
/// got this far is us.
pub(crate) fn admit(stream: &Stream) -> Result<(), String> {
    #[cfg(unix)]
    {
        use interprocess::local_socket::traits::StreamCommon;

        use super::socket::{own_uid, peer_allowed};
        let peer = stream.peer_creds().ok().and_then(|creds| creds.euid());
        if peer_allowed(peer, own_uid()) {
            return Ok(());
        }
        let who = peer.map_or("an unknown uid".to_string(), |uid| format!("uid {uid}"));
        Err(format!(
            "{who}: only uid {} (this daemon's user) and root may connect",
            own_uid()
        ))
    }
    #[cfg(windows)]
    {
        let _ = stream;
        Ok(())
    }
}
