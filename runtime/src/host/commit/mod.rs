//! A turn's commit, built from what the replay core produced: history, status, activities to
//! run, messages to send (timers, sub-orchestrations, events, entity calls and locks) and
//! instances to create.

use crate::model::history::{EntityCaller, EventKind, HistoryEvent, ParentInstance};
use crate::model::{FailureDetails, InstanceStatus, RuntimeStatus};
use crate::replay::{Action, Outcome, TurnOutput};
use crate::store::{
    ActivityTask, HistoryWrite, NewInstance, OrchestrationMessage, OrchestrationWorkItem,
    TurnCommit,
};

pub(super) fn build_commit(
    item: &OrchestrationWorkItem,
    info: &crate::replay::ExecutionInfo,
    out: TurnOutput,
    consumed: Vec<u64>,
    now: chrono::DateTime<chrono::Utc>,
    ids: &crate::model::Ids,
) -> TurnCommit {
    let instance_id = &item.instance_id;
    let execution_id = info.execution_id.clone();
    let mut activities = Vec::new();
    let mut messages = Vec::new();
    let mut new_instances = Vec::new();
    let keep_actions = !matches!(
        out.outcome,
        Some(Outcome::Failed(_) | Outcome::Terminated(_))
    );
    let caller = |id: i64| EntityCaller {
        instance_id: instance_id.clone(),
        execution_id: execution_id.clone(),
        task_scheduled_id: id,
    };
    for action in out.actions {
        // A failed or terminated execution starts nothing new, but still releases locks.
        if !keep_actions && !matches!(action, Action::UnlockEntities { .. }) {
            continue;
        }
        match action {
            Action::CallEntity {
                id,
                entity,
                operation,
                input,
            } => messages.push(OrchestrationMessage {
                instance_id: entity.clone(),
                execution_id: None,
                event: HistoryEvent::new(
                    now,
                    EventKind::EntityOperationCalled {
                        entity_id: entity,
                        operation,
                        input,
                        caller: Some(caller(id)),
                    },
                ),
                visible_at: None,
            }),
            Action::SignalEntity {
                entity,
                operation,
                input,
                at,
                ..
            } => messages.push(OrchestrationMessage {
                instance_id: entity.clone(),
                execution_id: None,
                event: HistoryEvent::new(
                    now,
                    EventKind::EntityOperationSignaled {
                        entity_id: entity,
                        operation,
                        input,
                    },
                ),
                visible_at: at,
            }),
            Action::LockEntities { id, lock_set } => messages.push(OrchestrationMessage {
                instance_id: lock_set[0].clone(),
                execution_id: None,
                event: HistoryEvent::new(
                    now,
                    EventKind::EntityLockRequested {
                        lock_set,
                        position: 0,
                        caller: Some(caller(id)),
                    },
                ),
                visible_at: None,
            }),
            Action::UnlockEntities {
                critical_section,
                lock_set,
                ..
            } => messages.extend(unlock_messages(&lock_set, &caller(critical_section), now)),
            Action::ScheduleActivity { id, name, input } => activities.push(ActivityTask {
                instance_id: instance_id.clone(),
                execution_id: execution_id.clone(),
                task_id: id,
                name,
                input,
            }),
            Action::CreateTimer { id, fire_at } => {
                messages.push(timer_message(instance_id, &execution_id, id, fire_at, now))
            }
            Action::StartSubOrchestration {
                id,
                name,
                instance_id: child,
                input,
            } => new_instances.push(NewInstance {
                instance_id: child,
                name,
                input,
                execution_id: ids.next(),
                parent: Some(ParentInstance {
                    name: info.name.clone(),
                    instance_id: instance_id.clone(),
                    execution_id: execution_id.clone(),
                    task_scheduled_id: id,
                }),
                created_at: now,
                start_at: None,
                replace_running: false,
                // Set by the host: a child starts under the version the host runs.
                version: None,
            }),
            Action::SendEvent {
                instance_id: target,
                name,
                input,
                ..
            } => messages.push(OrchestrationMessage {
                instance_id: target,
                execution_id: None,
                event: HistoryEvent::new(now, EventKind::EventRaised { name, input }),
                visible_at: None,
            }),
        }
    }
    let mut status = InstanceStatus {
        instance_id: instance_id.clone(),
        name: info.name.clone(),
        execution_id: execution_id.clone(),
        runtime_status: if out.suspended {
            RuntimeStatus::Suspended
        } else {
            RuntimeStatus::Running
        },
        input: item.instance.input.clone(),
        output: None,
        custom_status: out.custom_status,
        failure: None,
        created_at: item.instance.created_at,
        last_updated_at: now,
        parent_instance_id: info.parent.as_ref().map(|p| p.instance_id.clone()),
        version: item.instance.version.clone(),
        history: None,
    };
    if info.name.is_empty() {
        status.name = item.instance.name.clone();
    }
    let mut history = HistoryWrite::Append(out.new_history);
    let mut to_parent = None;
    match out.outcome {
        None => {}
        Some(Outcome::Completed(output)) => {
            status.runtime_status = RuntimeStatus::Completed;
            to_parent = Some(EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id: 0,
                result: output.clone(),
            });
            status.output = Some(output);
        }
        Some(Outcome::Failed(failure)) => {
            status.runtime_status = RuntimeStatus::Failed;
            to_parent = Some(EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id: 0,
                failure: failure.clone(),
            });
            status.failure = Some(failure);
        }
        Some(Outcome::Terminated(reason)) => {
            status.runtime_status = RuntimeStatus::Terminated;
            to_parent = Some(EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id: 0,
                failure: terminated_failure(reason.as_deref()),
            });
            status.output = reason;
        }
        Some(Outcome::ContinuedAsNew { input, carried }) => {
            let next_execution = ids.next();
            status.runtime_status = RuntimeStatus::ContinuedAsNew;
            status.input = Some(input.clone());
            status.execution_id = next_execution.clone();
            history = HistoryWrite::Reset;
            messages.push(OrchestrationMessage {
                instance_id: instance_id.clone(),
                execution_id: None,
                event: HistoryEvent::new(
                    now,
                    EventKind::ExecutionStarted {
                        name: info.name.clone(),
                        input,
                        execution_id: next_execution,
                        parent: info.parent.clone(),
                        // The next execution keeps the instance's version.
                        version: item.instance.version.clone(),
                    },
                ),
                visible_at: None,
            });
            for event in carried {
                messages.push(OrchestrationMessage {
                    instance_id: instance_id.clone(),
                    execution_id: None,
                    event,
                    visible_at: None,
                });
            }
        }
    }
    if let (Some(parent), Some(mut kind)) = (&info.parent, to_parent) {
        match &mut kind {
            EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id, ..
            } => *task_scheduled_id = parent.task_scheduled_id,
            _ => {}
        }
        messages.push(OrchestrationMessage {
            instance_id: parent.instance_id.clone(),
            execution_id: Some(parent.execution_id.clone()),
            event: HistoryEvent::new(now, kind),
            visible_at: None,
        });
    }
    TurnCommit {
        consumed,
        history,
        status,
        activities,
        messages,
        new_instances,
    }
}

pub(super) fn unlock_messages(
    lock_set: &[String],
    caller: &EntityCaller,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<OrchestrationMessage> {
    lock_set
        .iter()
        .map(|entity| OrchestrationMessage {
            instance_id: entity.clone(),
            execution_id: None,
            event: HistoryEvent::new(
                now,
                EventKind::EntityUnlockSent {
                    lock_set: lock_set.to_vec(),
                    caller: Some(caller.clone()),
                },
            ),
            visible_at: None,
        })
        .collect()
}

/// The message that fires an instance's timer at `fire_at`.
pub(super) fn timer_message(
    instance_id: &str,
    execution_id: &str,
    timer_id: i64,
    fire_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: instance_id.to_string(),
        execution_id: Some(execution_id.to_string()),
        event: HistoryEvent::new(now, EventKind::TimerFired { timer_id, fire_at }),
        visible_at: Some(fire_at),
    }
}

/// How a terminated sub-orchestration fails its parent's call.
pub(super) fn terminated_failure(reason: Option<&str>) -> FailureDetails {
    FailureDetails {
        error_type: "Terminated".into(),
        message: format!(
            "the instance was terminated{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
        cause: None,
    }
}

#[cfg(test)]
mod tests;
