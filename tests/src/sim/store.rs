//! The fault-injecting store: one host's handle on a store shared by all, and its `Store`
//! implementation (its wake-up relay is in `wakes.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use durable::history::HistoryEvent;
use durable::store::{
    ActivityTask, ActivityWorkItem, CommitState, Fetched, HandOver, InstanceVersion, NewInstance,
    OrchestrationMessage, OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim,
    PartitionLease, PartitionTable, ReadyInstances, ResultsCommit, Store, StoreError, TurnCommit,
    WorkSignal,
};
use durable::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};
use tokio::time::Instant;

use super::faults::Faults;
use super::wakes::{LOST_WAKE_POLL, Wakes};

/// A store, as one host sees it, that injects faults into the reads and writes of work.
/// Every other call, and every choice the engine makes from the store (whether it reads owned
/// work, owns the hub alone, how often to poll), goes to the inner store unchanged, so the
/// wrapper never moves a store onto another path through the engine.
pub struct FaultStore {
    pub(super) inner: Arc<dyn Store>,
    pub(super) faults: Faults,
    pub(super) host: String,
    /// The host's own wake-ups, when some may be lost (else the inner store's own).
    pub(super) wakes: Option<Wakes>,
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
    fn turns_in_flight(&self) -> usize {
        self.inner.turns_in_flight()
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
    async fn coming_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.fail(self.faults.rates.fetch_fails, "coming_due", "-")?;
        self.inner.coming_due(now, until, owned, limit).await
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
    async fn next_visible_for(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.fail(
            self.faults.rates.fetch_fails,
            "next_visible_for",
            instance_id,
        )?;
        self.inner.next_visible_for(instance_id, now).await
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
        self.commit(
            "commit_turn",
            &item.instance_id,
            item.fence,
            self.inner
                .commit_turn_reading(item, commit, run_here, lease, read, now),
            |_| true,
        )
        .await
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
        let discard = self.faults.draw(self.faults.rates.commit_handed_discarded);
        let hand: HandOver = if discard {
            Box::new(move |mut items| {
                let failed = CommitState::new();
                failed.settle(false);
                for item in &mut items {
                    item.read_in = Some(failed.clone());
                }
                hand(items)
            })
        } else {
            hand
        };
        let committed = self
            .commit(
                "commit_turn",
                &item.instance_id,
                item.fence,
                self.inner
                    .commit_turn_handing(item, commit, run_here, lease, read, now, hand),
                |_| true,
            )
            .await;
        match committed {
            Ok(_) if discard => Err(self.injected(
                "commit_turn",
                "applied, reported failed, its reads discarded",
                &item.instance_id,
            )),
            other => other,
        }
    }
    fn starts_with_turn(&self) -> bool {
        self.inner.starts_with_turn()
    }
    async fn create_with_turn(
        &self,
        instance: NewInstance,
        fence: PartitionLease,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
        let id = instance.instance_id.clone();
        self.commit(
            "create_with_turn",
            &id,
            Some(fence),
            self.inner
                .create_with_turn(instance, fence, commit, run_here, lease),
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
