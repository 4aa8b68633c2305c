//! The named pipe on Windows (`\\.\pipe\tasksyncd-<user>` unless `--socket` names another),
//! defended the way the Unix socket is:
//!
//! - its security descriptor has a protected DACL with one entry, full access for the current
//!   user's SID: Windows refuses everyone else when they open the pipe;
//! - remote clients are rejected (`PIPE_REJECT_REMOTE_CLIENTS`, which `interprocess` sets
//!   unless asked to accept them);
//! - the first instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE` (again by
//!   `interprocess`), so a second daemon, or any program that took the name first, makes the
//!   start fail instead of sharing the name. Wine does not enforce that flag, so before
//!   creating the pipe we also try to open it as a client: if anyone answers, we refuse.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::windows::local_socket::ListenerOptionsExt;
use interprocess::os::windows::security_descriptor::SecurityDescriptor;
use widestring::{U16CStr, U16CString};

/// Why the pipe could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipeError {
    #[error("{} is not a named pipe path (\\\\.\\pipe\\NAME): {source}", path.display())]
    BadName { path: PathBuf, source: io::Error },
    #[error("another tasksyncd (or another program) already serves {}; stop it first, or choose another pipe with --socket or {}", .0.display(), tasksync_proto::paths::SOCKET_ENV)]
    InUse(PathBuf),
    #[error("cannot build the pipe's security descriptor: {0}")]
    Security(io::Error),
    #[error("cannot listen on {}: {source}", path.display())]
    Bind { path: PathBuf, source: io::Error },
}

/// Creates the pipe, for the current user only.
pub(crate) fn bind(path: &Path) -> Result<Listener, PipeError> {
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(|source| PipeError::BadName {
            path: path.to_path_buf(),
            source,
        })?;
    ensure_free(path)?;
    let sddl = user_only_sddl().map_err(PipeError::Security)?;
    let sddl = U16CString::from_str(&sddl)
        .map_err(|e| PipeError::Security(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let descriptor = SecurityDescriptor::deserialize(&sddl).map_err(PipeError::Security)?;
    ListenerOptions::new()
        .name(name)
        .security_descriptor(descriptor)
        .create_tokio()
        .map_err(|source| match source.kind() {
            // What CreateNamedPipe says when FILE_FLAG_FIRST_PIPE_INSTANCE meets an existing
            // pipe of that name.
            io::ErrorKind::PermissionDenied => PipeError::InUse(path.to_path_buf()),
            _ => PipeError::Bind {
                path: path.to_path_buf(),
                source,
            },
        })
}

/// Refuses a pipe name someone already serves.
pub(crate) fn ensure_free(path: &Path) -> Result<(), PipeError> {
    match someone_serves(path) {
        true => Err(PipeError::InUse(path.to_path_buf())),
        false => Ok(()),
    }
}

/// Whether a pipe of that name exists: it opens, or is busy, or belongs to someone else.
fn someone_serves(path: &Path) -> bool {
    const ERROR_PIPE_BUSY: i32 = 231;
    match tokio::net::windows::named_pipe::ClientOptions::new().open(path) {
        Ok(_) => true,
        Err(e) => {
            e.raw_os_error() == Some(ERROR_PIPE_BUSY) || e.kind() == io::ErrorKind::PermissionDenied
        }
    }
}

/// SDDL for a protected DACL granting the current user, and nobody else, full access.
pub(crate) fn user_only_sddl() -> io::Result<String> {
    Ok(format!("D:P(A;;GA;;;{})", current_user_sid()?))
}

/// The current process's user SID, as a string (`S-1-5-21-...`).
fn current_user_sid() -> io::Result<String> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    let mut raw = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing; OpenProcessToken
    // writes a new handle into `raw` on success.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut raw) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a token handle we just opened and own; OwnedHandle closes it.
    let token = unsafe { OwnedHandle::from_raw_handle(raw) };

    let mut len = 0u32;
    // SAFETY: asking for the size only (null buffer, length 0); it fails with
    // ERROR_INSUFFICIENT_BUFFER and writes the size needed into `len`.
    unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    if len == 0 {
        return Err(io::Error::last_os_error());
    }
    // u64s keep the buffer aligned for TOKEN_USER.
    let mut buffer = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: `buffer` holds at least `len` writable bytes.
    let filled = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            len,
            &mut len,
        )
    };
    if filled == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: GetTokenInformation(TokenUser) filled `buffer` with a TOKEN_USER (aligned, see
    // above), whose SID points into the same buffer, which outlives this use.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text = std::ptr::null_mut();
    // SAFETY: `sid` is a valid SID (above); on success `text` is a NUL-terminated string that
    // we must release with LocalFree.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text` is the NUL-terminated string ConvertSidToStringSidW allocated.
    let string = unsafe { U16CStr::from_ptr_str(text) }.to_string_lossy();
    // SAFETY: `text` came from ConvertSidToStringSidW, which says to free it with LocalFree,
    // and it is not used again.
    unsafe { LocalFree(text.cast()) };
    Ok(string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_names_only_the_current_user() {
        let sddl = user_only_sddl().unwrap();
        assert!(sddl.starts_with("D:P(A;;GA;;;S-1-"), "{sddl}");
        assert_eq!(sddl.matches('(').count(), 1, "{sddl}");
        let wide = U16CString::from_str(&sddl).unwrap();
        SecurityDescriptor::deserialize(&wide).unwrap();
    }
}
