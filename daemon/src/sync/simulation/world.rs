//! One simulated world: three devices, each a real store and a real sync engine, syncing
//! through the server's core over journaled links, and the driver that plays the user and
//! the network against them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tasksync_proto::lww::{same_value, FieldClock};
use tasksync_proto::task::Priority;
use tasksync_proto::timestamp::Timestamp;
use tasksync_proto::wire::{Field, Operation, WireTask};
use tasksync_proto::{NewTask, Task, TaskPatch};
use tokio::time::Instant;
use uuid::Uuid;

use super::link::{Journal, SimLink};
use super::Coverage;
use crate::connectivity::ProbePolicy;
use crate::entropy::seeded::SplitMix64;
use crate::events::Events;
use crate::service::shutdown::{channel, ShutdownTrigger};
use crate::store::Store;
use crate::sync::backoff::RetryPolicy;
use crate::sync::engine::{spawn_with, SyncHandle};
use crate::sync::fake_server::{simulated_clock, FakeLink, FakeServer, Fault};
use crate::sync::settings::SyncSettings;
use crate::sync::transport::Transport;

const REPLICAS: usize = 3;
/// Driver steps before every fault heals.
const STEPS: usize = 50;
/// Clocks stay within this of the server's, so no device is ever "far ahead" of another.
const MAX_SKEW_MS: u64 = 4 * 60 * 1000;
/// How long the queues may take to drain once every fault healed.
const DRAIN: Duration = Duration::from_secs(180);
/// Pulls a device may send on its own in any 10 simulated seconds, whatever the server does.
/// Against a server that pages forever, pulls go out in 20-page slices: rounds continue after
/// 250 ms doubling to 5 s while slices bring nothing new (at once while they do), live pulls
/// that say there is more pull a slice each, paused 500 ms doubling, and quick live answers
/// have a budget of 10, then one a second; every change another device makes is news again.
/// A restart starts every pause over. The runs stay near 600 at worst (bursts after restarts
/// and news); a loop sends a request per round trip, 1 to 5 ms here: 3,000 in 10 s.
pub(super) const MAX_PULLS_PER_10_S: usize = 1000;
/// The tags users add and remove: few, so that two devices often touch the same tag.
const TAGS: [&str; 4] = ["home", "shop", "work", "next"];
/// The attribute keys apps set and remove, and their values.
const KEYS: [&str; 3] = ["app.colour", "app.size", "sim.note"];
const VALUES: [&str; 3] = ["red", "blue", "large"];
const PROJECTS: [&str; 3] = ["home", "home.garden", "work"];
/// Due dates fall on one of these days after this instant (2026-01-01).
const DUE_BASE_MS: i64 = 1_767_225_600_000;

/// The driver's choices, a stream of their own (ids and jitter draw from `crate::entropy`).
struct Rng(SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize])
    }

    fn tag(&mut self) -> String {
        TAGS[self.below(TAGS.len() as u64) as usize].to_string()
    }

    /// A few tags of the alphabet (possibly none).
    fn tags(&mut self) -> std::collections::BTreeSet<String> {
        TAGS.iter()
            .filter(|_| self.chance(30))
            .map(|tag| tag.to_string())
            .collect()
    }

    fn attribute(&mut self) -> (String, String) {
        let key = KEYS[self.below(KEYS.len() as u64) as usize].to_string();
        let value = VALUES[self.below(VALUES.len() as u64) as usize].to_string();
        (key, value)
    }

    fn due(&mut self) -> Timestamp {
        Timestamp::from_millis(DUE_BASE_MS + self.below(30) as i64 * 86_400_000)
            .expect("a due date in range")
    }

    fn priority(&mut self) -> Priority {
        [Priority::H, Priority::M, Priority::L][self.below(3) as usize]
    }

    fn project(&mut self) -> String {
        PROJECTS[self.below(PROJECTS.len() as u64) as usize].to_string()
    }

    /// A change of the tags of a task that has `current`: add one, remove one (mostly one it
    /// has), or (rarely) replace the whole set.
    fn tag_change(&mut self, current: &std::collections::BTreeSet<String>, patch: &mut TaskPatch) {
        match self.below(10) {
            0..=4 => {
                patch.add_tags.insert(self.tag());
            }
            5..=8 => {
                let has: Vec<&String> = current.iter().collect();
                let tag = match self.pick(&has) {
                    Some(tag) if self.chance(80) => tag.clone(),
                    _ => self.tag(),
                };
                patch.remove_tags.insert(tag);
            }
            _ => patch.tags = Some(self.tags()),
        }
    }
}

/// A write the store acknowledged, field by field.
struct Ack {
    task: WireTask,
    fields: Vec<Field>,
    clock: FieldClock,
}

/// A device while it runs.
struct Running {
    store: Arc<Store>,
    events: Arc<Events>,
    sync: SyncHandle,
    stop: ShutdownTrigger,
}

struct Replica {
    path: PathBuf,
    skew: Arc<AtomicI64>,
    link: Arc<FakeLink>,
    sim: Arc<SimLink>,
    device: Uuid,
    running: Option<Running>,
}

impl Replica {
    fn running(&self) -> &Running {
        self.running
            .as_ref()
            .expect("the replica runs between steps")
    }
}

pub(super) struct World {
    _dir: tempfile::TempDir,
    /// When the run began, in simulated time.
    start: Instant,
    rng: Rng,
    journal: Arc<Journal>,
    server: Arc<FakeServer>,
    replicas: Vec<Replica>,
    settings: SyncSettings,
    acks: Vec<Ack>,
    pub(super) coverage: Coverage,
}

fn scratch() -> tempfile::TempDir {
    // Memory-backed where there is one: thousands of small databases per test.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("a temporary folder")
}

impl World {
    pub(super) fn new(seed: u64) -> Result<World, String> {
        let dir = scratch();
        let start = Instant::now();
        let journal = Journal::new();
        let server = FakeServer::new(simulated_clock(start, Arc::default()));
        let mut rng = Rng(SplitMix64(seed));
        let settings = SyncSettings {
            server: Some("fake://server".into()),
            batch_size: 1 + rng.below(6) as usize,
            retry: RetryPolicy {
                base: Duration::from_millis(50),
                max: Duration::from_secs(2),
            },
            request_timeout: Duration::from_secs(5),
            probe: ProbePolicy {
                min: Duration::from_millis(500),
                max: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
            },
            pull_interval: Duration::from_secs(5),
            live_wait: Duration::from_secs(3),
            forced_pull_budget: Duration::from_secs(5),
            network_hints: false,
            ..SyncSettings::default()
        };
        let mut replicas = Vec::new();
        for r in 0..REPLICAS {
            let skew = Arc::new(AtomicI64::new(
                rng.below(2 * MAX_SKEW_MS) as i64 - MAX_SKEW_MS as i64,
            ));
            let link = FakeLink::new(server.clone());
            let sim = SimLink::new(format!("r{r}"), link.clone(), journal.clone());
            let path = dir.path().join(format!("replica-{r}.db"));
            let mut replica = Replica {
                path,
                skew,
                link,
                sim,
                device: Uuid::nil(),
                running: None,
            };
            let running = start_replica(&replica, start, &settings)?;
            replica.device = running.store.device_id();
            replica.running = Some(running);
            replicas.push(replica);
        }
        Ok(World {
            _dir: dir,
            start,
            rng,
            journal,
            server,
            replicas,
            settings,
            acks: Vec::new(),
            coverage: Coverage::default(),
        })
    }

    pub(super) fn trace(&self) -> String {
        self.journal.trace()
    }

    pub(super) fn tail(&self) -> String {
        self.journal.tail()
    }

    pub(super) fn journal(&self) -> Vec<String> {
        self.journal.lines()
    }

    fn note(&self, line: String) {
        self.journal.note(format!("driver {line}"));
    }

    /// Plays the user and the network for every step, then heals everything and lets the
    /// engines drain their queues; the error names the broken check.
    pub(super) async fn run(&mut self) -> Result<(), String> {
        for _ in 0..STEPS {
            let pause = self.rng.below(800);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            self.step().await?;
        }
        self.check_dead_letters()?;
        self.drain().await?;
        self.coverage.concurrent_edits += self.server.conflicts().len() as u64;
        self.check_pulls()?;
        self.check_converged()
    }

    async fn step(&mut self) -> Result<(), String> {
        let r = self.rng.below(REPLICAS as u64) as usize;
        match self.rng.below(100) {
            0..=44 => self.user_write(r).await?,
            45..=51 => self.forced_sync(r).await,
            52..=69 => {
                let fault = match self.rng.below(20) {
                    0..=5 => Fault::None,
                    6..=8 => Fault::Offline,
                    9 | 10 => Fault::Busy,
                    11 => Fault::LoseNextAnswer,
                    12 => Fault::Fail,
                    13 => Fault::Reject,
                    14 => Fault::Lie,
                    15 => Fault::NoWait,
                    16 => Fault::SamePage,
                    17 => Fault::BackwardsCursor,
                    18 => Fault::EndlessPages,
                    _ => match self.rng.below(3) {
                        0 => Fault::EmptyEndlessPages,
                        1 => Fault::AlternatingCursors,
                        _ => Fault::Unauthorized,
                    },
                };
                self.coverage.fault(fault);
                self.note(format!("link r{r}: {fault:?}"));
                self.replicas[r].link.set_fault(fault);
            }
            70..=74 => {
                let fault = match self.rng.below(3) {
                    0 => Fault::Offline,
                    1 => Fault::Busy,
                    _ => Fault::None,
                };
                self.coverage.fault(fault);
                self.note(format!("every link: {fault:?}"));
                for replica in &self.replicas {
                    replica.link.set_fault(fault);
                }
            }
            75..=81 => self.crash(r).await?,
            82..=86 => {
                let skew = self.rng.below(2 * MAX_SKEW_MS) as i64 - MAX_SKEW_MS as i64;
                self.note(format!("clock of r{r} jumps to skew {skew} ms"));
                self.replicas[r].skew.store(skew, Ordering::SeqCst);
            }
            _ => {}
        }
        Ok(())
    }

    /// A create, edit or delete on replica `r`, as a local command makes it; recorded if the
    /// store acknowledged it.
    async fn user_write(&mut self, r: usize) -> Result<(), String> {
        let running = self.replicas[r].running();
        let (store, events) = (running.store.clone(), running.events.clone());
        let live: Vec<Task> = store
            .list(false, None)
            .map_err(|e| format!("r{r} cannot list: {e}"))?;
        let choice = self.rng.below(100);
        let target = self
            .rng
            .pick(&(0..live.len()).collect::<Vec<_>>())
            .map(|i| &live[i]);
        let (task, operation, fields) = match (choice, target) {
            (0..=34, _) | (_, None) => {
                let title = format!("task {}", self.rng.below(1000));
                let description = self.rng.chance(50).then(|| "d".to_string());
                let mut new = NewTask {
                    title,
                    description,
                    id: None,
                    ..Default::default()
                };
                if self.rng.chance(40) {
                    new.tags = self.rng.tags();
                }
                if self.rng.chance(20) {
                    let (key, value) = self.rng.attribute();
                    new.attributes.insert(key, value);
                }
                if self.rng.chance(20) {
                    new.due = Some(self.rng.due());
                }
                if self.rng.chance(20) {
                    new.priority = Some(self.rng.priority());
                }
                if self.rng.chance(20) {
                    new.project = Some(self.rng.project());
                }
                let task = store
                    .create(new)
                    .await
                    .map_err(|e| format!("r{r}: a create failed: {e}"))?;
                self.coverage.creates += 1;
                // What the store queues for a create: every field, every tag and attribute.
                let fields = Field::all_of(&WireTask::from_task(&task, Uuid::nil()));
                (task, Operation::Create, fields)
            }
            (35..=79, Some(target)) => {
                let id = target.id;
                let mut patch = TaskPatch::default();
                if self.rng.chance(35) {
                    patch.title = Some(format!("title {}", self.rng.below(1000)));
                }
                if self.rng.chance(25) {
                    let text = format!("desc {}", self.rng.below(1000));
                    patch.description = Some(self.rng.chance(50).then_some(text));
                }
                if self.rng.chance(50) {
                    self.rng.tag_change(&target.tags, &mut patch);
                }
                if self.rng.chance(30) {
                    let (key, value) = self.rng.attribute();
                    patch
                        .attributes
                        .insert(key, self.rng.chance(70).then_some(value));
                }
                if self.rng.chance(12) {
                    patch.due = Some(self.rng.chance(75).then(|| self.rng.due()));
                }
                if self.rng.chance(12) {
                    patch.priority = Some(self.rng.chance(75).then(|| self.rng.priority()));
                }
                if self.rng.chance(10) {
                    patch.project = Some(self.rng.chance(75).then(|| self.rng.project()));
                }
                if patch.is_empty() || self.rng.chance(25) {
                    patch.completed = Some(self.rng.chance(50));
                }
                let (task, fields) = store
                    .update_if(id, patch, None)
                    .await
                    .map_err(|e| format!("r{r}: an update of {id} failed: {e}"))?;
                // A field set to the value it has is no change: nothing is queued for it.
                if fields.is_empty() {
                    self.note(format!("no-op update of {id} on r{r}"));
                    return Ok(());
                }
                self.coverage.edits += 1;
                self.count_concurrent_tags(r, id, &fields)?;
                (task, Operation::Update, fields)
            }
            (_, Some(target)) => {
                let id = target.id;
                let task = store
                    .delete(id)
                    .await
                    .map_err(|e| format!("r{r}: a delete of {id} failed: {e}"))?;
                self.coverage.deletes += 1;
                (task, Operation::Delete, vec![Field::IsDeleted])
            }
        };
        events.local_change();
        self.note(format!(
            "{operation} {} on r{r} at {}: {}",
            task.id,
            task.updated_at,
            fields
                .iter()
                .map(Field::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
        let device = self.replicas[r].device;
        self.acks.push(Ack {
            task: WireTask::from_task(&task, device),
            fields,
            clock: FieldClock::new(task.updated_at, operation, device),
        });
        Ok(())
    }

    /// Counts a tag edit on replica `r` made while another device holds an edit of a tag of
    /// the same task that the server has not applied: neither device can have seen the
    /// other's, so the server merges them as concurrent edits (of the same tag, or of
    /// different tags).
    fn count_concurrent_tags(
        &mut self,
        r: usize,
        task_id: Uuid,
        fields: &[Field],
    ) -> Result<(), String> {
        let mine: Vec<&Field> = fields
            .iter()
            .filter(|f| matches!(f, Field::Tag(_)))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let applied = self.server.merges();
        let (mut same, mut different) = (false, false);
        for (s, replica) in self.replicas.iter().enumerate() {
            if s == r {
                continue;
            }
            let rows = replica
                .running()
                .store
                .queue(false)
                .map_err(|e| e.to_string())?;
            for row in rows
                .iter()
                .filter(|row| row.entry.task_id == task_id && !applied.contains_key(&row.entry.id))
            {
                for field in &row.entry.changed_fields {
                    if let Field::Tag(_) = field {
                        if mine.contains(&field) {
                            same = true;
                        } else {
                            different = true;
                        }
                    }
                }
            }
        }
        self.coverage.concurrent_same_tag += u64::from(same);
        self.coverage.concurrent_different_tags += u64::from(different);
        Ok(())
    }

    /// `taskctl sync` on replica `r`.
    async fn forced_sync(&mut self, r: usize) {
        self.coverage.forced_syncs += 1;
        let replica = &self.replicas[r];
        replica.sim.set_forced(true);
        let report = replica.running().sync.sync_now().await;
        replica.sim.set_forced(false);
        self.note(format!(
            "sync on r{r}: synced {} failed {} pulled {} conflicts {} errors {:?}",
            report.synced_items,
            report.failed_items,
            report.pulled_items,
            report.conflicts,
            report.errors.iter().map(|e| e.kind).collect::<Vec<_>>()
        ));
    }

    /// Kills replica `r`'s daemon wherever it is and starts it again from its database.
    async fn crash(&mut self, r: usize) -> Result<(), String> {
        self.coverage.crashes += 1;
        self.note(format!("crash and restart r{r}"));
        let replica = &mut self.replicas[r];
        let Some(running) = replica.running.take() else {
            return Err(format!("r{r} was not running"));
        };
        running.stop.trigger();
        let store = running.store;
        drop((running.events, running.sync));
        // The engine stops at its next poll, dropping its round, its live pull and the store.
        let mut polls = 0;
        while Arc::strong_count(&store) > 1 {
            polls += 1;
            if polls > 1000 {
                return Err(format!("r{r}'s engine did not stop"));
            }
            tokio::task::yield_now().await;
        }
        store.shut_down();
        drop(store);
        replica.running = Some(start_replica(replica, self.start, &self.settings)?);
        Ok(())
    }

    /// Before anything heals: an operation is dead-lettered only after as many refusals by
    /// the server as attempts it counts.
    fn check_dead_letters(&mut self) -> Result<(), String> {
        for (r, replica) in self.replicas.iter().enumerate() {
            let rows = replica
                .running()
                .store
                .queue(false)
                .map_err(|e| e.to_string())?;
            let seen = replica.sim.seen();
            for row in rows.iter().filter(|row| row.entry.retry_count > 0) {
                let refused = seen.rejections.get(&row.entry.id).copied().unwrap_or(0);
                if refused < row.entry.retry_count {
                    return Err(format!(
                        "r{r}: operation {} counts {} failed attempt(s) ({}) but the server refused it {refused} time(s)",
                        row.entry.id, row.entry.retry_count, row.entry.state
                    ));
                }
                if row.entry.state == tasksync_proto::ipc::QueueState::Failed {
                    self.coverage.dead_letters += 1;
                }
            }
        }
        Ok(())
    }

    /// Heals every fault, sends dead letters again, and waits (in simulated time) until every
    /// queue is empty and every replica holds what the server holds.
    async fn drain(&mut self) -> Result<(), String> {
        self.note("every fault heals".into());
        for replica in &self.replicas {
            replica.link.set_fault(Fault::None);
        }
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline {
            let mut queued = 0;
            for replica in &self.replicas {
                let running = replica.running();
                let failed: Vec<i64> = running
                    .store
                    .queue(true)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|row| row.seq)
                    .collect();
                if !failed.is_empty() {
                    running
                        .store
                        .retry(failed)
                        .await
                        .map_err(|e| e.to_string())?;
                    running.events.local_change();
                }
                queued += running.store.queue(false).map_err(|e| e.to_string())?.len();
            }
            if queued == 0
                && self.differences()?.is_empty()
                && self.unreported_conflicts()?.is_empty()
            {
                self.note("drained".into());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut left = self.differences()?;
        left.extend(self.unreported_conflicts()?);
        for replica in &self.replicas {
            for row in replica
                .running()
                .store
                .queue(false)
                .map_err(|e| e.to_string())?
            {
                left.push(format!(
                    "queued: {} {} of {} ({}, {} tries: {:?})",
                    row.entry.id,
                    row.entry.operation,
                    row.entry.task_id,
                    row.entry.state,
                    row.entry.retry_count,
                    row.entry.error_message
                ));
            }
        }
        Err(format!(
            "the replicas did not converge within {DRAIN:?} after every fault healed:\n  {}",
            left.join("\n  ")
        ))
    }

    /// How each replica differs from the server (empty once they are all equal).
    fn differences(&self) -> Result<Vec<String>, String> {
        let server: BTreeMap<Uuid, WireTask> =
            self.server.tasks().into_iter().map(|t| (t.id, t)).collect();
        let mut found = Vec::new();
        for (r, replica) in self.replicas.iter().enumerate() {
            let local: Vec<Task> = replica
                .running()
                .store
                .list(true, None)
                .map_err(|e| e.to_string())?;
            if local.len() != server.len() {
                found.push(format!(
                    "r{r} has {} tasks, the server {}",
                    local.len(),
                    server.len()
                ));
            }
            for task in local {
                match server.get(&task.id) {
                    None => found.push(format!("r{r} has {} the server lacks", task.id)),
                    Some(remote) => {
                        let mine = WireTask::from_task(&task, remote.device_id);
                        if &mine != remote {
                            found.push(format!(
                                "r{r} differs from the server:\n    local  {mine:?}\n    server {remote:?}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// The conflicts of the server's feed that a device which wrote one of the two values
    /// does not have in its history as a conflict entry holding the lost value (empty once
    /// both sides of every conflict reported it).
    fn unreported_conflicts(&self) -> Result<Vec<String>, String> {
        let mut missing = Vec::new();
        for conflict in self.server.conflicts() {
            for device in [conflict.kept_device, conflict.lost_device] {
                let Some((r, replica)) = self
                    .replicas
                    .iter()
                    .enumerate()
                    .find(|(_, replica)| replica.device == device)
                else {
                    missing.push(format!("a conflict names an unknown device: {conflict:?}"));
                    continue;
                };
                let history = replica
                    .running()
                    .store
                    .history(conflict.task_id)
                    .map_err(|e| e.to_string())?;
                let lost = conflict.lost.to_string();
                let reported = history.entries.iter().any(|entry| {
                    entry.conflict && entry.field == conflict.field && entry.old == lost
                });
                if !reported {
                    missing.push(format!("r{r} never reported the conflict {conflict:?}"));
                }
            }
        }
        Ok(missing)
    }

    /// No device pulled in a loop: at most [`MAX_PULLS_PER_10_S`] pulls of its own in any
    /// 10 simulated seconds, whatever the server did.
    fn check_pulls(&mut self) -> Result<(), String> {
        for (r, replica) in self.replicas.iter().enumerate() {
            let seen = replica.sim.seen();
            let times = &seen.automatic_pulls;
            let mut first = 0;
            for (last, &at) in times.iter().enumerate() {
                while at - times[first] >= 10_000 {
                    first += 1;
                }
                let count = last - first + 1;
                self.coverage.max_pulls_per_10_s = self.coverage.max_pulls_per_10_s.max(count);
                if count > MAX_PULLS_PER_10_S {
                    return Err(format!(
                        "r{r} sent {count} pulls between {} and {at} ms: a busy loop",
                        times[first]
                    ));
                }
            }
            self.coverage.conflicts += seen.conflicts;
            self.coverage.live_news += seen.live_news;
        }
        Ok(())
    }

    /// Once everything drained: nothing acknowledged is lost (each field holds the value of
    /// its latest acknowledged write), the server applied every acknowledged operation
    /// exactly once, and every replica equals the server.
    fn check_converged(&self) -> Result<(), String> {
        let server: BTreeMap<Uuid, WireTask> =
            self.server.tasks().into_iter().map(|t| (t.id, t)).collect();
        let mut latest: BTreeMap<(Uuid, Field), &Ack> = BTreeMap::new();
        for ack in &self.acks {
            for field in &ack.fields {
                let slot = latest.entry((ack.task.id, field.clone())).or_insert(ack);
                if ack.clock > slot.clock {
                    *slot = ack;
                }
            }
        }
        for ((task_id, field), ack) in &latest {
            let Some(stored) = server.get(task_id) else {
                return Err(format!(
                    "acknowledged task {task_id} never reached the server"
                ));
            };
            if !same_value(&ack.task, stored, field) {
                return Err(format!(
                    "task {task_id}: {field} lost the acknowledged write at {:?}: server has {stored:?}, the write was {:?}",
                    ack.clock, ack.task
                ));
            }
        }
        let applied = self.server.merges();
        if let Some((op, n)) = applied.iter().find(|(_, &n)| n != 1) {
            return Err(format!("the server applied operation {op} {n} times"));
        }
        if applied.len() != self.acks.len() {
            return Err(format!(
                "{} operations acknowledged, {} applied by the server",
                self.acks.len(),
                applied.len()
            ));
        }
        let differences = self.differences()?;
        if !differences.is_empty() {
            return Err(differences.join("\n"));
        }
        Ok(())
    }

    /// Stops every engine (the end of a run).
    pub(super) fn stop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(running) = replica.running.take() {
                running.stop.trigger();
            }
        }
    }
}

/// Opens replica's store and starts its engine, talking to the server over its link.
fn start_replica(
    replica: &Replica,
    start: Instant,
    settings: &SyncSettings,
) -> Result<Running, String> {
    let store = Store::open_inline(&replica.path, simulated_clock(start, replica.skew.clone()))
        .map_err(|e| format!("cannot open {}: {e}", replica.path.display()))?;
    let store = Arc::new(store);
    let events = Arc::new(Events::default());
    let (stop, shutdown) = channel();
    let link = replica.sim.clone();
    let sync = spawn_with(
        store.clone(),
        events.clone(),
        Arc::default(),
        settings.clone(),
        shutdown,
        Arc::new(move |_: &SyncSettings| Ok(Some(link.clone() as Arc<dyn Transport>))),
    )
    .map_err(|e| format!("cannot start the engine: {e}"))?;
    Ok(Running {
        store,
        events,
        sync,
        stop,
    })
}
