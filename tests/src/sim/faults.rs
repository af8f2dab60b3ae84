//! The faults the simulator's store injects: their rates, and what the store saw across all
//! hosts (the random source, the trace, the counts).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::store::Store;
use tokio::time::Instant;

use super::Rng;
use super::store::FaultStore;
use super::wakes::Wakes;

/// How often (per thousand calls) each fault is injected while faults are on. The default
/// injects none.
#[derive(Clone, Debug, Default)]
pub struct FaultRates {
    /// A fetch, a read of ready work or of an instance's work item, or a read of a history,
    /// fails.
    pub fetch_fails: u64,
    /// A commit (or an abandon, a release, a park) fails before anything is applied.
    pub commit_fails: u64,
    /// A commit (or an abandon, a release, a park) is applied, then reported failed.
    pub commit_applied_but_fails: u64,
    /// A commit hands the work it read over, then is reported failed, and that work is
    /// marked as read in a commit that was not applied (as when a store that hands
    /// work over before its commit is durable fails that commit): the turns run on it must
    /// be refused, and their instances looked at again.
    pub commit_handed_discarded: u64,
    /// A commit waits first (up to `slow_max`).
    pub commit_slow: u64,
    /// The longest wait of a slow commit.
    pub slow_max: Duration,
    /// A lease renewal fails.
    pub renew_fails: u64,
    /// A partition claim (the host's renewal of its ownership) fails.
    pub claim_fails: u64,
    /// Every claim of the host fails for a while (longer than a lease: its partitions
    /// expire and move to other hosts).
    pub claim_outage: u64,
    /// How long such an outage lasts at most.
    pub outage_max: Duration,
    /// A wake-up the store raises (new work, a changed status) never reaches the host, which
    /// then finds the work by polling (the store asks for a short poll interval).
    pub wake_lost: u64,
}

/// What the store saw across all hosts.
#[derive(Default)]
pub(super) struct State {
    rng: Option<Rng>,
    on: bool,
    started: Option<Instant>,
    trace: Vec<String>,
    /// The highest epoch seen per partition (epochs only go up).
    pub(super) epochs: BTreeMap<u32, u64>,
    /// Commits fenced by an epoch older than the partition's, and how many were refused.
    pub(super) stale_commits: u64,
    pub(super) stale_refused: u64,
    /// Stale commits that were applied: each one is a broken fence.
    pub(super) violations: Vec<String>,
    /// Wake-ups dropped on their way to a host.
    pub(super) wakes_lost: u64,
    /// How many times each fault was injected, by call and fault.
    injected: BTreeMap<String, u64>,
    /// Per host: claims fail until then.
    pub(super) outages: BTreeMap<String, Instant>,
    /// Per host: the partitions it held after its last claim.
    pub(super) held: BTreeMap<String, Vec<u32>>,
}

/// The fault-injecting store's shared part: its random source, the trace and the counts.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    pub(super) rates: Arc<FaultRates>,
}

impl Faults {
    /// Faults drawn from `seed` at `rates`, on from the start.
    pub fn new(seed: u64, rates: FaultRates) -> Self {
        let state = State {
            rng: Some(Rng::new(seed)),
            on: true,
            started: Some(Instant::now()),
            ..State::default()
        };
        Faults {
            state: Arc::new(Mutex::new(state)),
            rates: Arc::new(rates),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops injecting faults (the checks go on).
    pub fn stop(&self) {
        let mut state = self.lock();
        state.on = false;
        state.outages.clear();
    }

    /// Adds a line to the trace, stamped with the time since the faults began (on tokio's
    /// clock: virtual in the simulator).
    pub fn record(&self, line: impl AsRef<str>) {
        let mut state = self.lock();
        let at = state.started.map_or(0, |s| s.elapsed().as_millis());
        state.trace.push(format!("{at:>7}ms {}", line.as_ref()));
    }

    /// Everything recorded so far.
    pub fn trace(&self) -> Vec<String> {
        self.lock().trace.clone()
    }

    /// Commits under a stale epoch seen, and how many were refused.
    pub fn stale_commits(&self) -> (u64, u64) {
        let state = self.lock();
        (state.stale_commits, state.stale_refused)
    }

    /// Stale commits that were applied.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// How many wake-ups were dropped.
    pub fn wakes_lost(&self) -> u64 {
        self.lock().wakes_lost
    }

    /// How many times each fault was injected, by call and fault (`"commit_turn: applied,
    /// reported failed"`, `"wake-up lost: Activities"`).
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.lock().injected.clone()
    }

    pub(super) fn count(&self, what: String) {
        *self.lock().injected.entry(what).or_default() += 1;
    }

    /// A handle for one host, on `inner` (any store: the simulator's [`durable::store::Memory`],
    /// a SQLite file). Call it inside a tokio runtime: when wake-ups may be lost, the handle
    /// relays them in a task of its own.
    pub fn store(&self, inner: impl Store, host: impl Into<String>) -> FaultStore {
        self.wrap(Arc::new(inner), host)
    }

    /// A handle for one host, on a store already shared.
    pub fn wrap(&self, inner: Arc<dyn Store>, host: impl Into<String>) -> FaultStore {
        let host = host.into();
        let wakes = (self.rates.wake_lost > 0).then(|| Wakes::relay(&inner, self, &host));
        FaultStore {
            inner,
            faults: self.clone(),
            host,
            wakes,
        }
    }

    pub(super) fn draw(&self, per_mille: u64) -> bool {
        let mut state = self.lock();
        state.on && per_mille > 0 && state.rng.as_mut().is_some_and(|r| r.chance(per_mille))
    }

    pub(super) fn delay(&self, max: Duration) -> Duration {
        let mut state = self.lock();
        let ms = state
            .rng
            .as_mut()
            .map_or(0, |r| r.between(1, max.as_millis().max(1) as u64));
        Duration::from_millis(ms)
    }
}
