//! The store conformance suite: the behaviour every [`Store`] must show, checked against a
//! fresh, empty store per check.
//!
//! A backend's test file generates one `#[test]` per check with [`conformance_tests!`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use durable::store::{Memory, Store};
//!
//! durable_tests::conformance_tests!(|| async { Arc::new(Memory::new()) as Arc<dyn Store> });
//! # fn main() {}
//! ```
//!
//! or runs them all at once with [`run_all`], or calls single checks (each a `pub async fn`
//! taking the store).
//!
//! Two clocks are involved, as in the runtime. The `now` passed to the store (fetch, park) is
//! orchestration time, which tests drive with a manual clock: the checks use fixed instants in
//! 2030. Leases and retry delays (`lease`, `retry_after`) are real durations, measured by the
//! store's own clock; the checks that need one to pass use leases of a few tens of
//! milliseconds and wait a little longer.
//!
//! [`conformance_tests!`]: crate::conformance_tests

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use durable::history::{CompletionStatus, EntityCaller, EventKind, HistoryEvent, ParentInstance};
use durable::store::{
    ActivityTask, ActivityWorkItem, Fetched, HistoryWrite, NewInstance, OrchestrationMessage,
    OrchestrationWorkItem, Store, StoreError, TurnCommit, new_entity_status,
};
use durable::{
    EntityId, FailureDetails, InstanceQuery, InstanceStatus, PurgeFilter, RuntimeStatus,
};

/// Makes fresh, empty stores: every call returns a store isolated from the others (a new file,
/// schema, database or task hub).
///
/// Implemented for closures returning a future of `Arc<dyn Store>`:
/// `|| async { Arc::new(Memory::new()) as Arc<dyn Store> }`.
pub trait StoreFactory: Sync {
    /// A new, empty store.
    fn make(&self) -> impl Future<Output = Arc<dyn Store>> + Send;
}

impl<F, Fut> StoreFactory for F
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = Arc<dyn Store>> + Send,
{
    fn make(&self) -> impl Future<Output = Arc<dyn Store>> + Send {
        self()
    }
}

/// One check: runs against a fresh store and panics when the store misbehaves.
pub type Check = fn(Arc<dyn Store>) -> BoxFuture<'static, ()>;

/// Lists every check's name and hands the list to another macro (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_check_names {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! {
            $($args)*
            create_instance,
            create_existing_instance,
            create_replace_running,
            recreate_terminal_instance,
            scheduled_start,
            enqueue_missing_instance,
            enqueue_creates_entity,
            fetch_leases_one_instance,
            fetch_batches_messages,
            lease_expiry,
            renew_orchestration_lease,
            fetch_with_earlier_now,
            commit_turn_applies_everything,
            commit_turn_message_to_new_child,
            commit_turn_history_reset,
            commit_turn_replace_history,
            commit_turn_partial_consume,
            commit_turn_child_conflict,
            commit_keeps_unconsumed_messages,
            history_round_trip,
            abandon_orchestration,
            park_orchestration,
            activity_fifo,
            complete_activity,
            abandon_activity,
            park_activity,
            activity_lease_expiry,
            renew_activity_lease,
            query_filters,
            query_paging,
            query_invalid_continuation,
            purge,
            purge_where,
            remove_entity,
            task_hubs,
            is_idle,
            signals,
            large_payloads,
            unusual_text_round_trip
        }
    };
}

/// Builds the table of [`checks`] (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_check_table {
    ($($check:ident),* $(,)?) => {
        vec![$({
            let check: $crate::conformance::Check =
                |store| Box::pin($crate::conformance::$check(store));
            (stringify!($check), check)
        }),*]
    };
}

/// Generates one `#[test]` per check (internal; use [`conformance_tests!`]).
///
/// [`conformance_tests!`]: crate::conformance_tests
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ($factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::run_check(
                    &$factory,
                    stringify!($check),
                    $crate::conformance::$check,
                );
            }
        )*
    };
}

/// Generates one `#[test]` per conformance check, each on a fresh store from `factory` (any
/// [`StoreFactory`](crate::conformance::StoreFactory), e.g. a closure returning a future of
/// `Arc<dyn Store>`), so that failures are reported per behaviour. Each test runs on its own
/// multi-threaded tokio runtime; the calling crate needs no tokio attributes.
///
/// ```no_run
/// use std::sync::Arc;
/// use durable::store::{Memory, Store};
///
/// durable_tests::conformance_tests!(|| async { Arc::new(Memory::new()) as Arc<dyn Store> });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__conformance_check_names!(__conformance_test_fns!($factory;));
    };
}

/// Every check, by name, in the order [`run_all`] runs them.
pub fn checks() -> Vec<(&'static str, Check)> {
    crate::__conformance_check_names!(__conformance_check_table!())
}

/// Runs every check, each on a fresh store from `factory`, and panics naming every check that
/// failed (each failure's own message is printed as it happens).
pub async fn run_all(factory: &impl StoreFactory) {
    let mut failed = Vec::new();
    for (name, check) in checks() {
        let store = factory.make().await;
        if let Err(panic) = AssertUnwindSafe(check(store)).catch_unwind().await {
            failed.push(format!("  {name}: {}", panic_text(&*panic)));
        }
    }
    if !failed.is_empty() {
        panic!(
            "{} store conformance check(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}

/// Runs one check on a fresh store from `factory`, on a new multi-threaded tokio runtime, and
/// panics naming the check when it fails. Used by [`conformance_tests!`]'s tests.
///
/// [`conformance_tests!`]: crate::conformance_tests
pub fn run_check<F, Fut>(factory: &impl StoreFactory, name: &str, check: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the check");
    let outcome = runtime.block_on(async {
        let store = factory.make().await;
        AssertUnwindSafe(check(store)).catch_unwind().await
    });
    if let Err(panic) = outcome {
        panic!(
            "store conformance check `{name}` failed: {}",
            panic_text(&*panic)
        );
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers.

/// A lease that never expires during a check.
const LONG_LEASE: Duration = Duration::from_secs(300);
/// A lease that does expire during a check.
const SHORT_LEASE: Duration = Duration::from_millis(50);
/// How long to wait for a [`SHORT_LEASE`] to have surely expired.
const AFTER_SHORT_LEASE: Duration = Duration::from_millis(200);
/// What the renewal checks extend a [`SHORT_LEASE`] to: well past [`AFTER_SHORT_LEASE`].
const RENEWED_LEASE: Duration = Duration::from_secs(1);
/// How much earlier than due a store may let work reappear (its lease clock's granularity).
const CLOCK_SLACK: Duration = Duration::from_millis(20);
/// The retry delay of the abandon checks.
const RETRY_AFTER: Duration = Duration::from_millis(300);
/// How long abandoned work may take to come back before a check gives up.
const REAPPEAR_LIMIT: Duration = Duration::from_secs(10);
/// How long a signal may take to be raised after the write that raises it.
const SIGNAL_WAIT: Duration = Duration::from_millis(500);

/// Orchestration time: `secs` after 2030-01-01T00:00:00Z (where the manual clock starts).
fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
        + TimeDelta::seconds(secs)
}

fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: the store failed: {e:?}"))
}

fn assert_lease_lost<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::LeaseLost) => {}
        other => panic!("{what}: expected Err(LeaseLost), got {other:?}"),
    }
}

fn json(value: &str) -> String {
    serde_json::to_string(value).expect("a string serializes")
}

fn failure(message: &str) -> FailureDetails {
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
fn new_instance(id: &str, created_at: DateTime<Utc>) -> NewInstance {
    NewInstance {
        instance_id: id.to_string(),
        name: "ConformanceFlow".into(),
        input: format!("{{\"for\":{}}}", json(id)),
        execution_id: format!("{id}#exec-1"),
        parent: None,
        created_at,
        start_at: None,
        replace_running: false,
    }
}

/// An external event for `id`.
fn event(id: &str, name: &str, at: DateTime<Utc>) -> OrchestrationMessage {
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
fn timer(
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
fn signal_entity(entity: &str, operation: &str, at: DateTime<Utc>) -> OrchestrationMessage {
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
fn task_completed(task: &ActivityTask, result: &str, at: DateTime<Utc>) -> OrchestrationMessage {
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
fn first_turn_history(start: &OrchestrationMessage, at: DateTime<Utc>) -> Vec<HistoryEvent> {
    vec![
        HistoryEvent::new(at, EventKind::OrchestratorStarted),
        start.event.clone(),
        HistoryEvent::new(at, EventKind::OrchestratorCompleted),
    ]
}

/// `base` moved to `runtime_status` at `now`, with an output or failure where the status has one.
fn status_as(
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
fn plain_commit(
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

fn seqs(item: &OrchestrationWorkItem) -> Vec<u64> {
    item.messages.iter().map(|m| m.seq).collect()
}

fn messages(item: &OrchestrationWorkItem) -> Vec<OrchestrationMessage> {
    item.messages.iter().map(|m| m.message.clone()).collect()
}

async fn fetch(store: &dyn Store, now: DateTime<Utc>) -> Fetched<OrchestrationWorkItem> {
    ok(
        store.fetch_orchestration(now, LONG_LEASE).await,
        "fetch_orchestration",
    )
}

/// The next work item; panics when there is none.
async fn next_item(store: &dyn Store, now: DateTime<Utc>, context: &str) -> OrchestrationWorkItem {
    next_item_leased(store, now, LONG_LEASE, context).await
}

/// The next work item, leased for `lease`; panics when there is none.
async fn next_item_leased(
    store: &dyn Store,
    now: DateTime<Utc>,
    lease: Duration,
    context: &str,
) -> OrchestrationWorkItem {
    match ok(
        store.fetch_orchestration(now, lease).await,
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
async fn item_for(
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
async fn no_item(store: &dyn Store, now: DateTime<Utc>, context: &str) -> Option<DateTime<Utc>> {
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
async fn all_items(
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
async fn poll_item(store: &dyn Store, now: DateTime<Utc>, context: &str) -> OrchestrationWorkItem {
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
async fn poll_activity(store: &dyn Store, context: &str) -> ActivityWorkItem {
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

async fn status_of(store: &dyn Store, id: &str, context: &str) -> InstanceStatus {
    ok(store.instance(id).await, "instance")
        .unwrap_or_else(|| panic!("{context}: instance `{id}` does not exist"))
}

async fn history_of(store: &dyn Store, id: &str) -> Vec<HistoryEvent> {
    ok(store.history(id).await, "history")
}

/// The history of an instance that may not exist: empty, or `InstanceNotFound`.
async fn assert_no_history(store: &dyn Store, id: &str, context: &str) {
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
async fn commit_next(
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
async fn instance_with_status(
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
async fn queue_activities(store: &dyn Store, id: &str, names: &[&str]) -> Vec<ActivityTask> {
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

async fn fetch_activity(store: &dyn Store, lease: Duration, context: &str) -> ActivityWorkItem {
    ok(store.fetch_activity(lease).await, "fetch_activity")
        .unwrap_or_else(|| panic!("{context}: expected an activity, fetch_activity found none"))
}

async fn no_activity(store: &dyn Store, context: &str) {
    if let Some(item) = ok(store.fetch_activity(LONG_LEASE).await, "fetch_activity") {
        panic!("{context}: expected no activity, fetched {:?}", item.task);
    }
}

async fn parked_for(store: &dyn Store, id: &str) -> Vec<durable::store::ParkedMessage> {
    ok(store.parked().await, "parked")
        .into_iter()
        .filter(|p| p.instance_id == id)
        .collect()
}

async fn query_ids(store: &dyn Store, query: InstanceQuery, context: &str) -> Vec<String> {
    let page = ok(store.query(&query).await, context);
    assert!(
        page.continuation_token.is_none(),
        "{context}: a query whose results fit one page returned a continuation token"
    );
    page.instances.into_iter().map(|s| s.instance_id).collect()
}

/// Every page of a query; panics after 1000 pages.
async fn all_pages(
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
async fn assert_notifies<Fut: Future>(notify: &Notify, what: &str, write: Fut) -> Fut::Output {
    let mut notified = std::pin::pin!(notify.notified());
    notified.as_mut().enable();
    let out = write.await;
    if tokio::time::timeout(SIGNAL_WAIT, notified).await.is_err() {
        panic!("{what}: the signal was not raised within {SIGNAL_WAIT:?}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Instance creation.

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

// ---------------------------------------------------------------------------------------------
// Fetching and leases.

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

// ---------------------------------------------------------------------------------------------
// Committing turns.

/// A commit applies everything at once: consumed messages removed, history appended, status
/// replaced (created_at kept, no history kept), activities queued, messages delivered (a timer
/// to self only when due, to other instances, to an entity which is created, dropped for a
/// missing instance), sub-orchestrations created.
pub async fn commit_turn_applies_everything(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "other", t(0), RuntimeStatus::Running).await;
    let new = new_instance("parent", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let item = item_for(s, t(1), "parent", "the parent").await;
    let exec = new.execution_id.clone();

    let mut history = first_turn_history(&new.start_message(), t(1));
    history.insert(
        2,
        HistoryEvent {
            event_id: 0,
            timestamp: t(1),
            kind: EventKind::TaskScheduled {
                name: "Charge".into(),
                input: "42".into(),
            },
        },
    );
    let activity = ActivityTask {
        instance_id: "parent".into(),
        execution_id: exec.clone(),
        task_id: 0,
        name: "Charge".into(),
        input: "42".into(),
    };
    let wake = timer("parent", &exec, 1, t(60));
    let to_other = event("other", "Hello", t(1));
    let ledger = EntityId::new("Ledger", "main").to_string();
    let to_entity = signal_entity(&ledger, "credit", t(1));
    let to_nobody = event("nobody", "Lost", t(1));
    let child = NewInstance {
        parent: Some(ParentInstance {
            name: new.name.clone(),
            instance_id: "parent".into(),
            execution_id: exec.clone(),
            task_scheduled_id: 2,
        }),
        ..new_instance("parent:child", t(1))
    };
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.custom_status = Some(json("working"));
    let mut committed_status = status.clone();
    committed_status.created_at = t(999);
    committed_status.history = Some(history.clone());
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: seqs(&item),
                history: HistoryWrite::Append(history.clone()),
                status: committed_status,
                activities: vec![activity.clone()],
                messages: vec![wake.clone(), to_other.clone(), to_entity.clone(), to_nobody],
                new_instances: vec![child.clone()],
            },
        )
        .await,
        "commit_turn",
    );

    assert_eq!(
        status_of(s, "parent", "after the commit").await,
        status,
        "the committed status replaces the old one, keeping created_at and no history"
    );
    assert_eq!(
        history_of(s, "parent").await,
        history,
        "the appended history"
    );
    let task = fetch_activity(s, LONG_LEASE, "the queued activity").await;
    assert_eq!(task.task, activity, "the queued activity");
    assert_eq!(task.dequeue_count, 1);
    no_activity(s, "one activity was queued").await;

    assert_eq!(
        status_of(s, "parent:child", "the sub-orchestration").await,
        child.initial_status(),
        "a sub-orchestration is created with its initial status"
    );
    assert_eq!(
        status_of(s, &ledger, "the entity").await,
        new_entity_status(&ledger, t(1)),
        "a message from a commit creates the entity"
    );
    assert!(
        ok(s.instance("nobody").await, "instance").is_none(),
        "a message for a missing (non-entity) instance is dropped, not turned into an instance"
    );

    let items = all_items(s, t(1), "after the commit").await;
    assert_eq!(
        items.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut ids = vec!["other", ledger.as_str(), "parent:child"];
            ids.sort();
            ids
        },
        "the commit's messages are delivered; the parent's own timer is not due yet"
    );
    assert_eq!(messages(&items["other"]), vec![to_other]);
    assert_eq!(messages(&items[&ledger]), vec![to_entity]);
    assert_eq!(
        messages(&items["parent:child"]),
        vec![child.start_message()]
    );
    for item in items.values() {
        ok(
            s.commit_turn(item, plain_commit(item, RuntimeStatus::Running, t(1)))
                .await,
            "commit",
        );
    }
    assert_eq!(
        no_item(s, t(59), "before the parent's timer").await,
        Some(t(60)),
        "next_visible is the timer's time"
    );
    let item = item_for(s, t(60), "parent", "the parent's timer").await;
    assert_eq!(messages(&item), vec![wake]);
    assert_eq!(item.history_len, history.len());
}

/// A message sent in a turn to a sub-orchestration started by the same turn reaches the child
/// (the commit is applied as a whole: the child exists when the message is delivered), also
/// when the child's id belonged to a finished instance, which the child replaces.
pub async fn commit_turn_message_to_new_child(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "kid-old", t(0), RuntimeStatus::Completed).await;
    let parent = new_instance("parent", t(0));
    ok(s.create_instance(parent.clone()).await, "create_instance");
    let children: Vec<NewInstance> = ["kid-new", "kid-old"]
        .into_iter()
        .enumerate()
        .map(|(step, id)| NewInstance {
            execution_id: format!("{id}#exec-from-parent"),
            parent: Some(ParentInstance {
                name: parent.name.clone(),
                instance_id: "parent".into(),
                execution_id: parent.execution_id.clone(),
                task_scheduled_id: step as i64,
            }),
            ..new_instance(id, t(1))
        })
        .collect();
    let events = [event("kid-new", "Go", t(1)), event("kid-old", "Go", t(1))];
    commit_next(
        s,
        t(1),
        "parent",
        "start children and send them events",
        |item| TurnCommit {
            messages: events.to_vec(),
            new_instances: children.clone(),
            ..plain_commit(item, RuntimeStatus::Running, t(1))
        },
    )
    .await;
    let items = all_items(s, t(1), "the children").await;
    for (child, sent) in children.iter().zip(&events) {
        let item = items
            .get(&child.instance_id)
            .unwrap_or_else(|| panic!("child `{}` has no work", child.instance_id));
        assert_eq!(
            messages(item),
            vec![child.start_message(), sent.clone()],
            "child `{}` receives its start and then the event sent in the same turn",
            child.instance_id
        );
    }
}

/// `HistoryWrite::Reset` discards the history (continue-as-new); the next turn's events are
/// the only ones.
pub async fn commit_turn_history_reset(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "loop", t(0), RuntimeStatus::Running).await;
    assert_eq!(history_of(s, "loop").await.len(), 3);
    ok(s.enqueue(event("loop", "Next", t(1))).await, "enqueue");
    let next_start = OrchestrationMessage {
        instance_id: "loop".into(),
        execution_id: None,
        event: HistoryEvent::new(
            t(1),
            EventKind::ExecutionStarted {
                name: "ConformanceFlow".into(),
                input: "2".into(),
                execution_id: "loop#exec-2".into(),
                parent: None,
            },
        ),
        visible_at: None,
    };
    let item = commit_next(s, t(1), "loop", "continue as new", |item| {
        let mut commit = plain_commit(item, RuntimeStatus::ContinuedAsNew, t(1));
        commit.history = HistoryWrite::Reset;
        commit.status.execution_id = "loop#exec-2".into();
        commit.status.input = Some("2".into());
        commit.messages.push(next_start.clone());
        commit
    })
    .await;
    assert_eq!(item.history_len, 3);
    assert_no_history(s, "loop", "after HistoryWrite::Reset").await;
    let status = status_of(s, "loop", "after continuing as new").await;
    assert_eq!(status.runtime_status, RuntimeStatus::ContinuedAsNew);
    assert_eq!(status.execution_id, "loop#exec-2");

    let history = first_turn_history(&next_start, t(2));
    let item = commit_next(s, t(2), "loop", "the next execution", |item| TurnCommit {
        history: HistoryWrite::Append(history.clone()),
        ..plain_commit(item, RuntimeStatus::Running, t(2))
    })
    .await;
    assert_eq!(item.history_len, 0, "history_len after a reset");
    assert_eq!(messages(&item), vec![next_start]);
    assert_eq!(
        history_of(s, "loop").await,
        history,
        "after a reset, only the new execution's events"
    );
}

/// `HistoryWrite::Replace` replaces the whole history (a rewind): afterwards the history is
/// exactly the new events, even when they are fewer than the old ones, the next fetch reports
/// their number, a later turn appends after them, and the rest of the commit is applied with
/// the replacement.
pub async fn commit_turn_replace_history(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "other", t(0), RuntimeStatus::Running).await;
    let new = new_instance("again", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let exec = new.execution_id.clone();
    let scheduled = HistoryEvent {
        event_id: 0,
        timestamp: t(0),
        kind: EventKind::TaskScheduled {
            name: "Charge".into(),
            input: "42".into(),
        },
    };
    let mut first = first_turn_history(&new.start_message(), t(0));
    first.insert(2, scheduled.clone());
    commit_next(s, t(0), "again", "the first turn", |item| TurnCommit {
        history: HistoryWrite::Append(first.clone()),
        ..plain_commit(item, RuntimeStatus::Running, t(0))
    })
    .await;
    let activity = ActivityTask {
        instance_id: "again".into(),
        execution_id: exec.clone(),
        task_id: 0,
        name: "Charge".into(),
        input: "42".into(),
    };
    let failed = [
        HistoryEvent::new(t(1), EventKind::OrchestratorStarted),
        HistoryEvent::new(
            t(1),
            EventKind::TaskFailed {
                task_scheduled_id: 0,
                failure: failure("declined"),
            },
        ),
        HistoryEvent::new(
            t(1),
            EventKind::ExecutionCompleted {
                status: CompletionStatus::Failed,
                result: None,
                failure: Some(failure("declined")),
            },
        ),
        HistoryEvent::new(t(1), EventKind::OrchestratorCompleted),
    ];
    ok(s.enqueue(event("again", "Fail", t(1))).await, "enqueue");
    commit_next(s, t(1), "again", "the failing turn", |item| TurnCommit {
        history: HistoryWrite::Append(failed.to_vec()),
        ..plain_commit(item, RuntimeStatus::Failed, t(1))
    })
    .await;
    let old_len = first.len() + failed.len();
    assert_eq!(history_of(s, "again").await.len(), old_len);

    // Fewer events than before, so that a store that keeps old rows or numbers the new ones
    // after the old ones shows it.
    let mut rewritten = first.clone();
    rewritten.extend([failed[0].clone(), failed[3].clone()]);
    ok(s.enqueue(event("again", "Rewind", t(2))).await, "enqueue");
    let to_other = event("other", "Hello", t(2));
    let item = item_for(s, t(2), "again", "the rewind").await;
    assert_eq!(item.history_len, old_len);
    let status = InstanceStatus {
        failure: None,
        ..status_as(&item.instance, RuntimeStatus::Running, t(2))
    };
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: seqs(&item),
                history: HistoryWrite::Replace(rewritten.clone()),
                status: status.clone(),
                activities: vec![activity.clone()],
                messages: vec![to_other.clone()],
                new_instances: Vec::new(),
            },
        )
        .await,
        "commit_turn with HistoryWrite::Replace",
    );
    assert_eq!(
        history_of(s, "again").await,
        rewritten,
        "after HistoryWrite::Replace, exactly the new events"
    );
    assert_eq!(
        status_of(s, "again", "after the replace").await,
        status,
        "the status is committed with the replacement"
    );
    let task = fetch_activity(s, LONG_LEASE, "the activity queued with the replacement").await;
    assert_eq!(task.task, activity);
    assert_eq!(
        messages(&item_for(s, t(2), "other", "the message sent with the replacement").await),
        vec![to_other]
    );

    let done = timer("again", &exec, 1, t(3));
    ok(s.enqueue(done.clone()).await, "enqueue");
    let next_turn = [
        HistoryEvent::new(t(3), EventKind::OrchestratorStarted),
        HistoryEvent::new(t(3), EventKind::OrchestratorCompleted),
    ];
    let item = commit_next(s, t(3), "again", "the turn after the replace", |item| {
        TurnCommit {
            history: HistoryWrite::Append(next_turn.to_vec()),
            ..plain_commit(item, RuntimeStatus::Running, t(3))
        }
    })
    .await;
    assert_eq!(
        item.history_len,
        rewritten.len(),
        "history_len counts the replacement"
    );
    let mut expected = rewritten;
    expected.extend(next_turn);
    assert_eq!(
        history_of(s, "again").await,
        expected,
        "a later turn appends after the replacement"
    );
}

/// A commit that consumes only some of its work item's messages (a rewind consumes those
/// before the request and leaves the request queued) leaves the others queued: fetchable at
/// once, in order, counted as fetched once more.
pub async fn commit_turn_partial_consume(store: Arc<dyn Store>) {
    let s = &*store;
    instance_with_status(s, "half", t(0), RuntimeStatus::Running).await;
    let sent = [
        event("half", "A", t(1)),
        event("half", "B", t(1)),
        event("half", "C", t(1)),
    ];
    for message in &sent {
        ok(s.enqueue(message.clone()).await, "enqueue");
    }
    let item = item_for(s, t(1), "half", "all three messages").await;
    assert_eq!(messages(&item), sent.to_vec());
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: vec![item.messages[0].seq],
                ..plain_commit(&item, RuntimeStatus::Running, t(1))
            },
        )
        .await,
        "a commit consuming the first message only",
    );
    let next = item_for(s, t(1), "half", "right after the partial commit").await;
    assert_eq!(
        messages(&next),
        sent[1..].to_vec(),
        "the messages the commit did not consume stay queued, in order"
    );
    assert_eq!(next.dequeue_count, 2, "they have now been fetched twice");
    ok(
        s.commit_turn(&next, plain_commit(&next, RuntimeStatus::Running, t(1)))
            .await,
        "commit",
    );
    no_item(s, t(1), "after consuming the rest").await;
}

/// A sub-orchestration whose id is pending or running is not created; the parent receives
/// `NewInstance::conflict_response` instead and the existing instance is untouched. A finished
/// one is replaced.
pub async fn commit_turn_child_conflict(store: Arc<dyn Store>) {
    let s = &*store;
    let running = instance_with_status(s, "kid-running", t(0), RuntimeStatus::Running).await;
    instance_with_status(s, "kid-done", t(0), RuntimeStatus::Completed).await;
    let parent = new_instance("parent", t(0));
    ok(s.create_instance(parent.clone()).await, "create_instance");
    let item = item_for(s, t(1), "parent", "the parent").await;
    let pending = new_instance("kid-pending", t(0));
    ok(s.create_instance(pending.clone()).await, "create_instance");

    let child = |id: &str, step: i64| NewInstance {
        input: json("from the parent"),
        execution_id: format!("{id}#exec-from-parent"),
        parent: Some(ParentInstance {
            name: parent.name.clone(),
            instance_id: "parent".into(),
            execution_id: parent.execution_id.clone(),
            task_scheduled_id: step,
        }),
        ..new_instance(id, t(1))
    };
    let children = vec![
        child("kid-running", 0),
        child("kid-pending", 1),
        child("kid-done", 2),
    ];
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                new_instances: children.clone(),
                ..plain_commit(&item, RuntimeStatus::Running, t(1))
            },
        )
        .await,
        "a commit whose sub-orchestrations conflict still succeeds",
    );
    assert_eq!(
        status_of(s, "kid-running", "the running child").await,
        running,
        "a running instance is not replaced by a sub-orchestration with its id"
    );
    assert_eq!(
        status_of(s, "kid-pending", "the pending child").await,
        pending.initial_status(),
        "a pending instance is not replaced by a sub-orchestration with its id"
    );
    assert_eq!(
        status_of(s, "kid-done", "the finished child").await,
        children[2].initial_status(),
        "a finished instance is replaced by the sub-orchestration"
    );

    let items = all_items(s, t(1), "after the commit").await;
    assert_eq!(
        items.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["kid-done", "kid-pending", "parent"]
    );
    assert_eq!(
        messages(&items["parent"]),
        vec![
            children[0].conflict_response().expect("has a parent"),
            children[1].conflict_response().expect("has a parent"),
        ],
        "the parent receives one conflict response per refused child, in order"
    );
    assert_eq!(
        messages(&items["kid-pending"]),
        vec![pending.start_message()],
        "the pending child keeps only its own start"
    );
    assert_eq!(
        messages(&items["kid-done"]),
        vec![children[2].start_message()]
    );
    assert_eq!(
        items["kid-done"].history_len, 0,
        "a replaced child starts afresh"
    );
}

/// Messages that arrive while an instance is leased, and so are not consumed by its commit,
/// stay queued and are fetched next.
pub async fn commit_keeps_unconsumed_messages(store: Arc<dyn Store>) {
    let s = &*store;
    let new = new_instance("busy", t(0));
    ok(s.create_instance(new.clone()).await, "create_instance");
    let item = item_for(s, t(0), "busy", "the first turn").await;
    let during = [event("busy", "A", t(1)), event("busy", "B", t(2))];
    for message in &during {
        ok(s.enqueue(message.clone()).await, "enqueue during the lease");
    }
    let history = first_turn_history(&new.start_message(), t(2));
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                history: HistoryWrite::Append(history.clone()),
                ..plain_commit(&item, RuntimeStatus::Running, t(2))
            },
        )
        .await,
        "commit",
    );
    let next = item_for(s, t(2), "busy", "after the commit").await;
    assert_eq!(
        messages(&next),
        during.to_vec(),
        "messages that arrived during the lease are kept, in order"
    );
    assert_eq!(next.dequeue_count, 1, "they were never fetched before");
    assert_eq!(next.history_len, history.len());
}

// ---------------------------------------------------------------------------------------------
// History.

fn kind_index(kind: &EventKind) -> usize {
    // Exhaustive on purpose: a new event kind must be added to `every_event` below.
    match kind {
        EventKind::OrchestratorStarted => 0,
        EventKind::OrchestratorCompleted => 1,
        EventKind::ExecutionStarted { .. } => 2,
        EventKind::ExecutionCompleted { .. } => 3,
        EventKind::ExecutionTerminated { .. } => 4,
        EventKind::ExecutionSuspended { .. } => 5,
        EventKind::ExecutionResumed { .. } => 6,
        EventKind::ContinueAsNew { .. } => 7,
        EventKind::TaskScheduled { .. } => 8,
        EventKind::TaskCompleted { .. } => 9,
        EventKind::TaskFailed { .. } => 10,
        EventKind::SubOrchestrationInstanceCreated { .. } => 11,
        EventKind::SubOrchestrationInstanceCompleted { .. } => 12,
        EventKind::SubOrchestrationInstanceFailed { .. } => 13,
        EventKind::TimerCreated { .. } => 14,
        EventKind::TimerFired { .. } => 15,
        EventKind::EventRaised { .. } => 16,
        EventKind::EventSent { .. } => 17,
        EventKind::EntityOperationCalled { .. } => 18,
        EventKind::EntityOperationSignaled { .. } => 19,
        EventKind::EntityLockRequested { .. } => 20,
        EventKind::EntityUnlockSent { .. } => 21,
        EventKind::EntityOperationCompleted { .. } => 22,
        EventKind::EntityOperationFailed { .. } => 23,
        EventKind::EntityLockGranted { .. } => 24,
        EventKind::ExecutionRewound { .. } => 25,
    }
}

const EVENT_KINDS: usize = 26;

/// One event of every kind (some twice, with and without optional fields), every field set,
/// timestamps with nanoseconds.
fn every_event() -> Vec<HistoryEvent> {
    let at = |n: i64| t(0) + TimeDelta::nanoseconds(1_000_000_007 * n + 123_456_789);
    let caller = EntityCaller {
        instance_id: "caller \"1\"".into(),
        execution_id: "caller#exec".into(),
        task_scheduled_id: 6,
    };
    let text = "{\"s\":\"line1\\nline2 \\\"quoted\\\" ünïcødé 🚀\"}".to_string();
    let kinds = vec![
        EventKind::OrchestratorStarted,
        EventKind::ExecutionStarted {
            name: "Flow".into(),
            input: text.clone(),
            execution_id: "exec-1".into(),
            parent: Some(ParentInstance {
                name: "ParentFlow".into(),
                instance_id: "parent 'p'".into(),
                execution_id: "parent#exec".into(),
                task_scheduled_id: 3,
            }),
        },
        EventKind::ExecutionStarted {
            name: "Flow".into(),
            input: "null".into(),
            execution_id: "exec-2".into(),
            parent: None,
        },
        EventKind::TaskScheduled {
            name: "Act".into(),
            input: text.clone(),
        },
        EventKind::TaskCompleted {
            task_scheduled_id: 0,
            result: text.clone(),
        },
        EventKind::TaskFailed {
            task_scheduled_id: 1,
            failure: failure("task\nfailed"),
        },
        EventKind::TimerCreated { fire_at: at(40) },
        EventKind::TimerFired {
            timer_id: 2,
            fire_at: at(40),
        },
        EventKind::SubOrchestrationInstanceCreated {
            name: "Child".into(),
            instance_id: "child-ü".into(),
            input: text.clone(),
        },
        EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id: 3,
            result: "[1,2,3]".into(),
        },
        EventKind::SubOrchestrationInstanceFailed {
            task_scheduled_id: 4,
            failure: FailureDetails {
                error_type: "Plain".into(),
                message: "no cause".into(),
                cause: None,
            },
        },
        EventKind::EventRaised {
            name: "Approval \"x\"".into(),
            input: "true".into(),
        },
        EventKind::EventSent {
            instance_id: "elsewhere".into(),
            name: "Ping".into(),
            input: text.clone(),
        },
        EventKind::EntityOperationCalled {
            entity_id: "@counter@k".into(),
            operation: "add".into(),
            input: "5".into(),
            caller: Some(caller.clone()),
        },
        EventKind::EntityOperationCalled {
            entity_id: "@counter@k".into(),
            operation: "get".into(),
            input: "null".into(),
            caller: None,
        },
        EventKind::EntityOperationSignaled {
            entity_id: "@counter@k".into(),
            operation: "reset".into(),
            input: "null".into(),
        },
        EventKind::EntityLockRequested {
            lock_set: vec!["@a@1".into(), "@b@2".into()],
            position: 1,
            caller: Some(caller.clone()),
        },
        EventKind::EntityUnlockSent {
            lock_set: vec!["@a@1".into(), "@b@2".into()],
            caller: Some(caller),
        },
        EventKind::EntityUnlockSent {
            lock_set: Vec::new(),
            caller: None,
        },
        EventKind::EntityOperationCompleted {
            task_scheduled_id: 6,
            result: "5".into(),
        },
        EventKind::EntityOperationFailed {
            task_scheduled_id: 7,
            failure: failure("entity op failed"),
        },
        EventKind::EntityLockGranted {
            task_scheduled_id: 8,
        },
        EventKind::ExecutionSuspended {
            reason: Some("maintenance".into()),
        },
        EventKind::ExecutionResumed { reason: None },
        EventKind::ExecutionRewound {
            reason: Some("fixed \"it\"".into()),
        },
        EventKind::ExecutionTerminated {
            reason: Some(json("stop")),
        },
        EventKind::ContinueAsNew {
            input: text.clone(),
        },
        EventKind::ExecutionCompleted {
            status: CompletionStatus::Completed,
            result: Some(text),
            failure: None,
        },
        EventKind::ExecutionCompleted {
            status: CompletionStatus::Failed,
            result: None,
            failure: Some(failure("execution failed")),
        },
        EventKind::ExecutionCompleted {
            status: CompletionStatus::Terminated,
            result: Some(json("reason")),
            failure: None,
        },
        EventKind::OrchestratorCompleted,
    ];
    let events: Vec<HistoryEvent> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| HistoryEvent {
            event_id: if i % 3 == 0 { -1 } else { i as i64 * 1000 },
            timestamp: at(i as i64),
            kind,
        })
        .collect();
    let covered: BTreeSet<usize> = events.iter().map(|e| kind_index(&e.kind)).collect();
    assert_eq!(
        covered.len(),
        EVENT_KINDS,
        "every_event covers every event kind"
    );
    events
}

/// The history comes back in order with every field of every event kind intact (including
/// nanosecond timestamps, which replay turns into orchestration time); queued messages of
/// every kind round-trip too.
pub async fn history_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let events = every_event();
    let (first, second) = events.split_at(events.len() / 2);
    ok(
        s.create_instance(new_instance("h", t(0))).await,
        "create_instance",
    );
    commit_next(s, t(0), "h", "first turn", |item| TurnCommit {
        history: HistoryWrite::Append(first.to_vec()),
        ..plain_commit(item, RuntimeStatus::Running, t(0))
    })
    .await;
    assert_eq!(
        history_of(s, "h").await,
        first,
        "the first turn's events, in order, every field intact (timestamps to the nanosecond)"
    );

    let queued: Vec<OrchestrationMessage> = events
        .iter()
        .enumerate()
        .map(|(i, e)| OrchestrationMessage {
            instance_id: "h".into(),
            execution_id: (i % 2 == 0).then(|| format!("exec-{i}")),
            event: e.clone(),
            visible_at: None,
        })
        .collect();
    for message in &queued {
        ok(s.enqueue(message.clone()).await, "enqueue");
    }
    let item = commit_next(s, t(1), "h", "second turn", |item| TurnCommit {
        history: HistoryWrite::Append(second.to_vec()),
        ..plain_commit(item, RuntimeStatus::Running, t(1))
    })
    .await;
    assert_eq!(
        messages(&item),
        queued,
        "queued messages of every kind round-trip, every field intact"
    );
    assert_eq!(item.history_len, first.len());
    assert_eq!(
        history_of(s, "h").await,
        events,
        "both turns' events, in order, every field intact"
    );
}

// ---------------------------------------------------------------------------------------------
// Abandon and park.

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

// ---------------------------------------------------------------------------------------------
// Activities.

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

// ---------------------------------------------------------------------------------------------
// Queries.

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

// ---------------------------------------------------------------------------------------------
// Purge and entity removal.

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

// ---------------------------------------------------------------------------------------------
// Task hubs, idleness, signals.

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

// ---------------------------------------------------------------------------------------------
// Payloads.

/// A JSON string of at least 1 MiB, with escapes and multi-byte characters.
fn big_json(tag: &str) -> String {
    let chunk = format!("{tag}: ünïcødé 🚀 \"quoted\" back\\slash\nnew line\t");
    let mut raw = String::new();
    while raw.len() < (1 << 20) {
        raw.push_str(&chunk);
    }
    json(&raw)
}

/// 1 MiB inputs, outputs, custom statuses, events, activity inputs and results round-trip.
pub async fn large_payloads(store: Arc<dyn Store>) {
    let s = &*store;
    let mut new = new_instance("big", t(0));
    new.input = big_json("input");
    ok(s.create_instance(new.clone()).await, "create a 1 MiB input");
    assert_eq!(
        status_of(s, "big", "big").await.input.as_deref(),
        Some(new.input.as_str()),
        "a 1 MiB input round-trips"
    );
    let raised = OrchestrationMessage {
        event: HistoryEvent::new(
            t(1),
            EventKind::EventRaised {
                name: "Big".into(),
                input: big_json("event"),
            },
        ),
        ..event("big", "Big", t(1))
    };
    ok(s.enqueue(raised.clone()).await, "enqueue a 1 MiB event");
    let item = item_for(s, t(1), "big", "big").await;
    assert!(
        messages(&item) == vec![new.start_message(), raised.clone()],
        "1 MiB messages round-trip"
    );
    let task = ActivityTask {
        instance_id: "big".into(),
        execution_id: new.execution_id.clone(),
        task_id: 0,
        name: "Big".into(),
        input: big_json("activity"),
    };
    let history = vec![
        new.start_message().event,
        raised.event.clone(),
        HistoryEvent {
            event_id: 0,
            timestamp: t(1),
            kind: EventKind::TaskScheduled {
                name: "Big".into(),
                input: task.input.clone(),
            },
        },
    ];
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.custom_status = Some(big_json("custom"));
    status.output = Some(big_json("output"));
    status.failure = Some(failure(&big_json("failure")));
    ok(
        s.commit_turn(
            &item,
            TurnCommit {
                consumed: seqs(&item),
                history: HistoryWrite::Append(history.clone()),
                status: status.clone(),
                activities: vec![task.clone()],
                messages: Vec::new(),
                new_instances: Vec::new(),
            },
        )
        .await,
        "commit 1 MiB payloads",
    );
    assert!(
        status_of(s, "big", "big").await == status,
        "a status with 1 MiB fields round-trips"
    );
    assert!(
        history_of(s, "big").await == history,
        "a 1 MiB history round-trips"
    );
    let act = fetch_activity(s, LONG_LEASE, "the big activity").await;
    assert!(act.task == task, "a 1 MiB activity input round-trips");
    let response = task_completed(&task, &big_json("result"), t(2));
    ok(
        s.complete_activity(&act, response.clone()).await,
        "complete",
    );
    let item = item_for(s, t(2), "big", "the big response").await;
    assert!(
        messages(&item) == vec![response],
        "a 1 MiB activity result round-trips"
    );
}

/// Ids and payloads with unicode, quotes, backslashes, SQL and JSON metacharacters round-trip
/// through every operation. (Ids never hold control characters — the client refuses them —
/// payloads may.)
pub async fn unusual_text_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let id = "ünïcødé 'single' \"double\" back\\slash |pipe% _under; DROP TABLE x;-- 🚀 日本語";
    let target = "другой \"target\" 'q'";
    let entity = EntityId::new("Ünï", "ключ 'k' \"q\" @at").to_string();
    let payload =
        "{\"text\":\"line one\\nline two\\ttab \\\"q\\\" 'single' \\\\ \\u0000 ünï 🚀\"}\n";
    let mut new = new_instance(id, t(0));
    new.name = "Flow 'named' \"oddly\" ü".into();
    new.input = payload.into();
    new.execution_id = "exec 'ü' \"1\"".into();
    ok(s.create_instance(new.clone()).await, "create an unusual id");
    let mut target_new = new_instance(target, t(0));
    target_new.input = payload.into();
    ok(s.create_instance(target_new.clone()).await, "create");
    assert_eq!(
        status_of(s, id, "the unusual instance").await,
        new.initial_status(),
        "unusual text round-trips through the status"
    );
    let items = all_items(s, t(0), "the unusual instances").await;
    assert_eq!(messages(&items[id]), vec![new.start_message()]);
    assert_eq!(messages(&items[target]), vec![target_new.start_message()]);
    ok(
        s.commit_turn(
            &items[target],
            plain_commit(&items[target], RuntimeStatus::Running, t(0)),
        )
        .await,
        "commit",
    );
    let item = &items[id];
    let task = ActivityTask {
        instance_id: id.into(),
        execution_id: new.execution_id.clone(),
        task_id: 0,
        name: "Act 'ü' \"x\"".into(),
        input: payload.into(),
    };
    let history = first_turn_history(&new.start_message(), t(1));
    let mut status = status_as(&item.instance, RuntimeStatus::Running, t(1));
    status.custom_status = Some(payload.into());
    status.failure = Some(failure(payload));
    status.parent_instance_id = Some(target.into());
    let to_target = OrchestrationMessage {
        event: HistoryEvent::new(
            t(1),
            EventKind::EventRaised {
                name: "Név \"x\"".into(),
                input: payload.into(),
            },
        ),
        ..event(target, "x", t(1))
    };
    let to_entity = OrchestrationMessage {
        event: HistoryEvent::new(
            t(1),
            EventKind::EntityOperationSignaled {
                entity_id: entity.clone(),
                operation: "op 'ü'".into(),
                input: payload.into(),
            },
        ),
        ..signal_entity(&entity, "x", t(1))
    };
    ok(
        s.commit_turn(
            item,
            TurnCommit {
                consumed: seqs(item),
                history: HistoryWrite::Append(history.clone()),
                status: status.clone(),
                activities: vec![task.clone()],
                messages: vec![to_target.clone(), to_entity.clone()],
                new_instances: Vec::new(),
            },
        )
        .await,
        "commit unusual text",
    );
    assert_eq!(status_of(s, id, "after the commit").await, status);
    assert_eq!(history_of(s, id).await, history);
    assert_eq!(
        status_of(s, &entity, "the unusual entity").await,
        new_entity_status(&entity, t(1))
    );
    let items = all_items(s, t(1), "the delivered messages").await;
    assert_eq!(messages(&items[target]), vec![to_target]);
    assert_eq!(messages(&items[&entity]), vec![to_entity]);
    let act = fetch_activity(s, LONG_LEASE, "the unusual activity").await;
    assert_eq!(act.task, task);
    ok(s.park_activity(&act, payload, t(2)).await, "park");
    let parked = parked_for(s, id).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].error, payload,
        "an unusual error text round-trips"
    );

    let by_prefix = InstanceQuery {
        instance_id_prefix: Some(id.into()),
        ..Default::default()
    };
    assert_eq!(
        query_ids(s, by_prefix, "the unusual id as a prefix").await,
        vec![id]
    );
    let by_prefix = InstanceQuery {
        instance_id_prefix: Some(entity.clone()),
        ..Default::default()
    };
    assert_eq!(
        query_ids(s, by_prefix, "the unusual entity as a prefix").await,
        vec![entity.clone()]
    );
}
