//! The SQLite store opens files that older versions of durable wrote: it upgrades them to the
//! current schema, and everything they held reads back and carries on.

use durable::prelude::InstanceId;
use durable::store::Sqlite;
use durable::testing::TestRuntime;
use durable_tests::finished;
use durable_tests::sqlite_files::{builder, histories, pipeline};

/// A file of schema version 4 (history one row per event, keyed by instance) is upgraded when
/// opened: every history reads back as it was, a waiting instance carries on after it, and a
/// purge removes an upgraded history whole.
#[tokio::test]
async fn a_file_of_schema_version_4_keeps_every_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let first = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let words = (0..=n).map(|i| format!("w{i}")).collect::<Vec<_>>();
        let id = first.client().start(pipeline, words).await.unwrap();
        ids.push(id);
    }
    first.idle().await;
    for id in &ids[..2] {
        first.client().raise_event(id, "Go", "done").await.unwrap();
        finished(&first, id).await;
    }
    first.idle().await;
    let before = histories(&first, &ids).await;
    first.shutdown().await;
    drop(first);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE history_v4 (hub TEXT NOT NULL, instance_id TEXT NOT NULL, \
                 idx INTEGER NOT NULL, event TEXT NOT NULL, \
                 PRIMARY KEY (hub, instance_id, idx)) WITHOUT ROWID; \
             INSERT INTO history_v4 SELECT h.hub, h.instance_id, h.idx + e.key, e.value \
                 FROM history AS h, json_each(h.events) AS e; \
             DROP TABLE history; ALTER TABLE history_v4 RENAME TO history; \
             ALTER TABLE instances DROP COLUMN history_last; \
             PRAGMA user_version = 4;",
        )
        .unwrap();
    }

    let second = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        histories(&second, &ids).await,
        before,
        "the histories read back"
    );
    second
        .client()
        .raise_event(&ids[2], "Go", "later")
        .await
        .unwrap();
    let status = finished(&second, &ids[2]).await;
    assert_eq!(status.output::<String>().unwrap(), "W0 W1 W2 later");
    let after = histories(&second, &ids[2..]).await.remove(0);
    assert_eq!(
        after[..before[2].len()],
        before[2][..],
        "appended to, not rewritten"
    );
    assert!(second.client().purge(&ids[0]).await.unwrap());
    second.shutdown().await;
    drop(second);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows = |id: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM history WHERE instance_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(rows(&ids[0]), 0, "the purged history is gone");
    assert!(rows(&ids[1]) > 0 && rows(&ids[2]) > 1);
}

/// A file the first schema version wrote (its indexes, `user_version` 1) is upgraded when
/// opened: its waiting instance carries on, and the file is at the current version.
#[tokio::test]
async fn a_file_of_the_first_schema_version_is_upgraded_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let first = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    let words = vec!["old".to_string(), "file".to_string()];
    let id = first
        .client()
        .start(pipeline, words)
        .instance_id("v1")
        .await
        .unwrap();
    first.idle().await;
    let before = first
        .client()
        .status_with_history(&id)
        .await
        .unwrap()
        .unwrap()
        .history
        .unwrap();
    first.shutdown().await;
    drop(first);
    let current: i64 = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let current = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        // Back to what version 1 left: its index on visible times, none of the later
        // indexes and tables, no versions, and history one row per event.
        conn.execute_batch(
            "DROP INDEX messages_by_visible; DROP INDEX activities_free; \
             DROP INDEX activities_by_expiry; DROP TABLE partitions; DROP TABLE hosts; \
             DROP INDEX instances_by_version; ALTER TABLE instances DROP COLUMN version; \
             CREATE INDEX messages_by_visible ON messages (hub, visible_at); \
             CREATE TABLE history_v1 (hub TEXT NOT NULL, instance_id TEXT NOT NULL, \
                 idx INTEGER NOT NULL, event TEXT NOT NULL, \
                 PRIMARY KEY (hub, instance_id, idx)) WITHOUT ROWID; \
             INSERT INTO history_v1 SELECT h.hub, h.instance_id, h.idx + e.key, e.value \
                 FROM history AS h, json_each(h.events) AS e; \
             DROP TABLE history; ALTER TABLE history_v1 RENAME TO history; \
             ALTER TABLE instances DROP COLUMN history_last; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
        current
    };
    assert!(current > 1, "the current schema is newer than version 1");

    let second = TestRuntime::start(builder(Sqlite::open(&path).unwrap()).version("2.0"))
        .await
        .unwrap();
    let upgraded = second
        .client()
        .status_with_history(&id)
        .await
        .unwrap()
        .unwrap()
        .history
        .unwrap();
    assert_eq!(upgraded, before, "the history reads back as it was written");
    second.client().raise_event(&id, "Go", "now").await.unwrap();
    let status = finished(&second, &id).await;
    assert_eq!(status.output::<String>().unwrap(), "OLD FILE now");
    assert_eq!(
        status.version, None,
        "an instance from before versions has none"
    );
    let versioned = second
        .client()
        .start(pipeline, vec!["new".to_string()])
        .await
        .unwrap();
    second
        .client()
        .raise_event(&versioned, "Go", "too")
        .await
        .unwrap();
    let status = finished(&second, &versioned).await;
    assert_eq!(
        status.version.as_deref(),
        Some("2.0"),
        "new ones record the host's version"
    );
    second.shutdown().await;
    drop(second);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, current, "the file is at the current version");
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('activities_free', 'activities_by_expiry')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        indexes.len(),
        2,
        "the upgrade added the activity indexes: {indexes:?}"
    );
}

/// A file of schema version 5 (instances keyed without a rowid, their columns in the order
/// they were added) is upgraded when opened: every instance and entity reads back as it was,
/// a waiting instance carries on, and the instances are in a table with a rowid.
#[tokio::test]
async fn a_file_of_schema_version_5_keeps_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let first = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for words in [&["a", "b"][..], &["c"][..]] {
        let words = words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        ids.push(first.client().start(pipeline, words).await.unwrap());
    }
    first.idle().await;
    first
        .client()
        .raise_event(&ids[0], "Go", "done")
        .await
        .unwrap();
    finished(&first, &ids[0]).await;
    first.idle().await;
    let statuses = |runtime: &TestRuntime| {
        let client = runtime.client();
        let ids = ids.clone();
        async move {
            let mut all = Vec::new();
            for id in ids.iter().map(InstanceId::as_str).chain(["@tally@words"]) {
                all.push(format!("{:?}", client.status(id).await.unwrap().unwrap()));
            }
            all
        }
    };
    let before = (statuses(&first).await, histories(&first, &ids).await);
    first.shutdown().await;
    drop(first);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE instances_v5 (hub TEXT NOT NULL, instance_id TEXT NOT NULL, \
                 name TEXT NOT NULL, execution_id TEXT NOT NULL, runtime_status TEXT NOT NULL, \
                 input TEXT, output TEXT, custom_status TEXT, failure TEXT, \
                 created_at INTEGER NOT NULL, last_updated_at INTEGER NOT NULL, \
                 parent_instance_id TEXT, history_len INTEGER NOT NULL DEFAULT 0, \
                 lock_token TEXT, lock_expires INTEGER, version TEXT, history_last INTEGER, \
                 PRIMARY KEY (hub, instance_id)) WITHOUT ROWID; \
             INSERT INTO instances_v5 SELECT hub, instance_id, name, execution_id, \
                 runtime_status, input, output, custom_status, failure, created_at, \
                 last_updated_at, parent_instance_id, history_len, lock_token, lock_expires, \
                 version, history_last FROM instances; \
             DROP TABLE instances; ALTER TABLE instances_v5 RENAME TO instances; \
             CREATE INDEX instances_by_created ON instances (hub, created_at, instance_id); \
             CREATE INDEX instances_by_version ON instances \
                 (hub, version, created_at, instance_id); \
             PRAGMA user_version = 5;",
        )
        .unwrap();
    }

    let second = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        (statuses(&second).await, histories(&second, &ids).await),
        before,
        "every instance, entity and history reads back"
    );
    second
        .client()
        .raise_event(&ids[1], "Go", "later")
        .await
        .unwrap();
    let status = finished(&second, &ids[1]).await;
    assert_eq!(status.output::<String>().unwrap(), "C later");
    second.shutdown().await;
    drop(second);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (version, rows): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), \
                 (SELECT count(rowid) FROM instances)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(version, 6, "the file is at the current version");
    assert_eq!(
        rows, 3,
        "two orchestrations and the entity, in a table with a rowid"
    );
}
