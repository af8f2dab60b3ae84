//! Instance creation, enqueueing, and entities created by their first message.

use std::sync::Arc;

use chrono::TimeDelta;

use crate::history::ParentInstance;
use crate::store::{ActivityTask, HistoryWrite, Store, StoreError, new_entity_status};
use crate::{EntityId, RuntimeStatus};

use super::support::*;
/// A created instance is Pending with its name, input, execution, parent and times; its start
/// message is fetched with the status; an unknown id has no status.
pub async fn create_instance(store: Arc<dyn Store>) {
    let s = &*store;
    assert!(
        ok(s.instance("missing").await, "instance").is_none(),
        "an unknown id must have no status"
    );
    let mut new = new_instance("order-1", t(0));
    new.parent = Some(ParentInstance {
        name: "ParentFlow".into(),
        instance_id: "parent-1".into(),
        execution_id: "parent-1#exec".into(),
        task_scheduled_id: 7,
    });
    ok(s.create_instance(new.clone()).await, "create_instance");

    let status = status_of(s, "order-1", "after create_instance").await;
    assert_eq!(
        status,
        new.initial_status(),
        "a created instance's status is `NewInstance::initial_status` (Pending, input, name, \
         execution, parent, created_at = last_updated_at, no history)"
    );
    assert_no_history(s, "order-1", "a created instance").await;

    let item = item_for(s, t(0), "order-1", "fetching a created instance").await;
    assert_eq!(
        item.instance,
        new.initial_status(),
        "the work item's instance status"
    );
    assert_eq!(item.history_len, 0, "a new instance's history_len");
    assert_eq!(item.dequeue_count, 1, "a first fetch has dequeue_count 1");
    assert_eq!(
        messages(&item),
        vec![new.start_message()],
        "a created instance's only message is its `NewInstance::start_message`"
    );
    no_item(s, t(0), "the only instance is leased").await;
}

/// Creating an id that is Pending, Running, Suspended or ContinuedAsNew fails with
/// `InstanceAlreadyExists` and changes nothing.
pub async fn create_existing_instance(store: Arc<dyn Store>) {
    let s = &*store;
    let mut existing = Vec::new();
    for runtime_status in [
        RuntimeStatus::Running,
        RuntimeStatus::Suspended,
        RuntimeStatus::ContinuedAsNew,
        RuntimeStatus::Pending,
    ] {
        let id = format!("dup-{runtime_status}");
        let status = instance_with_status(s, &id, t(0), runtime_status).await;
        existing.push((id, status));
    }
    for (id, before) in &existing {
        let mut again = new_instance(id, t(10));
        again.input = json("second");
        again.execution_id = format!("{id}#exec-2");
        match s.create_instance(again).await {
            Err(StoreError::InstanceAlreadyExists(named)) => {
                assert_eq!(&named, id, "InstanceAlreadyExists names the instance")
            }
            other => panic!(
                "creating `{id}` while it is {}: expected Err(InstanceAlreadyExists), got \
                 {other:?}",
                before.runtime_status
            ),
        }
        assert_eq!(
            &status_of(s, id, "after a refused create").await,
            before,
            "a refused create must leave the instance as it was"
        );
    }
    let item = item_for(s, t(10), "dup-Pending", "the pending instance").await;
    assert_eq!(
        item.messages.len(),
        1,
        "a refused create must not queue a second start message: {:?}",
        messages(&item)
    );
    no_item(s, t(10), "nothing else is queued").await;
}

/// `replace_running` replaces a pending or running instance: its queued messages are gone, the
/// old lease is invalid (its commit gets `LeaseLost` and applies nothing), and the new instance
/// is fetchable at once.
pub async fn create_replace_running(store: Arc<dyn Store>) {
    let s = &*store;
    ok(
        s.create_instance(new_instance("job", t(0))).await,
        "create_instance",
    );
    ok(s.enqueue(event("job", "Old", t(1))).await, "enqueue");
    let old = item_for(s, t(1), "job", "the first instance").await;
    assert_eq!(
        old.messages.len(),
        2,
        "start and event are fetched together"
    );

    let mut replacement = new_instance("job", t(5));
    replacement.input = json("replacement");
    replacement.execution_id = "job#exec-2".into();
    replacement.replace_running = true;
    ok(
        s.create_instance(replacement.clone()).await,
        "create_instance with replace_running on a leased instance",
    );
    assert_eq!(
        status_of(s, "job", "after replacing").await,
        replacement.initial_status(),
        "the replacement's status is its initial status"
    );

    let mut stale = plain_commit(&old, RuntimeStatus::Completed, t(6));
    stale.history = HistoryWrite::Append(first_turn_history(&old.messages[0].message, t(6)));
    stale.activities.push(ActivityTask {
        instance_id: "job".into(),
        execution_id: "job#exec-1".into(),
        task_id: 0,
        name: "Stale".into(),
        input: "null".into(),
    });
    assert_lease_lost(
        s.commit_turn(&old, stale).await,
        "committing the replaced instance's old work item",
    );
    assert_eq!(
        status_of(s, "job", "after the stale commit").await,
        replacement.initial_status(),
        "a refused commit must not change the status"
    );
    assert_no_history(s, "job", "after the stale commit").await;
    no_activity(s, "a refused commit must not queue activities").await;

    let item = item_for(s, t(5), "job", "the replacement").await;
    assert_eq!(
        messages(&item),
        vec![replacement.start_message()],
        "the replaced instance's messages are gone; only the replacement's start remains"
    );
    assert_eq!(
        item.history_len, 0,
        "the replacement starts with no history"
    );
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(5)))
            .await,
        "commit the replacement",
    );

    // A scheduled, not yet visible start is replaced too.
    let mut scheduled = new_instance("later", t(0));
    scheduled.start_at = Some(t(3600));
    ok(s.create_instance(scheduled).await, "create_instance");
    let mut now = new_instance("later", t(1));
    now.replace_running = true;
    now.execution_id = "later#exec-2".into();
    ok(
        s.create_instance(now.clone()).await,
        "replace a scheduled instance",
    );
    let item = item_for(s, t(1), "later", "the replacement of a scheduled instance").await;
    assert_eq!(
        messages(&item),
        vec![now.start_message()],
        "only the new start is queued"
    );
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(1)))
            .await,
        "commit",
    );
    no_item(
        s,
        t(7200),
        "the replaced scheduled start must not be delivered",
    )
    .await;
}

/// A Completed, Failed or Terminated instance may be created again: the new instance starts
/// from scratch (fresh status, empty history, the old instance's queued messages gone).
pub async fn recreate_terminal_instance(store: Arc<dyn Store>) {
    let s = &*store;
    for runtime_status in [
        RuntimeStatus::Completed,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
    ] {
        let id = format!("again-{runtime_status}");
        instance_with_status(s, &id, t(0), runtime_status).await;
        ok(
            s.enqueue(event(&id, "Late", t(1))).await,
            "enqueue to a finished instance",
        );

        let mut again = new_instance(&id, t(10));
        again.input = json("second run");
        again.execution_id = format!("{id}#exec-2");
        ok(
            s.create_instance(again.clone()).await,
            &format!("re-creating an instance that is {runtime_status}"),
        );
        assert_eq!(
            status_of(s, &id, "after re-creating").await,
            again.initial_status(),
            "a re-created {runtime_status} instance has the new instance's initial status"
        );
        assert_no_history(s, &id, "a re-created instance").await;
        let item = item_for(s, t(10), &id, "the re-created instance").await;
        assert_eq!(
            messages(&item),
            vec![again.start_message()],
            "a re-created {runtime_status} instance's old messages are gone"
        );
        assert_eq!(item.history_len, 0, "a re-created instance's history_len");
        ok(
            s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(10)))
                .await,
            "commit",
        );
    }
}

/// A start scheduled with `start_at` is not fetched before `now` reaches it (and is at exactly
/// that instant); `Fetched::Empty` reports the earliest future visibility.
pub async fn scheduled_start(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(
        no_item(s, t(0), "an empty store").await,
        None,
        "an empty store reports no next_visible"
    );
    let mut later = new_instance("later", t(0));
    later.start_at = Some(t(600));
    let mut sooner = new_instance("sooner", t(0));
    sooner.start_at = Some(t(300));
    ok(s.create_instance(later.clone()).await, "create_instance");
    ok(s.create_instance(sooner.clone()).await, "create_instance");
    assert_eq!(
        status_of(s, "sooner", "a scheduled instance")
            .await
            .runtime_status,
        RuntimeStatus::Pending
    );

    assert_eq!(
        no_item(s, t(0), "before any scheduled start").await,
        Some(t(300)),
        "next_visible is the earliest scheduled start"
    );
    assert_eq!(
        no_item(
            s,
            t(300) - TimeDelta::milliseconds(1),
            "1 ms before the start"
        )
        .await,
        Some(t(300)),
        "next_visible is the earliest scheduled start"
    );
    let item = item_for(s, t(300), "sooner", "at the scheduled start").await;
    assert_eq!(
        messages(&item),
        vec![sooner.start_message()],
        "the scheduled start message (with its visible_at)"
    );
    assert_eq!(
        no_item(s, t(300), "after the first start").await,
        Some(t(600)),
        "next_visible moves on to the next scheduled start"
    );
    let item = item_for(s, t(900), "later", "after the second start").await;
    assert_eq!(messages(&item), vec![later.start_message()]);
}

/// `next_visible_for` tells when an instance's next hidden message becomes visible: the
/// earliest visible time after `now` among its messages (a scheduled start, a message queued
/// for later), never another instance's; `None` for an instance whose messages are all
/// visible, for an unknown id, and once none is hidden. A store that does not tell (the
/// trait's default, `None` throughout) passes: hosts then look again later.
pub async fn next_visible_for(store: Arc<dyn Store>) {
    let s = &*store;
    let mut later = new_instance("later", t(0));
    later.start_at = Some(t(600));
    ok(s.create_instance(later).await, "create_instance");
    let answer = ok(s.next_visible_for("later", t(0)).await, "next_visible_for");
    if answer.is_none() {
        // The trait's default: this store does not tell.
        return;
    }
    assert_eq!(
        answer,
        Some(t(600)),
        "a scheduled instance's next visible message is its start"
    );
    ok(
        s.create_instance(new_instance("now", t(0))).await,
        "create_instance",
    );
    ok(s.enqueue(event("now", "Ping", t(0))).await, "enqueue");
    let mut sooner = new_instance("sooner", t(0));
    sooner.start_at = Some(t(100));
    ok(s.create_instance(sooner).await, "create_instance");
    let mut early = event("later", "Early", t(0));
    early.visible_at = Some(t(300));
    ok(s.enqueue(early).await, "enqueue");

    for (id, now, expected, what) in [
        (
            "now",
            t(0),
            None,
            "an instance whose messages are all visible",
        ),
        ("missing", t(0), None, "an unknown id"),
        ("sooner", t(0), Some(t(100)), "another scheduled instance"),
        (
            "later",
            t(0),
            Some(t(300)),
            "a message queued for before the start",
        ),
        (
            "later",
            t(300),
            Some(t(600)),
            "the start, once the earlier message is visible",
        ),
        (
            "later",
            t(600) - TimeDelta::milliseconds(1),
            Some(t(600)),
            "the start, 1 ms before it",
        ),
        ("later", t(600), None, "nothing, once everything is visible"),
    ] {
        assert_eq!(
            ok(s.next_visible_for(id, now).await, "next_visible_for"),
            expected,
            "next_visible_for({id:?}) at {now}: {what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Enqueue and entities.

/// Enqueueing to an id that does not exist (and is not an entity) fails with
/// `InstanceNotFound` and creates nothing.
pub async fn enqueue_missing_instance(store: Arc<dyn Store>) {
    let s = &*store;
    match s.enqueue(event("ghost", "Boo", t(0))).await {
        Err(StoreError::InstanceNotFound(id)) => {
            assert_eq!(id, "ghost", "InstanceNotFound names the instance")
        }
        other => {
            panic!("enqueue to a missing instance: expected Err(InstanceNotFound), got {other:?}")
        }
    }
    assert!(
        ok(s.instance("ghost").await, "instance").is_none(),
        "a refused enqueue must not create the instance"
    );
    assert_eq!(no_item(s, t(0), "after a refused enqueue").await, None);
}

/// A message for an entity id (`@name@key`) creates the entity's instance on first use:
/// Running, named after the entity, created at the message's time. Later messages leave the
/// entity's status alone.
pub async fn enqueue_creates_entity(store: Arc<dyn Store>) {
    let s = &*store;
    let id = EntityId::new("Counter", "Game1").to_string();
    let first = signal_entity(&id, "add", t(5));
    ok(s.enqueue(first.clone()).await, "enqueue to a new entity");
    let status = status_of(s, &id, "after the first entity message").await;
    assert_eq!(
        status,
        new_entity_status(&id, t(5)),
        "an entity created by a message has `new_entity_status(id, <the message's timestamp>)`"
    );
    assert_eq!(status.name, "counter");

    let item = item_for(s, t(5), &id, "the entity").await;
    assert_eq!(
        item.instance, status,
        "the entity's work item carries its status"
    );
    assert_eq!(messages(&item), vec![first]);
    let mut commit = plain_commit(&item, RuntimeStatus::Running, t(6));
    commit.status.output = Some("{\"state\":1}".into());
    let expected = commit.status.clone();
    ok(
        s.commit_turn(&item, commit).await,
        "commit the entity's batch",
    );

    let second = signal_entity(&id, "add", t(7));
    ok(
        s.enqueue(second.clone()).await,
        "enqueue to an existing entity",
    );
    assert_eq!(
        status_of(s, &id, "after a second message").await,
        expected,
        "a message to an existing entity must not reset its status"
    );
    let item = item_for(s, t(7), &id, "the entity's second batch").await;
    assert_eq!(messages(&item), vec![second]);
}
