//! History events: the append-only log of one orchestration instance, modelled on the Durable
//! Task Framework's event kinds. Payloads are kept as JSON text, never re-parsed by the runtime.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::FailureDetails;

mod file;
pub use file::{ExportedInstance, FORMAT, HistoryFile, HistoryFileError, VERSION};

/// One event in an instance's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    /// For scheduling events (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated,
    /// EventSent): the step's sequence number, which completions refer to. Otherwise -1.
    pub event_id: i64,
    /// When the event was recorded (for scheduling events: the orchestration time of the turn).
    pub timestamp: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl HistoryEvent {
    /// An event that is not a scheduling step (event id -1).
    pub fn new(timestamp: DateTime<Utc>, kind: EventKind) -> Self {
        HistoryEvent {
            event_id: -1,
            timestamp,
            kind,
        }
    }
}

/// The parent of a sub-orchestration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentInstance {
    /// The parent orchestrator's name.
    pub name: String,
    /// The parent's instance id.
    pub instance_id: String,
    /// The parent's execution id.
    pub execution_id: String,
    /// The parent's step that created the child.
    pub task_scheduled_id: i64,
}

/// The orchestration step an entity message answers to: who to respond to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityCaller {
    /// The calling orchestration's instance id.
    pub instance_id: String,
    /// Its execution id.
    pub execution_id: String,
    /// The step that sent the message (the critical section's id, for locks).
    pub task_scheduled_id: i64,
}

/// How an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionStatus {
    /// The orchestrator returned `Ok`.
    Completed,
    /// The orchestrator returned `Err`, panicked, or diverged from its history.
    Failed,
    /// The instance was terminated.
    Terminated,
}

/// The kinds of history events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType")]
pub enum EventKind {
    /// A turn began; its timestamp is the orchestration time for the turn.
    OrchestratorStarted,
    /// A turn ended.
    OrchestratorCompleted,
    /// An execution started.
    #[serde(rename_all = "camelCase")]
    ExecutionStarted {
        /// The orchestrator's registered name.
        name: String,
        /// The input, as JSON.
        input: String,
        /// The execution's id (new for every continue-as-new).
        execution_id: String,
        /// The parent, for a sub-orchestration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentInstance>,
        /// The version the instance started under (kept by continue-as-new).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// An execution ended.
    #[serde(rename_all = "camelCase")]
    ExecutionCompleted {
        /// How it ended.
        status: CompletionStatus,
        /// The output as JSON (for Completed), or the reason (for Terminated).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        /// The failure, for Failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureDetails>,
    },
    /// A request to terminate the instance.
    ExecutionTerminated {
        /// Why, as JSON.
        reason: Option<String>,
    },
    /// A request to suspend the instance.
    ExecutionSuspended {
        /// Why.
        reason: Option<String>,
    },
    /// A request to resume a suspended instance.
    ExecutionResumed {
        /// Why.
        reason: Option<String>,
    },
    /// A request to rewind a failed instance (see
    /// [`Client::rewind`](crate::Client::rewind)); recorded when the rewound execution resumes.
    ExecutionRewound {
        /// Why.
        reason: Option<String>,
    },
    /// The execution ended by continuing as new with this input.
    ContinueAsNew {
        /// The next execution's input, as JSON.
        input: String,
    },
    /// An activity was scheduled.
    TaskScheduled {
        /// The activity's name.
        name: String,
        /// Its input, as JSON.
        input: String,
    },
    /// An activity completed.
    #[serde(rename_all = "camelCase")]
    TaskCompleted {
        /// The step that scheduled it.
        task_scheduled_id: i64,
        /// Its output, as JSON.
        result: String,
    },
    /// An activity failed.
    #[serde(rename_all = "camelCase")]
    TaskFailed {
        /// The step that scheduled it.
        task_scheduled_id: i64,
        /// Why.
        failure: FailureDetails,
    },
    /// A sub-orchestration was started.
    #[serde(rename_all = "camelCase")]
    SubOrchestrationInstanceCreated {
        /// The sub-orchestrator's name.
        name: String,
        /// The child's instance id.
        instance_id: String,
        /// Its input, as JSON.
        input: String,
    },
    /// A sub-orchestration completed.
    #[serde(rename_all = "camelCase")]
    SubOrchestrationInstanceCompleted {
        /// The step that started it.
        task_scheduled_id: i64,
        /// Its output, as JSON.
        result: String,
    },
    /// A sub-orchestration failed.
    #[serde(rename_all = "camelCase")]
    SubOrchestrationInstanceFailed {
        /// The step that started it.
        task_scheduled_id: i64,
        /// Why.
        failure: FailureDetails,
    },
    /// A durable timer was created.
    #[serde(rename_all = "camelCase")]
    TimerCreated {
        /// When it fires.
        fire_at: DateTime<Utc>,
    },
    /// A durable timer fired.
    #[serde(rename_all = "camelCase")]
    TimerFired {
        /// The step that created it.
        timer_id: i64,
        /// When it was due.
        fire_at: DateTime<Utc>,
    },
    /// An external event arrived.
    EventRaised {
        /// The event's name.
        name: String,
        /// Its payload, as JSON.
        input: String,
    },
    /// The orchestration sent an event to another instance.
    #[serde(rename_all = "camelCase")]
    EventSent {
        /// The target instance.
        instance_id: String,
        /// The event's name.
        name: String,
        /// Its payload, as JSON.
        input: String,
    },
    /// A two-way entity operation call (in the caller's history, and as the entity's message).
    #[serde(rename_all = "camelCase")]
    EntityOperationCalled {
        /// The entity (`@name@key`).
        entity_id: String,
        /// The operation.
        operation: String,
        /// Its input, as JSON.
        input: String,
        /// Who to answer (set on the message).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<EntityCaller>,
    },
    /// A one-way entity operation signal.
    #[serde(rename_all = "camelCase")]
    EntityOperationSignaled {
        /// The entity (`@name@key`).
        entity_id: String,
        /// The operation.
        operation: String,
        /// Its input, as JSON.
        input: String,
    },
    /// A critical section asked to lock these entities (sorted); the message travels along
    /// the lock set, each entity locking itself and passing it on.
    #[serde(rename_all = "camelCase")]
    EntityLockRequested {
        /// The entities to lock, sorted and deduplicated.
        lock_set: Vec<String>,
        /// Which entity of the set the message is for.
        position: usize,
        /// The critical section's owner (set on the message).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<EntityCaller>,
    },
    /// A critical section released its locks.
    #[serde(rename_all = "camelCase")]
    EntityUnlockSent {
        /// The entities that were locked.
        lock_set: Vec<String>,
        /// The critical section's owner (set on the message).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<EntityCaller>,
    },
    /// An entity operation call succeeded.
    #[serde(rename_all = "camelCase")]
    EntityOperationCompleted {
        /// The calling step.
        task_scheduled_id: i64,
        /// The operation's output, as JSON.
        result: String,
    },
    /// An entity operation call failed (its state change was rolled back).
    #[serde(rename_all = "camelCase")]
    EntityOperationFailed {
        /// The calling step.
        task_scheduled_id: i64,
        /// Why.
        failure: FailureDetails,
    },
    /// The execution reached the patch point `patch_id` on code that has it
    /// ([`OrchestrationContext::patched`](crate::OrchestrationContext::patched)), so replays
    /// take the patched branch. Not a scheduling step: replay never compares it.
    #[serde(rename_all = "camelCase")]
    Patched {
        /// The patch's id.
        patch_id: String,
    },
    /// Every entity of a critical section is locked.
    #[serde(rename_all = "camelCase")]
    EntityLockGranted {
        /// The step that asked for the locks.
        task_scheduled_id: i64,
    },
}

impl EventKind {
    /// The kind's name, as it appears in history listings.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::OrchestratorStarted => "OrchestratorStarted",
            EventKind::OrchestratorCompleted => "OrchestratorCompleted",
            EventKind::ExecutionStarted { .. } => "ExecutionStarted",
            EventKind::ExecutionCompleted { .. } => "ExecutionCompleted",
            EventKind::ExecutionTerminated { .. } => "ExecutionTerminated",
            EventKind::ExecutionSuspended { .. } => "ExecutionSuspended",
            EventKind::ExecutionResumed { .. } => "ExecutionResumed",
            EventKind::ExecutionRewound { .. } => "ExecutionRewound",
            EventKind::ContinueAsNew { .. } => "ContinueAsNew",
            EventKind::TaskScheduled { .. } => "TaskScheduled",
            EventKind::TaskCompleted { .. } => "TaskCompleted",
            EventKind::TaskFailed { .. } => "TaskFailed",
            EventKind::SubOrchestrationInstanceCreated { .. } => "SubOrchestrationInstanceCreated",
            EventKind::SubOrchestrationInstanceCompleted { .. } => {
                "SubOrchestrationInstanceCompleted"
            }
            EventKind::SubOrchestrationInstanceFailed { .. } => "SubOrchestrationInstanceFailed",
            EventKind::TimerCreated { .. } => "TimerCreated",
            EventKind::TimerFired { .. } => "TimerFired",
            EventKind::EventRaised { .. } => "EventRaised",
            EventKind::EventSent { .. } => "EventSent",
            EventKind::EntityOperationCalled { .. } => "EntityOperationCalled",
            EventKind::EntityOperationSignaled { .. } => "EntityOperationSignaled",
            EventKind::EntityLockRequested { .. } => "EntityLockRequested",
            EventKind::EntityUnlockSent { .. } => "EntityUnlockSent",
            EventKind::EntityOperationCompleted { .. } => "EntityOperationCompleted",
            EventKind::EntityOperationFailed { .. } => "EntityOperationFailed",
            EventKind::EntityLockGranted { .. } => "EntityLockGranted",
            EventKind::Patched { .. } => "Patched",
        }
    }

    /// Whether this event records a scheduling step of the orchestrator (its event id is the
    /// step's id, and replay checks the code against it).
    pub fn is_step(&self) -> bool {
        matches!(
            self,
            EventKind::TaskScheduled { .. }
                | EventKind::TimerCreated { .. }
                | EventKind::SubOrchestrationInstanceCreated { .. }
                | EventKind::EventSent { .. }
                | EventKind::EntityOperationCalled { .. }
                | EventKind::EntityOperationSignaled { .. }
                | EventKind::EntityLockRequested { .. }
                | EventKind::EntityUnlockSent { .. }
        )
    }

    /// The step a response answers: the scheduling step's id.
    pub fn answered_step(&self) -> Option<i64> {
        match self {
            EventKind::TaskCompleted {
                task_scheduled_id, ..
            }
            | EventKind::TaskFailed {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id, ..
            }
            | EventKind::EntityOperationCompleted {
                task_scheduled_id, ..
            }
            | EventKind::EntityOperationFailed {
                task_scheduled_id, ..
            }
            | EventKind::EntityLockGranted { task_scheduled_id } => Some(*task_scheduled_id),
            EventKind::TimerFired { timer_id, .. } => Some(*timer_id),
            _ => None,
        }
    }

    /// Whether this is a response that belongs to one execution (and is dropped when it arrives
    /// for another).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            EventKind::TaskCompleted { .. }
                | EventKind::TaskFailed { .. }
                | EventKind::SubOrchestrationInstanceCompleted { .. }
                | EventKind::SubOrchestrationInstanceFailed { .. }
                | EventKind::TimerFired { .. }
                | EventKind::EntityOperationCompleted { .. }
                | EventKind::EntityOperationFailed { .. }
                | EventKind::EntityLockGranted { .. }
        )
    }
}
