//! The dashboard's attention view: nondeterminism failures with their step and call site,
//! parked messages, instances without progress and entities locked too long.
#[path = "support/http_api.rs"]
mod http_api;
#[path = "support/dashboard.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use durable::http::HttpOptions;
use durable::prelude::*;
use durable::store::{Fetched, Store, TurnCommit};
use durable::testing::TestRuntime;
use durable::{FailureDetails, InstanceStatus};
use http_api::builder;
use support::*;

/// Which input `drifting` passes to its first activity: flipping it between turns makes the
/// replayed code disagree with the history.
static DRIFT: AtomicBool = AtomicBool::new(false);

#[activity]
async fn step_n(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[orchestrator]
async fn drifting(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    let n = if DRIFT.load(Ordering::SeqCst) { 2 } else { 1 };
    ctx.call_activity(step_n, n).await?;
    let _: bool = ctx.wait_for_event("Go").await?;
    Ok(())
}

#[tokio::test]
async fn attention_gathers_nondeterminism_poison_stalls_and_long_locks() {
    let rt = TestRuntime::start(
        builder()
            .always_replay(true)
            .register(drifting)
            .register(step_n)
            .register(hold_lock),
    )
    .await
    .unwrap();
    let client = rt.client();
    DRIFT.store(false, Ordering::SeqCst);
    client
        .start(drifting, ())
        .instance_id("drifter")
        .await
        .unwrap();
    client
        .start(hold_lock, "held".into())
        .instance_id("locker")
        .await
        .unwrap();
    rt.idle().await;
    // The code changes under the waiting instance; the next turn replays and disagrees.
    DRIFT.store(true, Ordering::SeqCst);
    client.raise_event("drifter", "Go", true).await.unwrap();
    rt.idle().await;
    let failed = client.status("drifter").await.unwrap().unwrap();
    assert_eq!(failed.runtime_status, RuntimeStatus::Failed);
    // Two hours later, the lock is still held and the lock holder has not moved.
    rt.advance(Duration::from_secs(2 * 3600)).await;

    let d = dash(&rt);
    let page = d.get("/durable/attention?stuck=60&locked=10").await;
    let html = page.ok();
    let section = |id: &str| {
        html.split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap_or_default()
            .to_string()
    };
    let nondeterminism = section("nondeterminism");
    assert!(
        nondeterminism.contains("/durable/instances/drifter"),
        "{html}"
    );
    assert!(
        nondeterminism.contains("<td>0</td>"),
        "the step: {nondeterminism}"
    );
    assert!(
        nondeterminism.contains("tests/tests/dashboard_attention.rs:"),
        "the call site: {nondeterminism}"
    );
    let stalled = section("stalled");
    assert!(stalled.contains("/durable/instances/locker"), "{stalled}");
    assert!(stalled.contains("2 h 0 min"), "{stalled}");
    let locks = section("locks");
    assert!(locks.contains("/durable/entities/counter/held"), "{locks}");
    assert!(locks.contains("/durable/instances/locker"), "{locks}");
    assert!(section("parked").contains("Nothing here"));

    // A higher threshold leaves them out.
    let calm = d.get("/durable/attention?stuck=600&locked=600").await;
    let html = calm.ok();
    assert!(
        !html
            .split("id=\"stalled\"")
            .nth(1)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap()
            .contains("locker")
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn parked_messages_are_listed_with_their_error() {
    // No host: the store is driven by hand, as a host would after repeated failures.
    let store = Arc::new(durable::store::Memory::new());
    let now = Utc::now();
    store
        .create_instance(new_instance("poisoned", now))
        .await
        .unwrap();
    let Fetched::Item(item) = store
        .fetch_orchestration(
            now,
            Duration::from_secs(30),
            &durable::store::Owned::Everything,
        )
        .await
        .unwrap()
    else {
        panic!("the start is fetched");
    };
    store
        .park_orchestration(&item, "the payload <b>cannot</b> be read", now)
        .await
        .unwrap();
    // And one failed by nondeterminism, with no call site in its message.
    store
        .create_instance(new_instance("diverged", now + TimeDelta::seconds(1)))
        .await
        .unwrap();
    let Fetched::Item(item) = store
        .fetch_orchestration(
            now + TimeDelta::seconds(2),
            Duration::from_secs(30),
            &durable::store::Owned::Everything,
        )
        .await
        .unwrap()
    else {
        panic!("the start is fetched");
    };
    let failed = InstanceStatus {
        runtime_status: RuntimeStatus::Failed,
        failure: Some(FailureDetails {
            error_type: "Nondeterminism".into(),
            message: "the history recorded a timer as step 3, but the code did not schedule it"
                .into(),
            cause: None,
        }),
        ..item.instance.clone()
    };
    store
        .commit_turn(
            &item,
            TurnCommit {
                consumed: item.messages.iter().map(|m| m.seq).collect(),
                history: durable::store::HistoryWrite::Append(Vec::new()),
                status: failed,
                activities: Vec::new(),
                messages: Vec::new(),
                new_instances: Vec::new(),
            },
        )
        .await
        .unwrap();
    let d = Dash::new(Client::new(store), HttpOptions::default());
    let page = d.get("/durable/attention").await;
    let html = page.ok();
    let parked = html.split("id=\"parked\"").nth(1).unwrap();
    assert!(parked.contains("/durable/instances/poisoned"), "{html}");
    assert!(parked.contains("the payload &lt;b&gt;cannot&lt;/b&gt; be read"));
    let nondeterminism = html.split("id=\"nondeterminism\"").nth(1).unwrap();
    assert!(nondeterminism.contains("/durable/instances/diverged"));
    assert!(
        nondeterminism.contains("<td>3</td><td><code>—</code></td>"),
        "{nondeterminism}"
    );
}
