//! The SQLite store: whole workflows on a file, restarts, and files it must refuse.

use std::sync::Arc;

use durable::prelude::*;
use durable::store::{Durability, Sqlite, Store};
use durable::testing::TestRuntime;
use durable_tests::finished;
use serde::{Deserialize, Serialize};

#[activity]
async fn shout(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text.to_uppercase())
}

#[orchestrator]
async fn pipeline(ctx: OrchestrationContext, words: Vec<String>) -> Result<String, Error> {
    let loud = ctx
        .when_all(words.into_iter().map(|w| ctx.call_activity(shout, w)))
        .await?;
    let go: String = ctx.wait_for_event("Go").await?;
    ctx.signal_entity::<Tally>("words").add(loud.len() as i64);
    Ok(format!("{} {go}", loud.join(" ")))
}

#[derive(Default, Serialize, Deserialize)]
pub struct Tally {
    n: i64,
}

#[entity]
impl Tally {
    pub fn add(&mut self, by: i64) {
        self.n += by;
    }
}

fn builder(store: Sqlite) -> durable::RuntimeBuilder {
    Runtime::builder()
        .store(store)
        .register(pipeline)
        .register(shout)
        .register_entity::<Tally>()
}

#[tokio::test]
async fn a_workflow_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let first = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    let words = vec![
        "durable".to_string(),
        "on".to_string(),
        "sqlite".to_string(),
    ];
    let id = first
        .client()
        .start(pipeline, words)
        .instance_id("p1")
        .await
        .unwrap();
    first.idle().await;
    first.shutdown().await;
    drop(first);

    let second = TestRuntime::start(builder(Sqlite::open(&path).unwrap()))
        .await
        .unwrap();
    let client = second.client();
    assert_eq!(
        client.status(&id).await.unwrap().unwrap().runtime_status,
        RuntimeStatus::Running
    );
    client.raise_event(&id, "Go", "now").await.unwrap();
    let status = finished(&second, &id).await;
    assert_eq!(status.output::<String>().unwrap(), "DURABLE ON SQLITE now");
    second.idle().await;
    let tally = client.read_entity::<Tally>("words").await.unwrap().unwrap();
    assert_eq!(tally.n, 3);
    let history = client
        .status_with_history(&id)
        .await
        .unwrap()
        .unwrap()
        .history
        .unwrap();
    assert_eq!(history.first().unwrap().kind.name(), "OrchestratorStarted");
    assert_eq!(history.last().unwrap().kind.name(), "OrchestratorCompleted");
}

#[tokio::test]
async fn normal_durability_runs_the_same_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open_with(dir.path().join("fast.db"), Durability::Normal).unwrap();
    let rt = TestRuntime::start(builder(store)).await.unwrap();
    let id = rt.client().start(pipeline, vec!["a".into()]).await.unwrap();
    rt.idle().await;
    rt.client().raise_event(&id, "Go", "!").await.unwrap();
    assert_eq!(finished(&rt, &id).await.output::<String>().unwrap(), "A !");
}

#[tokio::test]
async fn files_that_are_not_durable_stores_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let err = Sqlite::open(&garbage).err().unwrap().to_string();
    assert!(err.contains("cannot be opened as a durable store"), "{err}");
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER)")
        .unwrap();
    let err = Sqlite::open(&foreign).err().unwrap().to_string();
    assert!(
        err.contains("another application") && err.contains("users"),
        "{err}"
    );

    let newer = dir.path().join("newer.db");
    drop(Sqlite::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = Sqlite::open(&newer).err().unwrap().to_string();
    assert!(
        err.contains("newer version of durable") && err.contains("schema version 99"),
        "{err}"
    );
}

// Every behaviour of the `Store` trait, each check on a fresh database file.
durable::store_conformance_tests!(|| async {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a scratch directory")
        .keep();
    Arc::new(Sqlite::open(dir.join("conformance.db")).expect("the store opens")) as Arc<dyn Store>
});
