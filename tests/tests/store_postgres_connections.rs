//! The PostgreSQL store's connections and schema: a connection lost in the middle of a commit,
//! connection failures that say what failed, and schema versions (migrations applied once, a
//! newer database refused).
//!
//! Needs a database: `DURABLE_POSTGRES_URL`, or `scripts/with-postgres cargo test …`, which
//! starts a throwaway one. Without it every test says so and passes.

use std::time::Duration;

use durable::history::{EventKind, HistoryEvent};
use durable::prelude::*;
use durable::store::{Postgres, Store, StoreError, TurnCommit};

#[macro_use]
#[path = "support/postgres.rs"]
mod postgres;

use postgres::*;

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
