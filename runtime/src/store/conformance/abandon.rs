//! Abandoning and parking orchestration work items.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::RuntimeStatus;
use crate::store::Store;

use super::support::*;
/// Abandoned messages come back after `retry_after` (real time), not before, with a growing
/// dequeue_count; the abandoned token is then stale.
pub async fn abandon_orchestration(store: Arc<dyn Store>) {
    let s = &*store;
    let new = new_instance("flaky", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    ok(s.enqueue(event("flaky", "E", t(1))).await, "enqueue");
    let first = item_for(s, t(1), "flaky", "the first attempt").await;
    let started = Instant::now();
    ok(
        s.abandon_orchestration(&first, RETRY_AFTER).await,
        "abandon_orchestration",
    );
    no_item(
        s,
        t(1),
        "abandoned messages must not come back before retry_after",
    )
    .await;
    let second = poll_item(
        s,
        t(1),
        "abandoned messages must come back after retry_after",
    )
    .await;
    let waited = started.elapsed();
    assert!(
        waited + Duration::from_millis(5) >= RETRY_AFTER,
        "abandoned messages came back after {waited:?}, before retry_after ({RETRY_AFTER:?})"
    );
    assert_eq!(second.instance_id, "flaky");
    assert_eq!(
        messages(&second),
        messages(&first),
        "the same messages come back"
    );
    assert_eq!(second.dequeue_count, 2, "dequeue_count after one abandon");
    assert_lease_lost(
        s.commit_turn(&first, plain_commit(&first, RuntimeStatus::Running, t(1)))
            .await,
        "committing an abandoned work item",
    );

    ok(
        s.abandon_orchestration(&second, Duration::from_millis(20))
            .await,
        "abandon again",
    );
    let third = poll_item(s, t(1), "abandoned twice").await;
    assert_eq!(third.dequeue_count, 3, "dequeue_count after two abandons");
    ok(
        s.commit_turn(&third, plain_commit(&third, RuntimeStatus::Running, t(1)))
            .await,
        "commit",
    );
    no_item(s, t(1), "everything consumed").await;
}

/// Parking moves the work item's messages to `parked()` with the error, releases the lease and
/// leaves nothing to fetch; later messages are fetched normally.
pub async fn park_orchestration(store: Arc<dyn Store>) {
    let s = &*store;
    ok(
        s.create_instance(new_instance("poison", t(0))).await,
        "create_instance",
    );
    ok(s.enqueue(event("poison", "Bad", t(1))).await, "enqueue");
    let item = item_for(s, t(1), "poison", "the poison").await;
    let error = "parked after 10 attempts: boom\n\"quoted\" ünïcødé";
    ok(
        s.park_orchestration(&item, error, t(7)).await,
        "park_orchestration",
    );
    let parked = parked_for(s, "poison").await;
    assert_eq!(
        parked.len(),
        item.messages.len(),
        "one parked entry per message: {parked:?}"
    );
    for p in &parked {
        assert_eq!(p.error, error, "the parked entry carries the error");
        assert_eq!(p.parked_at, t(7), "the parked entry carries the time");
        assert!(
            !p.message.is_empty(),
            "the parked entry describes the message"
        );
    }
    no_item(s, t(7), "parked messages are not fetched").await;
    assert_lease_lost(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(7)))
            .await,
        "committing a parked work item",
    );

    ok(s.enqueue(event("poison", "Good", t(8))).await, "enqueue");
    let next = item_for(s, t(8), "poison", "parking released the lease").await;
    assert_eq!(messages(&next), vec![event("poison", "Good", t(8))]);
    assert_eq!(next.dequeue_count, 1);
    ok(
        s.commit_turn(&next, plain_commit(&next, RuntimeStatus::Running, t(8)))
            .await,
        "commit",
    );
    assert!(
        ok(s.is_idle(t(8)).await, "is_idle"),
        "nothing left after parking"
    );
}
