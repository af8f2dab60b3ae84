use durable::prelude::*;

#[activity]
async fn say_hello(ctx: OrchestrationContext, city: String) -> Result<String, Error> {
    Ok(format!("{city} from {}", ctx.instance_id()))
}

fn main() {}
