//! Network-change hints from the OS, through libp2p's `if-watch` crate: address changes from
//! rtnetlink on Linux, the IP Helper API's interface notifications on Windows,
//! SystemConfiguration on macOS. An address that comes or goes means "something changed,
//! probe now". Where no watcher can be opened (a sandbox without netlink, say) `open` fails
//! and the daemon relies on probes alone.
//!
//! A new watcher first lists every address that already exists as if it had just come up;
//! those are compared with the addresses `if-addrs` reports at `open` and not taken as
//! changes, so starting the daemon is not mistaken for a network change.

use std::collections::HashSet;
use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use if_watch::tokio::IfWatcher;
use if_watch::IfEvent;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A running watcher. Dropping it stops the watch.
pub(crate) struct NetworkChanges {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    /// One stored permit: a burst of changes wakes the reader once.
    changed: Notify,
    /// Why the watch ended, for the reader to report.
    error: Mutex<Option<io::Error>>,
    /// What was taken as a change, for tests.
    #[cfg(test)]
    seen: Mutex<Vec<String>>,
}

impl NetworkChanges {
    /// Starts watching; call from within the tokio runtime.
    pub(crate) fn open() -> io::Result<NetworkChanges> {
        let existing = if_addrs::get_if_addrs()?
            .iter()
            .map(if_addrs::Interface::ip)
            .collect();
        let watcher = IfWatcher::new()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(watch(watcher, existing, shared.clone()));
        Ok(NetworkChanges { shared, task })
    }

    /// Resolves when an address came or went since the last call; an error once the watch
    /// itself failed.
    pub(crate) async fn changed(&self) -> io::Result<()> {
        self.shared.changed.notified().await;
        match lock(&self.shared.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for NetworkChanges {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(mut watcher: IfWatcher, mut existing: HashSet<IpAddr>, shared: Arc<Shared>) {
    loop {
        match poll_fn(|cx| watcher.poll_if_event(cx)).await {
            // The watcher's opening inventory of what was already there.
            Ok(IfEvent::Up(net)) if existing.remove(&net.addr()) => {}
            Ok(event) => {
                tracing::debug!("network change: {event:?}");
                #[cfg(test)]
                lock(&shared.seen).push(match event {
                    IfEvent::Up(net) => format!("up {net}"),
                    IfEvent::Down(net) => format!("down {net}"),
                });
                shared.changed.notify_one();
            }
            Err(e) => {
                *lock(&shared.error) = Some(e);
                shared.changed.notify_one();
                return;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::*;

    /// Set in the copy of this test that runs inside a private network namespace.
    const IN_NETNS: &str = "TASKSYNC_TEST_IN_NETNS";
    const THIS_TEST: &str =
        "connectivity::network::tests::address_changes_are_hints_and_existing_addresses_are_not";

    /// Adds and removes an address, and checks that each wakes the watcher once while the
    /// addresses that were there at `open` do not. It changes addresses, so it runs in a
    /// network namespace of its own (`unshare -rn`): the test runs itself again in there.
    /// Only a machine that cannot make a namespace skips it, loudly, and never under
    /// `CI=true`.
    #[test]
    fn address_changes_are_hints_and_existing_addresses_are_not() {
        if std::env::var_os(IN_NETNS).is_some() {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(check_in_this_namespace());
            return;
        }
        let ci = std::env::var("CI").as_deref() == Ok("true");
        let exe = std::env::current_exe().unwrap();
        let outcome = Command::new("unshare")
            .args(["--user", "--map-root-user", "--net", "--"])
            .arg(exe)
            .args(["--exact", THIS_TEST, "--nocapture"])
            .env(IN_NETNS, "1")
            .output();
        let output = match outcome {
            Ok(output) => output,
            Err(e) if !ci => {
                eprintln!("*** SKIPPED: cannot run unshare ({e}) ***");
                return;
            }
            Err(e) => panic!("cannot run unshare: {e}"),
        };
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && text.contains("unshare failed") && !ci {
            eprintln!("*** SKIPPED: no private network namespace here ***\n{text}");
            return;
        }
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("test result: ok. 1 passed"),
            "the check did not run in the namespace:\n{text}"
        );
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().unwrap();
        assert!(status.success(), "ip {args:?} failed");
    }

    async fn next_change(changes: &NetworkChanges) {
        tokio::time::timeout(Duration::from_secs(10), changes.changed())
            .await
            .expect("no network-change hint within 10 s")
            .unwrap();
    }

    async fn check_in_this_namespace() {
        ip(&["link", "set", "lo", "up"]);
        let changes = NetworkChanges::open().unwrap();
        ip(&["address", "add", "10.77.0.1/32", "dev", "lo"]);
        next_change(&changes).await;
        assert_eq!(*lock(&changes.shared.seen), ["up 10.77.0.1/32"]);
        ip(&["address", "del", "10.77.0.1/32", "dev", "lo"]);
        next_change(&changes).await;
        assert_eq!(
            *lock(&changes.shared.seen),
            ["up 10.77.0.1/32", "down 10.77.0.1/32"]
        );
    }
}
