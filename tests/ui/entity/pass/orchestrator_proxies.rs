//! A class-style entity, called and signalled from an orchestrator through its typed proxies.

use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    /// Adds `amount`.
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    pub fn reset(&mut self) {
        self.value = 0;
    }

    pub fn get(&self) -> i64 {
        self.value
    }

    pub async fn add_checked(&mut self, ctx: &EntityContext, amount: i64) -> Result<i64, Error> {
        if amount < 0 {
            return Err(Error::msg(format!("{}: negative amount", ctx.id())));
        }
        self.value += amount;
        Ok(self.value)
    }
}

#[orchestrator]
async fn play(ctx: OrchestrationContext, game: String) -> Result<i64, Error> {
    ctx.signal_entity::<Counter>(game.as_str()).add(1);
    ctx.signal_entity::<Counter>("k").reset();
    let checked: i64 = ctx.call_entity::<Counter>("k").add_checked(2).await?;
    let () = ctx.call_entity::<Counter>("k").add(3).await?;
    let value: i64 = ctx.call_entity::<Counter>("k").get().await?;
    ctx.call_entity::<Counter>(game).delete().await?;
    ctx.signal_entity::<Counter>("k").delete();
    Ok(checked + value)
}

fn main() {
    use durable::Entity;
    assert_eq!(Counter::NAME, "counter");
    assert_eq!(Counter::OPERATIONS, ["add", "reset", "get", "add_checked"]);
    let _ = Runtime::builder()
        .register(play)
        .register_entity::<Counter>();
}
