//! Telling the socket's two dialects apart (ARCHITECTURE.md, "Local IPC") by a connection's first byte.
//!
//! A postcard frame starts with its 4-byte big-endian length and is at most 1 MiB, so its
//! first byte is 0. An HTTP/1.1 request starts with its method, an upper-case ASCII word. So
//! an upper-case letter means HTTP and anything else postcard (where a non-zero first byte
//! is a frame error the client is told about). Only this byte is read ahead;
//! `tasksync_http::slots::Tracked::unread` hands it back to whichever dialect serves the connection.
//!
//! Nothing here depends on the stream type, so a Unix socket and a named pipe are served alike.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Http,
    Postcard,
}

impl Dialect {
    pub(crate) fn of(first: u8) -> Dialect {
        if first.is_ascii_uppercase() {
            Dialect::Http
        } else {
            Dialect::Postcard
        }
    }
}

/// Waits (at most `timeout`) for a connection's first byte. `None`: the client closed the
/// connection, failed, or sent nothing in time.
pub(crate) async fn first_byte<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Option<u8> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(timeout, stream.read(&mut byte)).await {
        Ok(Ok(1)) => Some(byte[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn methods_are_http_and_frames_are_postcard() {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert_eq!(Dialect::of(method.as_bytes()[0]), Dialect::Http, "{method}");
        }
        // A frame of at most 1 MiB starts with a zero byte; garbage stays postcard (bad frame).
        for first in [0u8, 1, b'g', b'{', 0xff] {
            assert_eq!(Dialect::of(first), Dialect::Postcard, "{first}");
        }
    }

    #[tokio::test]
    async fn the_first_byte_names_the_dialect() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let first = first_byte(&mut server, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(Dialect::of(first), Dialect::Http);
    }

    #[tokio::test]
    async fn silence_and_hang_ups_yield_nothing() {
        let (client, mut server) = tokio::io::duplex(64);
        let silent = first_byte(&mut server, Duration::from_millis(20)).await;
        assert_eq!(silent, None);
        drop(client);
        assert_eq!(first_byte(&mut server, Duration::from_secs(1)).await, None);
    }
}
