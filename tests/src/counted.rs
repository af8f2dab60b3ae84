use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use durable::history::HistoryEvent;
use durable::store::{
    ActivityTask, ActivityWorkItem, Fetched, HandOver, InstanceVersion, NewInstance,
    OrchestrationMessage, OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim,
    PartitionLease, PartitionTable, ReadyInstances, ResultsCommit, Store, StoreError, TurnCommit,
    WorkSignal,
};
use durable::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};

/// What a [`Counted`] store counted so far.
#[derive(Debug, Default)]
pub struct Counts {
    items: AtomicUsize,
    commits: AtomicUsize,
    looks: AtomicUsize,
    handed: AtomicUsize,
    statuses: AtomicUsize,
    activities_fetched: AtomicUsize,
    histories: AtomicUsize,
}

impl Counts {
    /// Orchestration work items handed out (fetched, read or left work leased), not counting
    /// those read by commits ([`Counts::handed`]).
    pub fn items(&self) -> usize {
        self.items.load(Ordering::SeqCst)
    }

    /// Orchestration turns committed (through any of the commit calls, applied or not).
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    /// Activities handed out by fetches (leased from the store's queue), not counting those
    /// commits held for their host.
    pub fn activities_fetched(&self) -> usize {
        self.activities_fetched.load(Ordering::SeqCst)
    }

    /// Work items read by commits for the instances they gave work.
    pub fn handed(&self) -> usize {
        self.handed.load(Ordering::SeqCst)
    }

    /// Reads of one instance's status.
    pub fn statuses(&self) -> usize {
        self.statuses.load(Ordering::SeqCst)
    }

    /// Looks at the store for ready instances.
    pub fn looks(&self) -> usize {
        self.looks.load(Ordering::SeqCst)
    }

    fn item<T>(&self, found: bool, value: T) -> T {
        if found {
            self.items.fetch_add(1, Ordering::SeqCst);
        }
        value
    }

    /// Reads of a history begun (gated ones counted as they start waiting).
    pub fn histories(&self) -> usize {
        self.histories.load(Ordering::SeqCst)
    }

    fn commit(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counted {
    /// Counts a turn commit and passes it through the hook.
    fn check(&self, item: &OrchestrationWorkItem, commit: &TurnCommit) -> Result<(), StoreError> {
        self.counts.commit();
        match &self.on_commit {
            Some(hook) => hook(item, commit),
            None => Ok(()),
        }
    }
}

/// A store wrapped to count what it does (see [`Counts`]), and to fail the turn commits a
/// hook refuses (before they are applied).
pub struct Counted {
    inner: Arc<dyn Store>,
    counts: Arc<Counts>,
    on_commit: Option<crate::hooked::CommitHook>,
    /// Reads of this instance's history (of every instance's, when `None`) wait for a permit
    /// of the semaphore first.
    history_gate: Option<(Option<String>, Arc<tokio::sync::Semaphore>)>,
    /// The turns in flight this store asks hosts for, instead of its inner store's.
    turns: Option<usize>,
}

impl Counted {
    /// Wraps `inner`; the counts are shared with every task hub handle made from it.
    pub fn wrap(inner: Arc<dyn Store>) -> (Arc<dyn Store>, Arc<Counts>) {
        Self::wrap_failing(inner, None)
    }

    /// [`Counted::wrap`], with every turn commit passed through `on_commit` first: an `Err`
    /// fails the commit before it is applied.
    pub fn wrap_failing(
        inner: Arc<dyn Store>,
        on_commit: Option<crate::hooked::CommitHook>,
    ) -> (Arc<dyn Store>, Arc<Counts>) {
        Self::wrapped(inner, on_commit, None, None)
    }

    /// [`Counted::wrap`], with every read of `instance_id`'s history waiting for a permit of
    /// `gate` first (each read takes one): a turn that replays it waits there.
    pub fn wrap_gated(
        inner: Arc<dyn Store>,
        instance_id: &str,
        gate: Arc<tokio::sync::Semaphore>,
    ) -> (Arc<dyn Store>, Arc<Counts>) {
        Self::wrapped(
            inner,
            None,
            Some((Some(instance_id.to_string()), gate)),
            None,
        )
    }

    /// [`Counted::wrap`], with every read of any instance's history waiting for a permit of
    /// `gate` first, and the store asking hosts for `turns` turns in flight (see
    /// [`Store::turns_in_flight`]).
    pub fn wrap_all_gated(
        inner: Arc<dyn Store>,
        gate: Arc<tokio::sync::Semaphore>,
        turns: usize,
    ) -> (Arc<dyn Store>, Arc<Counts>) {
        Self::wrapped(inner, None, Some((None, gate)), Some(turns))
    }

    fn wrapped(
        inner: Arc<dyn Store>,
        on_commit: Option<crate::hooked::CommitHook>,
        history_gate: Option<(Option<String>, Arc<tokio::sync::Semaphore>)>,
        turns: Option<usize>,
    ) -> (Arc<dyn Store>, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let store = Arc::new(Counted {
            inner,
            counts: counts.clone(),
            on_commit,
            history_gate,
            turns,
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
            on_commit: self.on_commit.clone(),
            history_gate: self.history_gate.clone(),
            turns: self.turns,
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
    fn turns_in_flight(&self) -> usize {
        self.turns.unwrap_or_else(|| self.inner.turns_in_flight())
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
        self.counts.looks.fetch_add(1, Ordering::SeqCst);
        self.inner.ready_instances(now, owned, limit).await
    }
    async fn coming_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.inner.coming_due(now, until, owned, limit).await
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
    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError> {
        self.inner.claim_partitions(claim).await
    }
    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.counts.histories.fetch_add(1, Ordering::SeqCst);
        if let Some((gated, gate)) = &self.history_gate
            && gated.as_deref().is_none_or(|gated| gated == id)
        {
            gate.acquire()
                .await
                .map_err(|_| StoreError::Backend("the history gate closed".into()))?
                .forget();
        }
        self.inner.history(id).await
    }
    async fn commit_turn_holding(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        self.check(item, &commit)?;
        self.inner
            .commit_turn_holding(item, commit, run_here, lease)
            .await
    }
    fn reads_with_commit(&self) -> bool {
        self.inner.reads_with_commit()
    }
    async fn commit_turn_reading(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        read: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ActivityWorkItem>, Vec<OrchestrationWorkItem>), StoreError> {
        self.check(item, &commit)?;
        let committed = self
            .inner
            .commit_turn_reading(item, commit, run_here, lease, read, now)
            .await;
        if let Ok((_, items)) = &committed {
            self.counts.handed.fetch_add(items.len(), Ordering::SeqCst);
        }
        committed
    }
    fn hands_over_early(&self) -> bool {
        self.inner.hands_over_early()
    }
    #[allow(clippy::too_many_arguments)]
    async fn commit_turn_handing(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        read: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
        hand: HandOver,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        self.check(item, &commit)?;
        let counts = self.counts.clone();
        let hand: HandOver = Box::new(move |items| {
            counts.handed.fetch_add(items.len(), Ordering::SeqCst);
            hand(items)
        });
        self.inner
            .commit_turn_handing(item, commit, run_here, lease, read, now, hand)
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
        let fetched = self.inner.fetch_activities(lease, max).await?;
        self.counts
            .activities_fetched
            .fetch_add(fetched.len(), Ordering::SeqCst);
        Ok(fetched)
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
        self.counts.statuses.fetch_add(1, Ordering::SeqCst);
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
