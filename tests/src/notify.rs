//! The service manager's side of `NOTIFY_SOCKET` (systemd's `Type=notify`): a datagram socket
//! that collects what the daemon says (`READY=1`, `RELOADING=1`, `STOPPING=1`), so a test can
//! wait for the daemon to finish starting, reloading or stopping.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::DEADLINE;

pub struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
}

impl NotifySocket {
    /// Binds `dir/notify.sock`.
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        NotifySocket { socket, path }
    }

    /// The value for the daemon's `NOTIFY_SOCKET`.
    pub fn env(&self) -> &str {
        self.path.to_str().expect("a UTF-8 path")
    }

    /// The next message (its lines), waiting at most [`DEADLINE`].
    pub fn next(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("a message from the daemon within the deadline");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Reads messages until one has the line `line` (e.g. `READY=1`); returns that message.
    pub fn until(&self, line: &str) -> Vec<String> {
        loop {
            let message = self.next();
            if message.iter().any(|l| l == line) {
                return message;
            }
        }
    }
}
