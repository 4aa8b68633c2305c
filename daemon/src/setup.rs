//! Starting the daemon: why it can fail before (or while) it serves, and the private folder
//! and file it prepares for the database.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::http::listen::StartError;
use crate::service::lock::LockError;
use crate::store::StoreError;
use crate::sync::client::ClientSetupError;

/// Why the daemon cannot start or keep running; each message says what and where.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot create database folder {}: {source}", path.display())]
    DatabaseFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create database {}: {source}", path.display())]
    DatabaseFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The local socket or pipe.
    #[error(transparent)]
    Endpoint(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sync engine's client (server URL, certificates).
    #[error(transparent)]
    Sync(#[from] ClientSetupError),
    #[error(transparent)]
    Http(#[from] StartError),
}

/// Creates the database's folder (0700) if it is missing, and the database file empty with
/// mode 0600, so that neither it nor the journal files SQLite makes beside it (with its mode)
/// are readable by others.
pub(crate) fn create_private_database(db: &Path) -> Result<(), SetupError> {
    create_private_dir(db)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(db) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(SetupError::DatabaseFile {
            path: db.to_path_buf(),
            source,
        }),
    }
}

/// Creates the database's folder (0700) if it is missing.
pub(crate) fn create_private_dir(db: &Path) -> Result<(), SetupError> {
    let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|source| SetupError::DatabaseFolder {
            path: dir.to_path_buf(),
            source,
        })
}
