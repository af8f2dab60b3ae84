//! Rewind: a failed instance's history rewritten and what it waits for queued again.

use std::collections::HashMap;

use super::commit::{terminated_failure, timer_message};
use super::{Inner, TurnError};
use crate::model::history::{self, EventKind, HistoryEvent};
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
        for child in history::unsettled_children(&old) {
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
        let rewound = history::rewind(&old, child_failed);
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
        self.commit(item, commit).await
    }
}
