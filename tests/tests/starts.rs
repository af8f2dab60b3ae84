//! Starts through a host's own client are written together with their first turn: the start
//! returns with the instance already running, and a start a host cannot run now is queued as
//! a client of its own queues it. The host's dispatchers are paused in each test, so whatever
//! the instance shows right after the start was done by the start itself.

use std::sync::Arc;

use durable::history::EventKind;
use durable::prelude::*;
use durable::store::{Memory, Store};
use durable::{ErrorKind, RuntimeStatus};
use durable_tests::WAIT;

#[orchestrator]
async fn waits(ctx: OrchestrationContext, _input: ()) -> Result<bool, Error> {
    ctx.set_custom_status("waiting");
    ctx.wait_for_event("go").await
}

async fn paused_host(store: Arc<dyn Store>) -> Runtime {
    let rt = Runtime::builder()
        .shared_store(store)
        .register(waits)
        .start()
        .await
        .expect("the host starts");
    rt.pause();
    rt
}

async fn status_of(client: &Client, id: &str) -> durable::InstanceStatus {
    client
        .status(id)
        .await
        .expect("status")
        .expect("the instance exists")
}

#[tokio::test]
async fn a_start_through_the_host_returns_with_its_first_turn_committed() {
    let store: Arc<dyn Store> = Arc::new(Memory::new());
    let rt = paused_host(store.clone()).await;
    let client = rt.client();
    client.start(waits, ()).instance_id("now").await.unwrap();

    let status = status_of(&client, "now").await;
    assert_eq!(status.runtime_status, RuntimeStatus::Running);
    assert_eq!(status.custom_status.as_deref(), Some("\"waiting\""));
    let history = store.history("now").await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExecutionStarted { .. })),
        "the first turn's history is written with the start: {history:?}"
    );

    // A second start of the running instance is refused, on this path as on the other.
    let again = client
        .start(waits, ())
        .instance_id("now")
        .await
        .unwrap_err();
    assert_eq!(*again.kind(), ErrorKind::InstanceAlreadyExists);

    rt.resume();
    client.raise_event("now", "go", true).await.unwrap();
    let done = client.wait_for_completion("now", WAIT).await.unwrap();
    assert!(done.output::<bool>().unwrap());
    rt.shutdown().await;
}

#[tokio::test]
async fn starts_the_host_cannot_run_now_are_queued_for_its_dispatchers() {
    let store: Arc<dyn Store> = Arc::new(Memory::new());
    let rt = paused_host(store.clone()).await;
    let later = chrono::Utc::now() + chrono::TimeDelta::milliseconds(200);
    rt.client()
        .start(waits, ())
        .instance_id("scheduled")
        .start_at(later)
        .await
        .unwrap();
    // A client of its own, not the host's: its start is queued for whichever host owns it.
    let own = Client::new(store.clone());
    own.start_by_name("waits", ())
        .instance_id("queued")
        .await
        .unwrap();
    for id in ["scheduled", "queued"] {
        let status = status_of(&own, id).await;
        assert_eq!(status.runtime_status, RuntimeStatus::Pending, "{id}");
        assert!(store.history(id).await.unwrap().is_empty(), "{id}");
        // Raised before the instance runs (and, for the scheduled one, before its start time):
        // the event waits for the start and reaches the orchestrator once it runs.
        own.raise_event(id, "go", false).await.unwrap();
    }

    rt.resume();
    for id in ["scheduled", "queued"] {
        let done = own.wait_for_completion(id, WAIT).await.unwrap();
        assert!(!done.output::<bool>().unwrap(), "{id}");
    }
    assert!(store.parked().await.unwrap().is_empty());
    rt.shutdown().await;
}
