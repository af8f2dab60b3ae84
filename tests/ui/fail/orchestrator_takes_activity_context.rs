use durable::prelude::*;

#[orchestrator]
async fn greet(ctx: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("{name} from {}", ctx.instance_id()))
}

fn main() {}
