//! The HTTP API's bearer token, kept in a file only the user can read.
//!
//! On first start a token of 256 random bits (64 lowercase hex digits) is written to the file
//! (mode 0600, in a folder made 0700 if missing); later starts read it back, so apps keep
//! working across restarts. A token the user wrote into the file is used as it is, if it is
//! long enough and the file is private. To get a new token, delete the file and restart.
//! The token never reaches the logs.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;
/// Shortest token accepted from a file.
pub(crate) const MIN_TOKEN_CHARS: usize = 16;
/// Largest token file read.
const MAX_FILE_BYTES: u64 = 4096;

/// Why the token could not be had; the message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("cannot {action} the HTTP API token file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}", .0)]
    Unusable(String),
    #[error("cannot make a random HTTP API token: {0}")]
    Random(getrandom::Error),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TokenError {
    let path = path.to_path_buf();
    move |source| TokenError::Io {
        action,
        path,
        source,
    }
}

/// The token in `path`, made and saved first if the file does not exist.
pub(crate) fn load_or_create(path: &Path) -> Result<String, TokenError> {
    if let Some(token) = read(path)? {
        return Ok(token);
    }
    let token = generate()?;
    match save_new(path, &token)? {
        true => {
            tracing::info!("made a new HTTP API token in {}", path.display());
            Ok(token)
        }
        // Another daemon made the file in the meantime: use its token.
        false => read(path)?.ok_or_else(|| {
            TokenError::Unusable(format!("{} vanished while it was read", path.display()))
        }),
    }
}

/// A fresh token: 256 random bits as hex.
pub(crate) fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token in `path`, or `None` when there is no such file.
fn read(path: &Path) -> Result<Option<String>, TokenError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let metadata = file.metadata().map_err(io_error("read", path))?;
    if !metadata.is_file() {
        return Err(TokenError::Unusable(format!(
            "the HTTP API token file {} is not a regular file",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        // Root can read anyone's file: a token planted by another user must not become the
        // key to this daemon.
        let own = crate::ipc::socket::own_uid();
        if metadata.uid() != own {
            return Err(TokenError::Unusable(format!(
                "the HTTP API token file {} belongs to uid {}, not to this daemon's user \
                 (uid {own}): delete it or give it to uid {own}",
                path.display(),
                metadata.uid()
            )));
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Unusable(format!(
                "the HTTP API token file {} can be read by other users (mode {mode:03o}): \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(io_error("read", path))?;
    let token = text.trim();
    let usable =
        token.chars().count() >= MIN_TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_graphic());
    if !usable {
        return Err(TokenError::Unusable(format!(
            "the HTTP API token file {} must hold one token of at least {MIN_TOKEN_CHARS} \
             printable ASCII characters without spaces; delete the file to have one made",
            path.display()
        )));
    }
    Ok(Some(token.to_string()))
}

/// Writes `token` to `path` unless the file exists by then; `false` if it did. A crash never
/// leaves a partial file at `path`: the token is written and synced under a temporary name,
/// then linked into place.
fn save_new(path: &Path, token: &str) -> Result<bool, TokenError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.as_deref().unwrap_or("api-token"),
        std::process::id()
    ));
    let _ = fs::remove_file(&temp);
    let written = write_private(&temp, token).and_then(|()| match fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: a rename, which cannot refuse to replace.
        Err(_) => fs::rename(&temp, path).map(|()| true),
    });
    let _ = fs::remove_file(&temp);
    let saved = written.map_err(io_error("write", path))?;
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(saved)
}

fn write_private(path: &Path, token: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Creates `dir` (and missing parents) with mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), TokenError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(io_error("create the folder of", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_256_bit_hex_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_token_is_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/tasksync/api-token");
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{first}\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn a_token_written_by_the_user_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_private(&path, "  my-own-token-0123456789  ").unwrap();
        assert_eq!(load_or_create(&path).unwrap(), "my-own-token-0123456789");
    }

    #[test]
    fn unusable_files_are_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        write_private(&short, "abc").unwrap();
        let error = load_or_create(&short).unwrap_err().to_string();
        assert!(error.contains("at least 16"), "{error}");

        let spaced = dir.path().join("spaced");
        write_private(&spaced, "two words in one token").unwrap();
        assert!(load_or_create(&spaced).is_err());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let open = dir.path().join("open");
            write_private(&open, "0123456789abcdef0123").unwrap();
            fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
            let error = load_or_create(&open).unwrap_err().to_string();
            assert!(error.contains("chmod 600"), "{error}");

            // A file of another user (only root can make one here) is refused, even by root.
            if crate::ipc::socket::own_uid() == 0 {
                let theirs = dir.path().join("theirs");
                write_private(&theirs, "0123456789abcdef0123").unwrap();
                std::os::unix::fs::chown(&theirs, Some(1001), None).unwrap();
                let error = load_or_create(&theirs).unwrap_err().to_string();
                assert!(error.contains("belongs to uid 1001"), "{error}");
            }
        }
        let error = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
    }
}
