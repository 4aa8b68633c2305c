//! Where the daemon's files live by default: the XDG folders on Unix, the known folders on
//! Windows.

use std::path::PathBuf;

/// `$XDG_CONFIG_HOME/tasksync/config.toml`, else `~/.config/tasksync/config.toml`
/// (Windows: `%APPDATA%\tasksync\config.toml`).
pub(crate) fn default_config_path() -> Option<PathBuf> {
    config_home().map(|dir| dir.join("tasksync").join("config.toml"))
}

/// `$XDG_DATA_HOME/tasksync/tasks.db`, else `~/.local/share/tasksync/tasks.db` (Windows:
/// `%LOCALAPPDATA%\tasksync\tasks.db`), else `./tasks.db` when no home is known.
pub(crate) fn default_db_path() -> PathBuf {
    match data_home() {
        Some(dir) => dir.join("tasksync").join("tasks.db"),
        None => PathBuf::from("tasks.db"),
    }
}

/// Where per-user config lives: `$XDG_CONFIG_HOME`, else `~/.config`; on Windows the roaming
/// `%APPDATA%` (FOLDERID_RoamingAppData, through the `dirs` crate).
fn config_home() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        xdg_home("XDG_CONFIG_HOME", ".config")
    }
    #[cfg(windows)]
    {
        dirs::config_dir()
    }
}

/// Where per-user data lives: `$XDG_DATA_HOME`, else `~/.local/share`; on Windows the local
/// (not roaming: the database is this machine's) `%LOCALAPPDATA%` (FOLDERID_LocalAppData).
fn data_home() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        xdg_home("XDG_DATA_HOME", ".local/share")
    }
    #[cfg(windows)]
    {
        dirs::data_local_dir()
    }
}

/// `$var`, else `$HOME/below_home`; empty variables count as unset.
#[cfg(unix)]
fn xdg_home(var: &str, below_home: &str) -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    set(var)
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(below_home)))
}

/// `$XDG_CONFIG_HOME/tasksync/api-token`, else `~/.config/tasksync/api-token`.
pub(crate) fn default_token_path() -> Option<PathBuf> {
    config_home().map(|dir| dir.join("tasksync").join("api-token"))
}
