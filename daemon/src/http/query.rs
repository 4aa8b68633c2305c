//! Query strings (`?completed=false&q=milk&limit=50&after=ID`): percent-decoding, typed
//! values with clear 400s, and the query of the next page. Pure; no I/O.

use tasksync_http::ApiError;

/// The decoded `name=value` pairs of a query string.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Query { pairs })
    }

    /// Refuses names other than `known`, and names given twice (except those in `repeatable`).
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        self.only_repeating(known, &[])
    }

    /// As [`Query::only`], where the names in `repeatable` may be given several times.
    pub(crate) fn only_repeating(
        &self,
        known: &[&str],
        repeatable: &[&str],
    ) -> Result<(), ApiError> {
        for (i, (name, _)) in self.pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {name:?}; this route takes {}",
                    known.join(", ")
                )));
            }
            if !repeatable.contains(&name.as_str())
                && self.pairs[..i].iter().any(|(n, _)| n == name)
            {
                return Err(ApiError::bad_request(format!(
                    "query parameter {name:?} is given twice"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A value parsed with `FromStr`; the error names the parameter.
    pub(crate) fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|e| ApiError::bad_request(format!("{name}={value:?}: {e}")))
            })
            .transpose()
    }

    /// `true` or `false`.
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name}={other:?}: expected true or false"
            ))),
        }
    }

    /// A whole number in `min..=max`.
    pub(crate) fn number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "{name}={text:?}: expected a whole number from {min} to {max}"
            ))),
        }
    }
}

/// Percent-decoding, with `+` as a space (HTML forms and most client libraries send it).
fn decode(text: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("malformed query string near {text:?}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The raw query of the next page: the same query with `after` replaced by `after`.
pub(crate) fn next_page(raw: &str, after: &str) -> String {
    let mut parts: Vec<&str> = raw
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("after"))
        .collect();
    let after = format!("after={after}");
    parts.push(&after);
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded() {
        let query = Query::parse("q=caf%C3%A9+au+lait&completed=true&x").unwrap();
        assert_eq!(query.get("q"), Some("café au lait"));
        assert_eq!(query.flag("completed").unwrap(), Some(true));
        assert_eq!(query.get("x"), Some(""));
        for bad in ["q=%", "q=%4", "q=%zz", "q=%ff"] {
            assert!(Query::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_or_repeated_names_are_refused() {
        let query = Query::parse("limit=1&limit=2").unwrap();
        assert!(query.only(&["limit"]).is_err());
        let query = Query::parse("colour=red").unwrap();
        assert!(query
            .only(&["limit"])
            .unwrap_err()
            .message
            .contains("colour"));
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        assert_eq!(
            next_page("q=milk&after=a&limit=2", "b"),
            "q=milk&limit=2&after=b"
        );
        assert_eq!(next_page("", "b"), "after=b");
    }
}
