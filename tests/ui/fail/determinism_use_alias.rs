use durable::prelude::*;

#[orchestrator]
async fn stamp(_ctx: OrchestrationContext) -> Result<String, Error> {
    use std::env::var;
    use std::time::Instant as Clock;
    use std::{process, time::SystemTime as Wall};
    let _mono = Clock::now();
    let _wall = Wall::now();
    let _pid = process::id();
    Ok(var("REGION").unwrap_or_default())
}

fn main() {}
