//! An instance scheduled to start later (`start_at`) may be sent events, suspended or
//! terminated before its start time. Events and suspensions wait, queued, until the start is
//! due and are then delivered to the running orchestrator, in the order they were sent; the
//! host reads them once and sets them aside until then, counts no failed delivery (nothing is
//! ever parked) and does not look at the instance again before its start. A termination ends
//! the instance at once. Every scenario runs on the memory, SQLite and PostgreSQL stores, with
//! the test kit's manual clock (PostgreSQL only with a database, see `scripts/with-postgres`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use durable::prelude::*;
use durable::store::{Memory, Sqlite, Store};
use durable::testing::TestRuntime;
use durable::{Client, RuntimeStatus};
use durable_tests::WAIT;
use durable_tests::counted::Counted;
use durable_tests::hooked::{CommitHook, HookedStore};

#[macro_use]
#[path = "support/postgres.rs"]
mod postgres;

/// How far ahead the scenarios schedule their starts.
const LATER: Duration = Duration::from_secs(3600);

/// Waits for `count` events named `note` and returns their payloads, in the order received.
#[orchestrator]
async fn notes(ctx: OrchestrationContext, count: u32) -> Result<Vec<String>, Error> {
    let mut notes = Vec::new();
    for _ in 0..count {
        notes.push(ctx.wait_for_event::<String>("note").await?);
    }
    Ok(notes)
}

async fn host(store: Arc<dyn Store>) -> TestRuntime {
    TestRuntime::start(Runtime::builder().shared_store(store).register(notes))
        .await
        .expect("the host starts")
}

fn later(rt: &TestRuntime) -> chrono::DateTime<chrono::Utc> {
    rt.clock().now() + TimeDelta::from_std(LATER).unwrap()
}

async fn status_of(client: &Client, id: &str) -> durable::InstanceStatus {
    client
        .status(id)
        .await
        .expect("status")
        .expect("the instance exists")
}

/// The instance has not started: Pending, with no history, and nothing was parked.
async fn not_started(client: &Client, store: &Arc<dyn Store>, id: &str) {
    let status = status_of(client, id).await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Pending,
        "{id} waits for its start time: {status:?}"
    );
    let history = store.history(id).await.unwrap();
    assert!(
        history.is_empty(),
        "nothing of {id} ran before its start: {history:?}"
    );
    let parked = store.parked().await.unwrap();
    assert!(parked.is_empty(), "nothing is parked: {parked:?}");
}

/// Events raised before the start time reach the orchestrator once it starts, in order: the
/// host reads each batch once and sets it aside until the start is due, without looking at
/// the instance again meanwhile.
async fn events_raised_before_the_start_are_delivered_once_it_starts(store: Arc<dyn Store>) {
    let (store, counts) = Counted::wrap(store);
    let rt = host(store.clone()).await;
    let client = rt.client();
    client
        .start(notes, 2)
        .instance_id("early")
        .start_at(later(&rt))
        .await
        .unwrap();
    client.raise_event("early", "note", "first").await.unwrap();
    rt.idle().await;
    not_started(&client, &store, "early").await;
    assert_eq!(
        (counts.items(), counts.commits()),
        (1, 1),
        "the event was read once and set aside in one commit"
    );

    // Another one, after the first was set aside.
    client.raise_event("early", "note", "second").await.unwrap();
    rt.idle().await;
    not_started(&client, &store, "early").await;
    assert_eq!((counts.items(), counts.commits()), (2, 2));
    // Nothing is due before the start: the host does not read the instance again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (counts.items(), counts.commits()),
        (2, 2),
        "no reads or commits while the start is not due"
    );
    // Nor when the clock moves on, until the start is due.
    rt.advance(LATER - Duration::from_secs(1)).await;
    rt.idle().await;
    not_started(&client, &store, "early").await;
    assert_eq!(
        (counts.items(), counts.commits()),
        (2, 2),
        "the events wait for the start time itself"
    );

    rt.advance(Duration::from_secs(1)).await;
    let done = client.wait_for_completion("early", WAIT).await.unwrap();
    assert_eq!(done.runtime_status, RuntimeStatus::Completed, "{done:?}");
    assert_eq!(done.output::<Vec<String>>().unwrap(), ["first", "second"]);
    assert!(store.parked().await.unwrap().is_empty());
    rt.shutdown().await;
}

/// A suspension sent before the start time takes effect once the instance starts; events
/// that came with it wait for the resume.
async fn a_suspension_before_the_start_holds_the_instance_once_started(store: Arc<dyn Store>) {
    let rt = host(store.clone()).await;
    let client = rt.client();
    client
        .start(notes, 1)
        .instance_id("held")
        .start_at(later(&rt))
        .await
        .unwrap();
    client.suspend("held", "not yet").await.unwrap();
    client.raise_event("held", "note", "kept").await.unwrap();
    rt.idle().await;
    not_started(&client, &store, "held").await;

    rt.advance(LATER).await;
    let started = client.wait_for_start("held", WAIT).await.unwrap();
    rt.idle().await;
    let status = status_of(&client, "held").await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Suspended,
        "started, then suspended: {started:?} {status:?}"
    );
    client.resume("held", "go on").await.unwrap();
    let done = client.wait_for_completion("held", WAIT).await.unwrap();
    assert_eq!(done.output::<Vec<String>>().unwrap(), ["kept"]);
    assert!(store.parked().await.unwrap().is_empty());
    rt.shutdown().await;
}

/// A termination sent before the start time ends the instance at once: it never starts.
async fn a_termination_before_the_start_ends_the_instance_at_once(store: Arc<dyn Store>) {
    let rt = host(store.clone()).await;
    let client = rt.client();
    client
        .start(notes, 1)
        .instance_id("cancelled")
        .start_at(later(&rt))
        .await
        .unwrap();
    client
        .raise_event("cancelled", "note", "too late")
        .await
        .unwrap();
    client.terminate("cancelled", "not needed").await.unwrap();
    let done = client.wait_for_completion("cancelled", WAIT).await.unwrap();
    assert_eq!(done.runtime_status, RuntimeStatus::Terminated);
    assert_eq!(done.output.as_deref(), Some("\"not needed\""));

    rt.advance(LATER).await;
    rt.idle().await;
    let status = status_of(&client, "cancelled").await;
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Terminated,
        "{status:?}"
    );
    assert!(store.parked().await.unwrap().is_empty());
    rt.shutdown().await;
}

/// A running instance replaced by one scheduled later: an event raised after the replacement
/// goes to the new execution, once it starts.
async fn a_replacement_scheduled_later_gets_the_events_raised_before_it(store: Arc<dyn Store>) {
    let rt = host(store.clone()).await;
    let client = rt.client();
    client.start(notes, 1).instance_id("again").await.unwrap();
    client.wait_for_start("again", WAIT).await.unwrap();
    rt.idle().await;
    client
        .start(notes, 1)
        .instance_id("again")
        .start_at(later(&rt))
        .replace_existing()
        .await
        .unwrap();
    client
        .raise_event("again", "note", "for the new one")
        .await
        .unwrap();
    rt.idle().await;
    not_started(&client, &store, "again").await;

    rt.advance(LATER).await;
    let done = client.wait_for_completion("again", WAIT).await.unwrap();
    assert_eq!(done.output::<Vec<String>>().unwrap(), ["for the new one"]);
    assert!(store.parked().await.unwrap().is_empty());
    rt.shutdown().await;
}

/// On a store that does not tell when an instance's start is due (the trait's default), the
/// events wait as long as they have waited already instead (from a second of orchestration
/// time up to a minute), each time put back without counting a failed delivery, and still
/// reach the orchestrator once it starts.
#[tokio::test]
async fn on_a_store_that_does_not_tell_when_the_start_is_due_events_wait_ever_longer() {
    let commits = Arc::new(AtomicUsize::new(0));
    let counter = commits.clone();
    let hook: CommitHook = Arc::new(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let store: Arc<dyn Store> = Arc::new(HookedStore::new(Memory::new(), hook));
    let rt = host(store.clone()).await;
    let client = rt.client();
    let start = rt.clock().now() + TimeDelta::seconds(10);
    client
        .start(notes, 1)
        .instance_id("untold")
        .start_at(start)
        .await
        .unwrap();
    client
        .raise_event("untold", "note", "waited")
        .await
        .unwrap();
    rt.idle().await;
    not_started(&client, &store, "untold").await;
    assert_eq!(commits.load(Ordering::SeqCst), 1, "set aside for a second");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        commits.load(Ordering::SeqCst),
        1,
        "not again while the clock stands still"
    );
    // Set aside again at 1 s (for 1 s), 2 s (for 2 s) and 4 s (for 4 s), not in between.
    for (second, expected) in [(1, 2), (2, 3), (3, 3), (4, 4), (5, 4), (7, 4)] {
        let now = rt.clock().now();
        let to = start - TimeDelta::seconds(10 - second);
        rt.advance((to - now).to_std().unwrap()).await;
        rt.idle().await;
        not_started(&client, &store, "untold").await;
        assert_eq!(commits.load(Ordering::SeqCst), expected, "at {second} s");
    }

    rt.advance(Duration::from_secs(3)).await;
    let done = client.wait_for_completion("untold", WAIT).await.unwrap();
    assert_eq!(done.output::<Vec<String>>().unwrap(), ["waited"]);
    assert!(store.parked().await.unwrap().is_empty());
    rt.shutdown().await;
}

/// Each scenario, on each store.
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(Arc::new(Memory::new())).await;
                }
            )*
        }

        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = Sqlite::open(dir.path().join("scheduled.db")).unwrap();
                    super::$scenario(Arc::new(store)).await;
                }
            )*
        }

        mod postgres_store {
            use super::postgres::*;
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let url = url_or_skip!();
                    super::$scenario(Arc::new(store_in_fresh_hub(&url).await)).await;
                }
            )*
        }
    };
}

on_every_store!(
    events_raised_before_the_start_are_delivered_once_it_starts,
    a_suspension_before_the_start_holds_the_instance_once_started,
    a_termination_before_the_start_ends_the_instance_at_once,
    a_replacement_scheduled_later_gets_the_events_raised_before_it,
);
