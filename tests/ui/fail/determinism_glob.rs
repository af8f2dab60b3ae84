use durable::prelude::*;

#[orchestrator]
async fn configure(_ctx: OrchestrationContext) -> Result<String, Error> {
    use std::env::*;
    use std::fs::*;
    let args: Vec<String> = args().collect();
    let text = read("settings.toml")?;
    Ok(format!("{args:?} {}", text.len()))
}

fn main() {}
