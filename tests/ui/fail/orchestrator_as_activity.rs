use durable::prelude::*;

#[orchestrator]
async fn child(_ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[orchestrator]
async fn parent(ctx: OrchestrationContext) -> Result<u32, Error> {
    ctx.call_activity(child, 1).await
}

fn main() {}
