//! History events: the append-only log of one orchestration instance, modelled on the Durable
//! Task Framework's event kinds. Payloads are kept as JSON text, never re-parsed by the runtime.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::FailureDetails;

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

/// A failed execution's history rewritten by a rewind (see
/// [`Client::rewind`](crate::Client::rewind)), and what must be done again for replaying it to
/// carry the execution on.
#[derive(Debug)]
pub(crate) struct Rewound {
    /// The history to replay: the old one without the execution's end and without the
    /// failures that are retried.
    pub history: Vec<HistoryEvent>,
    /// The activity, timer and sub-orchestration steps left without a result, in history
    /// order: the retried failures, and steps whose result arrived while the instance was
    /// failed (and was dropped then) or has not arrived yet.
    pub open_steps: Vec<HistoryEvent>,
}

/// The sub-orchestrations whose result in `history` is a failure or is missing: the children
/// whose status decides what a rewind does with them.
pub(crate) fn unsettled_children(history: &[HistoryEvent]) -> Vec<String> {
    let settled: std::collections::HashSet<i64> = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::SubOrchestrationInstanceCompleted { .. }))
        .filter_map(|e| e.kind.answered_step())
        .collect();
    history
        .iter()
        .filter(|e| !settled.contains(&e.event_id))
        .filter_map(|e| match &e.kind {
            EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => {
                Some(instance_id.clone())
            }
            _ => None,
        })
        .collect()
}

/// Rewrites a failed execution's history for a rewind. Drops every `ExecutionCompleted`, and
/// the failures to retry: each `TaskFailed`, and each `SubOrchestrationInstanceFailed` whose
/// child `child_failed` reports as failed (it is rewound too), provided no step was recorded
/// after it. A failure followed by a step was handled by the code (a retry policy's timer and
/// next attempt, a fallback call): it stays, since replaying without it would meet recorded
/// steps the code no longer takes.
pub(crate) fn rewind(history: &[HistoryEvent], child_failed: impl Fn(&str) -> bool) -> Rewound {
    let last_step = history.iter().rposition(|e| e.kind.is_step());
    let child_of = |step: i64| {
        history.iter().find_map(|e| match &e.kind {
            EventKind::SubOrchestrationInstanceCreated { instance_id, .. }
                if e.event_id == step =>
            {
                Some(instance_id.as_str())
            }
            _ => None,
        })
    };
    let retried = |index: usize, event: &HistoryEvent| {
        last_step.is_none_or(|last| index > last)
            && match &event.kind {
                EventKind::TaskFailed { .. } => true,
                EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id, ..
                } => child_of(*task_scheduled_id).is_some_and(&child_failed),
                _ => false,
            }
    };
    let history: Vec<HistoryEvent> = history
        .iter()
        .enumerate()
        .filter(|(i, e)| !matches!(e.kind, EventKind::ExecutionCompleted { .. }) && !retried(*i, e))
        .map(|(_, e)| e.clone())
        .collect();
    let answered: std::collections::HashSet<i64> = history
        .iter()
        .filter_map(|e| e.kind.answered_step())
        .collect();
    let open_steps = history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::TaskScheduled { .. }
                    | EventKind::TimerCreated { .. }
                    | EventKind::SubOrchestrationInstanceCreated { .. }
            ) && !answered.contains(&e.event_id)
        })
        .cloned()
        .collect();
    Rewound {
        history,
        open_steps,
    }
}
