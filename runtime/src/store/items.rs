//! What stores hold and hand out: queued messages, work items under a lease, new instances,
//! and everything a turn commits.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::history::{EventKind, HistoryEvent, ParentInstance};
use crate::model::{FailureDetails, InstanceStatus, RuntimeStatus};

/// A message queued for an orchestration instance.
#[derive(Clone, Debug, PartialEq)]
pub struct OrchestrationMessage {
    /// The target instance.
    pub instance_id: String,
    /// For responses (activity results, timers, sub-orchestration results): the execution it
    /// belongs to. Responses for another execution are dropped.
    pub execution_id: Option<String>,
    /// The event to deliver.
    pub event: HistoryEvent,
    /// Not delivered before this time (timers, scheduled starts).
    pub visible_at: Option<DateTime<Utc>>,
}

/// A queued message as fetched: the message and its store-assigned sequence number.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// Store-assigned, increasing; used to acknowledge the message at commit.
    pub seq: u64,
    /// The message.
    pub message: OrchestrationMessage,
}

/// A lease on a work item: the token that must accompany its commit or abandon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockToken(pub String);

/// Work for one orchestration instance: its new messages, under a lease.
#[derive(Clone, Debug)]
pub struct OrchestrationWorkItem {
    /// The instance.
    pub instance_id: String,
    /// The instance's current status (which names its orchestrator and execution).
    pub instance: InstanceStatus,
    /// How many events the stored history holds (to validate a cached executor).
    pub history_len: usize,
    /// The new messages, in arrival order.
    pub messages: Vec<QueuedMessage>,
    /// The lease; empty for an item read without one (held by its partition's lease, its
    /// `fence`, see [`Store::read_orchestration`]).
    ///
    /// [`Store::read_orchestration`]: crate::store::Store::read_orchestration
    pub lock: LockToken,
    /// How many times these messages have been fetched (1 the first time).
    pub dequeue_count: u32,
    /// The partition lease it was fetched under, checked by its commit (`None` when fetched
    /// from [`Owned::Everything`]).
    pub fence: Option<PartitionLease>,
    /// The commit this work was read in, when the store handed it over before that commit
    /// was durable (see [`Store::commit_turn_handing`]); `None` for work read from durable
    /// state. Every write of the item (its commit, abandon, release or park) is refused
    /// unless that commit was applied, and changes nothing then; the store applies and syncs
    /// writes in order, so the item's writes are durable only once that commit is.
    ///
    /// [`Store::commit_turn_handing`]: crate::store::Store::commit_turn_handing
    pub read_in: Option<CommitState>,
}

impl OrchestrationWorkItem {
    /// Refuses a write of this item when it was read in a commit that was not applied (see
    /// [`OrchestrationWorkItem::read_in`]).
    pub fn check_read_in(&self) -> Result<(), crate::store::StoreError> {
        CommitState::check(self.read_in.as_ref()).map_err(|_| {
            crate::store::StoreError::Backend(format!(
                "the work of `{}` was read in a commit that was not applied",
                self.instance_id
            ))
        })
    }
}

/// Whether a commit was applied (committed, not rolled back): unknown until the store settles
/// it, once. Shared by the work a store read in that commit and handed over before it was
/// durable.
#[derive(Clone, Debug, Default)]
pub struct CommitState(std::sync::Arc<std::sync::OnceLock<bool>>);

impl CommitState {
    /// A commit not settled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settles it: applied, or not (rolled back, or failed). Only the first call counts.
    pub fn settle(&self, applied: bool) {
        let _ = self.0.set(applied);
    }

    /// Whether it was applied; `None` while not settled.
    pub fn applied(&self) -> Option<bool> {
        self.0.get().copied()
    }

    /// Refuses a write that depends on `after` (when given) unless it was applied: failed,
    /// or not settled yet (which a store that orders its writes after it never sees).
    pub fn check(after: Option<&CommitState>) -> Result<(), crate::store::StoreError> {
        match after.map(CommitState::applied) {
            None | Some(Some(true)) => Ok(()),
            Some(_) => Err(crate::store::StoreError::Backend(
                "the work was read in a commit that was not applied".into(),
            )),
        }
    }

    /// Whether this is the state of the same commit as `other`.
    pub fn is(&self, other: &CommitState) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }

    /// [`CommitState::check`] of a write made in the commit `within`: one that depends on
    /// that same commit goes through (it is applied with it, or not at all).
    pub fn check_within(
        after: Option<&CommitState>,
        within: &CommitState,
    ) -> Result<(), crate::store::StoreError> {
        match after {
            Some(after) if after.is(within) => Ok(()),
            after => CommitState::check(after),
        }
    }
}

/// An activity to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityTask {
    /// The calling instance.
    pub instance_id: String,
    /// The calling execution.
    pub execution_id: String,
    /// The step that scheduled it.
    pub task_id: i64,
    /// The activity's name.
    pub name: String,
    /// Its input JSON.
    pub input: String,
}

/// An activity fetched under a lease.
#[derive(Clone, Debug)]
pub struct ActivityWorkItem {
    /// What to run.
    pub task: ActivityTask,
    /// The lease.
    pub lock: LockToken,
    /// How many times this task has been fetched (1 the first time).
    pub dequeue_count: u32,
}

/// A request to create (or re-create) an instance and queue its `ExecutionStarted`.
#[derive(Clone, Debug)]
pub struct NewInstance {
    /// The instance id.
    pub instance_id: String,
    /// The orchestrator's name.
    pub name: String,
    /// Input JSON.
    pub input: String,
    /// The first execution's id.
    pub execution_id: String,
    /// The parent, for a sub-orchestration.
    pub parent: Option<ParentInstance>,
    /// When the instance was created.
    pub created_at: DateTime<Utc>,
    /// Start no earlier than this.
    pub start_at: Option<DateTime<Utc>>,
    /// Replace an instance with this id even when it is pending or running.
    pub replace_running: bool,
    /// The version it starts under (checked with
    /// [`validate_version`](crate::validate_version) by those who take it from users).
    pub version: Option<String>,
}

impl NewInstance {
    /// The `ExecutionStarted` message that starts it.
    pub fn start_message(&self) -> OrchestrationMessage {
        OrchestrationMessage {
            instance_id: self.instance_id.clone(),
            execution_id: None,
            event: HistoryEvent::new(
                self.created_at,
                EventKind::ExecutionStarted {
                    name: self.name.clone(),
                    input: self.input.clone(),
                    execution_id: self.execution_id.clone(),
                    parent: self.parent.clone(),
                    version: self.version.clone(),
                },
            ),
            visible_at: self.start_at,
        }
    }

    /// The status record of the newly created instance.
    pub fn initial_status(&self) -> InstanceStatus {
        InstanceStatus {
            instance_id: self.instance_id.clone(),
            name: self.name.clone(),
            execution_id: self.execution_id.clone(),
            runtime_status: RuntimeStatus::Pending,
            input: Some(self.input.clone()),
            output: None,
            custom_status: None,
            failure: None,
            created_at: self.created_at,
            last_updated_at: self.created_at,
            parent_instance_id: self.parent.as_ref().map(|p| p.instance_id.clone()),
            version: self.version.clone(),
            history: None,
        }
    }

    /// The message a parent receives when its child could not be started because an instance
    /// with the child's id is already running.
    pub fn conflict_response(&self) -> Option<OrchestrationMessage> {
        let parent = self.parent.as_ref()?;
        Some(OrchestrationMessage {
            instance_id: parent.instance_id.clone(),
            execution_id: Some(parent.execution_id.clone()),
            event: HistoryEvent::new(
                self.created_at,
                EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id: parent.task_scheduled_id,
                    failure: FailureDetails {
                        error_type: "InstanceAlreadyExists".into(),
                        message: format!(
                            "could not start sub-orchestration: an instance with id `{}` is \
                             already pending or running",
                            self.instance_id
                        ),
                        cause: None,
                    },
                },
            ),
            visible_at: None,
        })
    }
}

/// The status of an entity's instance when a message creates it (entities are created on
/// first use: every store creates the instance when a message for an `@name@key` id arrives).
pub fn new_entity_status(instance_id: &str, now: DateTime<Utc>) -> InstanceStatus {
    let name = instance_id
        .parse::<crate::model::EntityId>()
        .map(|id| id.name().to_string())
        .unwrap_or_default();
    InstanceStatus {
        instance_id: instance_id.to_string(),
        name,
        execution_id: String::new(),
        runtime_status: RuntimeStatus::Running,
        input: None,
        output: None,
        custom_status: None,
        failure: None,
        created_at: now,
        last_updated_at: now,
        parent_instance_id: None,
        version: None,
        history: None,
    }
}

/// How a turn changes the history.
#[derive(Clone, Debug)]
pub enum HistoryWrite {
    /// Append these events.
    Append(Vec<HistoryEvent>),
    /// Discard the history (continue-as-new: the next execution starts empty).
    Reset,
    /// Replace the whole history with these events, atomically with the rest of the turn
    /// (a rewind rewrites a failed execution's history).
    Replace(Vec<HistoryEvent>),
}

/// Everything one orchestration turn changes, committed atomically.
#[derive(Clone, Debug)]
pub struct TurnCommit {
    /// The messages the turn consumed.
    pub consumed: Vec<u64>,
    /// The history change.
    pub history: HistoryWrite,
    /// The instance's new status (history field unused).
    pub status: InstanceStatus,
    /// Activities to queue.
    pub activities: Vec<ActivityTask>,
    /// Messages to queue: timers, events to other instances, results to a parent, the next
    /// execution's start.
    pub messages: Vec<OrchestrationMessage>,
    /// Sub-orchestrations to create.
    pub new_instances: Vec<NewInstance>,
}

impl TurnCommit {
    /// Whether the turn sends messages or starts instances: work for orchestration
    /// dispatchers to look for once it is committed.
    pub fn sends_messages(&self) -> bool {
        !self.messages.is_empty() || !self.new_instances.is_empty()
    }

    /// The instances this turn gives work visible at once: those it sends messages without a
    /// visible time to, and the children it starts without a start time.
    pub fn gives_work_to(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let immediate = self
            .messages
            .iter()
            .filter(|m| m.visible_at.is_none())
            .map(|m| &m.instance_id);
        let children = self
            .new_instances
            .iter()
            .filter(|c| c.start_at.is_none())
            .map(|c| &c.instance_id);
        immediate
            .chain(children)
            .filter(|id| seen.insert(*id))
            .cloned()
            .collect()
    }

    /// The instances whose stored status a commit of this turn by `instance_id` may change:
    /// its own, the children it creates, and the entities it sends messages to (a message
    /// creates an entity that does not exist yet; one to an orchestration leaves its status
    /// as it is).
    pub fn changes_status_of(&self, instance_id: &str) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let entities = self
            .messages
            .iter()
            .map(|m| m.instance_id.as_str())
            .filter(|id| crate::model::EntityId::is_entity_instance(id));
        std::iter::once(instance_id)
            .chain(self.new_instances.iter().map(|c| c.instance_id.as_str()))
            .chain(entities)
            .filter(|id| seen.insert(*id))
            .map(str::to_string)
            .collect()
    }
}

/// Where an instance stood when a turn was computed without a lease on it: its execution, how
/// many events its history held, and when its status was last written (see
/// [`Store::complete_activities_and_commit`]).
///
/// [`Store::complete_activities_and_commit`]: crate::store::Store::complete_activities_and_commit
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceVersion {
    /// The instance.
    pub instance_id: String,
    /// The execution the turn ran on.
    pub execution_id: String,
    /// The history's length the turn started from.
    pub history_len: usize,
    /// The status's `last_updated_at` the turn started from (every commit writes it, so a
    /// history rewritten to the same length still tells).
    pub last_updated_at: DateTime<Utc>,
    /// The partition lease of the host that computed the turn: the turn is applied only while
    /// the partition's epoch is still this one (`None`: not checked).
    pub fence: Option<PartitionLease>,
}

/// What [`Store::complete_activities_and_commit`] did.
///
/// [`Store::complete_activities_and_commit`]: crate::store::Store::complete_activities_and_commit
#[derive(Debug)]
pub enum ResultsCommit {
    /// The turn was applied with the results; the activities it holds for the caller.
    Committed(Vec<ActivityWorkItem>),
    /// The instance had moved on (or was leased): the results were queued as messages and
    /// nothing of the turn was applied.
    Queued,
}

/// A message taken out of circulation because processing it kept failing.
#[derive(Clone, Debug)]
pub struct ParkedMessage {
    /// The instance it was for.
    pub instance_id: String,
    /// A description of the message (its event kind and content).
    pub message: String,
    /// Why it was parked.
    pub error: String,
    /// When.
    pub parked_at: DateTime<Utc>,
}

/// The instances of the owned partitions that have messages to process, as
/// [`Store::ready_instances`] reads them.
///
/// [`Store::ready_instances`]: crate::store::Store::ready_instances
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadyInstances {
    /// Instance ids, in the order of their oldest visible message.
    pub instance_ids: Vec<String>,
    /// When the earliest message not yet visible becomes visible.
    pub next_visible: Option<DateTime<Utc>>,
}

/// What a fetch found.
#[derive(Debug)]
pub enum Fetched<T> {
    /// A work item.
    Item(T),
    /// Nothing ready; `next_visible` is when the earliest future message becomes visible.
    Empty {
        /// When to look again at the latest.
        next_visible: Option<DateTime<Utc>>,
    },
}

/// The partition an instance (or entity) belongs to, among `count`: FNV-1a (32-bit) of its id
/// modulo `count`. Fixed for good: a hub's messages and instances are found by it.
pub fn partition_of(instance_id: &str, count: u32) -> u32 {
    id_hash(instance_id) % count.max(1)
}

/// FNV-1a, 32 bits, of an instance id: what [`partition_of`] reduces, and what stores that
/// filter by partition in their queries keep next to the id.
pub fn id_hash(instance_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in instance_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// One partition held by one host: the partition and the epoch the host took it at. The epoch
/// goes up each time the partition changes hands, and every commit of a fenced work item
/// carries it: a store refuses the commit when the partition's epoch has moved on, so a host
/// that lost a partition (paused past its lease, cut off) can never apply a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionLease {
    /// The partition.
    pub partition: u32,
    /// The ownership epoch.
    pub epoch: u64,
}

/// What a host fetches from: the partitions it owns, or everything (no ownership, no fence:
/// tools and tests that drive a store directly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    /// Every instance, unfenced.
    Everything,
    /// The instances of these partitions (of `count`), each fenced by its lease.
    Partitions {
        /// The hub's partition count.
        count: u32,
        /// The leases held, sorted by partition.
        leases: Vec<PartitionLease>,
        /// The owning host's id: work it left for other hosts is not handed back to it while
        /// it waits (see [`Store::release_orchestration`]).
        ///
        /// [`Store::release_orchestration`]: crate::store::Store::release_orchestration
        host: String,
    },
}

impl Owned {
    /// Whether `instance_id` is owned, and under which fence: `None` when it is not,
    /// `Some(None)` for [`Owned::Everything`].
    pub fn fence(&self, instance_id: &str) -> Option<Option<PartitionLease>> {
        match self {
            Owned::Everything => Some(None),
            Owned::Partitions { count, leases, .. } => {
                let p = partition_of(instance_id, *count);
                leases
                    .binary_search_by_key(&p, |l| l.partition)
                    .ok()
                    .map(|i| Some(leases[i]))
            }
        }
    }

    /// The fetching host's id (`None` for [`Owned::Everything`]).
    pub fn host(&self) -> Option<&str> {
        match self {
            Owned::Everything => None,
            Owned::Partitions { host, .. } => Some(host),
        }
    }

    /// Whether nothing is owned.
    pub fn is_empty(&self) -> bool {
        matches!(self, Owned::Partitions { leases, .. } if leases.is_empty())
    }
}

/// One call's worth of partition ownership for a host: renew what it holds, take over what it
/// chose, let go of what it gives up, all in one write (see [`Store::claim_partitions`]). A
/// claim with nothing to keep, take or release and a zero lease only reads the table.
///
/// [`Store::claim_partitions`]: crate::store::Store::claim_partitions
#[derive(Clone, Debug)]
pub struct PartitionClaim {
    /// The host's id (unique per process run).
    pub owner: String,
    /// The partition count the hub is created with when it has none yet.
    pub count_if_new: u32,
    /// Leases to renew. One whose epoch moved on is lost and not renewed.
    pub keep: Vec<PartitionLease>,
    /// Partitions to take: each one that is free or whose lease ran out changes hands (its
    /// epoch goes up); one held by another live host is left alone.
    pub take: Vec<u32>,
    /// Leases to give up (an orderly hand-over: the next owner need not wait for the lease).
    pub release: Vec<PartitionLease>,
    /// How long the leases run from now (on the store's lease clock).
    pub lease: Duration,
    /// Take all of `take` or none of it (a store that allows one owner only).
    pub all_or_nothing: bool,
}

/// The hub's partitions after a [`PartitionClaim`]: who holds what, and what the caller holds.
#[derive(Clone, Debug, Default)]
pub struct PartitionTable {
    /// How many partitions the hub has.
    pub count: u32,
    /// Every partition, in order.
    pub partitions: Vec<PartitionState>,
    /// The hosts whose heartbeat is live, the caller included, sorted.
    pub hosts: Vec<String>,
    /// The leases the caller holds now, sorted by partition.
    pub held: Vec<PartitionLease>,
}

/// One partition's ownership as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition.
    pub partition: u32,
    /// Its owner while the lease runs (`None` when free).
    pub owner: Option<String>,
    /// The current epoch.
    pub epoch: u64,
    /// Whether the owner's lease has run out (anyone may take it).
    pub expired: bool,
}
