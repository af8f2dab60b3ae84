//! Committing turns.

use std::sync::Arc;

use crate::history::{CompletionStatus, EventKind, HistoryEvent, ParentInstance};
use crate::store::{
    ActivityTask, HistoryWrite, NewInstance, OrchestrationMessage, Store, TurnCommit,
    new_entity_status,
};
use crate::{EntityId, InstanceStatus, RuntimeStatus};

use super::support::*;
/// A commit applies everything at once: consumed messages removed, history appended, status
/// replaced (created_at kept, no history kept), activities queued, messages delivered (a timer
/// to self only when due, to other instances, to an entity which is created, dropped for a
/// missing instance), sub-orchestrations created.
pub async fn commit_turn_applies_everything(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "other", t(0), RuntimeStatus::Running).await;
    let new = new_instance("parent", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let item = item_for(s, t(1), "parent", "the parent").await;
    let exec = new.execution_id.clone();

    let mut history = first_turn_history(&new.start_message(), t(1));
    history.insert(
        2,
        HistoryEvent {
            event_id: 0,
            timestamp: t(1),
            kind: EventKind::TaskScheduled {
                name: "Charge".into(),
                input: "42".into(),
            },
        },
    );
    let activity = ActivityTask {
        instance_id: "parent".into(),
        execution_id: exec.clone(),
        task_id: 0,
        name: "Charge".into(),
        input: "42".into(),
    };
    let wake = timer("parent", &exec, 1, t(60));
    let to_other = event("other", "Hello", t(1));
    let ledger = EntityId::new("Ledger", "main").to_string();
    let to_entity = signal_entity(&ledger, "credit", t(1));
    let to_nobody = event("nobody", "Lost", t(1));
    let child = NewInstance {
        parent: Some(ParentInstance {
            name: new.name.clone(),
            instance_id: "parent".into(),
            execution_id: exec.clone(),
            task_scheduled_id: 2,
        }),
        ..new_instance("parent:child", t(1))
    };
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.custom_status = Some(json("working"));
    let mut committed_status = status.clone();
    committed_status.created_at = t(999);
    committed_status.history = Some(history.clone());
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: seqs(&item),
                history: HistoryWrite::Append(history.clone()),
                status: committed_status,
                activities: vec![activity.clone()],
                messages: vec![wake.clone(), to_other.clone(), to_entity.clone(), to_nobody],
                new_instances: vec![child.clone()],
            },
        )
        .await,
        "commit_turn",
    );

    assert_eq!(
        status_of(s, "parent", "after the commit").await,
        status,
        "the committed status replaces the old one, keeping created_at and no history"
    );
    assert_eq!(
        history_of(s, "parent").await,
        history,
        "the appended history"
    );
    let task = fetch_activity(s, LONG_LEASE, "the queued activity").await;
    assert_eq!(task.task, activity, "the queued activity");
    assert_eq!(task.dequeue_count, 1);
    no_activity(s, "one activity was queued").await;

    assert_eq!(
        status_of(s, "parent:child", "the sub-orchestration").await,
        child.initial_status(),
        "a sub-orchestration is created with its initial status"
    );
    assert_eq!(
        status_of(s, &ledger, "the entity").await,
        new_entity_status(&ledger, t(1)),
        "a message from a commit creates the entity"
    );
    assert!(
        ok(s.instance("nobody").await, "instance").is_none(),
        "a message for a missing (non-entity) instance is dropped, not turned into an instance"
    );

    let items = all_items(s, t(1), "after the commit").await;
    assert_eq!(
        items.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut ids = vec!["other", ledger.as_str(), "parent:child"];
            ids.sort();
            ids
        },
        "the commit's messages are delivered; the parent's own timer is not due yet"
    );
    assert_eq!(messages(&items["other"]), vec![to_other]);
    assert_eq!(messages(&items[&ledger]), vec![to_entity]);
    assert_eq!(
        messages(&items["parent:child"]),
        vec![child.start_message()]
    );
    for item in items.values() {
        ok(
            s.commit_turn(item, plain_commit(item, RuntimeStatus::Running, t(1)))
                .await,
            "commit",
        );
    }
    assert_eq!(
        no_item(s, t(59), "before the parent's timer").await,
        Some(t(60)),
        "next_visible is the timer's time"
    );
    let item = item_for(s, t(60), "parent", "the parent's timer").await;
    assert_eq!(messages(&item), vec![wake]);
    assert_eq!(item.history_len, history.len());
}

/// A message sent in a turn to a sub-orchestration started by the same turn reaches the child
/// (the commit is applied as a whole: the child exists when the message is delivered), also
/// when the child's id belonged to a finished instance, which the child replaces.
pub async fn commit_turn_message_to_new_child(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "kid-old", t(0), RuntimeStatus::Completed).await;
    let parent = new_instance("parent", t(0));
    ok(s.create_instance(parent.clone()).await, "create_instance");
    let children: Vec<NewInstance> = ["kid-new", "kid-old"]
        .into_iter()
        .enumerate()
        .map(|(step, id)| NewInstance {
            execution_id: format!("{id}#exec-from-parent"),
            parent: Some(ParentInstance {
                name: parent.name.clone(),
                instance_id: "parent".into(),
                execution_id: parent.execution_id.clone(),
                task_scheduled_id: step as i64,
            }),
            ..new_instance(id, t(1))
        })
        .collect();
    let events = [event("kid-new", "Go", t(1)), event("kid-old", "Go", t(1))];
    commit_next(
        s,
        t(1),
        "parent",
        "start children and send them events",
        |item| TurnCommit {
            messages: events.to_vec(),
            new_instances: children.clone(),
            ..plain_commit(item, RuntimeStatus::Running, t(1))
        },
    )
    .await;
    let items = all_items(s, t(1), "the children").await;
    for (child, sent) in children.iter().zip(&events) {
        let item = items
            .get(&child.instance_id)
            .unwrap_or_else(|| panic!("child `{}` has no work", child.instance_id));
        assert_eq!(
            messages(item),
            vec![child.start_message(), sent.clone()],
            "child `{}` receives its start and then the event sent in the same turn",
            child.instance_id
        );
    }
}

/// `HistoryWrite::Reset` discards the history (continue-as-new); the next turn's events are
/// the only ones.
pub async fn commit_turn_history_reset(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "loop", t(0), RuntimeStatus::Running).await;
    assert_eq!(history_of(s, "loop").await.len(), 3);
    ok(s.enqueue(event("loop", "Next", t(1))).await, "enqueue");
    let next_start = OrchestrationMessage {
        instance_id: "loop".into(),
        execution_id: None,
        event: HistoryEvent::new(
            t(1),
            EventKind::ExecutionStarted {
                name: "ConformanceFlow".into(),
                input: "2".into(),
                execution_id: "loop#exec-2".into(),
                parent: None,
                version: None,
            },
        ),
        visible_at: None,
    };
    let item = commit_next(s, t(1), "loop", "continue as new", |item| {
        let mut commit = plain_commit(item, RuntimeStatus::ContinuedAsNew, t(1));
        commit.history = HistoryWrite::Reset;
        commit.status.execution_id = "loop#exec-2".into();
        commit.status.input = Some("2".into());
        commit.messages.push(next_start.clone());
        commit
    })
    .await;
    assert_eq!(item.history_len, 3);
    assert_no_history(s, "loop", "after HistoryWrite::Reset").await;
    let status = status_of(s, "loop", "after continuing as new").await;
    assert_eq!(status.runtime_status, RuntimeStatus::ContinuedAsNew);
    assert_eq!(status.execution_id, "loop#exec-2");

    let history = first_turn_history(&next_start, t(2));
    let item = commit_next(s, t(2), "loop", "the next execution", |item| TurnCommit {
        history: HistoryWrite::Append(history.clone()),
        ..plain_commit(item, RuntimeStatus::Running, t(2))
    })
    .await;
    assert_eq!(item.history_len, 0, "history_len after a reset");
    assert_eq!(messages(&item), vec![next_start]);
    assert_eq!(
        history_of(s, "loop").await,
        history,
        "after a reset, only the new execution's events"
    );
}

/// `HistoryWrite::Replace` replaces the whole history (a rewind): afterwards the history is
/// exactly the new events, even when they are fewer than the old ones, the next fetch reports
/// their number, a later turn appends after them, and the rest of the commit is applied with
/// the replacement.
pub async fn commit_turn_replace_history(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "other", t(0), RuntimeStatus::Running).await;
    let new = new_instance("again", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let exec = new.execution_id.clone();
    let scheduled = HistoryEvent {
        event_id: 0,
        timestamp: t(0),
        kind: EventKind::TaskScheduled {
            name: "Charge".into(),
            input: "42".into(),
        },
    };
    let mut first = first_turn_history(&new.start_message(), t(0));
    first.insert(2, scheduled.clone());
    commit_next(s, t(0), "again", "the first turn", |item| TurnCommit {
        history: HistoryWrite::Append(first.clone()),
        ..plain_commit(item, RuntimeStatus::Running, t(0))
    })
    .await;
    let activity = ActivityTask {
        instance_id: "again".into(),
        execution_id: exec.clone(),
        task_id: 0,
        name: "Charge".into(),
        input: "42".into(),
    };
    let failed = [
        HistoryEvent::new(t(1), EventKind::OrchestratorStarted),
        HistoryEvent::new(
            t(1),
            EventKind::TaskFailed {
                task_scheduled_id: 0,
                failure: failure("declined"),
            },
        ),
        HistoryEvent::new(
            t(1),
            EventKind::ExecutionCompleted {
                status: CompletionStatus::Failed,
                result: None,
                failure: Some(failure("declined")),
            },
        ),
        HistoryEvent::new(t(1), EventKind::OrchestratorCompleted),
    ];
    ok(s.enqueue(event("again", "Fail", t(1))).await, "enqueue");
    commit_next(s, t(1), "again", "the failing turn", |item| TurnCommit {
        history: HistoryWrite::Append(failed.to_vec()),
        ..plain_commit(item, RuntimeStatus::Failed, t(1))
    })
    .await;
    let old_len = first.len() + failed.len();
    assert_eq!(history_of(s, "again").await.len(), old_len);

    // Fewer events than before, so that a store that keeps old rows or numbers the new ones
    // after the old ones shows it.
    let mut rewritten = first.clone();
    rewritten.extend([failed[0].clone(), failed[3].clone()]);
    ok(s.enqueue(event("again", "Rewind", t(2))).await, "enqueue");
    let to_other = event("other", "Hello", t(2));
    let item = item_for(s, t(2), "again", "the rewind").await;
    assert_eq!(item.history_len, old_len);
    let status = InstanceStatus {
        failure: None,
        ..status_as(&item.instance, RuntimeStatus::Running, t(2))
    };
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: seqs(&item),
                history: HistoryWrite::Replace(rewritten.clone()),
                status: status.clone(),
                activities: vec![activity.clone()],
                messages: vec![to_other.clone()],
                new_instances: Vec::new(),
            },
        )
        .await,
        "commit_turn with HistoryWrite::Replace",
    );
    assert_eq!(
        history_of(s, "again").await,
        rewritten,
        "after HistoryWrite::Replace, exactly the new events"
    );
    assert_eq!(
        status_of(s, "again", "after the replace").await,
        status,
        "the status is committed with the replacement"
    );
    let task = fetch_activity(s, LONG_LEASE, "the activity queued with the replacement").await;
    assert_eq!(task.task, activity);
    assert_eq!(
        messages(&item_for(s, t(2), "other", "the message sent with the replacement").await),
        vec![to_other]
    );

    let done = timer("again", &exec, 1, t(3));
    ok(s.enqueue(done.clone()).await, "enqueue");
    let next_turn = [
        HistoryEvent::new(t(3), EventKind::OrchestratorStarted),
        HistoryEvent::new(t(3), EventKind::OrchestratorCompleted),
    ];
    let item = commit_next(s, t(3), "again", "the turn after the replace", |item| {
        TurnCommit {
            history: HistoryWrite::Append(next_turn.to_vec()),
            ..plain_commit(item, RuntimeStatus::Running, t(3))
        }
    })
    .await;
    assert_eq!(
        item.history_len,
        rewritten.len(),
        "history_len counts the replacement"
    );
    let mut expected = rewritten;
    expected.extend(next_turn);
    assert_eq!(
        history_of(s, "again").await,
        expected,
        "a later turn appends after the replacement"
    );
}

/// A commit that consumes only some of its work item's messages (a rewind consumes those
/// before the request and leaves the request queued) leaves the others queued: fetchable at
/// once, in order, counted as fetched once more.
pub async fn commit_turn_partial_consume(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "half", t(0), RuntimeStatus::Running).await;
    let sent = [
        event("half", "A", t(1)),
        event("half", "B", t(1)),
        event("half", "C", t(1)),
    ];
    for message in &sent {
        ok(s.enqueue(message.clone()).await, "enqueue");
    }
    let item = item_for(s, t(1), "half", "all three messages").await;
    assert_eq!(messages(&item), sent.to_vec());
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: vec![item.messages[0].seq],
                ..plain_commit(&item, RuntimeStatus::Running, t(1))
            },
        )
        .await,
        "a commit consuming the first message only",
    );
    let next = item_for(s, t(1), "half", "right after the partial commit").await;
    assert_eq!(
        messages(&next),
        sent[1..].to_vec(),
        "the messages the commit did not consume stay queued, in order"
    );
    assert_eq!(next.dequeue_count, 2, "they have now been fetched twice");
    ok(
        s.commit_turn(&next, plain_commit(&next, RuntimeStatus::Running, t(1)))
            .await,
        "commit",
    );
    no_item(s, t(1), "after consuming the rest").await;
}

/// A sub-orchestration whose id is pending or running is not created; the parent receives
/// `NewInstance::conflict_response` instead and the existing instance is untouched. A finished
/// one is replaced.
pub async fn commit_turn_child_conflict(store: Arc<dyn Store>) {
    let s = &*store;
    let running = instance_with_status(s, "kid-running", t(0), RuntimeStatus::Running).await;
    instance_with_status(s, "kid-done", t(0), RuntimeStatus::Completed).await;
    let parent = new_instance("parent", t(0));
    ok(s.create_instance(parent.clone()).await, "create_instance");
    let item = item_for(s, t(1), "parent", "the parent").await;
    let pending = new_instance("kid-pending", t(0));
    ok(s.create_instance(pending.clone()).await, "create_instance");

    let child = |id: &str, step: i64| NewInstance {
        input: json("from the parent"),
        execution_id: format!("{id}#exec-from-parent"),
        parent: Some(ParentInstance {
            name: parent.name.clone(),
            instance_id: "parent".into(),
            execution_id: parent.execution_id.clone(),
            task_scheduled_id: step,
        }),
        ..new_instance(id, t(1))
    };
    let children = vec![
        child("kid-running", 0),
        child("kid-pending", 1),
        child("kid-done", 2),
    ];
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                new_instances: children.clone(),
                ..plain_commit(&item, RuntimeStatus::Running, t(1))
            },
        )
        .await,
        "a commit whose sub-orchestrations conflict still succeeds",
    );
    assert_eq!(
        status_of(s, "kid-running", "the running child").await,
        running,
        "a running instance is not replaced by a sub-orchestration with its id"
    );
    assert_eq!(
        status_of(s, "kid-pending", "the pending child").await,
        pending.initial_status(),
        "a pending instance is not replaced by a sub-orchestration with its id"
    );
    assert_eq!(
        status_of(s, "kid-done", "the finished child").await,
        children[2].initial_status(),
        "a finished instance is replaced by the sub-orchestration"
    );

    let items = all_items(s, t(1), "after the commit").await;
    assert_eq!(
        items.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["kid-done", "kid-pending", "parent"]
    );
    assert_eq!(
        messages(&items["parent"]),
        vec![
            children[0].conflict_response().expect("has a parent"),
            children[1].conflict_response().expect("has a parent"),
        ],
        "the parent receives one conflict response per refused child, in order"
    );
    assert_eq!(
        messages(&items["kid-pending"]),
        vec![pending.start_message()],
        "the pending child keeps only its own start"
    );
    assert_eq!(
        messages(&items["kid-done"]),
        vec![children[2].start_message()]
    );
    assert_eq!(
        items["kid-done"].history_len, 0,
        "a replaced child starts afresh"
    );
}

/// Messages that arrive while an instance is leased, and so are not consumed by its commit,
/// stay queued and are fetched next.
pub async fn commit_keeps_unconsumed_messages(store: Arc<dyn Store>) {
    let s = &*store;
    let new = new_instance("busy", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let item = item_for(s, t(0), "busy", "the first turn").await;
    let during = [event("busy", "A", t(1)), event("busy", "B", t(2))];
    for message in &during {
        ok(s.enqueue(message.clone()).await, "enqueue during the lease");
    }
    let history = first_turn_history(&new.start_message(), t(2));
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                history: HistoryWrite::Append(history.clone()),
                ..plain_commit(&item, RuntimeStatus::Running, t(2))
            },
        )
        .await,
        "commit",
    );
    let next = item_for(s, t(2), "busy", "after the commit").await;
    assert_eq!(
        messages(&next),
        during.to_vec(),
        "messages that arrived during the lease are kept, in order"
    );
    assert_eq!(next.dequeue_count, 1, "they were never fetched before");
    assert_eq!(next.history_len, history.len());
}
