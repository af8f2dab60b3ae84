//! Behaviour tests of the code `#[entity]` generates: names, operations, `dispatch` and the
//! proxies, end to end. Its compile-time tests (spans and messages) are under `ui/entity`,
//! run by the `ui` driver.

use std::time::Duration;

use durable::prelude::*;
use durable::testing::TestRuntime;
use durable::{Entity, EntityFunction};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    fn get(&self) -> i64 {
        self.value
    }

    async fn add_checked(&mut self, ctx: &EntityContext, amount: i64) -> Result<i64, Error> {
        if amount < 0 {
            return Err(Error::msg(format!("{} refuses {amount}", ctx.id())));
        }
        self.value += amount;
        Ok(self.value)
    }

    /// Named in another case: the operation is still `reset`.
    #[allow(non_snake_case)]
    fn Reset(&mut self, ctx: EntityContext) {
        let _ = ctx;
        self.value = 0;
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Session {
    open: bool,
}

#[entity(name = "UserSession")]
impl Session {
    fn open(&mut self) {
        self.open = true;
    }

    /// Replaces the built-in `delete`: returns whether the session was open.
    fn delete(&mut self) -> bool {
        std::mem::take(&mut self.open)
    }
}

#[entity]
async fn tally(ctx: EntityContext) -> Result<(), Error> {
    let value: i64 = ctx.state_or_default()?;
    match ctx.operation().as_str() {
        "add" => ctx.set_state(value + ctx.input::<i64>()?),
        "get" => ctx.set_result(value),
        other => Err(Error::msg(format!("no operation `{other}`"))),
    }
}

/// Runs `operation` on `state` the way the runtime does, through `Entity::dispatch`.
async fn dispatch<E: Entity>(
    state: &mut E,
    operation: &str,
    input: &str,
) -> Result<(String, bool), Error> {
    let ctx = EntityContext::for_test(EntityId::new(E::NAME, "k"), operation);
    let dispatched = state.dispatch(&ctx, operation, input).await?;
    Ok((dispatched.output, dispatched.mutated))
}

#[test]
fn names_and_operations_are_lower_case() {
    assert_eq!(Counter::NAME, "counter");
    assert_eq!(Counter::OPERATIONS, ["add", "get", "add_checked", "reset"]);
    assert_eq!(Session::NAME, "usersession");
    // A type's own `delete` is listed; the built-in one is not.
    assert_eq!(Session::OPERATIONS, ["open", "delete"]);
    assert_eq!(<tally as EntityFunction>::NAME, "tally");
}

#[tokio::test]
async fn dispatch_runs_the_operation_and_encodes_its_output() {
    let mut counter = Counter::default();
    assert_eq!(
        dispatch(&mut counter, "add", "5").await.unwrap(),
        ("null".into(), true)
    );
    assert_eq!(
        dispatch(&mut counter, "get", "null").await.unwrap(),
        ("5".into(), false)
    );
    assert_eq!(
        dispatch(&mut counter, "add_checked", "2").await.unwrap(),
        ("7".into(), true)
    );
    assert_eq!(counter, Counter { value: 7 });
    assert_eq!(
        dispatch(&mut counter, "reset", "null").await.unwrap(),
        ("null".into(), true)
    );
    assert_eq!(counter, Counter { value: 0 });

    let mut session = Session::default();
    dispatch(&mut session, "open", "null").await.unwrap();
    assert_eq!(
        dispatch(&mut session, "delete", "null").await.unwrap(),
        ("true".into(), true)
    );
}

#[tokio::test]
async fn dispatch_reports_failures_with_the_entity_and_operation() {
    let mut counter = Counter::default();

    let err = dispatch(&mut counter, "add_checked", "-1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("@counter@k refuses -1"), "{err}");
    assert_eq!(counter, Counter::default());

    let err = dispatch(&mut counter, "add", "\"five\"").await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("operation `add`") && text.contains("entity `counter`"),
        "{text}"
    );

    let err = dispatch(&mut counter, "nope", "null").await.unwrap_err();
    assert!(
        err.to_string().contains("add, get, add_checked, reset"),
        "the error lists the operations there are: {err}"
    );
}

#[tokio::test]
async fn function_style_body_stays_callable() {
    let err = tally(EntityContext::for_test(EntityId::new("tally", "k"), "nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no operation `nope`"), "{err}");
}

#[orchestrator]
async fn play(ctx: OrchestrationContext, key: String) -> Result<(i64, i64), Error> {
    ctx.signal_entity::<Counter>(key.as_str()).add(1);
    let checked: i64 = ctx
        .call_entity::<Counter>(key.as_str())
        .add_checked(2)
        .await?;
    let refused = ctx
        .call_entity::<Counter>(key.as_str())
        .add_checked(-5)
        .await;
    assert!(refused.is_err());
    let value: i64 = ctx.call_entity::<Counter>(key).get().await?;
    Ok((checked, value))
}

#[tokio::test]
async fn proxies_carry_typed_values_end_to_end() {
    let test = TestRuntime::start(
        Runtime::builder()
            .register(play)
            .register_entity::<Counter>(),
    )
    .await
    .unwrap();
    let client = test.client();
    client
        .signal_entity::<Counter>("game")
        .add(10)
        .await
        .unwrap();
    let id = client.start(play, "game".to_string()).await.unwrap();
    let status = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        status.runtime_status,
        RuntimeStatus::Completed,
        "{status:?}"
    );
    assert_eq!(status.output::<(i64, i64)>().unwrap(), (13, 13));
    let state = client.read_entity::<Counter>("game").await.unwrap();
    assert_eq!(state, Some(Counter { value: 13 }));
}
