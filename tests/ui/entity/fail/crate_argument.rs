use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity(name = "Counter", crate("::durable"))]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

#[entity(crate = "::durable<T>")]
async fn tally(_ctx: EntityContext) -> Result<(), Error> {
    Ok(())
}

#[entity(crate = "durable", crate = "durable")]
async fn audit(_ctx: EntityContext) -> Result<(), Error> {
    Ok(())
}

fn main() {}
