//! Orchestration versions: recorded at creation, kept by commits, found by queries; and work
//! released for another host without counting as a failed attempt.

use std::sync::Arc;
use std::time::Duration;

use crate::history::ParentInstance;
use crate::store::{HistoryWrite, NewInstance, Store, TurnCommit};
use crate::{InstanceQuery, RuntimeStatus};

use super::support::*;

/// An instance keeps the version it was created with: in its status, in its start message,
/// through every commit (whatever version the committed status carries), and on the work
/// items fetched for it. A child created by a commit gets its own version; re-creating a
/// finished instance takes the new one.
pub async fn instance_version(store: Arc<dyn Store>) {
    let s = &*store;
    let version = "2.1 \"beta\" ünï";
    let new = NewInstance {
        version: Some(version.into()),
        ..new_instance("versioned", t(0))
    };
    ok(s.create_instance(new.clone()).await, "create_instance");
    let created = status_of(s, "versioned", "after create").await;
    assert_eq!(
        created.version.as_deref(),
        Some(version),
        "the status carries the version the instance was created with"
    );
    let item = item_for(s, t(0), "versioned", "the start").await;
    assert_eq!(
        item.instance.version.as_deref(),
        Some(version),
        "a fetched work item carries the instance's version"
    );
    assert_eq!(
        messages(&item),
        vec![new.start_message()],
        "the start message carries the version"
    );
    let child = NewInstance {
        parent: Some(ParentInstance {
            name: new.name.clone(),
            instance_id: "versioned".into(),
            execution_id: new.execution_id.clone(),
            task_scheduled_id: 0,
        }),
        version: Some("3.0".into()),
        ..new_instance("versioned:0", t(1))
    };
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.version = None;
    let commit = TurnCommit {
        history: HistoryWrite::Append(first_turn_history(&new.start_message(), t(1))),
        new_instances: vec![child],
        status,
        ..plain_commit(&item, RuntimeStatus::Running, t(1))
    };
    ok(s.commit_turn(&item, commit).await, "commit_turn");
    assert_eq!(
        status_of(s, "versioned", "after a commit")
            .await
            .version
            .as_deref(),
        Some(version),
        "a commit does not change the version the instance was created with"
    );
    assert_eq!(
        status_of(s, "versioned:0", "the child")
            .await
            .version
            .as_deref(),
        Some("3.0"),
        "a child created by a commit has its own version"
    );
    let child = item_for(s, t(1), "versioned:0", "the child's start").await;
    assert_eq!(child.instance.version.as_deref(), Some("3.0"));
    ok(
        s.commit_turn(&child, plain_commit(&child, RuntimeStatus::Completed, t(1)))
            .await,
        "commit the child",
    );
    let page = ok(s.query(&InstanceQuery::default()).await, "query");
    let listed = page
        .instances
        .iter()
        .find(|i| i.instance_id == "versioned")
        .expect("the instance is listed");
    assert_eq!(listed.version.as_deref(), Some(version), "queries show it");

    let old = instance_with_status(s, "recreated", t(2), RuntimeStatus::Completed).await;
    assert_eq!(
        old.version, None,
        "an instance created without one has none"
    );
    ok(
        s.create_instance(NewInstance {
            version: Some("9.0".into()),
            ..new_instance("recreated", t(3))
        })
        .await,
        "re-creating a finished instance",
    );
    assert_eq!(
        status_of(s, "recreated", "re-created")
            .await
            .version
            .as_deref(),
        Some("9.0"),
        "re-creating a finished instance takes the new version"
    );
}

/// A query's version filter returns exactly the instances created with that version (not
/// those without one, nor entities), combined with the other filters and across pages.
pub async fn query_by_version(store: Arc<dyn Store>) {
    let s = &*store;
    for (i, (id, version)) in [
        ("v1-a", Some("1.0")),
        ("v2-a", Some("2.0")),
        ("none-a", None),
        ("v2-b", Some("2.0")),
        ("v1-b", Some("1.0")),
        ("v2-c", Some("2.0")),
        ("v20", Some("2.00")),
    ]
    .into_iter()
    .enumerate()
    {
        let new = NewInstance {
            version: version.map(str::to_string),
            ..new_instance(id, t(i as i64))
        };
        ok(s.create_instance(new).await, "create_instance");
    }
    ok(
        s.enqueue(signal_entity("@counter@a", "add", t(1))).await,
        "enqueue",
    );
    let by = |version: &str| InstanceQuery {
        version: Some(version.into()),
        ..Default::default()
    };
    assert_eq!(
        query_ids(s, by("2.0"), "version 2.0").await,
        ["v2-a", "v2-b", "v2-c"],
        "exactly the instances of that version, as written"
    );
    assert_eq!(
        query_ids(s, by("1.0"), "version 1.0").await,
        ["v1-a", "v1-b"]
    );
    assert!(
        query_ids(s, by("3.0"), "version 3.0").await.is_empty(),
        "no instance has version 3.0"
    );
    assert_eq!(
        query_ids(
            s,
            InstanceQuery {
                instance_id_prefix: Some("v2-".into()),
                created_from: Some(t(3)),
                ..by("2.0")
            },
            "version with prefix and time",
        )
        .await,
        ["v2-b", "v2-c"]
    );
    let pages = all_pages(
        s,
        InstanceQuery {
            page_size: Some(2),
            ..by("2.0")
        },
        "version, two per page",
    )
    .await;
    let ids: Vec<Vec<String>> = pages
        .iter()
        .map(|p| p.iter().map(|i| i.instance_id.clone()).collect())
        .collect();
    assert_eq!(ids[0], ["v2-a", "v2-b"]);
    assert_eq!(ids.concat(), ["v2-a", "v2-b", "v2-c"], "pages: {ids:?}");
    let newest = ok(s.query_newest_first(&by("2.0")).await, "newest first");
    let ids: Vec<&str> = newest
        .instances
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["v2-c", "v2-b", "v2-a"], "newest first, by version");
}

/// Released work comes back after `retry_after` with its `dequeue_count` unchanged: leaving
/// work for another host is not a failed attempt. The released token is then stale.
pub async fn release_orchestration(store: Arc<dyn Store>) {
    let s = &*store;
    ok(
        s.create_instance(new_instance("elsewhere", t(0))).await,
        "create_instance",
    );
    let mut item = item_for(s, t(0), "elsewhere", "the first fetch").await;
    assert_eq!(item.dequeue_count, 1);
    for round in 0..3 {
        ok(
            s.release_orchestration(&item, Duration::from_millis(20), "host-a")
                .await,
            "release_orchestration",
        );
        assert_lease_lost(
            s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(0)))
                .await,
            "committing a released work item",
        );
        item = poll_item(s, t(0), "released messages come back").await;
        assert_eq!(
            item.dequeue_count, 1,
            "releasing does not count the fetch (round {round})"
        );
    }
    ok(
        s.abandon_orchestration(&item, Duration::from_millis(20))
            .await,
        "abandon_orchestration",
    );
    let item = poll_item(s, t(0), "abandoned messages come back").await;
    assert_eq!(
        item.dequeue_count, 2,
        "an abandon after releases counts once"
    );
    ok(
        s.commit_turn(&item, plain_commit(&item, RuntimeStatus::Running, t(0)))
            .await,
        "commit",
    );
}
