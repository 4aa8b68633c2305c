//! Start-up and the main loop: settings, instance lock, endpoint, store, sync engine and listeners, then signals until a stop.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::App;
use crate::config::{Loader, Settings};
use crate::events::Events;
use crate::http::HttpApi;
use crate::ipc;
use crate::ipc::endpoint::Endpoint;
use crate::service::lock::{lock_path_for, InstanceLock};
use crate::service::notify;
use crate::service::shutdown::{self, Signal, Signals};
use crate::setup::{create_private_database, SetupError};
use crate::store::Store;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

type LogHandle = reload::Handle<EnvFilter, Registry>;

pub fn main() -> ExitCode {
    let loader = Loader::from_env();
    if loader.man_only() {
        use std::io::Write as _;
        let page = crate::config::cli::man_page();
        return match std::io::stdout().lock().write_all(&page) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tasksyncd: cannot write the man page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match loader.load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("tasksyncd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if loader.print_only() {
        print!("{}", settings.describe());
        return ExitCode::SUCCESS;
    }
    let json = settings.values.log_format == "json";
    let log = init_logging(&settings.values.log, json, &settings.values.db);
    if settings.token_from_flag() {
        tracing::warn!(
            "the sync token was given with --token, where other users of this machine can read \
             it in the process list; put it in a file readable only by you and name that with \
             token_file in the config file (or --token-file / TASKSYNC_TOKEN_FILE)"
        );
    }
    let started = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime);
    match started.and_then(|runtime| runtime.block_on(run(loader, settings, log))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tasksyncd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr: plain lines without timestamps under systemd's journal (which adds its
/// own), colours only on a terminal. The filter can be swapped on reload.
///
/// Started in the background from an interactive shell (`tasksyncd &`: stderr is a terminal
/// whose foreground is another process group), log lines would land over the user's prompt
/// and whatever they type. Then the daemon says once, on stderr, where its log goes, and
/// appends it to `tasksyncd.log` next to the database instead.
fn init_logging(filter: &str, json: bool, db: &std::path::Path) -> LogHandle {
    let (filter, handle) =
        reload::Layer::new(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")));
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = !journal && std::io::stderr().is_terminal();
    let file = (!journal && backgrounded_on_terminal())
        .then(|| background_log_file(db))
        .flatten();
    let to_journal = journal.then(|| log_layer(std::io::stderr, false, false, json));
    let to_terminal =
        (!journal && file.is_none()).then(|| log_layer(std::io::stderr, ansi, true, json));
    let to_file = file.map(|file| log_layer(std::sync::Mutex::new(file), false, true, json));
    tracing_subscriber::registry()
        .with(filter)
        .with(to_journal)
        .with(to_terminal)
        .with(to_file)
        .init();
    handle
}

/// One log output: JSON objects (with timestamps), or text with or without colour and time.
fn log_layer<S, W>(writer: W, ansi: bool, time: bool, json: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = fmt::layer().with_writer(writer);
    match (json, time) {
        (true, _) => layer.json().boxed(),
        (false, true) => layer.with_ansi(ansi).boxed(),
        (false, false) => layer.with_ansi(ansi).without_time().boxed(),
    }
}

/// The log file of a daemon started in the background (`tasksyncd.log` next to the
/// database, 0600 in the database's 0700 folder), announced in one line on stderr; `None`
/// (keep logging to stderr, and say why) when it cannot be opened.
fn background_log_file(db: &std::path::Path) -> Option<std::fs::File> {
    let path = db.with_file_name("tasksyncd.log");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let opened = crate::setup::create_private_dir(db)
        .map_err(|e| e.to_string())
        .and_then(|()| options.open(&path).map_err(|e| e.to_string()));
    match opened {
        Ok(file) => {
            eprintln!(
                "tasksyncd: running in the background; logging to {} (run it in the \
                 foreground, or with 2>FILE, to keep the log on stderr)",
                path.display()
            );
            Some(file)
        }
        Err(e) => {
            eprintln!(
                "tasksyncd: running in the background, but cannot open {} ({e}); logging to \
                 this terminal",
                path.display()
            );
            None
        }
    }
}

/// Whether stderr is the controlling terminal and another process group is in its
/// foreground: `tasksyncd &` from an interactive shell, or a job sent to the background.
#[cfg(unix)]
fn backgrounded_on_terminal() -> bool {
    if !std::io::stderr().is_terminal() {
        return false;
    }
    // SAFETY: both calls only read process state; tcgetpgrp fails (-1) for a terminal that
    // is not our controlling one, which is then no prompt of ours.
    let (foreground, ours) = unsafe { (libc::tcgetpgrp(libc::STDERR_FILENO), libc::getpgrp()) };
    foreground >= 0 && foreground != ours
}

#[cfg(not(unix))]
fn backgrounded_on_terminal() -> bool {
    false
}

/// Open files wanted: both connection caps (socket 1,024, TCP 256), plus the database, the
/// listeners and some slack.
const OPEN_FILES_WANTED: u64 = 4096;

async fn run(loader: Loader, mut settings: Settings, log: LogHandle) -> Result<(), SetupError> {
    let db = settings.values.db.clone();
    let socket = settings.values.socket.clone();
    let http_settings = settings.http_settings()?;
    let holder = format!("pid {}, socket {}", std::process::id(), socket.display());
    let mut signals = Signals::register().map_err(SetupError::Signals)?;
    tasksync_http::fds::raise_open_file_limit(OPEN_FILES_WANTED);

    create_private_database(&db)?;
    let _db_lock = InstanceLock::acquire(&lock_path_for(&db), &holder)?;
    let mut endpoint = Endpoint::claim(&socket, &holder).map_err(SetupError::Endpoint)?;

    let store = Arc::new(Store::open(&db)?);
    let events = Arc::new(Events::default());
    let (trigger, stop) = shutdown::channel();
    let pruning = tokio::spawn(prune_history(
        store.clone(),
        settings.values.history_days,
        stop.clone(),
    ));
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let sync = crate::sync::engine::spawn(
        store.clone(),
        events.clone(),
        metrics.clone(),
        settings.sync_settings(),
        stop.clone(),
    )?;
    // Bound before the IPC socket, so that once `taskctl` can connect the HTTP API answers too.
    let http = match &http_settings {
        Some(http) => Some(HttpApi::start(http).await?),
        None => None,
    };
    let listener = endpoint.listen().map_err(SetupError::Endpoint)?;
    if let Some(name) = endpoint.inherited() {
        tracing::info!("serving the socket passed by the service manager: {name}");
    }
    let served = endpoint.name();
    tracing::info!(
        "tasksyncd {} serving {served} (database {})",
        env!("CARGO_PKG_VERSION"),
        db.display()
    );
    match sync.server() {
        Some(server) => tracing::info!("syncing with {server}"),
        None => tracing::info!("no sync server configured: local only"),
    }
    let app = Arc::new(App {
        store,
        sync,
        events,
        api_token: http.as_ref().map(|api| api.token().to_string()),
        http: http.as_ref().map(|api| api.local_addr()),
        metrics,
        event_log: Default::default(),
    });
    let http_server = http.map(|api| tokio::spawn(api.serve(app.clone(), stop.clone())));
    let server = tokio::spawn(ipc::server::run(listener, app.clone(), stop));
    notify::ready("serving");

    loop {
        match signals.next().await.map_err(SetupError::Signals)? {
            Signal::Stop(name) => {
                tracing::info!("{name} received: shutting down");
                break;
            }
            Signal::Reload => settings = reload(&loader, settings, &app, &log).await,
        }
    }
    notify::stopping();
    trigger.trigger();
    if let Err(e) = pruning.await {
        tracing::error!("the history pruning task failed: {e}");
    }
    if let Err(e) = server.await {
        tracing::error!("the IPC server failed: {e}");
    }
    if let Some(http_server) = http_server {
        if let Err(e) = http_server.await {
            tracing::error!("the HTTP API failed: {e}");
        }
    }
    app.store.shut_down();
    tracing::info!("stopped");
    Ok(())
}

/// How often the local history is pruned after the prune at startup.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes the local history (entries older than `days` days, and beyond the newest ones of
/// each task) at startup and then hourly, as a request of its own to the writer: never on the
/// path of a command.
async fn prune_history(store: Arc<Store>, days: u32, mut stop: shutdown::Shutdown) {
    loop {
        match store.prune_history(days).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!("pruned {pruned} old history entries"),
            Err(e) => tracing::warn!("cannot prune the task history: {e}"),
        }
        tokio::select! {
            () = stop.requested() => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// SIGHUP: re-reads the config file. A bad file is logged and the current settings stay.
async fn reload(loader: &Loader, current: Settings, app: &App, log: &LogHandle) -> Settings {
    notify::reloading();
    let settings = match loader.load() {
        Ok(new) => {
            for key in current.needs_restart(&new) {
                tracing::warn!("{key} changed in the config file; it takes effect after a restart");
            }
            app.sync.reconfigure(new.sync_settings()).await;
            if new.values.log != current.values.log {
                if let Err(e) = EnvFilter::try_new(&new.values.log)
                    .map_err(|e| e.to_string())
                    .and_then(|filter| log.reload(filter).map_err(|e| e.to_string()))
                {
                    tracing::warn!("keeping the log filter {:?}: {e}", current.values.log);
                }
            }
            tracing::info!(
                "configuration reloaded{}",
                new.config_file
                    .as_ref()
                    .map_or(String::new(), |p| format!(" from {}", p.display()))
            );
            new
        }
        Err(e) => {
            tracing::error!("reload failed, keeping the current settings: {e}");
            current
        }
    };
    notify::ready("serving");
    settings
}
