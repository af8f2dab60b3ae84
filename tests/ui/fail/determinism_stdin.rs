use durable::prelude::*;

#[orchestrator]
async fn ask(_ctx: OrchestrationContext) -> Result<String, Error> {
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer)
}

fn main() {}
