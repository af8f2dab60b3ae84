//! Injected store faults on a real SQLite file: one host, in real time, on a SQLite store
//! wrapped in the simulator's fault-injecting store (`tests/src/sim/`), whose commits fail
//! before they are applied or are applied and reported failed, whose fetches and reads of work
//! fail, and whose wake-ups are lost. SQLite reads owned work instead of leasing it, a path
//! the simulator's memory store does not take. A few seeds, each a small load of orchestrations
//! with activities, a timer, a fan-out, entity signals and entity calls; then the faults stop,
//! and everything must finish: every instance with the right output, each step completed once,
//! every entity operation applied once, nothing parked.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use durable::prelude::*;
use durable::store::Sqlite;
use durable_tests::sim::{self, FaultRates, Faults, instance_problems};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

const SEEDS: [u64; 3] = [1, 2, 3];
const INSTANCES: u64 = 40;
const STEPS: u64 = 3;
const FAN_OUT: u64 = 2;
const CLIENT_SIGNALS: u64 = 5;
/// Short, so that an activity whose completion was lost is fetched again within seconds.
const LEASE: Duration = Duration::from_secs(2);
/// How long the faults last at most (they stop sooner when everything has finished).
const FAULT_WINDOW: Duration = Duration::from_secs(4);
/// How long everything may take to finish once the faults stop.
const SETTLE: Duration = Duration::from_secs(15);

/// How many times activities ran, retries included (an activity runs at least once per step).
static RUNS: AtomicU64 = AtomicU64::new(0);

#[activity]
async fn fault_step(_ctx: ActivityContext, n: u64) -> Result<u64, Error> {
    RUNS.fetch_add(1, Ordering::Relaxed);
    Ok(n * 10 + 1)
}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: u64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, by: u64) {
        self.value += by;
    }
}

/// Steps in a chain, each followed by a signal; a short timer; a fan-out; an entity call.
#[orchestrator]
async fn fault_flow(ctx: OrchestrationContext, n: u64) -> Result<u64, Error> {
    let mut total = 0;
    for i in 0..STEPS {
        total += ctx.call_activity(fault_step, n * 100 + i).await?;
        ctx.signal_entity::<Counter>("signalled").add(1);
    }
    ctx.sleep(Duration::from_millis(5 + n % 5)).await;
    let fanned = ctx
        .when_all((0..FAN_OUT).map(|j| ctx.call_activity(fault_step, n * 100 + 50 + j)))
        .await?;
    ctx.call_entity::<Counter>("called").add(1).await?;
    Ok(total + fanned.iter().sum::<u64>())
}

fn expected_output(n: u64) -> u64 {
    let step = |m: u64| m * 10 + 1;
    (0..STEPS).map(|i| step(n * 100 + i)).sum::<u64>()
        + (0..FAN_OUT).map(|j| step(n * 100 + 50 + j)).sum::<u64>()
}

fn rates() -> FaultRates {
    FaultRates {
        fetch_fails: 50,
        commit_fails: 50,
        commit_applied_but_fails: 50,
        commit_handed_discarded: 50,
        wake_lost: 100,
        ..FaultRates::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_failing_on_sqlite_lose_nothing_and_repeat_nothing() {
    let mut injected = std::collections::BTreeMap::<String, u64>::new();
    let mut wakes_lost = 0;
    for seed in SEEDS {
        let faults = Faults::new(seed, rates());
        if let Err(problems) = run(seed, &faults).await {
            let trace = faults.trace();
            let tail = trace.len().saturating_sub(40);
            panic!(
                "seed {seed}:\n{problems}\n\nfaults injected: {:?}\n\nthe end of the trace:\n{}",
                faults.injected(),
                trace[tail..].join("\n")
            );
        }
        for (fault, n) in faults.injected() {
            *injected.entry(fault).or_default() += n;
        }
        wakes_lost += faults.wakes_lost();
    }
    // The seeds together injected every kind of fault (which ones a seed meets depends on
    // timing: how much work comes through looks, and how much through commits).
    let any = |fault: &str| injected.iter().any(|(k, n)| k.ends_with(fault) && *n > 0);
    for fault in [
        ": fails before applying",
        ": applied, reported failed",
        ": applied, reported failed, its reads discarded",
        "read_orchestration: fails",
        "ready_instances: fails",
    ] {
        assert!(
            any(fault),
            "no fault `{fault}` was injected in {SEEDS:?}: the load is too small ({injected:?})"
        );
    }
    assert!(wakes_lost > 0, "no wake-up was lost: the load is too small");
}

async fn run(seed: u64, faults: &Faults) -> Result<(), String> {
    RUNS.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sqlite = Sqlite::open(dir.path().join("faults.db")).map_err(|e| e.to_string())?;
    let runtime = Runtime::builder()
        .shared_store(Arc::new(faults.store(sqlite, "h0")))
        .register(fault_flow)
        .register(fault_step)
        .register_entity::<Counter>()
        .lease_duration(LEASE)
        .shutdown_grace(Duration::from_secs(1))
        .start()
        .await
        .map_err(|e| format!("the host starts: {e}"))?;
    let result = load_and_check(faults, &runtime).await;
    runtime.shutdown().await;
    let runs = RUNS.load(Ordering::Relaxed);
    let stop = faults
        .trace()
        .into_iter()
        .find(|line| line.contains("faults stop"));
    println!(
        "seed {seed} in {:.1?}: {}; {runs} activity runs for {} steps; faults injected: {:?}",
        started.elapsed(),
        stop.as_deref().map_or("", str::trim),
        INSTANCES * (STEPS + FAN_OUT),
        faults.injected()
    );
    result
}

async fn load_and_check(faults: &Faults, runtime: &Runtime) -> Result<(), String> {
    let client = &runtime.client();
    let ids: Vec<String> = (0..INSTANCES).map(|n| format!("faulty-{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        sim::start_retrying(client, id, || {
            client
                .start(fault_flow, n as u64)
                .instance_id(id.clone())
                .into_future()
        })
        .await?;
    }
    for _ in 0..CLIENT_SIGNALS {
        client
            .signal_entity::<Counter>("signalled")
            .add(1)
            .await
            .map_err(|e| format!("signalling: {e}"))?;
    }

    // Faults while the load runs; then none, and everything must finish.
    let window = Instant::now() + FAULT_WINDOW;
    let mut left = ids.clone();
    while !left.is_empty() && Instant::now() < window {
        left = unfinished(client, left).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    faults.stop();
    faults.record(format!(
        "faults stop, {} of {INSTANCES} instances finished",
        INSTANCES - left.len() as u64
    ));
    let deadline = Instant::now() + SETTLE;
    while !left.is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "not finished {SETTLE:?} after the faults stopped: {left:?}"
            ));
        }
        left = unfinished(client, left).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut problems = Vec::new();
    problems.extend(
        instance_problems(client, &ids, expected_output)
            .await?
            .problems,
    );
    let counts = client
        .store()
        .count_by_status()
        .await
        .map_err(|e| e.to_string())?;
    if counts != [(RuntimeStatus::Completed, INSTANCES)] {
        problems.push(format!(
            "the store counts {counts:?}, expected {INSTANCES} completed"
        ));
    }

    // Signals still on their way settle, then nothing is left to run; a counter past its
    // number had an operation applied twice, one short of it lost one.
    let counters = [
        ("signalled", INSTANCES * STEPS + CLIENT_SIGNALS),
        ("called", INSTANCES),
    ];
    for (key, expected) in counters {
        settle_counter(client, key, expected, deadline).await?;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, runtime.idle()).await.is_err() {
        problems.push("the host still had work when the deadline passed".into());
    }
    for (key, expected) in counters {
        let value = counter(client, key).await?;
        if value != expected {
            problems.push(format!(
                "counter `{key}` is {value}, expected {expected} (an operation lost or applied \
                 twice)"
            ));
        }
    }

    let parked = client.store().parked().await.map_err(|e| e.to_string())?;
    if !parked.is_empty() {
        problems.push(format!("messages were parked: {parked:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The instances of `ids` not finished yet.
async fn unfinished(client: &Client, ids: Vec<String>) -> Result<Vec<String>, String> {
    let mut left = Vec::new();
    for id in ids {
        let status = client.status(&id).await.map_err(|e| e.to_string())?;
        if !status.is_some_and(|s| s.runtime_status.is_terminal()) {
            left.push(id);
        }
    }
    Ok(left)
}

/// Waits until the counter reaches `expected` (or goes past it), or `deadline` passes.
async fn settle_counter(
    client: &Client,
    key: &str,
    expected: u64,
    deadline: Instant,
) -> Result<(), String> {
    while counter(client, key).await? < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn counter(client: &Client, key: &str) -> Result<u64, String> {
    Ok(client
        .read_entity::<Counter>(key)
        .await
        .map_err(|e| e.to_string())?
        .map_or(0, |c| c.value))
}
