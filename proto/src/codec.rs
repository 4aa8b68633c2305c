//! Length-prefixed postcard framing for the local socket.
//!
//! A frame is a 4-byte big-endian payload length followed by that many bytes of postcard.
//! Frames larger than [`MAX_FRAME_LEN`] are refused on both sides before any allocation, and a
//! peer that starts a frame must finish it within the stall timeout the reader passes in.
//! This module is the only place that knows the encoding.

use std::io;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest payload a frame may carry: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("the peer closed the connection in the middle of a frame")]
    Truncated,
    #[error("the peer started a frame and stalled for more than {0:?}")]
    Stalled(Duration),
}

/// Encodes `message` as a complete frame (header included).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; HEADER_LEN];
    frame = postcard::to_extend(message, frame)
        .map_err(|e| FrameError::Malformed(format!("cannot encode: {e}")))?;
    let payload_len = frame.len() - HEADER_LEN;
    if payload_len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(payload_len));
    }
    let header = u32::try_from(payload_len).map_err(|_| FrameError::TooLarge(payload_len))?;
    frame[..HEADER_LEN].copy_from_slice(&header.to_be_bytes());
    Ok(frame)
}

/// Decodes one payload (without header); trailing bytes make it malformed.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (message, rest) =
        postcard::take_from_bytes(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} unexpected trailing bytes",
            rest.len()
        )));
    }
    Ok(message)
}

/// Decodes a complete frame held in memory (header and payload), as [`read_frame`] would.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    let header: [u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let len = payload_len(header)?;
    let payload = frame.get(HEADER_LEN..).ok_or(FrameError::Truncated)?;
    match payload.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Truncated),
        std::cmp::Ordering::Greater => Err(FrameError::Malformed("bytes after the frame".into())),
        std::cmp::Ordering::Equal => decode(payload),
    }
}

fn payload_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Reads one frame and decodes it. Returns `Ok(None)` when the peer closed the connection
/// cleanly between frames. Waiting for a frame to start takes as long as it takes; once its
/// first byte arrived, the rest must follow within `stall`.
pub async fn read_frame<R, T>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    stall: Duration,
) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; HEADER_LEN];
    if reader.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    let rest = async {
        read_exact_or_truncated(reader, &mut header[1..]).await?;
        let len = payload_len(header)?;
        buf.clear();
        buf.resize(len, 0);
        read_exact_or_truncated(reader, buf).await
    };
    tokio::time::timeout(stall, rest)
        .await
        .map_err(|_| FrameError::Stalled(stall))??;
    decode(buf).map(Some)
}

async fn read_exact_or_truncated<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<(), FrameError> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// Encodes and writes one frame, then flushes.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(message)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{ClientMessage, Command, ServerMessage};
    use proptest::prelude::*;

    const STALL: Duration = Duration::from_millis(200);

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_frame_round_trips_through_a_stream() {
        rt().block_on(async {
            let message = ClientMessage::Request {
                id: 7,
                command: Command::Status,
            };
            let mut bytes = Vec::new();
            write_frame(&mut bytes, &message).await.unwrap();
            assert_eq!(decode_frame::<ClientMessage>(&bytes).unwrap(), message);
            let mut reader = &bytes[..];
            let mut buf = Vec::new();
            let got: Option<ClientMessage> =
                read_frame(&mut reader, &mut buf, STALL).await.unwrap();
            assert_eq!(got, Some(message));
            let eof: Option<ClientMessage> =
                read_frame(&mut reader, &mut buf, STALL).await.unwrap();
            assert_eq!(eof, None);
        });
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        rt().block_on(async {
            let mut bytes = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0; 16]);
            let mut buf = Vec::new();
            let err = read_frame::<_, ClientMessage>(&mut &bytes[..], &mut buf, STALL)
                .await
                .unwrap_err();
            assert!(
                matches!(err, FrameError::TooLarge(n) if n == MAX_FRAME_LEN + 1),
                "{err}"
            );
            assert!(buf.capacity() < 1024);
            let err = read_frame::<_, ClientMessage>(&mut &[0xff; 4][..], &mut buf, STALL)
                .await
                .unwrap_err();
            assert!(matches!(err, FrameError::TooLarge(_)));
        });
    }

    #[test]
    fn oversized_messages_are_refused_when_encoding() {
        let huge = ClientMessage::Hello {
            protocol: 1,
            client: "x".repeat(MAX_FRAME_LEN),
        };
        assert!(matches!(encode(&huge), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let frame = encode(&ServerMessage::Welcome {
            protocol: 1,
            daemon_version: "1.0".into(),
        })
        .unwrap();
        for cut in 1..frame.len() {
            let err = decode_frame::<ServerMessage>(&frame[..cut]).unwrap_err();
            assert!(matches!(err, FrameError::Truncated), "cut at {cut}: {err}");
            let err = rt()
                .block_on(read_frame::<_, ServerMessage>(
                    &mut &frame[..cut],
                    &mut Vec::new(),
                    STALL,
                ))
                .unwrap_err();
            assert!(matches!(err, FrameError::Truncated), "cut at {cut}: {err}");
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(decode_frame::<ServerMessage>(&longer).is_err());
        let payload = &frame[HEADER_LEN..];
        let mut padded = payload.to_vec();
        padded.push(0);
        assert!(matches!(
            decode::<ServerMessage>(&padded),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn a_stalled_frame_times_out() {
        rt().block_on(async {
            let (mut client, mut server) = tokio::io::duplex(64);
            client.write_all(&[0, 0, 0, 10, 1]).await.unwrap();
            let err = read_frame::<_, ClientMessage>(&mut server, &mut Vec::new(), STALL)
                .await
                .unwrap_err();
            assert!(matches!(err, FrameError::Stalled(_)), "{err}");
            drop(client);
        });
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<ClientMessage>(&bytes);
            let _ = decode::<ServerMessage>(&bytes);
            let _ = decode_frame::<ClientMessage>(&bytes);
            let runtime = rt();
            let _ = runtime.block_on(read_frame::<_, ClientMessage>(&mut &bytes[..], &mut Vec::new(), STALL));
        }

        #[test]
        fn framed_random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&payload);
            let _ = decode_frame::<ClientMessage>(&frame);
            let _ = decode_frame::<ServerMessage>(&frame);
        }
    }
}
