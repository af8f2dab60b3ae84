use std::process::Command;

use durable::prelude::*;

#[orchestrator]
async fn deploy(_ctx: OrchestrationContext) -> Result<(), Error> {
    let _status = std::process::Command::new("make").status()?;
    let _child = tokio::process::Command::new("make").spawn()?;
    // `Command`, imported at module level, is too common a name to guess at: not flagged.
    if Command::new("true").status().is_err() {
        std::process::exit(1);
    }
    Ok(())
}

fn main() {}
