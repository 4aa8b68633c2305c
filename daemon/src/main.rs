//! tasksyncd: wires the parts together; nothing else.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tasksyncd::app::App;
use tasksyncd::config::Config;
use tasksyncd::http::HttpApi;
use tasksyncd::ipc;
use tasksyncd::service::lock::{lock_path_for, InstanceLock};
use tasksyncd::service::shutdown;
use tasksyncd::store::Store;
use tracing_subscriber::EnvFilter;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tasksyncd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tasksyncd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Error> {
    let db = config.db_path();
    let socket = config.socket_path();
    let http_settings = config.http_settings()?;
    let holder = format!("pid {}, socket {}", std::process::id(), socket.display());

    create_private_dir(&db)?;
    let _db_lock = InstanceLock::acquire(&lock_path_for(&db), &holder)?;
    ipc::socket::prepare_dir(&socket)?;
    let _socket_lock = InstanceLock::acquire(&lock_path_for(&socket), &holder)?;
    ipc::socket::remove_stale(&socket)?;

    let store = Arc::new(Store::open(&db)?);
    let (trigger, stop) = shutdown::channel();
    let sync = tasksyncd::sync::engine::spawn(store.clone(), config.sync_settings(), stop.clone())?;
    // Bound before the IPC socket, so that once `taskctl` can connect the HTTP API answers too.
    let http = match &http_settings {
        Some(settings) => Some(HttpApi::start(settings).await?),
        None => None,
    };
    let listener = ipc::socket::bind(&socket)?;
    tracing::info!(
        "tasksyncd {} serving {} (database {})",
        env!("CARGO_PKG_VERSION"),
        socket.display(),
        db.display()
    );

    if let Some(server) = sync.server() {
        tracing::info!("syncing with {server}");
    } else {
        tracing::info!("no sync server configured: local only");
    }
    let app = Arc::new(App {
        store,
        sync,
        socket,
        api_token: http.as_ref().map(|api| api.token().to_string()),
    });
    let http_server = http.map(|api| tokio::spawn(api.serve(app.clone(), stop.clone())));
    let server = tokio::spawn(ipc::server::run(listener, app.clone(), stop));
    let signal = shutdown::wait_for_signal().await?;
    tracing::info!("{signal} received: shutting down");
    trigger.trigger();
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

/// Creates the database's folder (0700) if it is missing.
fn create_private_dir(db: &Path) -> Result<(), Error> {
    let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("cannot create database folder {}: {e}", dir.display()).into())
}
