//! The PostgreSQL store: the conformance suite, several hosts sharing one database, leases that
//! expire, commits that fail half-way, writes that arrive together, and commits that read the
//! work they give (connections and schema versions are in `store_postgres_connections.rs`).
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

/// A commit reads the work it gives this host's idle instances in its batch's transaction, and
/// the host runs that work next: a chain of ~200 turns, each giving the next its work, is run
/// with almost none of them read on their own. (On one thread, as the same test on the other
/// stores: with several, a receiver may still be finishing its previous turn when the commit
/// that gives it work is made; unless that work came before the receiver's own commit was
/// sent, which then reads it, the receiver is read on its own after that turn.)
#[tokio::test]
async fn a_commit_reads_the_work_it_gives_the_hosts_idle_instances() {
    let url = url_or_skip!();
    let store = store_in_fresh_hub(&url).await;
    let (handed, read) = durable_tests::chain::chain_reads(Arc::new(store)).await;
    assert!(
        handed >= 195 && read <= 5,
        "{handed} handed over, {read} read"
    );
}
