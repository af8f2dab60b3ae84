//! The round trips a host may save: activities queued already leased to the committing host,
//! and activity results recorded in the same write as the turn they unblock.
//!
//! Holding is part of every commit. Committing results with their turn is optional (the
//! trait's default queues them), so that check accepts either answer and holds the store to
//! what its answer promises.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::RuntimeStatus;
use crate::history::{EventKind, HistoryEvent};
use crate::store::{
    ActivityTask, ActivityWorkItem, HistoryWrite, InstanceVersion, ResultsCommit, Store, TurnCommit,
};

use super::support::*;

/// `id`'s first turn committed with `run_here` held for `lease` and `queued` for anyone;
/// returns the tasks and the held work items.
async fn commit_holding(
    s: &dyn Store,
    id: &str,
    run_here: &[&str],
    queued: &[&str],
    lease: std::time::Duration,
) -> (Vec<ActivityTask>, Vec<ActivityTask>, Vec<ActivityWorkItem>) {
    let new = new_instance(id, t(0));
    let execution_id = new.execution_id.clone();
    ok(s.create_instance(new).await, "create_instance");
    let task = |i: usize, name: &str| ActivityTask {
        instance_id: id.to_string(),
        execution_id: execution_id.clone(),
        task_id: i as i64,
        name: name.to_string(),
        input: format!("{{\"n\":{i}}}"),
    };
    let held: Vec<ActivityTask> = run_here
        .iter()
        .enumerate()
        .map(|(i, n)| task(i, n))
        .collect();
    let free: Vec<ActivityTask> = queued
        .iter()
        .enumerate()
        .map(|(i, n)| task(run_here.len() + i, n))
        .collect();
    let item = item_for(s, t(0), id, "the first turn").await;
    let commit = TurnCommit {
        activities: free.clone(),
        ..plain_commit(&item, RuntimeStatus::Running, t(0))
    };
    let items = ok(
        s.commit_turn_holding(&item, commit, held.clone(), lease)
            .await,
        "commit_turn_holding",
    );
    (held, free, items)
}

/// Activities held by a commit are returned in order, each leased with its own token and
/// delivered once; they are not fetched by anyone else while held, the others queue as
/// usual, and a held activity completes and renews like a fetched one.
pub async fn commit_turn_holding(store: Arc<dyn Store>) {
    let s = &*store;
    let (held, free, items) = commit_holding(s, "pipe", &["A", "B"], &["C"], LONG_LEASE).await;
    let tasks: Vec<_> = items.iter().map(|i| i.task.clone()).collect();
    assert_eq!(tasks, held, "the held activities' items, in order");
    let tokens: BTreeSet<_> = items.iter().map(|i| i.lock.0.clone()).collect();
    assert_eq!(
        tokens.len(),
        items.len(),
        "every held activity has its own token"
    );
    assert!(
        items.iter().all(|i| i.dequeue_count == 1),
        "a held activity is delivered once"
    );
    for task in &free {
        let item = fetch_activity(s, LONG_LEASE, "the queued activities").await;
        assert_eq!(&item.task, task, "only the activities not held are queued");
    }
    no_activity(s, "held activities are not fetched while their lease lasts").await;
    let first = &items[0];
    ok(
        s.renew_activity_lease(first, LONG_LEASE).await,
        "renewing a held activity's lease",
    );
    let result = task_completed(&first.task, "\"a\"", t(1));
    ok(
        s.complete_activity(first, result.clone()).await,
        "completing a held activity",
    );
    let turn = item_for(s, t(1), "pipe", "the held activity's result").await;
    assert_eq!(messages(&turn), vec![result], "the result is delivered");
}

/// A held activity whose lease runs out is fetched by another holder (delivered a second
/// time), and the first holder's token is stale.
pub async fn held_activity_lease_expiry(store: Arc<dyn Store>) {
    let s = &*store;
    let (held, _, items) = commit_holding(s, "held", &["Slow"], &[], SHORT_LEASE).await;
    let old = items.first().expect("the held activity's item");
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    let item = fetch_activity(s, LONG_LEASE, "a held activity after its lease expired").await;
    assert_eq!(item.task, held[0]);
    assert_eq!(item.dequeue_count, 2, "its second delivery");
    assert_lease_lost(
        s.complete_activity(old, task_completed(&held[0], "\"stale\"", t(1)))
            .await,
        "completing with the expired hold",
    );
}

/// The results of held activities and the turn they unblock, in one write: applied when the
/// instance is free and unchanged (history appended, status written, the activities gone, the
/// turn's own activities held); queued as messages when another turn was committed since, or
/// the instance is leased; refused whole, with nothing applied, when one activity's lease was
/// lost. (A store that does not commit them together queues them every time.)
pub async fn complete_activities_and_commit(store: Arc<dyn Store>) {
    let s = &*store;
    let (held, _, items) =
        commit_holding(s, "results", &["One", "Two", "Three"], &[], LONG_LEASE).await;
    let before = status_of(s, "results", "the instance").await;
    let version = |len: usize, last_updated_at| InstanceVersion {
        instance_id: "results".into(),
        execution_id: before.execution_id.clone(),
        history_len: len,
        last_updated_at,
        fence: None,
    };
    let len = history_of(s, "results").await.len();
    let one = task_completed(&held[0], "1", t(1));
    let four = ActivityTask {
        task_id: 3,
        name: "Four".into(),
        ..held[0].clone()
    };
    let turn = |at| TurnCommit {
        history: HistoryWrite::Append(vec![
            HistoryEvent::new(at, EventKind::OrchestratorStarted),
            one.event.clone(),
        ]),
        status: status_as(&before, RuntimeStatus::Running, at),
        consumed: Vec::new(),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    };
    let done = ok(
        s.complete_activities_and_commit(
            vec![(items[0].clone(), one.clone())],
            version(len, before.last_updated_at),
            turn(t(1)),
            vec![four.clone()],
            LONG_LEASE,
        )
        .await,
        "complete_activities_and_commit",
    );
    match done {
        ResultsCommit::Committed(four_held) => {
            let history = history_of(s, "results").await;
            assert_eq!(history.len(), len + 2, "the turn's events were appended");
            assert_eq!(history[len + 1], one.event, "with the result");
            let tasks: Vec<_> = four_held.iter().map(|i| i.task.clone()).collect();
            assert_eq!(tasks, vec![four], "the turn's own activity is held");
            no_item(s, t(1), "the result went into the turn, not the queue").await;
        }
        ResultsCommit::Queued => {
            let item = item_for(s, t(1), "results", "the queued result").await;
            assert_eq!(messages(&item), vec![one.clone()], "the result is queued");
            ok(
                s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(1)))
                    .await,
                "commit",
            );
            return;
        }
    }
    assert_lease_lost(
        s.complete_activity(&items[0], one.clone()).await,
        "completing a committed activity again",
    );
    // Computed from the old length: another turn got there first.
    let two = task_completed(&held[1], "2", t(2));
    let done = ok(
        s.complete_activities_and_commit(
            vec![(items[1].clone(), two.clone())],
            version(len, before.last_updated_at),
            turn(t(2)),
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "complete_activities_and_commit on a changed instance",
    );
    assert!(
        matches!(done, ResultsCommit::Queued),
        "a turn computed before another was committed is not applied: {done:?}"
    );
    assert_eq!(
        history_of(s, "results").await.len(),
        len + 2,
        "nothing of the stale turn was applied"
    );
    let leased = item_for(s, t(2), "results", "the queued result").await;
    assert_eq!(messages(&leased), vec![two], "the result is queued instead");
    // The instance is leased now: nothing is applied around the lease.
    let three = task_completed(&held[2], "3", t(3));
    let done = ok(
        s.complete_activities_and_commit(
            vec![(items[2].clone(), three.clone())],
            version(len + 2, t(1)),
            turn(t(3)),
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "complete_activities_and_commit on a leased instance",
    );
    assert!(
        matches!(done, ResultsCommit::Queued),
        "a leased instance takes no turn from elsewhere: {done:?}"
    );
    ok(
        s.commit_turn(&leased, plain_commit(&leased, RuntimeStatus::Running, t(3)))
            .await,
        "commit",
    );
    let after = item_for(s, t(3), "results", "the result that waited").await;
    assert_eq!(messages(&after), vec![three], "it waited for the lease");
    // A lost lease refuses the whole write.
    let stale = vec![(items[1].clone(), task_completed(&held[1], "2", t(4)))];
    assert_lease_lost(
        s.complete_activities_and_commit(
            stale,
            version(len + 2, t(1)),
            turn(t(4)),
            Vec::new(),
            LONG_LEASE,
        )
        .await,
        "results of activities no longer held",
    );
    assert_eq!(
        history_of(s, "results").await.len(),
        len + 2,
        "a refused write applies nothing"
    );
}
