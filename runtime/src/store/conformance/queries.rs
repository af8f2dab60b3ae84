//! Instance queries: filters and paging.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::store::{Store, StoreError};
use crate::{EntityId, InstanceQuery, RuntimeStatus};

use super::support::*;
/// Queries filter by status, creation range (inclusive) and id prefix (taken literally: `%`,
/// `_` and `\` are not wildcards); entities show only for a prefix starting with `@`. Results
/// are complete statuses ordered by creation time then id.
pub async fn query_filters(store: Arc<dyn Store>) {
    let s = &*store;
    let mut statuses = BTreeMap::new();
    for (id, secs, runtime_status) in [
        ("q-running", 20, RuntimeStatus::Running),
        ("q-done", 30, RuntimeStatus::Completed),
        ("q-failed", 40, RuntimeStatus::Failed),
        ("other-running", 50, RuntimeStatus::Running),
        ("q-pending", 10, RuntimeStatus::Pending),
        ("pre_fix-1", 60, RuntimeStatus::Pending),
        ("preXfix-2", 61, RuntimeStatus::Pending),
        ("100%-a", 62, RuntimeStatus::Pending),
        ("100x", 63, RuntimeStatus::Pending),
        ("back\\slash", 64, RuntimeStatus::Pending),
        ("backXslash", 65, RuntimeStatus::Pending),
    ] {
        let status = instance_with_status(s, id, t(secs), runtime_status).await;
        statuses.insert(id.to_string(), status);
    }
    let counter = EntityId::new("counter", "a").to_string();
    let timer_entity = EntityId::new("timer", "b").to_string();
    ok(
        s.enqueue(signal_entity(&counter, "add", t(25))).await,
        "enqueue",
    );
    ok(
        s.enqueue(signal_entity(&timer_entity, "add", t(35))).await,
        "enqueue",
    );

    let q = |f: fn(&mut InstanceQuery)| {
        let mut query = InstanceQuery::default();
        f(&mut query);
        query
    };
    let page = ok(s.query(&InstanceQuery::default()).await, "query");
    assert!(
        page.continuation_token.is_none(),
        "everything fits one page"
    );
    for status in &page.instances {
        assert_eq!(
            Some(status),
            statuses.get(&status.instance_id),
            "a query returns the full status (without history)"
        );
    }
    assert_eq!(
        page.instances
            .iter()
            .map(|s| s.instance_id.as_str())
            .collect::<Vec<_>>(),
        vec![
            "q-pending",
            "q-running",
            "q-done",
            "q-failed",
            "other-running",
            "pre_fix-1",
            "preXfix-2",
            "100%-a",
            "100x",
            "back\\slash",
            "backXslash",
        ],
        "no filter: every orchestration (no entity), by creation time"
    );
    let cases: Vec<(&str, InstanceQuery, Vec<&str>)> = vec![
        (
            "status Running",
            q(|q| q.runtime_status = vec![RuntimeStatus::Running]),
            vec!["q-running", "other-running"],
        ),
        (
            "status Completed or Failed",
            q(|q| q.runtime_status = vec![RuntimeStatus::Failed, RuntimeStatus::Completed]),
            vec!["q-done", "q-failed"],
        ),
        (
            "created from 20 s to 40 s, inclusive",
            q(|q| {
                q.created_from = Some(t(20));
                q.created_to = Some(t(40));
            }),
            vec!["q-running", "q-done", "q-failed"],
        ),
        (
            "created from 63 s",
            q(|q| q.created_from = Some(t(63))),
            vec!["100x", "back\\slash", "backXslash"],
        ),
        (
            "created up to 10 s",
            q(|q| q.created_to = Some(t(10))),
            vec!["q-pending"],
        ),
        (
            "prefix q-",
            q(|q| q.instance_id_prefix = Some("q-".into())),
            vec!["q-pending", "q-running", "q-done", "q-failed"],
        ),
        (
            "prefix q- and status Pending",
            q(|q| {
                q.instance_id_prefix = Some("q-".into());
                q.runtime_status = vec![RuntimeStatus::Pending];
            }),
            vec!["q-pending"],
        ),
        (
            "prefix with `_` (not a wildcard)",
            q(|q| q.instance_id_prefix = Some("pre_".into())),
            vec!["pre_fix-1"],
        ),
        (
            "prefix with `%` (not a wildcard)",
            q(|q| q.instance_id_prefix = Some("100%".into())),
            vec!["100%-a"],
        ),
        (
            "prefix with `\\` (not an escape)",
            q(|q| q.instance_id_prefix = Some("back\\".into())),
            vec!["back\\slash"],
        ),
        (
            "prefix matching nothing",
            q(|q| q.instance_id_prefix = Some("zzz".into())),
            vec![],
        ),
        (
            "status with no instance",
            q(|q| q.runtime_status = vec![RuntimeStatus::Terminated]),
            vec![],
        ),
    ];
    for (what, query, expected) in cases {
        assert_eq!(query_ids(s, query, what).await, expected, "query: {what}");
    }
    let entities = vec![counter.clone(), timer_entity.clone()];
    assert_eq!(
        query_ids(
            s,
            q(|q| q.instance_id_prefix = Some("@".into())),
            "prefix @"
        )
        .await,
        entities,
        "prefix `@`: the entities"
    );
    assert_eq!(
        query_ids(
            s,
            q(|q| {
                q.instance_id_prefix = Some("@counter@".into());
                q.runtime_status = vec![RuntimeStatus::Running];
            }),
            "prefix @counter@"
        )
        .await,
        vec![counter.clone()],
        "prefix `@counter@`: that entity"
    );
    let page = ok(
        s.query(&q(|q| q.instance_id_prefix = Some("@counter@".into())))
            .await,
        "query",
    );
    assert_eq!(
        page.instances,
        vec![status_of(s, &counter, "the entity").await],
        "an entity's full status"
    );
}

/// Paging with `page_size` and continuation tokens returns every match exactly once, in
/// (created_at, id) order, with filters applied across pages; ids with unusual characters
/// page correctly.
pub async fn query_paging(store: Arc<dyn Store>) {
    let s = &*store;
    for (id, secs) in [
        ("p-c", 1),
        ("p-a", 1),
        ("p-b", 1),
        ("p-e", 2),
        ("p-d", 2),
        ("p-g", 3),
        ("p-f", 3),
    ] {
        ok(
            s.create_instance(new_instance(id, t(secs))).await,
            "create_instance",
        );
    }
    let expected = ["p-a", "p-b", "p-c", "p-d", "p-e", "p-f", "p-g"];
    for size in [1, 2, 3, 7, 100] {
        let query = InstanceQuery {
            page_size: Some(size),
            ..Default::default()
        };
        let pages = all_pages(s, query, &format!("page_size {size}")).await;
        let ids: Vec<String> = pages
            .iter()
            .flatten()
            .map(|s| s.instance_id.clone())
            .collect();
        assert_eq!(
            ids,
            expected,
            "page_size {size}: every instance exactly once, by (created_at, id); pages: {:?}",
            pages
                .iter()
                .map(|p| p.iter().map(|s| s.instance_id.as_str()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
    }
    let filtered = InstanceQuery {
        created_from: Some(t(2)),
        instance_id_prefix: Some("p-".into()),
        page_size: Some(3),
        ..Default::default()
    };
    let ids: Vec<String> = all_pages(s, filtered, "filtered paging")
        .await
        .into_iter()
        .flatten()
        .map(|s| s.instance_id)
        .collect();
    assert_eq!(
        ids,
        ["p-d", "p-e", "p-f", "p-g"],
        "filters apply across pages"
    );

    // Ids that a naive token encoding would mangle; same creation time, so only the ids
    // separate them. Their relative order is the store's (collations differ), but each must
    // come exactly once.
    let odd = [
        "odd|pipe",
        "odd|pipe|2",
        "odd ünï",
        "odd 'single'",
        "odd \"double\"",
        "odd,comma",
        "odd%_",
        "odd\\",
        "odd=base64==",
        "odd/../slash",
        "odd 🚀",
        "ODD upper",
    ];
    for id in odd {
        ok(
            s.create_instance(new_instance(id, t(10))).await,
            "create_instance",
        );
    }
    for size in [1, 2, 5] {
        let query = InstanceQuery {
            created_from: Some(t(10)),
            page_size: Some(size),
            ..Default::default()
        };
        let ids: Vec<String> = all_pages(s, query, &format!("unusual ids, page_size {size}"))
            .await
            .into_iter()
            .flatten()
            .map(|s| s.instance_id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        let mut want: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            sorted, want,
            "unusual ids, page_size {size}: every instance once (got {ids:?})"
        );
        assert_eq!(
            ids.len(),
            odd.len(),
            "unusual ids, page_size {size}: no duplicates"
        );
    }
}

/// Newest-first queries page backwards through the same order, with the same filters, and
/// each instance comes exactly once.
pub async fn query_newest_first(store: Arc<dyn Store>) {
    let s = &*store;
    for (id, secs) in [
        ("n-c", 1),
        ("n-a", 1),
        ("n-b", 1),
        ("n-e", 2),
        ("n-d", 2),
        ("n-f", 3),
    ] {
        ok(
            s.create_instance(new_instance(id, t(secs))).await,
            "create_instance",
        );
    }
    ok(
        s.enqueue(signal_entity(
            &EntityId::new("counter", "n").to_string(),
            "add",
            t(4),
        ))
        .await,
        "enqueue",
    );
    let expected = ["n-f", "n-e", "n-d", "n-c", "n-b", "n-a"];
    for size in [1, 2, 4, 100] {
        let mut query = InstanceQuery {
            page_size: Some(size),
            ..Default::default()
        };
        let mut ids = Vec::new();
        for _ in 0..100 {
            let page = ok(s.query_newest_first(&query).await, "query_newest_first");
            assert!(
                page.instances.len() <= size,
                "page_size {size}: a page too long"
            );
            ids.extend(page.instances.into_iter().map(|s| s.instance_id));
            match page.continuation_token {
                Some(token) => query.continuation_token = Some(token),
                None => break,
            }
        }
        assert_eq!(
            ids, expected,
            "page_size {size}: newest first, each once, no entity"
        );
    }
    let filtered = InstanceQuery {
        created_to: Some(t(2)),
        instance_id_prefix: Some("n-".into()),
        ..Default::default()
    };
    let page = ok(s.query_newest_first(&filtered).await, "query_newest_first");
    let ids: Vec<String> = page.instances.into_iter().map(|s| s.instance_id).collect();
    assert_eq!(ids, ["n-e", "n-d", "n-c", "n-b", "n-a"], "filters apply");
}

/// Counts by status cover every orchestration instance of the hub, and no entity.
pub async fn count_by_status(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(
        ok(s.count_by_status().await, "count_by_status"),
        vec![],
        "an empty hub"
    );
    for (id, secs, runtime_status) in [
        ("c-1", 1, RuntimeStatus::Running),
        ("c-2", 2, RuntimeStatus::Running),
        ("c-3", 3, RuntimeStatus::Completed),
        ("c-4", 4, RuntimeStatus::Failed),
        ("c-5", 5, RuntimeStatus::Pending),
    ] {
        instance_with_status(s, id, t(secs), runtime_status).await;
    }
    ok(
        s.enqueue(signal_entity(
            &EntityId::new("counter", "c").to_string(),
            "add",
            t(6),
        ))
        .await,
        "enqueue",
    );
    assert_eq!(
        ok(s.count_by_status().await, "count_by_status"),
        vec![
            (RuntimeStatus::Pending, 1),
            (RuntimeStatus::Running, 2),
            (RuntimeStatus::Completed, 1),
            (RuntimeStatus::Failed, 1),
        ],
        "in the order of RuntimeStatus::ALL, entities left out"
    );
    let other = s.with_task_hub("count-other-hub");
    assert_eq!(
        ok(other.count_by_status().await, "count_by_status"),
        vec![],
        "another task hub counts its own"
    );
}

/// A continuation token the store did not issue is refused with `InvalidContinuation`.
pub async fn query_invalid_continuation(store: Arc<dyn Store>) {
    let s = &*store;
    ok(
        s.create_instance(new_instance("x", t(0))).await,
        "create_instance",
    );
    let query = InstanceQuery {
        continuation_token: Some("%% not a continuation token %%".into()),
        ..Default::default()
    };
    match s.query(&query).await {
        Err(StoreError::InvalidContinuation(_)) => {}
        other => {
            panic!("a bogus continuation token: expected Err(InvalidContinuation), got {other:?}")
        }
    }
}
