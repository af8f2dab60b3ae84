use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use durable::history::HistoryEvent;
use durable::store::{
    ActivityTask, ActivityWorkItem, Fetched, Memory, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim, PartitionTable, Store, StoreError,
    TurnCommit, WorkSignal,
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
    /// How many more fetches (orchestration work, activities) panic, shared by every hub.
    panics_left: Arc<AtomicUsize>,
}

impl HookedStore {
    /// Wraps `inner`.
    pub fn new(inner: Memory, on_commit: CommitHook) -> Self {
        HookedStore {
            inner,
            on_commit,
            read_error: None,
            extra_activities: 0,
            panics_left: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Makes the next `count` fetches of work (orchestration work or activities) panic, as
    /// a bug in a store would: the host's dispatchers must survive it.
    pub fn panicking_fetches(self, count: usize) -> Self {
        self.panics_left.store(count, Ordering::SeqCst);
        self
    }

    fn maybe_panic(&self, what: &str) {
        let left = self
            .panics_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_ok() {
            panic!("a store bug while fetching {what}");
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
            panics_left: self.panics_left.clone(),
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
        self.maybe_panic("orchestration work");
        self.inner.fetch_orchestration(now, lease, owned).await
    }
    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError> {
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
        self.maybe_panic("activities");
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
