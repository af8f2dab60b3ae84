//! Events and timers in orchestrations: races between them, events buffered until awaited,
//! waits with a timeout, payloads of the wrong type, events between orchestrations, many
//! timers due at once, and timers whose instances' work the host read before they came due
//! (also timers another host set).
//! Each run with the instance cache and with replay on every turn, unless it says otherwise.

use std::time::Duration;

use std::sync::Arc;

use durable::prelude::*;
use durable::store::Memory;
use durable::testing::{ManualClock, TestRuntime};
use durable_tests::counted::Counted;
use durable_tests::{WAIT, failure_message, finished, in_both_modes};

#[orchestrator]
async fn select_race(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let mut event = ctx.wait_for_event::<u32>("Go");
    let mut timer = ctx.sleep(Duration::from_secs(60));
    let winner = futures::select_biased! {
        n = event => format!("event {}", n?),
        () = timer => "timer".to_string(),
    };
    // A second wait after the race: the losing timer must not disturb it.
    let again: u32 = ctx.wait_for_event("Go").await?;
    Ok(format!("{winner}, then {again}"))
}

#[tokio::test]
async fn select_between_an_event_and_a_timer_is_deterministic() {
    in_both_modes(
        |b| b.register(select_race),
        |rt| async move {
            let id = rt.client().start(select_race, ()).await.unwrap();
            rt.idle().await;
            rt.client().raise_event(&id, "GO", 7).await.unwrap();
            rt.idle().await;
            rt.advance(Duration::from_secs(120)).await;
            rt.client().raise_event(&id, "go", 8).await.unwrap();
            let out: String = finished(&rt, &id).await.output().unwrap();
            assert_eq!(out, "event 7, then 8");
        },
    )
    .await;
}

#[orchestrator]
async fn buffered(ctx: OrchestrationContext, _input: ()) -> Result<Vec<u32>, Error> {
    // The events arrive before anyone waits: they are buffered in arrival order.
    ctx.sleep(Duration::from_secs(10)).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ctx.wait_for_event::<u32>("Tick").await?);
    }
    Ok(seen)
}

#[tokio::test]
async fn events_that_arrive_early_are_buffered_in_arrival_order() {
    in_both_modes(
        |b| b.register(buffered),
        |rt| async move {
            let id = rt.client().start(buffered, ()).await.unwrap();
            rt.idle().await;
            for n in [3, 1, 2] {
                rt.client().raise_event(&id, "tick", n).await.unwrap();
            }
            rt.advance(Duration::from_secs(10)).await;
            assert_eq!(
                finished(&rt, &id).await.output::<Vec<u32>>().unwrap(),
                [3, 1, 2]
            );
        },
    )
    .await;
}

#[orchestrator]
async fn timeout_then_wait(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let first = ctx
        .wait_for_event_with_timeout::<String>("Answer", Duration::from_secs(60))
        .await?;
    // After the timeout the waiter is withdrawn: a later event goes to the next wait.
    let second: String = ctx.wait_for_event("Answer").await?;
    Ok(format!("{first:?} then {second}"))
}

#[tokio::test]
async fn wait_with_timeout_gives_none_and_keeps_later_events() {
    in_both_modes(
        |b| b.register(timeout_then_wait),
        |rt| async move {
            let id = rt.client().start(timeout_then_wait, ()).await.unwrap();
            rt.advance(Duration::from_secs(61)).await;
            rt.idle().await;
            rt.client()
                .raise_event(&id, "Answer", "late")
                .await
                .unwrap();
            let out: String = finished(&rt, &id).await.output().unwrap();
            assert_eq!(out, "None then late");
        },
    )
    .await;
}

#[orchestrator]
async fn typed_event(ctx: OrchestrationContext, _input: ()) -> Result<u32, Error> {
    ctx.wait_for_event::<u32>("Number").await
}

#[tokio::test]
async fn an_event_payload_of_the_wrong_type_is_an_err() {
    in_both_modes(
        |b| b.register(typed_event),
        |rt| async move {
            let id = rt.client().start(typed_event, ()).await.unwrap();
            rt.client()
                .raise_event(&id, "Number", "not a number")
                .await
                .unwrap();
            let message = failure_message(&finished(&rt, &id).await);
            assert!(
                message.contains("the payload of event `Number` does not fit"),
                "{message}"
            );
        },
    )
    .await;
}

#[orchestrator]
async fn messenger(ctx: OrchestrationContext, target: String) -> Result<(), Error> {
    ctx.raise_event(&target, "Answer", "from a sibling")?;
    Ok(())
}

#[tokio::test]
async fn an_orchestration_can_raise_an_event_on_another() {
    in_both_modes(
        |b| b.register(messenger).register(timeout_then_wait),
        |rt| async move {
            let waiter = rt
                .client()
                .start(timeout_then_wait, ())
                .instance_id("waiter")
                .await
                .unwrap();
            rt.idle().await;
            let m = rt
                .client()
                .start(messenger, "waiter".to_string())
                .await
                .unwrap();
            finished(&rt, &m).await;
            rt.idle().await;
            rt.client()
                .raise_event(&waiter, "Answer", "second")
                .await
                .unwrap();
            let out: String = finished(&rt, &waiter).await.output().unwrap();
            assert_eq!(out, "Some(\"from a sibling\") then second");
        },
    )
    .await;
}

#[orchestrator]
async fn wait_a_minute(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    let due = ctx.current_utc_datetime() + chrono::Duration::minutes(1);
    ctx.create_timer(due).await;
    Ok(())
}

/// Many timers due at once, more than one look at the store takes, all fire without the host
/// pausing between looks: the look at the moment they come due is not put off because another
/// look happened just before, and a look that found as many as it takes is followed by the next
/// at once. (Tokio's clock is paused: only the host's own waits move it.)
#[tokio::test(start_paused = true)]
async fn many_timers_due_at_once_fire_without_pauses_between_looks() {
    let rt = TestRuntime::start(Runtime::builder().register(wait_a_minute))
        .await
        .unwrap();
    let client = rt.client();
    let mut ids = Vec::new();
    for _ in 0..600 {
        ids.push(client.start(wait_a_minute, ()).await.unwrap());
    }
    rt.advance(Duration::from_secs(60)).await;
    let due = tokio::time::Instant::now();
    for id in &ids {
        client
            .wait_for_completion(id, durable_tests::WAIT)
            .await
            .unwrap();
    }
    let took = due.elapsed();
    assert!(
        took < Duration::from_millis(10),
        "600 timers took {took:?} of the host's waits to fire"
    );
}

/// Sleeps `secs` seconds on a durable timer; returns how late (in milliseconds) its turn saw
/// the time.
#[orchestrator]
async fn late_by(ctx: OrchestrationContext, secs: u64) -> Result<i64, Error> {
    let due = ctx.current_utc_datetime() + Duration::from_secs(secs);
    ctx.create_timer(due).await;
    Ok((ctx.current_utc_datetime() - due).num_milliseconds())
}

/// The host reads a timer's instance's work shortly before the timer is due, and runs the
/// turn on it when it is: once due, nothing of the instance is read again.
#[tokio::test(start_paused = true)]
async fn a_timer_comes_due_with_its_instances_work_read_ahead() {
    let (store, counts) = Counted::wrap(Arc::new(Memory::new()));
    let rt = TestRuntime::start(Runtime::builder().register(late_by).shared_store(store))
        .await
        .unwrap();
    let client = rt.client();
    let id = client.start(late_by, 60).await.unwrap();
    rt.advance(Duration::from_millis(59_950)).await;
    // Every task waits again once tokio's paused clock moves: the work is read by then.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let read = counts.items();
    assert_eq!(read, 1, "the instance's work was read ahead");
    rt.advance(Duration::from_millis(50)).await;
    let done = client.wait_for_completion(&id, WAIT).await.unwrap();
    assert_eq!(done.output::<i64>().unwrap(), 0, "the timer fired on time");
    assert_eq!(
        counts.items() - read,
        0,
        "the instance's work was read again once the timer was due"
    );
}

/// A host that starts on a store with a timer set by another host (here one that stopped)
/// keeps that timer as its own: it reads the instance's work shortly before the timer is due,
/// though it never ran the instance, and runs the turn on it when due.
#[tokio::test(start_paused = true)]
async fn a_timer_set_before_a_restart_comes_due_with_its_work_read_ahead() {
    let (store, counts) = Counted::wrap(Arc::new(Memory::new()));
    let clock = ManualClock::new();
    let builder = || {
        Runtime::builder()
            .register(late_by)
            .shared_store(store.clone())
    };
    let first = TestRuntime::start_with_clock(builder(), clock.clone())
        .await
        .unwrap();
    let id = first.client().start(late_by, 60).await.unwrap();
    first.idle().await;
    first.shutdown().await;
    drop(first);
    let second = TestRuntime::start_with_clock(builder(), clock)
        .await
        .unwrap();
    let before = counts.items();
    second.advance(Duration::from_millis(59_950)).await;
    // Every task waits again once tokio's paused clock moves: the work is read by then.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let read = counts.items();
    assert_eq!(read - before, 1, "the instance's work was read ahead");
    second.advance(Duration::from_millis(50)).await;
    let done = second
        .client()
        .wait_for_completion(&id, WAIT)
        .await
        .unwrap();
    assert_eq!(done.output::<i64>().unwrap(), 0, "the timer fired on time");
    assert_eq!(
        counts.items() - read,
        0,
        "the instance's work was read again once the timer was due"
    );
}

/// An event raised after the host read a timer's instance's work ahead, but before the timer
/// is due, still reaches the orchestration before the timer does (the work read ahead did not
/// have it).
#[tokio::test]
async fn an_event_just_before_a_timer_read_ahead_still_wins_the_race() {
    in_both_modes(
        |b| b.register(select_race),
        |rt| async move {
            let id = rt.client().start(select_race, ()).await.unwrap();
            rt.advance(Duration::from_millis(59_950)).await;
            rt.client().raise_event(&id, "Go", 7).await.unwrap();
            rt.idle().await;
            rt.advance(Duration::from_secs(1)).await;
            rt.client().raise_event(&id, "Go", 8).await.unwrap();
            let out: String = finished(&rt, &id).await.output().unwrap();
            assert_eq!(out, "event 7, then 8");
        },
    )
    .await;
}

/// Waits for a "Go" event.
#[orchestrator]
async fn waits_for_go(ctx: OrchestrationContext, _input: ()) -> Result<u32, Error> {
    ctx.wait_for_event::<u32>("Go").await
}

/// A timer whose instance the host no longer has cached (here another instance took the only
/// place in the cache) still fires when due: its work is read ahead and run from the stored
/// history, no dispatcher watches a time the keeper acts at, and the timer does not wait for
/// the next poll. (Tokio's clock is paused: only the host's own waits move it.)
#[tokio::test(start_paused = true)]
async fn a_timer_whose_instance_was_evicted_still_fires_when_due() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(late_by)
            .register(waits_for_go)
            .instance_cache_capacity(1),
    )
    .await
    .unwrap();
    let client = rt.client();
    let id = client.start(late_by, 60).await.unwrap();
    rt.idle().await;
    client.start(waits_for_go, ()).await.unwrap();
    // The dispatchers settle: none looks again before its next poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.advance(Duration::from_secs(60)).await;
    let due = tokio::time::Instant::now();
    let done = client.wait_for_completion(&id, WAIT).await.unwrap();
    assert_eq!(done.output::<i64>().unwrap(), 0);
    let took = due.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "the timer took {took:?} of the host's waits to fire"
    );
}

/// A host with nothing to do but a timer an hour away does not keep looking at the store: the
/// dispatchers a start woke go back to waiting for a wake-up, one of them polling.
/// (Tokio's clock is paused: only the host's own waits move it.)
#[tokio::test(start_paused = true)]
async fn an_idle_host_with_a_timer_set_does_not_keep_looking() {
    let (store, counts) = Counted::wrap(Arc::new(Memory::new()));
    let rt = TestRuntime::start(Runtime::builder().register(late_by).shared_store(store))
        .await
        .unwrap();
    let client = rt.client();
    client.start(late_by, 3600).await.unwrap();
    rt.idle().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let looks = counts.looks();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more = counts.looks() - looks;
    assert!(more <= 1, "{more} looks in 300 ms of an idle host");
}
