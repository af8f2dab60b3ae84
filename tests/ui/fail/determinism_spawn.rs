use durable::prelude::*;

#[orchestrator]
async fn fan_out(_ctx: OrchestrationContext) -> Result<(), Error> {
    let _task = tokio::spawn(async {});
    let _thread = std::thread::spawn(|| {});
    let _blocking = tokio::task::spawn_blocking(|| {});
    Ok(())
}

fn main() {}
