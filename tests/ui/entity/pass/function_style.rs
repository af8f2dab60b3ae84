//! A function-style entity: one `async fn` that dispatches on the operation name.

use durable::EntityFunction;
use durable::prelude::*;

/// A counter that keeps its state as a bare `i64`.
#[entity(name = "Tally")]
pub async fn tally(ctx: EntityContext) -> Result<(), Error> {
    let value: i64 = ctx.state_or_default()?;
    match ctx.operation().as_str() {
        "add" => ctx.set_state(value + ctx.input::<i64>()?)?,
        "get" => ctx.set_result(value)?,
        other => return Err(Error::msg(format!("no operation `{other}`"))),
    }
    Ok(())
}

/// The context named by its full path; the name defaults to the function's, lower-cased.
#[entity]
async fn r#audit(_ctx: durable::EntityContext) -> Result<(), durable::Error> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(<tally as EntityFunction>::NAME, "tally");
    assert_eq!(<audit as EntityFunction>::NAME, "audit");

    // The body stays callable, for unit tests.
    let ctx = EntityContext::for_test(EntityId::new("tally", "k"), "get");
    tally(ctx.clone()).await.unwrap();
    let err = tally(EntityContext::for_test(EntityId::new("tally", "k"), "nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no operation `nope`"), "{err}");

    let _ = Runtime::builder().register(tally).register(audit);
}
