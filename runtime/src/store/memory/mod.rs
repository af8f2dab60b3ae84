//! The in-memory store: everything in one process, for tests and demos.

mod activities;
mod commits;
mod hub;
mod import;
mod work;

use hub::{Hub, LeasedActivity, QueuedActivity, Shared};

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

// Tokio's clock, so that paused time (a simulation) drives leases and retry delays.
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use super::ownership::{PartitionRow, apply_claim};
use super::{
    ActivityTask, ActivityWorkItem, Fetched, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim, PartitionLease, PartitionTable,
    ReadyInstances, ResultsCommit, Store, StoreError, TurnCommit, WorkSignal, paging,
};
use crate::model::EntityId;
use crate::model::history::HistoryEvent;
use crate::model::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};

/// An in-memory [`Store`]. Clones share the same data; nothing survives the process.
///
/// ```
/// let store = durable::store::Memory::new();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct Memory {
    shared: Arc<Shared>,
    hub: String,
}

impl Memory {
    /// An empty store, task hub `default`.
    pub fn new() -> Self {
        Memory {
            shared: Arc::new(Shared {
                hubs: Default::default(),
                signal: Default::default(),
                started: Instant::now(),
            }),
            hub: "default".to_string(),
        }
    }

    /// A handle on another task hub of the same storage.
    pub fn in_task_hub(&self, hub: &str) -> Memory {
        Memory {
            shared: self.shared.clone(),
            hub: hub.to_string(),
        }
    }

    fn hub(&self) -> HubGuard<'_> {
        let guard = self.shared.hubs.lock().unwrap_or_else(|p| p.into_inner());
        let mut guard = guard;
        if !guard.contains_key(&self.hub) {
            guard.insert(self.hub.clone(), Hub::default());
        }
        HubGuard {
            guard,
            name: &self.hub,
        }
    }

    fn wake_later(&self, after: Duration) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            shared.signal.orchestration_work();
            shared.signal.activity_work();
        });
    }

    /// A page of instances matching `query`, ordered by creation time then id, oldest or
    /// newest first.
    fn query_page(
        &self,
        query: &InstanceQuery,
        newest_first: bool,
    ) -> Result<QueryPage, StoreError> {
        let from = paging::start_after(query)?;
        let hub = self.hub();
        let mut matching: Vec<&InstanceStatus> = hub
            .instances
            .values()
            .map(|e| &e.status)
            .filter(|s| query.matches(s))
            .filter(|s| {
                from.as_ref().is_none_or(|(t, id)| {
                    let key = (s.created_at, s.instance_id.as_str());
                    if newest_first {
                        key < (*t, id)
                    } else {
                        key > (*t, id)
                    }
                })
            })
            .collect();
        matching
            .sort_by(|a, b| (a.created_at, &a.instance_id).cmp(&(b.created_at, &b.instance_id)));
        if newest_first {
            matching.reverse();
        }
        let size = paging::page_size(query);
        Ok(paging::page(
            matching.into_iter().take(size + 1).cloned().collect(),
            size,
        ))
    }

    fn notify_all(&self) {
        self.shared.signal.all();
    }
}

/// Milliseconds on a memory store's lease clock: tokio's clock, from the store's creation.
fn lease_clock_ms(shared: &Shared) -> i64 {
    i64::try_from(shared.started.elapsed().as_millis()).unwrap_or(i64::MAX / 4)
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

struct HubGuard<'a> {
    guard: MutexGuard<'a, HashMap<String, Hub>>,
    name: &'a str,
}

impl std::ops::Deref for HubGuard<'_> {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        self.guard.get(self.name).expect("hub exists")
    }
}

impl std::ops::DerefMut for HubGuard<'_> {
    fn deref_mut(&mut self) -> &mut Hub {
        self.guard.entry(self.name.to_string()).or_default()
    }
}

fn token(seq: u64) -> String {
    format!("m{seq}")
}

#[async_trait::async_trait]
impl Store for Memory {
    fn task_hub(&self) -> &str {
        &self.hub
    }

    fn with_task_hub(&self, hub: &str) -> Arc<dyn Store> {
        Arc::new(self.in_task_hub(hub))
    }

    fn signal(&self) -> &WorkSignal {
        &self.shared.signal
    }

    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError> {
        let ready = instance
            .start_at
            .is_none()
            .then(|| instance.instance_id.clone());
        self.hub().create(instance)?;
        self.shared.signal.keep_ready(ready);
        self.notify_all();
        Ok(())
    }

    async fn enqueue(&self, message: OrchestrationMessage) -> Result<(), StoreError> {
        let ready = message
            .visible_at
            .is_none()
            .then(|| message.instance_id.clone());
        {
            let mut hub = self.hub();
            if !hub.instances.contains_key(&message.instance_id)
                && !EntityId::is_entity_instance(&message.instance_id)
            {
                return Err(StoreError::InstanceNotFound(message.instance_id));
            }
            hub.deliver(message);
        }
        self.shared.signal.work_for(ready);
        Ok(())
    }

    async fn fetch_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Fetched<OrchestrationWorkItem>, StoreError> {
        work::fetch_orchestration(self, now, lease, owned).await
    }

    async fn fetch_left_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        work::fetch_left_orchestration(self, now, lease, owned).await
    }

    fn reads_owned_work(&self) -> bool {
        true
    }

    async fn ready_instances(
        &self,
        now: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<ReadyInstances, StoreError> {
        work::ready_instances(self, now, owned, limit).await
    }

    async fn read_orchestration(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
        fence: PartitionLease,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        work::read_orchestration(self, instance_id, now, fence).await
    }

    async fn next_visible_for(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.hub().instances.get(instance_id).and_then(|entry| {
            entry
                .messages
                .iter()
                .filter_map(|m| m.message.visible_at)
                .filter(|at| *at > now)
                .min()
        }))
    }

    async fn coming_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let hub = self.hub();
        let mut due: Vec<(String, DateTime<Utc>)> = hub
            .instances
            .iter()
            .filter(|(id, _)| owned.fence(id).is_some())
            .flat_map(|(id, entry)| {
                entry
                    .messages
                    .iter()
                    .filter_map(|m| m.message.visible_at)
                    .filter(|at| *at > now && *at <= until)
                    .map(move |at| (id.clone(), at))
            })
            .collect();
        due.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        due.truncate(limit);
        Ok(due)
    }

    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError> {
        let now_ms = lease_clock_ms(&self.shared);
        let mut guard = self.hub();
        let hub = &mut *guard;
        if hub.partitions.is_empty() {
            hub.partitions = (0..claim.count_if_new.max(1))
                .map(PartitionRow::new)
                .collect();
        }
        let table = apply_claim(&mut hub.partitions, &mut hub.hosts, &claim, now_ms);
        drop(guard);
        // Newly owned partitions may have work waiting.
        self.shared.signal.orchestration_work();
        Ok(table)
    }

    async fn history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        Ok(self
            .hub()
            .instances
            .get(instance_id)
            .map(|e| e.history.clone())
            .unwrap_or_default())
    }

    async fn commit_turn_holding(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        self.commit_turn_reading(
            item,
            commit,
            run_here,
            lease,
            Vec::new(),
            DateTime::UNIX_EPOCH,
        )
        .await
        .map(|(held, _)| held)
    }

    fn reads_with_commit(&self) -> bool {
        true
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
        item.check_read_in()?;
        self.commit_reading(item, commit, run_here, lease, read, now)
            .await
    }

    fn starts_with_turn(&self) -> bool {
        true
    }

    async fn create_with_turn(
        &self,
        instance: NewInstance,
        fence: PartitionLease,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
        self.create_started(instance, fence, commit, run_here, lease)
            .await
    }

    async fn renew_orchestration_lease(
        &self,
        item: &OrchestrationWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let mut hub = self.hub();
        hub.check_lock(item)?;
        // An item read without a lease is held by its partition's lease: nothing to extend.
        if !item.lock.0.is_empty() {
            hub.leases
                .insert(item.instance_id.clone(), Instant::now() + lease);
        }
        Ok(())
    }

    async fn abandon_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        item.check_read_in()?;
        work::abandon_orchestration(self, item, retry_after).await
    }

    async fn release_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
        by: &str,
    ) -> Result<(), StoreError> {
        item.check_read_in()?;
        work::release_orchestration(self, item, retry_after, by).await
    }

    async fn park_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        item.check_read_in()?;
        work::park_orchestration(self, item, error, now).await
    }

    async fn fetch_activity(
        &self,
        lease: Duration,
    ) -> Result<Option<ActivityWorkItem>, StoreError> {
        activities::fetch_activity(self, lease).await
    }

    async fn fetch_activities(
        &self,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        activities::fetch_activities(self, lease, max).await
    }

    async fn renew_activity_lease(
        &self,
        item: &ActivityWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError> {
        activities::renew_activity_lease(self, item, lease).await
    }

    async fn complete_activity(
        &self,
        item: &ActivityWorkItem,
        response: OrchestrationMessage,
    ) -> Result<(), StoreError> {
        activities::complete_activity(self, item, response).await
    }

    async fn complete_activities_and_commit(
        &self,
        results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
        expected: InstanceVersion,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<ResultsCommit, StoreError> {
        self.complete_and_commit(results, expected, commit, run_here, lease)
            .await
    }

    async fn abandon_activity(
        &self,
        item: &ActivityWorkItem,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        activities::abandon_activity(self, item, retry_after).await
    }

    async fn park_activity(
        &self,
        item: &ActivityWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        activities::park_activity(self, item, error, now).await
    }

    async fn parked(&self) -> Result<Vec<ParkedMessage>, StoreError> {
        Ok(self.hub().parked.clone())
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        Ok(self
            .hub()
            .instances
            .get(instance_id)
            .map(|e| e.status.clone()))
    }

    async fn query(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        self.query_page(query, false)
    }

    async fn query_newest_first(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        self.query_page(query, true)
    }

    async fn count_by_status(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        let hub = self.hub();
        let mut counts = [0u64; RuntimeStatus::ALL.len()];
        for entry in hub.instances.values() {
            if !entry.status.instance_id.starts_with('@') {
                let at = RuntimeStatus::ALL
                    .iter()
                    .position(|s| *s == entry.status.runtime_status)
                    .unwrap_or(0);
                counts[at] += 1;
            }
        }
        Ok(RuntimeStatus::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        let mut hub = self.hub();
        let terminal = hub
            .instances
            .get(instance_id)
            .is_some_and(|e| e.status.runtime_status.is_terminal() && e.lock.is_none());
        if terminal {
            hub.instances.remove(instance_id);
            hub.activities.retain(|a| a.task.instance_id != instance_id);
            hub.parked.retain(|p| p.instance_id != instance_id);
        }
        Ok(terminal)
    }

    async fn purge_where(&self, filter: &PurgeFilter) -> Result<u64, StoreError> {
        let ids: Vec<String> = self
            .hub()
            .instances
            .values()
            .filter(|e| e.lock.is_none() && filter.matches(&e.status))
            .map(|e| e.status.instance_id.clone())
            .collect();
        let mut purged = 0;
        for id in ids {
            if self.purge(&id).await? {
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn import_instance(
        &self,
        status: InstanceStatus,
        history: Vec<HistoryEvent>,
        replace: bool,
    ) -> Result<(), StoreError> {
        self.hub().import(status, history, replace)
    }

    async fn remove_entity(
        &self,
        instance_id: &str,
        if_last_updated: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut hub = self.hub();
        let removable = hub.instances.get(instance_id).is_some_and(|e| {
            EntityId::is_entity_instance(instance_id)
                && e.lock.is_none()
                && e.messages.is_empty()
                && e.status.last_updated_at == if_last_updated
        });
        if removable {
            hub.instances.remove(instance_id);
        }
        Ok(removable)
    }

    async fn is_idle(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let real_now = Instant::now();
        let hub = self.hub();
        let busy = !hub.leases.is_empty()
            || !hub.leased_activities.is_empty()
            || !hub.activities.is_empty()
            || hub
                .instances
                .values()
                .any(|e| e.messages.iter().any(|m| m.visible(now, real_now)));
        Ok(!busy)
    }
}
