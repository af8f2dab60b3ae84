//! Lease renewal: work that takes longer than the lease keeps it while it runs, so it is neither
//! run twice nor taken over by another host.
//!
//! Leases are real time (whatever clock drives orchestrations), so these tests run on real
//! time too: a lease of 300 ms and steps of 1.5 s, five lease periods.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use durable::prelude::*;
use durable::store::{Memory, Sqlite};
use durable_tests::WAIT;

/// The hosts' lease.
const LEASE: Duration = Duration::from_millis(300);
/// How long each slow step takes: several leases.
const SLOW: Duration = Duration::from_millis(1500);

/// The deliveries each tag's step has seen (`ActivityContext::delivery`, or 1 per entity
/// operation), so that a step run twice shows.
static RUNS: Mutex<BTreeMap<String, Vec<u32>>> = Mutex::new(BTreeMap::new());

fn record(tag: &str, delivery: u32) {
    let mut runs = RUNS.lock().unwrap_or_else(|p| p.into_inner());
    runs.entry(tag.to_string()).or_default().push(delivery);
}

fn runs(tag: &str) -> Vec<u32> {
    let runs = RUNS.lock().unwrap_or_else(|p| p.into_inner());
    runs.get(tag).cloned().unwrap_or_default()
}

#[activity]
async fn slow_step(ctx: ActivityContext, tag: String) -> Result<String, Error> {
    record(&tag, ctx.delivery());
    tokio::time::sleep(SLOW).await;
    Ok(format!("{tag} done"))
}

/// Blocks its thread instead of awaiting (which activities should not do, but some do).
#[activity]
async fn blocking_step(ctx: ActivityContext, tag: String) -> Result<String, Error> {
    record(&tag, ctx.delivery());
    std::thread::sleep(SLOW);
    Ok(format!("{tag} done"))
}

#[orchestrator]
async fn slow_flow(ctx: OrchestrationContext, tag: String) -> Result<String, Error> {
    ctx.call_activity(slow_step, tag).await
}

#[orchestrator]
async fn blocking_flow(ctx: OrchestrationContext, tag: String) -> Result<String, Error> {
    ctx.call_activity(blocking_step, tag).await
}

/// An entity whose operation takes several leases: the turn that runs it must keep its lease.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Slow {
    total: i64,
}

#[entity]
impl Slow {
    pub async fn add(&mut self, amount: i64) {
        record("entity", 1);
        tokio::time::sleep(SLOW).await;
        self.total += amount;
    }

    pub fn get(&self) -> i64 {
        self.total
    }
}

fn host(builder: durable::RuntimeBuilder) -> durable::RuntimeBuilder {
    builder
        .lease_duration(LEASE)
        .register(slow_flow)
        .register(slow_step)
        .register(blocking_flow)
        .register(blocking_step)
        .register_entity::<Slow>()
}

async fn memory_host() -> Runtime {
    host(Runtime::builder().store(Memory::new()))
        .start()
        .await
        .unwrap()
}

async fn sqlite_host(path: &Path) -> Runtime {
    host(Runtime::builder().store(Sqlite::open(path).unwrap()))
        .start()
        .await
        .unwrap()
}

/// Starts `flow` for `tag` on `runtime`; returns the instance id.
async fn start<O: durable::Orchestrator<Input = String>>(
    runtime: &Runtime,
    flow: O,
    tag: &str,
) -> String {
    let id = runtime.client().start(flow, tag.to_string()).await.unwrap();
    id.to_string()
}

/// Waits (on `runtime`) for `tag`'s instance to complete with its step's output.
async fn completes(runtime: &Runtime, id: &str, tag: &str) {
    let status = runtime
        .client()
        .wait_for_completion(id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("`{tag}` did not complete: {e}"));
    assert_eq!(status.output::<String>().unwrap(), format!("{tag} done"));
}

/// Waits until `tag`'s step has started.
async fn started(tag: &str) {
    let deadline = Instant::now() + WAIT;
    while runs(tag).is_empty() {
        assert!(Instant::now() < deadline, "`{tag}` never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_longer_than_its_lease_runs_once() {
    let runtime = memory_host().await;
    let id = start(&runtime, slow_flow, "memory").await;
    completes(&runtime, &id, "memory").await;
    assert_eq!(
        runs("memory"),
        vec![1],
        "the activity ran once, on its first delivery (a lease that is not renewed lets it \
         be fetched and run again every {LEASE:?})"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_that_blocks_its_thread_keeps_its_lease_too() {
    let runtime = memory_host().await;
    let id = start(&runtime, blocking_flow, "blocking").await;
    completes(&runtime, &id, "blocking").await;
    assert_eq!(runs("blocking"), vec![1], "the activity ran once");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_host_does_not_take_over_a_running_activity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = sqlite_host(&path).await;
    let id = start(&a, slow_flow, "two-hosts").await;
    started("two-hosts").await;
    // B starts while A runs the activity: it polls the file, and would fetch the activity as
    // soon as A's lease ran out.
    let b = sqlite_host(&path).await;
    completes(&b, &id, "two-hosts").await;
    assert_eq!(
        runs("two-hosts"),
        vec![1],
        "the activity ran once, on host A; host B did not take it over"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_longer_than_its_lease_runs_once() {
    let runtime = memory_host().await;
    let client = runtime.client();
    client.signal_entity::<Slow>("s").add(5).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while client
        .read_entity::<Slow>("s")
        .await
        .unwrap()
        .map(|s| s.total)
        != Some(5)
    {
        assert!(Instant::now() < deadline, "the signal was never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.idle().await;
    assert_eq!(
        runs("entity"),
        vec![1],
        "the operation ran once: its turn kept the instance's lease"
    );
    runtime.shutdown().await;
}

/// A host that is dropped while its activity runs (as good as gone) stops renewing: another
/// host takes the work over once the lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_hosts_work_is_taken_over_after_one_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.db");
    let a = sqlite_host(&path).await;
    let id = start(&a, slow_flow, "dropped").await;
    started("dropped").await;
    drop(a);
    let b = sqlite_host(&path).await;
    completes(&b, &id, "dropped").await;
    assert_eq!(
        runs("dropped"),
        vec![1, 2],
        "the dropped host's run and the second delivery on the other host"
    );
    b.shutdown().await;
}

/// One host owns a SQLite file: a second host on it owns no partition and runs nothing while
/// the first runs, and takes every partition over once the first shuts down (which hands them
/// over at once, without waiting out the lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_on_a_sqlite_file_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("owned.db");
    let a = sqlite_host(&path).await;
    assert_eq!(
        a.partitions(),
        (0..12).collect::<Vec<u32>>(),
        "the first host owns the file"
    );
    let b = sqlite_host(&path).await;
    assert!(
        b.partitions().is_empty(),
        "a second host on the same file owns nothing: {:?}",
        b.partitions()
    );
    let id = start(&a, slow_flow, "owned").await;
    completes(&b, &id, "owned").await;
    assert_eq!(runs("owned"), vec![1], "the step ran once, on the owner");
    a.shutdown().await;
    let deadline = Instant::now() + WAIT;
    while b.partitions().len() != 12 {
        assert!(
            Instant::now() < deadline,
            "the second host did not take over: {:?}",
            b.partitions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = start(&b, slow_flow, "taken-over").await;
    completes(&b, &id, "taken-over").await;
    b.shutdown().await;
}
