//! The daemon's settings and where each came from. Precedence: flags, then environment
//! variables, then the config file (`$XDG_CONFIG_HOME/tasksync/config.toml`, or `--config`),
//! then defaults. The command line is kept so that SIGHUP can re-read the file and merge again.

pub mod cli;
pub mod file;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use self::cli::Cli;
use self::file::FileSettings;
use crate::connectivity::ProbePolicy;
use crate::sync::backoff::RetryPolicy;
use crate::sync::SyncSettings;

/// The first wait between probes while offline.
const PROBE_MIN_MS: u64 = 1_000;
/// How long a local change waits for company before it is flushed.
const FLUSH_DEBOUNCE_MS: u64 = 50;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
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

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub db: PathBuf,
    pub socket: PathBuf,
    pub server_url: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub batch_size: u32,
    pub retry_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub request_timeout_ms: u64,
    pub probe_max_ms: u64,
    pub probe_timeout_ms: u64,
    pub pull_interval_ms: u64,
    pub manual_sync: bool,
    pub http_listen: Option<SocketAddr>,
    pub http_allow_remote: bool,
    pub api_token_file: Option<PathBuf>,
    pub log: String,
    /// Each key, its value as shown to people (tokens masked), and its source.
    pub shown: Vec<(&'static str, String, Source)>,
}

/// The HTTP API's settings, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// The bearer token's file.
    pub token_file: PathBuf,
}

/// The parsed command line, kept for reloads.
pub struct Loader {
    matches: ArgMatches,
    cli: Cli,
}

impl Loader {
    /// Parses the process's command line; exits with a usage message when it is wrong.
    pub fn from_env() -> Loader {
        let matches = Cli::command().get_matches();
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => Loader { matches, cli },
            Err(e) => e.exit(),
        }
    }

    /// Parses `args` (the program name first).
    pub fn try_from_args<I, T>(args: I) -> Result<Loader, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        Ok(Loader { matches, cli })
    }

    /// `--print-config` was given.
    pub fn print_only(&self) -> bool {
        self.cli.print_config
    }

    /// Reads the config file (again) and merges it with the command line and environment.
    pub fn load(&self) -> Result<Settings, String> {
        let (config_path, required) = match &self.cli.config {
            Some(path) => (Some(absolute(path.clone())), true),
            None => (default_config_path(), false),
        };
        let loaded = match &config_path {
            Some(path) => file::load(path, required)?,
            None => None,
        };
        let file_path = loaded.as_ref().and(config_path.clone());
        let file = loaded.unwrap_or_default();
        let mut r = Resolver {
            matches: &self.matches,
            file_path: file_path.as_deref(),
            shown: Vec::new(),
        };
        let cli = &self.cli;
        let FileSettings {
            db,
            socket,
            server_url,
            token,
            token_file,
            ca_file,
            batch_size,
            retry_attempts,
            retry_base_ms,
            retry_max_ms,
            request_timeout_ms,
            probe_max_ms,
            probe_timeout_ms,
            pull_interval_ms,
            manual_sync,
            http_listen,
            http_allow_remote,
            api_token_file,
            log,
        } = file;

        let db = r.pick(
            "db",
            "db",
            "--db",
            "TASKSYNC_DB",
            cli.db.clone(),
            db,
            default_db_path,
            show_path,
        );
        let socket = r.pick(
            "socket",
            "socket",
            "--socket",
            "TASKSYNC_SOCKET",
            cli.socket.clone(),
            socket,
            tasksync_proto::paths::default_socket_path,
            show_path,
        );
        let server_url = r.pick_optional(
            "server_url",
            "server_url",
            "--server",
            "TASKSYNC_SERVER_URL",
            cli.server_url.clone().filter(|s| !s.trim().is_empty()),
            server_url.filter(|s| !s.trim().is_empty()),
            |s| format!("{s:?}"),
        );
        let token = r.pick_optional(
            "token",
            "token",
            "--token",
            "TASKSYNC_TOKEN",
            cli.token.clone(),
            token,
            |_| "\"********\"".into(),
        );
        let token_file = r.pick_optional(
            "token_file",
            "token_file",
            "--token-file",
            "TASKSYNC_TOKEN_FILE",
            cli.token_file.clone(),
            token_file,
            show_path,
        );
        let ca_file = r.pick_optional(
            "ca_file",
            "ca_file",
            "--ca-file",
            "TASKSYNC_CA_FILE",
            cli.ca_file.clone(),
            ca_file,
            show_path,
        );
        let token = match (token, token_file) {
            (Some(token), _) => Some(token).filter(|t| !t.is_empty()),
            (None, Some(path)) => Some(read_token(&path)?),
            (None, None) => None,
        };
        let batch_size = r.number(
            "batch_size",
            "--batch-size",
            "SYNC_BATCH_SIZE",
            cli.batch_size,
            batch_size,
            50,
        );
        let retry_attempts = r.number(
            "retry_attempts",
            "--retry-attempts",
            "SYNC_RETRY_ATTEMPTS",
            cli.retry_attempts,
            retry_attempts,
            3,
        );
        let retry_base_ms = r.number(
            "retry_base_ms",
            "--retry-base-ms",
            "TASKSYNC_RETRY_BASE_MS",
            cli.retry_base_ms,
            retry_base_ms,
            500,
        );
        let retry_max_ms = r.number(
            "retry_max_ms",
            "--retry-max-ms",
            "TASKSYNC_RETRY_MAX_MS",
            cli.retry_max_ms,
            retry_max_ms,
            300_000,
        );
        let request_timeout_ms = r.number(
            "request_timeout_ms",
            "--request-timeout-ms",
            "TASKSYNC_REQUEST_TIMEOUT_MS",
            cli.request_timeout_ms,
            request_timeout_ms,
            10_000,
        );
        let probe_max_ms = r.number(
            "probe_max_ms",
            "--probe-max-ms",
            "TASKSYNC_PROBE_MAX_MS",
            cli.probe_max_ms,
            probe_max_ms,
            30_000,
        );
        let probe_timeout_ms = r.number(
            "probe_timeout_ms",
            "--probe-timeout-ms",
            "TASKSYNC_PROBE_TIMEOUT_MS",
            cli.probe_timeout_ms,
            probe_timeout_ms,
            2_000,
        );
        let pull_interval_ms = r.number(
            "pull_interval_ms",
            "--pull-interval-ms",
            "TASKSYNC_PULL_INTERVAL_MS",
            cli.pull_interval_ms,
            pull_interval_ms,
            30_000,
        );
        let manual_sync = r.pick_flag(
            "manual_sync",
            "--manual-sync",
            "TASKSYNC_MANUAL_SYNC",
            cli.manual_sync,
            manual_sync,
        );
        let http_listen = r.pick_optional(
            "http_listen",
            "http_listen",
            "--http",
            "TASKSYNC_HTTP",
            cli.http_listen,
            http_listen,
            |a| format!("\"{a}\""),
        );
        let http_allow_remote = r.pick_flag(
            "http_allow_remote",
            "--http-allow-remote",
            "TASKSYNC_HTTP_ALLOW_REMOTE",
            cli.http_allow_remote,
            http_allow_remote,
        );
        let api_token_file = r.pick_optional(
            "api_token_file",
            "api_token_file",
            "--api-token-file",
            "TASKSYNC_API_TOKEN_FILE",
            cli.api_token_file.clone(),
            api_token_file,
            show_path,
        );
        let log = r.pick(
            "log",
            "log",
            "--log",
            "RUST_LOG",
            cli.log.clone(),
            log,
            || "info".to_string(),
            |s| format!("{s:?}"),
        );
        if let Some(token) = &token {
            if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(
                    "token: only visible ASCII characters can travel in an Authorization header \
                            (is there a trailing newline or carriage return?)"
                        .into(),
                );
            }
        }
        if let Some(url) = &server_url {
            crate::sync::client::check_url(url).map_err(|e| format!("server_url: {e}"))?;
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(format!("log: {log:?} is not a log filter: {e}"));
        }
        if http_allow_remote && http_listen.is_none() {
            return Err(
                "http_allow_remote is set but the HTTP API is off: give --http (http_listen) too"
                    .into(),
            );
        }
        let shown = r.shown;
        Ok(Settings {
            config_file: file_path.clone(),
            db: absolute(db),
            socket: absolute(socket),
            server_url,
            token,
            ca_file: ca_file.map(absolute),
            batch_size,
            retry_attempts,
            retry_base_ms,
            retry_max_ms,
            request_timeout_ms,
            probe_max_ms,
            probe_timeout_ms,
            pull_interval_ms,
            manual_sync,
            http_listen,
            http_allow_remote,
            api_token_file: api_token_file.map(absolute),
            log,
            shown,
        })
    }
}

/// Picks each setting from the first place that has it, noting where.
struct Resolver<'a> {
    matches: &'a ArgMatches,
    file_path: Option<&'a Path>,
    shown: Vec<(&'static str, String, Source)>,
}

impl Resolver<'_> {
    /// Where clap's value for `id` came from, if it has one.
    fn cli_source(&self, id: &str, flag: &'static str, env: &'static str) -> Option<Source> {
        match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) => Some(Source::Flag(flag)),
            Some(ValueSource::EnvVariable) => Some(Source::Env(env)),
            _ => None,
        }
    }

    fn file_source(&self) -> Source {
        self.file_path
            .map_or(Source::Default, |p| Source::File(p.to_path_buf()))
    }

    #[allow(clippy::too_many_arguments)]
    fn pick<T>(
        &mut self,
        key: &'static str,
        id: &str,
        flag: &'static str,
        env: &'static str,
        cli: Option<T>,
        file: Option<T>,
        default: impl FnOnce() -> T,
        show: impl Fn(&T) -> String,
    ) -> T {
        let (value, source) = match (cli, file) {
            (Some(v), _) => (
                v,
                self.cli_source(id, flag, env).unwrap_or(Source::Flag(flag)),
            ),
            (None, Some(v)) => (v, self.file_source()),
            (None, None) => (default(), Source::Default),
        };
        self.shown.push((key, show(&value), source));
        value
    }

    /// A numeric setting with a default, shown as the number.
    fn number<T: fmt::Display>(
        &mut self,
        key: &'static str,
        flag: &'static str,
        env: &'static str,
        cli: Option<T>,
        file: Option<T>,
        default: T,
    ) -> T {
        self.pick(
            key,
            key,
            flag,
            env,
            cli,
            file,
            || default,
            |v| v.to_string(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn pick_optional<T>(
        &mut self,
        key: &'static str,
        id: &str,
        flag: &'static str,
        env: &'static str,
        cli: Option<T>,
        file: Option<T>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        let (value, source) = match (cli, file) {
            (Some(v), _) => (
                Some(v),
                self.cli_source(id, flag, env).unwrap_or(Source::Flag(flag)),
            ),
            (None, Some(v)) => (Some(v), self.file_source()),
            (None, None) => (None, Source::Default),
        };
        let text = value.as_ref().map_or_else(|| "(not set)".to_string(), show);
        self.shown.push((key, text, source));
        value
    }

    /// A switch: on if given as a flag or environment variable, else as the file says.
    fn pick_flag(
        &mut self,
        key: &'static str,
        flag: &'static str,
        env: &'static str,
        cli: bool,
        file: Option<bool>,
    ) -> bool {
        let given = self.cli_source(key, flag, env);
        let (value, source) = match (given, file) {
            (Some(source), _) => (cli, source),
            (None, Some(v)) => (v, self.file_source()),
            (None, None) => (false, Source::Default),
        };
        self.shown.push((key, value.to_string(), source));
        value
    }
}

fn show_path(path: &impl AsRef<Path>) -> String {
    format!("{:?}", path.as_ref().display().to_string())
}

/// Reads a token from its file: the first line, trimmed.
fn read_token(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("token_file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("token_file {} is empty", path.display()));
    }
    Ok(token)
}

impl Settings {
    /// Whether the sync token came from the `--token` flag, where every user of the machine
    /// can read it (`ps`, `/proc/PID/cmdline`).
    pub fn token_from_flag(&self) -> bool {
        self.shown
            .iter()
            .any(|(key, _, source)| *key == "token" && matches!(source, Source::Flag(_)))
    }

    /// The sync engine's settings.
    pub fn sync_settings(&self) -> SyncSettings {
        SyncSettings {
            server: self.server_url.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
            batch_size: self.batch_size as usize,
            max_attempts: self.retry_attempts,
            retry: RetryPolicy {
                base: Duration::from_millis(self.retry_base_ms),
                max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
            },
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            probe: ProbePolicy {
                min: Duration::from_millis(PROBE_MIN_MS.min(self.probe_max_ms)),
                max: Duration::from_millis(self.probe_max_ms),
                timeout: Duration::from_millis(self.probe_timeout_ms),
            },
            pull_interval: Duration::from_millis(self.pull_interval_ms),
            flush_debounce: Duration::from_millis(FLUSH_DEBOUNCE_MS),
            automatic: !self.manual_sync,
            ..SyncSettings::default()
        }
    }

    /// The HTTP API's settings: `None` while it is off, an error for an address it must not
    /// listen on or a token file that cannot be placed.
    pub fn http_settings(&self) -> Result<Option<HttpSettings>, String> {
        let Some(listen) = self.http_listen else {
            return Ok(None);
        };
        if !is_loopback(listen.ip()) && !self.http_allow_remote {
            return Err(format!(
                "refusing to serve the HTTP API on {listen}: it is not a loopback address, so \
                 other machines could reach it. Use 127.0.0.1:PORT, or add --http-allow-remote \
                 if you really want that"
            ));
        }
        let token_file = match self
            .api_token_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => path,
            None => default_token_path().ok_or(
                "cannot tell where to keep the HTTP API token: neither XDG_CONFIG_HOME nor HOME \
                 is set; give --api-token-file PATH",
            )?,
        };
        Ok(Some(HttpSettings {
            listen,
            token_file: absolute(token_file),
        }))
    }

    /// The settings as `--print-config` shows them: TOML a config file could hold, each line
    /// saying where its value came from. Tokens are masked.
    pub fn describe(&self) -> String {
        let file = self
            .config_file
            .as_ref()
            .map_or("none".to_string(), |p| p.display().to_string());
        let mut out = format!(
            "# tasksyncd {} settings (config file: {file})\n",
            env!("CARGO_PKG_VERSION")
        );
        let width = self
            .shown
            .iter()
            .map(|(k, v, _)| k.len() + v.len() + 3)
            .max()
            .unwrap_or(0);
        for (key, value, source) in &self.shown {
            let line = if value == "(not set)" {
                format!("# {key} = (not set)")
            } else {
                format!("{key} = {value}")
            };
            out.push_str(&format!("{line:<width$}  # {source}\n", width = width + 2));
        }
        out
    }

    /// Settings that differ from `new` and only take effect after a restart.
    pub fn needs_restart(&self, new: &Settings) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.db != new.db {
            keys.push("db");
        }
        if self.socket != new.socket {
            keys.push("socket");
        }
        if self.http_listen != new.http_listen || self.http_allow_remote != new.http_allow_remote {
            keys.push("http_listen");
        }
        if self.api_token_file != new.api_token_file {
            keys.push("api_token_file");
        }
        keys
    }
}

/// `$XDG_CONFIG_HOME/tasksync/config.toml`, else `~/.config/tasksync/config.toml`
/// (Windows: `%APPDATA%\tasksync\config.toml`).
fn default_config_path() -> Option<PathBuf> {
    config_home().map(|dir| dir.join("tasksync").join("config.toml"))
}

/// `$XDG_DATA_HOME/tasksync/tasks.db`, else `~/.local/share/tasksync/tasks.db` (Windows:
/// `%LOCALAPPDATA%\tasksync\tasks.db`), else `./tasks.db` when no home is known.
fn default_db_path() -> PathBuf {
    match data_home() {
        Some(dir) => dir.join("tasksync").join("tasks.db"),
        None => PathBuf::from("tasks.db"),
    }
}

/// Where per-user config lives: the XDG folders on Unix; on Windows the roaming
/// `%APPDATA%` (FOLDERID_RoamingAppData, through the `dirs` crate).
#[cfg(unix)]
fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
}

#[cfg(windows)]
fn config_home() -> Option<PathBuf> {
    dirs::config_dir()
}

/// Where per-user data lives: `$XDG_DATA_HOME`, else `~/.local/share`; on Windows the local
/// (not roaming: the database is this machine's) `%LOCALAPPDATA%` (FOLDERID_LocalAppData).
#[cfg(unix)]
fn data_home() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })
}

#[cfg(windows)]
fn data_home() -> Option<PathBuf> {
    dirs::data_local_dir()
}

/// `$XDG_CONFIG_HOME/tasksync/api-token`, else `~/.config/tasksync/api-token`.
fn default_token_path() -> Option<PathBuf> {
    config_home().map(|dir| dir.join("tasksync").join("api-token"))
}

/// 127.0.0.0/8 and ::1, also written as an IPv4-mapped IPv6 address.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::cli::parse_listen_addr;
    use super::*;

    /// Settings from `args` plus a config file holding `file` (none when empty).
    fn settings(args: &[&str], file: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, file).unwrap();
        let path = path.display().to_string();
        let mut all = vec!["tasksyncd", "--config", &path];
        all.extend_from_slice(args);
        Loader::try_from_args(all)
            .map_err(|e| e.to_string())?
            .load()
    }

    fn source_of<'a>(settings: &'a Settings, key: &str) -> &'a Source {
        &settings.shown.iter().find(|(k, _, _)| *k == key).unwrap().2
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let s = settings(
            &["--batch-size", "9"],
            "batch_size = 7\nretry_attempts = 5\n",
        )
        .unwrap();
        assert_eq!(s.batch_size, 9);
        assert_eq!(source_of(&s, "batch_size"), &Source::Flag("--batch-size"));
        assert_eq!(s.retry_attempts, 5);
        assert!(matches!(source_of(&s, "retry_attempts"), Source::File(_)));
        assert_eq!(s.pull_interval_ms, 30_000);
        assert_eq!(source_of(&s, "pull_interval_ms"), &Source::Default);
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
            dash.token.as_deref(),
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
        assert!(s.manual_sync);
        assert_eq!(s.server_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.token.as_deref(), Some("s3cret"));
        let shown = s.describe();
        assert!(!shown.contains("s3cret"), "tokens are masked: {shown}");
        assert!(shown.contains("manual_sync = true"), "{shown}");
        let flag = settings(&["--manual-sync"], "manual_sync = false\n").unwrap();
        assert!(flag.manual_sync, "the flag wins");
    }

    #[test]
    fn a_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let file = format!("token_file = {:?}\n", path.display().to_string());
        assert_eq!(
            settings(&[], &file).unwrap().token.as_deref(),
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
    fn a_typo_in_the_file_is_an_error_naming_key_and_file() {
        let error = settings(&[], "batch_sise = 7\n").unwrap_err();
        assert!(
            error.contains("batch_sise") && error.contains("config.toml"),
            "{error}"
        );
    }

    #[test]
    fn an_explicit_config_file_must_exist() {
        let error = Loader::try_from_args(["tasksyncd", "--config", "/nonexistent/tasksync.toml"])
            .unwrap()
            .load()
            .unwrap_err();
        assert!(error.contains("/nonexistent/tasksync.toml"), "{error}");
    }

    #[test]
    fn http_is_off_by_default() {
        assert_eq!(settings(&[], "").unwrap().http_settings(), Ok(None));
    }

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
                .unwrap_err();
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
