//! `ctx.patched(id)`: instances that passed a patch point on old code replay down the old
//! branch after the host is restarted on new code; instances that reach it on new code take
//! the new branch, recorded in their history so that every replay agrees.

use std::sync::Arc;

use durable::history::EventKind;
use durable::prelude::*;
use durable::store::{Memory, Store};
use durable::testing::{ManualClock, TestRuntime};
use durable::{ErrorKind, RuntimeBuilder};
use durable_tests::{WAIT, failure_message, finished};

#[activity]
async fn pack(_ctx: ActivityContext, order: String) -> Result<String, Error> {
    Ok(format!("packed {order}"))
}

#[activity]
async fn letter(_ctx: ActivityContext, order: String) -> Result<String, Error> {
    Ok(format!("letter for {order}"))
}

#[activity]
async fn email(_ctx: ActivityContext, order: String) -> Result<String, Error> {
    Ok(format!("email for {order}"))
}

/// The code as first deployed: a letter after `go`.
mod old {
    use super::*;

    #[orchestrator]
    pub async fn shipping(ctx: OrchestrationContext, order: String) -> Result<Vec<String>, Error> {
        let mut done = vec![ctx.call_activity(pack, order.clone()).await?];
        let _go: bool = ctx.wait_for_event("go").await?;
        done.push(ctx.call_activity(letter, order).await?);
        let _done: bool = ctx.wait_for_event("done").await?;
        Ok(done)
    }
}

/// The change, behind a patch: an email instead of the letter.
mod patched {
    use super::*;

    #[orchestrator]
    pub async fn shipping(ctx: OrchestrationContext, order: String) -> Result<Vec<String>, Error> {
        let mut done = vec![ctx.call_activity(pack, order.clone()).await?];
        let _go: bool = ctx.wait_for_event("go").await?;
        if ctx.patched("email-instead-of-letter") {
            done.push(ctx.call_activity(email, order).await?);
        } else {
            done.push(ctx.call_activity(letter, order).await?);
        }
        let _done: bool = ctx.wait_for_event("done").await?;
        Ok(done)
    }
}

/// The change made without a patch: replaying an old instance diverges.
mod unpatched {
    use super::*;

    #[orchestrator]
    pub async fn shipping(ctx: OrchestrationContext, order: String) -> Result<Vec<String>, Error> {
        let mut done = vec![ctx.call_activity(pack, order.clone()).await?];
        let _go: bool = ctx.wait_for_event("go").await?;
        done.push(ctx.call_activity(email, order).await?);
        let _done: bool = ctx.wait_for_event("done").await?;
        Ok(done)
    }
}

/// The last stage: the old branch gone, the patch deprecated.
mod deprecated {
    use super::*;

    #[orchestrator]
    pub async fn shipping(ctx: OrchestrationContext, order: String) -> Result<Vec<String>, Error> {
        let mut done = vec![ctx.call_activity(pack, order.clone()).await?];
        let _go: bool = ctx.wait_for_event("go").await?;
        ctx.deprecate_patch("email-instead-of-letter");
        done.push(ctx.call_activity(email, order).await?);
        let _done: bool = ctx.wait_for_event("done").await?;
        Ok(done)
    }
}

#[orchestrator]
async fn bad_patch(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
    Ok(ctx.patched(""))
}

fn activities(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.register(pack).register(letter).register(email)
}

async fn on(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    always_replay: bool,
    code: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
) -> TestRuntime {
    let builder = code(activities(
        Runtime::builder()
            .shared_store(store.clone())
            .always_replay(always_replay),
    ));
    TestRuntime::start_with_clock(builder, clock.clone())
        .await
        .expect("the host starts")
}

async fn waiting(rt: &TestRuntime, order: &str) -> String {
    let id = rt
        .client()
        .start_by_name("shipping", order)
        .instance_id(order)
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(
        rt.client()
            .status(&id)
            .await
            .unwrap()
            .unwrap()
            .runtime_status,
        RuntimeStatus::Running
    );
    id.to_string()
}

async fn send(rt: &TestRuntime, id: &str, event: &str) {
    rt.client().raise_event(id, event, true).await.unwrap();
    rt.idle().await;
}

async fn patch_markers(rt: &TestRuntime, id: &str) -> Vec<String> {
    let status = rt.client().status_with_history(id).await.unwrap().unwrap();
    status
        .history
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Patched { patch_id } => Some(patch_id),
            _ => None,
        })
        .collect()
}

fn output(status: &InstanceStatus) -> Vec<String> {
    status
        .output()
        .unwrap_or_else(|e| panic!("{e}: {status:?}"))
}

#[tokio::test]
async fn instances_past_the_patch_point_keep_the_old_branch_and_new_ones_take_the_new() {
    for always_replay in [false, true] {
        println!("--- always_replay({always_replay})");
        let store: Arc<dyn Store> = Arc::new(Memory::new());
        let clock = ManualClock::new();
        // Old code: one instance passes the patch point, another waits before it.
        let rt = on(&store, &clock, always_replay, |b| b.register(old::shipping)).await;
        let passed = waiting(&rt, "passed").await;
        send(&rt, &passed, "go").await;
        let before = waiting(&rt, "before").await;
        rt.shutdown().await;
        drop(rt);

        // Restarted on the patched code.
        let rt = on(&store, &clock, always_replay, |b| {
            b.register(patched::shipping)
        })
        .await;
        send(&rt, &before, "go").await;
        let fresh = waiting(&rt, "fresh").await;
        send(&rt, &fresh, "go").await;
        for id in [&passed, &before, &fresh] {
            send(&rt, id, "done").await;
        }
        let status = finished(&rt, &passed).await;
        assert_eq!(
            output(&status),
            ["packed passed", "letter for passed"],
            "replayed down the old branch, without a nondeterminism error"
        );
        assert!(patch_markers(&rt, &passed).await.is_empty());
        for id in [&before, &fresh] {
            let status = finished(&rt, id).await;
            assert_eq!(
                output(&status),
                [format!("packed {id}"), format!("email for {id}")],
                "reached the patch point on new code"
            );
            assert_eq!(
                patch_markers(&rt, id).await,
                ["email-instead-of-letter"],
                "the marker is recorded once"
            );
        }
    }
}

#[tokio::test]
async fn without_the_patch_the_old_instance_fails_as_nondeterministic() {
    let store: Arc<dyn Store> = Arc::new(Memory::new());
    let clock = ManualClock::new();
    let rt = on(&store, &clock, false, |b| b.register(old::shipping)).await;
    let passed = waiting(&rt, "passed").await;
    send(&rt, &passed, "go").await;
    rt.shutdown().await;
    drop(rt);
    let rt = on(&store, &clock, false, |b| b.register(unpatched::shipping)).await;
    send(&rt, &passed, "done").await;
    let status = finished(&rt, &passed).await;
    let message = failure_message(&status);
    assert_eq!(
        status.failure.as_ref().unwrap().error_type,
        "Nondeterminism"
    );
    assert!(
        message.contains("`letter`") && message.contains("`email`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_deprecated_patch_records_the_marker_so_patched_code_replays_it() {
    let store: Arc<dyn Store> = Arc::new(Memory::new());
    let clock = ManualClock::new();
    // Started and past the point on the newest code...
    let rt = on(&store, &clock, false, |b| b.register(deprecated::shipping)).await;
    let id = waiting(&rt, "newest").await;
    send(&rt, &id, "go").await;
    assert_eq!(patch_markers(&rt, &id).await, ["email-instead-of-letter"]);
    rt.shutdown().await;
    drop(rt);
    // ...and finished by a host still running the patched code (a rollback).
    let rt = on(&store, &clock, true, |b| b.register(patched::shipping)).await;
    send(&rt, &id, "done").await;
    let status = finished(&rt, &id).await;
    assert_eq!(output(&status), ["packed newest", "email for newest"]);
    // A fresh instance on the deprecated code records the marker and takes the only branch,
    // with every turn replayed.
    let rt = on(&store, &clock, true, |b| b.register(deprecated::shipping)).await;
    let again = waiting(&rt, "again").await;
    send(&rt, &again, "go").await;
    send(&rt, &again, "done").await;
    assert_eq!(
        output(&finished(&rt, &again).await),
        ["packed again", "email for again"]
    );
}

#[tokio::test]
async fn an_empty_patch_id_fails_the_instance_with_the_reason() {
    let rt = TestRuntime::start(Runtime::builder().register(bad_patch))
        .await
        .unwrap();
    let id = rt.client().start(bad_patch, ()).await.unwrap();
    let status = rt.client().wait_for_completion(&id, WAIT).await.unwrap();
    let message = failure_message(&status);
    assert_eq!(
        status.failure.as_ref().unwrap().error_type,
        ErrorKind::InvalidArgument.as_str()
    );
    assert!(
        message.contains("patch id `` must be 1 to 100 characters"),
        "{message}"
    );
}
