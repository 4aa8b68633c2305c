//! The daemon on its own: noticing the server come and go, flushing without being asked,
//! surviving a network cut mid-flush and a server that hangs, batching bursts, and the
//! `watch` stream that reports it all.

use serde_json::Value;
use tasksync_e2e::proxy::{Hung, Proxy};
use tasksync_e2e::scripted::{accepting, Scripted};
use tasksync_e2e::watch::Watch;
use tasksync_e2e::{free_port, subdir, wait_until, Daemon, Server};
use tasksync_proto::{Client, NewTask, Timestamp};

/// Creates `count` tasks over a few concurrent connections, as fast as the daemon takes them.
fn create_many(daemon: &Daemon, count: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let workers = 8;
        let mut handles = Vec::new();
        for worker in 0..workers {
            let socket = daemon.socket.clone();
            handles.push(tokio::spawn(async move {
                let mut client = Client::connect(&socket, "burst").await.unwrap();
                for i in (worker..count).step_by(workers) {
                    client
                        .create_task(NewTask {
                            title: format!("task {i}"),
                            description: None,
                            id: None,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });
}

#[test]
fn offline_work_reaches_the_server_when_it_comes_back_without_any_command() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&format!("http://{address}"))
        .args(&["--probe-max-ms", "1000"])
        .start();
    let watch = Watch::start(&daemon);
    create_many(&daemon, 500);
    let offline = daemon.status();
    assert_eq!(offline["state"], "offline");
    assert_eq!(offline["online"], false);
    assert_eq!(offline["pending"], 500);
    assert!(
        offline["next_probe_at"].is_string(),
        "offline status names the next probe: {offline}"
    );
    let opening = watch
        .all()
        .into_iter()
        .find(|e| e["event"] == "status")
        .unwrap();
    assert_eq!(opening["state"], "offline");
    wait_until("every local change to be streamed", || {
        watch.events("task") >= 500
    });

    let server = Server::builder(&subdir(&dir, "server"))
        .listen(&address)
        .start();
    wait_until("all 500 tasks to reach the server unasked", || {
        server.tasks().len() == 500
    });
    wait_until("the queue to empty", || daemon.status()["pending"] == 0);
    let online = daemon.status();
    assert_eq!(online["state"], "online");
    assert_eq!(online["next_probe_at"], Value::Null);
    wait_until("watch to see the round finish", || watch.events("sync") > 0);
    let events = watch.all();
    let went_online = events
        .iter()
        .any(|e| e["event"] == "connectivity" && e["state"] == "online");
    assert!(went_online, "watch saw offline -> online");
    let sent: u64 = events
        .iter()
        .filter(|e| e["event"] == "batch_sent")
        .map(|e| e["items"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, 500, "watch saw every batch go out");
    let synced_in_rounds = || -> u64 {
        watch
            .matching(|e| e["event"] == "sync")
            .iter()
            .map(|e| e["synced_items"].as_u64().unwrap())
            .sum()
    };
    wait_until("the rounds' reports to count every operation", || {
        synced_in_rounds() == 500
    });
}

#[test]
fn a_network_cut_mid_flush_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let proxy = Proxy::start(&server.addr);
    let daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&proxy.url())
        .args(&["--probe-max-ms", "500", "--batch-size", "1"])
        .start();
    daemon.wait_for_state("online");
    create_many(&daemon, 400);
    wait_until("a flush to be under way", || server.tasks().len() >= 20);
    proxy.cut();
    let during = server.tasks().len();
    daemon.wait_for_state("offline");
    assert!(during < 400, "the cut landed mid-flush ({during} of 400)");
    proxy.restore();
    wait_until("everything to arrive after the network returns", || {
        server.tasks().len() == 400
    });
    wait_until("the queue to empty", || daemon.status()["pending"] == 0);
    let changes = tasksync_e2e::http::get(&server.addr, "/api/changes?since=&limit=5000").json();
    assert_eq!(
        changes["changes"].as_array().unwrap().len(),
        400,
        "each task arrived exactly once"
    );
}

#[test]
fn a_hanging_server_makes_the_daemon_offline_but_never_unresponsive() {
    let dir = tempfile::tempdir().unwrap();
    let hung = Hung::start();
    let daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&hung.url())
        .args(&[
            "--probe-timeout-ms",
            "300",
            "--request-timeout-ms",
            "500",
            "--probe-max-ms",
            "500",
        ])
        .start();
    daemon.ctl(&["add", "written while the server hangs"]);
    // The first probe goes out at once; once it has timed out the next one is scheduled from
    // then, at least the probe timeout after the daemon went offline at start.
    wait_until("a probe to time out", || {
        let now = daemon.status();
        let millis = |key: &str| {
            serde_json::from_value::<Timestamp>(now[key].clone()).map(Timestamp::as_millis)
        };
        matches!((millis("since"), millis("next_probe_at")), (Ok(since), Ok(next)) if next - since >= 300)
    });
    for _ in 0..5 {
        let now = daemon.status();
        assert_eq!(now["state"], "offline", "{now}");
        assert_eq!(now["pending"], 1);
    }
    let sync = daemon.ctl(&["--json", "sync"]);
    assert_eq!(
        sync.code(),
        4,
        "a hung server counts as offline: {}",
        sync.stdout()
    );

    let address = hung.addr.clone();
    hung.stop();
    let server = Server::builder(&subdir(&dir, "server"))
        .listen(&address)
        .start();
    wait_until("the daemon to recover", || server.tasks().len() == 1);
    wait_until("the queue to empty", || daemon.status()["pending"] == 0);
    assert_eq!(daemon.status()["state"], "online");
}

#[test]
fn a_burst_of_creates_while_online_shares_batches() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Scripted::start(accepting(|_| None));
    let daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&scripted.url())
        .start();
    daemon.wait_for_state("online");
    create_many(&daemon, 1000);
    let items = || -> usize {
        scripted
            .batches()
            .iter()
            .map(|b| b["items"].as_array().map_or(0, Vec::len))
            .sum()
    };
    wait_until("all 1000 creates to be pushed unasked", || items() == 1000);
    let requests = scripted.batches().len();
    assert!(
        requests <= 100,
        "1000 creates took {requests} requests; the debounce should batch them"
    );
    wait_until("the queue to empty", || daemon.status()["pending"] == 0);
}

/// With default settings, a server back after a longer outage (which used to stretch probes
/// to 30 s) is found within seconds: probes keep going out every 2 to 3 s.
#[test]
fn a_restarted_server_is_found_within_seconds_even_after_a_long_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&subdir(&dir, "server"));
    let address = server.addr.clone();
    let daemon = Daemon::builder(&subdir(&dir, "device"))
        .server(&server.url())
        .start();
    daemon.wait_for_state("online");
    server.stop();
    daemon.wait_for_state("offline");
    // Four failed probes: a doubling backoff (1, 2, 4, 8 s) would now wait 16 s or more.
    let mut probes = std::collections::HashSet::new();
    wait_until("four probes to fail", || {
        if let Some(at) = daemon.status()["next_probe_at"].as_str() {
            probes.insert(at.to_string());
        }
        probes.len() >= 5
    });
    let _back = Server::builder(&subdir(&dir, "server"))
        .listen(&address)
        .start();
    let restarted = std::time::Instant::now();
    daemon.wait_for_state("online");
    let took = restarted.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "online {took:?} after the server came back"
    );
}
