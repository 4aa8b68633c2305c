//! taskctl: the command-line client of tasksyncd.
//!
//! Data goes to stdout (a short table, or stable JSON with `--json`), messages to stderr.
//! Exit codes: 0 success, 1 the daemon refused the command (or `sync` had failures), 2 bad
//! usage, 3 the daemon cannot be reached, 4 `sync` could not reach the sync server.

mod cli;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tasksync_proto::ipc::RetryTarget;
use tasksync_proto::{Client, ClientError, TaskPatch};

use cli::{Args, Cmd};

/// The daemon answered with an error (not found, invalid input, ...).
const EXIT_REFUSED: u8 = 1;
/// The daemon is not running or the connection broke.
const EXIT_UNREACHABLE: u8 = 3;
/// `sync` could not reach the sync server (or none is configured).
const EXIT_OFFLINE: u8 = 4;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("taskctl: cannot start: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SyncFailed) => ExitCode::from(EXIT_REFUSED),
        Ok(Outcome::Offline) => ExitCode::from(EXIT_OFFLINE),
        Err(e) => ExitCode::from(report(&args, &e)),
    }
}

async fn run(args: &Args) -> Result<Outcome, ClientError> {
    let socket = args.socket_path();
    let mut client =
        Client::connect(&socket, concat!("taskctl ", env!("CARGO_PKG_VERSION"))).await?;
    let out = output::Output { json: args.json };
    match &args.command {
        Cmd::Add { title, description } => {
            let new = tasksync_proto::NewTask {
                title: title.clone(),
                description: description.clone(),
            };
            let task = client.create_task(new).await?;
            out.created(&task);
        }
        Cmd::List { all, status } => out.tasks(&client.list_tasks(*all, *status).await?),
        Cmd::Show { id } => out.task(&client.get_task(id).await?),
        Cmd::Edit {
            id,
            title,
            description,
            clear_description,
            done,
            undone,
        } => {
            let patch = TaskPatch {
                title: title.clone(),
                description: if *clear_description {
                    Some(None)
                } else {
                    description.clone().map(Some)
                },
                completed: if *done {
                    Some(true)
                } else if *undone {
                    Some(false)
                } else {
                    None
                },
            };
            out.task(&client.update_task(id, patch).await?);
        }
        Cmd::Done { id } => {
            let patch = TaskPatch {
                completed: Some(true),
                ..TaskPatch::default()
            };
            out.task(&client.update_task(id, patch).await?);
        }
        Cmd::Rm { id } => out.task(&client.delete_task(id).await?),
        Cmd::Status => out.status(&client.status().await?, &socket),
        Cmd::Sync => {
            let report = client.sync().await?;
            out.sync(&report);
            if report.offline {
                return Ok(Outcome::Offline);
            }
            if !report.success {
                return Ok(Outcome::SyncFailed);
            }
        }
        Cmd::Queue { failed } => out.queue(&client.queue(*failed).await?),
        Cmd::Retry { id, all: _ } => {
            let target = match id {
                Some(id) => RetryTarget::Id(id.clone()),
                None => RetryTarget::All,
            };
            out.retried(client.retry(target).await?);
        }
        Cmd::ApiToken => out.api_token(&client.api_token().await?),
        Cmd::Watch => {
            let mut events = client.subscribe().await?;
            while let Some(event) = events.next_event().await? {
                out.event(&event);
            }
            return Err(ClientError::Closed);
        }
    }
    Ok(Outcome::Done)
}

/// How a command that reached the daemon ended.
enum Outcome {
    Done,
    /// `sync` reached the server but something failed or is dead-lettered.
    SyncFailed,
    /// `sync` could not reach the server.
    Offline,
}

/// Prints the error the way the user asked for and picks the exit code.
fn report(args: &Args, error: &ClientError) -> u8 {
    let (code, exit, message) = match error {
        ClientError::NotRunning { path, source } => (
            "unavailable",
            EXIT_UNREACHABLE,
            format!(
                "tasksyncd is not running at {} ({source}); start it with `tasksyncd` or `systemctl --user start tasksyncd`",
                path.display()
            ),
        ),
        ClientError::Daemon(e) => (e.code.as_str(), EXIT_REFUSED, e.message.clone()),
        other => ("unavailable", EXIT_UNREACHABLE, other.to_string()),
    };
    if args.json {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        eprintln!("{body}");
    } else {
        eprintln!("taskctl: {message}");
    }
    exit
}
