//! The embedded SQLite store: one file, WAL, every acknowledged step fsynced by default.

mod access;
mod activities;
mod check;
mod commits;
mod import;
mod instances;
mod ops;
mod owner;
mod partitions;
mod schema;
mod syncer;
mod turns;
mod work;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use self::ops::{connect, db, from_nanos, nanos, new_token, real_millis};
use self::writer::Writer;
use super::{
    ActivityTask, ActivityWorkItem, Fetched, HandOver, InstanceVersion, NewInstance,
    OrchestrationMessage, OrchestrationWorkItem, Owned, ParkedMessage, PartitionClaim,
    PartitionLease, PartitionTable, ReadyInstances, ResultsCommit, Store, StoreError, TurnCommit,
    WorkSignal,
};
use crate::model::history::HistoryEvent;
use crate::model::{Error, ErrorKind};
use crate::model::{InstanceQuery, InstanceStatus, PurgeFilter, QueryPage, RuntimeStatus};

/// How much each commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged step is fsynced: nothing acknowledged is lost even when the machine
    /// loses power. The default. The writer commits each group without waiting for the disk,
    /// and a thread of its own syncs the write-ahead log before the group's writes are
    /// answered, while the next group runs; reads through the store answer only what is
    /// synced. (Another process reading the file may see a group up to one sync early.)
    #[default]
    Full,
    /// Commits are not fsynced one by one (`synchronous = NORMAL`): faster; a power loss may
    /// lose the last moments of work, a process crash loses nothing.
    Normal,
}

/// The embedded [`Store`]: one SQLite file (bundled SQLite, WAL). Turns of many instances are
/// committed together by one writer thread (group commit); reads run concurrently.
///
/// ```
/// # fn main() -> Result<(), durable::Error> {
/// let dir = std::env::temp_dir().join(format!("durable-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let store = durable::store::Sqlite::open(dir.join("app.db"))?;
/// # drop(store); std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sqlite {
    inner: Arc<Inner>,
    hub: String,
}

struct Inner {
    path: PathBuf,
    durability: Durability,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// One per reader connection: reads beyond them wait for one instead of opening (and
    /// closing) connections of their own, each with a cold page cache.
    read_slots: tokio::sync::Semaphore,
    signal: WorkSignal,
    owner: owner::OwnerLock,
}

/// How many reads run at once, each on its own connection, kept open.
const READER_POOL: usize = 4;

impl Sqlite {
    /// Opens (or creates) the store at `path` with [`Durability::Full`], applying schema
    /// migrations. Refuses, leaving every file untouched, a file that is not a durable store,
    /// that a newer version wrote, or that is damaged: before anything writes to it, the file
    /// and its write-ahead log are checked on a read-only connection (headers, schema and
    /// `PRAGMA quick_check`, which reads the whole file).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens the store with the given durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let open = || -> Result<Sqlite, StoreError> {
            check::check(&path)?;
            // With `Full`, the writer's commits do not wait for the disk: the syncer's do.
            let mut conn = connect(&path, Durability::Normal)?;
            schema::migrate(&mut conn, &path.display().to_string())?;
            let syncer = match durability {
                Durability::Full => Some(syncer::Syncer::start(&path)?),
                Durability::Normal => None,
            };
            Ok(Sqlite {
                inner: Arc::new(Inner {
                    path: path.clone(),
                    durability,
                    writer: Writer::start(conn, syncer),
                    readers: Mutex::new(Vec::new()),
                    read_slots: tokio::sync::Semaphore::new(READER_POOL),
                    signal: WorkSignal::default(),
                    owner: Default::default(),
                }),
                hub: "default".to_string(),
            })
        };
        open().map_err(|e| Error::new(ErrorKind::Store, e))
    }

    /// The file this store keeps its data in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A handle on another task hub of the same file.
    pub fn in_task_hub(&self, hub: &str) -> Sqlite {
        Sqlite {
            inner: self.inner.clone(),
            hub: hub.to_string(),
        }
    }

    fn wake_later(&self, after: Duration) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            inner.signal.orchestration_work();
            inner.signal.activity_work();
        });
    }

    fn notify_all(&self) {
        self.inner.signal.all();
    }
}

#[async_trait::async_trait]
impl Store for Sqlite {
    fn task_hub(&self) -> &str {
        &self.hub
    }

    fn with_task_hub(&self, hub: &str) -> Arc<dyn Store> {
        Arc::new(self.in_task_hub(hub))
    }

    fn signal(&self) -> &WorkSignal {
        &self.inner.signal
    }

    fn poll_interval(&self) -> Option<Duration> {
        // Other processes may write the same file; their writes raise no signal here.
        Some(Duration::from_millis(500))
    }

    async fn create_instance(&self, instance: NewInstance) -> Result<(), StoreError> {
        let ready = instance
            .start_at
            .is_none()
            .then(|| instance.instance_id.clone());
        self.write_checked(move |conn, hub| ops::create(conn, hub, &instance))
            .await?;
        self.inner.signal.keep_ready(ready);
        self.notify_all();
        Ok(())
    }

    async fn enqueue(&self, message: OrchestrationMessage) -> Result<(), StoreError> {
        let ready = message
            .visible_at
            .is_none()
            .then(|| message.instance_id.clone());
        let event = ops::event_json(&message);
        self.write_checked(move |conn, hub| {
            if !ops::instance_exists(conn, hub, &message.instance_id)?
                && !crate::model::EntityId::is_entity_instance(&message.instance_id)
            {
                return Err(StoreError::InstanceNotFound(message.instance_id));
            }
            ops::deliver_serialized(conn, hub, &message, &event)
        })
        .await?;
        self.inner.signal.work_for(ready);
        Ok(())
    }

    async fn fetch_orchestration(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owned: &Owned,
    ) -> Result<Fetched<OrchestrationWorkItem>, StoreError> {
        work::fetch(self, now, lease, owned).await
    }
    async fn claim_partitions(&self, claim: PartitionClaim) -> Result<PartitionTable, StoreError> {
        // A claim that holds partitions takes the file's owner lock; the first to get it lets
        // go of the leases of the processes before, which have ended (see `owner.rs`).
        let forget = !claim.lease.is_zero() && self.inner.owner.must_forget(&self.inner.path)?;
        let table = self
            .write(move |conn, hub| {
                if forget {
                    partitions::forget_ended_owners(conn)?;
                }
                partitions::claim_partitions(conn, hub, &claim)
            })
            .await?;
        if forget {
            self.inner.owner.forgot();
        }
        // Newly owned partitions may have work waiting.
        self.inner.signal.orchestration_work();
        Ok(table)
    }

    fn single_owner(&self) -> bool {
        true
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
        let now = nanos(now);
        let owned = owned.clone();
        self.read_work(move |conn, hub| {
            partitions::ready_instances(conn, hub, now, real_millis(), &owned, limit)
        })
        .await
    }

    async fn coming_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        owned: &Owned,
        limit: usize,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let (now, until) = (nanos(now), nanos(until));
        let owned = owned.clone();
        self.read_work(move |conn, hub| {
            partitions::coming_due(conn, hub, now, until, &owned, limit)
        })
        .await
    }

    async fn read_orchestration(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
        fence: PartitionLease,
    ) -> Result<Option<OrchestrationWorkItem>, StoreError> {
        let id = instance_id.to_string();
        let now = nanos(now);
        self.read_work(move |conn, hub| {
            let mut none = ops::Queued::default();
            partitions::read_instance(conn, hub, &id, now, real_millis(), fence, &mut none)
        })
        .await
    }

    async fn read_orchestrations(
        &self,
        wanted: Vec<(String, PartitionLease)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrchestrationWorkItem>, StoreError> {
        let now = nanos(now);
        self.read_work(move |conn, hub| partitions::read_instances(conn, hub, &wanted, now))
            .await
    }

    async fn next_visible_for(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let id = instance_id.to_string();
        let now = nanos(now);
        self.read_work(move |conn, hub| partitions::next_visible_for(conn, hub, &id, now))
            .await
    }

    async fn history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        let id = instance_id.to_string();
        self.read(move |conn, hub| ops::read_history(conn, hub, &id))
            .await
    }

    async fn commit_turn_holding(
        &self,
        item: &OrchestrationWorkItem,
        commit: TurnCommit,
        run_here: Vec<ActivityTask>,
        lease: Duration,
    ) -> Result<Vec<ActivityWorkItem>, StoreError> {
        self.commit_reading(
            item,
            commit,
            run_here,
            lease,
            Vec::new(),
            DateTime::UNIX_EPOCH,
            None,
        )
        .await
        .map(|(held, _)| held)
    }

    fn reads_with_commit(&self) -> bool {
        // The writer's connection has the pages the commit just wrote in its cache; a reader's
        // cache is emptied by every commit, so its read of the same work costs file reads.
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
        self.commit_reading(item, commit, run_here, lease, read, now, None)
            .await
    }

    fn hands_over_early(&self) -> bool {
        true
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
        // The single writer applies every write in order: the work read is handed over before
        // the transaction is durable, and its writes wait for it (see `writer.rs`).
        self.commit_reading(item, commit, run_here, lease, read, now, Some(hand))
            .await
            .map(|(held, _)| held)
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
        self.renew_lease(item, lease).await
    }

    async fn abandon_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        // An item read without a lease was not counted when it was read: it is now.
        let counted = i64::from(item.lock.0.is_empty());
        work::set_aside(self, item, retry_after, counted).await?;
        self.wake_later(retry_after);
        Ok(())
    }

    async fn release_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        retry_after: Duration,
        _by: &str,
    ) -> Result<(), StoreError> {
        // One host owns the file: no other host is there to take the work meanwhile. A leased
        // fetch counted a delivery, which is taken back; a read counted none.
        let uncounted = -i64::from(!item.lock.0.is_empty());
        work::set_aside(self, item, retry_after, uncounted).await
    }

    async fn park_orchestration(
        &self,
        item: &OrchestrationWorkItem,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        work::park(self, item, error, now).await
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
        self.read(|conn, hub| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT instance_id, message, error, parked_at FROM parked WHERE hub = ?1 ORDER BY id",
                )
                .map_err(db("reading parked messages"))?;
            let rows = stmt
                .query_map(params![hub], |r| {
                    Ok(ParkedMessage {
                        instance_id: r.get(0)?,
                        message: r.get(1)?,
                        error: r.get(2)?,
                        parked_at: from_nanos(r.get(3)?),
                    })
                })
                .map_err(db("reading parked messages"))?;
            rows.collect::<Result<_, _>>()
                .map_err(db("reading parked messages"))
        })
        .await
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<InstanceStatus>, StoreError> {
        instances::instance(self, instance_id).await
    }

    async fn query(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        instances::query(self, query).await
    }

    async fn query_newest_first(&self, query: &InstanceQuery) -> Result<QueryPage, StoreError> {
        instances::query_newest_first(self, query).await
    }

    async fn count_by_status(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        instances::count_by_status(self).await
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        instances::purge(self, instance_id).await
    }

    async fn purge_where(&self, filter: &PurgeFilter) -> Result<u64, StoreError> {
        instances::purge_where(self, filter).await
    }

    async fn remove_entity(
        &self,
        instance_id: &str,
        if_last_updated: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        instances::remove_entity(self, instance_id, if_last_updated).await
    }

    async fn import_instance(
        &self,
        status: InstanceStatus,
        history: Vec<HistoryEvent>,
        replace: bool,
    ) -> Result<(), StoreError> {
        import::import(self, status, history, replace).await
    }

    async fn is_idle(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now = nanos(now);
        self.read(move |conn, hub| {
            let real_now = real_millis();
            let busy = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM instances WHERE hub = ?1 AND lock_token IS NOT NULL) \
                     OR EXISTS (SELECT 1 FROM activities WHERE hub = ?1) \
                     OR EXISTS (SELECT 1 FROM messages WHERE hub = ?1 \
                        AND (visible_at IS NULL OR visible_at <= ?2) \
                        AND (not_before IS NULL OR not_before <= ?3))",
                )
                .map_err(db("checking for work"))?
                .query_row(params![hub, now, real_now], |r| r.get::<_, bool>(0))
                .map_err(db("checking for work"))?;
            Ok(!busy)
        })
        .await
    }
}
