//! The types a setting can have, and for each: how a flag or environment variable is parsed,
//! how the config file gives it, and how `--print-config` writes it back as TOML.

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::builder::{StringValueParser, TypedValueParser, ValueParser};
use clap::{Arg, ArgAction};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A type a setting's value can have.
pub(crate) trait Value: Clone + Send + Sync + DeserializeOwned + 'static {
    /// Teaches clap to parse the flag and the environment variable (clap reports bad ones).
    fn arg(arg: Arg, range: Option<&RangeInclusive<u64>>) -> Arg;

    /// The config file's value; `range` is checked by the caller through [`Value::number`].
    fn from_file(value: toml::Value) -> Result<Self, String> {
        value
            .try_into()
            .map_err(|e| e.to_string().trim().to_string())
    }

    /// The value as TOML, or `None` for a secret, which is never printed.
    fn to_toml(&self) -> Option<String>;

    /// A number, for range checks.
    fn number(&self) -> Option<u64> {
        None
    }

    /// Empty text counts as not given, so the next place (the file, the default) decides.
    fn is_blank(&self) -> bool {
        false
    }

    /// Text to check with a setting's own check (a URL, a log filter).
    fn text(&self) -> Option<&str> {
        None
    }

    /// What `--help` shows as the default; `None` when the setting's help says it in words.
    fn help_default(&self) -> Option<String> {
        None
    }

    /// The value as used: paths are made absolute.
    fn normalized(self) -> Self {
        self
    }
}

/// A setting's field: its value, or for optional settings `Option` of it.
pub(crate) trait Field: Sized {
    type Raw: Value;
    fn given(raw: Self::Raw) -> Self;
    fn raw(&self) -> Option<&Self::Raw>;
    fn normalized(self) -> Self;
}

impl<T: Value> Field for Option<T> {
    type Raw = T;
    fn given(raw: T) -> Self {
        Some(raw)
    }
    fn raw(&self) -> Option<&T> {
        self.as_ref()
    }
    fn normalized(self) -> Self {
        self.map(Value::normalized)
    }
}

/// Settings that always have a value are their own field.
macro_rules! always_set {
    ($($ty:ty),+) => {$(
        impl Field for $ty {
            type Raw = $ty;
            fn given(raw: $ty) -> Self {
                raw
            }
            fn raw(&self) -> Option<&$ty> {
                Some(self)
            }
            fn normalized(self) -> Self {
                Value::normalized(self)
            }
        }
    )+};
}
always_set!(PathBuf, String, u32, u64, bool);

impl Value for PathBuf {
    fn arg(arg: Arg, _: Option<&RangeInclusive<u64>>) -> Arg {
        arg.value_parser(clap::value_parser!(PathBuf))
    }
    fn to_toml(&self) -> Option<String> {
        Some(toml_string(&self.display().to_string()))
    }
    fn is_blank(&self) -> bool {
        self.as_os_str().is_empty()
    }
    fn normalized(self) -> Self {
        std::path::absolute(&self).unwrap_or(self)
    }
    fn help_default(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl Value for String {
    fn arg(arg: Arg, _: Option<&RangeInclusive<u64>>) -> Arg {
        arg.value_parser(clap::value_parser!(String))
    }
    fn to_toml(&self) -> Option<String> {
        Some(toml_string(self))
    }
    fn is_blank(&self) -> bool {
        self.trim().is_empty()
    }
    fn text(&self) -> Option<&str> {
        Some(self)
    }
    fn help_default(&self) -> Option<String> {
        Some(self.clone())
    }
}

/// Whole numbers, within the setting's range.
macro_rules! number {
    ($($ty:ty: $bound:ty),+) => {$(
        impl Value for $ty {
            fn arg(arg: Arg, range: Option<&RangeInclusive<u64>>) -> Arg {
                let parser = clap::value_parser!($ty);
                match range {
                    // clap's range type: the table's ranges fit it.
                    Some(r) => arg.value_parser(parser.range(*r.start() as $bound..=*r.end() as $bound)),
                    None => arg.value_parser(parser),
                }
            }
            fn to_toml(&self) -> Option<String> {
                Some(self.to_string())
            }
            fn number(&self) -> Option<u64> {
                Some(u64::from(*self))
            }
            fn help_default(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )+};
}
number!(u32: i64, u64: u64);

/// A switch: on when the flag is given (or its variable says true).
impl Value for bool {
    fn arg(arg: Arg, _: Option<&RangeInclusive<u64>>) -> Arg {
        arg.action(ArgAction::SetTrue)
    }
    fn to_toml(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// An address to listen on: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
impl Value for SocketAddr {
    fn arg(arg: Arg, _: Option<&RangeInclusive<u64>>) -> Arg {
        arg.value_parser(parse_listen_addr)
    }
    fn from_file(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(text) => parse_listen_addr(&text),
            other => Err(format!(
                "expected an address such as \"127.0.0.1:3000\", found {}",
                other.type_str()
            )),
        }
    }
    fn to_toml(&self) -> Option<String> {
        Some(toml_string(&self.to_string()))
    }
}

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub(crate) fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
        }
    }
    Err(format!(
        "{text:?} is not an address to listen on: expected IP:PORT, e.g. 127.0.0.1:3000"
    ))
}

/// A secret (the sync token): hidden from `--print-config`, `Debug` and clap's listing of
/// environment values, and it may start with '-'.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret(text.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl Value for Secret {
    fn arg(arg: Arg, _: Option<&RangeInclusive<u64>>) -> Arg {
        arg.value_parser(ValueParser::new(StringValueParser::new().map(Secret)))
            .hide_env_values(true)
            .allow_hyphen_values(true)
    }
    fn to_toml(&self) -> Option<String> {
        None
    }
}

/// `text` as a TOML basic string.
pub(crate) fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:3000"),
            Ok("127.0.0.1:3000".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("localhost:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::1]:80"),
            Ok("[::1]:80".parse().unwrap())
        );
        for bad in ["3000", "127.0.0.1", "example.com:80", "localhost:x", ""] {
            assert!(parse_listen_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_read_back_as_themselves() {
        for text in [
            "plain",
            "a \"quoted\" C:\\path",
            "tab\tnew\nline\u{7f}\u{1b}",
            "ünï",
        ] {
            let line = format!("key = {}", toml_string(text));
            let table: toml::Table = toml::from_str(&line).unwrap();
            assert_eq!(table["key"].as_str(), Some(text), "{line}");
        }
    }

    #[test]
    fn secrets_do_not_show() {
        let secret = Secret("s3cret".into());
        assert_eq!(secret.to_toml(), None);
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
