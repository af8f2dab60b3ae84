use durable::prelude::*;

#[orchestrator]
async fn configure(_ctx: OrchestrationContext) -> Result<String, Error> {
    let region = std::env::var("REGION").unwrap_or_default();
    Ok(region)
}

fn main() {}
