//! A fake sync server whose answers the test decides. It records every request, so a test can
//! check what the daemon sent, in which order and in how many requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// What followed `?` in the request target (empty if nothing).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What to answer.
pub struct Response {
    pub status: u16,
    pub body: Value,
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

pub struct Scripted {
    pub addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
    handler: Arc<Mutex<Arc<Handler>>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Starts on a free loopback port, answering with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Arc<Handler>>> = Arc::new(Mutex::new(Arc::new(handler)));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, answer, stopped) = (requests.clone(), handler.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (seen, answer) = (seen.clone(), answer.clone());
                        std::thread::spawn(move || serve(stream, &seen, &answer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Scripted {
            addr,
            requests,
            handler,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the answers from now on.
    pub fn set_handler(&self, handler: impl Fn(&Request) -> Response + Send + Sync + 'static) {
        *self.handler.lock().expect("handler") = Arc::new(handler);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    /// The bodies of every `POST /api/batch` so far.
    pub fn batches(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/api/batch")
            .map(Request::json)
            .collect()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, handler: &Mutex<Arc<Handler>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = target.split('?').next().unwrap_or("").to_string();
        let query = target.split_once('?').map_or("", |(_, q)| q).to_string();
        let request = Request {
            method,
            path: target.clone(),
            query,
            headers,
            body,
        };
        let request = Request { path, ..request };
        let current = handler.lock().expect("handler").clone();
        seen.lock().expect("requests").push(Request {
            path: target,
            ..request.clone()
        });
        let response = current(&request);
        let body = response.body.to_string();
        // A busy server says when to come back, as tasksync-server does.
        let retry_after = if response.status == 503 {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n{retry_after}Content-Length: {}\r\n\r\n",
            response.status,
            body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// An error answer as tasksync-server gives it: `status` and `{error, timestamp, path}`.
pub fn error(status: u16, message: &str, request: &Request) -> Response {
    Response {
        status,
        body: json!({"error": message, "timestamp": "2026-01-01T00:00:00.000Z", "path": request.path}),
    }
}

/// Answers every `POST /api/batch` with the error `status` and `message`, and everything
/// else like a healthy, empty server.
pub fn failing_batches(status: u16, message: &'static str) -> impl Fn(&Request) -> Response {
    let healthy = accepting(|_| None);
    move |request: &Request| match request.path.as_str() {
        "/api/batch" => error(status, message, request),
        _ => healthy(request),
    }
}

/// Answers like a healthy, empty server that accepts every item for which `decide` returns
/// `None`, and rejects with its message those for which it returns `Some`.
pub fn accepting(
    decide: impl Fn(&Value) -> Option<String> + Send + Sync + 'static,
) -> impl Fn(&Request) -> Response {
    move |request: &Request| match request.path.split('?').next().unwrap_or("") {
        "/api/batch" => {
            let batch = request.json();
            let items = batch["items"].as_array().cloned().unwrap_or_default();
            let processed: Vec<Value> = items
                .iter()
                .map(|item| match decide(item) {
                    None => json!({"client_id": item["id"], "server_id": item["task_id"], "status": "success"}),
                    Some(error) => json!({"client_id": item["id"], "server_id": item["task_id"], "status": "error", "error": error}),
                })
                .collect();
            Response {
                status: 200,
                body: json!({ "processed_items": processed }),
            }
        }
        "/api/changes" => Response {
            status: 200,
            body: json!({"changes": [], "cursor": "0", "has_more": false}),
        },
        "/api/health" => Response {
            status: 200,
            body: json!({"status": "ok", "timestamp": "2026-01-01T00:00:00.000Z"}),
        },
        _ => error(404, "not found", request),
    }
}
