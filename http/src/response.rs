//! What an answer is made of: a body sent whole or streamed, and JSON answers.
//!
//! Every answer says `Cache-Control: no-store`: both APIs answer with one user's tasks and
//! state, nothing a cache between client and program should keep.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

pub type HttpResponse = Response<Body>;

/// An answer's body: all at once, or a stream (an event stream) fed through a channel.
pub struct Body(Inner);

enum Inner {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn full(bytes: Bytes) -> Self {
        Body(Inner::Full((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn empty() -> Self {
        Body(Inner::Full(None))
    }

    /// A body that sends what arrives on `rx` and ends when every sender is gone.
    pub fn stream(rx: mpsc::Receiver<Bytes>) -> Self {
        Body(Inner::Stream(rx))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.0, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(_) => SizeHint::default(),
        }
    }
}

/// A JSON answer with the given status.
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> HttpResponse {
    let (status, bytes) = match serde_json::to_vec(value) {
        Ok(bytes) => (status, Bytes::from(bytes)),
        Err(error) => {
            tracing::error!("could not encode a response: {error}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"{\"error\":\"internal error\"}"),
            )
        }
    };
    let mut response = with_status(status, Body::full(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A 200 text answer of `content_type` (such as a metrics exposition).
pub fn text_response(content_type: &'static str, text: String) -> HttpResponse {
    let mut response = with_status(StatusCode::OK, Body::full(Bytes::from(text)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An answer without a body (204).
pub fn empty_response(status: StatusCode) -> HttpResponse {
    with_status(status, Body::empty())
}

/// An answer with `status` and `body`, not to be cached.
fn with_status(status: StatusCode, body: Body) -> HttpResponse {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn json_answers_are_typed_and_not_cached() {
        let response = json_response(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn streamed_bodies_end_with_their_senders() {
        let (tx, rx) = mpsc::channel(2);
        tx.send(Bytes::from_static(b"one ")).await.unwrap();
        tx.send(Bytes::from_static(b"two")).await.unwrap();
        drop(tx);
        let bytes = Body::stream(rx).collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"one two");
        assert!(hyper::body::Body::is_end_stream(&Body::empty()));
        assert_eq!(
            empty_response(StatusCode::NO_CONTENT).headers()[CACHE_CONTROL],
            "no-store"
        );
    }
}
