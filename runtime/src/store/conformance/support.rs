//! Fixtures and helpers shared by the checks.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use crate::history::{EventKind, HistoryEvent};
use crate::store::{
    ActivityTask, ActivityWorkItem, Fetched, HistoryWrite, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Owned, Store, StoreError, TurnCommit,
};
use crate::{FailureDetails, InstanceQuery, InstanceStatus, RuntimeStatus};
/// A lease that never expires during a check.
pub(super) const LONG_LEASE: Duration = Duration::from_secs(300);
/// A lease that does expire during a check.
pub(super) const SHORT_LEASE: Duration = Duration::from_millis(50);
/// How long to wait for a [`SHORT_LEASE`] to have surely expired.
pub(super) const AFTER_SHORT_LEASE: Duration = Duration::from_millis(200);
/// What the renewal checks extend a [`SHORT_LEASE`] to: well past [`AFTER_SHORT_LEASE`].
pub(super) const RENEWED_LEASE: Duration = Duration::from_secs(1);
/// How much earlier than due a store may let work reappear (its lease clock's granularity).
pub(super) const CLOCK_SLACK: Duration = Duration::from_millis(20);
/// The retry delay of the abandon checks.
pub(super) const RETRY_AFTER: Duration = Duration::from_millis(300);
/// How long abandoned work may take to come back before a check gives up.
pub(super) const REAPPEAR_LIMIT: Duration = Duration::from_secs(10);
/// How long a signal may take to be raised after the write that raises it.
pub(super) const SIGNAL_WAIT: Duration = Duration::from_millis(500);

/// Orchestration time: `secs` after 2030-01-01T00:00:00Z (where the manual clock starts).
pub(super) fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
        + TimeDelta::seconds(secs)
}

pub(super) fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: the store failed: {e:?}"))
}

pub(super) fn assert_lease_lost<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::LeaseLost) => {}
        other => panic!("{what}: expected Err(LeaseLost), got {other:?}"),
    }
}

pub(super) fn json(value: &str) -> String {
    serde_json::to_string(value).expect("a string serializes")
}

pub(super) fn failure(message: &str) -> FailureDetails {
    FailureDetails {
        error_type: "ConformanceError".into(),
        message: message.into(),
        cause: Some(Box::new(FailureDetails {
            error_type: "Inner".into(),
            message: format!("caused by: {message}"),
            cause: None,
        })),
    }
}

/// A request to create `id` at `created_at`, starting at once.
pub(super) fn new_instance(id: &str, created_at: DateTime<Utc>) -> NewInstance {
    NewInstance {
        instance_id: id.to_string(),
        name: "ConformanceFlow".into(),
        input: format!("{{\"for\":{}}}", json(id)),
        execution_id: format!("{id}#exec-1"),
        parent: None,
        created_at,
        start_at: None,
        replace_running: false,
        version: None,
    }
}

/// An external event for `id`.
pub(super) fn event(id: &str, name: &str, at: DateTime<Utc>) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: id.to_string(),
        execution_id: None,
        event: HistoryEvent::new(
            at,
            EventKind::EventRaised {
                name: name.to_string(),
                input: json(name),
            },
        ),
        visible_at: None,
    }
}

/// A timer firing for `id`'s execution at `fire_at`.
pub(super) fn timer(
    id: &str,
    execution_id: &str,
    timer_id: i64,
    fire_at: DateTime<Utc>,
) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: id.to_string(),
        execution_id: Some(execution_id.to_string()),
        event: HistoryEvent::new(fire_at, EventKind::TimerFired { timer_id, fire_at }),
        visible_at: Some(fire_at),
    }
}

/// A one-way entity operation for `entity`.
pub(super) fn signal_entity(
    entity: &str,
    operation: &str,
    at: DateTime<Utc>,
) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: entity.to_string(),
        execution_id: None,
        event: HistoryEvent::new(
            at,
            EventKind::EntityOperationSignaled {
                entity_id: entity.to_string(),
                operation: operation.to_string(),
                input: "1".into(),
            },
        ),
        visible_at: None,
    }
}

/// The activity's completion message.
pub(super) fn task_completed(
    task: &ActivityTask,
    result: &str,
    at: DateTime<Utc>,
) -> OrchestrationMessage {
    OrchestrationMessage {
        instance_id: task.instance_id.clone(),
        execution_id: Some(task.execution_id.clone()),
        event: HistoryEvent::new(
            at,
            EventKind::TaskCompleted {
                task_scheduled_id: task.task_id,
                result: result.to_string(),
            },
        ),
        visible_at: None,
    }
}

/// The history of a first turn: started, the start event, completed.
pub(super) fn first_turn_history(
    start: &OrchestrationMessage,
    at: DateTime<Utc>,
) -> Vec<HistoryEvent> {
    vec![
        HistoryEvent::new(at, EventKind::OrchestratorStarted),
        start.event.clone(),
        HistoryEvent::new(at, EventKind::OrchestratorCompleted),
    ]
}

/// `base` moved to `runtime_status` at `now`, with an output or failure where the status has one.
pub(super) fn status_as(
    base: &InstanceStatus,
    runtime_status: RuntimeStatus,
    now: DateTime<Utc>,
) -> InstanceStatus {
    let mut status = InstanceStatus {
        runtime_status,
        last_updated_at: now,
        history: None,
        ..base.clone()
    };
    match runtime_status {
        RuntimeStatus::Completed => status.output = Some(json("finished")),
        RuntimeStatus::Failed => status.failure = Some(failure("it broke")),
        RuntimeStatus::Terminated => status.output = Some(json("stopped by an operator")),
        _ => {}
    }
    status
}

/// A commit that consumes every message of `item`, appends nothing and moves the instance to
/// `runtime_status` at `now`.
pub(super) fn plain_commit(
    item: &OrchestrationWorkItem,
    runtime_status: RuntimeStatus,
    now: DateTime<Utc>,
) -> TurnCommit {
    TurnCommit {
        consumed: seqs(item),
        history: HistoryWrite::Append(Vec::new()),
        status: status_as(&item.instance, runtime_status, now),
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    }
}

pub(super) fn seqs(item: &OrchestrationWorkItem) -> Vec<u64> {
    item.messages.iter().map(|m| m.seq).collect()
}

pub(super) fn messages(item: &OrchestrationWorkItem) -> Vec<OrchestrationMessage> {
    item.messages.iter().map(|m| m.message.clone()).collect()
}

pub(super) async fn fetch(store: &dyn Store, now: DateTime<Utc>) -> Fetched<OrchestrationWorkItem> {
    ok(
        store
            .fetch_orchestration(now, LONG_LEASE, &Owned::Everything)
            .await,
        "fetch_orchestration",
    )
}

/// The next work item; panics when there is none.
pub(super) async fn next_item(
    store: &dyn Store,
    now: DateTime<Utc>,
    context: &str,
) -> OrchestrationWorkItem {
    next_item_leased(store, now, LONG_LEASE, context).await
}

/// The next work item, leased for `lease`; panics when there is none.
pub(super) async fn next_item_leased(
    store: &dyn Store,
    now: DateTime<Utc>,
    lease: Duration,
    context: &str,
) -> OrchestrationWorkItem {
    match ok(
        store
            .fetch_orchestration(now, lease, &Owned::Everything)
            .await,
        "fetch_orchestration",
    ) {
        Fetched::Item(item) => item,
        Fetched::Empty { next_visible } => panic!(
            "{context}: expected a work item, fetch_orchestration found none \
             (next_visible {next_visible:?})"
        ),
    }
}

/// The next work item, which must be `id`'s.
pub(super) async fn item_for(
    store: &dyn Store,
    now: DateTime<Utc>,
    id: &str,
    context: &str,
) -> OrchestrationWorkItem {
    let item = next_item(store, now, context).await;
    assert_eq!(
        item.instance_id, id,
        "{context}: fetched instance `{}`, expected `{id}`",
        item.instance_id
    );
    item
}

/// Asserts that nothing is fetchable at `now`; returns the reported `next_visible`.
pub(super) async fn no_item(
    store: &dyn Store,
    now: DateTime<Utc>,
    context: &str,
) -> Option<DateTime<Utc>> {
    match fetch(store, now).await {
        Fetched::Item(item) => panic!(
            "{context}: expected no fetchable work, got instance `{}` with messages {:?}",
            item.instance_id,
            messages(&item)
        ),
        Fetched::Empty { next_visible } => next_visible,
    }
}

/// Fetches until nothing is left; one item per instance.
pub(super) async fn all_items(
    store: &dyn Store,
    now: DateTime<Utc>,
    context: &str,
) -> BTreeMap<String, OrchestrationWorkItem> {
    let mut items = BTreeMap::new();
    for _ in 0..1000 {
        match fetch(store, now).await {
            Fetched::Empty { .. } => return items,
            Fetched::Item(item) => {
                let id = item.instance_id.clone();
                assert!(
                    items.insert(id.clone(), item).is_none(),
                    "{context}: instance `{id}` was fetched twice while leased"
                );
            }
        }
    }
    panic!("{context}: fetch_orchestration never ran out of work");
}

/// Polls (in real time) until a work item appears.
pub(super) async fn poll_item(
    store: &dyn Store,
    now: DateTime<Utc>,
    context: &str,
) -> OrchestrationWorkItem {
    let started = Instant::now();
    loop {
        if let Fetched::Item(item) = fetch(store, now).await {
            return item;
        }
        assert!(
            started.elapsed() < REAPPEAR_LIMIT,
            "{context}: no work item within {REAPPEAR_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls (in real time) until an activity appears.
pub(super) async fn poll_activity(store: &dyn Store, context: &str) -> ActivityWorkItem {
    let started = Instant::now();
    loop {
        if let Some(item) = ok(store.fetch_activity(LONG_LEASE).await, "fetch_activity") {
            return item;
        }
        assert!(
            started.elapsed() < REAPPEAR_LIMIT,
            "{context}: no activity within {REAPPEAR_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) async fn status_of(store: &dyn Store, id: &str, context: &str) -> InstanceStatus {
    ok(store.instance(id).await, "instance")
        .unwrap_or_else(|| panic!("{context}: instance `{id}` does not exist"))
}

pub(super) async fn history_of(store: &dyn Store, id: &str) -> Vec<HistoryEvent> {
    ok(store.history(id).await, "history")
}

/// The history of an instance that may not exist: empty, or `InstanceNotFound`.
pub(super) async fn assert_no_history(store: &dyn Store, id: &str, context: &str) {
    match store.history(id).await {
        Ok(history) => assert!(
            history.is_empty(),
            "{context}: `{id}` should have no history, found {history:?}"
        ),
        Err(StoreError::InstanceNotFound(_)) => {}
        Err(e) => panic!("{context}: history(`{id}`) failed: {e:?}"),
    }
}

/// Fetches `id`'s work item and commits it with `commit` built from it.
pub(super) async fn commit_next(
    store: &dyn Store,
    now: DateTime<Utc>,
    id: &str,
    context: &str,
    commit: impl FnOnce(&OrchestrationWorkItem) -> TurnCommit,
) -> OrchestrationWorkItem {
    let item = item_for(store, now, id, context).await;
    let turn = commit(&item);
    ok(store.commit_turn(&item, turn).await, context);
    item
}

/// Creates `id` at `created_at` and, unless `runtime_status` is Pending, runs its first turn,
/// leaving it in `runtime_status` with a three-event history. Needs no other visible work.
pub(super) async fn instance_with_status(
    store: &dyn Store,
    id: &str,
    created_at: DateTime<Utc>,
    runtime_status: RuntimeStatus,
) -> InstanceStatus {
    let new = new_instance(id, created_at);
    let start = new.start_message();
    ok(store.create_instance(new).await, "create_instance");
    if runtime_status != RuntimeStatus::Pending {
        commit_next(store, created_at, id, "setting up an instance", |item| {
            TurnCommit {
                history: HistoryWrite::Append(first_turn_history(&start, created_at)),
                ..plain_commit(item, runtime_status, created_at)
            }
        })
        .await;
    }
    status_of(store, id, "setting up an instance").await
}

/// Creates `id` and commits its first turn queueing one activity per name; returns the tasks.
pub(super) async fn queue_activities(
    store: &dyn Store,
    id: &str,
    names: &[&str],
) -> Vec<ActivityTask> {
    let new = new_instance(id, t(0));
    let execution_id = new.execution_id.clone();
    ok(store.create_instance(new).await, "create_instance");
    let tasks: Vec<ActivityTask> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ActivityTask {
            instance_id: id.to_string(),
            execution_id: execution_id.clone(),
            task_id: i as i64,
            name: name.to_string(),
            input: format!("{{\"n\":{i}}}"),
        })
        .collect();
    commit_next(store, t(0), id, "queueing activities", |item| TurnCommit {
        activities: tasks.clone(),
        ..plain_commit(item, RuntimeStatus::Running, t(0))
    })
    .await;
    tasks
}

pub(super) async fn fetch_activity(
    store: &dyn Store,
    lease: Duration,
    context: &str,
) -> ActivityWorkItem {
    ok(store.fetch_activity(lease).await, "fetch_activity")
        .unwrap_or_else(|| panic!("{context}: expected an activity, fetch_activity found none"))
}

pub(super) async fn no_activity(store: &dyn Store, context: &str) {
    if let Some(item) = ok(store.fetch_activity(LONG_LEASE).await, "fetch_activity") {
        panic!("{context}: expected no activity, fetched {:?}", item.task);
    }
}

pub(super) async fn parked_for(store: &dyn Store, id: &str) -> Vec<crate::store::ParkedMessage> {
    ok(store.parked().await, "parked")
        .into_iter()
        .filter(|p| p.instance_id == id)
        .collect()
}

pub(super) async fn query_ids(
    store: &dyn Store,
    query: InstanceQuery,
    context: &str,
) -> Vec<String> {
    let page = ok(store.query(&query).await, context);
    assert!(
        page.continuation_token.is_none(),
        "{context}: a query whose results fit one page returned a continuation token"
    );
    page.instances.into_iter().map(|s| s.instance_id).collect()
}

/// Every page of a query; panics after 1000 pages.
pub(super) async fn all_pages(
    store: &dyn Store,
    mut query: InstanceQuery,
    context: &str,
) -> Vec<Vec<InstanceStatus>> {
    let mut pages = Vec::new();
    for _ in 0..1000 {
        let page = ok(store.query(&query).await, context);
        if let Some(size) = query.page_size {
            assert!(
                page.instances.len() <= size,
                "{context}: a page of {} instances exceeds page_size {size}",
                page.instances.len()
            );
        }
        pages.push(page.instances);
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => return pages,
        }
    }
    panic!("{context}: paging never ended");
}

/// Asserts that `write` raises `notify`.
pub(super) async fn assert_notifies<Fut: Future>(
    notify: &Notify,
    what: &str,
    write: Fut,
) -> Fut::Output {
    let mut notified = std::pin::pin!(notify.notified());
    notified.as_mut().enable();
    let out = write.await;
    if tokio::time::timeout(SIGNAL_WAIT, notified).await.is_err() {
        panic!("{what}: the signal was not raised within {SIGNAL_WAIT:?}");
    }
    out
}
