//! The parts of the simulator (`tests/tests/simulation.rs`): a seeded random source, a clock on
//! tokio's (paused) time, a store that injects faults into the hosts' reads and writes of work
//! and checks that commits under a stale partition epoch are refused, and the check of an
//! instance's history. The faulty store wraps any store: the simulator's memory store, or a
//! real SQLite file (`tests/tests/faults_sqlite.rs`, which checks histories the same way).

use std::collections::{BTreeMap, BTreeSet};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use durable::history::{EventKind, HistoryEvent};
use durable::store::{
    ActivityTask, ActivityWorkItem, Fetched, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim, PartitionLease, PartitionTable,
    ReadyInstances, ResultsCommit, Store, StoreError, TurnCommit, WorkSignal,
};
use durable::{Clock, InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};
use tokio::time::Instant;

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
struct State {
    rng: Option<Rng>,
    on: bool,
    started: Option<Instant>,
    trace: Vec<String>,
    /// The highest epoch seen per partition (epochs only go up).
    epochs: BTreeMap<u32, u64>,
    /// Commits fenced by an epoch older than the partition's, and how many were refused.
    stale_commits: u64,
    stale_refused: u64,
    /// Stale commits that were applied: each one is a broken fence.
    violations: Vec<String>,
    /// Wake-ups dropped on their way to a host.
    wakes_lost: u64,
    /// How many times each fault was injected, by call and fault.
    injected: BTreeMap<String, u64>,
    /// Per host: claims fail until then.
    outages: BTreeMap<String, Instant>,
    /// Per host: the partitions it held after its last claim.
    held: BTreeMap<String, Vec<u32>>,
}

/// The fault-injecting store's shared part: its random source, the trace and the counts.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    rates: Arc<FaultRates>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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

    fn count(&self, what: String) {
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

    fn draw(&self, per_mille: u64) -> bool {
        let mut state = self.lock();
        state.on && per_mille > 0 && state.rng.as_mut().is_some_and(|r| r.chance(per_mille))
    }

    fn delay(&self, max: Duration) -> Duration {
        let mut state = self.lock();
        let ms = state
            .rng
            .as_mut()
            .map_or(0, |r| r.between(1, max.as_millis().max(1) as u64));
        Duration::from_millis(ms)
    }
}

/// A store, as one host sees it, that injects faults into the reads and writes of work.
/// Every other call, and every choice the engine makes from the store (whether it reads owned
/// work, owns the hub alone, how often to poll), goes to the inner store unchanged, so the
/// wrapper never moves a store onto another path through the engine.
pub struct FaultStore {
    inner: Arc<dyn Store>,
    faults: Faults,
    host: String,
    /// The host's own wake-ups, when some may be lost (else the inner store's own).
    wakes: Option<Wakes>,
}

/// How often a host polls for work when wake-ups may be lost (at most: a store that polls more
/// often keeps its interval). As often as a SQLite store polls; at 250 ms the simulator's
/// seeds take about half as long again.
const LOST_WAKE_POLL: Duration = Duration::from_millis(500);

/// A host's own wake-ups: a task relays the inner store's to them, dropping some while faults
/// are on. A host takes a wake-up only from this signal, so a dropped one is lost to it, as a
/// notification a database drops is lost to a listener. The task ends when the store is
/// dropped.
struct Wakes {
    signal: Arc<WorkSignal>,
    relay: tokio::task::AbortHandle,
}

/// Which of a signal's notifications a wake-up is.
#[derive(Clone, Copy, Debug)]
enum Wake {
    Orchestrations,
    Activities,
    Instances,
}

impl Wakes {
    fn relay(inner: &Arc<dyn Store>, faults: &Faults, host: &str) -> Wakes {
        let signal = Arc::new(WorkSignal::default());
        let (inner, faults, host, to) = (
            inner.clone(),
            faults.clone(),
            host.to_string(),
            signal.clone(),
        );
        let relay = tokio::spawn(async move {
            let from = inner.signal();
            // Each wait is in place before the last wake-up is passed on, so none raised
            // meanwhile is missed (`notify_waiters` only reaches waits that exist).
            let mut orchestrations = pin!(from.orchestrations.notified());
            let mut activities = pin!(from.activities.notified());
            let mut instances = pin!(from.instances.notified());
            loop {
                // Biased: the same seed relays in the same order.
                let wake = tokio::select! {
                    biased;
                    () = &mut orchestrations => {
                        orchestrations.set(from.orchestrations.notified());
                        Wake::Orchestrations
                    }
                    () = &mut activities => {
                        activities.set(from.activities.notified());
                        Wake::Activities
                    }
                    () = &mut instances => {
                        instances.set(from.instances.notified());
                        Wake::Instances
                    }
                };
                if faults.draw(faults.rates.wake_lost) {
                    faults.lock().wakes_lost += 1;
                    faults.count(format!("wake-up lost: {wake:?}"));
                    faults.record(format!("{host} wake-up lost: {wake:?}"));
                    continue;
                }
                match wake {
                    Wake::Orchestrations => to.orchestration_work(),
                    Wake::Activities => to.activity_work(),
                    Wake::Instances => to.instance_changed(),
                }
            }
        });
        Wakes {
            signal,
            relay: relay.abort_handle(),
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// What a commit does under the faults drawn for it.
struct CommitFaults {
    slow: Option<Duration>,
    fail_before: bool,
    fail_after: bool,
}

impl FaultStore {
    fn injected(&self, op: &str, fault: &str, instance: &str) -> StoreError {
        self.faults.count(format!("{op}: {fault}"));
        self.faults
            .record(format!("{} {op} {instance}: {fault}", self.host));
        StoreError::Backend(format!("injected: {fault}"))
    }

    fn fail(&self, rate: u64, op: &str, instance: &str) -> Result<(), StoreError> {
        if self.faults.draw(rate) {
            return Err(self.injected(op, "fails", instance));
        }
        Ok(())
    }

    fn commit_faults(&self) -> CommitFaults {
        let rates = &self.faults.rates;
        let slow = self
            .faults
            .draw(rates.commit_slow)
            .then(|| self.faults.delay(rates.slow_max));
        let fail_before = self.faults.draw(rates.commit_fails);
        let fail_after = !fail_before && self.faults.draw(rates.commit_applied_but_fails);
        CommitFaults {
            slow,
            fail_before,
            fail_after,
        }
    }

    /// Runs a commit under the faults drawn for it; `applied` tells whether the store
    /// applied it, `fence` is the epoch it was fenced with.
    async fn commit<T>(
        &self,
        op: &str,
        instance: &str,
        fence: Option<PartitionLease>,
        apply: impl Future<Output = Result<T, StoreError>>,
        applied: impl Fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        let faults = self.commit_faults();
        if let Some(wait) = faults.slow {
            self.faults.count(format!("{op}: slow"));
            self.faults.record(format!(
                "{} {op} {instance}: slow {}ms",
                self.host,
                wait.as_millis()
            ));
            tokio::time::sleep(wait).await;
        }
        if faults.fail_before {
            return Err(self.injected(op, "fails before applying", instance));
        }
        // Whether the fence is stale now, right before the store decides.
        let stale = fence.filter(|f| {
            let state = self.faults.lock();
            state.epochs.get(&f.partition).is_some_and(|e| *e > f.epoch)
        });
        let result = apply.await;
        if let Some(fence) = stale {
            let mut state = self.faults.lock();
            state.stale_commits += 1;
            let current = state.epochs.get(&fence.partition).copied();
            match &result {
                Ok(done) if applied(done) => state.violations.push(format!(
                    "{} {op} {instance} was applied under epoch {} of partition {} (the \
                     partition is at {current:?})",
                    self.host, fence.epoch, fence.partition,
                )),
                _ => state.stale_refused += 1,
            }
        }
        match result {
            Ok(done) if faults.fail_after => {
                drop(done);
                Err(self.injected(op, "applied, reported failed", instance))
            }
            other => other,
        }
    }
}

#[async_trait::async_trait]
impl Store for FaultStore {
    fn task_hub(&self) -> &str {
        self.inner.task_hub()
    }
    fn with_task_hub(&self, hub: &str) -> Arc<dyn Store> {
        Arc::new(self.faults.wrap(self.inner.with_task_hub(hub), &self.host))
    }
    fn signal(&self) -> &WorkSignal {
        match &self.wakes {
            Some(wakes) => &wakes.signal,
            None => self.inner.signal(),
        }
    }
    /// The inner store's interval, or a short one when wake-ups may be lost: the host then
    /// finds its work by polling.
    fn poll_interval(&self) -> Option<Duration> {
        let inner = self.inner.poll_interval();
        match &self.wakes {
            Some(_) => Some(inner.map_or(LOST_WAKE_POLL, |p| p.min(LOST_WAKE_POLL))),
            None => inner,
        }
    }
    fn reads_owned_work(&self) -> bool {
        self.inner.reads_owned_work()
    }
    fn single_owner(&self) -> bool {
        self.inner.single_owner()
    }
    async fn create_instance(&self, i: NewInstance) -> Result<(), StoreError> {
        self.inner.create_instance(i).await
    }
    async fn enqueue(&self, m: OrchestrationMessage) -> Result<(), StoreError> {
        self.inner.enqueue(m).await
    }
    async fn fetch_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Fetched<OrchestrationWorkItem>, StoreError> {
        self.fail(self.faults.rates.fetch_fails, "fetch_orchestration", "-")?;
        self.inner.fetch_orchestration(now, lease, owned).await
    }
    async fn ready_instances(
        &self,
        now: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<ReadyInstances, StoreError> {
        self.fail(self.faults.rates.fetch_fails, "ready_instances", "-")?;
        self.inner.ready_instances(now, owned, limit).await
    }
    async fn read_orchestration(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
        fence: PartitionLease,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        self.fail(
            self.faults.rates.fetch_fails,
            "read_orchestration",
            instance_id,
        )?;
        self.inner.read_orchestration(instance_id, now, fence).await
    }
    async fn fetch_left_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        self.fail(
            self.faults.rates.fetch_fails,
            "fetch_left_orchestration",
            "-",
        )?;
        self.inner.fetch_left_orchestration(now, lease, owned).await
    }
    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError> {
        let releasing = claim.lease.is_zero();
        if !releasing {
            let now = Instant::now();
            let rates = self.faults.rates.clone();
            let in_outage = {
                let state = self.faults.lock();
                state
                    .outages
                    .get(&self.host)
                    .is_some_and(|until| *until > now)
            };
            if in_outage {
                return Err(StoreError::Backend("injected: claims fail".into()));
            }
            if self.faults.draw(rates.claim_outage) {
                let length = self.faults.delay(rates.outage_max);
                self.faults
                    .lock()
                    .outages
                    .insert(self.host.clone(), now + length);
                self.faults.count("claim_partitions: outage".into());
                let fault = format!("claims fail for {}ms", length.as_millis());
                self.faults
                    .record(format!("{} claim_partitions -: {fault}", self.host));
                return Err(StoreError::Backend(format!("injected: {fault}")));
            }
            self.fail(rates.claim_fails, "claim_partitions", "-")?;
        }
        let table = self.inner.claim_partitions(claim).await?;
        let held: Vec<u32> = table.held.iter().map(|l| l.partition).collect();
        let changed = {
            let mut state = self.faults.lock();
            for p in &table.partitions {
                let seen = state.epochs.entry(p.partition).or_default();
                *seen = (*seen).max(p.epoch);
            }
            state.held.insert(self.host.clone(), held.clone()) != Some(held.clone())
        };
        if changed {
            self.faults
                .record(format!("{} owns partitions {held:?}", self.host));
        }
        Ok(table)
    }
    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.fail(self.faults.rates.fetch_fails, "history", id)?;
        self.inner.history(id).await
    }
    async fn commit_turn_holding(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        self.commit(
            "commit_turn",
            &item.instance_id,
            item.fence,
            self.inner
                .commit_turn_holding(item, commit, run_here, lease),
            |_| true,
        )
        .await
    }
    async fn commit_turn(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
    ) -> Result<(), StoreError> {
        self.commit(
            "commit_turn",
            &item.instance_id,
            item.fence,
            self.inner.commit_turn(item, commit),
            |_| true,
        )
        .await
    }
    async fn renew_orchestration_lease(
        &self,
        item: &OrchestrationWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.fail(
            self.faults.rates.renew_fails,
            "renew_orchestration_lease",
            &item.instance_id,
        )?;
        self.inner.renew_orchestration_lease(item, lease).await
    }
    async fn abandon_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        after: Duration,
    ) -> Result<(), StoreError> {
        self.commit(
            "abandon_orchestration",
            &item.instance_id,
            item.fence,
            self.inner.abandon_orchestration(item, after),
            |_| true,
        )
        .await
    }
    async fn release_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        after: Duration,
        by: &str,
    ) -> Result<(), StoreError> {
        self.commit(
            "release_orchestration",
            &item.instance_id,
            item.fence,
            self.inner.release_orchestration(item, after, by),
            |_| true,
        )
        .await
    }
    async fn park_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.commit(
            "park_orchestration",
            &item.instance_id,
            item.fence,
            self.inner.park_orchestration(item, error, now),
            |_| true,
        )
        .await
    }
    async fn fetch_activity(
        &self,
        lease: Duration,
    ) -> Result<Option<ActivityWorkItem>, StoreError> {
        self.fail(self.faults.rates.fetch_fails, "fetch_activity", "-")?;
        self.inner.fetch_activity(lease).await
    }
    async fn fetch_activities(
        &self,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        self.fail(self.faults.rates.fetch_fails, "fetch_activities", "-")?;
        self.inner.fetch_activities(lease, max).await
    }
    async fn renew_activity_lease(
        &self,
        item: &ActivityWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.fail(
            self.faults.rates.renew_fails,
            "renew_activity_lease",
            &item.task.instance_id,
        )?;
        self.inner.renew_activity_lease(item, lease).await
    }
    async fn complete_activity(
        &self,
        item: &ActivityWorkItem,
        response: OrchestrationMessage,
    ) -> Result<(), StoreError> {
        self.commit(
            "complete_activity",
            &item.task.instance_id,
            None,
            self.inner.complete_activity(item, response),
            |_| true,
        )
        .await
    }
    async fn complete_activities_and_commit(
        &self,
        results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
        expected: InstanceVersion,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<ResultsCommit, StoreError> {
        let id = expected.instance_id.clone();
        let fence = expected.fence;
        self.commit(
            "results_commit",
            &id,
            fence,
            self.inner
                .complete_activities_and_commit(results, expected, commit, run_here, lease),
            |done| matches!(done, ResultsCommit::Committed(_)),
        )
        .await
    }
    async fn abandon_activity(
        &self,
        item: &ActivityWorkItem,
        after: Duration,
    ) -> Result<(), StoreError> {
        self.commit(
            "abandon_activity",
            &item.task.instance_id,
            None,
            self.inner.abandon_activity(item, after),
            |_| true,
        )
        .await
    }
    async fn park_activity(
        &self,
        item: &ActivityWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.commit(
            "park_activity",
            &item.task.instance_id,
            None,
            self.inner.park_activity(item, error, now),
            |_| true,
        )
        .await
    }
    async fn parked(&self) -> Result<Vec<ParkedMessage>, StoreError> {
        self.inner.parked().await
    }
    async fn instance(&self, id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        self.inner.instance(id).await
    }
    async fn query(&self, q: &InstanceQuery) -> Result<QueryPage, StoreError> {
        self.inner.query(q).await
    }
    async fn query_newest_first(&self, q: &InstanceQuery) -> Result<QueryPage, StoreError> {
        self.inner.query_newest_first(q).await
    }
    async fn count_by_status(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        self.inner.count_by_status().await
    }
    async fn purge(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.purge(id).await
    }
    async fn purge_where(&self, f: &PurgeFilter) -> Result<u64, StoreError> {
        self.inner.purge_where(f).await
    }
    async fn remove_entity(
        &self,
        id: &str,
        if_last_updated: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.remove_entity(id, if_last_updated).await
    }
    async fn is_idle(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.is_idle(now).await
    }
    async fn import_instance(
        &self,
        status: InstanceStatus,
        history: Vec<HistoryEvent>,
        replace: bool,
    ) -> Result<(), StoreError> {
        self.inner.import_instance(status, history, replace).await
    }
}
