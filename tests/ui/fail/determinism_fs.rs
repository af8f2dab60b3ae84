use std::fs::File;

use durable::prelude::*;

#[orchestrator]
async fn load(_ctx: OrchestrationContext) -> Result<String, Error> {
    let _file = File::open("settings.toml");
    let text = std::fs::read_to_string("settings.toml")?;
    Ok(text)
}

fn main() {}
