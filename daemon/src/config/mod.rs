//! The daemon's settings and where each came from. Precedence: flags, then environment
//! variables, then the config file (`$XDG_CONFIG_HOME/tasksync/config.toml`, or `--config`),
//! then defaults. Every setting is described once, in `table.rs`. The command line is kept so
//! that SIGHUP can re-read the file and merge again.

pub(crate) mod cli;
mod error;
mod file;
mod paths;
mod print;
mod resolve;
mod setting;
mod table;
mod value;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;

pub(crate) use self::error::ConfigError;
use self::file::ConfigFile;
pub(crate) use self::resolve::Source;
use self::resolve::{Resolved, Resolver};
pub(crate) use self::table::Values;
pub(crate) use self::value::Secret;
use self::value::Value;
use crate::connectivity::ProbePolicy;
use crate::sync::backoff::RetryPolicy;
use crate::sync::SyncSettings;

/// The effective settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The config file that was read, if any.
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) values: Values,
    /// The sync server's token: `token`, else the first line of `token_file`.
    pub(crate) sync_token: Option<Secret>,
    /// Each setting as `--print-config` shows it, and where it came from.
    resolved: Vec<Resolved>,
}

/// The HTTP API's settings, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpSettings {
    pub(crate) listen: SocketAddr,
    /// The bearer token's file.
    pub(crate) token_file: PathBuf,
}

/// The parsed command line, kept for reloads.
pub(crate) struct Loader {
    matches: ArgMatches,
}

impl Loader {
    /// Parses the process's command line; exits with a usage message when it is wrong.
    pub(crate) fn from_env() -> Loader {
        Loader {
            matches: cli::command().get_matches(),
        }
    }

    /// Parses `args` (the program name first).
    #[cfg(test)]
    pub(crate) fn try_from_args<I, T>(args: I) -> Result<Loader, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = cli::command().try_get_matches_from(args)?;
        Ok(Loader { matches })
    }

    /// `--man` was given: print the man page, nothing else.
    pub(crate) fn man_only(&self) -> bool {
        self.matches.get_flag(cli::MAN)
    }

    /// `--print-config` was given.
    pub(crate) fn print_only(&self) -> bool {
        self.matches.get_flag(cli::PRINT_CONFIG)
    }

    /// Reads the config file (again) and merges it with the command line and environment.
    pub(crate) fn load(&self) -> Result<Settings, ConfigError> {
        let file = match self.matches.get_one::<PathBuf>(cli::CONFIG) {
            Some(path) => ConfigFile::load(&path.clone().normalized(), true)?,
            None => match paths::default_config_path() {
                Some(path) => ConfigFile::load(&path, false)?,
                None => ConfigFile::default(),
            },
        };
        let mut resolver = Resolver {
            matches: &self.matches,
            file,
            resolved: Vec::new(),
        };
        let values = Values::resolve(&mut resolver)?;
        let sync_token = match (&values.token, &values.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_token(path)?),
            (None, None) => None,
        };
        if let Some(token) = &sync_token {
            if !token.expose().bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(ConfigError::TokenCharacters);
            }
        }
        if values.http_allow_remote && values.http_listen.is_none() {
            return Err(ConfigError::RemoteWithoutHttp);
        }
        Ok(Settings {
            config_file: resolver.file.path,
            values,
            sync_token,
            resolved: resolver.resolved,
        })
    }
}

/// Reads a token from its file: the first line, trimmed.
fn read_token(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadToken {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(ConfigError::EmptyToken {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::from(token))
}

impl Settings {
    /// Where `key`'s value came from.
    pub(crate) fn source(&self, key: &str) -> Option<&Source> {
        self.resolved
            .iter()
            .find(|r| r.key == key)
            .map(|r| &r.source)
    }

    /// Whether the sync token came from the `--token` flag, where every user of the machine
    /// can read it (`ps`, `/proc/PID/cmdline`).
    pub(crate) fn token_from_flag(&self) -> bool {
        matches!(self.source("token"), Some(Source::Flag(_)))
    }

    /// The sync engine's settings; what the table does not set keeps the engine's default.
    pub(crate) fn sync_settings(&self) -> SyncSettings {
        let v = &self.values;
        let ms = Duration::from_millis;
        let defaults = SyncSettings::default();
        SyncSettings {
            server: v.server_url.clone(),
            token: self.sync_token.as_ref().map(|t| t.expose().to_string()),
            ca_file: v.ca_file.clone(),
            batch_size: v.batch_size as usize,
            max_attempts: v.retry_attempts,
            retry: RetryPolicy {
                base: ms(v.retry_base_ms),
                max: ms(v.retry_max_ms.max(v.retry_base_ms)),
            },
            request_timeout: ms(v.request_timeout_ms),
            probe: ProbePolicy {
                min: defaults.probe.min.min(ms(v.probe_max_ms)),
                max: ms(v.probe_max_ms),
                timeout: ms(v.probe_timeout_ms),
            },
            pull_interval: ms(v.pull_interval_ms),
            automatic: !v.manual_sync,
            ..defaults
        }
    }

    /// The HTTP API's settings: `None` while it is off, an error for an address it must not
    /// listen on or a token file that cannot be placed.
    pub(crate) fn http_settings(&self) -> Result<Option<HttpSettings>, ConfigError> {
        let Some(listen) = self.values.http_listen else {
            return Ok(None);
        };
        if !is_loopback(listen.ip()) && !self.values.http_allow_remote {
            return Err(ConfigError::RemoteHttp(listen));
        }
        let token_file = self
            .values
            .api_token_file
            .clone()
            .ok_or(ConfigError::NoTokenPath)?;
        Ok(Some(HttpSettings { listen, token_file }))
    }

    /// The settings as `--print-config` shows them: a config file that gives these same
    /// settings, each line saying where its value came from. Secrets are not printed.
    pub(crate) fn describe(&self) -> String {
        print::describe(self.config_file.as_deref(), &self.resolved)
    }

    /// Settings that differ from `new` and only take effect after a restart.
    pub(crate) fn needs_restart(&self, new: &Settings) -> Vec<&'static str> {
        self.resolved
            .iter()
            .zip(&new.resolved)
            .filter(|(old, new)| old.restart && old.shown != new.shown)
            .map(|(old, _)| old.key)
            .collect()
    }
}

/// 127.0.0.0/8 and ::1, also written as an IPv4-mapped IPv6 address.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from `args` plus a config file holding `file`.
    fn settings(args: &[&str], file: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, file).unwrap();
        load(&path, args)
    }

    /// Settings from `args` plus the config file `path`.
    fn load(path: &Path, args: &[&str]) -> Result<Settings, String> {
        let path = path.display().to_string();
        let mut all = vec!["tasksyncd", "--config", &path];
        all.extend_from_slice(args);
        Loader::try_from_args(all)
            .map_err(|e| e.to_string())?
            .load()
            .map_err(|e| e.to_string())
    }

    fn source_of<'a>(settings: &'a Settings, key: &str) -> &'a Source {
        settings.source(key).unwrap()
    }

    #[test]
    fn history_days_is_a_setting_like_the_others() {
        let s = settings(&[], "").unwrap();
        assert_eq!(s.values.history_days, 90);
        assert_eq!(source_of(&s, "history_days"), &Source::Default);
        let s = settings(&[], "history_days = 30\n").unwrap();
        assert_eq!(s.values.history_days, 30);
        assert!(matches!(source_of(&s, "history_days"), Source::File(_)));
        let s = settings(&["--history-days", "7"], "history_days = 30\n").unwrap();
        assert_eq!(s.values.history_days, 7);
        let error = settings(&[], "history_days = 0\n").unwrap_err();
        assert!(error.contains("history_days"), "{error}");
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let s = settings(
            &["--batch-size", "9"],
            "batch_size = 7\nretry_attempts = 5\n",
        )
        .unwrap();
        assert_eq!(s.values.batch_size, 9);
        assert_eq!(source_of(&s, "batch_size"), &Source::Flag("--batch-size"));
        assert_eq!(s.values.retry_attempts, 5);
        assert!(matches!(source_of(&s, "retry_attempts"), Source::File(_)));
        assert_eq!(s.values.pull_interval_ms, 30_000);
        assert_eq!(source_of(&s, "pull_interval_ms"), &Source::Default);
    }

    #[test]
    fn the_defaults_are_the_sync_engines() {
        let ours = settings(&[], "").unwrap().sync_settings();
        assert_eq!(
            format!("{ours:?}"),
            format!("{:?}", SyncSettings::default())
        );
    }

    #[test]
    fn a_token_given_as_a_flag_is_noticed() {
        let flag = settings(&["--token", "s3cret-s3cret"], "").unwrap();
        assert!(flag.token_from_flag());
        let file = settings(&[], "token = \"s3cret-s3cret\"\n").unwrap();
        assert!(!file.token_from_flag());
        assert!(!settings(&[], "").unwrap().token_from_flag());
        let dash = settings(&["--token", "-9s3cret-s3cret"], "").unwrap();
        assert_eq!(
            dash.sync_token.as_ref().map(Secret::expose),
            Some("-9s3cret-s3cret"),
            "a token may start with -"
        );
    }

    #[test]
    fn switches_and_options_come_from_the_file_too() {
        let s = settings(
            &[],
            "manual_sync = true\nserver_url = \"http://127.0.0.1:9\"\ntoken = \"s3cret\"\n",
        )
        .unwrap();
        assert!(s.values.manual_sync);
        assert_eq!(s.values.server_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.sync_token.as_ref().map(Secret::expose), Some("s3cret"));
        let shown = s.describe();
        assert!(!shown.contains("s3cret"), "tokens are not printed: {shown}");
        assert!(!format!("{s:?}").contains("s3cret"), "nor debugged");
        assert!(shown.contains("manual_sync = true"), "{shown}");
        let flag = settings(&["--manual-sync"], "manual_sync = false\n").unwrap();
        assert!(flag.values.manual_sync, "the flag wins");
    }

    #[test]
    fn an_empty_value_counts_as_not_given() {
        let s = settings(&["--server", " "], "server_url = \"http://127.0.0.1:9\"\n").unwrap();
        assert_eq!(s.values.server_url.as_deref(), Some("http://127.0.0.1:9"));
        assert!(matches!(source_of(&s, "server_url"), Source::File(_)));
    }

    #[test]
    fn a_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let file = format!("token_file = {:?}\n", path.display().to_string());
        assert_eq!(
            settings(&[], &file)
                .unwrap()
                .sync_token
                .as_ref()
                .map(Secret::expose),
            Some("from-file")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(settings(&[], &file).unwrap_err().contains("is empty"));
    }

    #[test]
    fn a_token_with_a_line_ending_is_refused() {
        let error = settings(&[], "token = \"abc\\r\"\n").unwrap_err();
        assert!(error.contains("token"), "{error}");
        let error = settings(&[], "pull_interval_ms = 99999999999999\n").unwrap_err();
        assert!(
            error.contains("pull_interval_ms") && error.contains("out of range"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_value_names_the_setting_and_where_it_came_from() {
        let error = settings(&["--server", "ftp://example.com"], "").unwrap_err();
        assert!(
            error.contains("server_url") && error.contains("flag --server"),
            "{error}"
        );
        let error = settings(&[], "log = \"=\"\n").unwrap_err();
        assert!(
            error.contains("log") && error.contains("config.toml"),
            "{error}"
        );
        let error = settings(&["--batch-size", "5"], "batch_size = 0\n").unwrap_err();
        assert!(
            error.contains("batch_size = 0 is out of range 1..=1000"),
            "a bad file is noticed even when a flag wins: {error}"
        );
        let error = settings(&[], "batch_size = \"many\"\n").unwrap_err();
        assert!(
            error.contains("config.toml: batch_size: invalid type"),
            "{error}"
        );
        let error = settings(&[], "http_listen = \"somewhere\"\n").unwrap_err();
        assert!(error.contains("http_listen: \"somewhere\""), "{error}");
    }

    #[test]
    fn a_typo_in_the_file_is_an_error_naming_key_and_file() {
        let error = settings(&[], "batch_sise = 7\n").unwrap_err();
        assert!(
            error.contains("batch_sise") && error.contains("config.toml"),
            "{error}"
        );
    }

    #[test]
    fn an_explicit_config_file_must_exist() {
        let error = load(Path::new("/nonexistent/tasksync.toml"), &[]).unwrap_err();
        assert!(
            error.contains("cannot read config file /nonexistent/tasksync.toml"),
            "{error}"
        );
        let default = ConfigFile::load(Path::new("/nonexistent/tasksync.toml"), false);
        assert!(default.unwrap().path.is_none(), "the default one need not");
    }

    #[test]
    fn printed_settings_read_back_as_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("sync token");
        std::fs::write(&token, "from-file\n").unwrap();
        let token = token.display().to_string();
        let first = settings(
            &[
                "--db",
                "relative/tasks.db",
                "--server",
                "http://127.0.0.1:9",
                "--token-file",
                &token,
                "--batch-size",
                "9",
                "--manual-sync",
                "--http",
                "localhost:0",
                "--log",
                "tasksyncd=debug,info",
            ],
            "retry_max_ms = 1234\nsocket = \"/tmp/a \\\"quoted\\\" folder/s.sock\"\n",
        )
        .unwrap();
        let printed = first.describe();
        let path = dir.path().join("printed.toml");
        std::fs::write(&path, &printed).unwrap();
        let second = load(&path, &[]).unwrap();
        assert_eq!(second.values, first.values, "{printed}");
        assert_eq!(second.sync_token, first.sync_token);
        assert_eq!(
            second.describe().lines().skip(1).count(),
            printed.lines().skip(1).count()
        );
        assert!(
            printed.contains(&format!(
                "api_token_file = {:?}",
                paths::default_token_path().unwrap().display().to_string()
            )),
            "real default paths: {printed}"
        );
        for line in printed.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.contains("  # "),
                "each value says where it came from: {line}"
            );
        }
    }

    #[test]
    fn a_secret_is_never_printed() {
        let s = settings(&["--token", "s3cret-s3cret"], "").unwrap();
        let printed = s.describe();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("# token = (a secret: not printed)")
                && printed.contains("flag --token"),
            "{printed}"
        );
    }

    #[test]
    fn a_reload_names_what_needs_a_restart() {
        let old = settings(&[], "db = \"/tmp/a.db\"\nbatch_size = 3\n").unwrap();
        let new = settings(
            &[],
            "db = \"/tmp/b.db\"\nbatch_size = 4\nhttp_listen = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        assert_eq!(old.needs_restart(&new), ["db", "http_listen"]);
        assert!(old.needs_restart(&old.clone()).is_empty());
    }

    #[test]
    fn http_is_off_by_default() {
        assert_eq!(settings(&[], "").unwrap().http_settings().unwrap(), None);
    }

    #[test]
    fn remote_addresses_need_the_flag() {
        let file = ["--api-token-file", "/tmp/t"];
        for local in [
            "127.0.0.1:0",
            "127.8.9.1:1",
            "[::1]:0",
            "[::ffff:127.0.0.1]:0",
        ] {
            let s = settings(&[&["--http", local][..], &file].concat(), "")
                .unwrap()
                .http_settings();
            assert!(matches!(s, Ok(Some(_))), "{local}: {s:?}");
        }
        for remote in ["0.0.0.0:0", "[::]:0", "192.168.1.2:3000"] {
            let error = settings(&[&["--http", remote][..], &file].concat(), "")
                .unwrap()
                .http_settings()
                .unwrap_err()
                .to_string();
            assert!(error.contains("--http-allow-remote"), "{error}");
            let allowed = settings(
                &[&["--http", remote, "--http-allow-remote"][..], &file].concat(),
                "",
            )
            .unwrap()
            .http_settings();
            assert!(matches!(allowed, Ok(Some(_))), "{remote}");
        }
        assert!(
            settings(&["--http-allow-remote"], "").is_err(),
            "needs --http"
        );
    }
}
