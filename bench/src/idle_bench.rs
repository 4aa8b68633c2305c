//! What an idle daemon costs: resident memory and CPU seconds over a window, online and
//! offline, read from /proc.

use std::path::Path;
use std::time::Duration;

use crate::procs::{Binaries, DaemonProc, Error, ServerProc};

pub struct Idle {
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

/// Measures an online and an offline daemon side by side for `window`.
pub async fn measure(bins: &Binaries, dir: &Path, window: Duration) -> Result<(Idle, Idle), Error> {
    let server = ServerProc::start(bins, dir, "idle-server", "127.0.0.1:0")?;
    let online = DaemonProc::start(bins, dir, "idle-online", &["--server", &server.url()]).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let offline = DaemonProc::start(bins, dir, "idle-offline", &["--server", &nowhere]).await?;
    // Give both a moment to settle (first probe, first pull).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = (cpu_seconds(online.pid())?, cpu_seconds(offline.pid())?);
    tokio::time::sleep(window).await;
    let after = (cpu_seconds(online.pid())?, cpu_seconds(offline.pid())?);
    Ok((
        Idle {
            rss_kib: rss_kib(online.pid())?,
            cpu_seconds: after.0 - before.0,
        },
        Idle {
            rss_kib: rss_kib(offline.pid())?,
            cpu_seconds: after.1 - before.1,
        },
    ))
}

/// User + system CPU seconds a process has used.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("bad /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .ok_or("no utime")?
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or("no stime")?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / per_second)
}

pub fn rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS in /proc status".into())
}
