//! Steps: what an instance did, read from its history as typed values a test compares or
//! matches.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::FailureDetails;
use crate::model::history::{EventKind, HistoryEvent};

/// How a step ended: its result as JSON, or its recorded failure.
pub type StepResult = Result<Value, FailureDetails>;

/// One step of an execution, in the order the history records it: each scheduling step
/// (with its answer once it came) and each event the instance received. Turn markers and
/// the execution's start and end are left out; the instance's status has those.
///
/// Payloads are JSON values, so a test writes `input: json!({"cents": 1250})`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// An activity call.
    Activity {
        /// The activity's name.
        name: String,
        /// Its input.
        input: Value,
        /// Its result; `None` while it has not finished.
        result: Option<StepResult>,
    },
    /// A durable timer (`ctx.sleep`, `ctx.create_timer`, a wait's timeout).
    Timer {
        /// When it is due.
        fire_at: DateTime<Utc>,
        /// Whether it has fired.
        fired: bool,
    },
    /// A sub-orchestration.
    SubOrchestration {
        /// The sub-orchestrator's name.
        name: String,
        /// The child's instance id.
        instance_id: String,
        /// Its input.
        input: Value,
        /// Its result; `None` while it has not finished.
        result: Option<StepResult>,
    },
    /// An external event the instance received.
    Event {
        /// The event's name.
        name: String,
        /// Its payload.
        input: Value,
    },
    /// An event the instance sent to another instance.
    EventSent {
        /// The target instance.
        instance_id: String,
        /// The event's name.
        name: String,
        /// Its payload.
        input: Value,
    },
    /// A two-way entity operation call.
    EntityCall {
        /// The entity (`@name@key`).
        entity: String,
        /// The operation.
        operation: String,
        /// Its input.
        input: Value,
        /// Its result; `None` while it has not answered.
        result: Option<StepResult>,
    },
    /// A one-way entity signal.
    EntitySignal {
        /// The entity (`@name@key`).
        entity: String,
        /// The operation.
        operation: String,
        /// Its input.
        input: Value,
    },
    /// A critical section's lock request.
    EntityLock {
        /// The entities, sorted.
        entities: Vec<String>,
        /// Whether every lock was granted.
        granted: bool,
    },
    /// A critical section's release.
    EntityUnlock {
        /// The entities released.
        entities: Vec<String>,
    },
}

impl Step {
    /// The steps a history records, in order.
    pub fn from_history(history: &[HistoryEvent]) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::new();
        // Where each scheduling step's id landed in `steps`, to attach its answer.
        let mut at: Vec<(i64, usize)> = Vec::new();
        for event in history {
            let step = match &event.kind {
                EventKind::TaskScheduled { name, input } => Step::Activity {
                    name: name.clone(),
                    input: json(input),
                    result: None,
                },
                EventKind::TimerCreated { fire_at } => Step::Timer {
                    fire_at: *fire_at,
                    fired: false,
                },
                EventKind::SubOrchestrationInstanceCreated {
                    name,
                    instance_id,
                    input,
                } => Step::SubOrchestration {
                    name: name.clone(),
                    instance_id: instance_id.clone(),
                    input: json(input),
                    result: None,
                },
                EventKind::EventRaised { name, input } => Step::Event {
                    name: name.clone(),
                    input: json(input),
                },
                EventKind::EventSent {
                    instance_id,
                    name,
                    input,
                } => Step::EventSent {
                    instance_id: instance_id.clone(),
                    name: name.clone(),
                    input: json(input),
                },
                EventKind::EntityOperationCalled {
                    entity_id,
                    operation,
                    input,
                    ..
                } => Step::EntityCall {
                    entity: entity_id.clone(),
                    operation: operation.clone(),
                    input: json(input),
                    result: None,
                },
                EventKind::EntityOperationSignaled {
                    entity_id,
                    operation,
                    input,
                } => Step::EntitySignal {
                    entity: entity_id.clone(),
                    operation: operation.clone(),
                    input: json(input),
                },
                EventKind::EntityLockRequested { lock_set, .. } => Step::EntityLock {
                    entities: lock_set.clone(),
                    granted: false,
                },
                EventKind::EntityUnlockSent { lock_set, .. } => Step::EntityUnlock {
                    entities: lock_set.clone(),
                },
                kind => {
                    if let Some(step) = kind.answered_step()
                        && let Some(&(_, index)) = at.iter().find(|(id, _)| *id == step)
                    {
                        answer(&mut steps[index], kind);
                    }
                    continue;
                }
            };
            if event.kind.is_step() {
                at.push((event.event_id, steps.len()));
            }
            steps.push(step);
        }
        steps
    }
}

/// Fills in a step's answer.
fn answer(step: &mut Step, kind: &EventKind) {
    let outcome = match kind {
        EventKind::TaskCompleted { result, .. }
        | EventKind::SubOrchestrationInstanceCompleted { result, .. }
        | EventKind::EntityOperationCompleted { result, .. } => Ok(json(result)),
        EventKind::TaskFailed { failure, .. }
        | EventKind::SubOrchestrationInstanceFailed { failure, .. }
        | EventKind::EntityOperationFailed { failure, .. } => Err(failure.clone()),
        _ => Ok(Value::Null),
    };
    match step {
        Step::Activity { result, .. }
        | Step::SubOrchestration { result, .. }
        | Step::EntityCall { result, .. } => *result = Some(outcome),
        Step::Timer { fired, .. } => *fired = true,
        Step::EntityLock { granted, .. } => *granted = true,
        _ => {}
    }
}

/// A payload as a JSON value (text that is not JSON, which the runtime never records, is
/// kept as a string).
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}
