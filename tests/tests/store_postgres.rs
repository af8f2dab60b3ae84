//! The PostgreSQL store: the conformance suite, several hosts sharing one database, leases that
//! expire, commits that fail half-way, lost connections, and schema versions.
//!
//! Needs a database: `DURABLE_POSTGRES_URL`, or `scripts/with-postgres cargo test …`, which
//! starts a throwaway one. Without it every test says so and passes. Each test works in its own
//! task hub (or its own schema), so runs and tests never see each other's data.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use durable::history::{EventKind, HistoryEvent};
use durable::prelude::*;
use durable::store::{
    ActivityTask, Fetched, HistoryWrite, NewInstance, OrchestrationWorkItem, Postgres, Store,
    StoreError, TurnCommit,
};
use tokio::sync::Notify;
use tokio_postgres::NoTls;

const URL_VAR: &str = "DURABLE_POSTGRES_URL";

/// The database to test against, or `None` (after saying the tests are skipped).
fn database_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL tests skipped: set {URL_VAR} or run scripts/with-postgres"
            );
            None
        }
    }
}

macro_rules! url_or_skip {
    () => {
        match database_url() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with extra connection parameters (URL or `key=value` form).
fn with_param(url: &str, key: &str, value: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let encoded: String = value
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={encoded}")
    } else {
        format!("{url} {key}='{value}'")
    }
}

/// `url` with its search path set to `schema`: a store connected with it lives in that schema.
fn in_schema(url: &str, schema: &str) -> String {
    with_param(url, "options", &format!("-csearch_path={schema}"))
}

/// A plain connection for the tests' own SQL.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {URL_VAR} failed: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A store on `url`, scoped to a fresh task hub.
async fn store_in_fresh_hub(url: &str) -> Postgres {
    Postgres::connect(url)
        .await
        .expect("the store connects")
        .in_task_hub(&unique("hub"))
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
        + TimeDelta::seconds(secs)
}

fn new_instance(id: &str) -> NewInstance {
    NewInstance {
        instance_id: id.to_string(),
        name: "Flow".into(),
        input: "null".into(),
        execution_id: format!("{id}-exec"),
        parent: None,
        created_at: t(0),
        start_at: None,
        replace_running: false,
    }
}

async fn fetch(store: &dyn Store, lease: Duration) -> Option<OrchestrationWorkItem> {
    match store
        .fetch_orchestration(t(0), lease)
        .await
        .expect("fetch_orchestration")
    {
        Fetched::Item(item) => Some(item),
        Fetched::Empty { .. } => None,
    }
}

/// A turn that starts the instance: consumes its messages, appends their events, Running.
fn first_turn(item: &OrchestrationWorkItem) -> TurnCommit {
    TurnCommit {
        consumed: item.messages.iter().map(|m| m.seq).collect(),
        history: HistoryWrite::Append(
            item.messages
                .iter()
                .map(|m| m.message.event.clone())
                .collect(),
        ),
        status: InstanceStatus {
            runtime_status: RuntimeStatus::Running,
            last_updated_at: t(1),
            ..item.instance.clone()
        },
        activities: Vec::new(),
        messages: Vec::new(),
        new_instances: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance suite, each check in a schema of its own.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let url = url_or_skip!();
    let admin = Arc::new(admin(&url).await);
    let schemas = Arc::new(Mutex::new(Vec::new()));
    let factory = {
        let (url, admin, schemas) = (url.clone(), admin.clone(), schemas.clone());
        move || {
            let (url, admin, schemas) = (url.clone(), admin.clone(), schemas.clone());
            async move {
                let schema = unique("durable_conformance");
                admin
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("a schema for the check");
                schemas.lock().unwrap().push(schema.clone());
                let store = Postgres::connect(&in_schema(&url, &schema))
                    .await
                    .expect("the store connects");
                Arc::new(store.in_task_hub(&unique("conformance"))) as Arc<dyn Store>
            }
        }
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        durable::store::conformance::run_all(&factory),
    ))
    .await;
    let created = std::mem::take(&mut *schemas.lock().unwrap());
    for schema in created {
        let _ = admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------------
// Leases, SKIP LOCKED and atomic commits, on the store itself.

/// Two hosts (two pools) fetching at once never lease the same instance twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_lease_each_instance_once() {
    let url = url_or_skip!();
    let a = store_in_fresh_hub(&url).await;
    let b = Postgres::connect(&url)
        .await
        .expect("a second pool")
        .in_task_hub(a.task_hub());
    let ids: HashSet<String> = (0..40).map(|i| format!("i{i}")).collect();
    for id in &ids {
        a.create_instance(new_instance(id)).await.expect("create");
    }
    let drain = |store: Postgres| async move {
        let mut leased = Vec::new();
        while let Some(item) = fetch(&store, Duration::from_secs(300)).await {
            leased.push(item.instance_id);
        }
        leased
    };
    let (from_a, from_b) = tokio::join!(
        tokio::spawn(drain(a.clone())),
        tokio::spawn(drain(b.clone()))
    );
    let mut all = from_a.unwrap();
    all.extend(from_b.unwrap());
    let distinct: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(
        all.len(),
        distinct.len(),
        "an instance was leased twice: {all:?}"
    );
    assert_eq!(distinct, ids, "every instance was leased");
}

/// A host whose lease expired and was taken over cannot commit: nothing of its turn is
/// applied, and the new holder's commit goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_after_a_takeover_is_refused() {
    let url = url_or_skip!();
    let a = store_in_fresh_hub(&url).await;
    let b = Postgres::connect(&url)
        .await
        .expect("a second pool")
        .in_task_hub(a.task_hub());
    a.create_instance(new_instance("slow")).await.unwrap();
    let first = fetch(&a, Duration::from_millis(100)).await.expect("leased");
    assert!(
        fetch(&b, Duration::from_secs(300)).await.is_none(),
        "the lease holds while it lasts"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = fetch(&b, Duration::from_secs(300))
        .await
        .expect("the expired lease is taken over");
    assert_eq!(second.instance_id, "slow");
    assert_eq!(second.dequeue_count, 2, "the second delivery is counted");
    assert_ne!(first.lock, second.lock);

    match a.commit_turn(&first, first_turn(&first)).await {
        Err(StoreError::LeaseLost) => {}
        other => panic!("a late commit must be refused with LeaseLost, got {other:?}"),
    }
    let status = a.instance("slow").await.unwrap().unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Pending,
        "nothing applied"
    );
    assert!(
        a.history("slow").await.unwrap().is_empty(),
        "nothing applied"
    );
    match a.abandon_orchestration(&first, Duration::ZERO).await {
        Err(StoreError::LeaseLost) => {}
        other => panic!("abandon with a lost lease: expected LeaseLost, got {other:?}"),
    }

    b.commit_turn(&second, first_turn(&second))
        .await
        .expect("the new holder commits");
    let status = b.instance("slow").await.unwrap().unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    assert_eq!(b.history("slow").await.unwrap().len(), 1);
}

/// A commit that fails half-way (here: an activity name PostgreSQL cannot store, after the
/// status, history and consumed messages were already written) leaves nothing behind and keeps
/// the lease, so the host can retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_half_way_applies_nothing() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    store.create_instance(new_instance("atomic")).await.unwrap();
    let item = fetch(&store, Duration::from_secs(300)).await.unwrap();
    let task = |name: &str| ActivityTask {
        instance_id: "atomic".into(),
        execution_id: item.instance.execution_id.clone(),
        task_id: 0,
        name: name.into(),
        input: "null".into(),
    };
    let poisoned = TurnCommit {
        activities: vec![task("Bad\0Name")],
        ..first_turn(&item)
    };
    match store.commit_turn(&item, poisoned).await {
        Err(StoreError::Backend(message)) => assert!(
            message.contains("committing a turn"),
            "the error names the operation: {message}"
        ),
        other => panic!("expected a backend error, got {other:?}"),
    }
    let status = store.instance("atomic").await.unwrap().unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Pending,
        "status untouched"
    );
    assert!(
        store.history("atomic").await.unwrap().is_empty(),
        "history untouched"
    );
    assert!(
        store
            .fetch_activity(Duration::from_secs(300))
            .await
            .unwrap()
            .is_none(),
        "no activity queued"
    );

    let fixed = TurnCommit {
        activities: vec![task("Good")],
        ..first_turn(&item)
    };
    store
        .commit_turn(&item, fixed)
        .await
        .expect("the lease survived the failed commit, and the retry applies");
    assert_eq!(store.history("atomic").await.unwrap().len(), 1);
    let activity = store
        .fetch_activity(Duration::from_secs(300))
        .await
        .unwrap()
        .expect("the activity");
    assert_eq!(activity.task.name, "Good");
    assert!(store.is_idle(t(0)).await.is_ok());
}

/// Poison messages are parked even when their error has a character PostgreSQL's text cannot
/// hold (NUL): parking must never fail, or the message would be retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_never_fails_on_text_postgres_cannot_hold() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    store.create_instance(new_instance("poison")).await.unwrap();
    let item = fetch(&store, Duration::from_secs(300)).await.unwrap();
    store
        .park_orchestration(&item, "bad\0input", t(3))
        .await
        .expect("parked despite the NUL");
    let parked = store.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].error, "bad\u{FFFD}input");
    assert_eq!(parked[0].parked_at, t(3));
    assert!(
        fetch(&store, Duration::from_secs(300)).await.is_none(),
        "the message is gone"
    );
}

/// A connection lost in the middle of a commit (a database restart, a network cut): the commit
/// fails with a backend error that says what failed, nothing of it is applied, the pool
/// reconnects, the retried commit applies once, and the notification listener comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_commit_applies_nothing_and_recovers() {
    let url = url_or_skip!();
    let app = unique("durable_kill");
    let store = Postgres::connect(&with_param(&url, "application_name", &app))
        .await
        .expect("connects")
        .in_task_hub(&unique("hub"));
    let other = store_in_fresh_hub(&url).await.in_task_hub(store.task_hub());
    store.create_instance(new_instance("k")).await.unwrap();
    let item = fetch(&store, Duration::from_secs(300)).await.unwrap();
    store.create_instance(new_instance("target")).await.unwrap();
    let ping = |to: &str| durable::store::OrchestrationMessage {
        instance_id: to.into(),
        execution_id: None,
        event: HistoryEvent::new(
            t(2),
            EventKind::EventRaised {
                name: "Ping".into(),
                input: "null".into(),
            },
        ),
        visible_at: None,
    };
    let turn = TurnCommit {
        messages: vec![ping("target")],
        ..first_turn(&item)
    };

    // Hold the target's row, so the commit stops half-way (status, history and consumed
    // messages written; the message to the target waiting), then kill its connection.
    let mut admin = admin(&url).await;
    let blocker = admin.transaction().await.unwrap();
    blocker
        .execute(
            "SELECT 1 FROM durable_instances WHERE hub = $1 AND instance_id = 'target' FOR UPDATE",
            &[&store.task_hub()],
        )
        .await
        .unwrap();
    let committing = tokio::spawn({
        let (store, item, turn) = (store.clone(), item.clone(), turn.clone());
        async move { store.commit_turn(&item, turn).await }
    });
    let mut killed = 0;
    for _ in 0..200 {
        killed = blocker
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&app],
            )
            .await
            .unwrap()
            .len();
        if killed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(killed, 1, "the commit was caught waiting half-way");
    match committing.await.unwrap() {
        Err(StoreError::Backend(message)) => assert!(
            message.contains("committing a turn"),
            "the error says what failed: {message}"
        ),
        other => panic!("a commit whose connection died must fail, got {other:?}"),
    }
    blocker.rollback().await.unwrap();
    let status = store.instance("k").await.unwrap().unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Pending,
        "status untouched"
    );
    assert!(
        store.history("k").await.unwrap().is_empty(),
        "history untouched"
    );
    let target = fetch(&other, Duration::from_secs(300))
        .await
        .expect("the target's start");
    assert_eq!(target.instance_id, "target", "k is still leased");
    assert_eq!(target.messages.len(), 1, "no message reached the target");
    other
        .commit_turn(&target, first_turn(&target))
        .await
        .unwrap();

    // Every connection of the store dies (the listener's too); the host retries.
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match store.commit_turn(&item, turn.clone()).await {
            Ok(()) => break,
            Err(StoreError::Backend(_)) if attempts < 5 => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the commit did not recover: {e:?}"),
        }
    }
    assert_eq!(
        store.history("k").await.unwrap().len(),
        1,
        "applied exactly once"
    );
    let to_target = fetch(&other, Duration::from_secs(300))
        .await
        .expect("the target's message");
    assert_eq!(to_target.instance_id, "target");
    assert_eq!(
        to_target.messages.len(),
        1,
        "the message was delivered once"
    );
    other
        .commit_turn(&to_target, first_turn(&to_target))
        .await
        .unwrap();

    // The listener reconnects: a write through another pool wakes this store.
    let signal = store.signal();
    let mut woken = false;
    for _ in 0..50 {
        let notified = signal.orchestrations.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        other.enqueue(ping("k")).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(200), notified)
            .await
            .is_ok()
        {
            woken = true;
            break;
        }
    }
    assert!(
        woken,
        "the listener reconnected and relays other hosts' writes"
    );
}

// ---------------------------------------------------------------------------------------------
// Schema versions.

/// A database written by a newer durable is refused with a clear error and left untouched;
/// connecting to the current version, or several hosts migrating at once, is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_versions() {
    let url = url_or_skip!();
    let admin = admin(&url).await;
    let schema = unique("durable_versions");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let scoped = in_schema(&url, &schema);
    let result = async {
        // Several hosts starting together migrate once.
        let connects = (0..4).map(|_| Postgres::connect(&scoped));
        for store in futures::future::join_all(connects).await {
            store.expect("concurrent first connects all succeed");
        }
        let versions_sql =
            format!("SELECT version FROM {schema}.durable_schema_version ORDER BY 1");
        let versions = async |admin: &tokio_postgres::Client| {
            admin
                .query(&versions_sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect::<Vec<_>>()
        };
        let expected: Vec<i32> = (1..=Postgres::SCHEMA_VERSION).collect();
        assert_eq!(
            versions(&admin).await,
            expected,
            "each migration applied once"
        );
        Postgres::connect(&scoped)
            .await
            .expect("reconnecting to the current version");

        let newer = Postgres::SCHEMA_VERSION + 1;
        admin
            .execute(
                &format!("INSERT INTO {schema}.durable_schema_version (version) VALUES ($1)"),
                &[&newer],
            )
            .await
            .unwrap();
        let tables = format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'"
        );
        let tables_before: i64 = admin.query_one(&tables, &[]).await.unwrap().get(0);
        match Postgres::connect(&scoped).await {
            Err(StoreError::Backend(message)) => {
                assert!(
                    message.contains(&format!("schema version {newer}"))
                        && message.contains("newer")
                        && message.contains(&format!("up to {}", Postgres::SCHEMA_VERSION)),
                    "the error names both versions and says the database is newer: {message}"
                );
            }
            other => panic!("a newer schema must be refused, got {other:?}"),
        }
        let mut expected = expected;
        expected.push(newer);
        assert_eq!(
            versions(&admin).await,
            expected,
            "the versions are untouched"
        );
        let tables_after: i64 = admin.query_one(&tables, &[]).await.unwrap().get(0);
        assert_eq!(
            tables_before, tables_after,
            "no table was created or dropped"
        );
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn connection_failures_say_what_failed() {
    let _ = url_or_skip!();
    // Nothing listens on port 1.
    match Postgres::connect("postgres://durable@127.0.0.1:1/durable?connect_timeout=5").await {
        Err(StoreError::Backend(message)) => assert!(
            message.contains("127.0.0.1:1") && message.contains("connect"),
            "the error names the database and the failure: {message}"
        ),
        other => panic!("expected a backend error, got {other:?}"),
    }
    match Postgres::connect("not a url at all =").await {
        Err(StoreError::Backend(message)) => assert!(
            message.contains("connection string"),
            "the error says the URL is invalid: {message}"
        ),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Whole hosts sharing the database.

/// The hosts that ran each (instance, step), in order.
type Runs = HashMap<(String, i64), Vec<&'static str>>;

static RUNS: LazyLock<Mutex<Runs>> = LazyLock::new(Default::default);

fn record(host: &'static str, ctx: &ActivityContext) {
    RUNS.lock()
        .unwrap()
        .entry((ctx.instance_id().to_string(), ctx.task_id()))
        .or_default()
        .push(host);
}

#[activity(name = "Double")]
async fn double_on_a(ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    record("a", &ctx);
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(n * 2)
}

#[activity(name = "Double")]
async fn double_on_b(ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    record("b", &ctx);
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(n * 2)
}

#[orchestrator]
async fn times_eight(ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
    let mut value = n;
    for _ in 0..3 {
        value = ctx.call_activity(double_on_a, value).await?;
    }
    Ok(value)
}

/// Two hosts, each with its own pool, share one task hub: a batch of orchestrations finishes,
/// every activity runs exactly once, both hosts take part, and every instance completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_finish_a_batch_exactly_once() {
    let url = url_or_skip!();
    let hub = unique("batch");
    let host = |activity: bool| {
        let url = url.clone();
        let hub = hub.clone();
        async move {
            let builder = Runtime::builder()
                .store(Postgres::connect(&url).await.expect("connects"))
                .task_hub(hub)
                .register(times_eight);
            let builder = if activity {
                builder.register(double_on_a)
            } else {
                builder.register(double_on_b)
            };
            builder.start().await.expect("the host starts")
        }
    };
    let a = host(true).await;
    let b = host(false).await;
    let prefix = unique("batch-item");
    let mut ids = Vec::new();
    for i in 0..24i64 {
        let client = if i % 2 == 0 { a.client() } else { b.client() };
        let id = client
            .start(times_eight, i)
            .instance_id(format!("{prefix}-{i}"))
            .await
            .expect("start");
        ids.push((id, i));
    }
    for (id, i) in &ids {
        let status = a
            .client()
            .wait_for_completion(id, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{id} did not finish: {e}"));
        assert_eq!(status.output::<i64>().unwrap(), i * 8, "{id}");
        let completions = a
            .store()
            .history(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ExecutionCompleted { .. }))
            .count();
        assert_eq!(completions, 1, "{id} completed exactly once");
    }
    let runs = RUNS.lock().unwrap().clone();
    let ours: Vec<_> = runs
        .iter()
        .filter(|((instance, _), _)| instance.starts_with(&prefix))
        .collect();
    assert_eq!(ours.len(), ids.len() * 3, "every step ran");
    for (key, hosts) in &ours {
        assert_eq!(hosts.len(), 1, "{key:?} ran more than once: {hosts:?}");
    }
    let on = |h: &str| ours.iter().filter(|(_, hosts)| hosts[0] == h).count();
    assert!(
        on("a") > 0 && on("b") > 0,
        "both hosts took part (a ran {}, b ran {})",
        on("a"),
        on("b")
    );
    a.shutdown().await;
    b.shutdown().await;
}

static HANGING: LazyLock<Notify> = LazyLock::new(Notify::new);

/// On the host that "crashes": starts the work and never finishes it.
#[activity(name = "Step")]
async fn step_that_hangs(_ctx: ActivityContext, _n: i64) -> Result<i64, Error> {
    HANGING.notify_one();
    std::future::pending().await
}

#[activity(name = "Step")]
async fn step(ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    Ok(n + i64::from(ctx.delivery()) * 100)
}

#[orchestrator]
async fn handed_over(ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
    ctx.call_activity(step, n).await
}

/// A host whose lease expires (it is dropped mid-activity, as if it had crashed) loses the work
/// to another host, which finishes it; the activity's second delivery is the one that counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_by_another_host() {
    let url = url_or_skip!();
    let hub = unique("takeover");
    let lease = Duration::from_secs(1);
    let crashing = Runtime::builder()
        .store(Postgres::connect(&url).await.unwrap())
        .task_hub(hub.clone())
        .lease_duration(lease)
        .register(handed_over)
        .register(step_that_hangs)
        .start()
        .await
        .unwrap();
    let client = crashing.client();
    let started = HANGING.notified();
    let id = client
        .start(handed_over, 1)
        .instance_id(unique("takeover-item"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), started)
        .await
        .expect("the first host started the activity");
    drop(crashing);

    let survivor = Runtime::builder()
        .store(Postgres::connect(&url).await.unwrap())
        .task_hub(hub)
        .lease_duration(lease)
        .register(handed_over)
        .register(step)
        .start()
        .await
        .unwrap();
    let status = survivor
        .client()
        .wait_for_completion(&id, Duration::from_secs(30))
        .await
        .expect("the surviving host finishes the work");
    assert_eq!(
        status.output::<i64>().unwrap(),
        201,
        "the activity ran on its second delivery"
    );
    survivor.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// A whole workflow on the database, with a manual clock.

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    n: i64,
}

#[entity]
impl Tally {
    pub fn add(&mut self, by: i64) {
        self.n += by;
    }

    pub fn get(&self) -> i64 {
        self.n
    }
}

#[activity]
async fn shout(_ctx: ActivityContext, word: String) -> Result<String, Error> {
    Ok(word.to_uppercase())
}

#[orchestrator]
async fn shout_all(ctx: OrchestrationContext, words: Vec<String>) -> Result<Vec<String>, Error> {
    ctx.when_all(words.into_iter().map(|w| ctx.call_activity(shout, w)))
        .await
}

#[orchestrator]
async fn tour(ctx: OrchestrationContext, round: u32) -> Result<String, Error> {
    if round == 0 {
        ctx.signal_entity::<Tally>("visits").add(1);
        return ctx.continue_as_new(1).await;
    }
    let loud = ctx
        .call_sub_orchestrator(shout_all, vec!["a".into(), "b".into()])
        .await?;
    ctx.sleep(Duration::from_secs(3600)).await;
    let go: String = ctx.wait_for_event("Go").await?;
    ctx.call_entity::<Tally>("visits").add(10).await?;
    let visits = ctx.call_entity::<Tally>("visits").get().await?;
    Ok(format!("{} {go} {visits}", loud.join("")))
}

/// Continue-as-new, a sub-orchestration fanning out activities, a durable timer driven by a
/// manual clock, an external event, and entity signals and calls, all through PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_workflow_runs_on_postgres() {
    let url = url_or_skip!();
    let builder = Runtime::builder()
        .store(store_in_fresh_hub(&url).await)
        .register(tour)
        .register(shout_all)
        .register(shout)
        .register_entity::<Tally>();
    let rt = durable::testing::TestRuntime::start(builder).await.unwrap();
    let client = rt.client();
    let id = client.start(tour, 0).await.unwrap();
    rt.advance(Duration::from_secs(3600)).await;
    client.raise_event(&id, "Go", "now").await.unwrap();
    let status = client
        .wait_for_completion(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status.output::<String>().unwrap(), "AB now 11");
    rt.idle().await;
    let tally = client
        .read_entity::<Tally>("visits")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tally.n, 11);
    rt.shutdown().await;
}
