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

    /// Whether a recorded scheduling event is the same step: the same kind with the same
    /// details — names, instance ids, inputs, due times, entities and lock sets — compared in
    /// full. (A signal's delivery time is not recorded, so it is not compared.)
    pub(super) fn matches(&self, event: &EventKind) -> bool {
        match (self, event) {
            (
                Action::ScheduleActivity { name, input, .. },
                EventKind::TaskScheduled {
                    name: n, input: i, ..
                },
            ) => name == n && same_json(input, i),
            (Action::CreateTimer { fire_at, .. }, EventKind::TimerCreated { fire_at: f }) => {
                fire_at == f
            }
            (
                Action::StartSubOrchestration {
                    name,
                    instance_id,
                    input,
                    ..
                },
                EventKind::SubOrchestrationInstanceCreated {
                    name: n,
                    instance_id: d,
                    input: i,
                },
            ) => name == n && instance_id == d && same_json(input, i),
            (
                Action::SendEvent {
                    instance_id,
                    name,
                    input,
                    ..
                },
                EventKind::EventSent {
                    instance_id: d,
                    name: n,
                    input: i,
                },
            ) => instance_id == d && name == n && same_json(input, i),
            (
                Action::CallEntity {
                    entity,
                    operation,
                    input,
                    ..
                },
                EventKind::EntityOperationCalled {
                    entity_id,
                    operation: op,
                    input: i,
                    ..
                },
            )
            | (
                Action::SignalEntity {
                    entity,
                    operation,
                    input,
                    ..
                },
                EventKind::EntityOperationSignaled {
                    entity_id,
                    operation: op,
                    input: i,
                },
            ) => entity == entity_id && operation == op && same_json(input, i),
            (
                Action::LockEntities { lock_set: a, .. },
                EventKind::EntityLockRequested { lock_set: b, .. },
            )
            | (
                Action::UnlockEntities { lock_set: a, .. },
                EventKind::EntityUnlockSent { lock_set: b, .. },
            ) => a == b,
            _ => false,
        }
    }

    /// What the code does now, as the end of "but the code now ...".
    pub(super) fn describe(&self) -> String {
        match self {
            Action::ScheduleActivity { name, input, .. } => {
                format!("calls activity `{name}` with input `{}`", short(input))
            }
            Action::CreateTimer { fire_at, .. } => {
                format!("creates a timer due at {}", at(fire_at))
            }
            Action::StartSubOrchestration {
                name,
                instance_id,
                input,
                ..
            } => format!(
                "calls sub-orchestrator `{name}` as `{instance_id}` with input `{}`",
                short(input)
            ),
            Action::SendEvent {
                name,
                instance_id,
                input,
                ..
            } => format!(
                "sends event `{name}` to `{instance_id}` with payload `{}`",
                short(input)
            ),
            Action::CallEntity {
                entity,
                operation,
                input,
                ..
            } => format!(
                "calls operation `{operation}` on entity `{entity}` with input `{}`",
                short(input)
            ),
            Action::SignalEntity {
                entity,
                operation,
                input,
                ..
            } => format!(
                "signals operation `{operation}` to entity `{entity}` with input `{}`",
                short(input)
            ),
            Action::LockEntities { lock_set, .. } => format!("locks entities {lock_set:?}"),
            Action::UnlockEntities { lock_set, .. } => {
                format!("releases its locks on {lock_set:?}")
            }
        }
    }
}

/// What a recorded step was, as in "the history recorded ...".
pub(super) fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::TaskScheduled { name, input } => {
            format!("a call to activity `{name}` with input `{}`", short(input))
        }
        EventKind::TimerCreated { fire_at } => format!("a timer due at {}", at(fire_at)),
        EventKind::SubOrchestrationInstanceCreated {
            name,
            instance_id,
            input,
        } => format!(
            "a call to sub-orchestrator `{name}` as `{instance_id}` with input `{}`",
            short(input)
        ),
        EventKind::EventSent {
            name,
            instance_id,
            input,
        } => format!(
            "sending event `{name}` to `{instance_id}` with payload `{}`",
            short(input)
        ),
        EventKind::EntityOperationCalled {
            entity_id,
            operation,
            input,
            ..
        } => format!(
            "a call to operation `{operation}` on entity `{entity_id}` with input `{}`",
            short(input)
        ),
        EventKind::EntityOperationSignaled {
            entity_id,
            operation,
            input,
        } => format!(
            "a signal of operation `{operation}` to entity `{entity_id}` with input `{}`",
            short(input)
        ),
        EventKind::EntityLockRequested { lock_set, .. } => format!("locking entities {lock_set:?}"),
        EventKind::EntityUnlockSent { lock_set, .. } => {
            format!("releasing the locks on {lock_set:?}")
        }
        other => other.name().to_string(),
    }
}

/// Two JSON payloads are the same when their text is, or, failing that, when they parse to
/// equal values: a map serialized with its keys in another order is the same input.
fn same_json(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// A payload shortened for a message: at most 60 characters, cut at a character boundary.
pub(super) fn short(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

fn at(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
