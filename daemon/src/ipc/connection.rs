//! One client connection: peer check, which dialect it speaks, then for postcard the
//! handshake and requests answered in order (HTTP connections go to `crate::http`).
//!
//! Anything wrong with a frame (malformed, oversized, stalled) ends this connection with a
//! `Fatal` message naming the problem; the daemon and every other connection go on.

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use tasksync_proto::codec::{self, FrameError};
use tasksync_proto::events::{Event, TimedEvent};
use tasksync_proto::ipc::{
    ClientMessage, Command, ErrorCode, IpcError, Reply, ServerMessage, PROTOCOL_VERSION,
};
use tasksync_proto::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::sync::broadcast::error::RecvError;

use super::dispatch::dispatch;
use super::endpoint::admit;
use super::sniff::{first_byte, Dialect};
use crate::app::App;
use crate::http::server::Api;
use crate::service::shutdown::Shutdown;
use tasksync_http::slots::{Slot, Tracked};

/// How long a client has after connecting to send its first byte, and then to say Hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a started frame may take to arrive completely.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may leave an answer unread before it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The refusal a client of another user gets, in either dialect.
pub(crate) const PERMISSION_DENIED: &str =
    "permission denied: this daemon serves only its own user (and root)";

/// Serves one accepted socket connection: checks the peer's uid, then serves its dialect.
pub(crate) async fn accept(
    stream: Stream,
    app: Arc<App>,
    http: Arc<Api>,
    slot: Slot,
    shutdown: Shutdown,
) {
    let allowed = match admit(&stream) {
        Ok(()) => true,
        Err(who) => {
            tracing::warn!("refused a connection from {who}");
            false
        }
    };
    serve_dialect(stream, allowed, app, http, slot, shutdown).await;
}

/// Serves a connection in the dialect its first byte names; a refused peer is told why in
/// that dialect. Generic over the stream, so every kind of local socket is served alike.
pub(crate) async fn serve_dialect<S>(
    stream: S,
    allowed: bool,
    app: Arc<App>,
    http: Arc<Api>,
    slot: Slot,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stream = Tracked::new(stream, slot.activity().clone());
    let Some(first) = first_byte(&mut stream, HANDSHAKE_TIMEOUT).await else {
        return;
    };
    let dialect = Dialect::of(first);
    let stream = stream.unread(first);
    let serve = async {
        match (dialect, allowed) {
            (Dialect::Http, true) => {
                crate::http::server::serve_connection(stream, http, Some(slot.activity()), shutdown)
                    .await
            }
            (Dialect::Http, false) => crate::http::server::refuse(stream, PERMISSION_DENIED).await,
            (Dialect::Postcard, true) => serve_postcard(stream, app, &slot, shutdown).await,
            (Dialect::Postcard, false) => refuse_postcard(stream).await,
        }
    };
    tokio::select! {
        () = serve => {}
        () = slot.evicted() => tracing::debug!("closed an idle connection to make room for a new one"),
    }
}

/// Tells a postcard client of another user why it is refused: after its Hello, so that the
/// client is not writing into a closed socket when the answer comes.
async fn refuse_postcard<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let (read_half, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(read_half);
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        codec::read_frame::<_, ClientMessage>(&mut reader, &mut buf, STALL_TIMEOUT),
    )
    .await;
    let refusal = IpcError::new(ErrorCode::PermissionDenied, PERMISSION_DENIED);
    send(&mut writer, &ServerMessage::Fatal(refusal)).await;
}

/// The postcard protocol: handshake, then requests answered in order.
async fn serve_postcard<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    app: Arc<App>,
    slot: &Slot,
    mut shutdown: Shutdown,
) {
    let (read_half, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(read_half);
    let mut buf = Vec::new();

    let hello = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        codec::read_frame(&mut reader, &mut buf, STALL_TIMEOUT),
    )
    .await;
    let client = match hello {
        Ok(Ok(Some(ClientMessage::Hello { protocol, client }))) if protocol == PROTOCOL_VERSION => {
            client
        }
        Ok(Ok(Some(ClientMessage::Hello { protocol, client }))) => {
            let older = if protocol < PROTOCOL_VERSION {
                format!(
                    "{client} is older: upgrade it to tasksync {}",
                    env!("CARGO_PKG_VERSION")
                )
            } else {
                "tasksyncd is older: upgrade tasksyncd, and restart it".to_string()
            };
            let message = format!(
                "{client} speaks protocol {protocol} but tasksyncd {} speaks {PROTOCOL_VERSION}: {older}",
                env!("CARGO_PKG_VERSION")
            );
            return fail(&mut writer, IpcError::new(ErrorCode::Incompatible, message)).await;
        }
        Ok(Ok(Some(ClientMessage::Request { .. }))) => {
            return fail(&mut writer, bad_frame("the first message must be Hello")).await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return fail(&mut writer, frame_error(e)).await,
        Err(_) => {
            return fail(
                &mut writer,
                bad_frame(format!("no Hello within {HANDSHAKE_TIMEOUT:?}")),
            )
            .await
        }
    };
    let welcome = ServerMessage::Welcome {
        protocol: PROTOCOL_VERSION,
        daemon_version: env!("CARGO_PKG_VERSION").into(),
    };
    if !send(&mut writer, &welcome).await {
        return;
    }
    tracing::debug!("client {client:?} connected");

    loop {
        let frame = tokio::select! {
            frame = codec::read_frame(&mut reader, &mut buf, STALL_TIMEOUT) => frame,
            _ = shutdown.requested() => return,
        };
        match frame {
            Ok(None) => return,
            Ok(Some(ClientMessage::Request {
                id,
                command: Command::Subscribe,
            })) => {
                let _streaming = slot.activity().busy();
                return stream_events(&app, id, &mut reader, &mut writer, shutdown).await;
            }
            Ok(Some(ClientMessage::Request { id, command })) => {
                let _working = slot.activity().busy();
                let result = dispatch(&app, command).await;
                if !send_response(&mut writer, id, result).await {
                    return;
                }
            }
            Ok(Some(ClientMessage::Hello { .. })) => {
                return fail(&mut writer, bad_frame("Hello sent twice")).await
            }
            Err(e) => return fail(&mut writer, frame_error(e)).await,
        }
    }
}

/// Serves a subscription: `Subscribed`, the current state, then every event, until the
/// client hangs up (or sends anything: a subscribed connection only listens) or the daemon
/// stops. A subscriber too slow to keep up is told how many events it missed.
async fn stream_events<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    app: &Arc<App>,
    id: u64,
    reader: &mut R,
    writer: &mut W,
    mut shutdown: Shutdown,
) {
    // Subscribe before taking the status, so nothing falls between the two.
    let mut events = app.events.subscribe();
    let status = match app.scan(App::status).await {
        Ok(status) => status,
        Err(e) => {
            send_response(writer, id, Err(e.into())).await;
            return;
        }
    };
    if !send_response(writer, id, Ok(Reply::Subscribed)).await
        || !send(writer, &ServerMessage::Event(timed(Event::Status(status)))).await
    {
        return;
    }
    let mut byte = [0u8; 1];
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => timed(Event::Lagged { missed }),
                Err(RecvError::Closed) => return,
            },
            _ = reader.read(&mut byte) => return,
            _ = shutdown.requested() => return,
        };
        if !send(writer, &ServerMessage::Event(event)).await {
            return;
        }
    }
}

/// An event that happens now.
fn timed(event: Event) -> TimedEvent {
    TimedEvent {
        at: Timestamp::now(),
        event,
    }
}

fn bad_frame(message: impl Into<String>) -> IpcError {
    IpcError::new(ErrorCode::BadFrame, message)
}

fn frame_error(error: FrameError) -> IpcError {
    bad_frame(error.to_string())
}

/// Reports a connection-level error and ends the connection.
async fn fail<W: AsyncWrite + Unpin>(writer: &mut W, error: IpcError) {
    tracing::debug!("closing a connection: {}", error.message);
    send(writer, &ServerMessage::Fatal(error)).await;
}

/// Writes a response; an answer too large for a frame becomes an error answer instead.
async fn send_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    id: u64,
    result: Result<Reply, IpcError>,
) -> bool {
    let response = ServerMessage::Response { id, result };
    if let Err(FrameError::TooLarge(size)) = codec::encode(&response) {
        tracing::error!("answer to request {id} is {size} bytes, over the frame limit");
        let message = format!("the answer is {size} bytes, more than a frame may carry");
        let result = Err(IpcError::new(ErrorCode::Internal, message));
        return send(writer, &ServerMessage::Response { id, result }).await;
    }
    send(writer, &response).await
}

/// Writes one message; false if the client is gone or too slow to read.
async fn send<W: AsyncWrite + Unpin>(writer: &mut W, message: &ServerMessage) -> bool {
    match tokio::time::timeout(WRITE_TIMEOUT, codec::write_frame(writer, message)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!("dropping a connection: {e}");
            false
        }
        Err(_) => {
            tracing::debug!(
                "dropping a connection that did not read its answers for {WRITE_TIMEOUT:?}"
            );
            false
        }
    }
}
