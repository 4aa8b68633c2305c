//! taskctl beside Taskwarrior 2.6: whole processes, `list` and `add`, on an empty database
//! and at 10,000 tasks, in one run. Runs of the two programs alternate, so both meet the
//! same noise on a shared machine.
//!
//! Taskwarrior gets a fresh data folder and an rc file of its own (`confirmation=off`, no
//! hooks); its 10,000 tasks come from one `task import`. taskctl talks to a fresh tasksyncd
//! whose 10,000 tasks come over the socket. Both write to /dev/null (no terminal).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{create_tasks_with, rich_task, Binaries, DaemonProc, Error};

/// Tasks in the full database.
pub const FULL: usize = 10_000;

/// One program's figures for one command.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Median wall time of a whole process, spawn to exit.
    pub wall: Duration,
    /// Mean CPU time per run (user + system), of the process and, for taskctl, of the daemon
    /// serving it.
    pub cpu: Duration,
}

/// taskctl's and Taskwarrior's figures for one command at one database size.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub taskctl: Timing,
    pub task: Timing,
}

/// Every comparison of one run.
pub struct Results {
    pub task_version: String,
    pub list_empty: Pair,
    pub add_empty: Pair,
    pub list_full: Pair,
    pub add_full: Pair,
}

/// Taskwarrior on a data folder of its own.
struct Taskwarrior {
    rc: PathBuf,
}

impl Taskwarrior {
    fn new(dir: &Path) -> Result<Taskwarrior, Error> {
        let data = dir.join("task-data");
        std::fs::create_dir_all(&data)?;
        let rc = dir.join("taskrc");
        std::fs::write(
            &rc,
            format!(
                "data.location={}\nconfirmation=off\nhooks=off\nnews.version=2.6.2\n",
                data.display()
            ),
        )?;
        Ok(Taskwarrior { rc })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("task");
        command
            .args(args)
            .env("TASKRC", &self.rc)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// Imports `count` pending tasks in one process.
    fn fill(&self, dir: &Path, count: usize) -> Result<(), Error> {
        let mut json = String::from("[");
        for i in 0..count {
            if i > 0 {
                json.push(',');
            }
            // Version 4 UUIDs made from the index: unique, and no RNG crate needed. Half of
            // them have the tags, due date and project `procs::rich_task` gives taskctl's.
            let extra = if i.is_multiple_of(2) {
                let due = 1_796_083_200 + i as i64 * 3_600;
                let due = time_basic(due);
                format!(
                    r#","due":"{due}","project":"home.room{}","tags":["tag{}","bench"]"#,
                    i % 7,
                    i % 13
                )
            } else {
                String::new()
            };
            json.push_str(&format!(
                r#"{{"uuid":"{:08x}-0000-4000-8000-{:012x}","description":"bench task {i}","status":"pending","entry":"20261201T000000Z"{extra}}}"#,
                i, i
            ));
        }
        json.push(']');
        let file = dir.join("import.json");
        std::fs::write(&file, json)?;
        let status = self
            .command(&["import", file.to_str().ok_or("non-UTF-8 path")?])
            .status()?;
        if !status.success() {
            return Err(format!("task import failed: {status}").into());
        }
        Ok(())
    }
}

/// Seconds since the epoch in Taskwarrior's date form, `20261224T170000Z`.
fn time_basic(seconds: i64) -> String {
    let text = tasksync_proto::Timestamp::from_millis(seconds * 1_000)
        .map(|t| t.to_string())
        .unwrap_or_default();
    // 2026-12-24T17:00:00.000Z -> 20261224T170000Z
    let digits: String = text
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

/// The installed Taskwarrior's version, or why it cannot be used.
pub fn task_version() -> Result<String, Error> {
    let output = Command::new("task")
        .arg("--version")
        .env("TASKRC", "/dev/null")
        .output()
        .map_err(|e| {
            format!("Taskwarrior's `task` is not installed ({e}): apt-get install taskwarrior")
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

pub async fn run(bins: &Binaries, dir: &Path, runs: usize) -> Result<Results, Error> {
    let task_version = task_version()?;
    let dir = dir.join("ctl-bench");
    std::fs::create_dir_all(&dir)?;
    let tw = Taskwarrior::new(&dir)?;
    let daemon = DaemonProc::start(bins, &dir, "daemon", &[]).await?;
    let ctl = |args: &[&str]| {
        let mut command = Command::new(&bins.ctl);
        command
            .arg("--socket")
            .arg(&daemon.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let daemon_pid = daemon.pid();
    // The same command through taskctl and through Taskwarrior.
    let both = |args: &[&str]| compare(runs, daemon_pid, || ctl(args), || tw.command(args));

    // `list` before `add`, so the empty figures are of a really empty database.
    let list_empty = both(&["list"])?;
    let add_empty = both(&["add", "Buy", "bread"])?;

    // Both hold the warm-up add and `runs` adds now: fill up to exactly FULL.
    create_tasks_with(&daemon, FULL - runs - 1, 8, |i| rich_task(i, 2)).await?;
    tw.fill(&dir, FULL - runs - 1)?;
    let list_full = both(&["list"])?;
    let add_full = both(&["add", "Buy", "bread"])?;
    Ok(Results {
        task_version,
        list_empty,
        add_empty,
        list_full,
        add_full,
    })
}

/// Runs both commands `runs` times each, alternating, after one warm-up run of each.
fn compare(
    runs: usize,
    daemon_pid: u32,
    taskctl: impl Fn() -> Command,
    task: impl Fn() -> Command,
) -> Result<Pair, Error> {
    // Warm-up: page cache, first connection. Not counted (for `add` it adds a task too).
    run_once(&mut taskctl())?;
    run_once(&mut task())?;
    let mut ctl_walls = Vec::with_capacity(runs);
    let mut task_walls = Vec::with_capacity(runs);
    let (mut ctl_cpu, mut task_cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..runs {
        let daemon_before = crate::idle_bench::cpu_seconds(daemon_pid)?;
        let (wall, cpu) = run_once(&mut taskctl())?;
        let daemon_cpu = crate::idle_bench::cpu_seconds(daemon_pid)? - daemon_before;
        ctl_walls.push(wall);
        ctl_cpu += cpu + Duration::from_secs_f64(daemon_cpu.max(0.0));
        let (wall, cpu) = run_once(&mut task())?;
        task_walls.push(wall);
        task_cpu += cpu;
    }
    let runs = runs as u32;
    Ok(Pair {
        taskctl: Timing {
            wall: median(&mut ctl_walls),
            cpu: ctl_cpu / runs,
        },
        task: Timing {
            wall: median(&mut task_walls),
            cpu: task_cpu / runs,
        },
    })
}

/// Runs a process to its end: its wall time and CPU time (user + system).
fn run_once(command: &mut Command) -> Result<(Duration, Duration), Error> {
    let before = children_cpu();
    let start = Instant::now();
    let status = command.status()?;
    let wall = start.elapsed();
    let cpu = children_cpu().saturating_sub(before);
    // `task list` exits 1 when nothing matches; anything else is a failure.
    if !status.success() && status.code() != Some(1) {
        return Err(format!("{command:?} failed: {status}").into());
    }
    Ok((wall, cpu))
}

/// User + system CPU time of every child waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own; no other preconditions.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
