//! The Unix socket file and who may use it (the module exists on Unix only).
//!
//! The socket lives in a folder only its owner can write to (created 0700 if missing; an
//! existing folder writable by others is refused, since anyone who can write there could
//! swap the socket). The socket itself is 0600, and every connection's peer is checked: only
//! the daemon's own user and root get through.

use std::io;
use std::path::Path;

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    #[error("socket path {} has no parent folder", .0.display())]
    NoParent(std::path::PathBuf),
    #[error("cannot create socket folder {}: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("refusing socket folder {}: {reason}; choose a private folder with --socket or {}", path.display(), tasksync_proto::paths::SOCKET_ENV)]
    UnsafeDir {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(std::path::PathBuf),
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

/// The effective uid of this process.
pub(crate) fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a peer with effective uid `peer` may use a daemon running as `own`.
pub(crate) fn peer_allowed(peer: Option<u32>, own: u32) -> bool {
    matches!(peer, Some(uid) if uid == own || uid == 0)
}

/// Makes sure the socket's folder exists and is private to us.
pub(crate) fn prepare_dir(socket: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| SocketError::NoParent(socket.to_path_buf()))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SocketError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let unsafe_dir = |reason: String| SocketError::UnsafeDir {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(dir).map_err(|e| unsafe_dir(e.to_string()))?;
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a folder".into()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "it is writable by other users (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    if meta.uid() != own_uid() && meta.uid() != 0 {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to us (uid {})",
            meta.uid(),
            own_uid()
        )));
    }
    Ok(())
}

/// Removes a socket file left behind by a daemon that died. Call only while holding the
/// socket's instance lock: then nothing else can be serving it.
pub(crate) fn remove_stale(socket: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            tracing::info!(
                "removing stale socket {} left by a previous run",
                socket.display()
            );
            std::fs::remove_file(socket).map_err(|source| SocketError::Bind {
                path: socket.to_path_buf(),
                source,
            })
        }
        Ok(_) => Err(SocketError::NotASocket(socket.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SocketError::Bind {
            path: socket.to_path_buf(),
            source,
        }),
    }
}

/// Binds the listener with mode 0600. The socket file is removed when the listener drops.
pub(crate) fn bind(socket: &Path) -> Result<Listener, SocketError> {
    use interprocess::os::unix::local_socket::ListenerOptionsExt;
    let bind_error = |source| SocketError::Bind {
        path: socket.to_path_buf(),
        source,
    };
    let name = socket.to_fs_name::<GenericFilePath>().map_err(bind_error)?;
    ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .reclaim_name(true)
        .create_tokio()
        .map_err(bind_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_our_user_and_root_are_let_in() {
        assert!(peer_allowed(Some(1000), 1000));
        assert!(peer_allowed(Some(0), 1000));
        assert!(!peer_allowed(Some(1001), 1000));
        assert!(!peer_allowed(None, 1000));
    }

    #[test]
    fn a_missing_folder_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("a/b/tasksyncd.sock");
        prepare_dir(&socket).unwrap();
        let mode = std::fs::metadata(socket.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_dir(&dir.path().join("s.sock")).unwrap_err();
        assert!(err.to_string().contains("writable by other users"), "{err}");
    }

    #[test]
    fn a_regular_file_in_the_way_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, "precious").unwrap();
        assert!(matches!(
            remove_stale(&path),
            Err(SocketError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }
}
