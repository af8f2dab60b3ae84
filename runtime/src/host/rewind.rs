//! Rewind: a failed instance's history rewritten and what it waits for queued again.

use std::collections::HashMap;

use super::commit::{terminated_failure, timer_message};
use super::{Inner, TurnError};
use crate::model::history::{EventKind, HistoryEvent};
use crate::model::{InstanceStatus, RuntimeStatus};
use crate::store::{
    ActivityTask, HistoryWrite, OrchestrationMessage, OrchestrationWorkItem, TurnCommit,
};

impl Inner {
    /// The first half of a rewind (see [`Client::rewind`]): puts the failed instance back to
    /// Running with its history rewritten, and queues again what the rewritten history waits
    /// for. The messages before the request (`item.messages[at]`) are late ones for the failed
    /// instance and are dropped; the request and the messages after it stay queued, so the next
    /// turn delivers them to the resumed execution, which records the request and carries on.
    pub(super) async fn rewind(
        &self,
        item: &OrchestrationWorkItem,
        at: usize,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), TurnError> {
        let id = &item.instance_id;
        let status = &item.instance;
        let EventKind::ExecutionRewound { reason } = &item.messages[at].message.event.kind else {
            unreachable!("`at` is the position of an ExecutionRewound message");
        };
        let old = self.store.history(id).await?;
        let mut children = HashMap::new();
        for child in unsettled_children(&old) {
            if let Some(s) = self.store.instance(&child).await?
                && s.parent_instance_id.as_deref() == Some(id.as_str())
            {
                children.insert(child, s);
            }
        }
        let child_failed = |child: &str| {
            children
                .get(child)
                .is_some_and(|s| s.runtime_status == RuntimeStatus::Failed)
        };
        let rewound = rewrite_history(&old, child_failed);
        let execution_id = &status.execution_id;
        let mut activities = Vec::new();
        let mut messages = Vec::new();
        for step in rewound.open_steps {
            let to_self = |kind| OrchestrationMessage {
                instance_id: id.clone(),
                execution_id: Some(execution_id.clone()),
                event: HistoryEvent::new(now, kind),
                visible_at: None,
            };
            match step.kind {
                EventKind::TaskScheduled { name, input } => activities.push(ActivityTask {
                    instance_id: id.clone(),
                    execution_id: execution_id.clone(),
                    task_id: step.event_id,
                    name,
                    input,
                }),
                EventKind::TimerCreated { fire_at } => {
                    messages.push(timer_message(id, execution_id, step.event_id, fire_at, now))
                }
                EventKind::SubOrchestrationInstanceCreated {
                    instance_id: child, ..
                } => {
                    let Some(child) = children.get(&child) else {
                        continue; // still running (it reports itself), or gone
                    };
                    let task_scheduled_id = step.event_id;
                    messages.push(match child.runtime_status {
                        RuntimeStatus::Failed => OrchestrationMessage {
                            instance_id: child.instance_id.clone(),
                            execution_id: None,
                            event: HistoryEvent::new(
                                now,
                                EventKind::ExecutionRewound {
                                    reason: reason.clone(),
                                },
                            ),
                            visible_at: None,
                        },
                        // Its result was dropped while this instance was failed: again.
                        RuntimeStatus::Completed => {
                            to_self(EventKind::SubOrchestrationInstanceCompleted {
                                task_scheduled_id,
                                result: child.output.clone().unwrap_or_else(|| "null".into()),
                            })
                        }
                        RuntimeStatus::Terminated => {
                            to_self(EventKind::SubOrchestrationInstanceFailed {
                                task_scheduled_id,
                                failure: terminated_failure(child.output.as_deref()),
                            })
                        }
                        _ => continue,
                    });
                }
                _ => {}
            }
        }
        let commit = TurnCommit {
            consumed: item.messages[..at].iter().map(|m| m.seq).collect(),
            history: HistoryWrite::Replace(rewound.history),
            status: InstanceStatus {
                runtime_status: RuntimeStatus::Running,
                output: None,
                failure: None,
                last_updated_at: now,
                history: None,
                ..status.clone()
            },
            activities,
            messages,
            new_instances: Vec::new(),
        };
        self.evict(id);
        self.commit(item, commit).await?;
        // The request is still queued: the instance is read again as soon as this turn ends,
        // before a result of the activities queued again can run a turn of it without the
        // request (a result turn takes only results).
        self.recheck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        Ok(())
    }
}

/// A failed execution's history rewritten by a rewind (see
/// [`Client::rewind`](crate::Client::rewind)), and what must be done again for replaying it to
/// carry the execution on.
#[derive(Debug)]
struct Rewound {
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
fn unsettled_children(history: &[HistoryEvent]) -> Vec<String> {
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
fn rewrite_history(history: &[HistoryEvent], child_failed: impl Fn(&str) -> bool) -> Rewound {
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
