//! Telling the socket's two dialects apart (DESIGN.md section 6) by a connection's first byte.
//!
//! A postcard frame starts with its 4-byte big-endian length and is at most 1 MiB, so its
//! first byte is 0. An HTTP/1.1 request starts with its method, an upper-case ASCII word. So
//! an upper-case letter means HTTP and anything else postcard (where a non-zero first byte
//! is a frame error the client is told about). Only this byte is read ahead; [`Prefixed`]
//! hands it back to whichever dialect serves the connection.
//!
//! Nothing here depends on the stream type, so a Unix socket and a named pipe are served alike.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

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

/// A stream with one byte read ahead put back in front.
pub(crate) struct Prefixed<S> {
    first: Option<u8>,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(first: u8, inner: S) -> Self {
        Prefixed {
            first: Some(first),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(first) = self.first.take() {
                buf.put_slice(&[first]);
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
    async fn the_byte_read_ahead_comes_back_first() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let first = first_byte(&mut server, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(Dialect::of(first), Dialect::Http);
        let mut replayed = Prefixed::new(first, server);
        let mut line = [0u8; 16];
        replayed.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"GET / HTTP/1.1\r\n");
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
