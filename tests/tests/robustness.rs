//! Nondeterminism detection, bad input, poison messages, restart. (The host's limits are in
//! `limits.rs`.)

use std::sync::Arc;
use std::time::Duration;

use durable::ErrorKind;
use durable::prelude::*;
use durable::store::{Memory, StoreError};
use durable::testing::{ManualClock, TestRuntime};
use durable_tests::hooked::HookedStore;
use durable_tests::{WAIT, failure_message, finished};

#[activity]
async fn echo(_ctx: ActivityContext, text: String) -> Result<String, Error> {
    Ok(text)
}

#[orchestrator(name = "flow")]
async fn flow_v1(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let a = ctx.call_activity(echo, "a".to_string()).await?;
    let go: String = ctx.wait_for_event("Go").await?;
    Ok(format!("{a}{go}"))
}

#[orchestrator(name = "flow")]
async fn flow_timer_first(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ctx.sleep(Duration::from_secs(1)).await;
    Ok("never".into())
}

#[orchestrator(name = "flow")]
async fn flow_event_first(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let go: String = ctx.wait_for_event("Go").await?;
    Ok(go)
}

/// A host on `store` running `flow` (one of the versions above) and `echo`.
async fn host_with(store: &Memory, flow: impl durable::Register) -> TestRuntime {
    TestRuntime::start(
        Runtime::builder()
            .store(store.clone())
            .register(flow)
            .register(echo),
    )
    .await
    .unwrap()
}

async fn run_v1_until_waiting(store: &Memory) -> String {
    let v1 = host_with(store, flow_v1).await;
    let id = v1.client().start(flow_v1, ()).await.unwrap();
    v1.idle().await;
    v1.shutdown().await;
    id.to_string()
}

#[tokio::test]
async fn changed_code_fails_the_instance_naming_both_sides_and_the_call_site() {
    let store = Memory::new();
    let id = run_v1_until_waiting(&store).await;
    let v2 = host_with(&store, flow_timer_first).await;
    v2.client().raise_event(&id, "Go", "!").await.unwrap();
    let status = finished(&v2, &id).await;
    let message = failure_message(&status);
    assert_eq!(
        status.failure.as_ref().unwrap().error_type,
        "Nondeterminism"
    );
    assert!(
        message.contains("nondeterministic orchestrator `flow`"),
        "{message}"
    );
    assert!(
        message.contains(
            "the history recorded a call to activity `echo` with input `\"a\"` as step 0"
        ),
        "{message}"
    );
    assert!(
        message.contains("but the code now creates a timer due at "),
        "{message}"
    );
    assert!(
        message.contains(" at tests/tests/robustness.rs:"),
        "{message}"
    );
}

#[tokio::test]
async fn code_that_no_longer_schedules_a_recorded_step_fails_the_instance() {
    let store = Memory::new();
    let id = run_v1_until_waiting(&store).await;
    let v3 = host_with(&store, flow_event_first).await;
    v3.client().raise_event(&id, "Go", "!").await.unwrap();
    let message = failure_message(&finished(&v3, &id).await);
    assert!(
        message.contains(
            "recorded a call to activity `echo` with input `\"a\"` as step 0, but the code did \
             not schedule it: it scheduled no step and waits on something else"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn an_instance_survives_a_host_restart() {
    let store = Memory::new();
    let id = run_v1_until_waiting(&store).await;
    let status = Client::new(Arc::new(store.clone()))
        .status(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    // A new host (empty cache) replays the history and carries on.
    let again = host_with(&store, flow_v1).await;
    again.client().raise_event(&id, "go", "!").await.unwrap();
    assert_eq!(
        finished(&again, &id).await.output::<String>().unwrap(),
        "a!"
    );
}

#[orchestrator]
async fn wants_number(_ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[orchestrator]
async fn calls_unregistered(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    match ctx.call_activity(echo, "x".to_string()).await {
        Ok(_) => Ok("registered after all".into()),
        Err(e) => Ok(e.to_string()),
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_nothing_crashes() {
    let rt = TestRuntime::start(
        Runtime::builder()
            .register(wants_number)
            .register(calls_unregistered),
    )
    .await
    .unwrap();
    let client = rt.client();

    let err = client.start_by_name("nope", 1).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::UnknownFunction);
    assert!(
        err.to_string().contains("no orchestrator named `nope`"),
        "{err}"
    );

    // A host's client checks the input against the orchestrator's type up front...
    let err = client
        .start_by_name("wants_number", "ten")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Serialization);
    assert!(
        err.to_string()
            .contains("the input of orchestrator `wants_number` does not fit its input type"),
        "{err}"
    );
    // ...and an instance started without that check fails with the same reason.
    let id = Client::new(rt.store().clone())
        .start_by_name("wants_number", "ten")
        .await
        .unwrap();
    let message = failure_message(&finished(&rt, &id).await);
    assert!(
        message.contains("the input of orchestrator `wants_number` does not fit its input type"),
        "{message}"
    );

    let id = client.start(calls_unregistered, ()).await.unwrap();
    let out: String = finished(&rt, &id).await.output().unwrap();
    assert_eq!(
        out,
        "activity `echo` failed: no activity named `echo` is registered on this host"
    );

    let err = client.raise_event("nobody", "Go", 1).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceNotFound);
    assert!(
        err.to_string().contains("no instance with id `nobody`"),
        "{err}"
    );
    assert!(client.terminate("nobody", "x").await.is_err());
    assert!(client.suspend("nobody", "x").await.is_err());

    // A client without a registry (e.g. another process) cannot check names up front: the
    // host leaves the instance for a host that has the orchestrator, and says so.
    let remote = Client::new(rt.store().clone());
    let id = remote.start_by_name("nope", 1).await.unwrap();
    rt.idle().await;
    let status = client.status(&id).await.unwrap().unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Pending, "{status:?}");
    let left = rt.left_work();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        (left[0].instance_id.as_str(), left[0].name.as_str()),
        (id.as_str(), "nope")
    );
    assert_eq!(left[0].reason, durable::LeftReason::NotRegistered);

    // The host still works.
    let id = client.start(wants_number, 7).await.unwrap();
    assert_eq!(finished(&rt, &id).await.output::<u32>().unwrap(), 7);
}

#[tokio::test]
async fn misconfigured_builders_are_refused() {
    let err = Runtime::builder()
        .register(echo)
        .start()
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("no store"), "{err}");
    let err = Runtime::builder()
        .store(Memory::new())
        .register(echo)
        .register(echo)
        .start()
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("activity `echo` is registered twice"),
        "{err}"
    );
    for count in [0, 1025] {
        let err = Runtime::builder()
            .store(Memory::new())
            .partitions(count)
            .start()
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), &ErrorKind::InvalidArgument, "{err}");
        assert!(
            err.to_string()
                .contains("a task hub has between 1 and 1024 partitions"),
            "{err}"
        );
    }
    // The count is the hub's: a later host with another setting owns the stored partitions.
    let store = Memory::new();
    let first = Runtime::builder()
        .store(store.clone())
        .partitions(3)
        .start()
        .await
        .unwrap();
    assert_eq!(first.partitions(), vec![0, 1, 2]);
    first.shutdown().await;
    let second = Runtime::builder()
        .store(store)
        .partitions(8)
        .start()
        .await
        .unwrap();
    assert_eq!(
        second.partitions(),
        vec![0, 1, 2],
        "the hub keeps its 3 partitions"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn messages_that_keep_failing_are_parked_with_their_error() {
    let rt = Runtime::builder()
        .store(HookedStore::new(
            Memory::new(),
            Arc::new(|item, _| {
                // Every commit for the poison instance fails.
                if item.instance_id.starts_with("poison") {
                    Err(StoreError::Backend("disk full".into()))
                } else {
                    Ok(())
                }
            }),
        ))
        .clock(ManualClock::new())
        .register(wants_number)
        .max_dequeue_count(2)
        .start()
        .await
        .unwrap();
    let client = rt.client();
    client
        .start(wants_number, 1)
        .instance_id("poison-1")
        .await
        .unwrap();
    let healthy = client.start(wants_number, 2).await.unwrap();
    assert_eq!(
        client
            .wait_for_completion(&healthy, WAIT)
            .await
            .unwrap()
            .output::<u32>()
            .unwrap(),
        2
    );
    let parked = tokio::time::timeout(WAIT, async {
        loop {
            let parked = rt.store().parked().await.unwrap();
            if !parked.is_empty() {
                return parked;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the poison message is parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].instance_id, "poison-1");
    assert!(
        parked[0].message.contains("ExecutionStarted"),
        "{}",
        parked[0].message
    );
    assert!(
        parked[0].error.contains("parked after 2 failed attempts")
            && parked[0].error.contains("disk full"),
        "{}",
        parked[0].error
    );
    // The instance is kept, not lost; it simply has nothing left to process.
    let status = client.status("poison-1").await.unwrap().unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Pending);
    rt.shutdown().await;
}
