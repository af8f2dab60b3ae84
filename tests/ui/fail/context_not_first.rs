use durable::prelude::*;

#[orchestrator]
async fn greet(name: String, ctx: OrchestrationContext) -> Result<String, Error> {
    Ok(format!("{name} from {}", ctx.instance_id()))
}

fn main() {}
