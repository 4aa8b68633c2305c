//! Why the settings cannot be used: each message names the setting and where it came from.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::resolve::Source;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type or out of range.
    #[error("config file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A value that fails its setting's check (a URL, a log filter).
    #[error("{key} ({origin}): {message}")]
    Invalid {
        key: &'static str,
        origin: Source,
        message: String,
    },
    #[error("token_file {}: {source}", path.display())]
    ReadToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token_file {} is empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error(
        "token: only visible ASCII characters can travel in an Authorization header (is there \
         a trailing newline or carriage return?)"
    )]
    TokenCharacters,
    #[error("http_allow_remote is set but the HTTP API is off: give --http (http_listen) too")]
    RemoteWithoutHttp,
    #[error(
        "refusing to serve the HTTP API on {0}: it is not a loopback address, so other machines \
         could reach it. Use 127.0.0.1:PORT, or add --http-allow-remote if you really want that"
    )]
    RemoteHttp(SocketAddr),
    #[error(
        "cannot tell where to keep the HTTP API token: neither XDG_CONFIG_HOME nor HOME is set; \
         give --api-token-file PATH"
    )]
    NoTokenPath,
}
