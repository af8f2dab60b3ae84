//! The host's limits: activity slots, the activities kept waiting for one, turns in flight;
//! a store that leases more than asked, dispatchers that panic at the smallest limits, and what
//! a stop does with the activities still waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use durable::prelude::*;
use durable::store::{Memory, Store};
use durable::testing::TestRuntime;
use durable_tests::counted::Counted;
use durable_tests::hooked::HookedStore;
use durable_tests::{WAIT, finished};

#[activity]
async fn echo(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text)
}

/// Activities of [`slow_step`] running right now, and the most that ever ran at once.
static SLOW_STEPS: AtomicUsize = AtomicUsize::new(0);
static MOST_SLOW_STEPS: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn slow_step(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    let running = SLOW_STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_SLOW_STEPS.fetch_max(running, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    SLOW_STEPS.fetch_sub(1, Ordering::SeqCst);
    Ok(n + 1)
}

#[orchestrator]
async fn three_slow_steps(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    let mut n = n;
    for _ in 0..3 {
        n = ctx.call_activity(slow_step, n).await?;
    }
    Ok(n)
}

/// A store that leases more activities than the host asked for (PostgreSQL did, under some
/// query plans) neither stops the host's activity dispatcher nor makes it run more activities
/// than its limit: the extra ones run as slots free up, and every instance finishes.
#[tokio::test]
async fn activities_leased_beyond_the_free_slots_run_within_the_limit() {
    let store =
        HookedStore::new(Memory::new(), Arc::new(|_, _| Ok(()))).leasing_extra_activities(5);
    let rt = Runtime::builder()
        .store(store)
        .register(three_slow_steps)
        .register(slow_step)
        .max_concurrent_activities(1)
        .start()
        .await
        .unwrap();
    let client = rt.client();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(client.start(three_slow_steps, i * 10).await.unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        let done = client
            .wait_for_completion(id, WAIT)
            .await
            .unwrap_or_else(|e| {
                panic!("instance {i} did not finish (the activity dispatcher stopped?): {e}")
            });
        assert_eq!(done.output::<u32>().unwrap(), i as u32 * 10 + 3);
    }
    assert_eq!(
        MOST_SLOW_STEPS.load(Ordering::SeqCst),
        1,
        "no more activities ran at once than the host's limit"
    );
    assert!(
        rt.store().parked().await.unwrap().is_empty(),
        "nothing was parked"
    );
    rt.shutdown().await;
}

/// A panic in the host's own code (here a store that panics while fetching, as a bug would)
/// does not end a dispatcher for good: with one orchestration dispatcher and one activity
/// slot, the host would otherwise stop taking work while still looking alive.
#[tokio::test]
async fn dispatchers_that_panic_start_again_and_the_work_finishes() {
    let store = HookedStore::new(Memory::new(), Arc::new(|_, _| Ok(()))).panicking_fetches(2);
    let rt = Runtime::builder()
        .store(store)
        .register(three_slow_steps)
        .register(slow_step)
        .max_concurrent_orchestrations(1)
        .max_concurrent_activities(1)
        .start()
        .await
        .unwrap();
    let client = rt.client();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(client.start(three_slow_steps, i * 10).await.unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        let done = client
            .wait_for_completion(id, WAIT)
            .await
            .unwrap_or_else(|e| {
                panic!("instance {i} did not finish (a dispatcher stopped for good?): {e}")
            });
        assert_eq!(done.output::<u32>().unwrap(), i as u32 * 10 + 3);
    }
    rt.shutdown().await;
}

/// Replays one turn's history: the first turn starts the activity, the second (its result)
/// replays, with the cache off.
#[orchestrator]
async fn one_echo(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ctx.call_activity(echo, "hi".to_string()).await
}

/// How many turns a host runs at once is what its store asks for, unless the builder says:
/// here every turn after the first waits on its history read, holding its place, so the reads
/// begun count the turns in flight.
#[tokio::test(start_paused = true)]
async fn the_turn_limit_is_the_stores_unless_the_builder_sets_one() {
    for (set, expected) in [(None, 12), (Some(5), 5)] {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (store, counts) = Counted::wrap_all_gated(Arc::new(Memory::new()), gate.clone(), 12);
        let mut builder = Runtime::builder()
            .shared_store(store)
            .register(one_echo)
            .register(echo)
            .instance_cache_capacity(0);
        if let Some(n) = set {
            builder = builder.max_concurrent_orchestrations(n);
        }
        let rt = TestRuntime::start(builder).await.unwrap();
        let client = rt.client();
        let mut ids = Vec::new();
        for _ in 0..30 {
            ids.push(client.start(one_echo, ()).await.unwrap());
        }
        // Tokio's clock is paused: it moves on once every task waits.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            counts.histories(),
            expected,
            "turns in flight with the limit set to {set:?}"
        );
        gate.add_permits(1_000);
        for id in &ids {
            let done = client.wait_for_completion(id, WAIT).await.unwrap();
            assert_eq!(done.output::<String>().unwrap(), "hi");
        }
        rt.shutdown().await;
    }
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn measured(_ctx: ActivityContext, _n: u32) -> Result<(), Error> {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[orchestrator]
async fn fan(ctx: OrchestrationContext, n: u32) -> Result<usize, Error> {
    let done = ctx
        .when_all((0..n).map(|i| ctx.call_activity(measured, i)))
        .await?;
    Ok(done.len())
}

#[tokio::test]
async fn the_activity_limit_is_respected() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(fan)
            .register(measured)
            .max_concurrent_activities(3),
    )
    .await
    .unwrap();
    let id = rt.client().start(fan, 30).await.unwrap();
    assert_eq!(finished(&rt, &id).await.output::<usize>().unwrap(), 30);
    let peak = PEAK.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak concurrency {peak}");
}

static PACED_RUNNING: AtomicUsize = AtomicUsize::new(0);
static PACED_PEAK: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn paced(_ctx: ActivityContext, _n: u32) -> Result<(), Error> {
    let now = PACED_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PACED_PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2)).await;
    PACED_RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[orchestrator]
async fn fan_paced(ctx: OrchestrationContext, n: u32) -> Result<usize, Error> {
    let done = ctx
        .when_all((0..n).map(|i| ctx.call_activity(paced, i)))
        .await?;
    Ok(done.len())
}

/// A turn that schedules more activities than there are free slots keeps more on this host,
/// to run as slots free up (their leases kept meanwhile): as many as there are activity slots,
/// or turn slots if those are more. Only the rest are queued for any host. Ten activities with
/// three slots and two turns: three run at once, three wait here and four are fetched from the
/// queue. With six turns, six wait here and one is fetched. Never more than three run at a time.
#[tokio::test]
async fn activities_beyond_the_free_slots_wait_here_up_to_as_many_again() {
    for (turns, fetched) in [(2, 4), (6, 1)] {
        PACED_PEAK.store(0, Ordering::SeqCst);
        let (store, counts) = Counted::wrap(Arc::new(Memory::new()));
        let rt = TestRuntime::start(
            Runtime::builder()
                .register(fan_paced)
                .register(paced)
                .max_concurrent_activities(3)
                .max_concurrent_orchestrations(turns)
                .shared_store(store),
        )
        .await
        .unwrap();
        let id = rt.client().start(fan_paced, 10).await.unwrap();
        assert_eq!(finished(&rt, &id).await.output::<usize>().unwrap(), 10);
        assert_eq!(
            counts.activities_fetched(),
            fetched,
            "fetched from the queue with {turns} turn slots"
        );
        let peak = PACED_PEAK.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak concurrency {peak}");
        rt.shutdown().await;
    }
}

static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
static GATED_RUNNING: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn gated(_ctx: ActivityContext, _n: u32) -> Result<(), Error> {
    GATED_RUNNING.fetch_add(1, Ordering::SeqCst);
    GATE.acquire().await.map_err(Error::msg)?.forget();
    Ok(())
}

#[orchestrator]
async fn fan_gated(ctx: OrchestrationContext, n: u32) -> Result<usize, Error> {
    let done = ctx
        .when_all((0..n).map(|i| ctx.call_activity(gated, i)))
        .await?;
    Ok(done.len())
}

/// A host that stops gives the activities waiting on it for a slot back to the store's queue
/// at once, for any host, instead of leaving them leased to itself until their leases run
/// out. Three activities with one slot and one waiting place: one runs (held at a gate past
/// the shutdown grace), one waits here, one is queued. After the shutdown, two are free.
#[tokio::test]
async fn stopping_gives_the_activities_waiting_for_a_slot_back_at_once() {
    let store = Arc::new(Memory::new());
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(fan_gated)
            .register(gated)
            .max_concurrent_activities(1)
            .max_concurrent_orchestrations(1)
            .shutdown_grace(Duration::from_millis(50))
            .shared_store(store.clone()),
    )
    .await
    .unwrap();
    rt.client().start(fan_gated, 3).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while GATED_RUNNING.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the first activity starts");
    rt.shutdown().await;
    let free = store
        .fetch_activities(Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(
        free.len(),
        2,
        "the activity that waited here and the queued one are free to fetch"
    );
    assert_eq!(GATED_RUNNING.load(Ordering::SeqCst), 1, "only one ever ran");
    GATE.add_permits(3);
}
