//! Actions: the steps an orchestrator asks for, as the history records them, compared on replay.

use chrono::{DateTime, Utc};

use crate::model::history::{EventKind, HistoryEvent};

/// A step the orchestrator asked for that the host must carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Run an activity.
    ScheduleActivity {
        /// Step id.
        id: i64,
        /// Activity name.
        name: String,
        /// Input JSON.
        input: String,
    },
    /// Fire a timer at a time.
    CreateTimer {
        /// Step id.
        id: i64,
        /// Due time.
        fire_at: DateTime<Utc>,
    },
    /// Start a sub-orchestration.
    StartSubOrchestration {
        /// Step id.
        id: i64,
        /// Orchestrator name.
        name: String,
        /// The child's instance id.
        instance_id: String,
        /// Input JSON.
        input: String,
    },
    /// Raise an event on another instance.
    SendEvent {
        /// Step id.
        id: i64,
        /// Target instance.
        instance_id: String,
        /// Event name.
        name: String,
        /// Payload JSON.
        input: String,
    },
    /// Call an entity operation (two-way).
    CallEntity {
        /// Step id.
        id: i64,
        /// The entity (`@name@key`).
        entity: String,
        /// The operation.
        operation: String,
        /// Input JSON.
        input: String,
    },
    /// Signal an entity operation (one-way), optionally at a time.
    SignalEntity {
        /// Step id.
        id: i64,
        /// The entity (`@name@key`).
        entity: String,
        /// The operation.
        operation: String,
        /// Input JSON.
        input: String,
        /// Deliver no earlier than this.
        at: Option<DateTime<Utc>>,
    },
    /// Lock a set of entities (sorted) for a critical section.
    LockEntities {
        /// Step id (the critical section's id).
        id: i64,
        /// The entities, sorted and deduplicated.
        lock_set: Vec<String>,
    },
    /// Release a critical section's locks.
    UnlockEntities {
        /// Step id.
        id: i64,
        /// The critical section being released.
        critical_section: i64,
        /// The entities it locked.
        lock_set: Vec<String>,
    },
}

impl Action {
    pub(super) fn id(&self) -> i64 {
        match self {
            Action::ScheduleActivity { id, .. }
            | Action::CreateTimer { id, .. }
            | Action::StartSubOrchestration { id, .. }
            | Action::SendEvent { id, .. }
            | Action::CallEntity { id, .. }
            | Action::SignalEntity { id, .. }
            | Action::LockEntities { id, .. }
            | Action::UnlockEntities { id, .. } => *id,
        }
    }

    pub(super) fn to_event(&self, now: DateTime<Utc>) -> HistoryEvent {
        let kind = match self.clone() {
            Action::ScheduleActivity { name, input, .. } => {
                EventKind::TaskScheduled { name, input }
            }
            Action::CreateTimer { fire_at, .. } => EventKind::TimerCreated { fire_at },
            Action::StartSubOrchestration {
                name,
                instance_id,
                input,
                ..
            } => EventKind::SubOrchestrationInstanceCreated {
                name,
                instance_id,
                input,
            },
            Action::SendEvent {
                instance_id,
                name,
                input,
                ..
            } => EventKind::EventSent {
                instance_id,
                name,
                input,
            },
            Action::CallEntity {
                entity,
                operation,
                input,
                ..
            } => EventKind::EntityOperationCalled {
                entity_id: entity,
                operation,
                input,
                caller: None,
            },
            Action::SignalEntity {
                entity,
                operation,
                input,
                ..
            } => EventKind::EntityOperationSignaled {
                entity_id: entity,
                operation,
                input,
            },
            Action::LockEntities { lock_set, .. } => EventKind::EntityLockRequested {
                lock_set,
                position: 0,
                caller: None,
            },
            Action::UnlockEntities { lock_set, .. } => EventKind::EntityUnlockSent {
                lock_set,
                caller: None,
            },
        };
        HistoryEvent {
            event_id: self.id(),
            timestamp: now,
            kind,
        }
    }

    /// Whether a recorded scheduling event is the same step (kind and name).
    pub(super) fn matches(&self, event: &EventKind) -> bool {
        match (self, event) {
            (
                Action::ScheduleActivity { name: a, .. },
                EventKind::TaskScheduled { name: b, .. },
            ) => a == b,
            (Action::CreateTimer { .. }, EventKind::TimerCreated { .. }) => true,
            (
                Action::StartSubOrchestration { name: a, .. },
                EventKind::SubOrchestrationInstanceCreated { name: b, .. },
            ) => a == b,
            (Action::SendEvent { name: a, .. }, EventKind::EventSent { name: b, .. }) => a == b,
            (
                Action::CallEntity {
                    entity, operation, ..
                },
                EventKind::EntityOperationCalled {
                    entity_id,
                    operation: op,
                    ..
                },
            )
            | (
                Action::SignalEntity {
                    entity, operation, ..
                },
                EventKind::EntityOperationSignaled {
                    entity_id,
                    operation: op,
                    ..
                },
            ) => entity == entity_id && operation == op,
            (
                Action::LockEntities { lock_set: a, .. },
                EventKind::EntityLockRequested { lock_set: b, .. },
            ) => a == b,
            (Action::UnlockEntities { .. }, EventKind::EntityUnlockSent { .. }) => true,
            _ => false,
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Action::ScheduleActivity { name, .. } => format!("call activity `{name}`"),
            Action::CreateTimer { .. } => "create a timer".to_string(),
            Action::StartSubOrchestration { name, .. } => {
                format!("call sub-orchestrator `{name}`")
            }
            Action::SendEvent {
                name, instance_id, ..
            } => {
                format!("send event `{name}` to `{instance_id}`")
            }
            Action::CallEntity {
                entity, operation, ..
            } => format!("call operation `{operation}` on entity `{entity}`"),
            Action::SignalEntity {
                entity, operation, ..
            } => format!("signal operation `{operation}` on entity `{entity}`"),
            Action::LockEntities { lock_set, .. } => format!("lock entities {lock_set:?}"),
            Action::UnlockEntities { .. } => "release a critical section".to_string(),
        }
    }
}

pub(super) fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::TaskScheduled { name, .. } => format!("a call to activity `{name}`"),
        EventKind::TimerCreated { .. } => "a timer".to_string(),
        EventKind::SubOrchestrationInstanceCreated { name, .. } => {
            format!("a call to sub-orchestrator `{name}`")
        }
        EventKind::EventSent { name, .. } => format!("sending event `{name}`"),
        EventKind::EntityOperationCalled {
            entity_id,
            operation,
            ..
        } => format!("a call to operation `{operation}` on entity `{entity_id}`"),
        EventKind::EntityOperationSignaled {
            entity_id,
            operation,
            ..
        } => format!("a signal of operation `{operation}` to entity `{entity_id}`"),
        EventKind::EntityLockRequested { lock_set, .. } => format!("locking entities {lock_set:?}"),
        EventKind::EntityUnlockSent { .. } => "releasing a critical section".to_string(),
        other => other.name().to_string(),
    }
}
