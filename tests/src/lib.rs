//! Shared helpers for durable's behaviour tests.

/// The README's code blocks, compiled as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
mod readme {}

use std::future::Future;
use std::time::Duration;

use durable::testing::TestRuntime;
use durable::{Error, InstanceStatus, Runtime, RuntimeBuilder};

/// Generous real-time bound for waits; tests drive orchestration time with the manual clock,
/// so this is only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs `scenario` twice: once with the instance cache (instances resume without replay) and
/// once evicting after every turn (every turn replays the whole history). Both must behave the
/// same. A scenario returns `()` or `Result<(), Error>`; a failure names the mode.
pub async fn in_both_modes<F, Fut>(
    configure: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
    scenario: F,
) where
    F: Fn(TestRuntime) -> Fut,
    Fut: Future,
    Fut::Output: ScenarioResult,
{
    for always_replay in [false, true] {
        // Shown with the test's output when an assertion fails.
        println!("--- always_replay({always_replay})");
        let builder = configure(Runtime::builder().always_replay(always_replay));
        let runtime = TestRuntime::start(builder)
            .await
            .expect("the test runtime starts");
        if let Err(err) = scenario(runtime).await.into_result() {
            panic!("always_replay({always_replay}): {err:?}");
        }
    }
}

/// What a scenario may return: `()`, or a `Result` whose `Err` fails the test.
pub trait ScenarioResult {
    /// The scenario's result.
    fn into_result(self) -> Result<(), Error>;
}

impl ScenarioResult for () {
    fn into_result(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ScenarioResult for Result<(), Error> {
    fn into_result(self) -> Result<(), Error> {
        self
    }
}

/// Waits for an instance to finish and returns its status.
pub async fn finished(runtime: &TestRuntime, id: &str) -> InstanceStatus {
    runtime
        .client()
        .wait_for_completion(id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("instance {id} did not finish: {e}"))
}

/// The failure message of a failed instance.
pub fn failure_message(status: &InstanceStatus) -> String {
    assert_eq!(
        status.runtime_status,
        durable::RuntimeStatus::Failed,
        "expected a failed instance, got {status:?}"
    );
    status
        .failure
        .as_ref()
        .map(|f| f.message.clone())
        .unwrap_or_default()
}

/// Shorthand for an application error.
pub fn fail<T>(message: &str) -> Result<T, Error> {
    Err(Error::msg(message))
}

pub mod sim;

/// A memory store with hooks, for tests that inject failures or count what the host does.
pub mod hooked {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use durable::history::HistoryEvent;
    use durable::store::{
        ActivityTask, ActivityWorkItem, Fetched, Memory, NewInstance, OrchestrationMessage,
        OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim, PartitionTable, Store,
        StoreError, TurnCommit, WorkSignal,
    };
    use durable::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage};

    /// Runs before every turn commit; an `Err` fails the commit.
    pub type CommitHook =
        Arc<dyn Fn(&OrchestrationWorkItem, &TurnCommit) -> Result<(), StoreError> + Send + Sync>;

    /// A [`Memory`] store whose turn commits pass through a hook first.
    pub struct HookedStore {
        inner: Memory,
        on_commit: CommitHook,
        read_error: Option<String>,
        extra_activities: usize,
    }

    impl HookedStore {
        /// Wraps `inner`.
        pub fn new(inner: Memory, on_commit: CommitHook) -> Self {
            HookedStore {
                inner,
                on_commit,
                read_error: None,
                extra_activities: 0,
            }
        }

        /// Makes every batch fetch of activities lease up to `extra` more than asked for, as
        /// a store at fault would.
        pub fn leasing_extra_activities(mut self, extra: usize) -> Self {
            self.extra_activities = extra;
            self
        }

        /// Makes every read of an instance (status, query) fail with this backend message.
        pub fn failing_reads(mut self, message: impl Into<String>) -> Self {
            self.read_error = Some(message.into());
            self
        }

        fn read_failure(&self) -> Result<(), StoreError> {
            match &self.read_error {
                Some(message) => Err(StoreError::Backend(message.clone())),
                None => Ok(()),
            }
        }
    }

    #[async_trait::async_trait]
    impl Store for HookedStore {
        fn task_hub(&self) -> &str {
            self.inner.task_hub()
        }
        fn with_task_hub(&self, hub: &str) -> Arc<dyn Store> {
            Arc::new(HookedStore {
                inner: self.inner.in_task_hub(hub),
                on_commit: self.on_commit.clone(),
                read_error: self.read_error.clone(),
                extra_activities: self.extra_activities,
            })
        }
        fn signal(&self) -> &WorkSignal {
            self.inner.signal()
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
            self.inner.fetch_orchestration(now, lease, owned).await
        }
        async fn claim_partitions(
            &self,
            claim: PartitionClaim,
        ) -> Result<PartitionTable, StoreError> {
            self.inner.claim_partitions(claim).await
        }
        async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
            self.inner.history(id).await
        }
        async fn commit_turn_holding(
            &self,
            item: &OrchestrationWorkItem,
            commit: TurnCommit,
            run_here: Vec<ActivityTask>,
            lease: Duration,
        ) -> Result<Vec<ActivityWorkItem>, StoreError> {
            (self.on_commit)(item, &commit)?;
            self.inner
                .commit_turn_holding(item, commit, run_here, lease)
                .await
        }
        async fn renew_orchestration_lease(
            &self,
            item: &OrchestrationWorkItem,
            lease: Duration,
        ) -> Result<(), StoreError> {
            self.inner.renew_orchestration_lease(item, lease).await
        }
        async fn abandon_orchestration(
            &self,
            item: &OrchestrationWorkItem,
            after: Duration,
        ) -> Result<(), StoreError> {
            self.inner.abandon_orchestration(item, after).await
        }
        async fn park_orchestration(
            &self,
            item: &OrchestrationWorkItem,
            error: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.inner.park_orchestration(item, error, now).await
        }
        async fn fetch_activity(
            &self,
            lease: Duration,
        ) -> Result<Option<ActivityWorkItem>, StoreError> {
            self.inner.fetch_activity(lease).await
        }
        async fn fetch_activities(
            &self,
            lease: Duration,
            max: usize,
        ) -> Result<Vec<ActivityWorkItem>, StoreError> {
            self.inner
                .fetch_activities(lease, max + self.extra_activities)
                .await
        }
        async fn renew_activity_lease(
            &self,
            item: &ActivityWorkItem,
            lease: Duration,
        ) -> Result<(), StoreError> {
            self.inner.renew_activity_lease(item, lease).await
        }
        async fn complete_activity(
            &self,
            item: &ActivityWorkItem,
            response: OrchestrationMessage,
        ) -> Result<(), StoreError> {
            self.inner.complete_activity(item, response).await
        }
        async fn abandon_activity(
            &self,
            item: &ActivityWorkItem,
            after: Duration,
        ) -> Result<(), StoreError> {
            self.inner.abandon_activity(item, after).await
        }
        async fn park_activity(
            &self,
            item: &ActivityWorkItem,
            error: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.inner.park_activity(item, error, now).await
        }
        async fn parked(&self) -> Result<Vec<ParkedMessage>, StoreError> {
            self.inner.parked().await
        }
        async fn instance(&self, id: &str) -> Result<Option<InstanceStatus>, StoreError> {
            self.read_failure()?;
            self.inner.instance(id).await
        }
        async fn query(&self, q: &InstanceQuery) -> Result<QueryPage, StoreError> {
            self.read_failure()?;
            self.inner.query(q).await
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
    }
}

/// The workload of the crash tests: orchestrations that chain activities and signal an entity
/// after each step, so a lost or repeated step shows in the entity's total.
pub mod crash {
    use durable::prelude::*;
    use serde::{Deserialize, Serialize};

    /// How many steps each crash-test orchestration runs.
    pub const STEPS: u64 = 60;

    /// Returns `n * 10`, after a short pause so the host is busy when it gets killed.
    #[activity]
    pub async fn step(_ctx: ActivityContext, n: u64) -> Result<u64, Error> {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        Ok(n * 10)
    }

    /// Runs `steps` activities in sequence, signalling the `total` counter after each; returns
    /// the sum of their results.
    #[orchestrator]
    pub async fn crash_chain(ctx: OrchestrationContext, steps: u64) -> Result<u64, Error> {
        let mut sum = 0;
        for i in 1..=steps {
            sum += ctx.call_activity(step, i).await?;
            ctx.signal_entity::<CrashCounter>("total").add(1);
        }
        Ok(sum)
    }

    /// Counts signals.
    #[derive(Default, Serialize, Deserialize, Debug)]
    pub struct CrashCounter {
        /// The number of `add`s applied.
        pub count: u64,
        /// What was added in all.
        pub sum: u64,
    }

    #[entity]
    impl CrashCounter {
        /// Adds `by`.
        pub fn add(&mut self, by: u64) {
            self.count += 1;
            self.sum += by;
        }
    }
}

/// The built-in stores take the one-write path: the conformance suite accepts a store that
/// queues results instead of committing them with their turn (the trait's default), so this
/// holds memory, SQLite and PostgreSQL to the faster answer.
pub mod one_write {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use durable::RuntimeStatus;
    use durable::history::{EventKind, HistoryEvent};
    use durable::store::{
        ActivityTask, Fetched, HistoryWrite, InstanceVersion, NewInstance, OrchestrationMessage,
        Owned, ResultsCommit, Store, TurnCommit,
    };

    const LEASE: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
    }

    /// A turn holds an activity; its result commits the next turn in the same write.
    pub async fn results_commit_with_their_turn(store: &dyn Store) {
        let new = NewInstance {
            instance_id: "one-write".into(),
            name: "Flow".into(),
            input: "null".into(),
            execution_id: "e1".into(),
            parent: None,
            created_at: at(0),
            start_at: None,
            replace_running: false,
            version: None,
        };
        store.create_instance(new.clone()).await.unwrap();
        let Fetched::Item(item) = store
            .fetch_orchestration(at(0), LEASE, &Owned::Everything)
            .await
            .unwrap()
        else {
            panic!("the new instance's start is fetched");
        };
        let task = ActivityTask {
            instance_id: "one-write".into(),
            execution_id: "e1".into(),
            task_id: 0,
            name: "Step".into(),
            input: "1".into(),
        };
        let status = |when| durable::InstanceStatus {
            runtime_status: RuntimeStatus::Running,
            last_updated_at: when,
            ..new.initial_status()
        };
        let first = TurnCommit {
            consumed: item.messages.iter().map(|m| m.seq).collect(),
            history: HistoryWrite::Append(vec![new.start_message().event]),
            status: status(at(1)),
            activities: Vec::new(),
            messages: Vec::new(),
            new_instances: Vec::new(),
        };
        let held = store
            .commit_turn_holding(&item, first, vec![task.clone()], LEASE)
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "the turn's activity is held for its host");
        let result = OrchestrationMessage {
            instance_id: "one-write".into(),
            execution_id: Some("e1".into()),
            event: HistoryEvent::new(
                at(2),
                EventKind::TaskCompleted {
                    task_scheduled_id: 0,
                    result: "2".into(),
                },
            ),
            visible_at: None,
        };
        let next = TurnCommit {
            consumed: Vec::new(),
            history: HistoryWrite::Append(vec![result.event.clone()]),
            status: status(at(2)),
            activities: Vec::new(),
            messages: Vec::new(),
            new_instances: Vec::new(),
        };
        let version = InstanceVersion {
            instance_id: "one-write".into(),
            execution_id: "e1".into(),
            history_len: 1,
            last_updated_at: at(1),
            fence: None,
        };
        let done = store
            .complete_activities_and_commit(
                vec![(held[0].clone(), result)],
                version,
                next,
                Vec::new(),
                LEASE,
            )
            .await
            .unwrap();
        assert!(
            matches!(done, ResultsCommit::Committed(_)),
            "the result and its turn were committed together: {done:?}"
        );
        assert_eq!(store.history("one-write").await.unwrap().len(), 2);
        assert!(
            matches!(
                store
                    .fetch_orchestration(at(2), LEASE, &Owned::Everything)
                    .await
                    .unwrap(),
                Fetched::Empty { .. }
            ),
            "nothing was queued"
        );
    }
}

/// A store that counts the work it hands out and the turns committed to it, and passes every
/// call (and every choice the engine makes from the store: whether it reads owned work, owns
/// the hub alone, how often to poll) to the store it wraps unchanged: for tests that check a
/// host does no work it need not do.
pub mod counted {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use durable::history::HistoryEvent;
    use durable::store::{
        ActivityTask, ActivityWorkItem, Fetched, InstanceVersion, NewInstance,
        OrchestrationMessage, OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim,
        PartitionLease, PartitionTable, ReadyInstances, ResultsCommit, Store, StoreError,
        TurnCommit, WorkSignal,
    };
    use durable::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};

    /// What a [`Counted`] store counted so far.
    #[derive(Debug, Default)]
    pub struct Counts {
        items: AtomicUsize,
        commits: AtomicUsize,
    }

    impl Counts {
        /// Orchestration work items handed out (fetched, read or left work leased).
        pub fn items(&self) -> usize {
            self.items.load(Ordering::SeqCst)
        }

        /// Orchestration turns committed (through any of the commit calls, applied or not).
        pub fn commits(&self) -> usize {
            self.commits.load(Ordering::SeqCst)
        }

        fn item<T>(&self, found: bool, value: T) -> T {
            if found {
                self.items.fetch_add(1, Ordering::SeqCst);
            }
            value
        }

        fn commit(&self) {
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A store wrapped to count what it does (see [`Counts`]).
    pub struct Counted {
        inner: Arc<dyn Store>,
        counts: Arc<Counts>,
    }

    impl Counted {
        /// Wraps `inner`; the counts are shared with every task hub handle made from it.
        pub fn wrap(inner: Arc<dyn Store>) -> (Arc<dyn Store>, Arc<Counts>) {
            let counts = Arc::new(Counts::default());
            let store = Arc::new(Counted {
                inner,
                counts: counts.clone(),
            });
            (store, counts)
        }
    }

    #[async_trait::async_trait]
    impl Store for Counted {
        fn task_hub(&self) -> &str {
            self.inner.task_hub()
        }
        fn with_task_hub(&self, hub: &str) -> Arc<dyn Store> {
            Arc::new(Counted {
                inner: self.inner.with_task_hub(hub),
                counts: self.counts.clone(),
            })
        }
        fn signal(&self) -> &WorkSignal {
            self.inner.signal()
        }
        fn poll_interval(&self) -> Option<Duration> {
            self.inner.poll_interval()
        }
        fn reads_owned_work(&self) -> bool {
            self.inner.reads_owned_work()
        }
        fn single_owner(&self) -> bool {
            self.inner.single_owner()
        }
        fn starts_with_turn(&self) -> bool {
            self.inner.starts_with_turn()
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
            let fetched = self.inner.fetch_orchestration(now, lease, owned).await;
            let found = matches!(fetched, Ok(Fetched::Item(_)));
            self.counts.item(found, fetched)
        }
        async fn ready_instances(
            &self,
            now: DateTime<Utc>,
            owned: &Owned,
            limit: usize,
        ) -> Result<ReadyInstances, StoreError> {
            self.inner.ready_instances(now, owned, limit).await
        }
        async fn read_orchestration(
            &self,
            instance_id: &str,
            now: DateTime<Utc>,
            fence: PartitionLease,
        ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
            let read = self.inner.read_orchestration(instance_id, now, fence).await;
            let found = matches!(read, Ok(Some(_)));
            self.counts.item(found, read)
        }
        async fn fetch_left_orchestration(
            &self,
            now: DateTime<Utc>,
            lease: Duration,
            owned: &Owned,
        ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
            let left = self.inner.fetch_left_orchestration(now, lease, owned).await;
            let found = matches!(left, Ok(Some(_)));
            self.counts.item(found, left)
        }
        async fn next_visible_for(
            &self,
            instance_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Option<DateTime<Utc>>, StoreError> {
            self.inner.next_visible_for(instance_id, now).await
        }
        async fn claim_partitions(
            &self,
            claim: PartitionClaim,
        ) -> Result<PartitionTable, StoreError> {
            self.inner.claim_partitions(claim).await
        }
        async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
            self.inner.history(id).await
        }
        async fn commit_turn_holding(
            &self,
            item: &OrchestrationWorkItem,
            commit: TurnCommit,
            run_here: Vec<ActivityTask>,
            lease: Duration,
        ) -> Result<Vec<ActivityWorkItem>, StoreError> {
            self.counts.commit();
            self.inner
                .commit_turn_holding(item, commit, run_here, lease)
                .await
        }
        async fn create_with_turn(
            &self,
            instance: NewInstance,
            fence: PartitionLease,
            commit: TurnCommit,
            run_here: Vec<ActivityTask>,
            lease: Duration,
        ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
            self.counts.commit();
            self.inner
                .create_with_turn(instance, fence, commit, run_here, lease)
                .await
        }
        async fn commit_turn(
            &self,
            item: &OrchestrationWorkItem,
            commit: TurnCommit,
        ) -> Result<(), StoreError> {
            self.counts.commit();
            self.inner.commit_turn(item, commit).await
        }
        async fn renew_orchestration_lease(
            &self,
            item: &OrchestrationWorkItem,
            lease: Duration,
        ) -> Result<(), StoreError> {
            self.inner.renew_orchestration_lease(item, lease).await
        }
        async fn abandon_orchestration(
            &self,
            item: &OrchestrationWorkItem,
            after: Duration,
        ) -> Result<(), StoreError> {
            self.inner.abandon_orchestration(item, after).await
        }
        async fn release_orchestration(
            &self,
            item: &OrchestrationWorkItem,
            after: Duration,
            by: &str,
        ) -> Result<(), StoreError> {
            self.inner.release_orchestration(item, after, by).await
        }
        async fn park_orchestration(
            &self,
            item: &OrchestrationWorkItem,
            error: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.inner.park_orchestration(item, error, now).await
        }
        async fn fetch_activity(
            &self,
            lease: Duration,
        ) -> Result<Option<ActivityWorkItem>, StoreError> {
            self.inner.fetch_activity(lease).await
        }
        async fn fetch_activities(
            &self,
            lease: Duration,
            max: usize,
        ) -> Result<Vec<ActivityWorkItem>, StoreError> {
            self.inner.fetch_activities(lease, max).await
        }
        async fn renew_activity_lease(
            &self,
            item: &ActivityWorkItem,
            lease: Duration,
        ) -> Result<(), StoreError> {
            self.inner.renew_activity_lease(item, lease).await
        }
        async fn complete_activity(
            &self,
            item: &ActivityWorkItem,
            response: OrchestrationMessage,
        ) -> Result<(), StoreError> {
            self.inner.complete_activity(item, response).await
        }
        async fn complete_activities_and_commit(
            &self,
            results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
            expected: InstanceVersion,
            commit: TurnCommit,
            run_here: Vec<ActivityTask>,
            lease: Duration,
        ) -> Result<ResultsCommit, StoreError> {
            self.counts.commit();
            self.inner
                .complete_activities_and_commit(results, expected, commit, run_here, lease)
                .await
        }
        async fn abandon_activity(
            &self,
            item: &ActivityWorkItem,
            after: Duration,
        ) -> Result<(), StoreError> {
            self.inner.abandon_activity(item, after).await
        }
        async fn park_activity(
            &self,
            item: &ActivityWorkItem,
            error: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.inner.park_activity(item, error, now).await
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
}
