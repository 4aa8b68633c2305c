//! Default locations shared by the daemon and its clients (ARCHITECTURE.md, "Local IPC").

use std::path::PathBuf;

/// Environment variable that overrides the socket path for every program.
pub const SOCKET_ENV: &str = "TASKSYNC_SOCKET";

/// `$XDG_RUNTIME_DIR/tasksync/tasksyncd.sock`, or, when that is unset, a private folder
/// `tasksync-<uid>` under the temp dir. On Windows, the named pipe `tasksyncd-<user>`.
pub fn default_socket_path() -> PathBuf {
    #[cfg(unix)]
    {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
            Some(runtime) => PathBuf::from(runtime)
                .join("tasksync")
                .join("tasksyncd.sock"),
            None => {
                // SAFETY: getuid has no preconditions and cannot fail.
                let uid = unsafe { libc::getuid() };
                std::env::temp_dir()
                    .join(format!("tasksync-{uid}"))
                    .join("tasksyncd.sock")
            }
        }
    }
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        PathBuf::from(format!(r"\\.\pipe\tasksyncd-{user}"))
    }
}
