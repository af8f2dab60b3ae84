//! Starts written together with their first turn ([`Store::create_with_turn`]), fenced by the
//! partition's lease like every other commit.

use std::sync::Arc;

use super::ownership::{claim, claimed, id_in};
use super::support::*;
use crate::RuntimeStatus;
use crate::store::{
    ActivityTask, HistoryWrite, InstanceVersion, NewInstance, PartitionLease, ResultsCommit, Store,
    StoreError, TurnCommit,
};

/// A start written with its first turn ([`Store::create_with_turn`]): the instance, its
/// history and status, its queued and held activities land in one write and no start message
/// is queued; a running instance with the id refuses it, a finished one is replaced, and a
/// fence that moved on refuses it with nothing applied. A store that does not write starts
/// with their turn creates the instance as [`Store::create_instance`] does.
pub async fn create_with_turn(store: Arc<dyn Store>) {
    let s = &*store;
    let a = claimed(s, claim("host-a", &[1], &[], LONG_LEASE), "a").await;
    let fence = a.held[0];
    let id = id_in(1, "started");
    let new = new_instance(&id, t(0));
    let task = |n: i64, name: &str| ActivityTask {
        instance_id: id.clone(),
        execution_id: new.execution_id.clone(),
        task_id: n,
        name: name.into(),
        input: n.to_string(),
    };
    let history = first_turn_history(&new.start_message(), t(1));
    let commit = TurnCommit {
        consumed: Vec::new(),
        history: HistoryWrite::Append(history.clone()),
        status: status_as(&new.initial_status(), RuntimeStatus::Running, t(1)),
        activities: vec![task(1, "Queued")],
        messages: Vec::new(),
        new_instances: Vec::new(),
    };
    let held = ok(
        s.create_with_turn(
            new.clone(),
            fence,
            commit.clone(),
            vec![task(0, "Held")],
            LONG_LEASE,
        )
        .await,
        "create_with_turn",
    );
    let Some(held) = held else {
        assert!(
            !s.starts_with_turn(),
            "a store that writes starts with their turn returns the held activities"
        );
        let item = item_for(s, t(1), &id, "a start the store only created").await;
        assert_eq!(messages(&item), vec![new.start_message()]);
        return;
    };
    assert!(
        s.starts_with_turn(),
        "a store that says it does not write starts with their turn wrote one"
    );
    let tasks: Vec<_> = held.iter().map(|i| i.task.clone()).collect();
    assert_eq!(tasks, vec![task(0, "Held")], "the held activity's item");
    let status = status_of(s, &id, "after the start").await;
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    assert_eq!(status.created_at, t(0), "the creation time is the start's");
    assert_eq!(history_of(s, &id).await, history);
    no_item(s, t(5), "no start message is queued").await;
    let queued = fetch_activity(s, LONG_LEASE, "the queued activity").await;
    assert_eq!(queued.task, task(1, "Queued"));
    no_activity(s, "the held activity is not fetched").await;

    let again = s
        .create_with_turn(new.clone(), fence, commit.clone(), Vec::new(), LONG_LEASE)
        .await;
    assert!(
        matches!(again, Err(StoreError::InstanceAlreadyExists(_))),
        "a second start of a running instance is refused, got {again:?}"
    );
    assert_eq!(
        history_of(s, &id).await,
        history,
        "nothing of it is applied"
    );

    // A fence that moved on: nothing applied.
    let other = id_in(1, "fenced-start");
    let stale = PartitionLease {
        epoch: fence.epoch + 1,
        ..fence
    };
    assert_lease_lost(
        s.create_with_turn(
            new_instance(&other, t(0)),
            stale,
            TurnCommit {
                status: status_as(
                    &new_instance(&other, t(0)).initial_status(),
                    RuntimeStatus::Running,
                    t(1),
                ),
                activities: Vec::new(),
                ..commit.clone()
            },
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "a start under another epoch",
    );
    assert!(
        ok(s.instance(&other).await, "instance").is_none(),
        "a refused start creates nothing"
    );

    // A finished instance is replaced by a new start with its id.
    let item = ok(s.read_orchestration(&id, t(2), fence).await, "read");
    assert!(item.is_none(), "no message waits for the started instance");
    let finished = TurnCommit {
        consumed: Vec::new(),
        history: HistoryWrite::Append(Vec::new()),
        status: status_as(&status, RuntimeStatus::Completed, t(2)),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    };
    let version = InstanceVersion {
        instance_id: id.clone(),
        execution_id: status.execution_id.clone(),
        history_len: history.len(),
        last_updated_at: status.last_updated_at,
        fence: Some(fence),
    };
    let response = task_completed(&queued.task, "1", t(2));
    let done = ok(
        s.complete_activities_and_commit(
            vec![(queued, response)],
            version,
            finished,
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "the instance finishes",
    );
    if matches!(done, ResultsCommit::Queued) {
        // A store that queues results instead: the rest needs a finished instance.
        return;
    }
    let replacement = NewInstance {
        execution_id: format!("{id}#exec-2"),
        ..new_instance(&id, t(3))
    };
    let second = first_turn_history(&replacement.start_message(), t(3));
    ok(
        s.create_with_turn(
            replacement.clone(),
            fence,
            TurnCommit {
                history: HistoryWrite::Append(second.clone()),
                status: status_as(&replacement.initial_status(), RuntimeStatus::Running, t(3)),
                activities: Vec::new(),
                ..commit
            },
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "a start with the id of a finished instance",
    );
    assert_eq!(history_of(s, &id).await, second, "the history starts over");
    let status = status_of(s, &id, "after the second start").await;
    assert_eq!(status.execution_id, replacement.execution_id);
}
