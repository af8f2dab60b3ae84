use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }
}

#[orchestrator]
async fn play(ctx: OrchestrationContext) -> Result<(), Error> {
    ctx.signal_entity::<Counter>("k").add("five");
    Ok(())
}

fn main() {}
