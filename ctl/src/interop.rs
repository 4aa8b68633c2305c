//! `taskctl import` and `taskctl export`: Taskwarrior's `task export` JSON in and out, through the mapping in `taskwarrior.rs`.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use tasksync_proto::codec::{FrameError, MAX_FRAME_LEN};
use tasksync_proto::ipc::{ErrorCode, ImportSummary, IpcError};
use tasksync_proto::{Client, ClientError};

use crate::output::{print_json, Output};
use crate::taskwarrior;

/// `import [FILE|-]`: reads a Taskwarrior export (stdin for `-` or no file), maps it, and
/// imports every task in one request, all or nothing; prints what happened.
pub(crate) async fn import(
    client: &mut Client,
    out: &Output,
    file: Option<&Path>,
) -> Result<(), ClientError> {
    let (name, text) = read_input(file)?;
    let tasks = taskwarrior::parse_export(&text)
        .map_err(|e| refused(format!("{name}: {e}; nothing was imported")))?;
    let count = tasks.len();
    let summary = client.import_tasks(tasks).await.map_err(|e| match e {
        ClientError::Frame(FrameError::TooLarge(bytes)) => refused(format!(
            "{name}: its {count} tasks make a request of {bytes} bytes, over the {} MiB limit \
             of one import; split the file and import the parts (nothing was imported)",
            MAX_FRAME_LEN >> 20
        )),
        other => other,
    })?;
    if out.json {
        print_json(&summary);
    } else {
        // A closed pipe only means nobody reads the line; the import stands.
        let _ = writeln!(std::io::stdout().lock(), "{}", summary_line(&summary));
    }
    Ok(())
}

/// `export`: every task, completed and deleted ones included, oldest first, as the JSON array
/// `task import` reads.
pub(crate) async fn export(client: &mut Client) -> Result<(), ClientError> {
    let mut tasks = client.list_tasks(true, None).await?;
    tasks.sort_by_key(|task| (task.created_at, task.id));
    print_json(&taskwarrior::to_export(&tasks));
    Ok(())
}

/// The input's name for messages, and its text.
fn read_input(file: Option<&Path>) -> Result<(String, String), ClientError> {
    let mut text = String::new();
    match file.filter(|path| path.as_os_str() != "-") {
        None if std::io::stdin().is_terminal() => Err(refused(
            "give the export as a file (taskctl import tasks.json) or pipe it in \
             (task export | taskctl import)"
                .into(),
        )),
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| refused(format!("cannot read the export from stdin: {e}")))?;
            Ok(("stdin".into(), text))
        }
        Some(path) => {
            let name = path.display().to_string();
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| refused(format!("cannot read {name}: {e}")))?;
            Ok((name, text))
        }
    }
}

fn refused(message: String) -> ClientError {
    ClientError::Daemon(IpcError::new(ErrorCode::InvalidInput, message))
}

/// `imported 5: 3 created, 1 updated, 1 unchanged`.
fn summary_line(summary: &ImportSummary) -> String {
    let total = summary.created + summary.updated + summary.unchanged;
    format!(
        "imported {total}: {} created, {} updated, {} unchanged",
        summary.created, summary.updated, summary.unchanged
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_counts_every_task() {
        let summary = ImportSummary {
            created: 3,
            updated: 1,
            unchanged: 2,
        };
        assert_eq!(
            summary_line(&summary),
            "imported 6: 3 created, 1 updated, 2 unchanged"
        );
    }
}
