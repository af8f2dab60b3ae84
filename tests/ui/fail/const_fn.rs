use durable::prelude::*;

#[orchestrator]
const fn answer(_ctx: OrchestrationContext) -> Result<u32, Error> {
    Ok(42)
}

fn main() {}
