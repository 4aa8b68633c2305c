//! Enough file descriptors for the connection caps, and a cap that fits the limit.
//!
//! A desktop session or a service manager often starts programs with a soft limit of 1,024
//! open files (and a much higher hard limit). At that limit `accept` would fail before the
//! idlest connection could be evicted, and new clients would be locked out; so programs raise
//! the soft limit towards the hard one at startup, and derive their connection caps from what
//! they got.

/// Raises the soft limit on open files to `wanted` (or the hard limit, if lower) and returns
/// the soft limit in force afterwards (`None` where there is no such limit: Windows).
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 here, but 32 bits on some targets
pub fn raise_open_file_limit(wanted: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and has no other effect.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let wanted = (wanted as libc::rlim_t).min(limit.rlim_max);
    if limit.rlim_cur >= wanted {
        return Some(limit.rlim_cur as u64);
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
        return Some(limit.rlim_cur as u64);
    }
    Some(wanted as u64)
}

/// Windows has no soft limit on handles to raise.
#[cfg(not(unix))]
pub fn raise_open_file_limit(_wanted: u64) -> Option<u64> {
    None
}

/// A connection cap that leaves `reserve` descriptors (database files, listeners, pools, a
/// few spare) of an open-file limit `limit` for everything else: at most `max`, at least 16.
pub fn connection_cap(limit: Option<u64>, reserve: u64, max: usize) -> usize {
    match limit {
        Some(limit) => usize::try_from(limit.saturating_sub(reserve))
            .unwrap_or(usize::MAX)
            .clamp(16, max.max(16)),
        None => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_is_harmless_and_idempotent() {
        let first = raise_open_file_limit(4096);
        assert_eq!(raise_open_file_limit(4096), first);
    }

    #[test]
    fn the_cap_leaves_the_reserve() {
        assert_eq!(connection_cap(Some(2048), 128, 100_000), 1920);
        assert_eq!(connection_cap(Some(2048), 128, 1000), 1000);
        assert_eq!(connection_cap(Some(64), 128, 1000), 16);
        assert_eq!(connection_cap(None, 128, 1000), 1000);
    }
}
