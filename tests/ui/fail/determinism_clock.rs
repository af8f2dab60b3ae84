use std::time::{Instant, SystemTime};

use durable::prelude::*;

#[orchestrator]
async fn stamp(_ctx: OrchestrationContext) -> Result<(), Error> {
    let _wall = SystemTime::now();
    let _mono = Instant::now();
    let _utc = chrono::Utc::now();
    Ok(())
}

fn main() {}
