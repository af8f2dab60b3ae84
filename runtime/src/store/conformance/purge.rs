//! Purging instances and removing entities.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::history::{EventKind, HistoryEvent};
use crate::store::{HistoryWrite, Store, StoreError, TurnCommit, new_entity_status};
use crate::{EntityId, InstanceQuery, PurgeFilter, RuntimeStatus};

use super::support::*;
/// Purging removes every trace of a finished instance (status, history, queued messages,
/// queued activities, parked messages); a running or missing one is not purged; a purged id can
/// be created afresh.
pub async fn purge(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "alive", t(0), RuntimeStatus::Running).await;
    let alive_history = history_of(s, "alive").await;

    // `gone`: a queued activity, a parked message, a history; terminated; a late message.
    queue_activities(s, "gone", &["Never"]).await;
    ok(s.enqueue(event("gone", "Poison", t(1))).await, "enqueue");
    let poison = item_for(s, t(1), "gone", "the poison").await;
    ok(s.park_orchestration(&poison, "poison", t(1)).await, "park");
    ok(s.enqueue(event("gone", "Terminate", t(2))).await, "enqueue");
    commit_next(s, t(2), "gone", "terminate", |item| TurnCommit {
        history: HistoryWrite::Append(vec![HistoryEvent::new(
            t(2),
            EventKind::ExecutionTerminated { reason: None },
        )]),
        ..plain_commit(item, RuntimeStatus::Terminated, t(2))
    })
    .await;
    ok(s.enqueue(event("gone", "Late", t(3))).await, "enqueue");
    assert!(!parked_for(s, "gone").await.is_empty());

    assert!(
        !ok(s.purge("alive").await, "purge"),
        "a running instance is not purged"
    );
    assert!(
        !ok(s.purge("missing").await, "purge"),
        "a missing instance is not purged"
    );
    assert!(
        ok(s.purge("gone").await, "purge"),
        "a terminated instance is purged"
    );

    assert!(
        ok(s.instance("gone").await, "instance").is_none(),
        "a purged instance has no status"
    );
    assert_no_history(s, "gone", "a purged instance").await;
    no_item(s, t(3), "a purged instance's messages are gone").await;
    no_activity(s, "a purged instance's queued activities are gone").await;
    assert!(
        parked_for(s, "gone").await.is_empty(),
        "a purged instance's parked messages are gone"
    );
    assert!(!ok(s.purge("gone").await, "purge"), "purging twice");
    match s.enqueue(event("gone", "AfterPurge", t(4))).await {
        Err(StoreError::InstanceNotFound(_)) => {}
        other => panic!("enqueue to a purged instance: expected InstanceNotFound, got {other:?}"),
    }
    assert_eq!(
        query_ids(s, InstanceQuery::default(), "after purging").await,
        vec!["alive"]
    );

    assert_eq!(
        status_of(s, "alive", "the running instance")
            .await
            .runtime_status,
        RuntimeStatus::Running
    );
    assert_eq!(history_of(s, "alive").await, alive_history, "untouched");

    let again = new_instance("gone", t(5));
    ok(
        s.create_instance(again.clone()).await,
        "re-create a purged id",
    );
    let item = item_for(s, t(5), "gone", "the re-created instance").await;
    assert_eq!(messages(&item), vec![again.start_message()]);
    assert_eq!(item.history_len, 0);
}

/// `purge_where` purges the finished instances matching its filter and returns how many;
/// unfinished instances and entities are untouched.
pub async fn purge_where(store: Arc<dyn Store>) {
    let s = &*store;
    let all = [
        ("c1", 10, RuntimeStatus::Completed),
        ("r1", 15, RuntimeStatus::Running),
        ("c2", 20, RuntimeStatus::Completed),
        ("f1", 30, RuntimeStatus::Failed),
        ("s1", 35, RuntimeStatus::Suspended),
        ("x1", 40, RuntimeStatus::Terminated),
        ("n1", 45, RuntimeStatus::ContinuedAsNew),
        ("p1", 25, RuntimeStatus::Pending),
    ];
    for (id, secs, runtime_status) in all {
        instance_with_status(s, id, t(secs), runtime_status).await;
    }
    let entity = EntityId::new("e", "1").to_string();
    ok(
        s.enqueue(signal_entity(&entity, "op", t(5))).await,
        "enqueue",
    );

    let steps: [(&str, PurgeFilter, u64, &[&str]); 4] = [
        (
            "Completed from 15 s",
            PurgeFilter {
                created_from: Some(t(15)),
                runtime_status: vec![RuntimeStatus::Completed],
                ..Default::default()
            },
            1,
            &["c2"],
        ),
        (
            "anything finished up to 30 s",
            PurgeFilter {
                created_to: Some(t(30)),
                ..Default::default()
            },
            2,
            &["c1", "f1"],
        ),
        ("everything finished", PurgeFilter::default(), 1, &["x1"]),
        ("everything finished, again", PurgeFilter::default(), 0, &[]),
    ];
    let mut purged = BTreeSet::new();
    for (what, filter, count, ids) in steps {
        assert_eq!(
            ok(s.purge_where(&filter).await, "purge_where"),
            count,
            "purge_where({what}) returns how many it purged"
        );
        purged.extend(ids.iter().copied());
        for (id, _, _) in all {
            assert_eq!(
                ok(s.instance(id).await, "instance").is_none(),
                purged.contains(id),
                "after purge_where({what}): `{id}` purged = {}",
                purged.contains(id)
            );
        }
    }
    assert!(
        ok(s.instance(&entity).await, "instance").is_some(),
        "purge_where never purges entities"
    );
}

/// `remove_entity` removes an entity only when it has no queued messages (visible or not), is
/// not leased, and was last updated at the given time; never an orchestration.
pub async fn remove_entity(store: Arc<dyn Store>) {
    let s = &*store;
    let plain = instance_with_status(s, "plain", t(0), RuntimeStatus::Completed).await;
    assert!(
        !ok(
            s.remove_entity("plain", plain.last_updated_at).await,
            "remove_entity"
        ),
        "remove_entity never removes an orchestration"
    );
    assert!(ok(s.instance("plain").await, "instance").is_some());
    assert!(
        !ok(s.remove_entity("@missing@x", t(0)).await, "remove_entity"),
        "a missing entity"
    );
    let id = EntityId::new("cart", "u1").to_string();
    ok(s.enqueue(signal_entity(&id, "add", t(1))).await, "enqueue");
    assert!(
        !ok(s.remove_entity(&id, t(1)).await, "remove_entity"),
        "an entity with a queued message is not removed"
    );
    let item = item_for(s, t(1), &id, "the entity").await;
    assert!(
        !ok(s.remove_entity(&id, t(1)).await, "remove_entity"),
        "a leased entity is not removed"
    );
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(2)))
            .await,
        "commit",
    );
    assert!(
        !ok(s.remove_entity(&id, t(1)).await, "remove_entity"),
        "an entity updated since is not removed"
    );
    let mut scheduled = signal_entity(&id, "later", t(3));
    scheduled.visible_at = Some(t(100));
    ok(s.enqueue(scheduled).await, "enqueue a scheduled signal");
    assert!(
        !ok(s.remove_entity(&id, t(2)).await, "remove_entity"),
        "an entity with a scheduled (not yet visible) message is not removed"
    );
    let item = item_for(s, t(100), &id, "the scheduled signal").await;
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(100)))
            .await,
        "commit",
    );
    assert!(
        ok(s.remove_entity(&id, t(100)).await, "remove_entity"),
        "an idle entity last updated at the given time is removed"
    );
    assert!(ok(s.instance(&id).await, "instance").is_none(), "removed");
    assert!(
        !ok(s.remove_entity(&id, t(100)).await, "remove_entity"),
        "removing twice"
    );
    let prefix = InstanceQuery {
        instance_id_prefix: Some("@".into()),
        ..Default::default()
    };
    assert!(query_ids(s, prefix, "entities").await.is_empty());

    ok(
        s.enqueue(signal_entity(&id, "add", t(200))).await,
        "enqueue",
    );
    assert_eq!(
        status_of(s, &id, "a removed entity used again").await,
        new_entity_status(&id, t(200)),
        "a removed entity is created afresh on its next message"
    );
}
