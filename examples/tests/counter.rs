//! The `Counter` example entity: its operations, driven by a client and by an orchestration.

use std::time::Duration;

use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_examples::counter::{self, Counter};

/// Adds 5, reads the total two-way, resets, then adds 2 and reads again.
#[orchestrator]
async fn count_to_five_and_back(ctx: OrchestrationContext, key: String) -> Result<Vec<i64>, Error> {
    let counter = || ctx.call_entity::<Counter>(key.clone());
    counter().add(5).await?;
    let five = counter().get().await?;
    counter().reset().await?;
    counter().add(2).await?;
    let two = counter().get().await?;
    Ok(vec![five, two])
}

#[test]
fn operations_change_the_count_as_named() {
    let mut c = Counter::default();
    c.add(5);
    c.add(-7);
    assert_eq!(c.get(), -2);
    c.reset();
    assert_eq!(c.get(), 0);
}

#[tokio::test]
async fn signals_add_up_and_the_state_is_stored_as_a_bare_number() {
    let rt = TestRuntime::start(counter::register(Runtime::builder()))
        .await
        .unwrap();
    let client = rt.client();
    assert_eq!(client.read_entity::<Counter>("demo").await.unwrap(), None);
    for amount in [5, 5, -3] {
        client
            .signal_entity::<Counter>("demo")
            .add(amount)
            .await
            .unwrap();
    }
    rt.idle().await;
    assert_eq!(
        client.read_entity::<Counter>("demo").await.unwrap(),
        Some(Counter { value: 7 })
    );
    // What `GET entities/counter/demo` returns: `7`, not `{"value":7}`.
    let raw: Option<serde_json::Value> = client
        .read_entity_state(&EntityId::new("counter", "demo"))
        .await
        .unwrap();
    assert_eq!(raw, Some(serde_json::json!(7)));

    client
        .signal_entity::<Counter>("demo")
        .reset()
        .await
        .unwrap();
    rt.idle().await;
    assert_eq!(
        client.read_entity::<Counter>("demo").await.unwrap(),
        Some(Counter { value: 0 })
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn an_orchestration_calls_it_two_way() {
    let rt =
        TestRuntime::start(counter::register(Runtime::builder()).register(count_to_five_and_back))
            .await
            .unwrap();
    let client = rt.client();
    let id = client
        .start(count_to_five_and_back, "k".to_string())
        .await
        .unwrap();
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status.output::<Vec<i64>>().unwrap(), [5, 2]);
    assert_eq!(
        client.read_entity::<Counter>("k").await.unwrap(),
        Some(Counter { value: 2 })
    );
    rt.shutdown().await;
}
