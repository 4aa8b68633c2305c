//! What taskctl prints for people: stored text never reaches the terminal raw, tables fit the
//! width they are given, and the completion scripts and man page are there.

use tasksync_e2e::{ctl_at, Daemon};

/// A title that would retitle the terminal (OSC 0 ... BEL) and clear it (CSI 2 J).
const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
/// The same title as taskctl must print it.
const EVIL_SHOWN: &str = "evil\\x1b]0;pwned\\x07\\x1b[2J";

/// Bytes a terminal would act on: every control character but the newline.
fn controls(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .filter(|&c| c.is_control() && c != '\n')
        .map(|c| c as u8)
        .collect()
}

#[test]
fn control_characters_are_refused_in_new_titles_and_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    for args in [
        vec!["add", EVIL],
        vec!["add", "fine", "-d", "clear\u{1b}[2J"],
        vec!["add", "\u{200b}"],
        vec!["add", "\u{feff} \u{200b}"],
    ] {
        let mut json = vec!["--json"];
        json.extend(&args);
        let run = daemon.ctl(&json);
        assert_eq!(run.code(), 1, "{args:?}");
        assert_eq!(run.json_error()["error"]["code"], "invalid_input");
        let plain = daemon.ctl(&args);
        assert_eq!(controls(&plain.output.stderr), b"", "{args:?}");
    }
    let ok = daemon
        .ctl(&["--json", "add", "fine", "-d", "line one\n\tline two"])
        .json();
    assert_eq!(ok["description"], "line one\n\tline two");
    let status = daemon.status();
    assert_eq!(status["pending"], 1, "only the valid task was queued");
}

/// Such a title can still come from an older store (or an older server): the display
/// escapes it, whatever let it in.
#[test]
fn list_and_show_escape_stored_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    daemon.ctl(&["add", "placeholder"]);
    daemon.stop_with(libc::SIGTERM);
    let db = rusqlite::Connection::open(&daemon.db).unwrap();
    db.execute(
        "UPDATE tasks SET title = ?1, description = ?2",
        [EVIL, "two\nlines\u{1b}[2J\u{9b}31m"],
    )
    .unwrap();
    drop(db);
    let daemon = daemon.restart().start();

    let list = daemon.ctl(&["list"]);
    assert_eq!(list.code(), 0, "{}", list.stderr());
    assert_eq!(controls(&list.output.stdout), b"", "{:?}", list.stdout());
    let row = list.stdout().lines().nth(1).unwrap().to_string();
    assert!(row.starts_with("1 "), "{row:?}");
    assert!(
        row.ends_with(&format!("  [ ]   pending  {EVIL_SHOWN}")),
        "{row:?}"
    );

    let show = daemon.ctl(&["show", "1"]);
    assert_eq!(controls(&show.output.stdout), b"", "{:?}", show.stdout());
    let stdout = show.stdout();
    assert!(
        stdout.contains(&format!("\ntitle         {EVIL_SHOWN}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("\ndescription   two\n              lines\\x1b[2J\\x9b31m\n"),
        "{stdout}"
    );

    // JSON keeps the text exact, and escaped too.
    let json = daemon.ctl(&["--json", "show", "1"]);
    assert_eq!(controls(&json.output.stdout), b"");
    let task = json.json();
    assert_eq!(task["title"], EVIL);

    let id = task["id"].as_str().unwrap();
    for args in [["done", id], ["done", id], ["rm", id], ["rm", id]] {
        let run = daemon.ctl(&args);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        assert_eq!(controls(&run.output.stdout), b"", "{args:?}");
        assert_eq!(controls(&run.output.stderr), b"", "{args:?}");
    }
}

#[test]
fn tables_fit_the_width_with_an_ellipsis_and_count_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let long = "a long title ".repeat(38);
    daemon.ctl(&["add", long.trim()]);
    daemon.ctl(&["add", "Buy", "bread"]);
    daemon.ctl(&["done", "2"]);

    // --all: done tasks too (plain `list` shows the open ones).
    let list = daemon.ctl_env(&["list", "--all"], &[("COLUMNS", "50")]);
    let stdout = list.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines.iter().all(|l| l.chars().count() <= 50), "{stdout}");
    assert!(lines[0].starts_with("ID ") && lines[0].ends_with("AGE  DONE  SYNC     TITLE"));
    // Numbered (open) tasks first, then the others.
    assert!(
        lines[1].starts_with("1 ") && lines[1].ends_with('…'),
        "{stdout}"
    );
    assert_eq!(lines[1].chars().count(), 50);
    assert!(
        lines[2].contains("[x]") && lines[2].ends_with("Buy bread"),
        "{stdout}"
    );
    assert_eq!(lines[3], "2 tasks (1 open, 1 done)");
    // Not a terminal and no NO_COLOR: still no colour, since stdout is no terminal.
    assert!(!stdout.contains('\u{1b}'));

    let wide = daemon.ctl(&["list"]);
    assert!(
        wide.stdout().contains(long.trim()),
        "no width: nothing is cut"
    );
}

#[test]
fn completions_and_man_pages_need_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    for (shell, marker) in [
        ("bash", "complete -F _taskctl"),
        ("zsh", "#compdef taskctl"),
        ("fish", "complete -c taskctl"),
        (
            "powershell",
            "Register-ArgumentCompleter -Native -CommandName 'taskctl'",
        ),
    ] {
        let run = ctl_at(&socket, &["completions", shell]);
        assert_eq!(run.code(), 0, "{shell}: {}", run.stderr());
        assert!(run.stdout().contains(marker), "{shell}");
        assert!(run.stdout().contains("sync-status"), "{shell}");
    }
    let man = ctl_at(&socket, &["man"]);
    assert_eq!(man.code(), 0);
    assert!(man.stdout().starts_with(".ie"), "{}", &man.stdout()[..80]);
    assert!(man.stdout().contains(".TH taskctl 1"));

    let pages = dir.path().join("man1");
    let run = ctl_at(&socket, &["man", "--out-dir", pages.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    for page in [
        "taskctl.1",
        "taskctl-add.1",
        "taskctl-list.1",
        "taskctl-completions.1",
    ] {
        assert!(pages.join(page).exists(), "{page}");
    }
}

/// The daemon and the server have man pages too, printed without starting anything:
/// `tasksyncd --man` and `tasksync-server man` (both hidden from --help), roff that states
/// the defaults as rules rather than the paths of whoever built it.
#[test]
fn tasksyncd_and_tasksync_server_print_their_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    for (program, args, marker, options) in [
        (
            "tasksyncd",
            vec!["--man"],
            ".TH tasksyncd 1",
            vec![
                "\\-\\-socket",
                "\\-\\-server",
                "\\-\\-print\\-config",
                "$XDG_RUNTIME_DIR/tasksync/tasksyncd.sock",
            ],
        ),
        (
            "tasksync-server",
            vec!["man"],
            ".TH tasksync-server 1",
            vec!["\\-\\-listen", "\\-\\-db", "\\-\\-database\\-url", "user"],
        ),
    ] {
        let output = std::process::Command::new(tasksync_e2e::bin(program))
            .args(&args)
            // No daemon or server may start: these would be where it ran.
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let page = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{program}: {output:?}");
        assert!(page.starts_with(".ie"), "{program}: {page}");
        assert!(page.contains(marker), "{program}: {page}");
        for option in options {
            assert!(page.contains(option), "{program}: {option} not in {page}");
        }
        assert!(
            !page.contains(&dir.path().display().to_string()),
            "{program}: the page names this machine's paths: {page}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{program} created files"
        );
    }
}
