use durable::prelude::*;

#[orchestrator(nme = "Greet", name = 7)]
fn greet(name: &str, count: u32, ctx: OrchestrationContext) {
    let _ = (name, count, ctx, std::time::SystemTime::now());
}

fn main() {}
