//! taskctl's command line (README, "taskctl"): every command, argument and flag with its
//! help text, and an example for each command.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ErrorKind};
use clap::{Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use tasksync_proto::events::EventFilter;
use tasksync_proto::SyncStatus;

/// How a task is named on the command line, for help texts.
const TASK_ARG_HELP: &str = "The task: its number as `list` shows it (1 to 6 digits), or its \
                             id or any unique prefix of the id";

/// Manage your tasks through the local tasksyncd daemon.
///
/// Tasks that are neither done nor deleted have a small number (shown by `list`); name a
/// task by that number or by any unique prefix of its id.
#[derive(Debug, Parser)]
#[command(
    name = "taskctl",
    version,
    about,
    after_help = "Examples:
  taskctl add Buy bread -d 'wholemeal, two loaves'
  taskctl list
  taskctl done 1
  taskctl show 0193a4f2
  taskctl --json list --open

Exit codes: 0 success, 1 refused (not found, invalid input, ambiguous) or sync failures,
2 bad usage, 3 the daemon cannot be reached, 4 sync could not reach the sync server."
)]
pub struct Args {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock, or
    /// $TMPDIR/tasksync-<uid>/tasksyncd.sock when XDG_RUNTIME_DIR is unset]
    #[arg(long, global = true, env = tasksync_proto::paths::SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print stable JSON instead of tables (a task is an object, a list an array)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Cmd,
}

impl Args {
    /// Parses the command line, exiting with clap's messages on bad usage, except that
    /// `--help` shows the default socket as it is for this user here (the static help, which
    /// the man page uses, states the rule), and an unknown argument (a title word starting
    /// with '-') gets an error that says to use `--`.
    pub fn parse_command_line() -> Args {
        let args: Vec<OsString> = std::env::args_os().collect();
        let default = tasksync_proto::paths::default_socket_path();
        let mut command = Args::command().mut_arg("socket", |arg| {
            arg.help(format!(
                "The daemon's socket [default: {}]",
                default.display()
            ))
        });
        let args = hoist_options(&mut command, args);
        let parsed = command
            .try_get_matches_from_mut(&args)
            .and_then(|mut matches| Args::from_arg_matches_mut(&mut matches));
        match parsed {
            Ok(args) => args,
            Err(error) => {
                if error.kind() == ErrorKind::UnknownArgument {
                    if let Some(message) = unknown_argument(&mut command, &error, &args) {
                        eprint!("{message}");
                        std::process::exit(2)
                    }
                }
                error.exit()
            }
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(tasksync_proto::paths::default_socket_path)
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a task; prints its number and id (--json: the task)
    #[command(
        override_usage = "taskctl add [OPTIONS] <TITLE>...",
        after_help = "Examples:
  taskctl add Buy bread
  taskctl add Buy milk +shop project:home due:tomorrow pri:H
  taskctl add 'Call the plumber' -d 'about the kitchen tap'
  taskctl add -d 'from the manual' -- Fix --the bug +x   (words after `--` are only title)

Dates (due:): 2026-12-24, 2026-12-24T17:00, today, tomorrow, yesterday, monday..sunday
(the next one), eod, eow, eom, 3d, 2w (from now); local time zone."
    )]
    Add {
        /// The title; several words need no quotes. Words +tag, project:P, due:WHEN and
        /// priority:H (or pri:H; H, M or L) set those fields instead
        #[arg(required_unless_present = "literal", num_args = 1.., value_name = "TITLE")]
        title: Vec<String>,
        /// Words after `--` are title words as they are, even +x or -x
        #[arg(last = true, value_name = "TITLE")]
        literal: Vec<String>,
        /// A longer description (newlines and tabs allowed)
        #[arg(short, long, value_name = "TEXT")]
        description: Option<String>,
        /// Create the task with this id (a UUID you chose), so that running the same `add`
        /// again is safe: it answers with the task made the first time
        #[arg(long, value_name = "UUID")]
        id: Option<uuid::Uuid>,
    },
    /// List open tasks by due date, then priority, then number: number, age, done, sync
    /// state, due, priority, project, tags, title (columns without a value are left out)
    #[command(
        alias = "ls",
        after_help = "Examples:
  taskctl list
  taskctl list +shop -later project:home due.before:eow
  taskctl list --search milk
  taskctl list --all --sync-status failed

Open tasks are those not done (and not deleted): the numbered working set. \"pending\" is
only ever a sync state: changes waiting to be sent (--sync-status pending)."
    )]
    List {
        /// Filter words: +tag, -tag (has not), project:P (P or below it), pri:H,
        /// due.before:WHEN, due.after:WHEN
        #[arg(value_name = "FILTER")]
        filter: Vec<String>,
        /// Include completed and deleted tasks
        #[arg(long)]
        all: bool,
        /// Only completed tasks
        #[arg(long, conflicts_with = "open")]
        done: bool,
        /// Only open tasks: not done, not deleted (the numbered working set; the default
        /// without --all or --done)
        #[arg(long, alias = "pending")]
        open: bool,
        /// Only tasks whose title or description contains TEXT (ignoring case)
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Only tasks in this sync state: pending, in-progress, synced, error or failed
        #[arg(long, value_name = "STATE", value_parser = parse_status)]
        sync_status: Option<SyncStatus>,
    },
    /// Show every field of one task, sync state included
    #[command(after_help = "Examples:
  taskctl show 3
  taskctl --json show 0193a4f2")]
    Show {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
    },
    /// Show a task's local history: every change of each field, newest first, with its old
    /// and new value, whether it was made here (local) or came from the server (remote), and
    /// `! lost` where a value lost a conflict between two devices, this one's or the other's
    /// (it is the old value of that line)
    #[command(after_help = "Examples:
  taskctl log 3
  taskctl --json log 0193a4f2")]
    Log {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
    },
    /// Revert this device's last change (of TASK, or of any task): a new edit that gives the
    /// fields it changed their earlier values, synced like any other; `undo` after `add`
    /// deletes the task, a deletion is not undone, and a second `undo` reverts the first
    #[command(after_help = "Examples:
  taskctl undo
  taskctl undo 3")]
    Undo {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: Option<String>,
    },
    /// Put back the value a `log` entry replaced (for a `! lost` entry: this device's value
    /// that lost a conflict), as a new edit that syncs like any other
    #[command(after_help = "Examples:
  taskctl log 3          # find the entry
  taskctl restore 3 42")]
    Restore {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
        /// The entry's number, as `taskctl log` shows it
        #[arg(value_name = "ENTRY")]
        entry: i64,
    },
    /// Change a task with words: +tag, -tag, project:P, due:WHEN, pri:H (an empty value
    /// clears: due:, project:, pri:); other words make a new title
    #[command(after_help = "Examples:
  taskctl modify 3 +urgent -later due:fri
  taskctl modify 3 due: project:
  taskctl modify 3 Buy oat milk pri:M")]
    Modify {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
        /// The change words (see above)
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
    /// Change a task's title, description or completion
    #[command(after_help = "Examples:
  taskctl edit 3 --title 'Buy oat milk'
  taskctl edit 3 -d 'two litres' --done
  taskctl edit 0193a4f2 --clear-description --undone")]
    Edit {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
        /// The new title
        #[arg(long, value_name = "TITLE")]
        title: Option<String>,
        /// The new description
        #[arg(short, long, value_name = "TEXT", conflicts_with = "clear_description")]
        description: Option<String>,
        /// Remove the description
        #[arg(long)]
        clear_description: bool,
        /// Mark completed
        #[arg(long, conflicts_with = "undone")]
        done: bool,
        /// Mark not completed (the task gets a number again)
        #[arg(long)]
        undone: bool,
    },
    /// Mark a task completed (it leaves the numbered working set)
    #[command(after_help = "Example:
  taskctl done 3")]
    Done {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
    },
    /// Delete a task (soft: it stays as a tombstone that syncs)
    #[command(
        alias = "delete",
        after_help = "Example:
  taskctl rm 3"
    )]
    Rm {
        #[arg(help = TASK_ARG_HELP, value_name = "TASK")]
        id: String,
    },
    /// Import Taskwarrior's `task export` JSON: new tasks are created, changed ones updated,
    /// the same ones left alone; all or nothing
    #[command(after_help = "Examples:
  task export > tasks.json && taskctl import tasks.json
  task export | taskctl import

Every task keeps its uuid as its id, so importing the same file again changes nothing. A file
that cannot be read as a whole is refused with the line or element at fault.")]
    Import {
        /// The export to read; stdin when `-` or not given
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print every task (completed and deleted ones too) as a JSON array `task import` reads
    #[command(after_help = "Example:
  taskctl export > tasks.json && task import tasks.json")]
    Export,
    /// Show the daemon's state: connectivity, queue, device, version
    #[command(after_help = "Example:
  taskctl status")]
    Status,
    /// Flush the queue to the sync server and pull changes now; wait for the result
    #[command(after_help = "Example:
  taskctl sync || echo 'not everything synced'")]
    Sync,
    /// List queued operations, oldest first
    #[command(after_help = "Examples:
  taskctl queue
  taskctl queue --failed")]
    Queue {
        /// Only dead-lettered operations (rejected too often; see `retry`)
        #[arg(long)]
        failed: bool,
    },
    /// Send dead-lettered operations again
    #[command(
        override_usage = "taskctl retry <ID>\n       taskctl retry --all",
        after_help = "Examples:
  taskctl retry 3
  taskctl retry --all"
    )]
    Retry {
        /// A task (number, id or id prefix) or an operation id (or prefix), as `queue
        /// --failed` shows them
        #[arg(
            required_unless_present = "all",
            conflicts_with = "all",
            value_name = "ID"
        )]
        id: Option<String>,
        /// Every dead-lettered operation
        #[arg(long)]
        all: bool,
    },
    /// Print the bearer token of the daemon's HTTP API
    #[command(after_help = "Example:
  curl -H \"Authorization: Bearer $(taskctl api-token)\" 127.0.0.1:3000/api/tasks")]
    ApiToken,
    /// Stream events (current state, task changes, sync progress, connectivity) until
    /// interrupted; with --json, one object a line
    #[command(after_help = "Examples:
  taskctl --json watch | jq .event
  taskctl --json watch --events task,task_sync")]
    Watch {
        /// Only these events, comma-separated (status and reset always come): status, task,
        /// task_sync, conflict, connectivity, sync, batch_sent, batch_answered, pulled, reset
        #[arg(long, value_name = "NAMES", value_parser = parse_events)]
        events: Option<EventFilter>,
    },
    /// Print a shell completion script
    #[command(after_help = "Examples:
  taskctl completions bash > ~/.local/share/bash-completion/completions/taskctl
  taskctl completions zsh > ~/.zfunc/_taskctl
  taskctl completions fish > ~/.config/fish/completions/taskctl.fish
  taskctl completions powershell | Out-String | Invoke-Expression   (add to $PROFILE to keep)")]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print completion candidates for the words of a command line (the completion scripts
    /// call this; it asks the daemon briefly and prints nothing when it does not answer)
    #[command(
        name = "__complete",
        hide = true,
        after_help = "Example:
  taskctl __complete -- taskctl show ''"
    )]
    Complete {
        /// The command line's words up to the cursor, the word being completed last
        #[arg(raw = true, value_name = "WORDS")]
        words: Vec<String>,
    },
    /// Print taskctl's man page (roff), or write one page per command into a folder
    #[command(after_help = "Examples:
  taskctl man | man -l -
  taskctl man --out-dir ~/.local/share/man/man1")]
    Man {
        /// Write taskctl.1 and taskctl-COMMAND.1 into this folder instead of printing
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `list` and `modify` take words such as `-later` (not that tag), which clap would read as
/// options: their options (words starting with `--`, with a value if they take one, and `-h`)
/// are moved before the words, which follow a `--`, so `taskctl list -later --all` and
/// `taskctl modify 3 -later +now` mean what they say. Other command lines stay as they are.
pub fn hoist_options(command: &mut Command, args: Vec<OsString>) -> Vec<OsString> {
    command.build();
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The subcommand is the first word that is no global option (or the socket's path).
    let mut at = 1;
    while at < words.len() && words[at].starts_with('-') {
        at += if words[at] == "--socket" { 2 } else { 1 };
    }
    let Some(sub) = words
        .get(at)
        .filter(|w| ["list", "ls", "modify"].contains(&w.as_str()))
        .and_then(|w| command.find_subcommand(w))
    else {
        return args;
    };
    let takes_value = |word: &str| {
        let long = word.trim_start_matches('-');
        !word.contains('=')
            && sub
                .get_arguments()
                .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
    };
    let mut options: Vec<OsString> = Vec::new();
    let mut rest: Vec<OsString> = Vec::new();
    let mut i = at + 1;
    while i < args.len() {
        let word = &words[i];
        if word == "--" {
            rest.extend(args[i + 1..].iter().cloned());
            break;
        }
        if word.starts_with("--") || word == "-h" {
            options.push(args[i].clone());
            if takes_value(word) && i + 1 < args.len() {
                i += 1;
                options.push(args[i].clone());
            }
        } else {
            rest.push(args[i].clone());
        }
        i += 1;
    }
    let mut hoisted: Vec<OsString> = args[..=at].to_vec();
    hoisted.extend(options);
    if !rest.is_empty() {
        hoisted.push("--".into());
        hoisted.extend(rest);
    }
    hoisted
}

/// The message for an unknown argument of `add` (a title word such as `--the`): clap's own
/// suggests `--help` and prints a usage line with it; ours says that such words go after
/// `--`. `None` for other commands, whose unknown arguments clap explains well.
pub fn unknown_argument(
    command: &mut Command,
    error: &clap::Error,
    args: &[OsString],
) -> Option<String> {
    command.build();
    let bad = error
        .get(ContextKind::InvalidArg)
        .map(ToString::to_string)
        .unwrap_or_default();
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The subcommand is the first word that names one (global options come before it).
    let position = words.iter().position(|w| {
        command
            .get_subcommands()
            .any(|s| s.get_name() == w || s.get_all_aliases().any(|a| a == w))
    });
    let sub: Option<String> = position.and_then(|i| {
        command
            .find_subcommand(&words[i])
            .map(|s| s.get_name().to_string())
    });
    let (Some("add"), Some(at)) = (sub.as_deref(), position) else {
        return None;
    };
    let title = &words[at + 1..];
    let options = [
        "-d",
        "--description",
        "--id",
        "--json",
        "--socket",
        "-h",
        "--help",
    ];
    let plain = title.iter().all(|w| {
        !options
            .iter()
            .any(|o| w == o || w.starts_with(&format!("{o}=")))
    });
    let example = if plain && !title.is_empty() {
        let quoted: Vec<String> = title.iter().map(|w| shell_quote(w)).collect();
        format!("taskctl add -- {}", quoted.join(" "))
    } else {
        "taskctl add -d TEXT -- Fix --the bug".to_string()
    };
    let mut message = format!(
        "error: unexpected argument '{bad}'\n\n  tip: title words that start with '-' go after \
         `--`, which ends the options (options such as -d come before it):\n\n    {example}\n\n"
    );
    if let Some(add) = command.find_subcommand_mut("add") {
        let usage = add.render_usage();
        message.push_str(&format!("{usage}\n\nFor more information, try '--help'.\n"));
    }
    Some(message)
}

/// `word` as a shell would need it: unchanged when it is plain, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./:=+,@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn parse_events(text: &str) -> Result<EventFilter, String> {
    EventFilter::parse(text)
}

/// The flags of `edit` that change something, as its definition above has them.
fn edit_flags() -> Vec<String> {
    let command = Args::command();
    let Some(edit) = command.find_subcommand("edit") else {
        return Vec::new();
    };
    edit.get_arguments()
        .filter(|arg| !arg.is_positional() && !arg.is_global_set())
        .filter_map(|arg| {
            let long = arg.get_long()?;
            if long == "help" {
                return None;
            }
            Some(match arg.get_short() {
                Some(short) => format!("-{short}/--{long}"),
                None => format!("--{long}"),
            })
        })
        .collect()
}

/// Why `edit` without a change is refused, naming the flags that make one.
pub fn edit_needs_a_change() -> String {
    format!(
        "nothing to change: give at least one of {}",
        edit_flags().join(", ")
    )
}

fn parse_status(text: &str) -> Result<SyncStatus, String> {
    text.parse()
        .map_err(|e: tasksync_proto::UnknownName| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn every_argument_has_help_and_every_command_an_example() {
        let command = Args::command();
        for sub in command.get_subcommands() {
            let name = sub.get_name();
            let after = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(after.contains("taskctl"), "{name} has no example");
            assert!(sub.get_about().is_some(), "{name} has no description");
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{name} {id} has no help");
            }
        }
    }

    #[test]
    fn edit_without_a_change_names_exactly_its_flags() {
        let message = edit_needs_a_change();
        assert_eq!(
            message,
            "nothing to change: give at least one of --title, -d/--description, \
             --clear-description, --done, --undone"
        );
        // Every flag named parses as an argument of `edit`.
        for flag in edit_flags() {
            let long = flag.rsplit('/').next().unwrap_or_default().to_string();
            let mut words = vec!["taskctl".to_string(), "edit".into(), "1".into(), long];
            if ["--title", "--description"].contains(&words[3].as_str()) {
                words.push("x".into());
            }
            assert!(Args::try_parse_from(&words).is_ok(), "{words:?}");
        }
    }

    fn hoisted(line: &str) -> Vec<String> {
        let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
        hoist_options(&mut Args::command(), args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn options_of_list_and_modify_go_before_their_words() {
        assert_eq!(
            hoisted("taskctl list +a -b --all --search x -c"),
            ["taskctl", "list", "--all", "--search", "x", "--", "+a", "-b", "-c"]
        );
        assert_eq!(
            hoisted("taskctl --json modify 3 -b --json +a"),
            ["taskctl", "--json", "modify", "--json", "--", "3", "-b", "+a"]
        );
        assert_eq!(hoisted("taskctl list"), ["taskctl", "list"]);
        assert_eq!(
            hoisted("taskctl add -x list"),
            ["taskctl", "add", "-x", "list"]
        );
        assert_eq!(
            hoisted("taskctl --socket list list --opne"),
            ["taskctl", "--socket", "list", "list", "--opne"]
        );
        let parsed = Args::try_parse_from(hoisted("taskctl list -later --all pri:H")).unwrap();
        match parsed.command {
            Cmd::List { filter, all, .. } => {
                assert_eq!(filter, ["-later", "pri:H"]);
                assert!(all);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_takes_the_title_as_words() {
        let args = Args::try_parse_from(["taskctl", "add", "Buy", "bread", "-d", "x"]).unwrap();
        match args.command {
            Cmd::Add {
                title, description, ..
            } => {
                assert_eq!(title, ["Buy", "bread"]);
                assert_eq!(description.as_deref(), Some("x"));
            }
            other => panic!("{other:?}"),
        }
    }
}
