//! A deterministic simulation of three devices syncing through one server, in the spirit of
//! FoundationDB's and TigerBeetle's: the real stores (SQLite files, their writer inline) and
//! the real sync engines (schedule, live pulls, backoff, probes) against the server's own
//! protocol (`tasksync_core`), on paused tokio time, on one thread.
//!
//! Everything that could differ between two runs of a seed follows from the seed: the
//! driver's choices, every id (`crate::entropy`), every jitter and network delay, the wall
//! clocks (simulated time plus a skew), and the order tasks run in (one thread, `biased`
//! selects). Each run journals its ordered events (`link::Journal`); the digest of the
//! journal is the run's trace, the same on every run and machine.
//!
//! Each seed plays random creates, edits (title, description, completed, due, priority,
//! project, tags added and removed from a small alphabet, attributes set and removed) and
//! deletes, forced syncs, partitions, server outages, 503 storms, 500s, refusals, lost
//! answers, lying and hostile servers (the same page again, cursors that go back or
//! alternate, endless pages), refused tokens, crashes and restarts from the database, and
//! clocks that jump; then every fault heals. Checks:
//! - no operation is dead-lettered (or counts an attempt) without the server refusing it;
//! - no device pulls in a loop, whatever the server does (bounded pulls per 10 s);
//! - the queues drain and every replica equals the server;
//! - nothing acknowledged is lost: each field, each tag and each attribute key holds its
//!   latest acknowledged write;
//! - the server's core applied every acknowledged operation exactly once.
//!
//! `TASKSYNC_SIM_SEED=N` runs seed N alone and prints `simulation seed N trace <hex>`;
//! `TASKSYNC_SIM_SEEDS=N` runs N seeds (default 2,000) spread over eight tests;
//! `TASKSYNC_SIM_JOURNAL=1` with a single seed prints its whole journal.

mod link;
mod world;

use crate::sync::fake_server::Fault;
use world::World;

const DEFAULT_SEEDS: u64 = 2000;
/// Tests the seeds are spread over, so the test runner uses every core.
const SHARES: u64 = 8;

/// What a batch of runs did, so that a run that silently does nothing fails.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Coverage {
    pub(super) creates: u64,
    pub(super) edits: u64,
    /// Edits of a tag while another device held an unsent edit of the same tag of the task.
    pub(super) concurrent_same_tag: u64,
    /// Edits of a tag while another device held an unsent edit of another tag of the task.
    pub(super) concurrent_different_tags: u64,
    pub(super) deletes: u64,
    pub(super) forced_syncs: u64,
    pub(super) crashes: u64,
    pub(super) partitions: u64,
    pub(super) storms: u64,
    pub(super) refusals: u64,
    pub(super) hostile: u64,
    pub(super) conflicts: u64,
    /// Concurrent edits of one field the server recorded (each reported on both sides).
    pub(super) concurrent_edits: u64,
    pub(super) dead_letters: u64,
    pub(super) live_news: u64,
    pub(super) max_pulls_per_10_s: usize,
}

impl Coverage {
    fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::Offline | Fault::PullsBreakAfter(_) => self.partitions += 1,
            Fault::Busy => self.storms += 1,
            Fault::Fail | Fault::Reject | Fault::Lie => self.refusals += 1,
            Fault::NoWait
            | Fault::SamePage
            | Fault::BackwardsCursor
            | Fault::EndlessPages
            | Fault::EmptyEndlessPages
            | Fault::AlternatingCursors => self.hostile += 1,
            Fault::None | Fault::LoseNextAnswer | Fault::Unauthorized => {}
        }
    }

    fn add(&mut self, other: &Coverage) {
        self.creates += other.creates;
        self.edits += other.edits;
        self.concurrent_same_tag += other.concurrent_same_tag;
        self.concurrent_different_tags += other.concurrent_different_tags;
        self.deletes += other.deletes;
        self.forced_syncs += other.forced_syncs;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.storms += other.storms;
        self.refusals += other.refusals;
        self.hostile += other.hostile;
        self.conflicts += other.conflicts;
        self.concurrent_edits += other.concurrent_edits;
        self.dead_letters += other.dead_letters;
        self.live_news += other.live_news;
        self.max_pulls_per_10_s = self.max_pulls_per_10_s.max(other.max_pulls_per_10_s);
    }

    /// What every 100 seeds must at least do (about a third of what they do; concurrent tag
    /// edits, counted conservatively, run at about 5 of one tag and 10 of different tags).
    fn check_floors(&self, seeds: u64) -> Result<(), String> {
        let floors = [
            ("creates", self.creates, 500),
            ("edits", self.edits, 400),
            ("concurrent edits of one tag", self.concurrent_same_tag, 1),
            (
                "concurrent edits of different tags",
                self.concurrent_different_tags,
                3,
            ),
            ("deletes", self.deletes, 60),
            ("forced syncs", self.forced_syncs, 100),
            ("crashes", self.crashes, 100),
            ("partitions", self.partitions, 60),
            ("503 storms", self.storms, 40),
            ("refusals", self.refusals, 30),
            ("hostile servers", self.hostile, 60),
            ("conflicts resolved", self.conflicts, 20),
            (
                "concurrent edits reported on both sides",
                self.concurrent_edits,
                10,
            ),
            ("dead letters", self.dead_letters, 3),
            ("live pulls with news", self.live_news, 100),
        ];
        let short: Vec<String> = floors
            .iter()
            .filter(|(_, seen, per_100)| *seen < per_100 * seeds / 100)
            .map(|(what, seen, per_100)| {
                format!(
                    "{what}: {seen} in {seeds} seeds, want {}",
                    per_100 * seeds / 100
                )
            })
            .collect();
        if short.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the runs covered too little (a check that never meets its case proves nothing): {}",
                short.join("; ")
            ))
        }
    }
}

/// What one seed did.
struct Run {
    result: Result<(), String>,
    trace: String,
    journal: Vec<String>,
    coverage: Coverage,
}

/// Runs one seed on a paused-time runtime of its own, on this thread.
fn run_seed(seed: u64) -> Run {
    // The ids and jitter of the run (a different stream from the driver's choices).
    let _entropy = crate::entropy::seeded::seed(seed ^ 0x0005_EED0_F1D5);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return Run {
                result: Err(format!("no runtime: {e}")),
                trace: String::new(),
                journal: Vec::new(),
                coverage: Coverage::default(),
            }
        }
    };
    runtime.block_on(async {
        let mut world = match World::new(seed) {
            Ok(world) => world,
            Err(e) => {
                return Run {
                    result: Err(e),
                    trace: String::new(),
                    journal: Vec::new(),
                    coverage: Coverage::default(),
                }
            }
        };
        let result = world
            .run()
            .await
            .map_err(|e| format!("{e}\n{}", world.tail()));
        world.stop();
        Run {
            result,
            trace: world.trace(),
            journal: world.journal(),
            coverage: world.coverage,
        }
    })
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs this share of the seeds, then checks the share's coverage.
fn run_share(share: u64) {
    let single = env_number("TASKSYNC_SIM_SEED");
    let seeds: Vec<u64> = match single {
        Some(seed) if seed % SHARES == share => vec![seed],
        Some(_) => Vec::new(),
        None => (0..env_number("TASKSYNC_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS))
            .filter(|seed| seed % SHARES == share)
            .collect(),
    };
    let mut failures = Vec::new();
    let mut coverage = Coverage::default();
    for &seed in &seeds {
        let run = run_seed(seed);
        if single.is_some() {
            println!("simulation seed {seed} trace {}", run.trace);
            if std::env::var_os("TASKSYNC_SIM_JOURNAL").is_some() {
                println!("{}", run.journal.join("\n"));
            }
        }
        coverage.add(&run.coverage);
        if let Err(e) = run.result {
            eprintln!(
                "simulation seed {seed} trace {} failed (replay with TASKSYNC_SIM_SEED={seed}): {e}",
                run.trace
            );
            failures.push(seed);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed: {failures:?} (replay one with TASKSYNC_SIM_SEED=N)",
        failures.len(),
        seeds.len()
    );
    if seeds.len() >= 100 {
        println!(
            "simulation share {share}: {} seeds, {coverage:?}",
            seeds.len()
        );
        if let Err(e) = coverage.check_floors(seeds.len() as u64) {
            panic!("{e}\n{coverage:?}");
        }
    }
}

/// A seed runs the same way twice (the seed of `TASKSYNC_SIM_SEED`, or 11 and 12).
#[test]
fn a_seed_replays_bit_for_bit() {
    let single = env_number("TASKSYNC_SIM_SEED");
    let seed = single.unwrap_or(11);
    let first = run_seed(seed);
    let again = run_seed(seed);
    assert_eq!(first.trace.len(), 64);
    if first.trace != again.trace {
        let at = first
            .journal
            .iter()
            .zip(&again.journal)
            .position(|(a, b)| a != b)
            .unwrap_or(first.journal.len().min(again.journal.len()));
        let around = |journal: &[String]| {
            journal[at.saturating_sub(5)..(at + 3).min(journal.len())].join("\n  ")
        };
        panic!(
            "seed {seed} ran two ways; the journals part at line {at}:\n first:\n  {}\n again:\n  {}",
            around(&first.journal),
            around(&again.journal)
        );
    }
    assert_eq!(first.result, again.result);
    if single.is_none() {
        assert!(first.result.is_ok(), "{:?}", first.result);
        assert_ne!(
            first.trace,
            run_seed(12).trace,
            "two seeds ran the same way"
        );
    }
}

#[test]
fn simulation_share_0() {
    run_share(0);
}

#[test]
fn simulation_share_1() {
    run_share(1);
}

#[test]
fn simulation_share_2() {
    run_share(2);
}

#[test]
fn simulation_share_3() {
    run_share(3);
}

#[test]
fn simulation_share_4() {
    run_share(4);
}

#[test]
fn simulation_share_5() {
    run_share(5);
}

#[test]
fn simulation_share_6() {
    run_share(6);
}

#[test]
fn simulation_share_7() {
    run_share(7);
}
