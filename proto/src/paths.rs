//! Default locations shared by the daemon and its clients (ARCHITECTURE.md, "Local IPC").

use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket path for every program.
pub const SOCKET_ENV: &str = "TASKSYNC_SOCKET";

/// `$XDG_RUNTIME_DIR/tasksync/tasksyncd.sock`, or, when that is unset, empty or not an
/// absolute path, `tasksync-<uid>/tasksyncd.sock` under the temp dir: `$TMPDIR` when that is
/// an absolute path, else `/tmp` (docs/LOCAL-API.md, "Where the socket is"). On Windows, the
/// named pipe `\\.\pipe\tasksyncd-<user>` (`%USERNAME%`, else `user`).
pub fn default_socket_path() -> PathBuf {
    #[cfg(unix)]
    {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        unix_socket_path(
            std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            std::env::temp_dir(),
            uid,
        )
    }
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        PathBuf::from(format!(r"\\.\pipe\tasksyncd-{user}"))
    }
}

/// The rule of [`default_socket_path`] on Unix, given `XDG_RUNTIME_DIR`, what
/// `std::env::temp_dir` says (`$TMPDIR` as it is, even empty or relative) and the uid. A
/// relative folder would name another socket in every working directory, so daemon and
/// clients started in different places would miss each other: only absolute ones count.
#[cfg_attr(not(unix), allow(dead_code))]
fn unix_socket_path(runtime: Option<PathBuf>, temp: PathBuf, uid: u32) -> PathBuf {
    match runtime.filter(|dir| dir.is_absolute()) {
        Some(runtime) => runtime.join("tasksync").join("tasksyncd.sock"),
        None => {
            let temp = if temp.is_absolute() {
                temp
            } else {
                Path::new("/tmp").to_path_buf()
            };
            temp.join(format!("tasksync-{uid}")).join("tasksyncd.sock")
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_socket_folder_is_the_runtime_dir_else_an_absolute_temp_dir() {
        let path = |runtime: Option<&str>, temp: &str| {
            unix_socket_path(runtime.map(PathBuf::from), PathBuf::from(temp), 1000)
        };
        let run = PathBuf::from("/run/user/1000/tasksync/tasksyncd.sock");
        assert_eq!(path(Some("/run/user/1000"), "/tmp"), run);
        let tmp = PathBuf::from("/tmp/tasksync-1000/tasksyncd.sock");
        for runtime in [None, Some(""), Some("relative/run")] {
            assert_eq!(path(runtime, "/tmp"), tmp, "{runtime:?}");
            assert_eq!(path(runtime, ""), tmp, "TMPDIR= is no folder");
            assert_eq!(path(runtime, "tmp"), tmp, "a relative TMPDIR is ignored");
        }
        assert_eq!(
            path(None, "/var/tmp/me"),
            PathBuf::from("/var/tmp/me/tasksync-1000/tasksyncd.sock")
        );
    }
}
