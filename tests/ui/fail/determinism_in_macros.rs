use std::time::Instant;

use durable::prelude::*;

#[orchestrator]
async fn report(_ctx: OrchestrationContext) -> Result<String, Error> {
    tracing::info!(at = ?std::time::SystemTime::now(), "reporting");
    Ok(format!("took {:?}", Instant::now().elapsed()))
}

fn main() {}
