//! Activities: the queue, completion, abandon, park and leases.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::RuntimeStatus;
use crate::store::{ActivityTask, Store, TurnCommit};

use super::support::*;
/// Activities are fetched first in, first out, each leased once.
pub async fn activity_fifo(store: Arc<dyn Store>) {
    let s = &*store;
    let mut tasks = queue_activities(s, "fan", &["A", "B", "C"]).await;
    ok(s.enqueue(event("fan", "More", t(1))).await, "enqueue");
    let execution_id = tasks[0].execution_id.clone();
    let d = ActivityTask {
        instance_id: "fan".into(),
        execution_id,
        task_id: 3,
        name: "D".into(),
        input: "null".into(),
    };
    commit_next(s, t(1), "fan", "a second turn", |item| TurnCommit {
        activities: vec![d.clone()],
        ..plain_commit(item, RuntimeStatus::Running, t(1))
    })
    .await;
    tasks.push(d);
    let mut locks = BTreeSet::new();
    for task in &tasks {
        let item = fetch_activity(s, LONG_LEASE, "fetching in order").await;
        assert_eq!(
            &item.task, task,
            "activities are fetched in the order they were queued"
        );
        assert_eq!(item.dequeue_count, 1);
        assert!(
            locks.insert(item.lock.0.clone()),
            "every activity lease has its own token"
        );
    }
    no_activity(s, "all activities are leased").await;
}

/// Activities are fetched many at a time in the order they were queued, at most as many as
/// asked for, each with its own token and delivered once; every one completes on its own.
pub async fn fetch_activities(store: Arc<dyn Store>) {
    let s = &*store;
    let tasks = queue_activities(s, "batch", &["A", "B", "C", "D", "E"]).await;
    let first = ok(s.fetch_activities(LONG_LEASE, 3).await, "fetch_activities");
    let rest = ok(s.fetch_activities(LONG_LEASE, 10).await, "fetch_activities");
    let fetched: Vec<_> = first.iter().chain(&rest).map(|i| i.task.clone()).collect();
    assert_eq!(first.len(), 3, "at most as many as asked for");
    assert_eq!(fetched, tasks, "in the order they were queued, each once");
    let tokens: BTreeSet<_> = first
        .iter()
        .chain(&rest)
        .map(|i| i.lock.0.clone())
        .collect();
    assert_eq!(
        tokens.len(),
        tasks.len(),
        "every activity has its own token"
    );
    assert!(
        first.iter().chain(&rest).all(|i| i.dequeue_count == 1),
        "each delivered once"
    );
    assert!(
        ok(s.fetch_activities(LONG_LEASE, 10).await, "fetch_activities").is_empty(),
        "all are leased"
    );
    for item in first.iter().chain(&rest) {
        ok(
            s.complete_activity(item, task_completed(&item.task, "0", t(1)))
                .await,
            "completing a batch-fetched activity",
        );
    }
    let turn = item_for(s, t(1), "batch", "the results").await;
    assert_eq!(
        turn.messages.len(),
        tasks.len(),
        "every result is delivered"
    );
}

/// Completing an activity removes it and delivers its response; a second completion with the
/// same token gets `LeaseLost` and delivers nothing.
pub async fn complete_activity(store: Arc<dyn Store>) {
    let s = &*store;
    let tasks = queue_activities(s, "worker", &["Work"]).await;
    let item = fetch_activity(s, LONG_LEASE, "the activity").await;
    let response = task_completed(&tasks[0], "\"done\"", t(2));
    ok(
        s.complete_activity(&item, response.clone()).await,
        "complete_activity",
    );
    no_activity(s, "a completed activity is removed").await;
    let turn = item_for(s, t(2), "worker", "the activity's response").await;
    assert_eq!(
        messages(&turn),
        vec![response.clone()],
        "the response is delivered"
    );
    assert_lease_lost(
        s.complete_activity(&item, response).await,
        "completing an activity twice",
    );
    ok(
        s.commit_turn(&turn, plain_commit(&turn, RuntimeStatus::Running, t(2)))
            .await,
        "commit",
    );
    no_item(s, t(2), "a refused completion delivers nothing").await;
}

/// An abandoned activity comes back after `retry_after` (not before) with dequeue_count 2,
/// other activities being fetched meanwhile; the abandoned token is stale.
pub async fn abandon_activity(store: Arc<dyn Store>) {
    let s = &*store;
    let tasks = queue_activities(s, "retry", &["First", "Second"]).await;
    let first = fetch_activity(s, LONG_LEASE, "the first activity").await;
    assert_eq!(first.task, tasks[0]);
    let started = Instant::now();
    ok(
        s.abandon_activity(&first, RETRY_AFTER).await,
        "abandon_activity",
    );
    let second = fetch_activity(s, LONG_LEASE, "the other activity meanwhile").await;
    assert_eq!(
        second.task, tasks[1],
        "the other activity is fetched meanwhile"
    );
    no_activity(
        s,
        "an abandoned activity must not come back before retry_after",
    )
    .await;
    let again = poll_activity(s, "an abandoned activity must come back").await;
    let waited = started.elapsed();
    assert!(
        waited + Duration::from_millis(5) >= RETRY_AFTER,
        "the abandoned activity came back after {waited:?}, before retry_after ({RETRY_AFTER:?})"
    );
    assert_eq!(again.task, tasks[0]);
    assert_eq!(again.dequeue_count, 2, "dequeue_count after one abandon");
    assert_lease_lost(
        s.complete_activity(&first, task_completed(&tasks[0], "1", t(3)))
            .await,
        "completing an abandoned activity",
    );
    assert_lease_lost(
        s.abandon_activity(&first, Duration::ZERO).await,
        "abandoning an abandoned activity",
    );
    ok(
        s.complete_activity(&again, task_completed(&tasks[0], "2", t(3)))
            .await,
        "complete the retried activity",
    );
    let turn = item_for(s, t(3), "retry", "the response").await;
    assert_eq!(
        messages(&turn),
        vec![task_completed(&tasks[0], "2", t(3))],
        "only the valid completion is delivered"
    );
}

/// A parked activity is moved to `parked()` with the error and is not fetched again.
pub async fn park_activity(store: Arc<dyn Store>) {
    let s = &*store;
    queue_activities(s, "crasher", &["Crash"]).await;
    let item = fetch_activity(s, LONG_LEASE, "the activity").await;
    let error = "parked after 11 deliveries\nwithout completing";
    ok(s.park_activity(&item, error, t(9)).await, "park_activity");
    let parked = parked_for(s, "crasher").await;
    assert_eq!(parked.len(), 1, "one parked entry: {parked:?}");
    assert_eq!(parked[0].error, error);
    assert_eq!(parked[0].parked_at, t(9));
    assert!(
        !parked[0].message.is_empty(),
        "the parked entry describes the activity"
    );
    no_activity(s, "a parked activity is not fetched").await;
    assert_lease_lost(
        s.park_activity(&item, error, t(9)).await,
        "parking an activity twice",
    );
    assert_lease_lost(
        s.complete_activity(&item, task_completed(&item.task, "1", t(9)))
            .await,
        "completing a parked activity",
    );
    assert!(
        ok(s.is_idle(t(9)).await, "is_idle"),
        "nothing left after parking"
    );
}

/// An activity whose lease expires is fetched again with dequeue_count 2; the old token's
/// complete, abandon and park get `LeaseLost` and deliver nothing.
pub async fn activity_lease_expiry(store: Arc<dyn Store>) {
    let s = &*store;
    let tasks = queue_activities(s, "slow", &["Slow"]).await;
    let old = fetch_activity(s, SHORT_LEASE, "the activity").await;
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    let item = fetch_activity(s, LONG_LEASE, "the activity after its lease expired").await;
    assert_eq!(item.task, tasks[0]);
    assert_eq!(item.dequeue_count, 2);
    assert_ne!(item.lock, old.lock, "the new lease has a new token");
    assert_lease_lost(
        s.complete_activity(&old, task_completed(&tasks[0], "\"stale\"", t(1)))
            .await,
        "completing with an expired lease",
    );
    assert_lease_lost(
        s.abandon_activity(&old, Duration::ZERO).await,
        "abandoning with an expired lease",
    );
    assert_lease_lost(
        s.park_activity(&old, "stale", t(1)).await,
        "parking with an expired lease",
    );
    assert!(
        parked_for(s, "slow").await.is_empty(),
        "a refused park parks nothing"
    );
    no_item(s, t(1), "a refused completion delivers nothing").await;
    no_activity(s, "the activity is leased by its new holder").await;
    let fresh = task_completed(&tasks[0], "\"fresh\"", t(1));
    ok(
        s.complete_activity(&item, fresh.clone()).await,
        "the new holder completes",
    );
    let turn = item_for(s, t(1), "slow", "the response").await;
    assert_eq!(messages(&turn), vec![fresh]);
}

/// A renewed activity lease runs `lease` from the renewal: past its original expiry the
/// activity is not fetched again, past the renewed one it is (dequeue_count 2). The stale
/// token's renewal and completion then get `LeaseLost`; the new holder renews and completes,
/// and its response is delivered; renewing a completed activity gets `LeaseLost`.
pub async fn renew_activity_lease(store: Arc<dyn Store>) {
    let s = &*store;
    let tasks = queue_activities(s, "long", &["Long", "Other"]).await;
    let old = fetch_activity(s, SHORT_LEASE, "the activity").await;
    assert_eq!(old.task, tasks[0]);
    let other = fetch_activity(s, LONG_LEASE, "the other activity").await;
    let renewed = Instant::now();
    ok(
        s.renew_activity_lease(&old, RENEWED_LEASE).await,
        "renew_activity_lease",
    );
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    no_activity(
        s,
        "a renewed lease must hold past the end of the lease it renewed",
    )
    .await;

    let item = poll_activity(s, "the activity once its renewed lease ended").await;
    let waited = renewed.elapsed();
    assert!(
        waited + CLOCK_SLACK >= RENEWED_LEASE,
        "the activity was fetched again {waited:?} after its lease was renewed for \
         {RENEWED_LEASE:?}"
    );
    assert_eq!(item.task, tasks[0]);
    assert_eq!(item.dequeue_count, 2, "fetched a second time");
    assert_ne!(item.lock, old.lock, "the new lease has a new token");
    assert_lease_lost(
        s.renew_activity_lease(&old, LONG_LEASE).await,
        "renewing a lease that was taken over",
    );
    assert_lease_lost(
        s.complete_activity(&old, task_completed(&tasks[0], "\"stale\"", t(1)))
            .await,
        "completing with a lease that was taken over",
    );
    ok(
        s.renew_activity_lease(&item, LONG_LEASE).await,
        "the new holder renews its lease",
    );
    no_activity(s, "the new holder's lease holds").await;
    let fresh = task_completed(&tasks[0], "\"fresh\"", t(1));
    ok(
        s.complete_activity(&item, fresh.clone()).await,
        "the new holder completes after renewing",
    );
    assert_lease_lost(
        s.renew_activity_lease(&item, LONG_LEASE).await,
        "renewing a completed activity's lease",
    );
    let turn = item_for(s, t(1), "long", "the response").await;
    assert_eq!(messages(&turn), vec![fresh], "only the new holder's result");
    ok(
        s.renew_activity_lease(&other, LONG_LEASE).await,
        "renewing another activity's lease is unaffected",
    );
}
