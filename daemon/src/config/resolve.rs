//! Takes each setting from the first place that has it: the flag or its environment variable,
//! then the config file, then the default. Remembers where, for `--print-config`.

use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::error::ConfigError;
use super::file::ConfigFile;
use super::setting::Setting;
use super::value::{Field, Value};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The long flag, with its dashes.
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A setting's value as `--print-config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
    /// The value as TOML.
    Toml(String),
    /// A secret: set, never printed.
    Secret,
    NotSet,
}

/// One line of `--print-config`.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) key: &'static str,
    pub(crate) shown: Shown,
    pub(crate) source: Source,
    pub(crate) restart: bool,
}

/// The places a setting can come from, and what was taken so far.
pub(crate) struct Resolver<'a> {
    pub(crate) matches: &'a ArgMatches,
    pub(crate) file: ConfigFile,
    pub(crate) resolved: Vec<Resolved>,
}

impl Resolver<'_> {
    /// The setting's value from the first place that has a non-empty one. A bad value in the
    /// file is an error even when a flag overrides it, so that a broken file is noticed.
    pub(crate) fn pick<F: Field>(
        &mut self,
        setting: &'static Setting,
        default: impl FnOnce() -> F,
    ) -> Result<F, ConfigError> {
        let from_file = self
            .file
            .take::<F::Raw>(setting)?
            .filter(|v| !v.is_blank())
            .map(|v| (v, self.file.source()));
        let from_cli = self
            .cli_source(setting)
            .and_then(|source| Some((self.matches.get_one::<F::Raw>(setting.key)?, source)))
            .filter(|(v, _)| !v.is_blank())
            .map(|(v, source)| (v.clone(), source));
        let (value, source) = match from_cli.or(from_file) {
            Some((v, source)) => (F::given(v), source),
            None => (default(), Source::Default),
        };
        let value = value.normalized();
        if let Some(text) = value.raw().and_then(Value::text) {
            (setting.check)(text).map_err(|message| ConfigError::Invalid {
                key: setting.key,
                origin: source.clone(),
                message,
            })?;
        }
        let shown = match value.raw() {
            None => Shown::NotSet,
            Some(v) => v.to_toml().map_or(Shown::Secret, Shown::Toml),
        };
        self.resolved.push(Resolved {
            key: setting.key,
            shown,
            source,
            restart: setting.restart,
        });
        Ok(value)
    }

    /// Where clap's value came from, if the flag or its environment variable gave it.
    fn cli_source(&self, setting: &'static Setting) -> Option<Source> {
        match self.matches.value_source(setting.key) {
            Some(ValueSource::CommandLine) => Some(Source::Flag(setting.flag)),
            Some(ValueSource::EnvVariable) => Some(Source::Env(setting.env)),
            _ => None,
        }
    }
}
