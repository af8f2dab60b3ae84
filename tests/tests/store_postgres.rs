//! The PostgreSQL store: the conformance suite, several hosts sharing one database, leases that
//! expire, commits that fail half-way, lost connections, and schema versions.
//!
//! Needs a database: `DURABLE_POSTGRES_URL`, or `scripts/with-postgres cargo test …`, which
//! starts a throwaway one. Without it every test says so and passes. Each test works in its own
//! task hub (or its own schema), so runs and tests never see each other's data.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::history::{EventKind, HistoryEvent};
use durable::prelude::*;
use durable::store::{ActivityTask, Postgres, Store, StoreError, TurnCommit};

#[macro_use]
#[path = "support/postgres.rs"]
mod postgres;

use postgres::*;

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

/// Commits that arrive together are written together, and a commit that may not apply is
/// refused alone: thirty turns committed at once all apply, while a second commit of a turn
/// already committed (its lease released) is refused with `LeaseLost` and applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_that_arrive_together_apply_each_or_are_refused_alone() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    for i in 0..31 {
        store
            .create_instance(new_instance(&format!("g{i}")))
            .await
            .unwrap();
    }
    let mut items = Vec::new();
    while let Some(item) = fetch(&store, Duration::from_secs(300)).await {
        items.push(item);
    }
    assert_eq!(items.len(), 31);
    let done = items.pop().unwrap();
    store
        .commit_turn(&done, first_turn(&done))
        .await
        .expect("the first commit applies");
    let mut commits = Vec::new();
    for item in items.into_iter().chain([done.clone()]) {
        let store = store.clone();
        commits.push(tokio::spawn(async move {
            let result = store.commit_turn(&item, first_turn(&item)).await;
            (item.instance_id, result)
        }));
    }
    for commit in commits {
        let (id, result) = commit.await.unwrap();
        if id == done.instance_id {
            assert!(
                matches!(result, Err(StoreError::LeaseLost)),
                "a turn committed twice is refused: {result:?}"
            );
        } else {
            result.unwrap_or_else(|e| panic!("{id}'s commit applies: {e}"));
            let status = store.instance(&id).await.unwrap().unwrap();
            assert_eq!(status.runtime_status, RuntimeStatus::Running, "{id}");
            assert_eq!(store.history(&id).await.unwrap().len(), 1, "{id}");
        }
    }
    assert_eq!(
        store.history(&done.instance_id).await.unwrap().len(),
        1,
        "the refused commit appended nothing"
    );
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

/// A batch fetch leases at most as many activities as asked for, whatever plan PostgreSQL
/// picks for it. With statistics that say the activity table is empty (as when an autovacuum
/// `ANALYZE` ran while the queue was drained), the planner runs the pick of activities once
/// per row of the table; picked by `IN (SELECT … LIMIT …)`, every queued activity was then
/// leased, and a host's activity dispatcher, given more activities than it had slots for,
/// stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fetch_leases_no_more_activities_than_asked_for() {
    let url = url_or_skip!();
    let admin = admin(&url).await;
    let schema = unique("durable_fetch_limit");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let result = async {
        let store = Postgres::connect(&in_schema(&url, &schema))
            .await
            .expect("the store connects")
            .in_task_hub(&unique("hub"));
        let lease = Duration::from_secs(300);
        // Queues 40 activities for instance `id` in its first turn.
        let fan_out = async |id: &str| {
            store.create_instance(new_instance(id)).await.unwrap();
            let item = fetch(&store, lease).await.unwrap();
            let tasks: Vec<ActivityTask> = (0..40)
                .map(|i| ActivityTask {
                    instance_id: id.into(),
                    execution_id: item.instance.execution_id.clone(),
                    task_id: i,
                    name: "Step".into(),
                    input: "null".into(),
                })
                .collect();
            let commit = TurnCommit {
                activities: tasks.clone(),
                ..first_turn(&item)
            };
            store.commit_turn(&item, commit).await.unwrap();
            tasks
        };
        // A queue that filled and drained, and statistics taken then.
        fan_out("drained").await;
        let all = store.fetch_activities(lease, 40).await.unwrap();
        assert_eq!(all.len(), 40);
        for activity in all {
            let result = durable::store::OrchestrationMessage {
                instance_id: "drained".into(),
                execution_id: Some(activity.task.execution_id.clone()),
                event: HistoryEvent::new(
                    t(2),
                    EventKind::TaskCompleted {
                        task_scheduled_id: activity.task.task_id,
                        result: "null".into(),
                    },
                ),
                visible_at: None,
            };
            store.complete_activity(&activity, result).await.unwrap();
        }
        admin
            .batch_execute(&format!("ANALYZE {schema}.durable_activities"))
            .await
            .unwrap();
        let tasks = fan_out("fan").await;

        let mut fetched = Vec::new();
        for _ in 0..tasks.len() {
            let batch = store
                .fetch_activities(lease, 3)
                .await
                .expect("fetch_activities");
            assert!(
                batch.len() <= 3,
                "asked for 3 activities, leased {}",
                batch.len()
            );
            if batch.is_empty() {
                break;
            }
            fetched.extend(batch.into_iter().map(|a| a.task));
        }
        assert_eq!(fetched, tasks, "every activity is leased once, in order");
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_commit_with_their_turn_in_one_write() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    durable_tests::one_write::results_commit_with_their_turn(&store).await;
}

/// Result turns written in one batch each get their own answer (see the shared scenario).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_turns_arriving_together_each_get_their_own_answer() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    durable_tests::together::result_turns_arriving_together_each_get_their_own_answer(Arc::new(
        store,
    ))
    .await;
}

/// Client messages written in one batch each get their own answer (see the shared scenario).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_together_each_get_their_own_answer() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    durable_tests::together::messages_arriving_together_each_get_their_own_answer(Arc::new(store))
        .await;
}
