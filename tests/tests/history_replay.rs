//! Replay checks: exported histories replayed against the current code with
//! `durable::testing::replay_check`, as a project's CI runs the histories it commits under
//! `tests/`. Compatible code passes; a change that makes the code take another step fails,
//! naming the step and the call site.
//!
//! `tests/histories/checkout.json` was exported from a run of `checkout` below (rewrite it
//! with `DURABLE_WRITE_HISTORIES=1 cargo test -p durable-tests --test history_replay`).

use std::time::Duration;

use durable::history::{HistoryFile, HistoryFileError};
use durable::prelude::*;
use durable::testing::{ReplayDivergence, TestRuntime, replay_check};
use durable_tests::finished;

const COMMITTED: &str = include_str!("../histories/checkout.json");

#[activity]
async fn charge(_ctx: ActivityContext, cents: u64) -> Result<String, Error> {
    Ok(format!("r{cents}"))
}

#[activity]
async fn notify(_ctx: ActivityContext, text: String) -> Result<(), Error> {
    let _ = text;
    Ok(())
}

#[activity]
async fn refund(_ctx: ActivityContext, cents: u64) -> Result<(), Error> {
    let _ = cents;
    Ok(())
}

#[orchestrator]
async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    let receipt = ctx.call_activity(charge, cents).await?;
    ctx.sleep(Duration::from_secs(60)).await;
    ctx.call_activity(notify, format!("paid {receipt}")).await?;
    Ok(receipt)
}

/// A compatible change: the same steps, a custom status and another output.
#[orchestrator(name = "checkout")]
async fn checkout_reworded(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    let receipt = ctx.call_activity(charge, cents).await?;
    ctx.set_custom_status("charged");
    ctx.sleep(Duration::from_secs(60)).await;
    ctx.call_activity(notify, format!("paid {receipt}")).await?;
    Ok(format!("receipt {receipt}"))
}

/// An incompatible change: step 2 calls another activity.
#[orchestrator(name = "checkout")]
async fn checkout_refunding(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    let receipt = ctx.call_activity(charge, cents).await?;
    ctx.sleep(Duration::from_secs(60)).await;
    ctx.call_activity(refund, cents).await?;
    Ok(receipt)
}

/// Another incompatible change: a step added after the last one.
#[orchestrator(name = "checkout")]
async fn checkout_with_follow_up(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    let receipt = ctx.call_activity(charge, cents).await?;
    ctx.sleep(Duration::from_secs(60)).await;
    ctx.call_activity(notify, format!("paid {receipt}")).await?;
    ctx.call_activity(notify, "follow-up".to_string()).await?;
    Ok(receipt)
}

fn committed() -> HistoryFile {
    HistoryFile::from_json(COMMITTED).expect("the committed history reads")
}

/// Runs `checkout` on the test kit and exports its history, after the first turns (waiting
/// on the timer) and at the end.
async fn run_and_export() -> Result<(HistoryFile, HistoryFile), Error> {
    let test = TestRuntime::start(
        Runtime::builder()
            .register(checkout)
            .register(charge)
            .register(notify),
    )
    .await?;
    let client = test.client();
    let id = client.start(checkout, 1250).instance_id("order-17").await?;
    test.idle().await;
    let export = |status: Option<InstanceStatus>| {
        let mut status = status.expect("the instance exists");
        let history = status.history.take().unwrap_or_default();
        HistoryFile::new(&status, history)
    };
    let waiting = export(client.status_with_history(&id).await?);
    test.advance(Duration::from_secs(60)).await;
    finished(&test, &id).await;
    let done = export(client.status_with_history(&id).await?);
    Ok((waiting, done))
}

#[tokio::test]
async fn an_exported_history_replays_on_the_code_that_wrote_it() -> Result<(), Error> {
    let (waiting, done) = run_and_export().await?;
    assert_eq!(done.instance.runtime_status, RuntimeStatus::Completed);
    if std::env::var_os("DURABLE_WRITE_HISTORIES").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/histories/checkout.json");
        std::fs::write(path, done.to_json_pretty() + "\n")?;
    }
    replay_check(checkout, &waiting).map_err(Error::msg)?;
    replay_check(checkout, &done).map_err(Error::msg)?;
    // The file round-trips, and a pair of an id and events works as well as a file.
    let reread = HistoryFile::from_json(&done.to_json_pretty()).map_err(Error::msg)?;
    assert_eq!(reread, done);
    replay_check(checkout, ("order-17", done.history.clone())).map_err(Error::msg)?;
    Ok(())
}

#[test]
fn the_committed_history_passes_on_compatible_code() {
    let file = committed();
    assert_eq!(file.instance.instance_id, "order-17");
    assert_eq!(replay_check(checkout, &file), Ok(()));
    assert_eq!(replay_check(checkout_reworded, &file), Ok(()));
    let mut registry = durable::Registry::default();
    registry.add_orchestrator::<checkout>();
    assert_eq!(replay_check(&registry, &file), Ok(()));
}

#[test]
fn the_committed_history_fails_on_code_that_takes_another_step() {
    let err = replay_check(checkout_refunding, committed()).unwrap_err();
    assert_eq!(err.step, Some(2), "{err}");
    assert_eq!(err.orchestrator, "checkout");
    assert_eq!(err.instance_id, "order-17");
    let call_site = err.call_site.as_deref().unwrap_or_default();
    assert!(
        call_site.starts_with("tests/tests/history_replay.rs:"),
        "{call_site}"
    );
    assert!(
        err.message.contains(
            "the history recorded a call to activity `notify` with input `\"paid r1250\"` as \
             step 2, but the code now calls activity `refund` with input `1250` at \
             tests/tests/history_replay.rs:"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_step_added_at_the_end_fails_a_finished_history_but_not_a_running_one()
-> Result<(), Error> {
    let (waiting, done) = run_and_export().await?;
    assert_eq!(replay_check(checkout_with_follow_up, &waiting), Ok(()));
    let err = replay_check(checkout_with_follow_up, &done).unwrap_err();
    assert_eq!(err.step, Some(3), "{err}");
    assert!(
        err.message.contains(
            "the history recorded that the execution completed, but the code now calls \
             activity `notify` with input `\"follow-up\"` at tests/tests/history_replay.rs:"
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_history_of_another_orchestrator_or_with_no_start_is_reported() {
    #[orchestrator]
    async fn other(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
        Ok(())
    }
    let err: ReplayDivergence = replay_check(other, committed()).unwrap_err();
    assert_eq!(
        err.message,
        "the history of `order-17` ran orchestrator `checkout`, which the code given to \
         replay_check does not have; pass its handle, or a registry that registers it"
    );
    let mut events = committed().history;
    events.retain(|e| e.kind.name() != "ExecutionStarted");
    let err = replay_check(checkout, ("order-17", events)).unwrap_err();
    assert!(
        err.message.contains("has no ExecutionStarted event"),
        "{err}"
    );
}

#[test]
fn a_damaged_file_is_refused_with_what_is_wrong() {
    let cut = &COMMITTED[..COMMITTED.len() / 2];
    assert!(matches!(
        HistoryFile::from_json(cut),
        Err(HistoryFileError::NotJson(_))
    ));
    let newer = COMMITTED.replacen("\"version\": 1", "\"version\": 2", 1);
    let err = HistoryFile::from_json(&newer).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exported history version 2 is not supported; this version of durable reads version 1"
    );
}
