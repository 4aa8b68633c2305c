//! Enough file descriptors for the connection caps.
//!
//! A desktop session often starts services with a soft limit of 1,024 open files (and a much
//! higher hard limit). The socket serves up to 1,024 connections and TCP up to 256 more, so at
//! that limit `accept` would fail before the idlest connection could be evicted, and new
//! clients would be locked out. The soft limit is raised towards the hard one at startup.

/// Open files wanted: both connection caps, plus the database, the listeners and some slack.
#[cfg(unix)]
const WANTED: u64 = 4096;

/// Raises the soft limit on open files to [`WANTED`] (or the hard limit, if lower).
#[cfg(unix)]
pub(crate) fn raise_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and has no other effect.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let wanted = (WANTED as libc::rlim_t).min(limit.rlim_max);
    if limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the hard one
    // needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!(
            "cannot raise the open-file limit from {}: the connection caps may not be reached",
            limit.rlim_cur
        );
    }
}

/// Windows has no soft limit on handles to raise.
#[cfg(not(unix))]
pub(crate) fn raise_limit() {}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_is_harmless_and_idempotent() {
        super::raise_limit();
        super::raise_limit();
    }
}
