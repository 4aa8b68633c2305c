//! taskctl: the command-line client of tasksyncd.
//!
//! Data goes to stdout (a short table, or stable JSON with `--json`), messages to stderr.
//! Exit codes: 0 success, 1 the daemon refused the command (or `sync` had failures), 2 bad
//! usage, 3 the daemon cannot be reached, 4 `sync` could not reach the sync server.

mod cli;
mod complete;
mod dates;
mod display;
mod interop;
mod listing;
mod output;
mod table;
mod taskwarrior;
mod words;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use tasksync_proto::events::EventFilter;
use tasksync_proto::ipc::{ErrorCode, IpcError, RetryTarget};
use tasksync_proto::{Client, ClientError, Task, TaskPatch};

use cli::{Args, Cmd};

/// The daemon answered with an error (not found, invalid input, ...).
const EXIT_REFUSED: u8 = 1;
/// The daemon is not running or the connection broke.
const EXIT_UNREACHABLE: u8 = 3;
/// `sync` could not reach the sync server (or none is configured).
const EXIT_OFFLINE: u8 = 4;

fn main() -> ExitCode {
    let args = Args::parse_command_line();
    // Commands that need no daemon.
    match &args.command {
        Cmd::Completions { shell } => {
            // A reader that went away (`| head`) is no failure.
            let _ = complete::script(*shell, &mut std::io::stdout().lock());
            return ExitCode::SUCCESS;
        }
        Cmd::Man { out_dir } => return man(out_dir.as_deref()),
        Cmd::Complete { words } => {
            complete::candidates(words, &args.socket_path());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
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

/// `man`: the main page on stdout, or every page into `out_dir`.
fn man(out_dir: Option<&Path>) -> ExitCode {
    let command = Args::command();
    let result = match out_dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()),
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let place = out_dir.map_or("stdout".to_string(), |d| d.display().to_string());
            eprintln!("taskctl: cannot write the man page to {place}: {e}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

async fn run(args: &Args) -> Result<Outcome, ClientError> {
    if let Cmd::Edit {
        title: None,
        description: None,
        clear_description: false,
        done: false,
        undone: false,
        ..
    } = &args.command
    {
        // Refused here, before any connection, in words that name taskctl's flags.
        return Err(ClientError::Daemon(IpcError::new(
            ErrorCode::InvalidInput,
            cli::edit_needs_a_change(),
        )));
    }
    // Words are read before connecting: a bad one changes nothing, daemon or not.
    let now = dates::local_now();
    let read = Words::read(&args.command, &now).map_err(|e| refused(e.to_string()))?;
    let socket = args.socket_path();
    let mut client =
        Client::connect(&socket, concat!("taskctl ", env!("CARGO_PKG_VERSION"))).await?;
    let out = output::Output {
        json: args.json,
        terminal: display::Terminal::detect(),
        now,
    };
    match &args.command {
        Cmd::Add {
            description, id, ..
        } => {
            let Words::New(new) = read else {
                return Err(refused("add: no words read".into()));
            };
            let new = tasksync_proto::NewTask {
                description: description.clone(),
                id: *id,
                ..new
            };
            let task = client.create_task(new).await?;
            out.created(&task);
        }
        Cmd::Modify { id, .. } => {
            let Words::Patch(patch) = read else {
                return Err(refused("modify: no words read".into()));
            };
            let task = live_task(&mut client, id).await?;
            out.task(&client.update_task(&task.id.to_string(), patch).await?);
        }
        Cmd::List {
            filter: _,
            all,
            done,
            open,
            search,
            sync_status,
        } => {
            let Words::Filter(filter) = read else {
                return Err(refused("list: no words read".into()));
            };
            // Filters apply here, over every task the listing could name, so that the short
            // ids computed below are unique among all tasks a reference resolves against.
            let tasks = client.list_tasks(*all, None).await?;
            let ids: Vec<uuid::Uuid> = tasks.iter().map(|t| t.id).collect();
            let short: HashMap<uuid::Uuid, String> =
                ids.iter().copied().zip(output::short_ids(&ids)).collect();
            let needle = search.as_deref().map(str::to_lowercase);
            let open_only = *open || !(*all || *done);
            let mut shown: Vec<&Task> = tasks
                .iter()
                .filter(|t| !*done || t.completed)
                .filter(|t| !open_only || (!t.completed && !t.is_deleted))
                .filter(|t| sync_status.is_none_or(|s| t.sync_status == s))
                .filter(|t| needle.as_deref().is_none_or(|n| matches_search(t, n)))
                .filter(|t| filter.matches(t))
                .collect();
            listing::sort(&mut shown);
            out.tasks(&shown, &short);
            if !*done && search.is_none() && sync_status.is_none() && filter.is_empty() {
                // The whole working set was shown: numbers freed before it may be reused.
                let numbers = tasks.iter().filter_map(|t| t.number).collect();
                // Only bookkeeping: a daemon that cannot do it now does it after the next list.
                let _ = client.release_numbers(numbers).await;
            }
        }
        Cmd::Show { id } => out.task(&client.get_task(id).await?),
        Cmd::Log { id } => out.history(&client.task_history(id).await?),
        Cmd::Undo { id } => out.task(&client.undo(id.as_deref()).await?),
        Cmd::Restore { id, entry } => out.task(&client.restore_entry(id, *entry).await?),
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
                ..TaskPatch::default()
            };
            let task = live_task(&mut client, id).await?;
            out.task(&client.update_task(&task.id.to_string(), patch).await?);
        }
        Cmd::Done { id } => {
            let task = live_task(&mut client, id).await?;
            let label = output::label(&task);
            if task.completed {
                out.unchanged(&task, "is already done", &label);
            } else {
                let patch = TaskPatch {
                    completed: Some(true),
                    ..TaskPatch::default()
                };
                let task = client.update_task(&task.id.to_string(), patch).await?;
                out.changed(&task, "completed", &label);
            }
        }
        Cmd::Rm { id } => {
            let task = client.get_task(id).await?;
            let label = output::label(&task);
            if task.is_deleted {
                out.unchanged(&task, "is already deleted", &label);
            } else {
                let task = client.delete_task(&task.id.to_string()).await?;
                out.changed(&task, "deleted", &label);
            }
        }
        Cmd::Import { file } => interop::import(&mut client, &out, file.as_deref()).await?,
        Cmd::Export => interop::export(&mut client).await?,
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
        Cmd::Queue { failed } => out.queue(&client.queue(*failed).await?, *failed),
        Cmd::Retry { id, all: _ } => {
            let target = match id {
                Some(id) => RetryTarget::Id(id.clone()),
                None => RetryTarget::All,
            };
            out.retried(client.retry(target).await?);
        }
        Cmd::ApiToken => out.api_token(&client.api_token().await?),
        Cmd::Watch { events } => {
            let filter = events.clone().unwrap_or_default();
            return watch(client, &socket, &out, &filter).await;
        }
        Cmd::Completions { .. } | Cmd::Man { .. } | Cmd::Complete { .. } => {}
    }
    Ok(Outcome::Done)
}

/// The words of `add`, `modify` or `list`, read.
enum Words {
    None,
    New(tasksync_proto::NewTask),
    Patch(TaskPatch),
    Filter(words::Filter),
}

impl Words {
    fn read(command: &Cmd, now: &jiff::ZonedDateTime) -> Result<Words, words::WordError> {
        Ok(match command {
            Cmd::Add { title, literal, .. } => Words::New(words::new_task(title, literal, now)?),
            Cmd::Modify { words, .. } => Words::Patch(words::patch(words, now)?),
            Cmd::List { filter, .. } => Words::Filter(words::filter(filter, now)?),
            _ => Words::None,
        })
    }
}

/// Input refused by taskctl itself, reported (and exiting) as the daemon's refusals are.
fn refused(message: String) -> ClientError {
    ClientError::Daemon(IpcError::new(ErrorCode::InvalidInput, message))
}

/// Whether `needle` (lowercase) occurs in the task's title or description, ignoring case.
fn matches_search(task: &Task, needle: &str) -> bool {
    task.title.to_lowercase().contains(needle)
        || task
            .description
            .as_deref()
            .is_some_and(|d| d.to_lowercase().contains(needle))
}

/// The task `reference` names, refused if it is deleted: deleted tasks cannot be changed.
async fn live_task(client: &mut Client, reference: &str) -> Result<Task, ClientError> {
    let task = client.get_task(reference).await?;
    if task.is_deleted {
        let message = format!(
            "{} \"{}\" is deleted; deleted tasks cannot be changed",
            output::label(&task),
            display::cut(&display::escape(&task.title), 60)
        );
        return Err(ClientError::Daemon(IpcError::new(
            ErrorCode::NotFound,
            message,
        )));
    }
    Ok(task)
}

/// `watch`: streams events until interrupted. When the daemon goes away (a restart), says
/// so on stderr and reconnects as soon as it is back.
async fn watch(
    client: Client,
    socket: &Path,
    out: &output::Output,
    filter: &EventFilter,
) -> Result<Outcome, ClientError> {
    let mut client = Some(client);
    loop {
        let connected = match client.take() {
            Some(client) => client,
            None => reconnect(socket).await?,
        };
        let mut events = connected.subscribe().await?;
        loop {
            match events.next_event().await {
                Ok(Some(event)) if filter.allows(event.json().event.name()) => out.event(&event),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) if daemon_went_away(&e) => break,
                Err(e) => return Err(e),
            }
        }
        eprintln!("taskctl: the daemon went away; waiting for it to come back");
    }
}

/// Whether an error means the daemon stopped (or is stopping), rather than a real problem.
fn daemon_went_away(error: &ClientError) -> bool {
    match error {
        ClientError::Closed | ClientError::Frame(_) | ClientError::NotRunning { .. } => true,
        ClientError::Daemon(e) => e.code == tasksync_proto::ipc::ErrorCode::Unavailable,
        ClientError::Protocol(_) | ClientError::Refused(_) => false,
    }
}

/// Connects again, retrying every few hundred milliseconds while nothing answers; a daemon
/// that answers but refuses us (an incompatible version) ends the wait.
async fn reconnect(socket: &Path) -> Result<Client, ClientError> {
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        tokio::time::sleep(delay).await;
        match Client::connect(socket, concat!("taskctl ", env!("CARGO_PKG_VERSION"))).await {
            Ok(client) => {
                eprintln!("taskctl: reconnected to the daemon at {}", socket.display());
                return Ok(client);
            }
            Err(e) if daemon_went_away(&e) => {}
            Err(e) => return Err(e),
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
}

/// How a command that reached the daemon ended.
enum Outcome {
    Done,
    /// `sync` reached the server but something failed or is dead-lettered.
    SyncFailed,
    /// `sync` could not reach the server.
    Offline,
}

/// Why connecting to `socket` was refused with "permission denied": the socket or its folder
/// belongs to another user (the daemon keeps its folder 0700 and its socket 0600), so a daemon
/// may well run there, but not for us.
fn permission_denied(socket: &Path) -> String {
    let mut message = format!(
        "permission denied connecting to {}: the socket is not this user's",
        socket.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        // The folder can be looked at even when it cannot be entered; the socket only when
        // the folder lets us through.
        let owner = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .map(|m| format!("owner uid {}, mode {:04o}", m.uid(), m.mode() & 0o7777))
        };
        if let Some(folder) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
            match (owner(socket), owner(folder)) {
                (Some(socket_owner), _) => {
                    message = format!(
                        "permission denied connecting to {} ({socket_owner}): a tasksyncd of \
                         another user serves it and refuses this user",
                        socket.display()
                    );
                }
                (None, Some(folder_owner)) => {
                    message = format!(
                        "permission denied connecting to {}: its folder {} ({folder_owner}) \
                         lets only its owner in; a tasksyncd of that user may run there, but \
                         it will not serve this user",
                        socket.display(),
                        folder.display()
                    );
                }
                (None, None) => {}
            }
        }
    }
    message.push_str(
        "; run taskctl as the daemon's user, or start your own daemon (`tasksyncd`) and point \
         taskctl at its socket (--socket or TASKSYNC_SOCKET)",
    );
    message
}

/// Prints the error the way the user asked for and picks the exit code.
fn report(args: &Args, error: &ClientError) -> u8 {
    let (code, exit, message) = match error {
        ClientError::NotRunning { path, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            (
                ErrorCode::PermissionDenied,
                EXIT_UNREACHABLE,
                permission_denied(path),
            )
        }
        ClientError::NotRunning { path, source } => (
            ErrorCode::Unavailable,
            EXIT_UNREACHABLE,
            format!(
                "tasksyncd is not running at {} ({source}); start it with `tasksyncd` or `systemctl --user start tasksyncd`",
                path.display()
            ),
        ),
        // Kept on several lines: an ambiguous reference lists its candidates one a line.
        ClientError::Daemon(e) => (
            e.code,
            EXIT_REFUSED,
            display::escape_keeping_lines(&e.message).into_owned(),
        ),
        // The daemon would not serve us at all (another user, an incompatible version).
        ClientError::Refused(e) => (
            e.code,
            EXIT_UNREACHABLE,
            display::escape(&e.message).into_owned(),
        ),
        other => (ErrorCode::Unavailable, EXIT_UNREACHABLE, other.to_string()),
    };
    if args.json {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        eprintln!("{body}");
    } else {
        eprintln!("taskctl: {message}");
    }
    exit
}
