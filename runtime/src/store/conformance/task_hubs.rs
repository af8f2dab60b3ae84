//! Task hubs, idleness and work signals.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::store::{ActivityTask, Store, StoreError, TurnCommit};
use crate::{EntityId, InstanceQuery, PurgeFilter, RuntimeStatus};

use super::support::*;
/// Task hubs of one storage are independent: instances, messages, leases, activities, queries,
/// purges, parked messages and entities of one are invisible to the other, and the same id may
/// live in both.
pub async fn task_hubs(store: Arc<dyn Store>) {
    let main = &*store;
    let other_hub = store.with_task_hub("other");
    let other = &*other_hub;
    assert_eq!(other.task_hub(), "other");
    assert_ne!(main.task_hub(), "other");

    let mut in_main = new_instance("shared-id", t(0));
    in_main.input = json("main");
    let mut in_other = new_instance("shared-id", t(1));
    in_other.input = json("other");
    ok(
        main.create_instance(in_main.clone()).await,
        "create in main",
    );
    ok(
        other.create_instance(in_other.clone()).await,
        "the same id in another hub is not a conflict",
    );
    assert_eq!(
        status_of(main, "shared-id", "main").await,
        in_main.initial_status()
    );
    assert_eq!(
        status_of(other, "shared-id", "other").await,
        in_other.initial_status()
    );

    let main_item = item_for(main, t(1), "shared-id", "main's instance").await;
    assert_eq!(messages(&main_item), vec![in_main.start_message()]);
    let other_item = item_for(
        other,
        t(1),
        "shared-id",
        "a lease in main does not block other",
    )
    .await;
    assert_eq!(messages(&other_item), vec![in_other.start_message()]);

    let task = ActivityTask {
        instance_id: "shared-id".into(),
        execution_id: in_other.execution_id.clone(),
        task_id: 0,
        name: "OtherWork".into(),
        input: "null".into(),
    };
    ok(
        other
            .commit_turn(
                &other_item,
                TurnCommit {
                    activities: vec![task.clone()],
                    ..plain_commit(&other_item, RuntimeStatus::Completed, t(1))
                },
            )
            .await,
        "commit in other",
    );
    assert_eq!(
        status_of(main, "shared-id", "main after other's commit").await,
        in_main.initial_status(),
        "a commit in one hub leaves the other's instance alone"
    );
    no_activity(main, "other's activity is not in main").await;
    let act = fetch_activity(other, LONG_LEASE, "other's activity").await;
    assert_eq!(act.task, task);

    ok(
        main.create_instance(new_instance("only-main", t(2))).await,
        "create",
    );
    match other.enqueue(event("only-main", "E", t(2))).await {
        Err(StoreError::InstanceNotFound(_)) => {}
        r => panic!("enqueue in other to main's instance: expected InstanceNotFound, got {r:?}"),
    }
    assert!(ok(other.instance("only-main").await, "instance").is_none());
    let entity = EntityId::new("hubbed", "k").to_string();
    ok(
        other.enqueue(signal_entity(&entity, "op", t(2))).await,
        "enqueue",
    );
    assert!(
        ok(main.instance(&entity).await, "instance").is_none(),
        "an entity created in other is not in main"
    );

    assert_eq!(
        query_ids(main, InstanceQuery::default(), "main's query").await,
        vec!["shared-id", "only-main"]
    );
    assert_eq!(
        query_ids(other, InstanceQuery::default(), "other's query").await,
        vec!["shared-id"]
    );
    assert_eq!(
        ok(
            other.purge_where(&PurgeFilter::default()).await,
            "purge_where"
        ),
        1,
        "other's finished instance"
    );
    assert!(ok(other.instance("shared-id").await, "instance").is_none());
    assert!(
        ok(main.instance("shared-id").await, "instance").is_some(),
        "a purge in other leaves main's instance with the same id"
    );

    let item = item_for(main, t(2), "only-main", "main's other instance").await;
    ok(
        main.park_orchestration(&item, "parked in main", t(2)).await,
        "park",
    );
    assert!(
        ok(other.parked().await, "parked").is_empty(),
        "main's parked messages are not in other"
    );
    let back = other.with_task_hub(main.task_hub());
    assert_eq!(back.task_hub(), main.task_hub());
    assert_eq!(
        status_of(&*back, "shared-id", "main through other.with_task_hub").await,
        in_main.initial_status()
    );
}

/// `is_idle` is false while messages are visible at `now`, work items or activities are
/// leased, or activities are queued; true otherwise (future messages do not count).
pub async fn is_idle(store: Arc<dyn Store>) {
    let s = &*store;
    let idle = |now: DateTime<Utc>| async move { ok(s.is_idle(now).await, "is_idle") };
    assert!(idle(t(0)).await, "an empty store is idle");
    let mut scheduled = new_instance("scheduled", t(0));
    scheduled.start_at = Some(t(100));
    ok(s.create_instance(scheduled).await, "create_instance");
    assert!(idle(t(0)).await, "a start scheduled later does not count");
    assert!(!idle(t(100)).await, "a start visible at `now` counts");

    let tasks = {
        ok(
            s.create_instance(new_instance("w", t(0))).await,
            "create_instance",
        );
        assert!(!idle(t(0)).await, "a visible start message");
        let item = item_for(s, t(0), "w", "w").await;
        assert!(!idle(t(0)).await, "a leased work item");
        let task = ActivityTask {
            instance_id: "w".into(),
            execution_id: item.instance.execution_id.clone(),
            task_id: 0,
            name: "Work".into(),
            input: "null".into(),
        };
        ok(
            s.commit_turn(
                &item,
                TurnCommit {
                    activities: vec![task.clone()],
                    ..plain_commit(&item, RuntimeStatus::Running, t(0))
                },
            )
            .await,
            "commit",
        );
        vec![task]
    };
    assert!(!idle(t(0)).await, "a queued activity");
    let act = fetch_activity(s, LONG_LEASE, "the activity").await;
    assert!(!idle(t(0)).await, "a leased activity");
    ok(
        s.complete_activity(&act, task_completed(&tasks[0], "1", t(1)))
            .await,
        "complete_activity",
    );
    assert!(!idle(t(1)).await, "an activity's response");
    commit_next(s, t(1), "w", "the response", |item| {
        plain_commit(item, RuntimeStatus::Completed, t(1))
    })
    .await;
    assert!(idle(t(1)).await, "everything settled");
    assert!(
        !idle(t(100)).await,
        "the scheduled start is still due later"
    );
}

/// The store's signals are raised by its own writes: `orchestrations` when messages are queued
/// (create, enqueue, commit, activity completion), `activities` when a commit queues
/// activities, `instances` when a commit changes a status.
pub async fn signals(store: Arc<dyn Store>) {
    let s = &*store;
    let signal = s.signal();
    assert_notifies(
        &signal.orchestrations,
        "create_instance raises `orchestrations`",
        async { ok(s.create_instance(new_instance("sig", t(0))).await, "create") },
    )
    .await;
    assert_notifies(
        &signal.orchestrations,
        "enqueue raises `orchestrations`",
        async { ok(s.enqueue(event("sig", "E", t(0))).await, "enqueue") },
    )
    .await;
    let item = item_for(s, t(0), "sig", "sig").await;
    let task = ActivityTask {
        instance_id: "sig".into(),
        execution_id: item.instance.execution_id.clone(),
        task_id: 0,
        name: "Work".into(),
        input: "null".into(),
    };
    let commit = TurnCommit {
        activities: vec![task.clone()],
        messages: vec![event("sig", "ToSelf", t(0))],
        ..plain_commit(&item, RuntimeStatus::Running, t(0))
    };
    let commit_write = async { ok(s.commit_turn(&item, commit).await, "commit_turn") };
    let both = assert_notifies(
        &signal.instances,
        "commit_turn raises `instances`",
        assert_notifies(
            &signal.activities,
            "commit_turn with activities raises `activities`",
            commit_write,
        ),
    );
    assert_notifies(
        &signal.orchestrations,
        "commit_turn with messages raises `orchestrations`",
        both,
    )
    .await;
    let act = fetch_activity(s, LONG_LEASE, "the activity").await;
    assert_notifies(
        &signal.orchestrations,
        "complete_activity raises `orchestrations`",
        async {
            ok(
                s.complete_activity(&act, task_completed(&task, "1", t(1)))
                    .await,
                "complete_activity",
            )
        },
    )
    .await;
}
