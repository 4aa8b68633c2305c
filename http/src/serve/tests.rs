//! Bodies, JSON and limits through a real hyper connection: a test client writes raw bytes,
//! the way misbehaving clients do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::{watch, Notify};

use super::*;
use crate::body::RequestBody;
use crate::error::{ApiError, ErrorFields};
use crate::json::parse_json;
use crate::response::json_response;

const LIMIT: usize = 1024;
const DEADLINE: Duration = Duration::from_secs(20);

#[derive(serde::Deserialize)]
struct Input {
    title: String,
}

/// The test service: parses the body as `{"title"}` and answers the title.
async fn echo_title(request: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let mut body = RequestBody::new(&parts.headers, body, LIMIT);
    let answer = async {
        let input: Input = parse_json(&body.bytes().await?)?;
        Ok::<_, ApiError>(json_response(StatusCode::OK, &input.title))
    }
    .await;
    body.drain().await;
    Ok(answer.unwrap_or_else(|error| error.into_response(&path, ErrorFields::WithCode)))
}

/// A connection served with [`echo_title`]; the test holds the client's end.
fn connect(header_timeout: Duration) -> DuplexStream {
    let (client, server) = tokio::io::duplex(16 * 1024);
    tokio::spawn(serve_connection(
        server,
        header_timeout,
        service_fn(echo_title),
        std::future::pending(),
    ));
    client
}

/// Writes `request` and reads until the server closes or a whole JSON answer arrived. A
/// server that answers early may close before the whole request is written.
async fn exchange(client: &mut DuplexStream, request: &[u8]) -> String {
    let _ = client.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(2 * crate::body::BODY_TIMEOUT, client.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap_or(0);
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            });
            length.is_some_and(|l| l.parse::<usize>().ok() == Some(body.len()))
        });
        if n == 0 || complete {
            return text.into_owned();
        }
    }
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn a_json_object_within_the_limit_is_parsed() {
    let mut client = connect(Duration::from_secs(5));
    let answer = exchange(&mut client, &post(r#"{"title": "milk"}"#)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\"milk\""), "{answer}");
    // The connection stays usable for the next request.
    let answer = exchange(&mut client, &post("{")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("malformed JSON"), "{answer}");
    assert!(answer.contains(r#""code":"invalid_input""#), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_chunked() {
    let mut client = connect(Duration::from_secs(5));
    let big = format!(r#"{{"title": "{}"}}"#, "x".repeat(LIMIT));
    let answer = exchange(&mut client, &post(&big)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(&format!("larger than {LIMIT} bytes")),
        "{answer}"
    );

    let mut client = connect(Duration::from_secs(5));
    let chunk = "x".repeat(600);
    let chunked = format!(
        "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = exchange(&mut client, chunked.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_large_declared_body_that_never_comes_is_answered_soon() {
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut client = connect(Duration::from_secs(5));
        let head = format!("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n{expect}\r\n");
        let started = Instant::now();
        let answer = exchange(&mut client, head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{expect}: {answer}");
        assert!(started.elapsed() < crate::body::BODY_TIMEOUT, "{expect}");
    }
}

#[tokio::test]
async fn a_body_that_stalls_is_408() {
    tokio::time::pause();
    let mut client = connect(Duration::from_secs(5));
    let head = b"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"ti";
    let answer = exchange(&mut client, head).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");
}

#[tokio::test]
async fn a_head_over_the_cap_is_431() {
    let mut client = connect(Duration::from_secs(5));
    let head = format!(
        "GET /t HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(MAX_HEAD_BYTES)
    );
    let answer = exchange(&mut client, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let mut client = connect(Duration::from_millis(200));
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, client.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

/// An accept loop on loopback whose one route waits for `release`; answers the address,
/// the stop switch and the loop's task.
async fn start_loop(
    drain_timeout: Duration,
    started: Arc<Notify>,
    release: Arc<Notify>,
) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let until = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let connection = {
        let stopped = stopped.clone();
        move |(stream, _peer): (TcpStream, SocketAddr)| {
            let (started, release) = (started.clone(), release.clone());
            let service = service_fn(move |_request| {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    started.notify_one();
                    release.notified().await;
                    Ok(json_response(StatusCode::OK, "done"))
                }
            });
            serve_connection(
                stream,
                Duration::from_secs(5),
                service,
                until(stopped.clone()),
            )
        }
    };
    let task = tokio::spawn(accept_loop(
        listener,
        until(stopped),
        drain_timeout,
        connection,
    ));
    (addr, stop, task)
}

/// Sends a request and waits until the handler has it.
async fn request_in_hand(addr: SocketAddr, started: &Notify) -> tokio::net::TcpStream {
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, started.notified())
        .await
        .expect("request in hand");
    client
}

#[tokio::test]
async fn on_stop_the_request_in_hand_is_answered_and_the_listener_closes() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (addr, stop, task) = start_loop(DEADLINE, started.clone(), release.clone()).await;
    let mut client = request_in_hand(addr, &started).await;
    stop.send_replace(true);
    release.notify_one();
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, client.read_to_string(&mut answer))
        .await
        .expect("answered, then closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("loop ended")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn on_stop_a_request_that_outlasts_the_drain_timeout_is_dropped() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (addr, stop, task) = start_loop(Duration::from_millis(50), started.clone(), release).await;
    let mut client = request_in_hand(addr, &started).await;
    stop.send_replace(true);
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("loop ended")
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, client.read_to_end(&mut answer)).await;
    assert!(read.expect("closed").is_ok_and(|n| n == 0) || answer.is_empty());
}
