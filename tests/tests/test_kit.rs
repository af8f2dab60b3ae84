//! The test kit seen from a user's test: activities and sub-orchestrators mocked by their
//! handles (with none of their real code registered), the calls each mock recorded, and the
//! steps an instance took, as typed values.

use std::time::Duration;

use durable::prelude::*;
use durable::testing::{Step, TestRuntime};
use durable_examples::counter::Counter;
use durable_tests::{failure_message, finished};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    cents: u64,
}

fn order(id: &str, cents: u64) -> Order {
    Order {
        id: id.to_string(),
        cents,
    }
}

#[activity]
async fn charge(_ctx: ActivityContext, _order: Order) -> Result<String, Error> {
    panic!("the payment provider must not be called from a test")
}

#[orchestrator]
async fn ship(_ctx: OrchestrationContext, _order: Order) -> Result<String, Error> {
    panic!("the real shipping orchestration must not run in this test")
}

#[orchestrator]
async fn checkout(ctx: OrchestrationContext, orders: Vec<Order>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for order in orders {
        let receipt = ctx.call_activity(charge, order.clone()).await?;
        let tracking = ctx.call_sub_orchestrator(ship, order).await?;
        out.push(format!("{receipt}/{tracking}"));
    }
    Ok(out)
}

#[tokio::test]
async fn mocks_stand_in_for_unregistered_functions_and_record_their_calls() -> Result<(), Error> {
    let mut test = TestRuntime::builder(Runtime::builder().register(checkout));
    let charges = test.mock_activity(charge, |o: Order| Ok(format!("paid-{}", o.cents)));
    let shipments = test.mock_sub_orchestrator(ship, |o: Order| Ok(format!("parcel-{}", o.id)));
    let test = test.start().await?;

    let orders = vec![order("a", 100), order("b", 250)];
    let id = test.client().start(checkout, orders.clone()).await?;
    let status = finished(&test, &id).await;
    assert_eq!(
        status.output::<Vec<String>>()?,
        ["paid-100/parcel-a", "paid-250/parcel-b"]
    );
    assert_eq!(charges.count(), 2);
    assert_eq!(charges.inputs(), orders);
    assert_eq!(shipments.count(), 2);
    assert_eq!(shipments.last_input(), Some(order("b", 250)));
    Ok(())
}

#[tokio::test]
async fn a_mock_failure_reaches_the_orchestrator_as_the_activitys_failure() -> Result<(), Error> {
    let mut test = TestRuntime::builder(Runtime::builder().register(checkout));
    let charges = test.mock_activity(charge, |o: Order| {
        if o.cents > 1000 {
            Err(Error::msg("card declined"))
        } else {
            Ok("paid".to_string())
        }
    });
    let shipments = test.mock_sub_orchestrator(ship, |_: Order| Ok("parcel".to_string()));
    let test = test.start().await?;

    let id = test
        .client()
        .start(checkout, vec![order("a", 5), order("big", 5000)])
        .await?;
    let message = failure_message(&finished(&test, &id).await);
    assert!(message.contains("charge"), "{message}");
    assert!(message.contains("card declined"), "{message}");
    assert_eq!(charges.count(), 2);
    assert_eq!(shipments.count(), 1, "the failed order is not shipped");
    Ok(())
}

#[tokio::test]
async fn an_async_mock_may_await() -> Result<(), Error> {
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (gate, open) = tokio::sync::watch::channel(false);
    let mut test = TestRuntime::builder(Runtime::builder().register(checkout));
    let charges = test.mock_activity_async(charge, move |o: Order| {
        let started = started_tx.clone();
        let mut open = open.clone();
        async move {
            let _ = started.send(o.id.clone());
            open.wait_for(|open| *open).await.map_err(Error::msg)?;
            Ok(format!("paid-{}", o.id))
        }
    });
    test.mock_sub_orchestrator(ship, |_: Order| Ok("parcel".to_string()));
    let test = test.start().await?;

    let id = test.client().start(checkout, vec![order("a", 1)]).await?;
    assert_eq!(started.recv().await.as_deref(), Some("a"));
    let status = test
        .client()
        .status(&id)
        .await?
        .expect("the instance exists");
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Running,
        "the mock waits"
    );
    assert_eq!(charges.count(), 1);
    gate.send_replace(true);
    let status = finished(&test, &id).await;
    assert_eq!(status.output::<Vec<String>>()?, ["paid-a/parcel"]);
    Ok(())
}

#[tokio::test]
async fn mocking_a_registered_function_or_mocking_twice_is_refused() {
    let mut test = TestRuntime::builder(Runtime::builder().register(checkout).register(charge));
    test.mock_activity(charge, |_: Order| Ok(String::new()));
    let err = test.start().await.err().expect("refused");
    assert_eq!(
        err.message(),
        "activity `charge` is both registered and mocked; a test either runs the real function \
         or mocks it: remove `.register(charge)` to use the mock"
    );

    let mut test = TestRuntime::builder(Runtime::builder().register(checkout));
    test.mock_sub_orchestrator(checkout, |_: Vec<Order>| Ok(Vec::new()));
    let err = test.start().await.err().expect("refused");
    assert!(
        err.message()
            .starts_with("orchestrator `checkout` is both registered and mocked"),
        "{}",
        err.message()
    );

    let mut test = TestRuntime::builder(Runtime::builder());
    test.mock_activity(charge, |_: Order| Ok(String::new()));
    test.mock_activity(charge, |_: Order| Ok(String::new()));
    let err = test.start().await.err().expect("refused");
    assert_eq!(
        err.message(),
        "activity `charge` is mocked twice; mock each function once"
    );
}

#[orchestrator]
async fn tour(ctx: OrchestrationContext, _input: ()) -> Result<i64, Error> {
    ctx.sleep(Duration::from_secs(60)).await;
    let cents: u64 = ctx.wait_for_event("Approved").await?;
    let receipt = ctx.call_activity(charge, order("t", cents)).await?;
    let declined = ctx.call_activity(charge, order("t", 0)).await;
    ctx.call_sub_orchestrator(ship, order("t", cents))
        .instance_id("tour-ship")
        .await?;
    ctx.call_entity::<Counter>("visits")
        .add(receipt.len() as i64)
        .await?;
    ctx.signal_entity::<Counter>("visits").add(1);
    let total = ctx.call_entity::<Counter>("visits").get().await?;
    Ok(total + i64::from(declined.is_err()))
}

#[tokio::test]
async fn steps_list_what_an_instance_did_in_order() -> Result<(), Error> {
    let mut test = TestRuntime::builder(durable_examples::counter::register(
        Runtime::builder().register(tour),
    ));
    test.mock_activity(charge, |o: Order| match o.cents {
        0 => Err(Error::msg("nothing to charge")),
        c => Ok(format!("r{c}")),
    });
    test.mock_sub_orchestrator(ship, |o: Order| Ok(format!("parcel-{}", o.cents)));
    let test = test.start().await?;
    let start = test.clock().now();

    let id = test.client().start(tour, ()).await?;
    test.advance(Duration::from_secs(60)).await;
    test.idle().await;
    let steps = test.steps(&id).await?;
    assert_eq!(
        steps,
        [Step::Timer {
            fire_at: start + chrono::TimeDelta::seconds(60),
            fired: true,
        }],
        "waiting for an event is not a step until the event comes"
    );

    test.client().raise_event(&id, "Approved", 300).await?;
    let status = finished(&test, &id).await;
    assert_eq!(status.output::<i64>()?, 4 + 1 + 1);

    let steps = test.steps(&id).await?;
    assert_eq!(steps.len(), 8, "{steps:#?}");
    assert_eq!(
        steps[1],
        Step::Event {
            name: "Approved".into(),
            input: json!(300),
        }
    );
    assert_eq!(
        steps[2],
        Step::Activity {
            name: "charge".into(),
            input: json!({"id": "t", "cents": 300}),
            result: Some(Ok(json!("r300"))),
        }
    );
    assert!(
        matches!(&steps[3], Step::Activity { result: Some(Err(failure)), .. }
            if failure.message.contains("nothing to charge")),
        "{:?}",
        steps[3]
    );
    assert_eq!(
        steps[4],
        Step::SubOrchestration {
            name: "ship".into(),
            instance_id: "tour-ship".into(),
            input: json!({"id": "t", "cents": 300}),
            result: Some(Ok(json!("parcel-300"))),
        }
    );
    assert_eq!(
        steps[5],
        Step::EntityCall {
            entity: "@counter@visits".into(),
            operation: "add".into(),
            input: json!(4),
            result: Some(Ok(json!(null))),
        }
    );
    assert!(
        matches!(&steps[6], Step::EntitySignal { operation, input, .. }
            if operation == "add" && *input == json!(1))
    );
    assert!(
        matches!(&steps[7], Step::EntityCall { operation, result: Some(Ok(v)), .. }
        if operation == "get" && *v == json!(5))
    );

    let err = test.steps("no-such-instance").await.unwrap_err();
    assert_eq!(err.message(), "no instance with id `no-such-instance`");
    Ok(())
}
