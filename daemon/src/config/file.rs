//! The config file: TOML, one key per setting, under the same names `--print-config` shows.
//! An unknown key or a bad value is an error that names the key and the file.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::resolve::Source;
use super::setting::Setting;
use super::table::TABLE;
use super::value::Value;

/// The file's keys, not yet taken by a setting.
#[derive(Debug, Default)]
pub(crate) struct ConfigFile {
    /// The file read, if any.
    pub(crate) path: Option<PathBuf>,
    table: toml::Table,
}

impl ConfigFile {
    /// Reads and parses `path`, refusing keys that name no setting. A missing file is empty
    /// unless it was asked for by name.
    pub(crate) fn load(path: &Path, required: bool) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(ConfigFile::default())
            }
            Err(source) => {
                return Err(ConfigError::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let bad = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        if let Some(key) = table.keys().find(|k| !TABLE.iter().any(|s| s.key == *k)) {
            let known: Vec<_> = TABLE.iter().map(|s| s.key).collect();
            return Err(bad(format!(
                "unknown key `{key}`; the keys are {}",
                known.join(", ")
            )));
        }
        Ok(ConfigFile {
            path: Some(path.to_path_buf()),
            table,
        })
    }

    /// Where a value from this file came from.
    pub(crate) fn source(&self) -> Source {
        self.path.clone().map_or(Source::Default, Source::File)
    }

    /// The file's value for `setting`, checked, if the file has one.
    pub(crate) fn take<T: Value>(&mut self, setting: &Setting) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.table.remove(setting.key) else {
            return Ok(None);
        };
        let bad = |message: String| ConfigError::File {
            path: self.path.clone().unwrap_or_default(),
            message,
        };
        let value = T::from_file(value).map_err(|e| bad(format!("{}: {e}", setting.key)))?;
        if let (Some(n), Some(range)) = (value.number(), &setting.range) {
            if !range.contains(&n) {
                return Err(bad(format!(
                    "{} = {n} is out of range {}..={}",
                    setting.key,
                    range.start(),
                    range.end()
                )));
            }
        }
        Ok(Some(value))
    }
}
