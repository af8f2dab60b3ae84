//! The client: starting, status, waiting, events, terminate, suspend/resume, restart, purge,
//! query, task hubs.

use std::time::Duration;

use chrono::TimeDelta;
use durable::prelude::*;
use durable::store::Memory;
use durable::testing::{ManualClock, TestRuntime};
use durable::{ErrorKind, InstanceQuery, PurgeFilter};
use durable_tests::{WAIT, finished};

#[orchestrator]
async fn approval(ctx: OrchestrationContext, who: String) -> Result<String, Error> {
    ctx.set_custom_status("waiting");
    let ok: bool = ctx.wait_for_event("Approval").await?;
    Ok(format!(
        "{who}: {}",
        if ok { "approved" } else { "rejected" }
    ))
}

#[orchestrator]
async fn quick(_ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    Ok(n + 1)
}

async fn runtime() -> TestRuntime {
    TestRuntime::start(Runtime::builder().register(approval).register(quick))
        .await
        .unwrap()
}

#[tokio::test]
async fn status_reports_what_a_user_needs() {
    let rt = runtime().await;
    let client = rt.client();
    let id = client
        .start(approval, "ann".to_string())
        .instance_id("order-1")
        .await
        .unwrap();
    assert_eq!(id, "order-1");
    let running = client.wait_for_start(&id, WAIT).await.unwrap();
    rt.idle().await;
    let running = client.status(&id).await.unwrap().unwrap_or(running);
    assert_eq!(running.name, "approval");
    assert_eq!(running.runtime_status, RuntimeStatus::Running);
    assert_eq!(running.input::<String>().unwrap(), "ann");
    assert_eq!(
        running.custom_status::<String>().unwrap().as_deref(),
        Some("waiting")
    );
    assert!(running.output::<String>().is_err());
    assert_eq!(running.created_at, rt.clock().now());

    rt.clock().advance(Duration::from_secs(30));
    client.raise_event(&id, "approval", true).await.unwrap();
    let done = finished(&rt, &id).await;
    assert_eq!(done.output::<String>().unwrap(), "ann: approved");
    assert_eq!(
        done.last_updated_at - done.created_at,
        TimeDelta::seconds(30)
    );

    let with_history = client.status_with_history(&id).await.unwrap().unwrap();
    let kinds: Vec<&str> = with_history
        .history
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(
        kinds,
        [
            "OrchestratorStarted",
            "ExecutionStarted",
            "OrchestratorCompleted",
            "OrchestratorStarted",
            "EventRaised",
            "ExecutionCompleted",
            "OrchestratorCompleted"
        ]
    );
    assert!(client.status("no-such-id").await.unwrap().is_none());
}

#[tokio::test]
async fn starting_a_running_id_is_refused_unless_asked_to_replace() {
    let rt = runtime().await;
    let client = rt.client();
    client
        .start(approval, "a".into())
        .instance_id("dup")
        .await
        .unwrap();
    let err = client
        .start(approval, "b".into())
        .instance_id("dup")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceAlreadyExists);
    assert!(
        err.to_string()
            .contains("`dup` is already pending or running"),
        "{err}"
    );

    client
        .start(approval, "b".into())
        .instance_id("dup")
        .replace_existing()
        .await
        .unwrap();
    rt.idle().await;
    client.raise_event("dup", "Approval", false).await.unwrap();
    assert_eq!(
        finished(&rt, "dup").await.output::<String>().unwrap(),
        "b: rejected"
    );
    // A finished id may be started again.
    client.start(quick, 1).instance_id("dup").await.unwrap();
    assert_eq!(finished(&rt, "dup").await.output::<u32>().unwrap(), 2);
}

#[tokio::test]
async fn a_scheduled_start_waits_for_its_time() {
    let rt = runtime().await;
    let client = rt.client();
    let at = rt.clock().now() + TimeDelta::hours(2);
    let id = client.start(quick, 41).start_at(at).await.unwrap();
    rt.idle().await;
    assert_eq!(
        client.status(&id).await.unwrap().unwrap().runtime_status,
        RuntimeStatus::Pending
    );
    rt.advance(Duration::from_secs(2 * 3600)).await;
    assert_eq!(finished(&rt, &id).await.output::<u32>().unwrap(), 42);
}

#[tokio::test]
async fn wait_for_completion_times_out_with_a_clear_error() {
    let rt = runtime().await;
    let id = rt.client().start(approval, "x".into()).await.unwrap();
    let err = rt
        .client()
        .wait_for_completion(&id, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(
        err.to_string().contains("did not complete within 50ms"),
        "{err}"
    );
    let err = rt
        .client()
        .wait_for_completion("missing", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceNotFound);
}

#[tokio::test]
async fn terminate_ends_an_instance_with_its_reason() {
    let rt = runtime().await;
    let client = rt.client();
    let id = client.start(approval, "t".into()).await.unwrap();
    rt.idle().await;
    client.terminate(&id, "no longer needed").await.unwrap();
    let status = finished(&rt, &id).await;
    assert_eq!(status.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(status.output.as_deref(), Some("\"no longer needed\""));
    // Finished: further events and terminations are refused.
    let err = client.raise_event(&id, "Approval", true).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstanceNotRunning);
    assert!(client.terminate(&id, "again").await.is_err());
}

#[tokio::test]
async fn a_suspended_instance_keeps_its_events_until_resumed() {
    let rt = runtime().await;
    let client = rt.client();
    let id = client.start(approval, "s".into()).await.unwrap();
    rt.idle().await;
    client.suspend(&id, "investigating").await.unwrap();
    rt.idle().await;
    assert_eq!(
        client.status(&id).await.unwrap().unwrap().runtime_status,
        RuntimeStatus::Suspended
    );
    client.raise_event(&id, "Approval", true).await.unwrap();
    rt.idle().await;
    assert_eq!(
        client.status(&id).await.unwrap().unwrap().runtime_status,
        RuntimeStatus::Suspended,
        "a suspended instance does not process events"
    );
    client.resume(&id, "done").await.unwrap();
    assert_eq!(
        finished(&rt, &id).await.output::<String>().unwrap(),
        "s: approved"
    );
}

#[tokio::test]
async fn restart_runs_the_same_input_again() {
    let rt = runtime().await;
    let client = rt.client();
    let id = client.start(quick, 9).instance_id("r").await.unwrap();
    finished(&rt, &id).await;
    let same = client.restart(&id, false).await.unwrap();
    assert_eq!(same, "r");
    assert_eq!(finished(&rt, &same).await.output::<u32>().unwrap(), 10);
    let fresh = client.restart(&id, true).await.unwrap();
    assert_ne!(fresh, "r");
    assert_eq!(finished(&rt, &fresh).await.output::<u32>().unwrap(), 10);
    assert!(client.restart("missing", true).await.is_err());
}

#[tokio::test]
async fn purge_removes_finished_instances_only() {
    let rt = runtime().await;
    let client = rt.client();
    let done = client.start(quick, 1).await.unwrap();
    finished(&rt, &done).await;
    let running = client.start(approval, "p".into()).await.unwrap();
    rt.idle().await;

    let err = client.purge(&running).await.unwrap_err();
    assert!(err.to_string().contains("only finished instances"), "{err}");
    assert!(client.purge(&done).await.unwrap());
    assert!(client.status(&done).await.unwrap().is_none());
    assert!(client.status_with_history(&done).await.unwrap().is_none());
    assert!(!client.purge(&done).await.unwrap());

    for n in 0..3 {
        let id = client.start(quick, n).await.unwrap();
        finished(&rt, &id).await;
    }
    let purged = client
        .purge_where(&PurgeFilter {
            runtime_status: vec![RuntimeStatus::Completed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert!(client.status(&running).await.unwrap().is_some());
}

#[tokio::test]
async fn query_filters_and_pages() {
    let clock = ManualClock::new();
    let rt = TestRuntime::start_with_clock(
        Runtime::builder().register(approval).register(quick),
        clock.clone(),
    )
    .await
    .unwrap();
    let client = rt.client();
    let t0 = clock.now();
    for n in 0..5 {
        let id = client
            .start(quick, n)
            .instance_id(format!("batch-{n}"))
            .await
            .unwrap();
        finished(&rt, &id).await;
        clock.advance(Duration::from_secs(60));
    }
    client
        .start(approval, "q".into())
        .instance_id("waiting-1")
        .await
        .unwrap();
    rt.idle().await;

    let running = client
        .query(&InstanceQuery {
            runtime_status: vec![RuntimeStatus::Running],
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = running
        .instances
        .iter()
        .map(|s| s.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["waiting-1"]);

    let mut pages = Vec::new();
    let mut query = InstanceQuery {
        instance_id_prefix: Some("batch-".into()),
        page_size: Some(2),
        ..Default::default()
    };
    loop {
        let page = client.query(&query).await.unwrap();
        pages.push(
            page.instances
                .iter()
                .map(|s| s.instance_id.clone())
                .collect::<Vec<_>>(),
        );
        match page.continuation_token {
            Some(token) => query.continuation_token = Some(token),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            vec!["batch-0", "batch-1"],
            vec!["batch-2", "batch-3"],
            vec!["batch-4"]
        ]
    );

    let window = client
        .query(&InstanceQuery {
            created_from: Some(t0 + TimeDelta::seconds(60)),
            created_to: Some(t0 + TimeDelta::seconds(120)),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = window
        .instances
        .iter()
        .map(|s| s.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["batch-1", "batch-2"]);

    let bad = client
        .query(&InstanceQuery {
            continuation_token: Some("garbage".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("invalid continuation token"),
        "{bad}"
    );
}

#[tokio::test]
async fn task_hubs_do_not_see_each_other() {
    let store = Memory::new();
    let a = Runtime::builder()
        .store(store.clone())
        .task_hub("a")
        .register(quick)
        .start()
        .await
        .unwrap();
    let b = Runtime::builder()
        .store(store.clone())
        .task_hub("b")
        .register(quick)
        .start()
        .await
        .unwrap();
    let id = a
        .client()
        .start(quick, 1)
        .instance_id("same")
        .await
        .unwrap();
    a.client().wait_for_completion(&id, WAIT).await.unwrap();
    assert!(b.client().status("same").await.unwrap().is_none());
    // The same id in the other hub is a different instance.
    b.client()
        .start(quick, 100)
        .instance_id("same")
        .await
        .unwrap();
    let in_b = b.client().wait_for_completion("same", WAIT).await.unwrap();
    assert_eq!(in_b.output::<u32>().unwrap(), 101);
    let in_a = a.client().status("same").await.unwrap().unwrap();
    assert_eq!(in_a.output::<u32>().unwrap(), 2);
}

#[tokio::test]
async fn invalid_instance_ids_are_refused() {
    let rt = runtime().await;
    for bad in ["", "tab\there"] {
        let err = rt
            .client()
            .start(quick, 1)
            .instance_id(bad)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidArgument);
    }
}
