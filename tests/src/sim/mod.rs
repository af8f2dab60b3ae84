//! The parts of the simulator (`tests/tests/simulation.rs`): a seeded random source, a clock on
//! tokio's (paused) time, a store that injects faults into the hosts' reads and writes of work
//! and checks that commits under a stale partition epoch are refused, and the check of an
//! instance's history. The faulty store wraps any store: the simulator's memory store, or a
//! real SQLite file (`tests/tests/faults_sqlite.rs`, which checks histories the same way).

mod faults;
mod store;
mod wakes;

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;

use chrono::{DateTime, TimeDelta, Utc};
use durable::history::{EventKind, HistoryEvent};
use durable::{Client, Clock, RuntimeStatus};
use tokio::time::Instant;

pub use faults::{FaultRates, Faults};
pub use store::FaultStore;

/// A small deterministic random source (splitmix64): the same seed, the same draws.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Orchestration time on tokio's clock: `base` plus the time since the clock was made, so
/// paused tokio time moves it and its timers.
#[derive(Clone)]
pub struct SimClock {
    base: DateTime<Utc>,
    started: Instant,
}

impl SimClock {
    /// A clock at a fixed date (the same in every run) now.
    pub fn new() -> Self {
        SimClock {
            base: DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(365 * 60),
            started: Instant::now(),
        }
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        let since = TimeDelta::from_std(self.started.elapsed()).unwrap_or(TimeDelta::MAX);
        self.base + since
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let left = (at - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(left))
    }
}

/// What is wrong with an instance's history: a step completed twice, a completion of a step
/// never scheduled, steps out of order, a start or an end that is not exactly once.
pub fn history_problems(id: &str, history: &[HistoryEvent]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut scheduled = BTreeSet::new();
    let mut completed = BTreeMap::new();
    let mut last_step = -1;
    let (mut starts, mut ends) = (0, 0);
    for (at, event) in history.iter().enumerate() {
        if event.event_id >= 0 {
            if event.event_id <= last_step {
                problems.push(format!(
                    "{id}: step {} at position {at} after step {last_step}",
                    event.event_id
                ));
            }
            last_step = event.event_id;
            scheduled.insert(event.event_id);
        }
        let completes = match &event.kind {
            EventKind::ExecutionStarted { .. } => {
                starts += 1;
                None
            }
            EventKind::ExecutionCompleted { .. } => {
                ends += 1;
                None
            }
            EventKind::TaskCompleted {
                task_scheduled_id, ..
            }
            | EventKind::TaskFailed {
                task_scheduled_id, ..
            } => Some(*task_scheduled_id),
            EventKind::TimerFired { timer_id, .. } => Some(*timer_id),
            EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id, ..
            } => Some(*task_scheduled_id),
            _ => None,
        };
        if let Some(step) = completes {
            if !scheduled.contains(&step) {
                problems.push(format!(
                    "{id}: step {step} completed at position {at} before it was scheduled"
                ));
            }
            *completed.entry(step).or_insert(0) += 1;
        }
    }
    for (step, times) in completed {
        if times > 1 {
            problems.push(format!("{id}: step {step} completed {times} times"));
        }
    }
    if starts != 1 || ends != 1 {
        problems.push(format!(
            "{id}: {starts} ExecutionStarted and {ends} ExecutionCompleted events"
        ));
    }
    problems
}

/// The end-of-run check of a load's instances: what [`instance_problems`] found, and the
/// histories it read.
pub struct Checked {
    /// An instance that did not complete, returned the wrong output, or has a history
    /// [`history_problems`] finds wrong.
    pub problems: Vec<String>,
    /// The history of each instance that completed, in the order of the ids.
    pub histories: Vec<(String, Vec<HistoryEvent>)>,
}

/// Checks the instances of `ids` once everything has finished: the `n`th must have completed
/// with `expected(n)`, and its history must have nothing [`history_problems`] finds wrong.
/// An error is a read that failed or an instance that is gone.
pub async fn instance_problems(
    client: &Client,
    ids: &[String],
    expected: impl Fn(u64) -> u64,
) -> Result<Checked, String> {
    let mut checked = Checked {
        problems: Vec::new(),
        histories: Vec::new(),
    };
    let problems = &mut checked.problems;
    for (n, id) in ids.iter().enumerate() {
        let status = client
            .status(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id} is gone"))?;
        if status.runtime_status != RuntimeStatus::Completed {
            problems.push(format!(
                "{id} ended {:?}: {:?}",
                status.runtime_status, status.failure
            ));
            continue;
        }
        let output: u64 = status.output().map_err(|e| e.to_string())?;
        if output != expected(n as u64) {
            problems.push(format!(
                "{id} returned {output}, expected {}",
                expected(n as u64)
            ));
        }
        let history = client
            .store()
            .history(id)
            .await
            .map_err(|e| e.to_string())?;
        problems.extend(history_problems(id, &history));
        checked.histories.push((id.clone(), history));
    }
    Ok(checked)
}

/// Starts an instance as a careful client does while the store fails now and then: after a
/// start that failed it looks whether the instance exists (the failed start may have been
/// applied all the same: a commit applied but reported failed) and starts it again only if
/// not. Starting again blindly could replace an instance that already finished.
pub async fn start_retrying<F, Fut>(client: &Client, id: &str, start: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<durable::InstanceId, durable::Error>>,
{
    for _ in 0..100 {
        match start().await {
            Ok(_) => return Ok(()),
            Err(e) if *e.kind() == durable::ErrorKind::Store => loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                match client.status(id).await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => break,
                    Err(_) => continue,
                }
            },
            Err(e) => return Err(format!("starting {id}: {e}")),
        }
    }
    Err(format!("starting {id}: the store kept failing"))
}
