//! tasksync-bench: runs the real daemon and reports its speed as ratios to the machine's
//! physical limits, measured in the same run (see BENCHMARKS.md).
//!
//! `cargo build --release --workspace && target/release/tasksync-bench`

mod limits;
mod report;
mod store_bench;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Benchmarks tasksyncd against the disk's fdatasync rate and a raw Unix-socket round trip.
#[derive(Debug, Parser)]
struct Args {
    /// The tasksyncd binary [default: next to this program]
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Folder for the database and scratch files (on the disk you want to measure)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds each throughput measurement runs
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent clients for the group-commit measurement
    #[arg(long, default_value_t = 32)]
    clients: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tasksync-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let daemon = match &args.daemon {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("tasksyncd"),
    };
    let scratch = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir_in(std::env::current_dir()?)?,
    };
    let window = Duration::from_secs_f64(args.seconds);
    let mut report = report::Report::new();
    report.machine();

    let fsync = limits::fdatasync_rate(scratch.path(), window)?;
    report.limit(
        "fdatasync (4 KiB append + fdatasync)",
        format!("{fsync:.0} /s"),
    );
    let ping = limits::unix_ping_pong(window)?;
    report.limit(
        "Unix socket ping-pong (64 B)",
        format!("{:.0} round trips/s, p50 {:.1} us", ping.rate, ping.p50_us),
    );

    let results = store_bench::run(&daemon, scratch.path(), window, args.clients)?;
    report.result(
        "durable creates/s, 1 client",
        format!("{:.0}", results.creates_1),
        format!("{:.2} x fdatasync rate", results.creates_1 / fsync),
        "≥ 0.7 x fdatasync",
    );
    report.result(
        &format!("durable creates/s, {} clients", args.clients),
        format!("{:.0}", results.creates_n),
        format!("{:.1} x fdatasync rate", results.creates_n / fsync),
        "≥ 50,000 /s",
    );
    report.result(
        "GetTask round trip p50",
        format!("{:.1} us", results.get_p50_us),
        format!("{:.1} x socket ping-pong", results.get_p50_us / ping.p50_us),
        "≤ 50 us",
    );
    report.result(
        "GetTask round trip p99",
        format!("{:.1} us", results.get_p99_us),
        format!("{:.1} x socket ping-pong", results.get_p99_us / ping.p50_us),
        "",
    );
    report.print();
    Ok(())
}
