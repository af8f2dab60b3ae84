use durable::prelude::*;

#[activity]
async fn greeting(_ctx: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("Hello {name}!"))
}

#[orchestrator]
async fn greet(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
    // The handle is a unit struct, so a binding of the same name is read as a pattern.
    let greeting = ctx.call_activity(greeting, name).await?;
    Ok(greeting)
}

fn main() {}
