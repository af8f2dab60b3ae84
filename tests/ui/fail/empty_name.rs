use durable::prelude::*;

#[orchestrator(name = "")]
async fn greet(_ctx: OrchestrationContext) -> Result<(), Error> {
    Ok(())
}

fn main() {}
