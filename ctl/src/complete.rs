//! Shell completion: clap_complete's static script for each shell, plus a small hook that asks
//! `taskctl __complete -- WORDS...` (hidden) for task numbers, `+tag`, `-tag` and `project:`
//! names, which come from the daemon within [`BUDGET`] or not at all.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::Shell;
use tasksync_proto::{Client, Task};

use crate::cli::Args;
use crate::display;

/// How long completion may wait for the daemon, connecting and listing together.
const BUDGET: Duration = Duration::from_millis(300);

/// Commands whose first argument is a task.
const TASK_COMMANDS: &[&str] = &[
    "show", "log", "undo", "restore", "edit", "modify", "done", "rm", "delete", "retry",
];

/// Options (global or of some command) that take a value, so the next word is no argument.
const VALUE_OPTIONS: &[&str] = &[
    "--socket",
    "-d",
    "--description",
    "--id",
    "--title",
    "--search",
    "--sync-status",
    "--events",
    "--out-dir",
];

/// bash: the current word is read from the line itself, since bash splits `project:x` at the
/// colon; candidates are given back without what precedes the word's last colon.
const BASH_HOOK: &str = r#"
_taskctl_with_tasks() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local -a words
    read -ra words <<< "$line"
    [[ "$line" =~ [[:space:]]$ ]] && words+=("")
    local cur="${words[${#words[@]}-1]}"
    local -a found
    local candidate
    while IFS= read -r candidate; do
        found+=("$candidate")
    done < <("${words[0]}" __complete -- "${words[@]}" 2>/dev/null)
    if [[ ${#found[@]} -gt 0 ]]; then
        if [[ "$cur" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then
            found=("${found[@]#"${cur%:*}:"}")
        fi
        COMPREPLY=("${found[@]}")
    else
        _taskctl "$@"
    fi
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _taskctl_with_tasks -o nosort -o bashdefault -o default taskctl
else
    complete -F _taskctl_with_tasks -o bashdefault -o default taskctl
fi
"#;

/// zsh: replaces the script's own dispatch (which calls `_taskctl` directly).
const ZSH_HOOK: &str = r#"_taskctl_with_tasks() {
    local -a found
    found=(${(f)"$(${words[1]} __complete -- "${(@)words[1,CURRENT]}" 2>/dev/null)"})
    if (( ${#found} )); then
        compadd -Q -- "${found[@]}"
    else
        _taskctl "$@"
    fi
}

if [ "$funcstack[1]" = "_taskctl" ]; then
    _taskctl_with_tasks "$@"
else
    compdef _taskctl_with_tasks taskctl
fi
"#;

/// The dispatch block clap_complete ends a zsh script with.
const ZSH_DISPATCH: &str = r#"if [ "$funcstack[1]" = "_taskctl" ]; then
    _taskctl "$@"
else
    compdef _taskctl taskctl
fi
"#;

/// fish: adds candidates for the commands that take tasks or words.
const FISH_HOOK: &str = "
complete -c taskctl -n '__fish_seen_subcommand_from show log undo restore edit modify done rm \
delete retry add list ls' -f -a '(taskctl __complete -- (commandline -opc) (commandline -ct))'
";

/// Writes the completion script for `shell`: clap_complete's, with the hook where there is one.
pub(crate) fn script(shell: Shell, out: &mut impl Write) -> std::io::Result<()> {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "taskctl", &mut text);
    let mut text = String::from_utf8_lossy(&text).into_owned();
    match shell {
        Shell::Bash => text.push_str(BASH_HOOK),
        Shell::Zsh => text = hook_zsh(&text),
        Shell::Fish => text.push_str(FISH_HOOK),
        _ => {}
    }
    out.write_all(text.as_bytes())
}

/// The zsh script with its dispatch going through the hook (appended if the block moved).
fn hook_zsh(script: &str) -> String {
    match script.rfind(ZSH_DISPATCH) {
        Some(at) => format!(
            "{}{ZSH_HOOK}{}",
            &script[..at],
            &script[at + ZSH_DISPATCH.len()..]
        ),
        None => format!("{script}\n{ZSH_HOOK}"),
    }
}

/// What the word being completed can be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// A task's number.
    Task,
    /// A field word of `add` (`+tag`, `project:`), or of `modify` / `list` (also `-tag`).
    Words { removals: bool },
}

/// Where the cursor is: the socket named on the line (if any), what to offer, and the word
/// typed so far. `words` are the line's words up to and with the current one, program first.
fn locate(words: &[String]) -> (Option<PathBuf>, Option<Want>, String) {
    let current = words.last().cloned().unwrap_or_default();
    let before = words.get(1..words.len().saturating_sub(1)).unwrap_or(&[]);
    let mut socket = None;
    let mut command: Option<&str> = None;
    let mut positionals = 0;
    let mut literal = false;
    let mut words_iter = before.iter().peekable();
    let mut value_pending = false;
    while let Some(word) = words_iter.next() {
        if value_pending {
            value_pending = false;
            continue;
        }
        if let Some(path) = word.strip_prefix("--socket=") {
            socket = Some(PathBuf::from(path));
            continue;
        }
        if word == "--socket" {
            socket = words_iter.peek().map(PathBuf::from);
        }
        if command.is_some() && word == "--" {
            literal = true;
            continue;
        }
        if VALUE_OPTIONS.contains(&word.as_str()) {
            value_pending = true;
            continue;
        }
        // `-tag` words of `modify` (after its task) and `list` are arguments, not options.
        let takes_tag_words =
            command == Some("modify") && positionals > 0 || matches!(command, Some("list" | "ls"));
        let is_option = word.starts_with("--") || (word.starts_with('-') && !takes_tag_words);
        if is_option {
            continue;
        }
        match command {
            None => command = Some(word.as_str()),
            Some(_) => positionals += 1,
        }
    }
    let after_value = value_pending || literal || current.starts_with("--");
    let want = match command {
        _ if after_value => None,
        Some(c) if TASK_COMMANDS.contains(&c) && positionals == 0 => Some(Want::Task),
        Some("modify" | "list" | "ls") => Some(Want::Words { removals: true }),
        Some("add") => Some(Want::Words { removals: false }),
        _ => None,
    };
    (socket, want, current)
}

/// The candidates for `want` that start with `current`, from `tasks` (the open ones).
fn matching(want: &Want, current: &str, tasks: &[Task]) -> Vec<String> {
    let mut found: Vec<String> = match want {
        Want::Task => {
            let mut numbers: Vec<u32> = tasks.iter().filter_map(|t| t.number).collect();
            numbers.sort_unstable();
            numbers.iter().map(u32::to_string).collect()
        }
        // Title words are free text: offer names only once a word has begun.
        Want::Words { .. } if current.is_empty() => Vec::new(),
        Want::Words { removals } => {
            let tags: BTreeSet<&str> = tasks
                .iter()
                .flat_map(|t| &t.tags)
                .map(String::as_str)
                .filter(|t| is_plain(t))
                .collect();
            let projects: BTreeSet<&str> = tasks
                .iter()
                .filter_map(|t| t.project.as_deref())
                .filter(|p| is_plain(p))
                .collect();
            let mut found: Vec<String> = tags.iter().map(|t| format!("+{t}")).collect();
            if *removals {
                found.extend(tags.iter().map(|t| format!("-{t}")));
            }
            found.extend(projects.iter().map(|p| format!("project:{p}")));
            found
        }
    };
    found.retain(|c| c.starts_with(current));
    found
}

/// Whether a name can be offered to a shell as it is: stored text with whitespace or control
/// characters (never valid, but possible in an old store) is left out, never written raw.
fn is_plain(name: &str) -> bool {
    !name.chars().any(char::is_whitespace) && display::escape(name) == name
}

/// `taskctl __complete -- WORDS...`: prints the candidates, one a line; nothing (and success)
/// when the daemon does not answer in time.
pub(crate) fn candidates(words: &[String], default_socket: &Path) {
    let (socket, want, current) = locate(words);
    let Some(want) = want else {
        return;
    };
    let socket = socket.unwrap_or_else(|| default_socket.to_path_buf());
    let Some(tasks) = open_tasks(&socket) else {
        return;
    };
    let mut text = String::new();
    for candidate in matching(&want, &current, &tasks) {
        text.push_str(&candidate);
        text.push('\n');
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The daemon's open tasks, or `None` if it does not answer within [`BUDGET`].
fn open_tasks(socket: &Path) -> Option<Vec<Task>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let list = async {
            let name = concat!("taskctl-complete ", env!("CARGO_PKG_VERSION"));
            let mut client = Client::connect(socket, name).await.ok()?;
            client.list_tasks(false, None).await.ok()
        };
        tokio::time::timeout(BUDGET, list).await.ok().flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Vec<String> {
        let mut words: Vec<String> = text.split(' ').map(String::from).collect();
        if text.ends_with(' ') {
            words.pop();
            words.push(String::new());
        }
        words
    }

    fn want(text: &str) -> Option<Want> {
        locate(&line(text)).1
    }

    #[test]
    fn the_cursor_position_says_what_to_offer() {
        let words = Some(Want::Words { removals: true });
        assert_eq!(want("taskctl show "), Some(Want::Task));
        assert_eq!(want("taskctl --json show 1"), Some(Want::Task));
        assert_eq!(want("taskctl --socket /s done "), Some(Want::Task));
        assert_eq!(want("taskctl show 3 "), None);
        assert_eq!(want("taskctl modify "), Some(Want::Task));
        assert_eq!(want("taskctl modify 3 +"), words);
        assert_eq!(want("taskctl modify 3 -a +"), words);
        assert_eq!(want("taskctl list -x +"), words);
        assert_eq!(want("taskctl list --search "), None);
        assert_eq!(
            want("taskctl add Buy -d x pro"),
            Some(Want::Words { removals: false })
        );
        assert_eq!(want("taskctl add -- +"), None, "after -- all is title");
        assert_eq!(want("taskctl status "), None);
        assert_eq!(want("taskctl "), None);
        let (socket, _, current) = locate(&line("taskctl --socket=/tmp/s show 1"));
        assert_eq!(socket, Some(PathBuf::from("/tmp/s")));
        assert_eq!(current, "1");
        let (socket, _, _) = locate(&line("taskctl --socket /tmp/t show "));
        assert_eq!(socket, Some(PathBuf::from("/tmp/t")));
    }

    fn task(number: u32, tags: &[&str], project: Option<&str>) -> Task {
        let mut task: Task = serde_json::from_value(serde_json::json!({
            "id": format!("01900000-0000-7000-8000-0000000000{number:02}"),
            "number": number,
            "title": "t",
            "description": null,
            "completed": false,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "is_deleted": false,
            "sync_status": "pending",
            "last_synced_at": null,
        }))
        .unwrap();
        task.tags = tags.iter().map(|t| t.to_string()).collect();
        task.project = project.map(String::from);
        task
    }

    #[test]
    fn candidates_are_numbers_tags_and_projects_that_fit_the_word() {
        let tasks = [
            task(12, &["shop", "x\u{1b}"], Some("home.garden")),
            task(3, &["shop", "work"], None),
        ];
        assert_eq!(matching(&Want::Task, "", &tasks), ["3", "12"]);
        assert_eq!(matching(&Want::Task, "1", &tasks), ["12"]);
        let add = Want::Words { removals: false };
        let modify = Want::Words { removals: true };
        assert_eq!(matching(&add, "+", &tasks), ["+shop", "+work"]);
        assert!(matching(&add, "", &tasks).is_empty());
        assert_eq!(matching(&add, "pro", &tasks), ["project:home.garden"]);
        assert!(matching(&add, "-", &tasks).is_empty());
        assert_eq!(matching(&modify, "-w", &tasks), ["-work"]);
    }

    #[test]
    fn every_script_keeps_clap_completions_and_adds_the_hook() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let mut out = Vec::new();
            script(shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("sync-status"), "{shell}");
            if shell != Shell::PowerShell {
                assert!(text.contains("__complete"), "{shell}");
            }
        }
        let mut out = Vec::new();
        script(Shell::Zsh, &mut out).unwrap();
        let zsh = String::from_utf8(out).unwrap();
        assert!(!zsh.contains(ZSH_DISPATCH), "the dispatch was replaced");
        assert!(zsh.contains("compdef _taskctl_with_tasks taskctl"));
    }
}
