//! The PostgreSQL store: several hosts on several machines share one database.
//!
//! Work is leased with `SELECT … FOR NO KEY UPDATE SKIP LOCKED`, so hosts never wait on each
//! other's work items; leases expire on the database's clock, so a crashed host's work is taken
//! over; every turn commits in one transaction that first checks the lease's token or its
//! partition's epoch. Turns, starts and activity results that come in together are written
//! in one transaction of a few statements for the whole group (`group/`). Writes that queue
//! work send a `NOTIFY`, and every store listens on a dedicated connection, so idle dispatchers
//! wake at once when any host queues work.
//!
//! Tables (created and migrated on connect, see `schema.rs`): `durable_instances`,
//! `durable_history`, `durable_messages`, `durable_activities`, `durable_parked` and
//! `durable_schema_version`. Every row carries its task hub.

mod activities;
mod commits;
mod connect;
mod db;
mod group;
mod import;
mod instances;
mod lease;
mod listener;
mod partitions;
mod reads;
mod schema;
mod turns;
mod work;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use self::listener::{Signals, Wake};
use super::{
    ActivityTask, ActivityWorkItem, Fetched, InstanceVersion, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim, PartitionLease, PartitionTable,
    ReadyInstances, ResultsCommit, Store, StoreError, TurnCommit, WorkSignal,
};
use crate::model::history::HistoryEvent;
use crate::model::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};

/// The environment variable [`Postgres::from_env`] reads.
const URL_VAR: &str = "DURABLE_POSTGRES_URL";

/// Connections per pool unless [`Postgres::connect_with`] says otherwise.
const DEFAULT_POOL_SIZE: usize = 16;

/// How often dispatchers look for work without a notification: only a safety net for
/// notifications lost while the listening connection reconnects, and for retries that become
/// due on another host.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A [`Store`] in a PostgreSQL database (version 11 or later), shared by every host that
/// connects to it. Clones and [`Store::with_task_hub`] handles share one connection pool.
///
/// The schema is created, or migrated to this version of durable, when the store connects; a
/// database written by a newer version of durable is refused, untouched.
///
/// ```no_run
/// use durable::prelude::*;
/// use durable::store::Postgres;
///
/// # #[orchestrator]
/// # async fn greet(_ctx: OrchestrationContext, name: String) -> Result<String, Error> {
/// #     Ok(format!("Hello {name}!"))
/// # }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Every host runs the same code against the same database.
/// let store = Postgres::connect("postgres://durable:secret@db.internal:5432/durable").await?;
/// let runtime = Runtime::builder()
///     .store(store)
///     .task_hub("orders")
///     .register(greet)
///     .start()
///     .await?;
/// let id = runtime.client().start(greet, "Tokyo".to_string()).await?;
/// # let _ = id;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Postgres {
    shared: Arc<Shared>,
    hub: String,
    signal: Arc<WorkSignal>,
}

/// What every handle on one pool shares.
struct Shared {
    pool: Pool,
    /// The database, for error messages (`user@host:port/dbname`, never the password).
    target: String,
    signals: Arc<Signals>,
    listener: tokio::task::AbortHandle,
    announcer: listener::Announcer,
    /// Turns and activity results waiting for the next batch.
    committer: group::Committer,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("database", &self.shared.target)
            .field("task_hub", &self.hub)
            .finish()
    }
}

#[async_trait::async_trait]
impl Store for Postgres {
    fn task_hub(&self) -> &str {
        &self.hub
    }

    fn with_task_hub(&self, hub: &str) -> Arc<dyn Store> {
        Arc::new(self.in_task_hub(hub))
    }

    fn signal(&self) -> &WorkSignal {
        &self.signal
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(POLL_INTERVAL)
    }

    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError> {
        const OP: &str = "creating an instance";
        let mut connection = self.connection(OP).await?;
        let result = work::create_instance(self, &mut connection, instance).await;
        self.finish(OP, connection, result)?;
        self.wake(Wake::ALL);
        Ok(())
    }

    async fn enqueue(&self, message: OrchestrationMessage) -> Result<(), StoreError> {
        let ready = message
            .visible_at
            .is_none()
            .then(|| message.instance_id.clone());
        let wake = Wake {
            orchestrations: true,
            ..Wake::default()
        };
        group::submit(self, group::Work::Message(message), wake).await?;
        self.signal().keep_ready(ready);
        self.wake(wake);
        Ok(())
    }

    async fn fetch_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Fetched<OrchestrationWorkItem>, StoreError> {
        const OP: &str = "fetching orchestration work";
        let mut connection = self.connection(OP).await?;
        let result = lease::fetch(self, &mut connection, now, lease, owned).await;
        self.finish(OP, connection, result)
    }

    async fn fetch_left_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        const OP: &str = "fetching work left by another host";
        let mut connection = self.connection(OP).await?;
        let result = lease::fetch_left(self, &mut connection, now, lease, owned).await;
        self.finish(OP, connection, result)
    }

    fn reads_owned_work(&self) -> bool {
        true
    }

    fn turns_in_flight(&self) -> usize {
        1024
    }

    async fn ready_instances(
        &self,
        now: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<ReadyInstances, StoreError> {
        const OP: &str = "looking for work";
        let mut connection = self.connection(OP).await?;
        let result = reads::ready(self, &mut connection, now, owned, limit).await;
        self.finish(OP, connection, result)
    }

    async fn coming_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        const OP: &str = "looking for timers coming due";
        let mut connection = self.connection(OP).await?;
        let result = reads::coming_due(self, &mut connection, now, until, owned, limit).await;
        self.finish(OP, connection, result)
    }

    async fn read_orchestration(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
        fence: PartitionLease,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        const OP: &str = "reading an instance's work";
        let mut connection = self.connection(OP).await?;
        let result = reads::read(self, &mut connection, instance_id, now, fence).await;
        self.finish(OP, connection, result)
    }

    async fn read_orchestrations(
        &self,
        wanted: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrchestrationWorkItem>, StoreError> {
        const OP: &str = "reading instances' work";
        let at = db::nanos(now);
        let wanted: Vec<(&str, PartitionLease, i64)> = wanted
            .iter()
            .map(|(id, fence)| (id.as_str(), *fence, at))
            .collect();
        let connection = self.connection(OP).await?;
        let result = reads::read_many(&connection, &self.hub, &wanted).await;
        self.finish(OP, connection, result)
    }

    async fn next_visible_for(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        const OP: &str = "looking for an instance's next message";
        let mut connection = self.connection(OP).await?;
        let result = reads::next_visible_for(self, &mut connection, instance_id, now).await;
        self.finish(OP, connection, result)
    }

    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError> {
        const OP: &str = "claiming partitions";
        let mut connection = self.connection(OP).await?;
        let result = partitions::claim(self, &mut connection, claim).await;
        let table = self.finish(OP, connection, result)?;
        // Newly owned partitions may have work waiting.
        self.signal().orchestration_work();
        Ok(table)
    }

    async fn history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        const OP: &str = "reading a history";
        let mut connection = self.connection(OP).await?;
        let result = instances::history(self, &mut connection, instance_id).await;
        self.finish(OP, connection, result)
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
        // One statement in the batch's transaction reads every instance the batch's turns
        // gave work, instead of a round trip, a statement and a snapshot for each.
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
        const OP: &str = "renewing a lease";
        let mut connection = self.connection(OP).await?;
        let result = work::renew(self, &mut connection, item, lease).await;
        self.finish(OP, connection, result)
    }

    async fn abandon_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        item.check_read_in()?;
        const OP: &str = "abandoning orchestration work";
        let mut connection = self.connection(OP).await?;
        let result = work::abandon(self, &mut connection, item, retry_after).await;
        self.finish(OP, connection, result)?;
        self.wake_later(retry_after);
        Ok(())
    }

    async fn release_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
        by: &str,
    ) -> Result<(), StoreError> {
        item.check_read_in()?;
        const OP: &str = "releasing orchestration work";
        let mut connection = self.connection(OP).await?;
        let result = work::leave(self, &mut connection, item, retry_after, by).await;
        self.finish(OP, connection, result)
    }

    async fn park_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        item.check_read_in()?;
        const OP: &str = "parking messages";
        let mut connection = self.connection(OP).await?;
        let result = work::park(self, &mut connection, item, error, now).await;
        self.finish(OP, connection, result)
    }

    async fn fetch_activity(
        &self,
        lease: Duration,
    ) -> Result<Option<ActivityWorkItem>, StoreError> {
        const OP: &str = "fetching an activity";
        let mut connection = self.connection(OP).await?;
        let result = activities::fetch(self, &mut connection, lease, 1).await;
        Ok(self.finish(OP, connection, result)?.pop())
    }

    async fn fetch_activities(
        &self,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        const OP: &str = "fetching activities";
        let mut connection = self.connection(OP).await?;
        let result = activities::fetch(self, &mut connection, lease, max).await;
        self.finish(OP, connection, result)
    }

    async fn renew_activity_lease(
        &self,
        item: &ActivityWorkItem,
        lease: Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "renewing an activity's lease";
        let mut connection = self.connection(OP).await?;
        let result = activities::renew(self, &mut connection, item, lease).await;
        self.finish(OP, connection, result)
    }

    async fn complete_activity(
        &self,
        item: &ActivityWorkItem,
        response: OrchestrationMessage,
    ) -> Result<(), StoreError> {
        let ready = response.instance_id.clone();
        let wake = Wake {
            orchestrations: true,
            ..Wake::default()
        };
        let result = group::ResultJob {
            item: item.clone(),
            response,
        };
        group::submit(self, group::Work::Result(result), wake).await?;
        self.signal().keep_ready([ready]);
        self.wake(wake);
        Ok(())
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
        const OP: &str = "abandoning an activity";
        let mut connection = self.connection(OP).await?;
        let result = activities::abandon(self, &mut connection, item, retry_after).await;
        self.finish(OP, connection, result)?;
        self.wake_later(retry_after);
        Ok(())
    }

    async fn park_activity(
        &self,
        item: &ActivityWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "parking an activity";
        let mut connection = self.connection(OP).await?;
        let result = activities::park(self, &mut connection, item, error, now).await;
        self.finish(OP, connection, result)
    }

    async fn parked(&self) -> Result<Vec<ParkedMessage>, StoreError> {
        const OP: &str = "listing parked messages";
        let mut connection = self.connection(OP).await?;
        let result = instances::parked(self, &mut connection).await;
        self.finish(OP, connection, result)
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        const OP: &str = "reading an instance";
        let mut connection = self.connection(OP).await?;
        let result = instances::status(self, &mut connection, instance_id).await;
        self.finish(OP, connection, result)
    }

    async fn query(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        const OP: &str = "querying instances";
        let mut connection = self.connection(OP).await?;
        let result = instances::query(self, &mut connection, query, false).await;
        self.finish(OP, connection, result)
    }

    async fn query_newest_first(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        const OP: &str = "querying instances";
        let mut connection = self.connection(OP).await?;
        let result = instances::query(self, &mut connection, query, true).await;
        self.finish(OP, connection, result)
    }

    async fn count_by_status(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        const OP: &str = "counting instances";
        let mut connection = self.connection(OP).await?;
        let result = instances::count_by_status(self, &mut connection).await;
        self.finish(OP, connection, result)
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        const OP: &str = "purging an instance";
        let mut connection = self.connection(OP).await?;
        let result = instances::purge(self, &mut connection, instance_id).await;
        self.finish(OP, connection, result)
    }

    async fn purge_where(&self, filter: &PurgeFilter) -> Result<u64, StoreError> {
        const OP: &str = "purging instances";
        let mut connection = self.connection(OP).await?;
        let result = instances::purge_where(self, &mut connection, filter).await;
        self.finish(OP, connection, result)
    }

    async fn remove_entity(
        &self,
        instance_id: &str,
        if_last_updated: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "removing an entity";
        let mut connection = self.connection(OP).await?;
        let result =
            instances::remove_entity(self, &mut connection, instance_id, if_last_updated).await;
        self.finish(OP, connection, result)
    }

    async fn import_instance(
        &self,
        status: InstanceStatus,
        history: Vec<HistoryEvent>,
        replace: bool,
    ) -> Result<(), StoreError> {
        const OP: &str = "importing an instance";
        let mut connection = self.connection(OP).await?;
        let result = import::import(self, &mut connection, status, history, replace).await;
        self.finish(OP, connection, result)
    }

    async fn is_idle(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        const OP: &str = "checking for pending work";
        let mut connection = self.connection(OP).await?;
        let result = instances::is_idle(self, &mut connection, now).await;
        self.finish(OP, connection, result)
    }
}
