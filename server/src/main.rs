//! `tasksync-server`: wiring only — configuration, logging, storage, listener, serve until a
//! signal; or one `user ...` command. Prints `listening on ADDR` to stdout once bound (tests
//! read the port from it).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use tasksync_proto::Timestamp;
use tasksync_server::config::{check_user_name, Command, LogFormat, UserCommand};
use tasksync_server::storage::{self, Storage, StorageError};
use tasksync_server::{auth, notify, server, shutdown, AppState, Config};
use tracing_subscriber::EnvFilter;

/// How often old op ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::Man) = config.command {
        let page = tasksync_server::config::man_page();
        return match std::io::stdout().lock().write_all(&page) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tasksync-server: cannot write the man page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tasksync-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match config.command.clone() {
        Some(Command::User(command)) => runtime.block_on(user_command(&config, command)),
        Some(Command::Man) => Ok(()),
        None => runtime.block_on(run(config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Said once, on stderr (the log goes there too).
            eprintln!("tasksync-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn open(config: &Config) -> Result<Arc<dyn Storage>, String> {
    let storage = config.storage()?;
    storage::open(&storage).await.map_err(|e| match &storage {
        storage::StorageConfig::Sqlite { path, .. } => {
            format!("cannot open database {}: {e}", path.display())
        }
        storage::StorageConfig::Postgres { .. } => {
            format!("cannot open the PostgreSQL database: {e}")
        }
    })
}

async fn run(config: Config) -> Result<(), String> {
    tracing::debug!(?config, "starting");
    // Every waiting live pull holds a socket: the common soft default (1,024 files) is
    // reached long before memory or CPU are.
    let open_files = tasksync_http::fds::raise_open_file_limit(u64::MAX);
    let max_connections = tasksync_http::fds::connection_cap(
        open_files,
        server::RESERVED_FILES,
        server::MAX_CONNECTIONS,
    );
    let storage = open(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let state = AppState::new(storage.clone(), &config);
    tokio::spawn(storage.watch_other_processes(state.notifier.clone()));
    tokio::spawn(notify::watch_credentials(
        storage.clone(),
        state.notifier.clone(),
    ));
    tokio::spawn(prune_loop(storage.clone(), config.op_retention_days));
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    drop(stdout);
    tracing::info!(
        %addr,
        storage = storage.backend(),
        single_user_token = config.token.is_some(),
        "serving"
    );
    if let Some(metrics) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(metrics)
            .await
            .map_err(|e| format!("cannot listen on {metrics} for metrics: {e}"))?;
        tracing::info!(%metrics, "serving /metrics");
        tokio::spawn(server::serve_metrics(listener, state.clone()));
    }
    tracing::debug!(max_connections, "connection cap");
    server::serve(listener, state, max_connections, shutdown::signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Forgets op ids older than the retention, now and every hour.
async fn prune_loop(storage: Arc<dyn Storage>, retention_days: u32) {
    let retention_ms = i64::from(retention_days) * 86_400_000;
    loop {
        let cutoff = Timestamp::from_millis(Timestamp::now().as_millis() - retention_ms);
        if let Some(cutoff) = cutoff {
            match storage.prune_applied_ops(cutoff).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(pruned = n, "forgot op ids older than {retention_days} days")
                }
                Err(error) => tracing::warn!("cannot prune old op ids: {error}"),
            }
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

async fn user_command(config: &Config, command: UserCommand) -> Result<(), String> {
    let storage = open(config).await?;
    let new_token = || auth::new_token().map_err(|e| format!("cannot draw a random token: {e}"));
    let failed = |e: StorageError| e.to_string();
    match command {
        UserCommand::Add { name } => {
            check_user_name(&name)?;
            let token = new_token()?;
            storage
                .add_user(&name, auth::digest(token.as_bytes()))
                .await
                .map_err(failed)?;
            println!("{token}");
            eprintln!("user {name} added; its token is printed above, once: keep it safe");
        }
        UserCommand::List => {
            for user in storage.list_users().await.map_err(failed)? {
                let token = if user.has_token { "token" } else { "no token" };
                println!("{}\t{}\t{token}", user.name, user.created_at);
            }
        }
        UserCommand::Remove { name } => {
            if !storage.remove_user(&name).await.map_err(failed)? {
                return Err(format!("no user named {name}"));
            }
            eprintln!("user {name} removed with its tasks; its devices now get 401");
        }
        UserCommand::Token { name } => {
            let token = new_token()?;
            if !storage
                .set_token(&name, auth::digest(token.as_bytes()))
                .await
                .map_err(failed)?
            {
                return Err(format!("no user named {name}"));
            }
            println!("{token}");
            eprintln!("new token for {name} printed above, once; the old one no longer works");
        }
    }
    Ok(())
}
