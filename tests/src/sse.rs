//! A blocking Server-Sent Events client for tests, over the daemon's local socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::DEADLINE;

/// One event: its id, type and data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("bad JSON in {} event ({e}): {}", self.event, self.data))
    }
}

/// An open `GET /api/events` stream.
pub struct SseStream {
    reader: BufReader<UnixStream>,
    /// The status line and headers.
    pub head: String,
}

impl SseStream {
    /// Opens the stream, resuming after `last_event_id` if given.
    pub fn open(socket: &Path, last_event_id: Option<&str>) -> SseStream {
        SseStream::open_path(socket, "/api/events", last_event_id)
    }

    /// Opens the stream at `path` (`/api/events` with a query, say).
    pub fn open_path(socket: &Path, path: &str, last_event_id: Option<&str>) -> SseStream {
        let mut stream = UnixStream::connect(socket).expect("connect to the socket");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read the head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        SseStream { reader, head }
    }

    /// Reads one line of the (chunked) body; `None` at the end.
    fn line(&mut self) -> Option<String> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            // Chunk sizes are hexadecimal lines of their own; event lines never are only hex
            // digits, and blank lines separate events or end chunks.
            if !line.is_empty() && line.bytes().all(|b| b.is_ascii_hexdigit()) {
                if line == "0" {
                    return None;
                }
                continue;
            }
            return Some(line);
        }
    }

    /// The next event; `None` when the stream ended.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent {
            id: None,
            event: "message".into(),
            data: String::new(),
        };
        let mut any = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if any {
                    return Some(event);
                }
                continue;
            }
            // Comment lines (heartbeats) carry nothing.
            if line.starts_with(':') {
                continue;
            }
            any = true;
            let (field, value) = line.split_once(": ").unwrap_or((line.as_str(), ""));
            match field {
                "id" => event.id = Some(value.to_string()),
                "event" => event.event = value.to_string(),
                "data" => event.data.push_str(value),
                _ => {}
            }
        }
    }

    /// Reads events until one satisfies `wanted` (which sees every event); panics if the
    /// stream ends first.
    pub fn until(&mut self, mut wanted: impl FnMut(&SseEvent) -> bool) -> SseEvent {
        loop {
            let event = self.next_event().expect("the stream ended");
            if wanted(&event) {
                return event;
            }
        }
    }
}
