//! Parsing a request body as one JSON object into a route's input type.
//!
//! Every failure is a 400 whose message says what is wrong: an empty body, malformed JSON
//! (serde's message names line and column), or a body of the wrong shape: the message starts
//! with the path of the wrong value (`items[2].data.title: invalid type: ...`, the style of the
//! server's per-item errors), or with `invalid request body:` when the whole body is wrong.
//! Only a JSON object is taken: serde would also read a struct from an array.

use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses `body` into `T`. The fast parser runs first; only a body it refuses is parsed again
/// with path tracking, for the message.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(body).map_err(|_| explain::<T>(body))?;
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    Ok(value)
}

/// Why `body` is not a `T`.
fn explain<T: DeserializeOwned>(body: &[u8]) -> ApiError {
    if body.trim_ascii().is_empty() {
        return ApiError::bad_request("the body is empty; expected a JSON object");
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => match deserializer.end() {
            Ok(()) => return ApiError::bad_request("malformed JSON"),
            Err(error) => error,
        },
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if !(inner.is_syntax() || inner.is_eof() || path == ".") {
                return ApiError::bad_request(format!("{path}: {inner}"));
            }
            inner
        }
    };
    if error.is_data() {
        ApiError::bad_request(format!("invalid request body: {error}"))
    } else {
        ApiError::bad_request(format!("malformed JSON: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        title: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        done: bool,
    }

    fn message(body: &[u8]) -> String {
        let error = parse_json::<Input>(body).unwrap_err();
        assert_eq!(error.status, hyper::StatusCode::BAD_REQUEST);
        assert_eq!(error.code, tasksync_proto::ErrorCode::InvalidInput);
        error.message
    }

    #[test]
    fn malformed_json_says_where() {
        for body in [
            &b"{"[..],
            b"{\"title\": \"a\"} x",
            b"{\"title\": \"a\",}",
            b"nope",
        ] {
            let message = message(body);
            assert!(message.starts_with("malformed JSON: "), "{message}");
            assert!(message.contains("line 1"), "{message}");
        }
        assert!(message(b"  \n").contains("empty"));
        assert!(message(b"").contains("empty"));
    }

    #[test]
    fn a_body_of_the_wrong_shape_names_the_field() {
        let message = |body: &[u8]| message(body);
        assert!(message(b"{}").starts_with("invalid request body: missing field `title`"));
        assert!(message(b"{\"title\": 5}").starts_with("title: invalid type"));
        assert!(message(b"{\"title\": \"a\", \"x\": 1}").contains("unknown field `x`"));
        let nested = message(br#"{"title": "a", "items": [{"done": true}, {"done": 1}]}"#);
        assert!(
            nested.starts_with("items[1].done: invalid type"),
            "{nested}"
        );
    }

    #[test]
    fn only_an_object_is_taken() {
        assert!(message(b"[]").starts_with("invalid request body"));
        assert!(message(b"[\"a\"]").contains("expected a JSON object"));
        assert!(message(b"\"a\"").starts_with("invalid request body"));
        assert!(message(b"null").starts_with("invalid request body"));
        let input = parse_json::<Input>(b" {\"title\":\"a\"}\n").unwrap();
        assert_eq!(input.title, "a");
    }
}
