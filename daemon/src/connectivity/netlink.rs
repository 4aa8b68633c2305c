//! Network-change hints from the OS. On Linux: a netlink socket subscribed to link, address
//! and route changes; each readable burst means "something changed, probe now". Elsewhere (or
//! if the socket cannot be opened, e.g. in a sandbox) it never fires and probes alone serve.

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;

    pub struct NetworkChanges {
        fd: AsyncFd<OwnedFd>,
    }

    impl NetworkChanges {
        pub fn open() -> io::Result<NetworkChanges> {
            // SAFETY: plain socket(2) call; the result is checked before use.
            let raw = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a fresh descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_nl is plain old data; all-zero is a valid starting value.
            let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            address.nl_groups = (libc::RTMGRP_LINK
                | libc::RTMGRP_IPV4_IFADDR
                | libc::RTMGRP_IPV6_IFADDR
                | libc::RTMGRP_IPV4_ROUTE
                | libc::RTMGRP_IPV6_ROUTE) as u32;
            // SAFETY: `address` is a valid sockaddr_nl and its size is passed along.
            let bound = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    std::ptr::addr_of!(address).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if bound < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the OwnedFd is valid and open, and AsyncFd owns it from here on, so the
            // descriptor stays the same until the AsyncFd is dropped.
            let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
            Ok(NetworkChanges { fd })
        }

        /// Resolves when the kernel reports a change; drains what is queued.
        pub async fn changed(&self) -> io::Result<()> {
            loop {
                let mut guard = self.fd.readable().await?;
                let mut buf = [0u8; 8192];
                let mut drained_any = false;
                loop {
                    // SAFETY: `buf` is valid for writes of its length.
                    let n = unsafe {
                        libc::recv(
                            self.fd.get_ref().as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            0,
                        )
                    };
                    if n > 0 {
                        drained_any = true;
                        continue;
                    }
                    let error = io::Error::last_os_error();
                    if n < 0 && error.kind() == io::ErrorKind::WouldBlock {
                        guard.clear_ready();
                        break;
                    }
                    if n < 0 && error.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // ENOBUFS means we missed messages: still a change.
                    if n < 0 && error.raw_os_error() == Some(libc::ENOBUFS) {
                        drained_any = true;
                        continue;
                    }
                    return Err(error);
                }
                if drained_any {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    pub struct NetworkChanges;

    impl NetworkChanges {
        pub fn open() -> io::Result<NetworkChanges> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no network-change hints on this OS",
            ))
        }

        pub async fn changed(&self) -> io::Result<()> {
            std::future::pending().await
        }
    }
}

pub use imp::NetworkChanges;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[tokio::test]
    async fn the_netlink_socket_opens() {
        // Opening is all we can check without changing the machine's network.
        match super::NetworkChanges::open() {
            Ok(_) => {}
            Err(e) => eprintln!("netlink unavailable here ({e}); the daemon falls back to probes"),
        }
    }
}
