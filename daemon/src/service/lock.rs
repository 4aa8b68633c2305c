//! Single-instance locks: an exclusive advisory lock on a file next to the database, and one
//! next to the socket. The kernel releases them when the process dies, even by SIGKILL, so a
//! crashed daemon never blocks the next start. The lock file records who holds it, so the
//! refusal can say which daemon is running.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("another tasksyncd is already running ({holder}); lock file {}", path.display())]
    Held { path: PathBuf, holder: String },
    #[error("cannot use lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl InstanceLock {
    /// Takes the lock at `path` without waiting and records `holder` (who we are) in it.
    pub(crate) fn acquire(path: &Path, holder: &str) -> Result<InstanceLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut recorded = String::new();
                let _ = file.read_to_string(&mut recorded);
                let holder = match recorded.trim() {
                    "" => "holder unknown".to_string(),
                    text => text.to_string(),
                };
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        Ok(InstanceLock { _file: file })
    }
}

/// The lock file that guards `target` (a database or a socket): `<target>.lock`.
pub(crate) fn lock_path_for(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.db.lock");
        let first = InstanceLock::acquire(&path, "pid 1, socket /run/a.sock").unwrap();
        let err = InstanceLock::acquire(&path, "pid 2").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("pid 1, socket /run/a.sock"), "{message}");
        drop(first);
        InstanceLock::acquire(&path, "pid 2").unwrap();
    }

    #[test]
    fn lock_paths_sit_next_to_their_target() {
        assert_eq!(
            lock_path_for(Path::new("/a/tasks.db")),
            PathBuf::from("/a/tasks.db.lock")
        );
    }
}
