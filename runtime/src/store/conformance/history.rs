//! History: every event kind round-trips.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::TimeDelta;

use crate::history::{CompletionStatus, EntityCaller, EventKind, HistoryEvent, ParentInstance};
use crate::store::{HistoryWrite, OrchestrationMessage, Store, TurnCommit};
use crate::{FailureDetails, RuntimeStatus};

use super::support::*;
fn kind_index(kind: &EventKind) -> usize {
    // Exhaustive on purpose: a new event kind must be added to `every_event` below.
    match kind {
        EventKind::OrchestratorStarted => 0,
        EventKind::OrchestratorCompleted => 1,
        EventKind::ExecutionStarted { .. } => 2,
        EventKind::ExecutionCompleted { .. } => 3,
        EventKind::ExecutionTerminated { .. } => 4,
        EventKind::ExecutionSuspended { .. } => 5,
        EventKind::ExecutionResumed { .. } => 6,
        EventKind::ContinueAsNew { .. } => 7,
        EventKind::TaskScheduled { .. } => 8,
        EventKind::TaskCompleted { .. } => 9,
        EventKind::TaskFailed { .. } => 10,
        EventKind::SubOrchestrationInstanceCreated { .. } => 11,
        EventKind::SubOrchestrationInstanceCompleted { .. } => 12,
        EventKind::SubOrchestrationInstanceFailed { .. } => 13,
        EventKind::TimerCreated { .. } => 14,
        EventKind::TimerFired { .. } => 15,
        EventKind::EventRaised { .. } => 16,
        EventKind::EventSent { .. } => 17,
        EventKind::EntityOperationCalled { .. } => 18,
        EventKind::EntityOperationSignaled { .. } => 19,
        EventKind::EntityLockRequested { .. } => 20,
        EventKind::EntityUnlockSent { .. } => 21,
        EventKind::EntityOperationCompleted { .. } => 22,
        EventKind::EntityOperationFailed { .. } => 23,
        EventKind::EntityLockGranted { .. } => 24,
        EventKind::ExecutionRewound { .. } => 25,
        EventKind::Patched { .. } => 26,
    }
}

const EVENT_KINDS: usize = 27;

/// One event of every kind (some twice, with and without optional fields), every field set,
/// timestamps with nanoseconds.
fn every_event() -> Vec<HistoryEvent> {
    let at = |n: i64| t(0) + TimeDelta::nanoseconds(1_000_000_007 * n + 123_456_789);
    let caller = EntityCaller {
        instance_id: "caller \"1\"".into(),
        execution_id: "caller#exec".into(),
        task_scheduled_id: 6,
    };
    let text = "{\"s\":\"line1\\nline2 \\\"quoted\\\" ünïcødé 🚀\"}".to_string();
    let kinds = vec![
        EventKind::OrchestratorStarted,
        EventKind::ExecutionStarted {
            name: "Flow".into(),
            input: text.clone(),
            execution_id: "exec-1".into(),
            parent: Some(ParentInstance {
                name: "ParentFlow".into(),
                instance_id: "parent 'p'".into(),
                execution_id: "parent#exec".into(),
                task_scheduled_id: 3,
            }),
            version: Some("2.1 \"beta\" ünï".into()),
        },
        EventKind::ExecutionStarted {
            name: "Flow".into(),
            input: "null".into(),
            execution_id: "exec-2".into(),
            parent: None,
            version: None,
        },
        EventKind::TaskScheduled {
            name: "Act".into(),
            input: text.clone(),
        },
        EventKind::TaskCompleted {
            task_scheduled_id: 0,
            result: text.clone(),
        },
        EventKind::TaskFailed {
            task_scheduled_id: 1,
            failure: failure("task\nfailed"),
        },
        EventKind::TimerCreated { fire_at: at(40) },
        EventKind::TimerFired {
            timer_id: 2,
            fire_at: at(40),
        },
        EventKind::SubOrchestrationInstanceCreated {
            name: "Child".into(),
            instance_id: "child-ü".into(),
            input: text.clone(),
        },
        EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id: 3,
            result: "[1,2,3]".into(),
        },
        EventKind::SubOrchestrationInstanceFailed {
            task_scheduled_id: 4,
            failure: FailureDetails {
                error_type: "Plain".into(),
                message: "no cause".into(),
                cause: None,
            },
        },
        EventKind::EventRaised {
            name: "Approval \"x\"".into(),
            input: "true".into(),
        },
        EventKind::EventSent {
            instance_id: "elsewhere".into(),
            name: "Ping".into(),
            input: text.clone(),
        },
        EventKind::EntityOperationCalled {
            entity_id: "@counter@k".into(),
            operation: "add".into(),
            input: "5".into(),
            caller: Some(caller.clone()),
        },
        EventKind::EntityOperationCalled {
            entity_id: "@counter@k".into(),
            operation: "get".into(),
            input: "null".into(),
            caller: None,
        },
        EventKind::EntityOperationSignaled {
            entity_id: "@counter@k".into(),
            operation: "reset".into(),
            input: "null".into(),
        },
        EventKind::EntityLockRequested {
            lock_set: vec!["@a@1".into(), "@b@2".into()],
            position: 1,
            caller: Some(caller.clone()),
        },
        EventKind::EntityUnlockSent {
            lock_set: vec!["@a@1".into(), "@b@2".into()],
            caller: Some(caller),
        },
        EventKind::EntityUnlockSent {
            lock_set: Vec::new(),
            caller: None,
        },
        EventKind::EntityOperationCompleted {
            task_scheduled_id: 6,
            result: "5".into(),
        },
        EventKind::EntityOperationFailed {
            task_scheduled_id: 7,
            failure: failure("entity op failed"),
        },
        EventKind::EntityLockGranted {
            task_scheduled_id: 8,
        },
        EventKind::Patched {
            patch_id: "use-new-tax \"rules\"".into(),
        },
        EventKind::ExecutionSuspended {
            reason: Some("maintenance".into()),
        },
        EventKind::ExecutionResumed { reason: None },
        EventKind::ExecutionRewound {
            reason: Some("fixed \"it\"".into()),
        },
        EventKind::ExecutionTerminated {
            reason: Some(json("stop")),
        },
        EventKind::ContinueAsNew {
            input: text.clone(),
        },
        EventKind::ExecutionCompleted {
            status: CompletionStatus::Completed,
            result: Some(text),
            failure: None,
        },
        EventKind::ExecutionCompleted {
            status: CompletionStatus::Failed,
            result: None,
            failure: Some(failure("execution failed")),
        },
        EventKind::ExecutionCompleted {
            status: CompletionStatus::Terminated,
            result: Some(json("reason")),
            failure: None,
        },
        EventKind::OrchestratorCompleted,
    ];
    let events: Vec<HistoryEvent> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| HistoryEvent {
            event_id: if i % 3 == 0 { -1 } else { i as i64 * 1000 },
            timestamp: at(i as i64),
            kind,
        })
        .collect();
    let covered: BTreeSet<usize> = events.iter().map(|e| kind_index(&e.kind)).collect();
    assert_eq!(
        covered.len(),
        EVENT_KINDS,
        "every_event covers every event kind"
    );
    events
}

/// The history comes back in order with every field of every event kind intact (including
/// nanosecond timestamps, which replay turns into orchestration time); queued messages of
/// every kind round-trip too.
pub async fn history_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let events = every_event();
    let (first, second) = events.split_at(events.len() / 2);
    ok(
        s.create_instance(new_instance("h", t(0))).await,
        "create_instance",
    );
    commit_next(s, t(0), "h", "first turn", |item| TurnCommit {
        history: HistoryWrite::Append(first.to_vec()),
        ..plain_commit(item, RuntimeStatus::Running, t(0))
    })
    .await;
    assert_eq!(
        history_of(s, "h").await,
        first,
        "the first turn's events, in order, every field intact (timestamps to the nanosecond)"
    );

    let queued: Vec<OrchestrationMessage> = events
        .iter()
        .enumerate()
        .map(|(i, e)| OrchestrationMessage {
            instance_id: "h".into(),
            execution_id: (i % 2 == 0).then(|| format!("exec-{i}")),
            event: e.clone(),
            visible_at: None,
        })
        .collect();
    for message in &queued {
        ok(s.enqueue(message.clone()).await, "enqueue");
    }
    let item = commit_next(s, t(1), "h", "second turn", |item| TurnCommit {
        history: HistoryWrite::Append(second.to_vec()),
        ..plain_commit(item, RuntimeStatus::Running, t(1))
    })
    .await;
    assert_eq!(
        messages(&item),
        queued,
        "queued messages of every kind round-trip, every field intact"
    );
    assert_eq!(item.history_len, first.len());
    assert_eq!(
        history_of(s, "h").await,
        events,
        "both turns' events, in order, every field intact"
    );
}
