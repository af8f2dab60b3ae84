use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

#[orchestrator]
async fn play(ctx: OrchestrationContext) -> Result<i64, Error> {
    ctx.call_entity::<Counter>("k").get().await
}

fn main() {}
