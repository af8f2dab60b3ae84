//! Fetching work items and their leases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::RuntimeStatus;
use crate::store::{
    ActivityTask, HistoryWrite, OrchestrationMessage, OrchestrationWorkItem, Store, TurnCommit,
};

use super::support::*;
/// A fetch leases one instance: while leased it is not fetched again, even when new messages
/// arrive for it; other instances are fetched meanwhile.
pub async fn fetch_leases_one_instance(store: Arc<dyn Store>) {
    let s = &*store;
    ok(
        s.create_instance(new_instance("a", t(0))).await,
        "create_instance",
    );
    ok(
        s.create_instance(new_instance("b", t(0))).await,
        "create_instance",
    );
    let first = next_item(s, t(0), "first fetch").await;
    let second = next_item(s, t(0), "second fetch").await;
    assert_ne!(
        first.instance_id, second.instance_id,
        "a leased instance must not be fetched again"
    );
    assert_ne!(
        first.lock, second.lock,
        "every lease has its own lock token"
    );
    no_item(s, t(0), "both instances are leased").await;

    ok(s.enqueue(event("a", "WhileLeased", t(1))).await, "enqueue");
    no_item(
        s,
        t(1),
        "a message for a leased instance must wait for the lease",
    )
    .await;

    let (a, b) = if first.instance_id == "a" {
        (first, second)
    } else {
        (second, first)
    };
    ok(
        s.commit_turn(&a, plain_commit(&a, RuntimeStatus::Running, t(1)))
            .await,
        "commit a",
    );
    let again = item_for(s, t(1), "a", "after a's lease is released").await;
    assert_eq!(
        messages(&again),
        vec![event("a", "WhileLeased", t(1))],
        "the message that arrived during the lease"
    );
    assert_eq!(again.dequeue_count, 1);
    assert_ne!(again.lock, a.lock, "a new lease has a new lock token");
    ok(
        s.commit_turn(&b, plain_commit(&b, RuntimeStatus::Running, t(1)))
            .await,
        "commit b",
    );
    no_item(s, t(1), "a is leased again, b has nothing").await;
}

/// A work item holds every visible message of its instance in arrival order (sequence numbers
/// increasing), not the ones visible later; `history_len`, `instance` and `dequeue_count` are
/// right.
pub async fn fetch_batches_messages(store: Arc<dyn Store>) {
    let s = &*store;
    let new = new_instance("batch", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let later = timer("batch", &new.execution_id, 0, t(100));
    let mut expected = vec![new.start_message()];
    for (i, name) in ["One", "Two"].into_iter().enumerate() {
        let message = event("batch", name, t(1 + i as i64));
        ok(s.enqueue(message.clone()).await, "enqueue");
        expected.push(message);
    }
    ok(s.enqueue(later.clone()).await, "enqueue a future message");
    let three = OrchestrationMessage {
        execution_id: Some(new.execution_id.clone()),
        ..event("batch", "Three", t(3))
    };
    ok(s.enqueue(three.clone()).await, "enqueue");
    expected.push(three);

    let item = item_for(s, t(10), "batch", "the batch").await;
    assert_eq!(
        messages(&item),
        expected,
        "every visible message, in arrival order, without the future one"
    );
    assert!(
        item.messages.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers increase in arrival order: {:?}",
        seqs(&item)
    );
    assert_eq!(item.history_len, 0);
    assert_eq!(item.dequeue_count, 1);
    assert_eq!(item.instance, new.initial_status());
    let history = first_turn_history(&expected[0], t(10));
    let mut commit = plain_commit(&item, RuntimeStatus::Running, t(10));
    commit.history = HistoryWrite::Append(history.clone());
    ok(s.commit_turn(&item, commit).await, "commit");

    let four = event("batch", "Four", t(11));
    ok(s.enqueue(four.clone()).await, "enqueue");
    let item = item_for(s, t(11), "batch", "the second batch").await;
    assert_eq!(messages(&item), vec![four], "consumed messages are gone");
    assert_eq!(
        item.history_len,
        history.len(),
        "history_len counts the stored events"
    );
    assert_eq!(
        item.instance,
        status_of(s, "batch", "the second batch").await,
        "the work item carries the current status"
    );
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(11)))
            .await,
        "commit",
    );
    assert_eq!(
        no_item(s, t(99), "before the future message").await,
        Some(t(100))
    );
    let item = item_for(s, t(100), "batch", "the future message").await;
    assert_eq!(messages(&item), vec![later]);
}

/// When a lease expires the work is fetched again (dequeue_count 2, new token, with messages
/// that arrived meanwhile); the old token's commit, abandon and park get `LeaseLost` and apply
/// nothing, before and after the new holder commits.
pub async fn lease_expiry(store: Arc<dyn Store>) {
    let s = &*store;
    let new = new_instance("crashy", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let old = next_item_leased(s, t(0), SHORT_LEASE, "the new instance").await;
    assert_eq!(old.dequeue_count, 1);
    ok(
        s.enqueue(event("crashy", "Meanwhile", t(1))).await,
        "enqueue",
    );
    tokio::time::sleep(AFTER_SHORT_LEASE).await;

    let item = item_for(s, t(1), "crashy", "after the lease expired").await;
    assert_eq!(
        item.dequeue_count, 2,
        "a message fetched a second time has dequeue_count 2"
    );
    assert_ne!(item.lock, old.lock, "the new lease has a new lock token");
    assert_eq!(
        messages(&item),
        vec![new.start_message(), event("crashy", "Meanwhile", t(1))],
        "the expired item's messages and the new one"
    );

    let stale = |item: &OrchestrationWorkItem| TurnCommit {
        history: HistoryWrite::Append(first_turn_history(&new.start_message(), t(2))),
        activities: vec![ActivityTask {
            instance_id: "crashy".into(),
            execution_id: new.execution_id.clone(),
            task_id: 0,
            name: "Stale".into(),
            input: "null".into(),
        }],
        messages: vec![event("crashy", "FromStale", t(2))],
        new_instances: vec![new_instance("stale-child", t(2))],
        ..plain_commit(item, RuntimeStatus::Completed, t(2))
    };
    assert_lease_lost(
        s.commit_turn(&old, stale(&old)).await,
        "committing with an expired lease",
    );
    assert_eq!(
        status_of(s, "crashy", "after a stale commit").await,
        new.initial_status(),
        "a refused commit must not change the status"
    );
    assert_no_history(s, "crashy", "after a stale commit").await;
    no_activity(s, "a refused commit must not queue activities").await;
    assert!(
        ok(s.instance("stale-child").await, "instance").is_none(),
        "a refused commit must not create instances"
    );
    assert_lease_lost(
        s.abandon_orchestration(&old, Duration::ZERO).await,
        "abandoning with an expired lease",
    );
    assert_lease_lost(
        s.park_orchestration(&old, "stale", t(2)).await,
        "parking with an expired lease",
    );
    assert!(
        ok(s.parked().await, "parked").is_empty(),
        "a refused park must park nothing"
    );
    no_item(
        s,
        t(2),
        "the new lease still holds after refused stale calls",
    )
    .await;

    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(2)))
            .await,
        "the new holder commits",
    );
    assert_lease_lost(
        s.commit_turn(&old, stale(&old)).await,
        "committing with an expired lease after the new holder committed",
    );
    assert_eq!(
        status_of(s, "crashy", "after the commit")
            .await
            .runtime_status,
        RuntimeStatus::Running
    );
    no_activity(s, "no stale activity").await;
    no_item(s, t(2), "everything was consumed by the new holder").await;
}

/// A renewed lease runs `lease` from the renewal: past its original expiry the instance is not
/// fetched again, past the renewed one it is (dequeue_count 2, a new token). The stale
/// token's renewal then gets `LeaseLost`; the new holder renews and commits, after which its
/// token's renewal gets `LeaseLost` too.
pub async fn renew_orchestration_lease(store: Arc<dyn Store>) {
    let s = &*store;
    let new = new_instance("held", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let old = next_item_leased(s, t(0), SHORT_LEASE, "the new instance").await;
    let renewed = Instant::now();
    ok(
        s.renew_orchestration_lease(&old, RENEWED_LEASE).await,
        "renew_orchestration_lease",
    );
    tokio::time::sleep(AFTER_SHORT_LEASE).await;
    no_item(
        s,
        t(0),
        "a renewed lease must hold past the end of the lease it renewed",
    )
    .await;

    let item = poll_item(s, t(0), "the instance once its renewed lease ended").await;
    let waited = renewed.elapsed();
    assert!(
        waited + CLOCK_SLACK >= RENEWED_LEASE,
        "the instance was fetched again {waited:?} after its lease was renewed for \
         {RENEWED_LEASE:?}"
    );
    assert_eq!(item.instance_id, "held");
    assert_eq!(item.dequeue_count, 2, "fetched a second time");
    assert_ne!(item.lock, old.lock, "the new lease has a new lock token");
    assert_eq!(messages(&item), vec![new.start_message()]);
    assert_lease_lost(
        s.renew_orchestration_lease(&old, LONG_LEASE).await,
        "renewing a lease that was taken over",
    );
    ok(
        s.renew_orchestration_lease(&item, LONG_LEASE).await,
        "the new holder renews its lease",
    );
    no_item(s, t(0), "the new holder's lease holds").await;
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(1)))
            .await,
        "the new holder commits after renewing",
    );
    assert_eq!(
        status_of(s, "held", "after the commit")
            .await
            .runtime_status,
        RuntimeStatus::Running
    );
    assert_lease_lost(
        s.renew_orchestration_lease(&item, LONG_LEASE).await,
        "renewing a lease that the commit released",
    );
    no_item(s, t(1), "everything was consumed").await;
}

/// Visibility is judged at each fetch's own `now`, which need not grow from call to call
/// (hosts' clocks differ; a clock read just before another's may reach the store after it): a
/// fetch at an earlier `now` neither returns a message that is not yet visible then nor loses
/// it for the next fetch at a later `now`.
pub async fn fetch_with_earlier_now(store: Arc<dyn Store>) {
    let s = &*store;
    let x = instance_with_status(s, "x", t(0), RuntimeStatus::Running).await;
    let wake = timer("x", &x.execution_id, 0, t(10));
    ok(s.enqueue(wake.clone()).await, "enqueue a timer");
    ok(
        s.create_instance(new_instance("y", t(0))).await,
        "create_instance",
    );

    let first = next_item(s, t(10), "a fetch at 10 s").await;
    if first.instance_id == "y" {
        assert_eq!(
            no_item(s, t(5), "a fetch at 5 s, while y is leased").await,
            Some(t(10)),
            "at 5 s, x's timer is not visible yet and is due at 10 s"
        );
        let item = item_for(s, t(10), "x", "a fetch at 10 s again").await;
        assert_eq!(
            messages(&item),
            vec![wake],
            "the timer is still delivered after a fetch at an earlier `now` passed it over"
        );
    } else {
        assert_eq!(first.instance_id, "x");
        assert_eq!(messages(&first), vec![wake]);
        item_for(s, t(5), "y", "a fetch at 5 s").await;
    }
}
