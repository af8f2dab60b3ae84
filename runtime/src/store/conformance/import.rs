//! Importing an instance exported from another store.

use std::sync::Arc;

use crate::history::{EventKind, HistoryEvent};
use crate::store::{Store, StoreError};
use crate::{InstanceStatus, RuntimeStatus};

use super::support::*;

/// A running instance as another store exported it: waiting on a timer after an activity.
fn exported(id: &str) -> (InstanceStatus, Vec<HistoryEvent>) {
    let status = InstanceStatus {
        instance_id: id.to_string(),
        name: "ImportedFlow".into(),
        execution_id: format!("{id}#exec-7"),
        runtime_status: RuntimeStatus::Running,
        input: Some(json("order 17")),
        output: None,
        custom_status: Some(json("charged")),
        failure: None,
        created_at: t(10),
        last_updated_at: t(12),
        parent_instance_id: None,
        version: Some("1.4".into()),
        history: None,
    };
    let step = |id: i64, at, kind| HistoryEvent {
        event_id: id,
        timestamp: t(at),
        kind,
    };
    let history = vec![
        HistoryEvent::new(t(10), EventKind::OrchestratorStarted),
        HistoryEvent::new(
            t(10),
            EventKind::ExecutionStarted {
                name: "ImportedFlow".into(),
                input: json("order 17"),
                execution_id: format!("{id}#exec-7"),
                parent: None,
                version: Some("1.4".into()),
            },
        ),
        step(
            0,
            10,
            EventKind::TaskScheduled {
                name: "Charge".into(),
                input: json("order 17"),
            },
        ),
        HistoryEvent::new(t(10), EventKind::OrchestratorCompleted),
        HistoryEvent::new(t(12), EventKind::OrchestratorStarted),
        HistoryEvent::new(
            t(12),
            EventKind::TaskCompleted {
                task_scheduled_id: 0,
                result: json("receipt"),
            },
        ),
        step(1, 12, EventKind::TimerCreated { fire_at: t(3600) }),
        HistoryEvent::new(t(12), EventKind::OrchestratorCompleted),
    ];
    (status, history)
}

/// An imported instance has exactly the exported status and history and nothing queued; a
/// message for it then fetches it with its history's length. An existing id is refused
/// unless replacing, which drops the old instance's history, messages and activities.
pub async fn import_instance(store: Arc<dyn Store>) {
    let s = &*store;
    let (status, history) = exported("imported");
    ok(
        s.import_instance(status.clone(), history.clone(), false)
            .await,
        "import_instance",
    );
    assert_eq!(
        status_of(s, "imported", "after an import").await,
        status,
        "an imported instance has the exported status"
    );
    assert_eq!(
        history_of(s, "imported").await,
        history,
        "an imported instance has the exported history"
    );
    no_item(
        s,
        t(4000),
        "an import queues no message (not even its timer)",
    )
    .await;
    no_activity(s, "an import queues no activity").await;

    // Again without replacing: refused, nothing changed.
    let (mut other, _) = exported("imported");
    other.runtime_status = RuntimeStatus::Completed;
    match s.import_instance(other, Vec::new(), false).await {
        Err(StoreError::InstanceAlreadyExists(id)) => assert_eq!(id, "imported"),
        other => panic!("importing an existing id: expected InstanceAlreadyExists, got {other:?}"),
    }
    assert_eq!(
        status_of(s, "imported", "after a refused import").await,
        status
    );
    assert_eq!(history_of(s, "imported").await, history);

    ok(s.enqueue(event("imported", "Poke", t(20))).await, "enqueue");
    let item = item_for(s, t(20), "imported", "a message for an imported instance").await;
    assert_eq!(
        item.history_len,
        history.len(),
        "a work item of an imported instance counts its imported history"
    );
    assert_eq!(item.instance.runtime_status, RuntimeStatus::Running);
    let consumed = plain_commit(&item, RuntimeStatus::Running, t(20));
    ok(s.commit_turn(&item, consumed).await, "commit_turn");

    // Replacing a running instance with queued activities and messages.
    queue_activities(s, "busy", &["Slow"]).await;
    ok(s.enqueue(event("busy", "Pending", t(1))).await, "enqueue");
    let (mut replacement, history) = exported("busy");
    replacement.runtime_status = RuntimeStatus::Failed;
    replacement.failure = Some(failure("it broke in production"));
    ok(
        s.import_instance(replacement.clone(), history.clone(), true)
            .await,
        "import_instance with replace",
    );
    assert_eq!(
        status_of(s, "busy", "after a replacing import").await,
        replacement
    );
    assert_eq!(history_of(s, "busy").await, history);
    no_activity(s, "a replaced instance's activities are gone").await;
    let left = all_items(s, t(100), "after a replacing import").await;
    assert!(
        !left.contains_key("busy"),
        "a replaced instance's messages are gone"
    );
}
