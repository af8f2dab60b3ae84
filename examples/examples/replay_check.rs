//! Changing code safely: run an orchestration on the test kit (its activity mocked), export
//! its history, and replay that history against the current code and against a changed one.
//! A project commits such histories under `tests/` (written by `durable history export`) and
//! replays them in CI with `durable::testing::replay_check`.
//!
//! ```sh
//! cargo run -p durable-examples --example replay_check
//! ```

use std::time::Duration;

use durable::history::HistoryFile;
use durable::prelude::*;
use durable::testing::{TestRuntime, replay_check};

#[activity]
async fn reserve(_ctx: ActivityContext, sku: String) -> Result<u32, Error> {
    unimplemented!("calls the warehouse; mocked below ({sku})")
}

#[activity]
async fn release(_ctx: ActivityContext, sku: String) -> Result<(), Error> {
    unimplemented!("calls the warehouse; never reached here ({sku})")
}

/// The code in production.
#[orchestrator]
async fn restock(ctx: OrchestrationContext, sku: String) -> Result<u32, Error> {
    let first = ctx.call_activity(reserve, sku.clone()).await?;
    ctx.sleep(Duration::from_secs(3600)).await;
    let second = ctx.call_activity(reserve, sku).await?;
    Ok(first + second)
}

/// A compatible change: the same steps, another way to sum.
#[orchestrator(name = "restock")]
async fn restock_tidied(ctx: OrchestrationContext, sku: String) -> Result<u32, Error> {
    let mut total = 0;
    total += ctx.call_activity(reserve, sku.clone()).await?;
    ctx.sleep(Duration::from_secs(3600)).await;
    total += ctx.call_activity(reserve, sku).await?;
    Ok(total)
}

/// An incompatible change: step 2 now releases instead of reserving.
#[orchestrator(name = "restock")]
async fn restock_changed(ctx: OrchestrationContext, sku: String) -> Result<u32, Error> {
    let first = ctx.call_activity(reserve, sku.clone()).await?;
    ctx.sleep(Duration::from_secs(3600)).await;
    ctx.call_activity(release, sku).await?;
    Ok(first)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Run it once with the warehouse mocked, and export the history.
    let mut test = TestRuntime::builder(Runtime::builder().register(restock));
    let reservations = test.mock_activity(reserve, |_sku: String| Ok(12));
    let test = test.start().await?;
    let id = test.client().start(restock, "sku-7".to_string()).await?;
    test.advance(Duration::from_secs(3600)).await;
    let status = test
        .client()
        .wait_for_completion(&id, Duration::from_secs(10))
        .await?;
    println!(
        "restock reserved {} in {} calls",
        status.output::<u32>()?,
        reservations.count()
    );
    let mut status = test
        .client()
        .status_with_history(&id)
        .await?
        .expect("it exists");
    let history = status.history.take().unwrap_or_default();
    let exported = HistoryFile::new(&status, history).to_json_pretty();
    println!("exported {} bytes of history", exported.len());

    // What CI does with a committed file.
    let file = HistoryFile::from_json(&exported)?;
    replay_check(restock, &file)?;
    replay_check(restock_tidied, &file)?;
    println!("replays on the current code and on the tidied code: ok");
    let divergence = replay_check(restock_changed, &file).expect_err("step 2 changed");
    assert_eq!(divergence.step, Some(2));
    println!("the changed code diverges at step 2:\n  {divergence}");
    Ok(())
}
