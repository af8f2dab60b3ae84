//! Where histories, instance status and queued messages live.
//!
//! The [`Store`] trait is shaped for durable backends. A task hub's instances fall into a
//! fixed number of partitions ([`partition_of`]); a host owns partitions through one lease
//! each ([`Store::claim_partitions`]) and takes work only from those, and every change of hands
//! raises the partition's epoch, which every commit of a fetched work item carries: a host
//! that lost a partition has its late commits refused instead of applied twice. Within owned
//! partitions a store either leases each fetched instance ([`Store::fetch_orchestration`], with
//! a lock token its commit must carry) or hands the work out by reading it
//! ([`Store::reads_owned_work`]). A host renews the leases of work still in progress
//! ([`Store::renew_activity_lease`], [`Store::renew_orchestration_lease`]), so leases can be
//! short while steps take as long as they need. [`Memory`] is the in-process store for tests.
//!
//! A store for another database can be checked against the suite the built-in stores pass: the
//! `conformance` module and the `durable::store_conformance_tests!` macro, behind the
//! `store-conformance` feature.

#[cfg(feature = "store-conformance")]
pub mod conformance;
mod error;
mod items;
mod memory;
mod ownership;
mod paging;
#[cfg(feature = "postgres")]
mod postgres;
mod signal;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use error::StoreError;
pub use items::{
    ActivityTask, ActivityWorkItem, CommitState, Fetched, HistoryWrite, InstanceVersion, LockToken,
    NewInstance, OrchestrationMessage, OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim,
    PartitionLease, PartitionState, PartitionTable, QueuedMessage, ReadyInstances, ResultsCommit,
    TurnCommit, id_hash, new_entity_status, partition_of,
};
pub use memory::Memory;
#[cfg(feature = "postgres")]
pub use postgres::Postgres;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, Sqlite};

pub use signal::{InstanceWatch, StatusTold, WorkSignal};

use crate::model::history::HistoryEvent;
use crate::model::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};

/// How long left work waits at most before other hosts may fetch it (see
/// [`Store::release_orchestration`]).
pub const LEFT_PAUSE: Duration = Duration::from_millis(100);

/// Where [`Store::commit_turn_handing`] hands the work its commit read: called once, on the
/// thread that read it, so it must not block.
pub type HandOver = Box<dyn FnOnce(Vec<OrchestrationWorkItem>) + Send>;

/// A durable store of instances, histories and queues, scoped to one task hub.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The task hub this handle is scoped to.
    fn task_hub(&self) -> &str;

    /// A handle on another task hub of the same storage.
    fn with_task_hub(&self, hub: &str) -> Arc<dyn Store>;

    /// The notifications this store raises on its own writes.
    fn signal(&self) -> &WorkSignal;

    /// How often dispatchers should look for work that another process queued (`None` when
    /// every writer is in this process and raises [`Store::signal`]).
    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    /// Creates an instance and queues its start. Refused with
    /// [`StoreError::InstanceAlreadyExists`] when one with this id is pending or running,
    /// unless `replace_running` is set; a finished one is replaced.
    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError>;

    /// Queues a message for an existing instance (or for an entity, which is created on first
    /// use).
    async fn enqueue(&self, message: OrchestrationMessage) -> Result<(), StoreError>;

    /// Leases the next instance of the `owned` partitions with visible messages (at `now`) for
    /// `lease`; the work item carries the partition's lease as its fence.
    async fn fetch_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Fetched<OrchestrationWorkItem>, StoreError>;

    /// Renews, takes and releases partitions for one host in one write, and records the host's
    /// heartbeat (live for `claim.lease`); creates the hub's partitions (`count_if_new`) when
    /// it has none. A partition changes hands only when it is free or its lease ran out, and
    /// then its epoch goes up by one; a lease renewed under an epoch that moved on is lost.
    /// Commits of work items fenced by a lost lease are refused with
    /// [`StoreError::LeaseLost`].
    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError>;

    /// Whether this store hands out the work of owned partitions by reading it, without a
    /// lease per instance ([`Store::ready_instances`], [`Store::read_orchestration`]); hosts
    /// then fetch that way instead of with [`Store::fetch_orchestration`]. The default is no.
    fn reads_owned_work(&self) -> bool {
        false
    }

    /// The instances of the `owned` partitions with messages visible at `now` and no lease on
    /// them, in the order of their oldest visible message, at most `limit`; and when the next
    /// message becomes visible. Only reads. Needed when [`Store::reads_owned_work`].
    async fn ready_instances(
        &self,
        now: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<ReadyInstances, StoreError> {
        let _ = (now, owned, limit);
        Err(StoreError::Backend(
            "this store does not hand out work by reading it".into(),
        ))
    }

    /// `instance_id`'s work item as it stands: its status, history length and the messages
    /// visible at `now`, read without a lease (`None` when none is visible). The item's lock
    /// token is empty: the caller holds it through `fence`, the lease on its partition, which
    /// its commit, abandon and park check instead (and no other host can read it while the
    /// fence holds). Its messages count as delivered once more only when it is abandoned.
    /// Needed when [`Store::reads_owned_work`].
    async fn read_orchestration(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
        fence: PartitionLease,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        let _ = (instance_id, now, fence);
        Err(StoreError::Backend(
            "this store does not hand out work by reading it".into(),
        ))
    }

    /// The work items of several instances, each as [`Store::read_orchestration`] reads it
    /// (with the lease of its partition): those with visible messages, in any order. A host
    /// that finds many instances ready at once (timers come due together) reads them in one
    /// call. The default reads them one by one; a store answers it in one statement.
    async fn read_orchestrations(
        &self,
        wanted: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrchestrationWorkItem>, StoreError> {
        let mut items = Vec::with_capacity(wanted.len());
        for (id, fence) in wanted {
            if let Some(item) = self.read_orchestration(&id, now, fence).await? {
                items.push(item);
            }
        }
        Ok(items)
    }

    /// Leases the next instance outside the `owned` partitions whose work a host left for
    /// another (see [`Store::release_orchestration`]), as [`Store::fetch_orchestration`]
    /// leases work, except that the host that left it does not get it back before its wait is
    /// over. A host that reads its own partitions' work ([`Store::reads_owned_work`]) takes
    /// the work left in other partitions this way; its commit is checked against the lease, as
    /// a fetched item's. The default finds none, as on a store one host owns entirely.
    async fn fetch_left_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        let _ = (now, lease, owned);
        Ok(None)
    }

    /// When the first of `instance_id`'s queued messages that `now` does not reach yet becomes
    /// visible: the earliest visible time after `now` among them (a timer's, a scheduled
    /// start's); `None` when it has none. Only reads. A host asks this of an instance that was
    /// sent messages before its scheduled start: they wait, queued, until the start is due.
    ///
    /// The default knows none: the host then sets such messages aside for a while at a time
    /// (as long as they have waited, from a second up to a minute; a write each time), and
    /// they may reach the orchestrator up to that long after its start. A store answers it
    /// with one indexed read.
    async fn next_visible_for(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = (instance_id, now);
        Ok(None)
    }

    /// The messages of the `owned` partitions that become visible after `now` and by `until`
    /// (timers, scheduled starts), as their instance and visible time, earliest first, at most
    /// `limit`. Only reads. A host that takes partitions over keeps these times, to read the
    /// instances' work shortly before it is due and run it then (see the host's timers). A
    /// store that reads owned work ([`Store::reads_owned_work`]) answers it (the conformance
    /// suite checks); the default finds none, and such messages are then found by looking
    /// once visible.
    async fn coming_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let _ = (now, until, owned, limit);
        Ok(Vec::new())
    }

    /// How many orchestration turns a host runs at once on this store when its builder does
    /// not say (`max_concurrent_orchestrations`). A turn is mostly a wait for its commit where
    /// a commit waits for a disk or a database; turns committed together share one write, so
    /// such a store wants enough turns in flight to fill its commit groups while the next
    /// ones are computed. A store that commits at once gains nothing from more turns than the
    /// host can compute. The default is 256.
    fn turns_in_flight(&self) -> usize {
        256
    }

    /// Whether one host at a time owns the whole hub (a store in a local file: a second host
    /// on it waits until the first is gone).
    fn single_owner(&self) -> bool {
        false
    }

    /// The instance's stored history.
    async fn history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError>;

    /// Commits a turn atomically and releases the lease, and queues `run_here` (activities the
    /// turn scheduled that the committing host runs itself, at once) already leased to the
    /// caller for `lease`, so no other host fetches them; returns their work items, in order,
    /// to be renewed and completed like fetched ones — a step without a queue round trip: the
    /// activity starts as soon as the turn that scheduled it is durable. Refused with
    /// [`StoreError::LeaseLost`] when the lease was lost, or when the item is fenced and its
    /// partition's epoch moved on; nothing is then applied.
    async fn commit_turn_holding(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Vec<ActivityWorkItem>, StoreError>;

    /// Whether [`Store::commit_turn_reading`] reads the work its commit gives (the default is
    /// no: it commits, and reads nothing).
    fn reads_with_commit(&self) -> bool {
        false
    }

    /// [`Store::commit_turn_holding`], and, in the same transaction once the turn is applied,
    /// the work of the instances in `read` as [`Store::read_orchestration`] reads it at `now`
    /// (each with the lease of its partition): the committing host runs their next turns
    /// without reading them again, on a store where that read is cheaper in the commit. Only
    /// instances the turn gives work visible at once are named, and the host runs no turn of
    /// them meanwhile. Returns the held activities and the work items found (none for an
    /// instance without visible messages). The instances whose work was returned are left out
    /// of the ready instances the store's signal tells of (see
    /// [`WorkSignal::turn_committed`]).
    async fn commit_turn_reading(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
        read: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ActivityWorkItem>, Vec<OrchestrationWorkItem>), StoreError> {
        let _ = (read, now);
        let held = self
            .commit_turn_holding(item, commit, run_here, lease)
            .await?;
        Ok((held, Vec::new()))
    }

    /// Whether [`Store::commit_turn_handing`] hands the work it reads over before the commit
    /// is durable: the store applies every write in the order it was sent (a commit sent
    /// after another is applied after it, and reads what it wrote). The default is no.
    fn hands_over_early(&self) -> bool {
        false
    }

    /// [`Store::commit_turn_reading`], handing the work it reads to `hand` (once, unless the
    /// commit fails before reading) instead of returning it. A store whose writes are applied
    /// in order may hand it over as soon as it is read, before the commit is durable: each item
    /// then names that commit ([`OrchestrationWorkItem::read_in`]), every write of it is
    /// applied after the commit settled and is refused unless it was applied, and the
    /// item's instance has nothing else visible outside meanwhile (a turn computed on it
    /// commits after it, or not at all). The instances handed over are left out of the ready
    /// instances the store's signal tells of, once the commit is durable. The default hands
    /// over what [`Store::commit_turn_reading`] returned, once it is durable.
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
        let (held, items) = self
            .commit_turn_reading(item, commit, run_here, lease, read, now)
            .await?;
        hand(items);
        Ok(held)
    }

    /// Whether [`Store::create_with_turn`] writes an instance together with its first turn.
    /// The default is no: hosts then create instances with [`Store::create_instance`] and run
    /// their first turn when they read them.
    fn starts_with_turn(&self) -> bool {
        false
    }

    /// Creates an instance and commits its first turn (`commit`, which consumes the start
    /// message, so that none is queued) in one write: a start costs the host no read and no
    /// write of its own. Refused as [`Store::create_instance`] refuses, and with
    /// [`StoreError::LeaseLost`] when `fence`, the caller's lease on the instance's partition,
    /// no longer holds; nothing is then applied. `run_here` is held for the caller for `lease`
    /// as by [`Store::commit_turn_holding`]. Returns the held activities' work items, or
    /// `None` when the store only created the instance (the default, which ignores the turn:
    /// the instance's first turn then runs when a host reads its start message).
    async fn create_with_turn(
        &self,
        instance: NewInstance,
        fence: PartitionLease,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Option<Vec<ActivityWorkItem>>, StoreError> {
        let _ = (fence, commit, run_here, lease);
        self.create_instance(instance).await.map(|()| None)
    }

    /// Commits a turn that holds no activities for the caller (see
    /// [`Store::commit_turn_holding`]).
    async fn commit_turn(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
    ) -> Result<(), StoreError> {
        self.commit_turn_holding(item, commit, Vec::new(), Duration::ZERO)
            .await
            .map(drop)
    }

    /// Extends the lease on an orchestration work item to `lease` from now (on the store's
    /// lease clock) while its turn runs. Refused with [`StoreError::LeaseLost`] when the lock
    /// token no longer holds the instance (it was committed, abandoned, or taken over after
    /// the lease expired). A lease that expired but was not taken over is extended.
    async fn renew_orchestration_lease(
        &self,
        item: &OrchestrationWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError>;

    /// Releases the lease without consuming the messages; they become visible again after
    /// `retry_after`.
    async fn abandon_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
    ) -> Result<(), StoreError>;

    /// Releases the lease like [`Store::abandon_orchestration`], without counting this fetch
    /// toward the messages' `dequeue_count`: for work host `by` leaves for another host (one
    /// that has the orchestrator, or may run the instance's version), which is no failed
    /// attempt and must never get the messages parked. The work is marked as left: any host
    /// may then fetch it, whoever owns its partition, after a short pause
    /// ([`LEFT_PAUSE`] at most), except `by` itself, which does not get it back before
    /// `retry_after`. Unlike an abandon, the store raises no wake-up of its own: every host
    /// finds the work on its next poll. The default abandons, which counts the fetch.
    async fn release_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
        by: &str,
    ) -> Result<(), StoreError> {
        let _ = by;
        self.abandon_orchestration(item, retry_after).await
    }

    /// Moves the work item's messages aside with `error` and releases the lease.
    async fn park_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Leases the next queued activity for `lease`.
    async fn fetch_activity(&self, lease: Duration)
    -> Result<Option<ActivityWorkItem>, StoreError>;

    /// Leases up to `max` queued activities for `lease` in one write: free ones first, oldest
    /// first, then ones whose lease ran out. Each gets its own lock token. The default fetches
    /// them one at a time with [`Store::fetch_activity`].
    async fn fetch_activities(
        &self,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        let mut items = Vec::new();
        while items.len() < max {
            match self.fetch_activity(lease).await? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(items)
    }

    /// Extends the lease on a running activity to `lease` from now (on the store's lease
    /// clock), so that it is not fetched again while it runs. Refused with
    /// [`StoreError::LeaseLost`] when the lock token no longer holds the activity (it was
    /// completed, abandoned, parked, or taken over after the lease expired). A lease that
    /// expired but was not taken over is extended.
    async fn renew_activity_lease(
        &self,
        item: &ActivityWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError>;

    /// Removes a finished activity and queues its result, atomically. Refused with
    /// [`StoreError::LeaseLost`] when the lease was lost.
    async fn complete_activity(
        &self,
        item: &ActivityWorkItem,
        response: OrchestrationMessage,
    ) -> Result<(), StoreError>;

    /// Records finished activities' results and commits the turn they unblock, in one write
    /// and without a lease on the instance: a sequential step costs one write. The turn is
    /// applied only when the instance is not leased and is still at `expected` (the same
    /// execution, history length and last update: no turn was committed since the caller's;
    /// and, when `expected` is fenced, the partition's epoch has not moved on);
    /// otherwise nothing of the turn is applied and the results are queued as by
    /// [`Store::complete_activity`]. Either way each activity is removed, and it must still be
    /// held under its lock token: if one is not, [`StoreError::LeaseLost`] and nothing at all
    /// is applied. `run_here` is held for `lease` as by [`Store::commit_turn_holding`].
    ///
    /// The default queues the results and reports [`ResultsCommit::Queued`]; the turn then
    /// runs when a dispatcher fetches them.
    async fn complete_activities_and_commit(
        &self,
        results: Vec<(ActivityWorkItem, OrchestrationMessage)>,
        expected: InstanceVersion,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<ResultsCommit, StoreError> {
        let _ = (expected, commit, run_here, lease);
        for (item, response) in results {
            self.complete_activity(&item, response).await?;
        }
        Ok(ResultsCommit::Queued)
    }

    /// Releases an activity's lease; it is fetched again after `retry_after`.
    async fn abandon_activity(
        &self,
        item: &ActivityWorkItem,
        retry_after: Duration,
    ) -> Result<(), StoreError>;

    /// Moves an activity aside with `error`.
    async fn park_activity(
        &self,
        item: &ActivityWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The messages parked so far.
    async fn parked(&self) -> Result<Vec<ParkedMessage>, StoreError>;

    /// An instance's status.
    async fn instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError>;

    /// Instances matching a query, one page at a time, ordered by creation time then id.
    async fn query(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError>;

    /// Like [`Store::query`], newest first: ordered by creation time then id, both descending.
    /// A continuation token names the last instance of the previous page, as for `query`.
    ///
    /// The default reads every match through [`Store::query`] to reverse them, so it costs a
    /// full scan per page; the built-in stores answer it from their index instead.
    async fn query_newest_first(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        let before = paging::start_after(query)?;
        let size = paging::page_size(query);
        let mut scan = InstanceQuery {
            continuation_token: None,
            page_size: Some(1000),
            ..query.clone()
        };
        let mut all = Vec::new();
        loop {
            let page = self.query(&scan).await?;
            all.extend(page.instances);
            match page.continuation_token {
                Some(token) => scan.continuation_token = Some(token),
                None => break,
            }
        }
        let newest_first: Vec<InstanceStatus> = all
            .into_iter()
            .rev()
            .filter(|s| {
                before
                    .as_ref()
                    .is_none_or(|(t, id)| (s.created_at, s.instance_id.as_str()) < (*t, id))
            })
            .take(size + 1)
            .collect();
        Ok(paging::page(newest_first, size))
    }

    /// How many orchestration instances (not entities) of this task hub are in each status;
    /// statuses with none are left out.
    ///
    /// The default pages through [`Store::query`]; the built-in stores count in the database.
    async fn count_by_status(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        let mut counts: Vec<(RuntimeStatus, u64)> = Vec::new();
        let mut scan = InstanceQuery {
            page_size: Some(1000),
            ..Default::default()
        };
        loop {
            let page = self.query(&scan).await?;
            for status in &page.instances {
                match counts.iter_mut().find(|(s, _)| *s == status.runtime_status) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((status.runtime_status, 1)),
                }
            }
            match page.continuation_token {
                Some(token) => scan.continuation_token = Some(token),
                None => break,
            }
        }
        counts.sort_by_key(|(s, _)| RuntimeStatus::ALL.iter().position(|a| a == s));
        Ok(counts)
    }

    /// Removes every trace of a finished instance; false when there was none to remove.
    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError>;

    /// Purges every finished instance matching the filter; returns how many.
    async fn purge_where(&self, filter: &PurgeFilter) -> Result<u64, StoreError>;

    /// Removes an entity's instance when it has no queued messages, is not leased, and was last
    /// updated at `if_last_updated` (so a concurrent change is never lost). Returns whether it
    /// was removed.
    async fn remove_entity(
        &self,
        instance_id: &str,
        if_last_updated: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Whether no work is visible at `now` and none is leased (for tests that step time).
    async fn is_idle(&self, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Writes an instance as it was exported from another store (`durable history import`):
    /// `status` (its `history` field unused) and `history`, with nothing queued — no start,
    /// timer, event or activity — so nothing runs until a message arrives for it. Refused with
    /// [`StoreError::InstanceAlreadyExists`] when an instance with this id exists, unless
    /// `replace` is set: the existing instance and everything it owns are then removed first,
    /// whatever its status, in the same transaction.
    ///
    /// The default refuses: a store written elsewhere imports nothing until it implements this.
    async fn import_instance(
        &self,
        status: InstanceStatus,
        history: Vec<HistoryEvent>,
        replace: bool,
    ) -> Result<(), StoreError> {
        let _ = (history, replace);
        Err(StoreError::Backend(format!(
            "this store cannot import instances (importing `{}`)",
            status.instance_id
        )))
    }
}
