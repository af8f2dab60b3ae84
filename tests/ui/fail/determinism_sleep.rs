use std::time::Duration;

use durable::prelude::*;

#[orchestrator]
async fn wait(_ctx: OrchestrationContext) -> Result<(), Error> {
    std::thread::sleep(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

fn main() {}
