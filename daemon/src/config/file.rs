//! The config file: TOML, one key per setting, under the same names `--print-config` shows.
//! An unknown key or a value of the wrong type is an error that names the key and the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every key the file may hold; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub db: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub server_url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub batch_size: Option<u32>,
    pub retry_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub probe_max_ms: Option<u64>,
    pub probe_timeout_ms: Option<u64>,
    pub pull_interval_ms: Option<u64>,
    pub manual_sync: Option<bool>,
    #[serde(default, deserialize_with = "listen_addr")]
    pub http_listen: Option<SocketAddr>,
    pub http_allow_remote: Option<bool>,
    pub api_token_file: Option<PathBuf>,
    pub log: Option<String>,
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    super::cli::parse_listen_addr(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Reads and checks `path`. A missing file is `Ok(None)` unless it was asked for by name.
pub fn load(path: &Path, required: bool) -> Result<Option<FileSettings>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(format!("cannot read config file {}: {e}", path.display())),
    };
    let settings: FileSettings = toml::from_str(&text)
        .map_err(|e| format!("config file {}: {}", path.display(), e.to_string().trim()))?;
    settings
        .check()
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    Ok(Some(settings))
}

impl FileSettings {
    /// The range checks clap applies to the same settings on the command line.
    fn check(&self) -> Result<(), String> {
        let within = |key: &str, value: Option<u64>, min: u64, max: u64| match value {
            Some(v) if v < min || v > max => {
                Err(format!("{key} = {v} is out of range {min}..={max}"))
            }
            _ => Ok(()),
        };
        within("batch_size", self.batch_size.map(u64::from), 1, 1000)?;
        within("retry_attempts", self.retry_attempts.map(u64::from), 1, 100)?;
        for (key, value) in [
            ("retry_base_ms", self.retry_base_ms),
            ("retry_max_ms", self.retry_max_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("probe_max_ms", self.probe_max_ms),
            ("probe_timeout_ms", self.probe_timeout_ms),
            ("pull_interval_ms", self.pull_interval_ms),
        ] {
            within(key, value, 1, super::cli::MAX_MS)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<FileSettings>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        load(&path, true)
    }

    #[test]
    fn every_key_reads() {
        let settings = parse(
            "batch_size = 7\nserver_url = \"http://127.0.0.1:1\"\nmanual_sync = true\nhttp_listen = \"127.0.0.1:0\"\nlog = \"debug\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.batch_size, Some(7));
        assert_eq!(settings.manual_sync, Some(true));
        assert_eq!(settings.http_listen, Some("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn a_typo_names_the_key_and_the_file() {
        let error = parse("batch_sise = 7\n").unwrap_err();
        assert!(
            error.contains("batch_sise") && error.contains("config.toml"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let error = parse("batch_size = \"many\"\n").unwrap_err();
        assert!(error.contains("batch_size"), "{error}");
        let error = parse("batch_size = 0\n").unwrap_err();
        assert!(error.contains("batch_size = 0 is out of range"), "{error}");
        let error = parse("http_listen = \"somewhere\"\n").unwrap_err();
        assert!(error.contains("http_listen"), "{error}");
    }

    #[test]
    fn a_missing_file_is_fine_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        assert_eq!(load(&path, false), Ok(None));
        assert!(load(&path, true)
            .unwrap_err()
            .contains("cannot read config file"));
    }
}
