//! The round trips a host may save: activities queued already leased to the committing host,
//! and an activity's result recorded together with the lease on the turn it unblocks.
//!
//! Both are optional for a store (the trait's defaults take the long way), so each check
//! accepts either answer and holds the store to what that answer promises.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::RuntimeStatus;
use crate::store::{ActivityTask, ActivityWorkItem, Store, TurnCommit};

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
/// usual, and a held activity completes and renews like a fetched one. (A store that holds
/// nothing returns no items and queues every activity.)
pub async fn commit_turn_holding(store: Arc<dyn Store>) {
    let s = &*store;
    let (held, free, items) = commit_holding(s, "pipe", &["A", "B"], &["C"], LONG_LEASE).await;
    let fetchable = if items.is_empty() {
        held.iter().chain(&free).cloned().collect::<Vec<_>>()
    } else {
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
        free.clone()
    };
    for task in &fetchable {
        let item = fetch_activity(s, LONG_LEASE, "the queued activities").await;
        assert_eq!(&item.task, task, "only the activities not held are queued");
    }
    no_activity(s, "held activities are not fetched while their lease lasts").await;
    if let Some(first) = items.first() {
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
}

/// A held activity whose lease runs out is fetched by another holder (delivered a second
/// time), and the first holder's token is stale.
pub async fn held_activity_lease_expiry(store: Arc<dyn Store>) {
    let s = &*store;
    let (held, _, items) = commit_holding(s, "held", &["Slow"], &[], SHORT_LEASE).await;
    let Some(old) = items.first() else {
        // Nothing held: the activity is simply queued.
        let item = fetch_activity(s, LONG_LEASE, "the queued activity").await;
        assert_eq!(item.task, held[0]);
        return;
    };
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

/// Completing an activity and fetching: when its instance is free, the instance comes back
/// leased with the result and every other visible message, and no one else fetches it; when
/// another lease holds the instance, nothing is fetched and the result waits in the queue. A
/// stale token is refused and delivers nothing.
pub async fn complete_activity_and_fetch(store: Arc<dyn Store>) {
    let s = &*store;
    let tasks = queue_activities(s, "next", &["One", "Two"]).await;
    let one = fetch_activity(s, LONG_LEASE, "the first activity").await;
    let two = fetch_activity(s, LONG_LEASE, "the second activity").await;
    ok(s.enqueue(event("next", "Early", t(1))).await, "enqueue");
    let result = task_completed(&tasks[0], "1", t(2));
    let fetched = ok(
        s.complete_activity_and_fetch(&one, result.clone(), t(2), LONG_LEASE)
            .await,
        "complete_activity_and_fetch",
    );
    let turn = match fetched {
        Some(turn) => {
            assert_eq!(turn.instance_id, "next", "the result's instance is leased");
            assert_eq!(
                messages(&turn),
                vec![event("next", "Early", t(1)), result.clone()],
                "the work item holds every visible message, in order"
            );
            no_item(s, t(2), "the instance is leased to the completer").await;
            turn
        }
        None => item_for(s, t(2), "next", "the result, queued").await,
    };
    assert_lease_lost(
        s.complete_activity_and_fetch(&one, result, t(2), LONG_LEASE)
            .await,
        "completing an activity twice",
    );
    // The instance is leased now: the second result waits for the lease to end.
    let second = task_completed(&tasks[1], "2", t(3));
    let fetched = ok(
        s.complete_activity_and_fetch(&two, second.clone(), t(3), LONG_LEASE)
            .await,
        "complete_activity_and_fetch on a leased instance",
    );
    assert!(
        fetched.is_none(),
        "an instance leased elsewhere is not fetched again"
    );
    ok(
        s.commit_turn(&turn, plain_commit(&turn, RuntimeStatus::Running, t(3)))
            .await,
        "commit",
    );
    let after = item_for(s, t(3), "next", "the result that waited").await;
    assert_eq!(messages(&after), vec![second], "the second result waited");
    no_activity(s, "both activities are done").await;
}
