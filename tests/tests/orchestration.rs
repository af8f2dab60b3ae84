//! Orchestration semantics, each run with the instance cache and with replay on every turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_tests::{failure_message, finished, in_both_modes};
use serde::{Deserialize, Serialize};

#[activity]
async fn echo(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text)
}

#[activity]
async fn square(_ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    Ok(n * n)
}

#[activity]
async fn refuse(_ctx: ActivityContext, why: String) -> Result<i64, Error> {
    Err(Error::msg(why))
}

#[activity]
async fn explode(_ctx: ActivityContext, _n: i64) -> Result<i64, Error> {
    panic!("the disk is on fire")
}

fn activities(b: durable::RuntimeBuilder) -> durable::RuntimeBuilder {
    b.register(echo)
        .register(square)
        .register(refuse)
        .register(explode)
}

#[orchestrator]
async fn squares(ctx: OrchestrationContext, n: i64) -> Result<Vec<i64>, Error> {
    let tasks: Vec<_> = (1..=n).map(|i| ctx.call_activity(square, i)).collect();
    ctx.when_all(tasks).await
}

#[tokio::test]
async fn when_all_returns_outputs_in_input_order() {
    in_both_modes(
        |b| activities(b).register(squares),
        |rt| async move {
            let id = rt.client().start(squares, 50).await.unwrap();
            let status = finished(&rt, &id).await;
            let expected: Vec<i64> = (1..=50).map(|i| i * i).collect();
            assert_eq!(status.output::<Vec<i64>>().unwrap(), expected);
        },
    )
    .await;
}

#[orchestrator]
async fn first_error(ctx: OrchestrationContext, _input: ()) -> Result<Vec<i64>, Error> {
    ctx.when_all(vec![
        ctx.call_activity(square, 2),
        ctx.call_activity(refuse, "first".to_string()),
        ctx.call_activity(refuse, "second".to_string()),
    ])
    .await
}

#[tokio::test]
async fn when_all_fails_with_the_first_error_in_input_order() {
    in_both_modes(
        |b| activities(b).register(first_error),
        |rt| async move {
            let id = rt.client().start(first_error, ()).await.unwrap();
            let message = failure_message(&finished(&rt, &id).await);
            assert!(
                message.contains("activity `refuse` failed: first"),
                "{message}"
            );
        },
    )
    .await;
}

#[orchestrator]
async fn activity_failure(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    match ctx.call_activity(refuse, "card declined".to_string()).await {
        Ok(_) => Ok("unexpected".into()),
        Err(err) => {
            let cause = err.cause().map(|c| c.message.clone()).unwrap_or_default();
            Ok(format!("{:?}|{err}|{cause}", err.kind()))
        }
    }
}

#[tokio::test]
async fn a_failed_activity_is_an_err_naming_the_activity_and_cause() {
    in_both_modes(
        |b| activities(b).register(activity_failure),
        |rt| async move {
            let id = rt.client().start(activity_failure, ()).await.unwrap();
            let out: String = finished(&rt, &id).await.output().unwrap();
            assert_eq!(
                out,
                "ActivityFailed { name: \"refuse\" }|activity `refuse` failed: card declined|card declined"
            );
        },
    )
    .await;
}

#[orchestrator]
async fn survives_panic(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let err = ctx.call_activity(explode, 1).await.unwrap_err();
    Ok(err.to_string())
}

#[tokio::test]
async fn a_panicking_activity_fails_the_call_and_the_host_lives_on() {
    in_both_modes(
        |b| activities(b).register(survives_panic).register(squares),
        |rt| async move {
            let id = rt.client().start(survives_panic, ()).await.unwrap();
            let out: String = finished(&rt, &id).await.output().unwrap();
            assert_eq!(
                out,
                "activity `explode` failed: activity `explode` panicked: the disk is on fire"
            );
            let next = rt.client().start(squares, 3).await.unwrap();
            assert_eq!(
                finished(&rt, &next).await.output::<Vec<i64>>().unwrap(),
                [1, 4, 9]
            );
        },
    )
    .await;
}

#[orchestrator]
async fn race(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let approval = ctx.wait_for_event::<String>("Approval");
    let deadline = ctx.sleep(Duration::from_secs(3600));
    let (index, _) = ctx
        .when_any(vec![
            Box::pin(async move { approval.await.map(|_| ()) })
                as std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
            Box::pin(async move {
                deadline.await;
                Ok(())
            }),
        ])
        .await;
    Ok(if index == 0 { "approved" } else { "timed out" }.to_string())
}

#[tokio::test]
async fn when_any_reports_the_first_to_finish() {
    in_both_modes(
        |b| b.register(race),
        |rt| async move {
            let a = rt.client().start(race, ()).await.unwrap();
            let b = rt.client().start(race, ()).await.unwrap();
            rt.idle().await;
            rt.client().raise_event(&a, "approval", "ok").await.unwrap();
            rt.idle().await;
            rt.advance(Duration::from_secs(3600)).await;
            assert_eq!(
                finished(&rt, &a).await.output::<String>().unwrap(),
                "approved"
            );
            assert_eq!(
                finished(&rt, &b).await.output::<String>().unwrap(),
                "timed out"
            );
        },
    )
    .await;
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Facts {
    guids: Vec<String>,
    times: Vec<String>,
    replayed_at_start: bool,
    instance: String,
}

#[orchestrator]
async fn facts(ctx: OrchestrationContext, _input: ()) -> Result<Facts, Error> {
    let replayed_at_start = ctx.is_replaying();
    let mut guids = vec![ctx.new_guid().to_string()];
    let mut times = vec![ctx.current_utc_datetime().to_rfc3339()];
    ctx.sleep(Duration::from_secs(5)).await;
    guids.push(ctx.new_guid().to_string());
    times.push(ctx.current_utc_datetime().to_rfc3339());
    ctx.set_custom_status(serde_json::json!({ "stage": "done" }));
    Ok(Facts {
        guids,
        times,
        replayed_at_start,
        instance: ctx.instance_id(),
    })
}

#[tokio::test]
async fn guids_time_and_replay_flag_are_replay_stable() {
    let outputs = std::sync::Mutex::new(Vec::new());
    in_both_modes(
        |b| b.register(facts),
        |rt| {
            let outputs = &outputs;
            async move {
                let id = rt
                    .client()
                    .start(facts, ())
                    .instance_id("facts-1")
                    .await
                    .unwrap();
                rt.advance(Duration::from_secs(5)).await;
                let status = finished(&rt, &id).await;
                assert_eq!(
                    status.custom_status::<serde_json::Value>().unwrap(),
                    Some(serde_json::json!({ "stage": "done" }))
                );
                let f: Facts = status.output().unwrap();
                assert_ne!(f.guids[0], f.guids[1]);
                assert_eq!(f.instance, "facts-1");
                outputs.lock().unwrap().push(f);
            }
        },
    )
    .await;
    let outputs = outputs.into_inner().unwrap();
    // The same instance id and the same clock give the same guids and times, whether the
    // instance ran from cache or replayed on every turn.
    assert_eq!(outputs[0].guids, outputs[1].guids);
    assert_eq!(outputs[0].times, outputs[1].times);
    assert_eq!(outputs[0].times[0], "2030-01-01T00:00:00+00:00");
    assert_eq!(outputs[0].times[1], "2030-01-01T00:00:05+00:00");
    // The output comes from the final turn: cached, the body's start ran live; replayed on
    // every turn, it was replayed.
    assert!(!outputs[0].replayed_at_start);
    assert!(outputs[1].replayed_at_start);
}

static BODY_STARTS: AtomicUsize = AtomicUsize::new(0);

#[orchestrator]
async fn counted(ctx: OrchestrationContext, steps: i64) -> Result<i64, Error> {
    BODY_STARTS.fetch_add(1, Ordering::SeqCst);
    let mut total = 0;
    for i in 0..steps {
        total += ctx.call_activity(square, i).await?;
    }
    Ok(total)
}

#[tokio::test]
async fn a_cached_instance_resumes_without_replaying_and_an_evicted_one_replays() {
    for (always_replay, expected_starts) in [(false, 1), (true, 6)] {
        BODY_STARTS.store(0, Ordering::SeqCst);
        let rt = TestRuntime::start(
            Runtime::builder()
                .register(counted)
                .register(square)
                .always_replay(always_replay),
        )
        .await
        .unwrap();
        let id = rt.client().start(counted, 5).await.unwrap();
        assert_eq!(finished(&rt, &id).await.output::<i64>().unwrap(), 30);
        // Five activity results make five more turns; replaying restarts the body each turn.
        assert_eq!(BODY_STARTS.load(Ordering::SeqCst), expected_starts);
    }
}

#[orchestrator]
async fn child(ctx: OrchestrationContext, n: i64) -> Result<String, Error> {
    if n < 0 {
        return Err(Error::msg("negative input"));
    }
    let parent_id = ctx
        .parent_instance()
        .map(|p| p.instance_id)
        .unwrap_or_default();
    let sq = ctx.call_activity(square, n).await?;
    Ok(format!("{}:{sq}:{parent_id}", ctx.instance_id()))
}

#[orchestrator]
async fn parent(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let mut out = vec![
        ctx.call_sub_orchestrator(child, 3).await?,
        ctx.call_sub_orchestrator(child, 4)
            .instance_id("chosen-child")
            .await?,
    ];
    let err = ctx.call_sub_orchestrator(child, -1).await.unwrap_err();
    out.push(err.to_string());
    Ok(out)
}

#[tokio::test]
async fn sub_orchestrations_return_outputs_and_failures() {
    in_both_modes(
        |b| b.register(parent).register(child).register(square),
        |rt| async move {
            let id = rt
                .client()
                .start(parent, ())
                .instance_id("p")
                .await
                .unwrap();
            let out: Vec<String> = finished(&rt, &id).await.output().unwrap();
            assert_eq!(
                out,
                [
                    "p:0:9:p",
                    "chosen-child:16:p",
                    "sub-orchestrator `child` (instance `p:2`) failed: negative input"
                ]
            );
            let child_status = rt.client().status("chosen-child").await.unwrap().unwrap();
            assert_eq!(child_status.parent_instance_id.as_deref(), Some("p"));
        },
    )
    .await;
}

#[orchestrator]
async fn flaky_child(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let attempt = ctx.instance_id();
    if !attempt.ends_with("retry3") {
        return Err(Error::msg(format!("{attempt} failed")));
    }
    Ok(format!("{attempt} succeeded"))
}

#[orchestrator]
async fn retrying_parent(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ctx.call_sub_orchestrator(flaky_child, ())
        .instance_id("kid")
        .retry(RetryPolicy::new(3, Duration::from_secs(10)))
        .await
}

#[tokio::test]
async fn a_sub_orchestration_is_retried_with_durable_waits() {
    in_both_modes(
        |b| b.register(retrying_parent).register(flaky_child),
        |rt| async move {
            let id = rt.client().start(retrying_parent, ()).await.unwrap();
            rt.advance(Duration::from_secs(10)).await;
            rt.advance(Duration::from_secs(10)).await;
            let out: String = finished(&rt, &id).await.output().unwrap();
            assert_eq!(out, "kid:retry3 succeeded");
        },
    )
    .await;
}

#[orchestrator]
async fn eternal(
    ctx: OrchestrationContext,
    state: (u32, Vec<String>),
) -> Result<Vec<String>, Error> {
    let (round, mut seen) = state;
    if round == 3 {
        return Ok(seen);
    }
    seen.push(ctx.wait_for_event::<String>("Item").await?);
    // Keep unread events for the next execution.
    ctx.continue_as_new_preserving_events((round + 1, seen))
        .await
}

#[tokio::test]
async fn continue_as_new_can_carry_unprocessed_events_over() {
    in_both_modes(
        |b| b.register(eternal),
        |rt| async move {
            let id = rt.client().start(eternal, (0, Vec::new())).await.unwrap();
            rt.idle().await;
            for item in ["a", "b", "c"] {
                rt.client().raise_event(&id, "Item", item).await.unwrap();
            }
            let status = rt
                .client()
                .wait_for_completion(&id, durable_tests::WAIT)
                .await
                .unwrap();
            assert_eq!(status.output::<Vec<String>>().unwrap(), ["a", "b", "c"]);
            let with_history = rt.client().status_with_history(&id).await.unwrap().unwrap();
            // Only the last execution's history is kept.
            assert!(with_history.history.unwrap().len() < 8);
        },
    )
    .await;
}

#[orchestrator]
async fn exploding(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    panic!("invariant broken: {}", 42)
}

#[orchestrator]
async fn returns_err(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    Err(Error::msg("no such customer"))
}

#[tokio::test]
async fn a_panicking_or_failing_orchestrator_fails_its_instance() {
    in_both_modes(
        |b| b.register(exploding).register(returns_err),
        |rt| async move {
            let id = rt.client().start(exploding, ()).await.unwrap();
            let status = finished(&rt, &id).await;
            assert_eq!(
                failure_message(&status),
                "orchestrator `exploding` panicked: invariant broken: 42"
            );
            assert_eq!(status.failure.unwrap().error_type, "Panic");
            let id = rt.client().start(returns_err, ()).await.unwrap();
            let status = finished(&rt, &id).await;
            assert_eq!(failure_message(&status), "no such customer");
            let err = status.output::<()>().unwrap_err();
            assert!(
                err.to_string().contains("failed: no such customer"),
                "{err}"
            );
        },
    )
    .await;
}
