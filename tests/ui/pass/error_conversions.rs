//! What converts into `durable::Error` in a durable function: strings with `.into()`, any
//! standard error with `?`, and an `anyhow::Error` with `?`.

use std::borrow::Cow;

use durable::prelude::*;

#[activity]
async fn reserve(_ctx: ActivityContext, sku: String) -> Result<u32, Error> {
    match sku.as_str() {
        "" => Err("no sku".into()),
        "gone" => Err(format!("`{sku}` is out of stock").into()),
        "old" => Err(Cow::Borrowed("discontinued").into()),
        _ => Ok(sku.parse::<u32>()?),
    }
}

#[orchestrator]
async fn order(ctx: OrchestrationContext, sku: String) -> Result<u32, Error> {
    let n: u32 = serde_json::from_str("1")?;
    let anyhow: anyhow::Result<u32> = Ok(n);
    Ok(anyhow? + ctx.call_activity(reserve, sku).await?)
}

/// `main` may return a `durable::Error` as a `Box<dyn Error>`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = Runtime::builder().register(reserve).register(order);
    let e: Error = "fails".into();
    let boxed: Box<dyn std::error::Error + Send + Sync> = e.clone().into_boxed();
    let _: anyhow::Error = e.clone().into();
    drop(boxed);
    Result::<(), Error>::Ok(())?;
    Ok(())
}
