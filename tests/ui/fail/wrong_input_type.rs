use durable::prelude::*;

#[activity]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

#[orchestrator]
async fn greet(ctx: OrchestrationContext) -> Result<String, Error> {
    ctx.call_activity(say_hello, 42).await
}

fn main() {}
