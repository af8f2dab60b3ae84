use durable::prelude::*;

#[activity]
async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(city)
}

#[orchestrator]
async fn greet(ctx: OrchestrationContext) -> Result<String, Error> {
    ctx.call_sub_orchestrator(say_hello, "Tokyo".to_string())
        .await
}

fn main() {}
