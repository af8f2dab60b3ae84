//! What stores hold and hand out: queued messages, work items under a lease, new instances,
//! and everything a turn commits.

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
    /// The lease.
    pub lock: LockToken,
    /// How many times these messages have been fetched (1 the first time).
    pub dequeue_count: u32,
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

/// Where an instance stood when a turn was computed without a lease on it: its execution, how
/// many events its history held, and when its status was last written (see
/// [`Store::complete_activities_and_commit`]).
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
}

/// What [`Store::complete_activities_and_commit`] did.
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
