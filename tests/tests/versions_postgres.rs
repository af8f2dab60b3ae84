//! Two hosts of different versions side by side on one PostgreSQL database: with a strict
//! version match and the leave strategy, each runs only the instances of its own version, and
//! both sets finish.
//!
//! Needs a database: `DURABLE_POSTGRES_URL`, or `scripts/with-postgres cargo test …`, which
//! starts a throwaway one. Without it the test says so and passes.

use std::time::Duration;

use durable::prelude::*;
use durable::store::Postgres;
use durable::{LeftReason, VersionFailure, VersionMatch};

#[macro_use]
#[path = "support/postgres.rs"]
mod postgres;

use postgres::*;

#[activity]
async fn double(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    Ok(n * 2)
}

/// The code of the 1.0 deployment.
mod one {
    use super::*;

    #[orchestrator]
    pub async fn stamped(
        ctx: OrchestrationContext,
        n: u32,
    ) -> Result<(Option<String>, String, u32), Error> {
        let doubled = ctx.call_activity(double, n).await?;
        Ok((ctx.version(), "code 1.0".to_string(), doubled))
    }
}

/// The code of the 2.0 deployment: the same orchestrator, changed.
mod two {
    use super::*;

    #[orchestrator]
    pub async fn stamped(
        ctx: OrchestrationContext,
        n: u32,
    ) -> Result<(Option<String>, String, u32), Error> {
        let doubled = ctx.call_activity(double, n).await?;
        let again = ctx.call_activity(double, doubled).await?;
        Ok((ctx.version(), "code 2.0".to_string(), again))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_side_by_side_each_run_their_own() {
    let url = url_or_skip!();
    let hub = unique("versions");
    let host = |version: &'static str| {
        let (url, hub) = (url.clone(), hub.clone());
        async move {
            let builder = Runtime::builder()
                .store(Postgres::connect(&url).await.expect("connects"))
                .task_hub(hub)
                .register(double)
                .version(version)
                .version_match(VersionMatch::Strict)
                .version_failure(VersionFailure::Leave)
                .max_concurrent_orchestrations(4);
            let builder = if version == "1.0" {
                builder.register(one::stamped)
            } else {
                builder.register(two::stamped)
            };
            builder.start().await.expect("the host starts")
        }
    };
    let old = host("1.0").await;
    let new = host("2.0").await;
    let mut started = Vec::new();
    for n in 0..8u32 {
        // Each host's client starts under its host's version.
        started.push(("1.0", old.client().start(one::stamped, n).await.unwrap(), n));
        started.push(("2.0", new.client().start(two::stamped, n).await.unwrap(), n));
    }
    for (version, id, n) in &started {
        let status = old
            .client()
            .wait_for_completion(id, Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("{version} instance {id}: {e}"));
        let (seen, code, out) = status
            .output::<(Option<String>, String, u32)>()
            .unwrap_or_else(|e| panic!("{version} instance {id}: {e}"));
        assert_eq!(seen.as_deref(), Some(*version));
        assert_eq!(status.version.as_deref(), Some(*version));
        // Every turn ran on the host of its version: the other host's code would have made
        // other steps (a nondeterminism) or another output.
        assert_eq!(code, format!("code {version}"), "instance {id}");
        let expected = if *version == "1.0" { n * 2 } else { n * 4 };
        assert_eq!(out, expected, "instance {id}");
    }
    for (host, own) in [(&old, "1.0"), (&new, "2.0")] {
        for left in host.left_work() {
            match &left.reason {
                LeftReason::Version { instance, host } => {
                    assert_ne!(instance.as_deref(), Some(own), "{left:?}");
                    assert_eq!(host.as_deref(), Some(own), "{left:?}");
                }
                other => panic!("left for another reason: {other:?}"),
            }
        }
    }
    assert!(
        old.store().parked().await.unwrap().is_empty(),
        "nothing was parked"
    );
    let page = old
        .client()
        .query(&durable::InstanceQuery {
            version: Some("2.0".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.instances.len(), 8, "queried by version");
    old.shutdown().await;
    new.shutdown().await;
}

/// What takes schema version 6 back to 5: the instances' pages filled, activities keyed by
/// their sequence number alone, with the queue's index beside it.
fn undo_version_6(schema: &str) -> String {
    format!(
        "ALTER TABLE {schema}.durable_instances RESET (fillfactor);
         ALTER TABLE {schema}.durable_activities DROP CONSTRAINT durable_activities_pkey;
         ALTER TABLE {schema}.durable_activities ADD PRIMARY KEY (seq);
         CREATE INDEX durable_activities_queue ON {schema}.durable_activities (hub, seq);"
    )
}

/// A database of schema version 1 (before versions) is upgraded when a store connects: the
/// `version` column is added, instances created before have none, and new ones record theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_versions_is_upgraded() {
    use durable::store::{NewInstance, Store};

    let url = url_or_skip!();
    let admin = admin(&url).await;
    let schema = unique("durable_before_versions");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let scoped = in_schema(&url, &schema);
    let result = async {
        let store = Postgres::connect(&scoped).await.expect("connects");
        store
            .create_instance(new_instance("from-v1"))
            .await
            .unwrap();
        drop(store);
        // Back to what version 1 left: no versions, no partitions.
        admin
            .batch_execute(&format!(
                "DROP INDEX {schema}.durable_instances_version;
                 ALTER TABLE {schema}.durable_instances DROP COLUMN version;
                 ALTER TABLE {schema}.durable_instances DROP COLUMN id_hash;
                 ALTER TABLE {schema}.durable_instances DROP COLUMN left_by;
                 ALTER TABLE {schema}.durable_instances DROP COLUMN left_until;
                 DROP FUNCTION {schema}.durable_id_hash(text);
                 DROP TABLE {schema}.durable_partitions;
                 DROP TABLE {schema}.durable_hosts;
                 {undo_6}
                 DELETE FROM {schema}.durable_schema_version WHERE version > 1;",
                undo_6 = undo_version_6(&schema)
            ))
            .await
            .unwrap();

        let store = Postgres::connect(&scoped).await.expect("upgrades");
        let versions: Vec<i32> = admin
            .query(
                &format!("SELECT version FROM {schema}.durable_schema_version ORDER BY 1"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=Postgres::SCHEMA_VERSION).collect::<Vec<_>>());
        let old = store.instance("from-v1").await.unwrap().unwrap();
        assert_eq!(
            old.version, None,
            "an instance from before versions has none"
        );
        store
            .create_instance(NewInstance {
                version: Some("2.0".into()),
                ..new_instance("after")
            })
            .await
            .unwrap();
        let page = store
            .query(&durable::InstanceQuery {
                version: Some("2.0".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page
            .instances
            .iter()
            .map(|s| s.instance_id.as_str())
            .collect();
        assert_eq!(ids, ["after"]);
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[orchestrator]
async fn doubled_after_go(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    let first = ctx.call_activity(double, n).await?;
    let go: u32 = ctx.wait_for_event("go").await?;
    ctx.call_activity(double, first + go).await
}

/// A database of schema version 4 (history one row per event, foreign keys on history and
/// messages) is upgraded when a store connects, and its instances go on: their history reads
/// back whole, old rows and the new turns' rows together, and replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_written_before_schema_5_go_on_after_the_upgrade() {
    let url = url_or_skip!();
    let admin = admin(&url).await;
    let schema = unique("durable_before_turn_rows");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let scoped = in_schema(&url, &schema);
    let host = async |scoped: &str| {
        Runtime::builder()
            .store(Postgres::connect(scoped).await.expect("connects"))
            .register(doubled_after_go)
            .register(double)
            .start()
            .await
            .unwrap()
    };
    let result = async {
        let rt = host(&scoped).await;
        let id = rt.client().start(doubled_after_go, 5).await.unwrap();
        let mut before = Vec::new();
        for _ in 0..200 {
            before = rt.store().history(&id).await.unwrap();
            if before
                .iter()
                .any(|e| matches!(e.kind, durable::history::EventKind::TaskCompleted { .. }))
                && rt.store().is_idle(chrono::Utc::now()).await.unwrap()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rt.shutdown().await;
        // Back to what version 4 wrote: one row per event, and the foreign keys.
        admin
            .batch_execute(&format!(
                "CREATE TABLE {schema}.per_event AS
                     SELECT h.hub, h.instance_id, h.seq + e.ord::integer - 1 AS seq, e.event
                     FROM {schema}.durable_history h,
                          json_array_elements(h.event) WITH ORDINALITY AS e(event, ord);
                 DELETE FROM {schema}.durable_history;
                 INSERT INTO {schema}.durable_history SELECT * FROM {schema}.per_event;
                 DROP TABLE {schema}.per_event;
                 ALTER TABLE {schema}.durable_history ADD CONSTRAINT durable_history_hub_instance_id_fkey
                     FOREIGN KEY (hub, instance_id) REFERENCES {schema}.durable_instances (hub, instance_id)
                     ON DELETE CASCADE;
                 ALTER TABLE {schema}.durable_messages ADD CONSTRAINT durable_messages_hub_instance_id_fkey
                     FOREIGN KEY (hub, instance_id) REFERENCES {schema}.durable_instances (hub, instance_id)
                     ON DELETE CASCADE;
                 {undo_6}
                 DELETE FROM {schema}.durable_schema_version WHERE version > 4;",
                undo_6 = undo_version_6(&schema)
            ))
            .await
            .unwrap();
        let rows: i64 = admin
            .query_one(
                &format!("SELECT count(*) FROM {schema}.durable_history"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows as usize, before.len(), "one row per event, as before");

        let rt = host(&scoped).await;
        assert_eq!(
            rt.store().history(&id).await.unwrap(),
            before,
            "the old rows read back as they were written"
        );
        let keys: i64 = admin
            .query_one(
                &format!(
                    "SELECT count(*) FROM information_schema.table_constraints
                     WHERE table_schema = '{schema}' AND constraint_type = 'FOREIGN KEY'"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(keys, 0, "schema 5 has no foreign keys");
        rt.client().raise_event(&id, "go", 1).await.unwrap();
        let done = rt
            .client()
            .wait_for_completion(&id, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(done.output::<u32>().unwrap(), 22, "(5 * 2 + 1) * 2");
        let after = rt.store().history(&id).await.unwrap();
        assert_eq!(
            after[..before.len()],
            before[..],
            "the old events come first"
        );
        assert!(after.len() > before.len());
        rt.shutdown().await;
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
