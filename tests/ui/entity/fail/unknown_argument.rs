use durable::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity(key = "game")]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

#[entity(name = "@bad")]
async fn tally(_ctx: EntityContext) -> Result<(), Error> {
    Ok(())
}

fn main() {}
