//! The engine against the in-memory server: live pulls, and servers that do not wait, lie,
//! are busy or refuse our token. On paused time (tokio's clock moves only when every task
//! waits), with the stores' writes inline: each test runs the same way every time, and fast.

use std::sync::Arc;
use std::time::Duration;
use tasksync_proto::events::Connectivity;
use tasksync_proto::ipc::{QueueState, SyncErrorKind};

use tasksync_proto::events::{ChangeOrigin, Event};
use tasksync_proto::{NewTask, Task};
use tokio::time::Instant;

use super::engine::{spawn_with, SyncHandle};
use super::fake_server::{simulated_clock, FakeLink, FakeServer, Fault};
use super::round::{InFlight, Mode, Round, ServerApi};
use super::settings::SyncSettings;
use super::transport::Transport;
use crate::events::Events;
use crate::service::shutdown::{channel, ShutdownTrigger};
use crate::store::clock::WallClock;
use crate::store::Store;

/// A wall clock on tokio's paused clock.
fn clock() -> WallClock {
    simulated_clock(Instant::now(), Arc::default())
}

fn new(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        description: None,
        id: None,
        ..Default::default()
    }
}

struct Device {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    events: Arc<Events>,
    link: Arc<FakeLink>,
}

fn device(server: &Arc<FakeServer>) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_inline(&dir.path().join("tasks.db"), clock()).unwrap());
    Device {
        _dir: dir,
        store,
        events: Arc::default(),
        link: FakeLink::new(server.clone()),
    }
}

impl Device {
    /// Creates a task as a local command does: stored, then announced to the engine.
    async fn create(&self, title: &str) -> Task {
        let task = self.store.create(new(title)).await.unwrap();
        self.events.local_change();
        task
    }
}

/// Settings where only the live pull can bring changes quickly.
fn settings() -> SyncSettings {
    SyncSettings {
        server: Some("fake://server".into()),
        pull_interval: Duration::from_secs(3600),
        live_wait: Duration::from_secs(5),
        ..SyncSettings::default()
    }
}

fn engine(device: &Device, settings: SyncSettings) -> (SyncHandle, ShutdownTrigger) {
    let (trigger, shutdown) = channel();
    let link = device.link.clone();
    let handle = spawn_with(
        device.store.clone(),
        device.events.clone(),
        Arc::default(),
        settings,
        shutdown,
        Arc::new(move |_: &SyncSettings| Ok(Some(link.clone() as Arc<dyn Transport>))),
    )
    .unwrap();
    (handle, trigger)
}

/// An engine for `device` with [`settings`], once it is online.
async fn online_engine(device: &Device) -> (SyncHandle, ShutdownTrigger) {
    let (sync, stop) = engine(device, settings());
    until("online", Duration::from_secs(5), || {
        sync.connectivity().state == Connectivity::Online
    })
    .await;
    (sync, stop)
}

async fn push(device: &Device) {
    let outcome = round(device, false).await;
    assert!(outcome.succeeded(), "{:?}", outcome.errors);
}

/// One forced round of `device`: push, and pull too when `pull`.
async fn round(device: &Device, pull: bool) -> super::round::Outcome {
    let transport: Arc<dyn Transport> = device.link.clone();
    Round {
        store: &device.store,
        events: &device.events,
        in_flight: &InFlight::default(),
        transport: &transport,
        settings: &settings(),
        server_api: &ServerApi::current(),
    }
    .run(Mode { force: true, pull })
    .await
}

async fn until(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_change_reaches_an_online_device_through_the_live_pull() {
    let server = FakeServer::new(clock());
    let (a, b) = (device(&server), device(&server));
    let (_sync, _stop) = online_engine(&b).await;
    let mut events = b.events.subscribe();
    let task = a.create("from a").await;
    let pushed = Instant::now();
    push(&a).await;
    let seen = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let event = events.recv().await.unwrap().event;
            if let Event::TaskChanged { task: t, origin } = event {
                assert_eq!(origin, ChangeOrigin::Remote);
                if t.id == task.id {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "b never saw the task (the periodic pull is an hour away)"
    );
    assert!(pushed.elapsed() < Duration::from_secs(3));
    assert_eq!(b.store.get(task.id).unwrap().title, "from a");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_does_not_hold_live_pulls_is_not_hammered() {
    let server = FakeServer::new(clock());
    let b = device(&server);
    b.link.set_fault(Fault::NoWait);
    let (_sync, _stop) = online_engine(&b).await;
    until("a live pull", Duration::from_secs(5), || b.link.pulls() > 0).await;
    let before = b.link.pulls();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pulls = b.link.pulls() - before;
    assert!(
        pulls <= 6,
        "{pulls} pulls in 2 s from a server that answers at once"
    );
    // Commands are not held up meanwhile.
    let started = Instant::now();
    b.create("still fine").await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_server_that_lies_to_live_pulls_is_not_hammered_and_pushes_go_on() {
    let server = FakeServer::new(clock());
    let b = device(&server);
    let (_sync, _stop) = online_engine(&b).await;
    until("a live pull", Duration::from_secs(5), || b.link.pulls() > 0).await;
    b.link.set_fault(Fault::Lie);
    let before = b.link.pulls();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pulls = b.link.pulls() - before;
    assert!(pulls <= 6, "{pulls} pulls in 2 s from a server that lies");
    b.link.set_fault(Fault::None);
    let task = b.create("pushed anyway").await;
    until("the push", Duration::from_secs(3), || {
        server.tasks().iter().any(|t| t.id == task.id)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_server_costs_no_attempt_and_the_queue_waits() {
    let server = FakeServer::new(clock());
    let b = device(&server);
    let (sync, _stop) = online_engine(&b).await;
    b.link.set_fault(Fault::Busy);
    for i in 0..3 {
        b.create(&format!("task {i}")).await;
    }
    for _ in 0..5 {
        let report = sync.sync_now().await;
        assert!(!report.success);
        assert!(
            report.errors.iter().any(|e| e.kind == SyncErrorKind::Busy),
            "{report:?}"
        );
    }
    let queue = b.store.queue(false).unwrap();
    assert_eq!(queue.len(), 3);
    assert!(
        queue
            .iter()
            .all(|row| row.entry.retry_count == 0 && row.entry.state == QueueState::Pending),
        "{queue:?}"
    );
    assert!(sync
        .last_error()
        .is_some_and(|e| e.kind == SyncErrorKind::Busy));
    b.link.set_fault(Fault::None);
    let report = sync.sync_now().await;
    assert!(report.success, "{report:?}");
    assert_eq!(report.synced_items, 3);
    assert!(b.store.queue(false).unwrap().is_empty());
    assert_eq!(sync.last_error(), None);
}

#[tokio::test(start_paused = true)]
async fn a_server_of_api_1_never_gets_new_fields_and_they_wait_for_its_upgrade() {
    let server = FakeServer::new(clock());
    server.set_api_version(1);
    let b = device(&server);
    let (sync, _stop) = online_engine(&b).await;
    let plain = b.create("plain").await;
    let tagged = b
        .store
        .create(NewTask {
            title: "tagged".into(),
            tags: ["shop".to_string()].into(),
            ..NewTask::default()
        })
        .await
        .unwrap();
    // A plain edit after the tagged create waits behind it (its task's order holds).
    let retitled = b
        .store
        .update(
            tagged.id,
            tasksync_proto::TaskPatch {
                title: Some("tagged, renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    b.events.local_change();
    for _ in 0..3 {
        let report = sync.sync_now().await;
        assert!(!report.success, "{report:?}");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.kind == SyncErrorKind::ServerTooOld && e.message.contains("1 operation")),
            "{report:?}"
        );
    }
    let on_server: Vec<_> = server.tasks().iter().map(|t| t.id).collect();
    assert_eq!(on_server, vec![plain.id], "only the plain task went out");
    let queue = b.store.queue(false).unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert!(
        queue.iter().all(|row| row.entry.retry_count == 0
            && row.entry.state == QueueState::Pending
            && row.entry.task_id == tagged.id),
        "no attempt counted, nothing dead-lettered: {queue:?}"
    );
    assert!(sync
        .last_error()
        .is_some_and(|e| e.kind == SyncErrorKind::ServerTooOld));
    assert_eq!(server.merges().len(), 1);

    // The server is upgraded: the next round learns it and sends everything, in order.
    server.set_api_version(tasksync_proto::wire::SYNC_API_VERSION);
    let report = sync.sync_now().await;
    assert!(report.success, "{report:?}");
    assert_eq!(report.synced_items, 2);
    let stored = server
        .tasks()
        .into_iter()
        .find(|t| t.id == tagged.id)
        .unwrap();
    assert_eq!(stored.title, retitled.title);
    assert!(stored.tags.contains("shop"));
    assert_eq!(sync.last_error(), None);
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_shows_as_unauthorized_until_it_works() {
    let server = FakeServer::new(clock());
    let b = device(&server);
    b.link.set_fault(Fault::Unauthorized);
    let (sync, _stop) = engine(&b, settings());
    until("unauthorized", Duration::from_secs(5), || {
        sync.connectivity().state == Connectivity::Unauthorized
    })
    .await;
    b.create("waits").await;
    let report = sync.sync_now().await;
    assert!(!report.success);
    assert_eq!(sync.connectivity().state, Connectivity::Unauthorized);
    assert!(sync
        .last_error()
        .is_some_and(|e| e.kind == SyncErrorKind::Unauthorized));
    assert_eq!(b.store.queue(false).unwrap()[0].entry.retry_count, 0);
    b.link.set_fault(Fault::None);
    let report = sync.sync_now().await;
    assert!(report.success, "{report:?}");
    assert_eq!(sync.connectivity().state, Connectivity::Online);
}

#[tokio::test(start_paused = true)]
async fn a_broken_live_pull_takes_the_device_offline_at_once() {
    let server = FakeServer::new(clock());
    let b = device(&server);
    let (sync, _stop) = online_engine(&b).await;
    // The live pull is waiting; the next one fails to connect.
    b.link.set_fault(Fault::Offline);
    let other = device(&server);
    other.create("wakes the pull").await;
    push(&other).await;
    until("offline", Duration::from_secs(3), || {
        sync.connectivity().state == Connectivity::Offline
    })
    .await;
}

/// How long `taskctl sync` keeps pulling from a hostile server in these tests.
const HOSTILE_PULL_BUDGET: Duration = Duration::from_secs(3);

/// A device that pulled one task from `server`, online, then meets `fault`.
async fn hostile(fault: Fault) -> (Arc<FakeServer>, Device, SyncHandle, ShutdownTrigger) {
    let server = FakeServer::new(clock());
    let a = device(&server);
    a.create("on the server").await;
    push(&a).await;
    let b = device(&server);
    let (sync, stop) = engine(
        &b,
        SyncSettings {
            forced_pull_budget: HOSTILE_PULL_BUDGET,
            ..settings()
        },
    );
    until("online", Duration::from_secs(5), || {
        sync.connectivity().state == Connectivity::Online
    })
    .await;
    until("the first pull", Duration::from_secs(5), || {
        b.store.list(false, None).map(|l| l.len()).unwrap_or(0) == 1
    })
    .await;
    b.link.set_fault(fault);
    (server, b, sync, stop)
}

/// Pulls `device` makes in `window`.
async fn pulls_in(device: &Device, window: Duration) -> u64 {
    let before = device.link.pulls();
    tokio::time::sleep(window).await;
    device.link.pulls() - before
}

#[tokio::test(start_paused = true)]
async fn a_server_that_answers_live_pulls_at_once_with_the_same_page_is_not_hammered() {
    let (_server, b, _sync, _stop) = hostile(Fault::SamePage).await;
    let pulls = pulls_in(&b, Duration::from_secs(3)).await;
    assert!(
        pulls <= 6,
        "{pulls} pulls in 3 s from a server that repeats its page"
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_cursor_that_goes_backwards_is_a_bad_answer_and_not_hammered() {
    let (_server, b, _sync, _stop) = hostile(Fault::BackwardsCursor).await;
    let pulls = pulls_in(&b, Duration::from_secs(3)).await;
    assert!(
        pulls <= 6,
        "{pulls} pulls in 3 s from a server whose cursor goes back"
    );
}

/// A long pull whose connection breaks keeps what it fetched before the break: the pages
/// are stored (several in one transaction) before the error is answered, and the next round
/// goes on from there.
#[tokio::test(start_paused = true)]
async fn pages_fetched_before_a_pull_breaks_are_kept_and_the_next_round_goes_on() {
    let server = FakeServer::new(clock());
    let a = device(&server);
    for i in 0..1_700 {
        a.create(&format!("task {i}")).await;
    }
    push(&a).await;
    let b = device(&server);
    b.link.set_fault(Fault::PullsBreakAfter(3));
    let broken = round(&b, true).await;
    assert!(!broken.succeeded(), "the fourth page never came");
    assert_eq!(
        b.store.counts().unwrap().tasks,
        1_500,
        "three pages of 500 kept"
    );
    b.link.set_fault(Fault::None);
    let pulls = b.link.pulls();
    let healed = round(&b, true).await;
    assert!(healed.succeeded(), "{:?}", healed.errors);
    assert_eq!(b.store.counts().unwrap().tasks, 1_700);
    assert_eq!(
        b.link.pulls() - pulls,
        1,
        "only the last page was asked again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_pages_forever_neither_hangs_sync_nor_starves_pushes() {
    let (server, b, sync, _stop) = hostile(Fault::EndlessPages).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(b.create(&format!("local {i}")).await.id);
    }
    until("every local create pushed", Duration::from_secs(5), || {
        let held = server.tasks();
        ids.iter().all(|id| held.iter().any(|t| t.id == *id))
    })
    .await;
    // At most about a live pull a second, each with a slice of 20 pages, and a slice every
    // few seconds: bounded, not a loop.
    let pulls = pulls_in(&b, Duration::from_secs(3)).await;
    assert!(
        pulls <= 150,
        "{pulls} pulls in 3 s from a server that pages forever"
    );
    let started = Instant::now();
    let report = sync.sync_now().await;
    assert!(
        started.elapsed() < HOSTILE_PULL_BUDGET + Duration::from_secs(5),
        "taskctl sync took {:?}",
        started.elapsed()
    );
    assert!(!report.success);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.kind == SyncErrorKind::Unfinished),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cursors_that_alternate_end_the_round_with_a_bad_answer() {
    let (_server, b, sync, _stop) = hostile(Fault::AlternatingCursors).await;
    let report = tokio::time::timeout(Duration::from_secs(10), sync.sync_now())
        .await
        .expect("the round ends");
    assert!(!report.success);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.kind == SyncErrorKind::BadAnswer && e.message.contains("came back")),
        "{report:?}"
    );
    let pulls = pulls_in(&b, Duration::from_secs(3)).await;
    assert!(pulls <= 10, "{pulls} pulls in 3 s");
}

#[tokio::test(start_paused = true)]
async fn empty_pages_that_say_there_is_more_are_a_bad_answer() {
    let (_server, b, sync, _stop) = hostile(Fault::EmptyEndlessPages).await;
    let report = tokio::time::timeout(Duration::from_secs(10), sync.sync_now())
        .await
        .expect("the round ends");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.kind == SyncErrorKind::BadAnswer && e.message.contains("empty page")),
        "{report:?}"
    );
    let pulls = pulls_in(&b, Duration::from_secs(3)).await;
    assert!(pulls <= 6, "{pulls} pulls in 3 s");
}

#[tokio::test(start_paused = true)]
async fn the_first_change_after_a_quiet_spell_is_pushed_at_once_and_a_burst_shares_a_batch() {
    let server = FakeServer::new(clock());
    let a = device(&server);
    let debounce = Duration::from_secs(2);
    let (sync, _stop) = engine(
        &a,
        SyncSettings {
            flush_debounce: debounce,
            ..settings()
        },
    );
    until("online", Duration::from_secs(5), || {
        sync.connectivity().state == Connectivity::Online
    })
    .await;
    let mut events = a.events.subscribe();
    let first = a.create("leading edge").await;
    let made = Instant::now();
    until("the first change on the server", debounce / 2, || {
        server.tasks().iter().any(|t| t.id == first.id)
    })
    .await;
    assert!(made.elapsed() < debounce / 2);
    // Once that round is over, changes made within the window wait for it to close, then go
    // out together.
    tokio::time::timeout(debounce / 2, async {
        // The round that sent it (a round that started before may finish first).
        let mut sent = false;
        loop {
            match events.recv().await.unwrap().event {
                Event::Sync(tasksync_proto::events::SyncProgress::BatchSent { .. }) => sent = true,
                Event::Sync(tasksync_proto::events::SyncProgress::RoundFinished(_)) if sent => {
                    return
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the first round finishes");
    let second = a.create("second").await;
    let third = a.create("third").await;
    until("the burst on the server", debounce * 2, || {
        let held = server.tasks();
        [second.id, third.id]
            .iter()
            .all(|id| held.iter().any(|t| t.id == *id))
    })
    .await;
    let mut batches = vec![1];
    while let Ok(event) = events.try_recv() {
        if let Event::Sync(tasksync_proto::events::SyncProgress::BatchSent { items }) = event.event
        {
            batches.push(items);
        }
    }
    assert_eq!(batches, vec![1, 2], "the burst shares one batch");
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_batch_is_not_reported_as_answered_or_failed() {
    let server = FakeServer::new(clock());
    let b = device(&server);
    let (sync, _stop) = online_engine(&b).await;
    b.link.set_fault(Fault::Offline);
    let mut events = b.events.subscribe();
    b.create("waits").await;
    let report = sync.sync_now().await;
    assert!(report.offline, "{report:?}");
    assert_eq!(report.failed_items, 0);
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(
                event.event,
                Event::Sync(tasksync_proto::events::SyncProgress::BatchAnswered { .. })
            ),
            "{:?}",
            event.event
        );
    }
    assert_eq!(b.store.queue(false).unwrap()[0].entry.retry_count, 0);
}

#[tokio::test(start_paused = true)]
async fn a_server_restored_from_an_older_backup_is_pulled_again_from_the_start() {
    let server = FakeServer::new(clock());
    let a = device(&server);
    for title in ["one", "two", "three"] {
        a.create(title).await;
    }
    push(&a).await;
    let b = device(&server);
    let (sync, _stop) = online_engine(&b).await;
    until("b pulled the three tasks", Duration::from_secs(5), || {
        b.store.list(false, None).map(|l| l.len()).unwrap_or(0) == 3
    })
    .await;
    // The server comes back from a backup older than b's cursor, with a change b never saw.
    let restored = FakeServer::new(clock());
    let c = device(&restored);
    let from_backup = c.create("from the backup").await;
    push(&c).await;
    b.link.repoint(restored.clone());
    let report = sync.sync_now().await;
    assert!(report.success, "{report:?}");
    assert_eq!(
        b.store.get(from_backup.id).map(|t| t.title).ok().as_deref(),
        Some("from the backup"),
        "the pull started again from the beginning"
    );
    // Live pulls go on from the new cursor.
    let later = c.create("after the restore").await;
    push(&c).await;
    until("the live pull", Duration::from_secs(5), || {
        b.store.get(later.id).is_ok()
    })
    .await;
}

/// Two devices retitle one task offline from the same title. Whichever pushes first, both
/// report the conflict (the second from its own push and pull, the first from its next
/// pull), with the field and which side kept its value, and both histories hold the lost
/// value as a conflict entry, so it can be restored.
#[tokio::test(start_paused = true)]
async fn concurrent_edits_are_reported_on_both_devices_whichever_pushes_first() {
    for a_first in [true, false] {
        let server = FakeServer::new(clock());
        let (a, b) = (device(&server), device(&server));
        let task = a.create("Buy oat milk").await;
        assert!(round(&a, true).await.succeeded());
        assert!(round(&b, true).await.succeeded());
        for (device, title) in [(&a, "Buy oat milk (A)"), (&b, "Buy oat milk (B)")] {
            let patch = tasksync_proto::TaskPatch {
                title: Some(title.into()),
                ..Default::default()
            };
            device.store.update(task.id, patch).await.unwrap();
            tokio::time::advance(Duration::from_millis(5)).await;
        }
        let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
        let pushed_first = round(first, true).await;
        assert!(pushed_first.resolved.is_empty(), "a_first={a_first}");
        let pushed_second = round(second, true).await;
        let pulled_later = round(first, true).await;
        // B edited last, so B's title is kept on both.
        let kept = "Buy oat milk (B)";
        for (name, device, outcome) in [
            ("second", second, &pushed_second),
            ("first", first, &pulled_later),
        ] {
            assert_eq!(
                outcome.resolved.len(),
                1,
                "a_first={a_first}: the device that pushed {name} reports one conflict: {:?}",
                outcome.resolved
            );
            let conflict = &outcome.resolved[0];
            assert_eq!(conflict.task_id, task.id);
            assert_eq!(conflict.fields[0].field, tasksync_proto::wire::Field::Title);
            let expected = if std::ptr::eq(device, &b) {
                tasksync_proto::ipc::Kept::Local
            } else {
                tasksync_proto::ipc::Kept::Remote
            };
            assert_eq!(
                conflict.fields[0].kept, expected,
                "a_first={a_first}, {name}"
            );
            assert_eq!(device.store.get(task.id).unwrap().title, kept);
            let history = device.store.history(task.id).unwrap();
            assert!(
                history.entries.iter().any(|entry| entry.conflict
                    && entry.old == "\"Buy oat milk (A)\""
                    && entry.new == format!("{kept:?}")),
                "a_first={a_first}, {name}: the lost value is in the history: {:?}",
                history.entries
            );
        }
        // Nothing more to report: the conflict was learned once on each side.
        assert!(round(first, true).await.resolved.is_empty());
        assert!(round(second, true).await.resolved.is_empty());
    }
}
