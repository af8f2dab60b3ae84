//! Replay compares every recorded step in full with what the code does now: the activity's
//! name and input, a sub-orchestration's name, id and input, a timer's due time, an event's
//! target, name and payload, an entity's id, operation and input, a lock's entities. Code that
//! changed, or that depends on something outside its history, fails its instance with an error
//! naming both sides and the call site; it never completes with another step's result. And an
//! orchestrator awaiting a future that is not durable fails instead of hanging.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable::prelude::*;
use durable::store::Memory;
use durable::testing::TestRuntime;
use durable_examples::counter::Counter;
use durable_tests::{failure_message, finished, in_both_modes};

/// The version of the code each instance sees, by instance id: tests flip it between turns to
/// play a deployment of changed code (a global read in an orchestrator is exactly the kind of
/// dependency on something outside the history that replay must catch).
static VERSIONS: LazyLock<Mutex<BTreeMap<String, u8>>> = LazyLock::new(Default::default);

fn version(ctx: &OrchestrationContext) -> u8 {
    let versions = VERSIONS.lock().unwrap();
    versions.get(&ctx.instance_id()).copied().unwrap_or(1)
}

fn deploy_v2(instance_id: &str) {
    VERSIONS.lock().unwrap().insert(instance_id.to_string(), 2);
}

#[activity]
async fn echo(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text)
}

#[activity]
async fn shout(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text.to_uppercase())
}

#[orchestrator]
async fn child(_ctx: OrchestrationContext, text: String) -> Result<String, Error> {
    Ok(text)
}

/// One step whose details depend on the version, then a wait for `Go`.
#[orchestrator]
async fn diverging(ctx: OrchestrationContext, kind: String) -> Result<String, Error> {
    let v = version(&ctx);
    let id = ctx.instance_id();
    match kind.as_str() {
        "activity input" => {
            ctx.call_activity(echo, format!("v{v}")).await?;
        }
        "activity name" => {
            if v == 1 {
                ctx.call_activity(echo, "x".to_string()).await?;
            } else {
                ctx.call_activity(shout, "x".to_string()).await?;
            }
        }
        "sub-orchestration input" => {
            ctx.call_sub_orchestrator(child, format!("v{v}")).await?;
        }
        "sub-orchestration id" => {
            ctx.call_sub_orchestrator(child, "x".to_string())
                .instance_id(format!("{id}-child-{v}"))
                .await?;
        }
        "timer" => {
            let go = ctx
                .wait_for_event_with_timeout::<String>("Go", Duration::from_secs(60 * u64::from(v)))
                .await?;
            return Ok(go.unwrap_or_default());
        }
        "event target" => ctx.raise_event(&format!("{id}-peer-{v}"), "Ping", 1)?,
        "event payload" => ctx.raise_event(&format!("{id}-peer"), "Ping", v)?,
        "entity input" => ctx.signal_entity::<Counter>(id.clone()).add(i64::from(v)),
        "entity key" => ctx.signal_entity::<Counter>(format!("{id}-{v}")).add(1),
        "entity operation" => {
            if v == 1 {
                ctx.call_entity::<Counter>(id.clone()).get().await?;
            } else {
                ctx.call_entity::<Counter>(id.clone()).add(1).await?;
            }
        }
        "lock set" => {
            let _locks = ctx
                .lock_entities([EntityId::of::<Counter>(format!("{id}-{v}"))])
                .await?;
        }
        other => return Err(Error::msg(format!("unknown kind {other}"))),
    }
    ctx.wait_for_event::<String>("Go").await
}

/// A host replaying every turn from history, so a changed step shows at the next turn.
async fn replaying_host(store: &Memory) -> TestRuntime {
    TestRuntime::start(
        Runtime::builder()
            .store(store.clone())
            .always_replay(true)
            .register(diverging)
            .register(child)
            .register(echo)
            .register(shout)
            .register_entity::<Counter>(),
    )
    .await
    .unwrap()
}

/// Runs `kind` on version 1 until it waits for `Go`, deploys version 2, sends `Go`, and
/// returns the failure message of the instance.
async fn diverge(kind: &str) -> String {
    let store = Memory::new();
    let rt = replaying_host(&store).await;
    let id = rt
        .client()
        .start(diverging, kind.to_string())
        .instance_id(format!("diverge-{}", kind.replace(' ', "-")))
        .await
        .unwrap();
    rt.idle().await;
    let status = rt.client().status(&id).await.unwrap().unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Running,
        "{kind}: {status:?}"
    );
    deploy_v2(&id);
    rt.client().raise_event(&id, "Go", "!").await.unwrap();
    let status = finished(&rt, &id).await;
    let message = failure_message(&status);
    assert_eq!(
        status.failure.as_ref().unwrap().error_type,
        "Nondeterminism",
        "{kind}: {message}"
    );
    assert!(
        message.contains("tests/tests/replay_checks.rs:"),
        "{kind}: the call site is named: {message}"
    );
    message
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}

#[tokio::test]
async fn a_changed_activity_input_fails_naming_both_inputs() {
    let message = diverge("activity input").await;
    assert_names(
        &message,
        &[
            "the history recorded a call to activity `echo` with input `\"v1\"` as step 0",
            "but the code now calls activity `echo` with input `\"v2\"` at",
        ],
    );
}

#[tokio::test]
async fn a_changed_activity_fails() {
    let message = diverge("activity name").await;
    assert_names(
        &message,
        &[
            "activity `echo` with input `\"x\"`",
            "calls activity `shout`",
        ],
    );
}

#[tokio::test]
async fn a_changed_sub_orchestration_input_or_id_fails() {
    let message = diverge("sub-orchestration input").await;
    assert_names(
        &message,
        &["sub-orchestrator `child`", "`\"v1\"`", "`\"v2\"`"],
    );
    let message = diverge("sub-orchestration id").await;
    assert_names(&message, &["-child-1`", "-child-2`"]);
}

#[tokio::test]
async fn a_changed_timer_due_time_fails() {
    let message = diverge("timer").await;
    assert_names(&message, &["a timer due at", "creates a timer due at"]);
}

#[tokio::test]
async fn a_changed_event_target_or_payload_fails() {
    let message = diverge("event target").await;
    assert_names(&message, &["-peer-1`", "-peer-2`"]);
    let message = diverge("event payload").await;
    assert_names(&message, &["event `Ping`", "`1`", "`2`"]);
}

#[tokio::test]
async fn a_changed_entity_input_key_or_operation_fails() {
    let message = diverge("entity input").await;
    assert_names(
        &message,
        &["operation `add`", "with input `1`", "with input `2`"],
    );
    let message = diverge("entity key").await;
    assert_names(&message, &["-1`", "-2`"]);
    let message = diverge("entity operation").await;
    assert_names(&message, &["operation `get`", "operation `add`"]);
}

#[tokio::test]
async fn a_changed_lock_set_fails() {
    let message = diverge("lock set").await;
    assert_names(&message, &["-1\"]", "-2\"]"]);
}

/// A host with the instance cache on (the default): it replays only what it has not cached.
async fn caching_host(store: &Memory) -> TestRuntime {
    let builder = Runtime::builder().store(store.clone());
    TestRuntime::start(builder.register(diverging).register(echo))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_host_restart_replays_and_catches_the_change_too() {
    let store = Memory::new();
    let first = caching_host(&store).await;
    let id = first
        .client()
        .start(diverging, "activity input".to_string())
        .instance_id("restarted")
        .await
        .unwrap();
    first.idle().await;
    first.shutdown().await;
    deploy_v2(&id);
    // A new host has nothing cached: it replays the history with the changed code.
    let second = caching_host(&store).await;
    second.client().raise_event(&id, "Go", "!").await.unwrap();
    let message = failure_message(&finished(&second, &id).await);
    assert_names(&message, &["`\"v1\"`", "`\"v2\"`"]);
}

/// Twenty keys in a `HashMap`, built outside the orchestrator where no compile-time check can
/// see it: every process, and every replay, iterates them in another order.
fn keys() -> HashMap<String, u32> {
    (0..20).map(|i| (format!("key-{i:02}"), i)).collect()
}

#[activity]
async fn label(_ctx: ActivityContext, entry: (String, u32)) -> Result<String, Error> {
    Ok(format!("{}={}", entry.0, entry.1))
}

#[orchestrator]
async fn per_key(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let mut labels = Vec::new();
    for entry in keys() {
        labels.push(ctx.call_activity(label, entry).await?);
    }
    labels.sort();
    Ok(labels)
}

#[tokio::test]
async fn hash_map_iteration_never_completes_with_wrong_results() {
    let right: Vec<String> = (0..20).map(|i| format!("key-{i:02}={i}")).collect();
    for always_replay in [false, true] {
        let rt = TestRuntime::start(
            Runtime::builder()
                .always_replay(always_replay)
                .register(per_key)
                .register(label),
        )
        .await
        .unwrap();
        let id = rt.client().start(per_key, ()).await.unwrap();
        let status = finished(&rt, &id).await;
        match status.runtime_status {
            // Without a replay (the cached mode), the code ran once, in one order.
            RuntimeStatus::Completed => {
                assert!(!always_replay, "every turn replays: the order must change");
                assert_eq!(status.output::<Vec<String>>().unwrap(), right);
            }
            RuntimeStatus::Failed => {
                let failure = status.failure.as_ref().unwrap();
                assert_eq!(failure.error_type, "Nondeterminism", "{failure:?}");
                assert_names(
                    &failure.message,
                    &[
                        "a call to activity `label` with input `[\"key-",
                        "tests/tests/replay_checks.rs:",
                    ],
                );
            }
            other => panic!("always_replay({always_replay}): unexpected status {other:?}"),
        }
        rt.shutdown().await;
    }
}

/// Awaits a channel nobody durable will ever send on.
#[orchestrator]
async fn waits_on_a_channel(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let (_tx, rx) = futures::channel::oneshot::channel::<String>();
    ctx.call_activity(echo, "before".to_string()).await?;
    rx.await.map_err(Error::from)
}

#[tokio::test]
async fn waiting_on_a_future_that_is_not_durable_fails_instead_of_hanging() {
    in_both_modes(
        |b| b.register(waits_on_a_channel).register(echo),
        |rt| async move {
            let id = rt.client().start(waits_on_a_channel, ()).await.unwrap();
            let status = finished(&rt, &id).await;
            let failure = status.failure.as_ref().expect("a failure");
            assert_eq!(failure.error_type, "NonDurableWait", "{failure:?}");
            assert_names(
                &failure.message,
                &[
                    "orchestrator `waits_on_a_channel` is waiting on something that is not durable",
                    "ctx.sleep",
                    "ctx.wait_for_event",
                ],
            );
        },
    )
    .await;
}
