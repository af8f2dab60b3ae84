//! Entities: class and function style, typed and untyped access, batching, rollback,
//! scheduled signals, entity-to-entity messages, listing and cleaning. (How the host hands
//! entity work over from commit to commit is in `handover.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use durable::prelude::*;
use durable::store::Memory;
use durable::testing::TestRuntime;
use durable::{EntityQuery, ErrorKind};
use durable_tests::hooked::HookedStore;
use durable_tests::{WAIT, finished, in_both_modes};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    pub fn reset(&mut self) {
        self.value = 0;
    }

    pub fn get(&self) -> i64 {
        self.value
    }

    /// Adds, but refuses to go above 100: the change made before the error is rolled back.
    pub fn add_capped(&mut self, amount: i64) -> Result<i64, Error> {
        self.value += amount;
        if self.value > 100 {
            return Err(Error::msg(format!("{} would exceed the cap", self.value)));
        }
        Ok(self.value)
    }

    pub fn explode(&mut self) {
        self.value = -1;
        panic!("counter broke")
    }

    pub async fn add_later(&mut self, ctx: &EntityContext, amount: i64) -> Result<bool, Error> {
        self.value += amount;
        Ok(ctx.is_newly_constructed())
    }
}

fn with_counter(b: durable::RuntimeBuilder) -> durable::RuntimeBuilder {
    b.register_entity::<Counter>()
}

#[tokio::test]
async fn client_signals_are_applied_exactly_and_reads_see_committed_state() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();
    assert_eq!(client.read_entity::<Counter>("c1").await.unwrap(), None);
    let mut sends = Vec::new();
    for n in 1..=50 {
        let client = client.clone();
        sends.push(tokio::spawn(async move {
            client.signal_entity::<Counter>("c1").add(n).await
        }));
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
    rt.idle().await;
    assert_eq!(
        client.read_entity::<Counter>("c1").await.unwrap(),
        Some(Counter { value: 1275 })
    );
    // Keys are case-sensitive; names are not.
    assert_eq!(client.read_entity::<Counter>("C1").await.unwrap(), None);
    let by_id: Option<Counter> = client
        .read_entity_state(&EntityId::new("COUNTER", "c1"))
        .await
        .unwrap();
    assert_eq!(by_id, Some(Counter { value: 1275 }));
    assert_eq!(EntityId::of::<Counter>("c1").to_string(), "@counter@c1");
}

#[orchestrator]
async fn use_counter(ctx: OrchestrationContext, key: String) -> Result<Vec<String>, Error> {
    let counter = || ctx.call_entity::<Counter>(key.clone());
    let mut log = Vec::new();
    counter().add(5).await?;
    log.push(format!("after add: {}", counter().get().await?));
    log.push(format!("capped: {}", counter().add_capped(10).await?));
    match counter().add_capped(1000).await {
        Ok(v) => log.push(format!("unexpected {v}")),
        Err(e) => log.push(format!("{:?}: {e}", e.kind())),
    }
    log.push(format!("rolled back: {}", counter().get().await?));
    let e = counter().explode().await.unwrap_err();
    log.push(e.to_string());
    log.push(format!("after panic: {}", counter().get().await?));
    let e = ctx
        .call_entity_by_id::<i64>(&EntityId::of::<Counter>(key.clone()), "Nope", ())
        .await
        .unwrap_err();
    log.push(e.to_string());
    // Signals are one-way and sent when the turn commits.
    ctx.signal_entity::<Counter>(key.clone()).add(100);
    Ok(log)
}

#[tokio::test]
async fn orchestrations_call_entities_and_failures_roll_back() {
    in_both_modes(
        |b| with_counter(b).register(use_counter),
        |rt| async move {
            let id = rt.client().start(use_counter, "k".to_string()).await.unwrap();
            let log: Vec<String> = finished(&rt, &id).await.output().unwrap();
            assert_eq!(
                log,
                [
                    "after add: 5",
                    "capped: 15",
                    "EntityOperationFailed { entity_id: \"@counter@k\", operation: \"add_capped\" }: \
                     operation `add_capped` on entity `@counter@k` failed: 1015 would exceed the cap",
                    "rolled back: 15",
                    "operation `explode` on entity `@counter@k` failed: operation `explode` of \
                     entity `@counter@k` panicked: counter broke",
                    "after panic: 15",
                    "operation `nope` on entity `@counter@k` failed: entity `counter` has no \
                     operation `nope`; its operations are: add, reset, get, add_capped, explode, add_later",
                ]
            );
            rt.idle().await;
            assert_eq!(
                rt.client().read_entity::<Counter>("k").await.unwrap(),
                Some(Counter { value: 115 })
            );
        },
    )
    .await;
}

#[tokio::test]
async fn delete_removes_state_and_reads_do_not_create_it() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();
    client
        .signal_entity::<Counter>("gone")
        .add(3)
        .await
        .unwrap();
    rt.idle().await;
    assert!(
        client
            .read_entity::<Counter>("gone")
            .await
            .unwrap()
            .is_some()
    );
    client
        .signal_entity::<Counter>("gone")
        .delete()
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(client.read_entity::<Counter>("gone").await.unwrap(), None);
    // A new entity reports that it is being constructed; the next operation does not.
    client
        .signal_entity::<Counter>("fresh")
        .add_later(1)
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(
        client.read_entity::<Counter>("fresh").await.unwrap(),
        Some(Counter { value: 1 })
    );
}

#[orchestrator]
async fn read_only(ctx: OrchestrationContext, _input: ()) -> Result<i64, Error> {
    ctx.call_entity::<Counter>("never-written").get().await
}

#[tokio::test]
async fn read_only_operations_never_persist_state() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()).register(read_only))
        .await
        .unwrap();
    let id = rt.client().start(read_only, ()).await.unwrap();
    assert_eq!(finished(&rt, &id).await.output::<i64>().unwrap(), 0);
    assert_eq!(
        rt.client()
            .read_entity::<Counter>("never-written")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn queued_operations_run_as_one_batch_with_one_commit() {
    let commits = Arc::new(AtomicUsize::new(0));
    let counted = commits.clone();
    let store = Memory::new();
    let hooked = HookedStore::new(
        store.clone(),
        Arc::new(move |item, _| {
            if item.instance_id == "@counter@batch" {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }),
    );
    // Queue 200 signals before any host runs.
    let offline = Client::new(Arc::new(store.clone()));
    for _ in 0..200 {
        offline
            .signal_entity::<Counter>("batch")
            .add(1)
            .await
            .unwrap();
    }
    let rt = TestRuntime::start(with_counter(Runtime::builder()).store(hooked))
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(
        rt.client().read_entity::<Counter>("batch").await.unwrap(),
        Some(Counter { value: 200 })
    );
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_scheduled_signal_arrives_at_its_time() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();
    let at = rt.clock().now() + TimeDelta::hours(1);
    client
        .signal_entity_at::<Counter>("later", at)
        .add(7)
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(client.read_entity::<Counter>("later").await.unwrap(), None);
    rt.advance(Duration::from_secs(3600)).await;
    rt.idle().await;
    assert_eq!(
        client.read_entity::<Counter>("later").await.unwrap(),
        Some(Counter { value: 7 })
    );
}

/// Watches a counter: remembers every value past 100 it was told about.
#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
pub struct Watcher {
    alerts: Vec<String>,
}

#[entity]
impl Watcher {
    pub fn alert(&mut self, message: String) {
        self.alerts.push(message);
    }
}

/// A counter that tells its watcher (another entity) when it crosses 100, and starts an
/// orchestration to report it.
#[derive(Default, Serialize, Deserialize)]
pub struct Meter {
    value: i64,
}

#[entity]
impl Meter {
    pub fn add(&mut self, ctx: &EntityContext, amount: i64) -> Result<(), Error> {
        let before = self.value;
        self.value += amount;
        if before <= 100 && self.value > 100 {
            let key = ctx.id().key().to_string();
            ctx.signal_entity::<Watcher>(key.clone())
                .alert(format!("{key} crossed 100 at {}", self.value));
            ctx.start_new_orchestration(report, self.value)?;
        }
        Ok(())
    }
}

#[orchestrator]
async fn report(ctx: OrchestrationContext, value: i64) -> Result<(), Error> {
    ctx.signal_entity::<Watcher>("reports")
        .alert(format!("report: {value}"));
    Ok(())
}

#[tokio::test]
async fn entities_signal_entities_and_start_orchestrations() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register_entity::<Meter>()
            .register_entity::<Watcher>()
            .register(report),
    )
    .await
    .unwrap();
    let client = rt.client();
    for _ in 0..3 {
        client.signal_entity::<Meter>("m1").add(40).await.unwrap();
    }
    rt.idle().await;
    let watcher = client.read_entity::<Watcher>("m1").await.unwrap().unwrap();
    assert_eq!(watcher.alerts, ["m1 crossed 100 at 120"]);
    let reports = client
        .read_entity::<Watcher>("reports")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reports.alerts, ["report: 120"]);
}

/// A function-style entity: a plain number, dispatching on the operation name.
#[entity]
async fn tally(ctx: EntityContext) -> Result<(), Error> {
    let current: i64 = ctx.state_or_default()?;
    match ctx.operation().as_str() {
        "add" => ctx.set_state(current + ctx.input::<i64>()?)?,
        "get" => ctx.set_result(current)?,
        "delete" => ctx.delete_state(),
        other => return Err(Error::msg(format!("tally has no operation `{other}`"))),
    }
    Ok(())
}

#[orchestrator]
async fn use_tally(ctx: OrchestrationContext, _input: ()) -> Result<i64, Error> {
    let id = EntityId::new("tally", "t");
    ctx.signal_entity_by_id(&id, "add", 4);
    ctx.call_entity_by_id::<()>(&id, "add", 6).await?;
    ctx.call_entity_by_id(&id, "get", ()).await
}

#[tokio::test]
async fn function_style_entities_work_by_id_and_name() {
    in_both_modes(
        |b| b.register(tally).register(use_tally),
        |rt| async move {
            let client = rt.client();
            let id = client.start(use_tally, ()).await.unwrap();
            assert_eq!(finished(&rt, &id).await.output::<i64>().unwrap(), 10);
            let t = EntityId::new("Tally", "t");
            client.signal_entity_by_id(&t, "ADD", 5).await.unwrap();
            rt.idle().await;
            assert_eq!(client.read_entity_state::<i64>(&t).await.unwrap(), Some(15));
        },
    )
    .await;
}

#[tokio::test]
async fn unknown_entities_are_refused_by_a_hosts_client() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()))
        .await
        .unwrap();
    let err = rt
        .client()
        .signal_entity_by_id(&EntityId::new("nobody", "x"), "add", 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::UnknownFunction);
    assert!(
        err.to_string().contains("no entity named `nobody`"),
        "{err}"
    );
}

#[tokio::test]
async fn entities_are_listed_and_empty_ones_cleaned() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()).register_entity::<Watcher>())
        .await
        .unwrap();
    let client = rt.client();
    for key in ["a", "b", "c"] {
        client.signal_entity::<Counter>(key).add(1).await.unwrap();
    }
    client
        .signal_entity::<Watcher>("w")
        .alert("hi".into())
        .await
        .unwrap();
    client.signal_entity::<Counter>("c").delete().await.unwrap();
    rt.idle().await;

    let all = client.list_entities(&EntityQuery::default()).await.unwrap();
    let ids: Vec<String> = all.entities.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["@counter@a", "@counter@b", "@watcher@w"]);
    assert!(all.entities.iter().all(|e| e.state.is_none()));

    let counters = client
        .list_entities(&EntityQuery {
            name_prefix: Some("COUNT".into()),
            include_state: true,
            include_stateless: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let states: Vec<(String, Option<String>)> = counters
        .entities
        .iter()
        .map(|e| (e.id.key().to_string(), e.state.clone()))
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_string(), Some("{\"value\":1}".to_string())),
            ("b".to_string(), Some("{\"value\":1}".to_string())),
            ("c".to_string(), None)
        ]
    );
    // Entities do not show up among orchestration instances.
    let instances = client.query(&Default::default()).await.unwrap();
    assert!(instances.instances.is_empty());

    let cleaned = client.clean_entity_storage(true, true).await.unwrap();
    assert_eq!(cleaned.empty_entities_removed, 1);
    assert_eq!(cleaned.orphaned_locks_released, 0);
    assert!(client.status("@counter@c").await.unwrap().is_none());
    assert!(client.status("@counter@a").await.unwrap().is_some());
    let _ = WAIT;
}

#[tokio::test]
async fn entity_listings_page_with_continuation_tokens() {
    let rt = TestRuntime::start(with_counter(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();
    for n in 0..5 {
        client
            .signal_entity::<Counter>(format!("p{n}"))
            .add(n)
            .await
            .unwrap();
        rt.clock().advance(Duration::from_secs(1));
    }
    rt.idle().await;
    let mut query = EntityQuery {
        page_size: Some(2),
        include_state: true,
        ..Default::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = client.list_entities(&query).await.unwrap();
        pages.push(
            page.entities
                .iter()
                .map(|e| format!("{}={}", e.id.key(), e.state.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>(),
        );
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            vec!["p0={\"value\":0}", "p1={\"value\":1}"],
            vec!["p2={\"value\":2}", "p3={\"value\":3}"],
            vec!["p4={\"value\":4}"]
        ]
    );
}
