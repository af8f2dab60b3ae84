//! Whole hosts sharing one PostgreSQL database: work splits between them and runs once, and a
//! host that stops mid-work has its work taken over once its lease runs out.
//!
//! Needs a database: `DURABLE_POSTGRES_URL`, or `scripts/with-postgres cargo test …`, which
//! starts a throwaway one. Without it every test says so and passes.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable::history::EventKind;
use durable::prelude::*;
use durable::store::Postgres;
use tokio::sync::Notify;

#[macro_use]
#[path = "support/postgres.rs"]
mod postgres;

use postgres::*;

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

/// Two hosts, each with its own pool, share one task hub: they split its partitions evenly, a
/// batch of orchestrations finishes, every activity runs exactly once, both hosts take part,
/// and every instance completes once.
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
                .lease_duration(Duration::from_secs(1))
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
    // The first host took every partition; once it sees the second, it hands half over.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while a.partitions().len() != 6 || b.partitions().len() != 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the hosts did not split the partitions: {:?} and {:?}",
            a.partitions(),
            b.partitions()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
